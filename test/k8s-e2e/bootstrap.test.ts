// Issue 4, safe bootstrap with real processes: pods discover each other through a real dnsmasq and
// form exactly one cluster whatever order they start in and whatever DNS shows them meanwhile; a
// later pod joins (learner, then voter) instead of bootstrapping; a pod with data never bootstraps
// again.
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { e2eSuite, podId, waitUntil, type ApiStatus, type PodCluster } from './harness.ts';

const FIRST_THREE = [0, 1, 2];

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
}

const memberIds = (s: ApiStatus): string => s.members.map((m) => `${m.id}${m.voter ? '' : '(learner)'}`).sort().join(',');

/**
 * Exactly one cluster among `ordinals`: one leader, every pod agrees on it, its term and the member
 * list; at most one bootstrap per pod; a write on each pod is readable (linearizably) on every other;
 * the pod labels follow.
 */
async function assertOneCluster(t: TestContext, c: PodCluster, ordinals: readonly number[]): Promise<void> {
  const ids = ordinals.map(podId);
  const leader = await c.waitForLeader({ among: ordinals });
  const lists = await waitUntil('every pod to show the same voters', async () => {
    const statuses = await Promise.all(ordinals.map((o) => c.status(o)));
    const got = statuses.map(memberIds);
    if (!got.every((m) => m === [...ids].sort().join(','))) throw new Error(got.join(' | '));
    return statuses;
  });
  assert.ok(lists.every((s) => s.term === leader.term && s.leader === leader.id), `one leader and term: ${JSON.stringify(lists.map((s) => [s.id, s.leader, s.term]))}`);
  for (const o of ordinals) assert.ok(c.bootstrapCount(o) <= 1, `${podId(o)} bootstrapped ${c.bootstrapCount(o)} times`);
  for (const writer of ordinals) {
    await c.putOk(writer, `from-${podId(writer)}`, `written on ${podId(writer)}`);
    for (const reader of ordinals.filter((o) => o !== writer)) {
      assert.equal(await c.getText(reader, `from-${podId(writer)}`), `written on ${podId(writer)}`);
    }
  }
  await c.waitLabelsConverged(leader.id, leader.term, ids);
  assert.deepEqual(c.podWriteViolations(), []);
  t.diagnostic(`leader ${leader.id} in term ${leader.term}; bootstraps ${ordinals.map((o) => `${podId(o)}:${c.bootstrapCount(o)}`).join(' ')}`);
}

/** Waits until the running pods `ordinals` each logged that DNS shows `count` members. */
function waitDiscovered(c: PodCluster, ordinals: readonly number[], count: number): Promise<true> {
  return waitUntil(`pods ${ordinals.map(podId).join(', ')} to discover ${count} member(s)`, () => {
    const behind = ordinals.filter((o) => !c.logText(o).includes(`"msg":"discovered ${count} member(s) through DNS"`));
    if (behind.length > 0) throw new Error(`not yet: ${behind.map(podId).join(', ')}`);
    return true as const;
  });
}

