// The leader's membership reconciliation, driven through a StatefulSet scale 3 → 5 → 3 with a
// small model of the cluster, plus the guard rails (one change at a time, self, quorum, DNS outage).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Peer } from '../../src/kubernetes/discovery.ts';
import { AbsenceTracker, planMembershipChange, type MembershipDecision, type ReconcileInput } from '../../src/kubernetes/membership.ts';
import type { ConfigChange, Member } from '../../src/raft/types.ts';

const url = (id: string): string => `http://${id}.raftlet.ns.svc:7070`;
const peer = (id: string): Peer => ({ id, url: url(id) });
const voter = (id: string): Member => ({ id, url: url(id), voter: true });
const learner = (id: string): Member => ({ id, url: url(id), voter: false });
const pods = (n: number): Peer[] => Array.from({ length: n }, (_, i) => peer(`raftlet-${i}`));

function input(over: Partial<ReconcileInput> & Pick<ReconcileInput, 'members'>): ReconcileInput {
  return {
    selfId: 'raftlet-0',
    lastLogIndex: 1000,
    progress: over.members.filter((m) => m.id !== (over.selfId ?? 'raftlet-0')).map((m) => ({ id: m.id, matchIndex: 1000, recentActive: true })),
    discovered: over.members.map((m) => peer(m.id)),
    absentForMs: new Map(),
    changeInProgress: false,
    ...over,
  };
}

function apply(members: readonly Member[], change: ConfigChange): Member[] {
  switch (change.kind) {
    case 'addLearner':
      return [...members, { id: change.id, url: change.url, voter: false }];
    case 'promote':
      return members.map((m) => (m.id === change.id ? { ...m, voter: true } : m));
    case 'remove':
      return members.filter((m) => m.id !== change.id);
    default: {
      const never: never = change;
      return never;
    }
  }
}

function changeOf(decision: MembershipDecision): ConfigChange {
  assert.equal(decision.kind, 'change', `expected a change, got ${decision.kind}: ${decision.reason}`);
  return (decision as Extract<MembershipDecision, { kind: 'change' }>).change;
}

describe('planMembershipChange: scale 3 → 5 → 3', () => {
  it('adds learners, promotes them once caught up, then removes absent members one at a time', () => {
    let members: Member[] = ['raftlet-0', 'raftlet-1', 'raftlet-2'].map(voter);
    const match = new Map<string, number>([['raftlet-1', 1000], ['raftlet-2', 1000]]);
    const decide = (discovered: Peer[], absentForMs = new Map<string, number>()): MembershipDecision =>
      planMembershipChange(
        input({
          members,
          discovered,
          absentForMs,
          progress: members.filter((m) => m.id !== 'raftlet-0').map((m) => ({ id: m.id, matchIndex: match.get(m.id) ?? 0, recentActive: true })),
        }),
      );

    // Scale up: raftlet-3 and raftlet-4 appear in DNS.
    const steps: string[] = [];
    let decision = decide(pods(5));
    assert.deepEqual(changeOf(decision), { kind: 'addLearner', id: 'raftlet-3', url: url('raftlet-3') });
    members = apply(members, changeOf(decision));
    steps.push('add 3');

    // raftlet-3 is far behind: no promotion yet, but raftlet-4 can be added meanwhile.
    decision = decide(pods(5));
    assert.deepEqual(changeOf(decision), { kind: 'addLearner', id: 'raftlet-4', url: url('raftlet-4') });
    members = apply(members, changeOf(decision));
    steps.push('add 4');

    decision = decide(pods(5));
    assert.equal(decision.kind, 'none');
    assert.match(decision.reason, /learner raftlet-3 is 1000 entries behind/);

    // Within the threshold (100 entries by default) counts as caught up.
    match.set('raftlet-3', 950);
    decision = decide(pods(5));
    assert.deepEqual(changeOf(decision), { kind: 'promote', id: 'raftlet-3' });
    members = apply(members, changeOf(decision));
    steps.push('promote 3');

    match.set('raftlet-4', 1000);
    decision = decide(pods(5));
    assert.deepEqual(changeOf(decision), { kind: 'promote', id: 'raftlet-4' });
    members = apply(members, changeOf(decision));
    steps.push('promote 4');

    assert.equal(decide(pods(5)).kind, 'none');
    assert.deepEqual(members.map((m) => `${m.id}:${m.voter}`), ['raftlet-0:true', 'raftlet-1:true', 'raftlet-2:true', 'raftlet-3:true', 'raftlet-4:true']);

    // Scale down: 3 and 4 vanish from DNS; nothing happens within the grace period.
    decision = decide(pods(3), new Map([['raftlet-3', 10_000], ['raftlet-4', 10_000]]));
    assert.equal(decision.kind, 'none');
    assert.match(decision.reason, /raftlet-4 missing from DNS for 10 s of 30 s grace/);

    // After the grace: the highest ordinal first, one at a time.
    const gone = new Map([['raftlet-3', 31_000], ['raftlet-4', 31_000]]);
    decision = decide(pods(3), gone);
    assert.deepEqual(changeOf(decision), { kind: 'remove', id: 'raftlet-4' });
    members = apply(members, changeOf(decision));
    steps.push('remove 4');
    decision = decide(pods(3), gone);
    assert.deepEqual(changeOf(decision), { kind: 'remove', id: 'raftlet-3' });
    members = apply(members, changeOf(decision));
    steps.push('remove 3');

    assert.equal(decide(pods(3), gone).kind, 'none');
    assert.deepEqual(members.map((m) => m.id), ['raftlet-0', 'raftlet-1', 'raftlet-2']);
    assert.deepEqual(steps, ['add 3', 'add 4', 'promote 3', 'promote 4', 'remove 4', 'remove 3']);
  });
});

