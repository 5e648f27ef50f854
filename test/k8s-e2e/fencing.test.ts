// Issue 4 / SPEC §7, term fencing with real processes: a leader of an older term cannot overwrite a
// label written in a newer term. Two ways to get a stale writer: a leader frozen (SIGSTOP) with a
// pod read in flight while a successor takes over, so the read returns the newer term; and a pod
// annotated by hand with a term above the leader's.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { e2eSuite, podId, ROLE_LABEL, TERM_ANNOTATION, waitUntil } from './harness.ts';

const ORDINALS = [0, 1, 2];
const IDS = ORDINALS.map(podId);
/** The labeler's default reconcile interval (src/kubernetes/labeler.ts). */
const LABELER_RECONCILE_MS = 5_000;
/** How long the double holds the stale leader's pod read: long enough for a successor to label
 * the pods, short enough to stay within raftlet's 5 s Kubernetes call timeout. */
const HELD_READ_MS = 2_500;

describe('term-fenced labels with real processes (dnsmasq discovery, API double)', () => {
  const suite = e2eSuite();

  it('a stale leader whose pod read was answered after a newer term labelled the pods cannot overwrite them', async (t) => {
    const c = await suite.scenario({ name: 'stale-leader' });
    await c.publish(ORDINALS);
    await Promise.all(ORDINALS.map((o) => c.start(o)));
    const stale = await c.waitForLeader();
    await c.waitLabelsConverged(stale.id, stale.term, IDS);

    // The stale leader's next periodic pass reads a pod; the API double holds that read, the
    // leader is frozen meanwhile, a successor takes over and labels every pod in its newer term,
    // and only then does the old read come back: a leader that did not compare terms would now
    // PATCH with a fresh resourceVersion and win.
    const fromRequest = c.k8s.requests.length;
    c.k8s.faults.delay(HELD_READ_MS, { times: 1, match: { verb: 'get', resource: 'pods' } });
    const held = await waitUntil(`${stale.id}'s periodic pass to read a pod`, () =>
      c.k8s.requests.slice(fromRequest).find((r) => r.verb === 'get' && r.resource === 'pods' && r.status === 0),
      { timeoutMs: LABELER_RECONCILE_MS * 3, intervalMs: 2 },
    );
    c.sigstop(stale.ordinal);
    const others = ORDINALS.filter((o) => o !== stale.ordinal);
    const successor = await c.waitForLeader({ among: others, not: stale.id });
    await c.waitLabelsConverged(successor.id, successor.term, IDS);
    await waitUntil('the held read to be answered', () => held.status !== 0);
    const resumedAfterMs = Date.now() - held.at;
    c.sigcont(stale.ordinal);

    await waitUntil(
      `${stale.id} (term ${stale.term}) to act on its read of ${held.name} (resumed ${resumedAfterMs} ms after the read; its API calls time out after 5000 ms)`,
      async () => (await c.labelUpdates(stale.ordinal, 'fenced')) > 0 || c.podWriteViolations().length > 0,
      { timeoutMs: 10_000 },
    );
    assert.deepEqual(c.podWriteViolations(), [], 'no label of the newer term was overwritten');
    // Usually on the held read; on a loaded machine the read may time out first (5 s), and the
    // stale leader's retry finds the newer term on another pod: fenced either way.
    assert.match(c.logText(stale.ordinal), new RegExp(`not labelling pod raftlet-\\d (leader|follower): it carries raftlet\\.io/term=\\d+, newer than our term ${stale.term}\\b`));
    const leader = await c.waitForLeader({ among: ORDINALS });
    await c.waitLabelsConverged(leader.id, leader.term, IDS);
    assert.deepEqual(c.podWriteViolations(), []);
    t.diagnostic(`stale ${stale.id} (term ${stale.term}) read ${held.name}, frozen; ${successor.id} labelled term ${successor.term}; resumed ${resumedAfterMs} ms after the read: fenced ${await c.labelUpdates(stale.ordinal, 'fenced')} time(s)`);
  });

  it('a pod annotated with a higher term than the leader\'s is not overwritten (counted as fenced); a hand-changed label of the same term is corrected', async () => {
    const c = await suite.scenario({ name: 'higher-term' });
    await c.publish(ORDINALS);
    await Promise.all(ORDINALS.map((o) => c.start(o)));
    const leader = await c.waitForLeader();
    await c.waitLabelsConverged(leader.id, leader.term, IDS);
    const victim = IDS.find((id) => id !== leader.id) ?? 'raftlet-0';
    const fencedBefore = await c.labelUpdates(leader.ordinal, 'fenced');
    const fromRequest = c.k8s.requests.length;

    // As a leader of a later term would leave it: labelled leader, annotated with its term.
    const newer = leader.term + 1000;
    c.k8s.pods.update(victim, (pod) => {
      const meta = pod.metadata as { labels: Record<string, string>; annotations: Record<string, string> };
      meta.labels[ROLE_LABEL] = 'leader';
      meta.annotations[TERM_ANNOTATION] = String(newer);
    });
    await waitUntil(`${leader.id} to refuse to relabel ${victim} (fenced)`, async () => (await c.labelUpdates(leader.ordinal, 'fenced')) > fencedBefore, {
      timeoutMs: 30_000,
    });
    const pod = c.podLabels().get(victim);
    assert.equal(pod?.role, 'leader');
    assert.equal(pod?.term, String(newer));
    const patched = c.k8s.requests.slice(fromRequest).filter((r) => r.method === 'PATCH' && r.name === victim && r.status === 200);
    assert.deepEqual(patched, [], `no successful PATCH of ${victim} after its term went to ${newer}`);

    // What the log line tells the operator to do (kubectl annotate pod X raftlet.io/term-): then
    // the leader relabels the pod.
    assert.match(c.logText(leader.ordinal), new RegExp(`kubectl annotate pod ${victim} raftlet\\.io/term-`));
    const fromClear = c.k8s.requests.length;
    c.k8s.pods.update(victim, (pod) => {
      delete (pod.metadata as { annotations: Record<string, string> }).annotations[TERM_ANNOTATION];
    });
    await c.waitLabelsConverged(leader.id, leader.term, IDS);

    // A label changed by hand without a newer term is put right by the leader's periodic pass.
    c.k8s.pods.update(victim, (pod) => {
      (pod.metadata as { labels: Record<string, string> }).labels[ROLE_LABEL] = 'leader';
    });
    await c.waitLabelsConverged(leader.id, leader.term, IDS);
    assert.deepEqual(c.podWriteViolations(fromClear), []);
  });
});
