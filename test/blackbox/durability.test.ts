// SPEC §8: a write is acknowledged only once it is fsynced on a majority, and term, vote, log and
// snapshots survive kill -9. Every node is killed at once while writers run; after a restart of all
// of them every acknowledged write is there. Once more with snapshots every 50 entries, so log
// compaction and snapshot files are part of what must survive.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { clusterHooks, snapshotFiles, waitUntil } from '../support/cluster.ts';
import { Workload } from './workload.ts';

const VARIANTS = [
  { name: 'default snapshot interval', env: {}, acknowledged: 200, expectSnapshots: false },
  { name: 'RAFTLET_SNAPSHOT_ENTRIES=50', env: { RAFTLET_SNAPSHOT_ENTRIES: '50' }, acknowledged: 300, expectSnapshots: true },
] as const;

describe('kill -9 of every node while writers run', () => {
  const clusters = clusterHooks();

  for (const variant of VARIANTS) {
    test(`every acknowledged write survives a restart of all nodes (${variant.name})`, async (t) => {
      const c = await clusters.start({ nodes: 3, name: 'crash-all', heartbeatMs: 50, electionTimeoutMs: 500, env: variant.env });
      await c.waitForLeader();
      const load = new Workload(c, { prefix: 'd', writers: 4, keysPerWriter: 16 });
      load.start();
      await waitUntil(`${variant.acknowledged} acknowledged writes`, () => load.acknowledged().length >= variant.acknowledged, { timeoutMs: 60_000 });

      // All at once, with requests in flight.
      await Promise.all(c.ordinals.map((n) => c.kill9(n)));
      await load.stop();
      const counts = load.counts();
      t.diagnostic(`writes at the crash: ${JSON.stringify(counts)}`);
      if (variant.expectSnapshots) {
        const withSnapshots = c.nodes.filter((n) => snapshotFiles(n).length > 0);
        assert.ok(withSnapshots.length > 0, 'snapshots were taken during the run (else this variant tests nothing new)');
      }

      await Promise.all(c.ordinals.map((n) => c.restart(n)));
      const leader = await c.waitForLeader();
      const state = await c.list(leader.node, load.prefix);
      assert.deepEqual(load.check(state), [], `after restart, read on the leader; ${JSON.stringify(counts)}`);

      // Every replica converges on the same state, and reads through followers agree.
      const commitIndex = (await c.status(leader.node)).commitIndex;
      for (const node of c.ordinals) {
        await c.waitForApplied(node, commitIndex);
        assert.deepEqual(await c.list(node, load.prefix, { consistency: 'stale' }), state, `node ${node}'s own copy`);
      }
      // The cluster still takes writes after the crash.
      await c.putOk(leader.node, 'after-crash', 'yes');
      await c.stopAll();
    });
  }
});
