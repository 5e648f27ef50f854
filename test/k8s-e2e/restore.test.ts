// Issue 11, the restore procedure for a StatefulSet, as the README gives it, with real processes,
// dnsmasq, the API double and kubectl: snapshot save through the peer port (as the backup CronJob
// does) while a writer runs; kubectl scale to 0 (every member stops, none leaves); the snapshot
// restored into raftlet-0's volume as a one-member cluster, the other volumes emptied; kubectl
// scale back to 3: raftlet-0 leads the new cluster alone and adds the others as learners, they
// never bootstrap, and every key up to the snapshot's index is on every pod.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, renameSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { baseEnv, runRaftlet } from '../support/cluster.ts';
import { e2eSuite, podId, waitUntil } from './harness.ts';
import { MEMBER_ROLE, STATEFULSET, StatefulSetController } from './statefulset.ts';
import { WriteLoop } from './workload.ts';

const run = promisify(execFile);
const KUBECTL_ROLE = [{ apiGroups: ['apps'], resources: ['statefulsets', 'statefulsets/scale'], verbs: ['get', 'list', 'patch', 'update'] }];

describe('restoring a StatefulSet cluster from a snapshot (real processes, dnsmasq, API double, kubectl)', () => {
  const suite = e2eSuite();

  it('scale to 0, restore raftlet-0 as a one-member cluster, empty the others, scale to 3: every key up to the snapshot is back', async (t) => {
    const c = await suite.scenario({ name: 'restore', podsInApi: 0, rules: [...MEMBER_ROLE], anonymousRules: KUBECTL_ROLE });
    const sts = new StatefulSetController(c, { policy: 'Parallel', graceSeconds: 20 });
    const cache = await mkdtemp(path.join(tmpdir(), 'kubectl-cache-'));
    const kubectl = (...args: string[]) => run('kubectl', ['--kubeconfig', c.k8s.kubeconfigPath, '--cache-dir', cache, '-n', 'e2e', ...args], { timeout: 30_000 });
    const writer = new WriteLoop(c, () => sts.active());
    try {
      await sts.create(3);
      await c.waitForLeader({ among: [0, 1, 2] });
      writer.start();
      await waitUntil('writes before the backup', () => writer.acked.size >= 200);
      // Every write acknowledged before the save is in the snapshot (a read barrier first); the
      // save under writes is checked in test/blackbox/backup-restore.test.ts.
      await writer.stop();
      const file = path.join(c.dir, 'backup.snap');
      const saved = await runRaftlet(['snapshot', 'save', file, '--peer', `http://127.0.0.1:${c.spec(1).peerPort}`], {
        env: { ...baseEnv(), RAFTLET_CLUSTER_TOKEN: c.token },
      });
      assert.equal(saved.code, 0, saved.stderr);
      const bytes = readFileSync(file);
      const index = (JSON.parse(bytes.subarray(0, bytes.indexOf(0x0a)).toString()) as { index: number }).index;
      const inSnapshot = [...writer.acked];

      await kubectl('scale', 'statefulset', STATEFULSET, '--replicas=0');
      await sts.idle();
      assert.deepEqual(sts.terminations.map((g) => [g.code, g.killed]), [[0, false], [0, false], [0, false]]);
      for (const o of [0, 1, 2]) assert.match(c.logText(o), /is scaled to 0: every member stops and none leaves/);

      // The restore: raftlet-0's volume gets the snapshot as a one-member cluster; the others are emptied.
      renameSync(c.spec(0).dataDir, `${c.spec(0).dataDir}.before-restore`);
      const restored = await runRaftlet([
        'snapshot', 'restore', file, '--data-dir', c.spec(0).dataDir, '--node-id', podId(0), '--peers', `${podId(0)}=${c.spec(0).advertiseUrl}`,
      ]);
      assert.equal(restored.code, 0, restored.stderr);
      for (const o of [1, 2]) rmSync(c.spec(o).dataDir, { recursive: true, force: true });

      const at = Date.now();
      await kubectl('scale', 'statefulset', STATEFULSET, '--replicas=3');
      await sts.idle();
      await waitUntil(
        'raftlet-0..2 voters of the restored cluster',
        async () => {
          const statuses = await Promise.all([0, 1, 2].map((o) => c.status(o)));
          const got = statuses.map((s) => s.members.map((m) => `${m.id}${m.voter ? '' : '(learner)'}`).sort().join(','));
          if (!got.every((m) => m === 'raftlet-0,raftlet-1,raftlet-2') || statuses.some((s) => s.appliedIndex < index)) throw new Error(got.join(' | '));
          return true;
        },
        { timeoutMs: 90_000, intervalMs: 200 },
      );
      t.diagnostic(`restored index ${index}; 3 voters again ${((Date.now() - at) / 1000).toFixed(1)} s after scaling up`);
      for (const o of [1, 2]) assert.equal(c.bootstrapCount(o), 0, `${podId(o)} joined the restored cluster, it did not bootstrap`);
      for (const o of [0, 1, 2]) {
        for (const [key, value] of inSnapshot) {
          const got = await c.get(o, key);
          assert.equal(got.text, value, `${key} on ${podId(o)}`);
        }
      }
    } finally {
      await writer.stop();
      sts.stop();
      await rm(cache, { recursive: true, force: true });
    }
  });
});
