// Issue 11, scaling in every direction with real processes, dnsmasq and the API double's
// StatefulSet driven by `kubectl scale` (kubectl 1.32), while a writer runs: afterwards one
// leader, a configuration that equals the remaining pods (all voters), no acknowledged write lost,
// every pod that went away exited 0 within its grace period (after leaving the configuration if it
// was still in it), no pod that stays was ever removed. The time from `kubectl scale` to a stable
// configuration is printed, not asserted.
//
// `npm test` runs a representative subset; `npm run test:scaling` (RAFTLET_SCALING_MATRIX=full)
// runs every direction under both pod management policies.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { e2eSuite, podId, waitUntil, type ApiStatus, type PodCluster } from './harness.ts';
import { MEMBER_ROLE, STATEFULSET, StatefulSetController, type PodManagementPolicy } from './statefulset.ts';
import { LeaderMonitor, WriteLoop } from './workload.ts';

const run = promisify(execFile);
const FULL = process.env.RAFTLET_SCALING_MATRIX === 'full';

const KUBECTL_ROLE = [{ apiGroups: ['apps'], resources: ['statefulsets', 'statefulsets/scale'], verbs: ['get', 'list', 'patch', 'update'] }];

const membersOf = (s: ApiStatus): string => s.members.map((m) => `${m.id}${m.voter ? '' : '(learner)'}`).sort().join(',');

/** Polls until every pod in `ordinals` shows exactly them as voters and agrees on one leader. */
async function waitStable(c: PodCluster, ordinals: readonly number[]): Promise<{ leader: string; term: number }> {
  const want = ordinals.map(podId).sort().join(',');
  return waitUntil(
    `a stable configuration ${want} with one leader`,
    async () => {
      const statuses = await Promise.all(ordinals.map((o) => c.status(o)));
      const got = statuses.map(membersOf);
      const first = statuses[0];
      if (!got.every((m) => m === want)) throw new Error(statuses.map((s, i) => `${s.id}: ${got[i]}`).join(' | '));
      if (first === undefined || first.leader === null || !statuses.every((s) => s.leader === first.leader && s.term === first.term)) {
        throw new Error(statuses.map((s) => `${s.id}: leader ${s.leader ?? 'none'} term ${s.term}`).join(' | '));
      }
      if (!statuses.some((s) => s.id === first.leader && s.role === 'leader')) throw new Error(`${first.leader} does not say it leads`);
      return { leader: first.leader, term: first.term };
    },
    { timeoutMs: 120_000, intervalMs: 100 },
  );
}

/** Watches pods being added: /readyz must never be 200 while the pod's own status shows it as a learner. */
class ReadinessWatch {
  readonly violations: string[] = [];
  learnerSeen = new Set<string>();
  private running = true;
  private readonly done: Promise<void>;

