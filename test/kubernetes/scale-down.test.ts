// Scale-down by desired replicas (issue 11): the leader removes the pods a StatefulSet is scaling
// away, highest ordinal first, one change at a time, without losing quorum; it hands leadership to
// a member that stays when it is scaled away itself; restarting pods are never removed; nothing
// is removed on a stale reading or a scale to zero. Driven through a small model of the cluster.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Peer } from '../../src/kubernetes/discovery.ts';
import { planMembershipChange, type MembershipDecision, type ReconcileInput } from '../../src/kubernetes/membership.ts';
import { graceMsOf, isScaledAway, isStatefulSetPod, ownerStatefulSet } from '../../src/kubernetes/scale.ts';
import { applyConfigChange } from '../../src/raft/membership.ts';
import type { ConfigChange, Member } from '../../src/raft/types.ts';

const url = (id: string): string => `http://${id}.raftlet.ns.svc:7070`;
const id = (o: number): string => `raftlet-${o}`;
const peer = (o: number): Peer => ({ id: id(o), url: url(id(o)) });
const voter = (o: number): Member => ({ id: id(o), url: url(id(o)), voter: true });
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

function plan(over: Partial<ReconcileInput> & Pick<ReconcileInput, 'members'>): MembershipDecision {
  const selfId = over.selfId ?? 'raftlet-0';
  return planMembershipChange({
    selfId,
    lastLogIndex: 500,
    progress: over.members.filter((m) => m.id !== selfId).map((m) => ({ id: m.id, matchIndex: 500, recentActive: true })),
    discovered: over.members.map((m) => ({ id: m.id, url: m.url })),
    absentForMs: new Map(),
    changeInProgress: false,
    ...over,
  });
}

/** The configuration after a change the planner asked for (the core's own rule). */
function apply(members: readonly Member[], change: ConfigChange, leader = 'raftlet-0'): Member[] {
  const next = applyConfigChange(members, change, leader);
  if ('error' in next) throw new Error(next.error);
  return [...next.members];
}

const desired = (replicas: number, fresh = true) => ({ statefulSet: 'raftlet', replicas, fresh });

describe('scale.ts', () => {
  it('tells the pods of the StatefulSet at or above the desired replicas', () => {
    assert.equal(isScaledAway('raftlet-2', { statefulSet: 'raftlet', replicas: 2 }), true);
    assert.equal(isScaledAway('raftlet-1', { statefulSet: 'raftlet', replicas: 2 }), false);
    assert.equal(isScaledAway('raftlet-10', { statefulSet: 'raftlet', replicas: 9 }), true);
    assert.equal(isScaledAway('other-5', { statefulSet: 'raftlet', replicas: 1 }), false, 'another set is never scaled away by this one');
    assert.equal(isScaledAway('raftlet-05', { statefulSet: 'raftlet', replicas: 1 }), false, 'not a StatefulSet pod name');
    assert.equal(isStatefulSetPod('raftlet-x', { statefulSet: 'raftlet' }), false);
  });

  it('finds the StatefulSet owner and the grace period left', () => {
    const pod = {
      metadata: {
        name: 'raftlet-2',
        ownerReferences: [
          { apiVersion: 'v1', kind: 'ConfigMap', name: 'x', uid: '1' },
          { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'orders', uid: '2', controller: true },
        ],
        deletionGracePeriodSeconds: 20,
      },
      spec: { containers: [], terminationGracePeriodSeconds: 60 },
    };
    assert.equal(ownerStatefulSet(pod), 'orders');
    assert.equal(graceMsOf(pod), 20_000, 'a pod being deleted has its deletion grace period');
    assert.equal(graceMsOf({ spec: { containers: [], terminationGracePeriodSeconds: 60 } }), 60_000);
    assert.equal(graceMsOf({}), null);
    assert.equal(ownerStatefulSet({ metadata: { name: 'bare' } }), null);
  });
});

