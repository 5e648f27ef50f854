// SIGTERM on a pod being scaled away (src/run/leave.ts), with a stand-in node and peer client:
// it stays on a restart, an unreadable API or a scale to zero; it leaves once the leader's
// committed configuration no longer holds it; and while it waits (a transfer refused because one
// is already under way, say) it never starves the event loop the transfer needs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NodeStatus } from '../../src/api/ops.ts';
import type { ScaleVerdict } from '../../src/kubernetes/scale.ts';
import type { Member, RaftStatus, Role } from '../../src/raft/types.ts';
import { handOverBeforeStopping, leaveIfScaledAway, stayingTarget, type HandingNode, type LeaderAsker, type LeavingNode } from '../../src/run/leave.ts';
import pino from 'pino';

const url = (id: string): string => `http://${id}:7070`;
const member = (id: string): Member => ({ id, url: url(id), voter: true });
const silent = pino({ level: 'silent' });
const desired = { statefulSet: 'raftlet', replicas: 1 };

function raftStatus(id: string, role: Role, members: readonly Member[], leader: string | null): RaftStatus {
  return {
    id,
    role,
    term: 3,
    votedFor: null,
    leader,
    commitIndex: 10,
    lastLogIndex: 10,
    lastLogTerm: 3,
    firstLogIndex: 1,
    snapshotIndex: 0,
    members,
    transferee: null,
    progress: role === 'leader' ? members.filter((m) => m.id !== id).map((m) => ({ id: m.id, voter: true, matchIndex: m.id === 'raftlet-1' ? 10 : 9, nextIndex: 11, state: 'replicate', recentActive: true, appHealth: 'unchecked' })) : [],
  };
}

function nodeStatus(s: RaftStatus): NodeStatus {
  return { id: s.id, role: s.role === 'precandidate' ? 'candidate' : s.role, term: s.term, leader: s.leader, commitIndex: s.commitIndex, appliedIndex: s.commitIndex, lastLogIndex: s.lastLogIndex, members: s.members };
}

function fakeNode(s: () => RaftStatus, transfer: LeavingNode['transferLeadership'], contactOrder: string[] = []): LeavingNode {
  return {
    id: s().id,
    status: () => nodeStatus(s()),
    raftStatus: s,
    contactOrder: () => contactOrder,
    leader: () => {
      const leader = s().leader;
      return leader === null ? null : { id: leader, url: url(leader), term: s().term };
    },
    members: () => s().members,
    transferLeadership: transfer,
  };
}

const noPeers: LeaderAsker = { status: () => Promise.reject(new Error('no peers in this test')) };
const scaledAway = (graceMs: number): ScaleVerdict => ({ kind: 'scaledAway', desired, ordinal: 2, graceMs });