  constructor(c: PodCluster, ordinals: () => readonly number[]) {
    this.done = (async () => {
      while (this.running) {
        await Promise.all(
          ordinals().map(async (o) => {
            const before = await c.tryStatus(o, 1_000);
            const ready = await c.readyz(o);
            const after = await c.tryStatus(o, 1_000);
            const learner = (s: ApiStatus | null): boolean => s !== null && s.members.some((m) => m.id === s.id && !m.voter);
            if (learner(before)) this.learnerSeen.add(podId(o));
            if (learner(before) && learner(after) && ready.status === 200) this.violations.push(`${podId(o)} was Ready as a learner: ${ready.reason}`);
          }),
        );
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

interface Case {
  readonly policy: PodManagementPolicy;
  readonly from: number;
  readonly steps: readonly number[];
}

const ALL: readonly Case[] = (['Parallel', 'OrderedReady'] as const).flatMap((policy) => [
  { policy, from: 3, steps: [1] },
  { policy, from: 3, steps: [2, 1] },
  { policy, from: 1, steps: [3] },
  { policy, from: 5, steps: [3] },
]);
// In `npm test`: each direction once, both policies.
const SUBSET = new Set(['Parallel 3→1', 'OrderedReady 3→2→1', 'OrderedReady 1→3', 'Parallel 5→3']);
/**
 * OrderedReady creates a pod only once the one before it is Ready, and a member is Ready only in a
 * cluster with a leader: the first pod must form a cluster alone (RAFTLET_BOOTSTRAP_EXPECT=1), the
 * others join it. Parallel starts them together; up to 3 form the cluster.
 */
function bootstrapExpect(policy: PodManagementPolicy, pods: number): string {
  return policy === 'OrderedReady' ? '1' : String(Math.min(3, pods));
}

const label = (k: Case): string => `${k.policy} ${[k.from, ...k.steps].join('→')}`;

describe('scaling with kubectl scale (real processes, dnsmasq, API double with a StatefulSet)', () => {
  const suite = e2eSuite();
  const results: string[] = [];

  for (const k of ALL) {
    const name = label(k);
    it(name, { skip: FULL || SUBSET.has(name) ? false : 'in npm run test:scaling' }, async (t) => {
      results.push(`${name}: ${await scaleCase(t, k)}`);
      t.diagnostic(results.at(-1) ?? '');
    });
  }

  async function scaleCase(t: TestContext, k: Case): Promise<string> {
    const c = await suite.scenario({
      name: label(k).replace(/[^a-z0-9]+/gi, '-'),
      podsInApi: 0,
      rules: [...MEMBER_ROLE],
      anonymousRules: KUBECTL_ROLE,
      env: { RAFTLET_BOOTSTRAP_EXPECT: bootstrapExpect(k.policy, k.from) },
    });
    const sts = new StatefulSetController(c, { policy: k.policy, graceSeconds: 30 });
    const cache = await mkdtemp(path.join(tmpdir(), 'kubectl-cache-'));
    const kubectl = (...args: string[]) => run('kubectl', ['--kubeconfig', c.k8s.kubeconfigPath, '--cache-dir', cache, '-n', 'e2e', ...args], { timeout: 30_000 });
    const monitor = new LeaderMonitor(c);
    // Writes go where an application would send them: pods that are members and not being deleted.
    let serving: readonly number[] = [];
    const writer = new WriteLoop(c, () => sts.active().filter((o) => serving.includes(o)));
    let readiness: ReadinessWatch | null = null;
    try {
      await sts.create(k.from);
      const initial = Array.from({ length: k.from }, (_, o) => o);
      await waitStable(c, initial);
      serving = initial;
      monitor.start();
      writer.start();
      await waitUntil('the writer to get going', () => writer.acked.size >= 20);
      const times: string[] = [];
      let current = initial;
      for (const replicas of k.steps) {
        const target = Array.from({ length: replicas }, (_, o) => o);
        const added = target.filter((o) => !current.includes(o));
        if (added.length > 0) readiness = new ReadinessWatch(c, () => added.filter((o) => c.isLive(o)));
        let handOverTerm: number | null = null;
        if (replicas < current.length) {
          // The hard case: the leader is among the pods scaled away (the highest ordinal).
          const highest = current.length - 1;
          const moved = await c.http(`${c.spec(0).apiUrl}/v1/leader/transfer`, 'POST', { body: JSON.stringify({ to: podId(highest) }), headers: { 'content-type': 'application/json' } });
          assert.equal(moved.status, 200, moved.text);
          handOverTerm = (await c.waitForLeader({ among: current, not: current.length > 1 ? podId(0) : undefined })).term;
        }
        const ackedBefore = writer.acked.size;
        const at = Date.now();
        const scaled = await kubectl('scale', 'statefulset', STATEFULSET, `--replicas=${replicas}`);
        assert.match(scaled.stdout, /statefulset.apps\/raftlet scaled/);
        // The configuration may settle before the pods are even signalled (the leader reads the
        // replicas itself): both are timed from the scale, side by side.
        let stableMs = 0;
        const settled = waitStable(c, target).then((s) => {
          stableMs = Date.now() - at;
          return s;
        });
        await sts.idle();
        const podsMs = Date.now() - at;
        const stable = await settled;
        times.push(`${current.length}→${replicas}: stable configuration in ${(stableMs / 1000).toFixed(1)} s (pods done in ${(podsMs / 1000).toFixed(1)} s)`);
        await c.waitLabelsConverged(stable.leader, stable.term, target.map(podId));
        if (handOverTerm !== null) {
          // The scaled-away leader handed over to a pod that stays, never to another leaving one.
          const later = [...monitor.reported].filter(([term]) => term > (handOverTerm ?? 0)).flatMap(([, ids]) => [...ids]);
          assert.deepEqual(later.filter((id) => !target.map(podId).includes(id)), [], `leaders after the scale: ${later.join(', ')}`);
        }
        await waitUntil('writes acknowledged after the scale', () => writer.acked.size >= ackedBefore + 20);
        if (readiness !== null) {
          await readiness.stop();
          assert.deepEqual(readiness.violations, [], 'a learner is not Ready');
          readiness = null;
        }
        for (const o of added) assert.equal(c.bootstrapCount(o), 0, `${podId(o)} joined, it did not bootstrap`);
        current = target;
        serving = target;
      }
      await writer.stop();
      await monitor.stop();
      assert.deepEqual(monitor.violations(), [], 'never two leaders in one term');
      for (const o of current) assert.deepEqual(await writer.lost(o), [], `no acknowledged write missing on ${podId(o)}`);
      assert.deepEqual(c.podWriteViolations(), []);
      const gone = sts.terminations;
      assert.deepEqual(gone.filter((g) => g.killed || g.code !== 0), [], 'every pod scaled away exited 0 within its grace period');
      for (const g of gone) {
        const log = c.logText(g.ordinal);
        assert.match(log, /scaled away; leaving the configuration before exiting/, `${podId(g.ordinal)} knew it was scaled away`);
        assert.match(log, /left the configuration: the removal is committed/, `${podId(g.ordinal)} left before exiting`);
      }
      // Pods that stay never left, and nothing was removed twice.
      const removals = current.flatMap((o) => c.logText(o).split('\n').filter((l) => l.includes('"msg":"membership: ') && l.includes('is scaled away')));
      for (const o of current) assert.ok(!removals.some((l) => l.includes(`membership: ${podId(o)} is scaled away`)), `${podId(o)} stays`);
      const failed = [...writer.failures].map(([what, n]) => `${n}×${what}`).join(' ') || 'none';
      return `${times.join('; ')}; writes acknowledged ${writer.acked.size} of ${writer.attempts} (failed: ${failed}); leaders by term ${monitor.summary()}`;
    } finally {
      await readiness?.stop();
      await writer.stop();
      await monitor.stop();
      sts.stop();
      await rm(cache, { recursive: true, force: true });
      t.diagnostic(`controller timeline:\n${sts.timeline.join('\n')}`);
    }
  }

  it('a rolling restart of every pod never shrinks the configuration', { skip: false }, async (t) => {
    const c = await suite.scenario({ name: 'rolling-restart', podsInApi: 0, rules: [...MEMBER_ROLE], env: { RAFTLET_BOOTSTRAP_EXPECT: bootstrapExpect('OrderedReady', 3) } });
    const sts = new StatefulSetController(c, { policy: 'OrderedReady', graceSeconds: 30 });
    const writer = new WriteLoop(c, () => sts.active());
    const monitor = new LeaderMonitor(c);
    const seen = new Map<string, number>();
    let sampling = false;
    let sampler: Promise<void> = Promise.resolve();
    const sample = async (): Promise<void> => {
      while (sampling) {
        for (const o of sts.active()) {
          const s = await c.tryStatus(o, 1_000);
          if (s !== null && s.members.length > 0) seen.set(membersOf(s), (seen.get(membersOf(s)) ?? 0) + 1);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    try {
      await sts.create(3);
      await waitStable(c, [0, 1, 2]);
      sampling = true;
      sampler = sample();
      monitor.start();
      writer.start();
      await waitUntil('the writer to get going', () => writer.acked.size >= 20);
      const at = Date.now();
      await sts.rollingRestart();
      const stable = await waitStable(c, [0, 1, 2]);
      t.diagnostic(`rolling restart of 3 pods done and stable in ${((Date.now() - at) / 1000).toFixed(1)} s`);
      await c.waitLabelsConverged(stable.leader, stable.term, [0, 1, 2].map(podId));
      sampling = false;
      await sampler;
      await writer.stop();
      await monitor.stop();
      assert.deepEqual([...seen.keys()], ['raftlet-0,raftlet-1,raftlet-2'], `every configuration seen during the roll: ${JSON.stringify([...seen])}`);
      assert.deepEqual(sts.terminations.map((g) => [g.ordinal, g.code, g.killed]), [[2, 0, false], [1, 0, false], [0, 0, false]]);
      for (const o of [0, 1, 2]) {
        assert.match(c.logText(o), /a restart; staying a member/, `${podId(o)} knew it only restarted`);
        assert.doesNotMatch(c.logText(o), /scaled away/);
        assert.deepEqual(await writer.lost(o), []);
      }
      assert.deepEqual(monitor.violations(), []);
    } finally {
      sampling = false;
      await sampler;
      await writer.stop();
      await monitor.stop();
      sts.stop();
    }
  });

  it('an unreadable StatefulSet (403): a pod scaled away does not guess, stays a member and says why', async () => {
    // The Role without the statefulsets rule: nobody can tell a scale-down from a restart.
    const c = await suite.scenario({ name: 'no-sts-access', podsInApi: 0, rules: MEMBER_ROLE.filter((r) => !r.resources.includes('statefulsets')), anonymousRules: KUBECTL_ROLE });
    const sts = new StatefulSetController(c, { policy: 'Parallel', graceSeconds: 10 });
    try {
      await sts.create(3);
      await waitStable(c, [0, 1, 2]);
      c.k8s.statefulSets.update(STATEFULSET, (s) => {
        (s.spec as { replicas: number }).replicas = 2;
      });
      await sts.idle();
      assert.deepEqual(sts.terminations.map((g) => [g.ordinal, g.code, g.killed]), [[2, 0, false]]);
      assert.match(c.logText(2), /cannot tell a scale-down from a restart \(cannot read StatefulSet raftlet: forbidden .*\): staying a member/);
      const statuses = await Promise.all([0, 1].map((o) => c.status(o)));
      for (const s of statuses) assert.equal(membersOf(s), 'raftlet-0,raftlet-1,raftlet-2', 'nothing was removed on a guess');
      for (const o of [0, 1, 2]) assert.match(c.logText(o), /cannot read the StatefulSet's desired replicas \(forbidden/, `${podId(o)} says why it will remove nobody`);
    } finally {
      sts.stop();
    }
  });
});
