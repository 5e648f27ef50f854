// Five nodes tolerate two failures and no more: with two killed, writes and linearizable reads
// go on; with three killed, requests fail with 503 no_leader or 504 timeout once
// RAFTLET_REQUEST_TIMEOUT_MS has passed, instead of hanging or answering from a minority.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { clusterHooks } from '../support/cluster.ts';

const REQUEST_TIMEOUT_MS = 2_000;

describe('a 5-node cluster', () => {
  const clusters = clusterHooks();

  test('keeps serving with 2 nodes killed and refuses clearly with 3 killed', async () => {
    const c = await clusters.start({
      nodes: 5, name: 'five', heartbeatMs: 50, electionTimeoutMs: 500, requestTimeoutMs: REQUEST_TIMEOUT_MS,
    });
    const first = await c.waitForLeader();
    await c.putOk(first.node, 'k', 'before');

    // The leader and one follower die.
    const firstFollower = c.ordinals.find((n) => n !== first.node) ?? 0;
    await Promise.all([c.kill9(first.node), c.kill9(firstFollower)]);
    const second = await c.waitForLeader({ minTerm: first.term + 1 });
    const three = c.live();
    assert.equal(three.length, 3);
    for (const node of three) {
      await c.putOk(node, `via-${node}`, `written through node ${node}`);
      await c.putOk(node, 'k', `last through node ${node}`);
    }
    const lastValue = `last through node ${three.at(-1)}`;
    for (const reader of three) {
      assert.equal(await c.getText(reader, 'k'), lastValue, `linearizable read on node ${reader}`);
      for (const writer of three) assert.equal(await c.getText(reader, `via-${writer}`), `written through node ${writer}`);
    }

    // A third node dies: two of five cannot commit anything.
    const victim = three.find((n) => n !== second.node) ?? 0;
    await c.kill9(victim);
    const two = c.live();
    assert.equal(two.length, 2);
    // The client's own bound is far above the request timeout: it only catches a hang.
    const bound = { timeoutMs: REQUEST_TIMEOUT_MS + 15_000 };
    const outcomeUnknown = new Set<string>();
    // Both nodes, writes and reads, at once: each takes the whole request timeout.
    await Promise.all(two.map(async (node) => {
      const [write, read, stale] = await Promise.all([
        c.put(node, 'k', `minority write through ${node}`, bound),
        c.get(node, 'k', bound),
        c.get(node, 'k', { ...bound, consistency: 'stale' }),
      ]);
      if (write.status === 504) outcomeUnknown.add(`minority write through ${node}`);
      assert.ok(
        (write.status === 503 && write.errorCode === 'no_leader') || (write.status === 504 && write.errorCode === 'timeout'),
        `PUT through node ${node} with 3 of 5 down: ${write.status} ${write.text}`,
      );
      assert.ok(
        (read.status === 503 && read.errorCode === 'no_leader') || (read.status === 504 && read.errorCode === 'timeout'),
        `linearizable GET through node ${node} with 3 of 5 down: ${read.status} ${read.text}`,
      );
      assert.equal(stale.status, 200, 'a stale read still answers from the local copy');
    }));

    // Quorum back: nothing written by the minority shows, the last acknowledged value does.
    await c.restart(victim);
    const third = await c.waitForLeader();
    const value = await c.getText(third.node, 'k');
    // A 504 write's outcome is unknown: it may still commit once a quorum is back. A 503 one was
    // certainly not proposed.
    assert.ok(value === lastValue || outcomeUnknown.has(value), `k after the quorum came back: ${value}`);
    await c.stopAll();
  });
});