describe('planMembershipChange guard rails', () => {
  const five = ['raftlet-0', 'raftlet-1', 'raftlet-2', 'raftlet-3', 'raftlet-4'].map(voter);

  it('makes no second change while one is uncommitted', () => {
    const decision = planMembershipChange(input({ members: five.slice(0, 3), discovered: pods(5), changeInProgress: true }));
    assert.equal(decision.kind, 'none');
    assert.match(decision.reason, /one change at a time/);
  });

  it('never removes the leader itself: it asks to transfer leadership first', () => {
    const decision = planMembershipChange(
      input({ selfId: 'raftlet-4', members: five, discovered: pods(4), absentForMs: new Map([['raftlet-4', 60_000]]) }),
    );
    assert.equal(decision.kind, 'transferFirst');
    assert.match(decision.reason, /transfer leadership/);
  });

  it('refuses a removal that would leave fewer than a majority of voters responding', () => {
    // 4 voters with 1, 2 and 3 silent: no change could commit, so removing the absent 3 waits.
    const members = five.slice(0, 4);
    const decision = planMembershipChange(
      input({
        members,
        discovered: pods(3),
        absentForMs: new Map([['raftlet-3', 60_000]]),
        progress: [
          { id: 'raftlet-1', matchIndex: 1000, recentActive: false },
          { id: 'raftlet-2', matchIndex: 1000, recentActive: false },
          { id: 'raftlet-3', matchIndex: 1000, recentActive: false },
        ],
      }),
    );
    assert.equal(decision.kind, 'refused');
    assert.match(decision.reason, /remove raftlet-3 refused: only 1 of 4 voters are responding/);
  });

  it('refuses a removal whose new configuration would lack a live majority', () => {
    // 5 voters; 3 and 4 silent; 2 is missing from DNS yet still responding (DNS lag). Removing 2
    // leaves {0,1,3,4} with 2 of 4 responding: refused, although 3 of 5 respond now.
    const progress = [
      { id: 'raftlet-1', matchIndex: 1000, recentActive: true },
      { id: 'raftlet-2', matchIndex: 1000, recentActive: true },
      { id: 'raftlet-3', matchIndex: 1000, recentActive: false },
      { id: 'raftlet-4', matchIndex: 1000, recentActive: false },
    ];
    const refused = planMembershipChange(
      input({
        members: five,
        discovered: pods(5).filter((p) => p.id !== 'raftlet-2'),
        absentForMs: new Map([['raftlet-2', 60_000]]),
        progress,
      }),
    );
    assert.equal(refused.kind, 'refused');
    assert.match(refused.reason, /remove raftlet-2 refused: it would leave 2 responding voters of 4/);
    // Removing a silent one instead (3) leaves {0,1,2,4} with 3 of 4 responding: allowed.
    const allowed = planMembershipChange(
      input({
        members: five,
        discovered: pods(5).filter((p) => p.id !== 'raftlet-3'),
        absentForMs: new Map([['raftlet-3', 60_000]]),
        progress,
      }),
    );
    assert.deepEqual(changeOf(allowed), { kind: 'remove', id: 'raftlet-3' });
  });

  it('does not remove members while DNS shows less than a majority of the voters', () => {
    const decision = planMembershipChange(
      input({
        members: five.slice(0, 3),
        discovered: [peer('raftlet-0')],
        absentForMs: new Map([['raftlet-1', 60_000], ['raftlet-2', 60_000]]),
      }),
    );
    assert.equal(decision.kind, 'refused');
    assert.match(decision.reason, /DNS shows only 1 of 3 voters/);
  });

  it('removes an absent learner before any voter', () => {
    const decision = planMembershipChange(
      input({
        members: [...five.slice(0, 4), learner('raftlet-5')],
        discovered: pods(3),
        absentForMs: new Map([['raftlet-3', 60_000], ['raftlet-5', 60_000]]),
      }),
    );
    assert.deepEqual(changeOf(decision), { kind: 'remove', id: 'raftlet-5' });
  });

  it('does not promote a learner that is caught up but not responding, nor one missing from DNS', () => {
    const members = [...five.slice(0, 3), learner('raftlet-3')];
    const silent = planMembershipChange(
      input({ members, progress: [{ id: 'raftlet-1', matchIndex: 1000, recentActive: true }, { id: 'raftlet-2', matchIndex: 1000, recentActive: true }, { id: 'raftlet-3', matchIndex: 1000, recentActive: false }] }),
    );
    assert.equal(silent.kind, 'none');
    assert.match(silent.reason, /not responding/);
    const missing = planMembershipChange(input({ members, discovered: pods(3) }));
    assert.equal(missing.kind, 'none');
  });
});

describe('AbsenceTracker', () => {
  it('measures how long each member has been missing from successful lookups', () => {
    const tracker = new AbsenceTracker();
    const members = ['raftlet-0', 'raftlet-1', 'raftlet-2'];
    tracker.observe(members, members, 0);
    assert.deepEqual([...tracker.absentForMs(0)], []);
    tracker.observe(members, ['raftlet-0', 'raftlet-1'], 1000);
    tracker.observe(members, ['raftlet-0', 'raftlet-1'], 5000);
    assert.deepEqual([...tracker.absentForMs(31_000)], [['raftlet-2', 30_000]]);
    // Back in DNS: the clock restarts from zero next time.
    tracker.observe(members, members, 32_000);
    assert.deepEqual([...tracker.absentForMs(40_000)], []);
    // Removed from the configuration: forgotten.
    tracker.observe(members, ['raftlet-0'], 41_000);
    tracker.observe(['raftlet-0', 'raftlet-1'], ['raftlet-0'], 42_000);
    assert.deepEqual([...tracker.absentForMs(50_000)], [['raftlet-1', 9000]]);
  });
});