describe('leaveIfScaledAway', () => {
  const three = ['raftlet-0', 'raftlet-1', 'raftlet-2'].map(member);
  const refuse: LeavingNode['transferLeadership'] = () => Promise.reject(new Error('must not be called'));

  it('stays on a restart, on an unreadable API and on a scale to zero', async () => {
    const node = fakeNode(() => raftStatus('raftlet-2', 'follower', three, 'raftlet-0'), refuse);
    const base = { node, peers: noPeers, startedAt: Date.now(), electionTimeoutMs: 500, logger: silent };
    assert.equal(await leaveIfScaledAway({ ...base, verdict: { kind: 'staying', desired: { statefulSet: 'raftlet', replicas: 3 }, ordinal: 2, graceMs: 30_000 } }), 'stayed');
    assert.equal(await leaveIfScaledAway({ ...base, verdict: { kind: 'unknown', reason: 'forbidden', graceMs: 30_000 } }), 'stayed');
    assert.equal(await leaveIfScaledAway({ ...base, verdict: { kind: 'scaledAway', desired: { statefulSet: 'raftlet', replicas: 0 }, ordinal: 2, graceMs: 30_000 } }), 'stayed');
  });

  it('leaves once the leader has committed past the configuration without it', async () => {
    const node = fakeNode(() => raftStatus('raftlet-2', 'follower', three, 'raftlet-0'), refuse);
    let asked = 0;
    const peers: LeaderAsker = {
      status: async () => {
        asked++;
        // First still a member; then removed but not yet committed; then committed.
        if (asked === 1) return nodeStatus(raftStatus('raftlet-0', 'leader', three, 'raftlet-0'));
        const without = three.filter((m) => m.id !== 'raftlet-2');
        return { ...nodeStatus(raftStatus('raftlet-0', 'leader', without, 'raftlet-0')), lastLogIndex: 12, commitIndex: asked === 2 ? 11 : 12 };
      },
    };
    assert.equal(await leaveIfScaledAway({ node, peers, verdict: scaledAway(30_000), startedAt: Date.now(), electionTimeoutMs: 500, logger: silent }), 'left');
    assert.equal(asked, 3);
  });

  it('as a leader whose transfer is refused (one under way), waits without starving the event loop, until the grace period ends', async () => {
    let attempts = 0;
    const node = fakeNode(() => raftStatus('raftlet-2', 'leader', three, 'raftlet-2'), () => {
      attempts++;
      return Promise.reject(new Error('a transfer to raftlet-0 is already in progress'));
    });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const started = Date.now();
    const result = await leaveIfScaledAway({ node, peers: noPeers, verdict: scaledAway(1_000), startedAt: started, electionTimeoutMs: 500, logger: silent });
    clearInterval(timer);
    assert.equal(result, 'timedOut');
    assert.ok(ticks >= 20, `timers ran while it waited (${ticks} ticks in ${Date.now() - started} ms)`);
    assert.ok(attempts >= 2 && attempts < 50, `asked again now and then, not in a loop (${attempts} attempts)`);
  });

  it('hands over to the most up-to-date voter that stays, never to another pod scaled away', () => {
    const node = fakeNode(() => raftStatus('raftlet-2', 'leader', three, 'raftlet-2'), refuse);
    // raftlet-1 is further ahead, but scaled away too.
    assert.equal(stayingTarget(node, desired), 'raftlet-0');
    assert.equal(stayingTarget(node, null), null);
  });

  it('among voters that stay and are equally up to date, hands over to the one connected longest', () => {
    const five = ['raftlet-0', 'raftlet-1', 'raftlet-2', 'raftlet-3', 'raftlet-4'].map(member);
    const level = (): RaftStatus => {
      const s = raftStatus('raftlet-4', 'leader', five, 'raftlet-4');
      return { ...s, progress: s.progress.map((p) => ({ ...p, matchIndex: 10 })) };
    };
    const stay3 = { statefulSet: 'raftlet', replicas: 3 };
    // raftlet-0 restarted last (its stream is the newest); raftlet-3, longest connected, is scaled away.
    assert.equal(stayingTarget(fakeNode(level, refuse, ['raftlet-3', 'raftlet-2', 'raftlet-1', 'raftlet-0']), stay3), 'raftlet-2');
    assert.equal(stayingTarget(fakeNode(level, refuse, ['raftlet-3', 'raftlet-1', 'raftlet-0']), stay3), 'raftlet-1');
    // No stream known: the first in the leader's progress order, as before.
    assert.equal(stayingTarget(fakeNode(level, refuse), stay3), 'raftlet-0');
  });
});