describe('planMembershipChange with desired replicas', () => {
  it('3 → 1: removes raftlet-2, then raftlet-1, one change at a time, ending with a 1-member cluster', () => {
    let members = range(3).map(voter);
    const removed: string[] = [];
    for (let step = 0; step < 5; step++) {
      const decision = plan({ members, desired: desired(1) });
      if (decision.kind === 'none') break;
      assert.equal(decision.kind, 'change', decision.reason);
      const change = (decision as Extract<MembershipDecision, { kind: 'change' }>).change;
      assert.equal(change.kind, 'remove');
      removed.push(change.id);
      members = apply(members, change);
    }
    assert.deepEqual(removed, ['raftlet-2', 'raftlet-1']);
    assert.deepEqual(members.map((m) => m.id), ['raftlet-0']);
  });

  it('removes scaled-away pods before their SIGTERM, while DNS still shows them, and never adds them back', () => {
    const members = range(3).map(voter);
    const decision = plan({ members, desired: desired(2), discovered: range(3).map(peer) });
    assert.equal(decision.kind, 'change');
    assert.match(decision.reason, /raftlet-2 is scaled away \(raftlet wants 2 replicas\)/);
    const after = apply(members, (decision as Extract<MembershipDecision, { kind: 'change' }>).change);
    const next = plan({ members: after, desired: desired(2), discovered: range(3).map(peer) });
    assert.equal(next.kind, 'none', 'raftlet-2 still in DNS (terminating) is not re-added');
  });

  it('a scaled-away leader hands leadership to the most up-to-date member that stays', () => {
    const members = range(3).map(voter);
    const decision = plan({
      selfId: 'raftlet-2',
      members,
      desired: desired(1),
      progress: [
        { id: 'raftlet-0', matchIndex: 490, recentActive: true },
        { id: 'raftlet-1', matchIndex: 500, recentActive: true },
      ],
    });
    assert.equal(decision.kind, 'transferFirst');
    assert.equal((decision as Extract<MembershipDecision, { kind: 'transferFirst' }>).to, 'raftlet-0', 'raftlet-1 is scaled away too');
  });

  it('a scaled-away leader with no responding member that stays keeps leading', () => {
    const decision = plan({
      selfId: 'raftlet-1',
      members: range(2).map(voter),
      desired: desired(1),
      progress: [{ id: 'raftlet-0', matchIndex: 500, recentActive: false }],
    });
    assert.equal(decision.kind, 'none');
    assert.match(decision.reason, /no responding voter that stays/);
  });

  it('never removes a pod below the desired replicas, however long it is gone from DNS (a drain or an eviction)', () => {
    const members = range(3).map(voter);
    const decision = plan({
      members,
      desired: desired(3),
      discovered: [peer(0), peer(2)],
      absentForMs: new Map([['raftlet-1', 10 * 60_000]]),
    });
    assert.equal(decision.kind, 'none', decision.reason);
  });

  it('without a reading of the replicas, falls back to the DNS grace period', () => {
    const members = range(3).map(voter);
    const decision = plan({ members, desired: null, discovered: [peer(0), peer(1)], absentForMs: new Map([['raftlet-2', 31_000]]) });
    assert.equal(decision.kind, 'change');
    assert.match(decision.reason, /missing from DNS/);
  });

  it('a stale reading removes nothing, and a scale to 0 removes nobody', () => {
    const members = range(3).map(voter);
    assert.equal(plan({ members, desired: desired(1, false) }).kind, 'none');
    assert.equal(plan({ members, desired: desired(0) }).kind, 'none');
  });

  it('refuses a removal that would leave too few responding voters', () => {
    const members = range(3).map(voter);
    const decision = plan({
      members,
      desired: desired(2),
      progress: [
        { id: 'raftlet-1', matchIndex: 500, recentActive: false },
        { id: 'raftlet-2', matchIndex: 500, recentActive: true },
      ],
    });
    assert.equal(decision.kind, 'refused');
  });

  it('removes scaled-away learners before voters and neither promotes nor adds scaled-away pods', () => {
    const members = [...range(3).map(voter), { id: id(3), url: url(id(3)), voter: false }];
    const decision = plan({ members, desired: desired(2), discovered: range(5).map(peer) });
    assert.deepEqual((decision as Extract<MembershipDecision, { kind: 'change' }>).change, { kind: 'remove', id: 'raftlet-3' });
  });

  it('property: any scale-down from n to r >= 1 ends with exactly pods 0..r-1, every step keeping a majority of the old voters', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 7 }), fc.integer({ min: 0, max: 6 }), (n, r, leaderOrdinal) => {
        fc.pre(r <= n && leaderOrdinal < n);
        let members = range(n).map(voter);
        let leader = id(leaderOrdinal);
        for (let step = 0; step < 3 * n; step++) {
          const decision = plan({ selfId: leader, members, desired: desired(r) });
          if (decision.kind === 'none') break;
          if (decision.kind === 'transferFirst') {
            assert.ok(decision.to !== null && !isScaledAway(decision.to, { statefulSet: 'raftlet', replicas: r }));
            leader = decision.to;
            continue;
          }
          assert.equal(decision.kind, 'change', decision.reason);
          const change = (decision as Extract<MembershipDecision, { kind: 'change' }>).change;
          assert.equal(change.kind, 'remove');
          assert.notEqual(change.id, leader);
          members = apply(members, change, leader);
        }
        assert.deepEqual(members.map((m) => m.id).sort(), range(r).map(id).sort());
        assert.ok(!isScaledAway(leader, { statefulSet: 'raftlet', replicas: r }));
      }),
    );
  });
});
