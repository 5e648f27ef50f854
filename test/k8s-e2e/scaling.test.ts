// Issue 4, scaling with the StatefulSet, with real processes and a writer running throughout:
// 3 → 5 (new pods appear in DNS, the leader adds them as learners and promotes them) → 3 (pods
// leave DNS, one stops, one keeps running; after the removal grace period the leader removes them
// one at a time).
// One leader per term throughout (every live pod's /v1/status polled), no acknowledged write lost.
//
// The grace period is membership.ts's defaultMembershipPolicy.removeGraceMs (30 s); no setting
// changes it, so this test takes about a minute.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { e2eSuite, podId, waitUntil, type ApiStatus, type PodCluster } from './harness.ts';
import { LeaderMonitor, WriteLoop } from './workload.ts';

const voterIds = (s: ApiStatus): string => s.members.map((m) => `${m.id}${m.voter ? '' : '(learner)'}`).sort().join(',');

/** Waits until each of `ordinals` shows exactly `ordinals` as members, all voters. */
function waitVoters(c: PodCluster, ordinals: readonly number[], timeoutMs: number): Promise<ApiStatus[]> {
  const want = ordinals.map(podId).sort().join(',');
  return waitUntil(
    `pods ${want} to show voters ${want}`,
    async () => {
      const statuses = await Promise.all(ordinals.map((o) => c.status(o)));
      const got = statuses.map(voterIds);
      if (!got.every((m) => m === want)) throw new Error(statuses.map((s, i) => `${s.id}: ${got[i]}`).join(' | '));
      return statuses;
    },
    { timeoutMs, intervalMs: 200 },
  );
}

/** The reconciliation decisions the pods logged (`membership: ...`), in time order. */
function membershipDecisions(c: PodCluster): string[] {
  const lines: { time: number; text: string }[] = [];
  for (let o = 0; o < 5; o++) {
    for (const line of c.logText(o).split('\n')) {
      if (!line.includes('"msg":"membership: ')) continue;
      const parsed = JSON.parse(line) as { time: number; node: string; msg: string };
      lines.push({ time: parsed.time, text: `${parsed.node}: ${parsed.msg}` });
    }
  }
  return lines.sort((a, b) => a.time - b.time).map((l) => l.text);
}

describe('scaling 3 → 5 → 3 with real processes (dnsmasq discovery, API double)', () => {
  const suite = e2eSuite();

  it('learners join and are promoted, absent pods are removed after the grace period; one leader per term, no acknowledged write lost', async (t) => {
    const c = await suite.scenario({ name: 'scaling' });
    await c.publish([0, 1, 2]);
    await Promise.all([0, 1, 2].map((o) => c.start(o)));
    await c.waitForLeader();
    const monitor = new LeaderMonitor(c);
    // Writes go to every live pod in DNS, learners included (they forward to the leader).
    let published = [0, 1, 2];
    const writer = new WriteLoop(c, () => c.live().filter((o) => published.includes(o)));
    monitor.start();
    writer.start();
    try {
      await waitUntil('the writer to get going', () => writer.acked.size >= 20);

      const upAt = Date.now();
      published = [0, 1, 2, 3, 4];
      await c.publish(published);
      await Promise.all([3, 4].map((o) => c.start(o)));
      await waitVoters(c, [0, 1, 2, 3, 4], 60_000);
      const upMs = Date.now() - upAt;
      assert.deepEqual([3, 4].map((o) => c.bootstrapCount(o)), [0, 0], 'pods beyond BOOTSTRAP_EXPECT join, they do not bootstrap');
      const up = membershipDecisions(c);
      for (const id of ['raftlet-3', 'raftlet-4']) {
        const added = up.findIndex((d) => d.includes(`membership: ${id} appeared in DNS`));
        const promoted = up.findIndex((d) => d.includes(`membership: learner ${id} caught up`));
        assert.ok(added >= 0 && promoted > added, `${id} added as a learner, then promoted:\n${up.join('\n')}`);
      }
      const five = await c.waitForLeader({ among: [0, 1, 2, 3, 4] });
      await c.waitLabelsConverged(five.id, five.term, [0, 1, 2, 3, 4].map(podId));
      const ackedAt5 = writer.acked.size;

      // StatefulSet scale-down: both pods leave DNS; raftlet-4 stops at once, raftlet-3 keeps
      // running (a pod stuck terminating): it must not disturb the cluster that removes it.
      const downAt = Date.now();
      published = [0, 1, 2];
      await c.publish(published);
      assert.equal(await c.sigterm(4), 0);
      await waitVoters(c, [0, 1, 2], 120_000);
      const downMs = Date.now() - downAt;
      const cluster = await c.waitForLeader({ among: [0, 1, 2] });
      const removed = await c.status(3);
      assert.ok(removed.term <= cluster.term, `the removed pod raftlet-3 (term ${removed.term}, ${removed.role}) did not push the cluster's term (${cluster.term})`);
      assert.equal(await c.sigterm(3), 0);
      const decisions = membershipDecisions(c);
      const removals = decisions.filter((d) => /membership: raftlet-[34] has been missing from DNS/.test(d));
      assert.equal(removals.length, 2, `two removals, one at a time:\n${decisions.join('\n')}`);
      assert.match(removals[0] ?? '', /raftlet-4/, 'the highest ordinal is removed first');

      const leader = await c.waitForLeader();
      await c.waitLabelsConverged(leader.id, leader.term, [0, 1, 2].map(podId));
      await waitUntil('more acknowledged writes after the scale-down', () => writer.acked.size > ackedAt5 + 20);
      await writer.stop();
      await monitor.stop();

      assert.deepEqual(monitor.violations(), [], 'never two leaders in one term');
      assert.ok(monitor.rounds > 50, `the monitor polled (${monitor.rounds} rounds)`);
      for (const o of [0, 1, 2]) assert.deepEqual(await writer.lost(o), [], `no acknowledged write missing on ${podId(o)}`);
      assert.deepEqual(c.podWriteViolations(), []);
      t.diagnostic(
        `3 → 5 voters in ${upMs} ms; 5 → 3 voters in ${downMs} ms (grace period 30 s); writes acknowledged ${writer.acked.size} of ${writer.attempts}, failures ${JSON.stringify(Object.fromEntries(writer.failures))}; leaders by term ${monitor.summary()}`,
      );
      t.diagnostic(`membership decisions:\n${decisions.join('\n')}`);
    } finally {
      await writer.stop();
      await monitor.stop();
    }
  });
});
