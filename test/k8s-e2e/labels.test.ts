// Issue 4 / SPEC §7, pod labels with real processes: exactly one pod labelled leader (the current
// leader's), the others follower, each with raftlet.io/term = the writer's term, after start and
// after kill -9 of the leader; a LeaderElected event on the new leader's pod; other controllers'
// labels and annotations survive. The time from the kill to converged labels is measured and
// reported (median of 5), not asserted. The optional Lease mirror follows the leader; SIGTERM on
// the leader hands over and relabels.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { e2eSuite, FOREIGN_ANNOTATIONS, FOREIGN_LABELS, median, NAMESPACE, podId, ROLE_LABEL, waitUntil, type PodCluster } from './harness.ts';

const ORDINALS = [0, 1, 2];
const IDS = ORDINALS.map(podId);
const SAMPLES = 5;
const LEASE = 'raftlet-leader';

/** Polls the API double's store (in this process) until the labels name a leader other than `not` in a term above `afterTerm`. */
function waitNewLeaderLabels(c: PodCluster, not: string, afterTerm: number): Promise<{ id: string; term: number; at: number }> {
  return waitUntil(
    `pod labels on a new leader (not ${not}) in a term above ${afterTerm}`,
    () => {
      const leaders = [...c.podLabels()].filter(([, p]) => p.role === 'leader').map(([name]) => name);
      const candidate = leaders[0];
      if (leaders.length !== 1 || candidate === undefined || candidate === not) throw new Error(`leader labels on [${leaders.join(', ')}]`);
      const term = Number(c.podLabels().get(candidate)?.term);
      if (!(term > afterTerm)) throw new Error(`${candidate} labelled in term ${term}`);
      const problems = c.labelProblems(candidate, term, IDS);
      if (problems.length > 0) throw new Error(problems.join('; '));
      return { id: candidate, term, at: Date.now() };
    },
    { timeoutMs: 30_000, intervalMs: 5 },
  );
}

/** The labels named the leader of their term (unless yet another election has happened since). */
function assertSameLeader(now: { id: string; term: number }, labelled: { id: string; term: number }): void {
  if (now.term === labelled.term) assert.equal(now.id, labelled.id, `term ${now.term}: labels on ${labelled.id}, leader ${now.id}`);
  else assert.ok(now.term > labelled.term, `the leader's term ${now.term} is below the labelled term ${labelled.term}`);
}

/** Waits until the Lease mirror names `holder` with at least `minTransitions` leaseTransitions. */
function waitLease(c: PodCluster, holder: string, minTransitions: number): Promise<{ transitions: number }> {
  return waitUntil(`Lease ${LEASE} held by ${holder} with leaseTransitions >= ${minTransitions}`, () => {
    const spec = (c.k8s.leases.get(LEASE, NAMESPACE)?.spec ?? {}) as { holderIdentity?: string; leaseTransitions?: number };
    const transitions = spec.leaseTransitions ?? 0;
    if (spec.holderIdentity !== holder || transitions < minTransitions) throw new Error(`holder ${spec.holderIdentity ?? 'none'}, transitions ${transitions}`);
    return { transitions };
  });
}

describe('leader labels with real processes (dnsmasq discovery, API double)', () => {
  const suite = e2eSuite();

  it(`converge on the leader after start and after kill -9 of the leader (${SAMPLES} times), with a LeaderElected event`, async (t) => {
    const c = await suite.scenario({ name: 'labels', env: { RAFTLET_LEASE_NAME: LEASE } });
    await c.publish(ORDINALS);
    await Promise.all(ORDINALS.map((o) => c.start(o)));
    let leader = await c.waitForLeader();
    await c.waitLabelsConverged(leader.id, leader.term, IDS);
    await waitUntil(`a LeaderElected event on ${leader.id}`, () => c.leaderElectedEvents(leader.id).some((e) => e.message.includes(`term ${leader.term}`)));
    let transitions = (await waitLease(c, leader.id, 0)).transitions;
    // Another controller labels a pod while raftlet runs: its label must survive raftlet's writes.
    c.k8s.pods.update('raftlet-0', (pod) => {
      ((pod.metadata as { labels: Record<string, string> }).labels)['example.com/tier'] = 'gold';
    });

    const samples: number[] = [];
    for (let sample = 1; sample <= SAMPLES; sample++) {
      const old = leader;
      const killedAt = Date.now();
      await c.kill9(old.ordinal);
      const labelled = await waitNewLeaderLabels(c, old.id, old.term);
      samples.push(labelled.at - killedAt);
      // The labelled pod is the leader the survivors agree on, in the labelled term.
      const now = await c.waitForLeader({ among: ORDINALS.filter((o) => o !== old.ordinal) });
      assertSameLeader(now, labelled);
      await waitUntil(`a LeaderElected event on ${now.id} for term ${now.term}`, () =>
        c.leaderElectedEvents(now.id).some((e) => e.message.includes(`term ${now.term}`)),
      );
      transitions = (await waitLease(c, now.id, transitions + 1)).transitions;
      t.diagnostic(`sample ${sample}: killed ${old.id} (term ${old.term}); labels on ${now.id} (term ${now.term}) after ${labelled.at - killedAt} ms`);
      await c.start(old.ordinal);
      leader = await c.waitForLeader();
      assert.ok(c.bootstrapCount(old.ordinal) <= 1, `${old.id} restarted with data and did not bootstrap again`);
      // The restart must not move the label (pre-vote: the returning pod does not disrupt).
      await c.waitLabelsConverged(leader.id, leader.term, IDS);
    }
    t.diagnostic(`label convergence after kill -9 of the leader: median ${median(samples)} ms; samples ${samples.join(', ')} ms (election timeout 500 ms, heartbeat 50 ms)`);

    for (const [name, pod] of c.podLabels()) {
      for (const [k, v] of Object.entries(FOREIGN_LABELS)) assert.equal(pod.labels[k], v, `${name} keeps label ${k}`);
      assert.equal(pod.labels['statefulset.kubernetes.io/pod-name'], name);
      for (const [k, v] of Object.entries(FOREIGN_ANNOTATIONS)) assert.equal(pod.annotations[k], v, `${name} keeps annotation ${k}`);
    }
    assert.equal(c.podLabels().get('raftlet-0')?.labels['example.com/tier'], 'gold', 'a label set by another controller mid-run survives');
    assert.equal(c.podLabels().get('raftlet-3')?.labels[ROLE_LABEL], undefined, 'a pod that is not a member is not labelled');
    assert.deepEqual(c.podWriteViolations(), []);
  });

  it('SIGTERM on the leader: it hands over, exits 0, and the labels follow the new leader', async (t) => {
    const c = await suite.scenario({ name: 'sigterm' });
    await c.publish(ORDINALS);
    await Promise.all(ORDINALS.map((o) => c.start(o)));
    const old = await c.waitForLeader();
    await c.waitLabelsConverged(old.id, old.term, IDS);
    const stoppedAt = Date.now();
    assert.equal(await c.sigterm(old.ordinal), 0);
    const exitedMs = Date.now() - stoppedAt;
    const labelled = await waitNewLeaderLabels(c, old.id, old.term);
    const now = await c.waitForLeader({ among: ORDINALS.filter((o) => o !== old.ordinal) });
    assertSameLeader(now, labelled);
    assert.match(c.logText(old.ordinal), /handed leadership over before stopping/);
    assert.deepEqual(c.podWriteViolations(), []);
    t.diagnostic(`SIGTERM on ${old.id}: exited 0 after ${exitedMs} ms; labels on ${now.id} (term ${now.term}) ${labelled.at - stoppedAt} ms after the signal`);
  });
});
