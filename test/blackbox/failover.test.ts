// The leader goes away: killed outright (kill -9) or frozen (SIGSTOP, a long GC pause). The others
// elect a new leader in a later term and keep serving; the old leader comes back as a follower and
// catches up; no acknowledged write is lost.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { clusterHooks, waitUntil } from '../support/cluster.ts';
import { Workload } from './workload.ts';

// Short timeouts keep failovers quick; the tests wait for conditions, so a slow machine only
// makes them slower, never wrong.
const TIMING = { heartbeatMs: 50, electionTimeoutMs: 500 } as const;

describe('leader failure', () => {
  const clusters = clusterHooks();

  test('kill -9 of the leader: a new leader in a later term, writes go on, the old leader restarts and catches up', async () => {
    const c = await clusters.start({ nodes: 3, name: 'kill-leader', ...TIMING });
    const first = await c.waitForLeader();
    await c.putOk(first.node, 'before', 'written before the crash');
    await c.putOk(first.node, 'key', 'v1');

    await c.kill9(first.node);
    const second = await c.waitForLeader({ minTerm: first.term + 1 });
    assert.notEqual(second.node, first.node);
    assert.ok(second.term > first.term, `new term ${second.term} > ${first.term}`);

    // Writes succeed again, through the new leader and through the remaining follower.
    const survivors = c.live();
    assert.equal(survivors.length, 2);
    let last = { index: 0, term: 0 };
    for (const [i, node] of survivors.entries()) last = await c.putOk(node, 'key', `v${i + 2}`);
    const latest = `v${survivors.length + 1}`;
    for (const node of survivors) {
      assert.equal(await c.getText(node, 'key'), latest);
      assert.equal(await c.getText(node, 'before'), 'written before the crash');
    }

    // The killed node restarts from its data dir and catches up.
    await c.restart(first.node);
    await waitUntil(`node ${first.node} to serve the latest value from its own copy`, async () => {
      const answer = await c.get(first.node, 'key', { consistency: 'stale' });
      return answer.status === 200 && answer.text === latest;
    });
    const leaderStatus = await c.status(second.node);
    const caughtUp = await c.waitForApplied(first.node, leaderStatus.commitIndex);
    assert.ok(caughtUp.commitIndex >= last.index);
    const after = await c.waitForLeader();
    assert.equal(after.node, second.node, 'the restarted node does not disturb the new leader');
    assert.equal(await c.getText(first.node, 'before'), 'written before the crash', 'and it kept what it had before the crash');
    await c.stopAll();
  });

  test('SIGSTOP of the leader: the others elect a new leader; after SIGCONT the old one steps down and rejoins; no acknowledged write is lost', async (t) => {
    const c = await clusters.start({ nodes: 3, name: 'pause-leader', ...TIMING });
    const first = await c.waitForLeader();
    await c.putOk(first.node, 'read-check', 'before the pause');
    const load = new Workload(c, { prefix: 'p', writers: 3 });
    load.start();
    await waitUntil('writes to be acknowledged before the pause', () => load.acknowledged().length >= 30);

    c.sigstop(first.node);
    const second = await c.waitForLeader({ minTerm: first.term + 1 });
    assert.notEqual(second.node, first.node);
    // The new leader serves: acknowledged writes keep coming while the old leader is frozen.
    const acknowledgedAtElection = load.acknowledged().length;
    await waitUntil('writes to be acknowledged by the new leader', () => load.acknowledged().length >= acknowledgedAtElection + 30);

    // A linearizable read and a write that reach the old leader while it is frozen, after an
    // overwrite was acknowledged: once it wakes up it still believes it leads, and must neither
    // answer the read from its copy nor acknowledge the write on its own.
    await c.putOk(second.node, 'read-check', 'during the pause');
    const readOnOldLeader = c.get(first.node, 'read-check');
    const writeOnOldLeader = c.put(first.node, 'write-check', 'sent to the frozen leader');
    c.sigcont(first.node);
    const [read, write] = await Promise.all([readOnOldLeader, writeOnOldLeader]);
    t.diagnostic(`on the old leader as it woke up: read ${read.status} ${read.text}; write ${write.status} ${write.text}`);
    if (read.status === 200) assert.equal(read.text, 'during the pause', 'a linearizable read on the old leader after it wakes up');
    else assert.ok([503, 504].includes(read.status), `the old leader refused the read: ${read.status} ${read.text}`);
    assert.ok([200, 503, 504].includes(write.status), `a write through the old leader: ${write.status} ${write.text}`);
    await t.test('a request that reached the deposed leader is served through the new one', () => {
      assert.equal(read.status, 200, `read: ${read.text}`);
      assert.equal(write.status, 200, `write: ${write.text}`);
    });

    const settled = await waitUntil(`node ${first.node} to step down and follow the new leader`, async () => {
      const s = await c.status(first.node);
      if (s.role === 'leader') throw new Error(`node ${first.node} still says leader in term ${s.term}`);
      return s.leader !== null && s.leader !== c.spec(first.node).id ? s : null;
    });
    assert.ok(settled.term > first.term, 'the old leader moved to a later term');
    const acknowledgedAtResume = load.acknowledged().length;
    await waitUntil('writes to be acknowledged with the old leader back', () => load.acknowledged().length >= acknowledgedAtResume + 30);
    await load.stop();

    const leader = await c.waitForLeader({ among: c.ordinals });
    const commitIndex = (await c.status(leader.node)).commitIndex;
    // Every node, the one that was frozen included, answers linearizable reads with every
    // acknowledged write (or a later attempt at the same key).
    for (const node of c.ordinals) {
      await c.waitForApplied(node, commitIndex);
      const state = await c.list(node, load.prefix);
      assert.deepEqual(load.check(state), [], `node ${node}: ${JSON.stringify(load.counts())}`);
    }
    assert.ok(load.acknowledged().length >= 90, `acknowledged ${load.acknowledged().length}`);
    // SPEC §4: a 503 no_leader write was certainly not applied; a 200 one certainly was.
    const written = await c.get(leader.node, 'write-check');
    if (write.status === 200) assert.equal(written.text, 'sent to the frozen leader');
    if (write.status === 503) assert.equal(written.status, 404, `a write refused with 503 was applied: ${written.text}`);
    await c.stopAll();
  });
});