describe('handOverBeforeStopping (SIGTERM)', () => {
  const three = ['raftlet-0', 'raftlet-1', 'raftlet-2'].map(member);
  type Call = { to: string | null; reason: string | undefined };

  /** A node whose status the test sets; it records the transfers asked of it and the waits. */
  function handing(initial: RaftStatus): { node: HandingNode; set: (s: RaftStatus) => void; calls: Call[]; waits: Array<[string | null, number]> } {
    let status = initial;
    const calls: Call[] = [];
    const waits: Array<[string | null, number]> = [];
    const node: HandingNode = {
      id: initial.id,
      raftStatus: () => status,
      contactOrder: () => [],
      members: () => status.members,
      transferLeadership: async (to, _deadline, reason) => {
        calls.push({ to, reason });
        return { leader: to ?? 'raftlet-0', term: status.term + 1 };
      },
      waitLeaderChange: async (seen, term) => {
        waits.push([seen, term]);
        return null;
      },
    };
    return { node, set: (s) => { status = s; }, calls, waits };
  }
  const options = (node: HandingNode, verdict: Promise<ScaleVerdict> | null) =>
    ({ node, verdict, latestDesired: () => null, electionTimeoutMs: 500, logger: silent, verdictWaitMs: 200 });

  it('without Kubernetes, a leader asks for the transfer in the same turn (TimeoutNow is not held up)', () => {
    const h = handing(raftStatus('raftlet-2', 'leader', three, 'raftlet-2'));
    void handOverBeforeStopping(options(h.node, null));
    assert.deepEqual(h.calls, [{ to: null, reason: 'shutdown' }]);
  });

  it('to a member that stays, by the verdict when the API answers in time, else by the replicas last read', async () => {
    const h = handing(raftStatus('raftlet-2', 'leader', three, 'raftlet-2'));
    await handOverBeforeStopping(options(h.node, Promise.resolve(scaledAway(30_000))));
    const never = new Promise<ScaleVerdict>(() => {});
    await handOverBeforeStopping({ ...options(h.node, never), latestDesired: () => desired });
    // raftlet-1 is further ahead, but scaled away with raftlet-2 (1 replica wanted).
    assert.deepEqual(h.calls, [{ to: 'raftlet-0', reason: 'shutdown' }, { to: 'raftlet-0', reason: 'shutdown' }]);
  });

  it('asks nothing once leadership moved on while the API was asked (else the new leader might pick this member back)', async () => {
    // CI saw it: the reconciler handed this scaled-away leader's role to raftlet-0 during the
    // verdict wait; the hand-off then forwarded a transfer without a target to raftlet-0, which
    // gave leadership back to raftlet-2, the member on its way out.
    const h = handing(raftStatus('raftlet-2', 'leader', three, 'raftlet-2'));
    let answer: (v: ScaleVerdict) => void = () => {};
    const verdict = new Promise<ScaleVerdict>((resolve) => { answer = resolve; });
    const done = handOverBeforeStopping(options(h.node, verdict));
    h.set({ ...raftStatus('raftlet-2', 'follower', three, 'raftlet-0'), term: 4 });
    answer(scaledAway(30_000));
    await done;
    assert.deepEqual(h.calls, []);
  });

  it('lets a transfer already under way finish, seen at once or after the verdict wait, and asks for none', async () => {
    const under = { ...raftStatus('raftlet-2', 'leader', three, 'raftlet-2'), transferee: 'raftlet-0' };
    const h = handing(under);
    await handOverBeforeStopping(options(h.node, Promise.resolve(scaledAway(30_000))));
    const later = handing(raftStatus('raftlet-2', 'leader', three, 'raftlet-2'));
    const done = handOverBeforeStopping(options(later.node, new Promise<ScaleVerdict>(() => {})));
    later.set(under);
    await done;
    assert.deepEqual([h.calls, later.calls], [[], []]);
    assert.deepEqual([h.waits, later.waits], [[['raftlet-2', 3]], [['raftlet-2', 3]]]);
  });

  it('a follower, and a leader with no other voter, hand nothing over', async () => {
    const follower = handing(raftStatus('raftlet-2', 'follower', three, 'raftlet-0'));
    const alone = handing(raftStatus('raftlet-0', 'leader', [member('raftlet-0')], 'raftlet-0'));
    await handOverBeforeStopping(options(follower.node, null));
    await handOverBeforeStopping(options(alone.node, Promise.resolve(scaledAway(30_000))));
    assert.deepEqual([follower.calls, alone.calls, follower.waits, alone.waits], [[], [], [], []]);
  });
});
