// SIGTERM (SPEC §7): the leader hands leadership to a follower (TimeoutNow) and exits 0; a
// follower just exits 0. The election timeout is long (5 s) on purpose: followers cannot time out
// before 5 s have passed since the last heartbeat they heard, and the old leader heartbeats until
// it hands over, so a new leader known within 5 s of the SIGTERM can only come from the transfer.
// This is a logical check with the whole election timeout as its bound, not a speed test.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { clusterHooks, waitUntil, type LeaderView } from '../support/cluster.ts';

const ELECTION_TIMEOUT_MS = 5_000;

describe('SIGTERM', () => {
  const clusters = clusterHooks();

  test('the leader hands over before it exits 0; a follower exits 0 too', async () => {
    const c = await clusters.start({ nodes: 3, name: 'sigterm', heartbeatMs: 100, electionTimeoutMs: ELECTION_TIMEOUT_MS });
    // The first election itself waits out a 5-10 s timeout.
    const first = await c.waitForLeader({ timeoutMs: 60_000 });
    await c.putOk(first.node, 'before-shutdown', 'kept');
    const followers = c.ordinals.filter((n) => n !== first.node);

    const signalledAt = Date.now();
    const exitCode = c.sigterm(first.node);
    // Watch the followers only: the old leader may answer until it is gone.
    let seenAt = 0;
    const second: LeaderView = await waitUntil('a new leader among the followers', async () => {
      const view = await c.waitForLeader({ among: followers, minTerm: first.term + 1, timeoutMs: 1 });
      seenAt = Date.now();
      return view;
    }, { timeoutMs: 30_000, intervalMs: 10 });
    assert.equal(await exitCode, 0, 'the leader exits 0 after SIGTERM');
    assert.ok(followers.includes(second.node));
    assert.ok(
      seenAt - signalledAt < ELECTION_TIMEOUT_MS,
      `a new leader was known ${seenAt - signalledAt} ms after the SIGTERM; only a transfer can be quicker than the ` +
        `${ELECTION_TIMEOUT_MS} ms election timeout`,
    );
    // The old leader says so in its log (SPEC §7: TimeoutNow to the most up-to-date follower).
    const handOver = c.logText(first.node).split('\n').filter((line) => line.includes('handed leadership over before stopping'));
    assert.equal(handOver.length, 1, `the old leader logs the hand-off:\n${c.logTail(first.node, 20)}`);
    assert.equal((JSON.parse(handOver[0]) as { to?: string }).to, second.id, 'to the follower that became leader');

    // The new leader serves what the old one had and new writes.
    assert.equal(await c.getText(second.node, 'before-shutdown'), 'kept');
    await c.putOk(second.node, 'after-shutdown', 'yes');

    // A follower's SIGTERM: exit 0 as well.
    const follower = followers.find((n) => n !== second.node);
    assert.ok(follower !== undefined);
    assert.equal(await c.sigterm(follower), 0, 'a follower exits 0 after SIGTERM');
    assert.match(c.logText(follower), /"msg":"stopped"/);
    await c.stopAll();
  });

  test('a leader whose hand-off target dies does not wait for it: it exits 0 well inside the hand-off deadline', async () => {
    // Both followers frozen, so the TimeoutNow (and the leader's vote with it) reaches no one; then
    // both killed. Waiting the hand-off out would take two election timeouts (10 s); the leader
    // sees the target's process gone (connection closed, a new one refused) and stops. The bound
    // below is one election timeout after the kill, far above the milliseconds this takes.
    const c = await clusters.start({ nodes: 3, name: 'sigterm-target-dies', heartbeatMs: 100, electionTimeoutMs: ELECTION_TIMEOUT_MS });
    const leader = await c.waitForLeader({ timeoutMs: 60_000 });
    await c.putOk(leader.node, 'before', 'kept');
    const followers = c.ordinals.filter((n) => n !== leader.node);
    for (const f of followers) c.sigstop(f);
    const exitCode = c.sigterm(leader.node, 4 * ELECTION_TIMEOUT_MS);
    await waitUntil('the leader to step down for its hand-off', () => c.logText(leader.node).includes('voting for the member it hands leadership to'));
    const killedAt = Date.now();
    await Promise.all(followers.map((f) => c.kill9(f)));
    assert.equal(await exitCode, 0, 'the leader exits 0');
    const tookMs = Date.now() - killedAt;
    assert.ok(tookMs < ELECTION_TIMEOUT_MS, `exited ${tookMs} ms after its target was killed`);
    assert.match(c.logText(leader.node), /leadership hand-off failed; stopping anyway/);
    assert.match(c.logText(leader.node), /its process is gone \(connection refused\)/);
    await c.stopAll();
  });
});
