// A follower that fell far behind catches up by InstallSnapshot (§7): while it is down the leader
// applies more than RAFTLET_SNAPSHOT_ENTRIES entries and compacts its log past everything the
// follower has, so plain AppendEntries can no longer bring it back.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { clusterHooks, snapshotFiles } from '../support/cluster.ts';

const SNAPSHOT_ENTRIES = 100;
const WRITES_WHILE_DOWN = 250;

describe('a follower far behind', () => {
  const clusters = clusterHooks();

  test('catches up from a snapshot of the leader after the leader compacted its log', async () => {
    const c = await clusters.start({
      nodes: 3, name: 'snapshot', heartbeatMs: 50, electionTimeoutMs: 500, env: { RAFTLET_SNAPSHOT_ENTRIES: String(SNAPSHOT_ENTRIES) },
    });
    const leader = await c.waitForLeader();
    await c.putOk(leader.node, 'early', 'before the follower went down');
    const laggard = c.ordinals.find((n) => n !== leader.node) ?? 0;
    const { lastLogIndex: laggardLastIndex } = await c.waitForApplied(laggard, (await c.status(leader.node)).commitIndex);
    await c.kill9(laggard);

    // More than a snapshot interval of writes, eight at a time, through both live nodes.
    const live = c.live();
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < WRITES_WHILE_DOWN) {
        const n = next++;
        await c.putOk(live[n % live.length], `bulk-${n % 50}`, `value ${n}`);
      }
    }));
    const last = await c.putOk(leader.node, 'latest', 'written last');
    const snapshotIndexes = snapshotFiles(c.spec(leader.node)).map((file) => Number(/snap-(\d+)-/.exec(file)?.[1]));
    assert.ok(
      snapshotIndexes.some((index) => index > laggardLastIndex + 1),
      `the leader compacted past the follower's last index ${laggardLastIndex} (snapshots at ${snapshotIndexes.join(', ') || 'none'})`,
    );

    await c.restart(laggard);
    const caughtUp = await c.waitForApplied(laggard, last.index);
    assert.ok(caughtUp.commitIndex >= last.index);
    assert.match(c.logText(laggard), /installed snapshot from leader/, 'it caught up by InstallSnapshot');
    assert.equal(await c.getText(laggard, 'latest', { consistency: 'stale' }), 'written last');
    assert.equal(await c.getText(laggard, 'early', { consistency: 'stale' }), 'before the follower went down');
    const expected = await c.list(leader.node, 'bulk-');
    assert.equal(expected.size, 50);
    assert.deepEqual(await c.list(laggard, 'bulk-', { consistency: 'stale' }), expected, 'its own copy equals the leader\'s');
    // And it takes part again: a write through it commits and every node reads it.
    await c.putOk(laggard, 'through-laggard', 'ok');
    for (const node of c.ordinals) assert.equal(await c.getText(node, 'through-laggard'), 'ok');
    await c.stopAll();
  });
});