describe('bootstrap from DNS discovery (real raftlet processes, real dnsmasq, API double)', () => {
  const suite = e2eSuite();

  for (const order of permutations(FIRST_THREE)) {
    it(`start order ${order.map(podId).join(' → ')}, each pod in DNS from its start: one cluster`, async (t) => {
      const c = await suite.scenario({ name: `order-${order.join('')}` });
      // As a StatefulSet with publishNotReadyAddresses: a pod appears in DNS when it is created, so
      // the early pods see one, then two members before the third starts.
      const published: number[] = [];
      for (const o of order) {
        published.push(o);
        await c.publish(published);
        await c.start(o);
      }
      await assertOneCluster(t, c, FIRST_THREE);
    });
  }

  it('all pods running before DNS publishes them, then published one by one in reverse order: one cluster', async (t) => {
    const c = await suite.scenario({ name: 'dns-late' });
    await Promise.all(FIRST_THREE.map((o) => c.start(o)));
    const statuses = await Promise.all(FIRST_THREE.map((o) => c.status(o)));
    assert.ok(statuses.every((s) => s.members.length === 0 && s.leader === null), 'nobody forms a cluster while DNS is empty');
    await waitUntil('every pod to say that DNS has no SRV records', () =>
      FIRST_THREE.every((o) => c.logText(o).includes('DNS has no SRV records for _raft._tcp.')),
    );
    for (const published of [[2], [2, 1]]) {
      await c.publish(published);
      await waitDiscovered(c, FIRST_THREE, published.length);
      const now = await Promise.all(FIRST_THREE.map((o) => c.status(o)));
      assert.ok(
        now.every((s) => s.members.length === 0 && s.leader === null),
        `no cluster forms from ${published.length} of 3: ${JSON.stringify(now.map((s) => [s.id, s.members.length, s.leader]))}`,
      );
    }
    await c.publish([2, 1, 0]);
    await assertOneCluster(t, c, FIRST_THREE);
  });

  it('a fourth pod started later joins as a learner and is promoted; pods restarted with data (kill -9) never bootstrap again', async (t) => {
    const c = await suite.scenario({ name: 'join-restart' });
    await c.publish(FIRST_THREE);
    await Promise.all(FIRST_THREE.map((o) => c.start(o)));
    await assertOneCluster(t, c, FIRST_THREE);
    await c.putOk(0, 'before-join', 'kept');

    await c.publish([0, 1, 2, 3]);
    await c.start(3);
    let seenAsLearner = false;
    await waitUntil('raftlet-3 to be a voter on every pod', async () => {
      const statuses = await Promise.all([0, 1, 2, 3].map((o) => c.status(o)));
      if (statuses.some((s) => s.members.some((m) => m.id === 'raftlet-3' && !m.voter))) seenAsLearner = true;
      const got = statuses.map(memberIds);
      if (!got.every((m) => m === 'raftlet-0,raftlet-1,raftlet-2,raftlet-3')) throw new Error(got.join(' | '));
      return true;
    });
    assert.ok(seenAsLearner, 'raftlet-3 was a learner before it became a voter');
    assert.equal(c.bootstrapCount(3), 0, 'raftlet-3 (not among the EXPECT lowest ordinals) never bootstraps');
    const leader = await c.waitForLeader({ among: [0, 1, 2, 3] });
    assert.equal(await c.getText(3, 'before-join'), 'kept');
    await c.waitLabelsConverged(leader.id, leader.term, [0, 1, 2, 3].map(podId));

    // Every pod killed and restarted at once, as after a failure that takes the whole StatefulSet
    // down (labels.test.ts restarts single leaders).
    const bootstrapsBefore = [0, 1, 2, 3].map((o) => c.bootstrapCount(o));
    await Promise.all([0, 1, 2, 3].map((o) => c.kill9(o)));
    await Promise.all([0, 1, 2, 3].map((o) => c.start(o)));
    const after = await c.waitForLeader({ among: [0, 1, 2, 3] });
    assert.ok(after.term > leader.term);
    const statuses = await Promise.all([0, 1, 2, 3].map((o) => c.status(o)));
    assert.deepEqual(statuses.map(memberIds), Array(4).fill('raftlet-0,raftlet-1,raftlet-2,raftlet-3'));
    assert.deepEqual([0, 1, 2, 3].map((o) => c.bootstrapCount(o)), bootstrapsBefore, 'no pod bootstrapped again after a restart with data');
    for (const o of [0, 1, 2, 3]) assert.equal(await c.getText(o, 'before-join'), 'kept');
    await c.putOk(3, 'after-restart', 'yes');
    assert.equal(await c.getText(0, 'after-restart'), 'yes');
    await c.waitLabelsConverged(after.id, after.term, [0, 1, 2, 3].map(podId));
    assert.deepEqual(c.podWriteViolations(), []);
  });

  // Found by this suite (now fixed): RAFTLET_DNS_SERVER was used for the SRV lookup only; the SRV targets went
  // to the system resolver (undici → dns.lookup), which does not know them. In a pod both are the
  // cluster DNS, so this only bites where RAFTLET_DNS_SERVER differs from the system resolver,
  // which is the setting's purpose. The other tests preload dns-lookup-shim.ts to get past it.
  it(
    'peers reach each other through names only RAFTLET_DNS_SERVER knows (no lookup shim)',
    async () => {
      const c = await suite.scenario({ name: 'no-shim', shim: false });
      await c.publish(FIRST_THREE);
      await Promise.all(FIRST_THREE.map((o) => c.start(o)));
      await c.waitForLeader({ timeoutMs: 6_000 });
    },
  );
});
