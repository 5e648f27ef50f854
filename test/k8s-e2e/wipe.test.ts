// Issue 11: a member that lost its data (a deleted PersistentVolumeClaim, a wiped disk) never
// bootstraps a new cluster while the existing one is reachable: restarted empty, in every ordinal
// (raftlet-0 is the one that would bootstrap a new cluster from DNS), it asks its peers, finds the
// cluster, waits, and is caught up by the leader with a snapshot (the log is compacted every 50
// entries here), taking the cluster's id. A writer runs throughout; no acknowledged write is lost.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { CLUSTER_ID_FILE } from '../../src/run/cluster-id.ts';
import { e2eSuite, podId, waitUntil, type PodCluster } from './harness.ts';
import { MEMBER_ROLE, StatefulSetController } from './statefulset.ts';
import { LeaderMonitor, WriteLoop } from './workload.ts';

const clusterId = (c: PodCluster, o: number): string | null => {
  const file = path.join(c.spec(o).dataDir, CLUSTER_ID_FILE);
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : null;
};

/** The log of the pod's current process only (after the harness's last start marker). */
function currentLog(c: PodCluster, o: number): string {
  const text = c.logText(o);
  return text.slice(text.lastIndexOf('---- e2e: starting'));
}

describe('a member restarted with an empty data directory (real processes, dnsmasq, API double)', () => {
  const suite = e2eSuite();

  it('joins and is caught up by snapshot in every ordinal; it never bootstraps', async (t) => {
    const c = await suite.scenario({ name: 'wiped', podsInApi: 0, rules: [...MEMBER_ROLE], env: { RAFTLET_SNAPSHOT_ENTRIES: '50' } });
    const sts = new StatefulSetController(c, { policy: 'Parallel' });
    const down = new Set<number>();
    const writer = new WriteLoop(c, () => sts.active().filter((o) => !down.has(o)));
    const monitor = new LeaderMonitor(c);
    try {
      await sts.create(3);
      const first = await c.waitForLeader({ among: [0, 1, 2] });
      const id = await waitUntil('one cluster id on every pod', () => {
        const ids = [0, 1, 2].map((o) => clusterId(c, o));
        if (ids[0] === null || !ids.every((x) => x === ids[0])) throw new Error(ids.join(', '));
        return ids[0];
      });
      t.diagnostic(`cluster ${id}, first leader ${first.id}`);
      monitor.start();
      writer.start();
      for (const o of [0, 1, 2]) {
        const acked = writer.acked.size;
        await waitUntil('enough writes for a compacted log', () => writer.acked.size >= acked + 120);
        const bootstraps = c.bootstrapCount(o);
        down.add(o);
        await c.kill9(o);
        rmSync(c.spec(o).dataDir, { recursive: true, force: true });
        const leader = await c.waitForLeader({ among: [0, 1, 2].filter((p) => p !== o) });
        const commit = (await c.status(leader.ordinal)).commitIndex;
        const at = Date.now();
        await c.start(o);
        await waitUntil(
          `${podId(o)} to be caught up and a voter again`,
          async () => {
            const s = await c.status(o);
            const members = s.members.map((m) => `${m.id}${m.voter ? '' : '(learner)'}`).sort().join(',');
            if (members !== 'raftlet-0,raftlet-1,raftlet-2' || s.appliedIndex < commit) throw new Error(`${members}; applied ${s.appliedIndex} of ${commit}`);
            return true;
          },
          { timeoutMs: 60_000, intervalMs: 100 },
        );
        down.delete(o);
        const log = currentLog(c, o);
        t.diagnostic(`${podId(o)} wiped: caught up to ${commit} in ${((Date.now() - at) / 1000).toFixed(1)} s`);
        assert.equal(c.bootstrapCount(o), bootstraps, `${podId(o)} never bootstrapped again`);
        assert.match(log, /installed snapshot from leader/, `${podId(o)} was caught up by snapshot`);
        assert.match(log, new RegExp(`joined cluster ${id}`), `${podId(o)} took the cluster's id`);
        assert.equal(clusterId(c, o), id);
        // The seed either asked its peers first and found the cluster, or the leader reached it
        // before it asked (a race; both are fine as long as it never bootstrapped).
        if (o === 0) t.diagnostic(/already belongs to a cluster .*not bootstrapping/.test(log) ? 'raftlet-0 asked its peers and found the cluster' : 'the leader reached raftlet-0 before it asked');
      }
      await writer.stop();
      await monitor.stop();
      assert.deepEqual(monitor.violations(), []);
      for (const o of [0, 1, 2]) assert.deepEqual(await writer.lost(o), [], `no acknowledged write missing on ${podId(o)}`);
      t.diagnostic(`writes acknowledged ${writer.acked.size} of ${writer.attempts}; leaders by term ${monitor.summary()}`);
    } finally {
      await writer.stop();
      await monitor.stop();
      sts.stop();
    }
  });
});
