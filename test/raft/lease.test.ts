// The leader lease (Raft.leaseBasisTick) and the rules it rests on: followers refuse votes for an
// election timeout after hearing from the leader (thesis §4.2.3, §6.2), a deposed or restarted
// member does too, and a transfer voids the lease at both ends. The simulator (test/sim) checks the
// lease end to end under faults; these tests pin each rule on its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { APP_UNHEALTHY_EXTRA_TIMEOUTS } from '../../src/raft/raft.ts';
import type { VoteResponse } from '../../src/raft/types.ts';
import { ELECTION_TICKS, HEARTBEAT_TICKS, Network, and, from, ofKind, to } from './harness.ts';

const IDS = ['n1', 'n2', 'n3'];

function voteAnswers(net: Network, voter: string, candidate: string): VoteResponse[] {
  return [...net.pending, ...net.delivered].filter(
    (m): m is VoteResponse => m.kind === 'voteResponse' && m.from === voter && m.to === candidate,
  );
}

test('lease: none before a heartbeat round is answered, then the tick that round was sent in', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  const n1 = net.raft('n1');
  // elect() ran one heartbeat round to completion.
  const firstBasis = n1.leaseBasisTick();
  assert.notEqual(firstBasis, null);
  net.tick('n1', HEARTBEAT_TICKS);
  const sentAt = n1.tickCount;
  assert.equal(n1.leaseBasisTick(), firstBasis, 'the new round is not answered yet');
  net.deliver(and(ofKind('heartbeat'), to('n2')));
  net.deliver(and(ofKind('heartbeatResponse'), from('n2')));
  assert.equal(n1.leaseBasisTick(), sentAt, 'one answer plus the leader is a quorum of three');
  assert.equal(net.raft('n2').leaseBasisTick(), null, 'a follower has no lease');
  assert.equal(n1.leaseTicks, ELECTION_TICKS - 1);
});

test('lease: a new leader has none until its own first round is answered', () => {
  const net = Network.bootstrap(IDS);
  net.campaign('n1');
  net.deliverAll(ofKind('vote', 'voteResponse'));
  assert.equal(net.raft('n1').currentRole, 'leader');
  assert.equal(net.raft('n1').leaseBasisTick(), null);
  net.tick('n1', HEARTBEAT_TICKS);
  net.deliverAll();
  assert.notEqual(net.raft('n1').leaseBasisTick(), null);
});

test('lease: none while a transfer runs, and none for the rest of the term once TimeoutNow went out', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  const n1 = net.raft('n1');
  assert.notEqual(n1.leaseBasisTick(), null);
  n1.transferLeadership('n2');
  net.process('n1');
  assert.equal(n1.leaseBasisTick(), null, 'transfer under way');
  // The TimeoutNow is lost; the transfer gives up after an election timeout.
  net.drop(ofKind('timeoutNow'));
  for (let i = 0; i < ELECTION_TICKS; i++) {
    net.tick('n1');
    net.deliverAll();
  }
  assert.equal(n1.currentRole, 'leader');
  assert.equal(n1.status().transferee, null, 'aborted');
  assert.equal(n1.leaseBasisTick(), null, 'a late copy of the TimeoutNow could still elect n2');
});

test('lease: a leader elected through TimeoutNow takes none for an election timeout', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.raft('n1').transferLeadership('n2');
  net.process('n1');
  net.deliverAll();
  const n2 = net.raft('n2');
  assert.equal(n2.currentRole, 'leader');
  let ticks = 0;
  for (; n2.leaseBasisTick() === null && ticks < 3 * ELECTION_TICKS; ticks++) {
    net.tick('n2');
    net.deliverAll();
  }
  assert.ok(ticks >= ELECTION_TICKS, `lease after ${ticks} ticks`);
  assert.ok(ticks < ELECTION_TICKS + 2 * HEARTBEAT_TICKS, `lease after ${ticks} ticks`);
});

test('lease rule: a follower that heard from the leader refuses pre-votes for election timeout - 1 ticks', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.isolate('n1');
  // n3 asks n2 for a pre-vote at every tick; n2 last heard from n1 in elect().
  let refusedTicks = 0;
  for (; refusedTicks < 2 * ELECTION_TICKS; refusedTicks++) {
    net.step({ kind: 'vote', from: 'n3', to: 'n2', term: 3, preVote: true, lastLogIndex: 10, lastLogTerm: 2, transfer: false });
    if (voteAnswers(net, 'n2', 'n3').some((m) => m.granted)) break;
    net.tick('n2');
  }
  assert.ok(refusedTicks >= ELECTION_TICKS - 1, `granted after ${refusedTicks} ticks`);
});

test('lease rule: a refused pre-vote answered in a higher term does not lift the lease', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  const n2 = net.raft('n2');
  // n2 had asked for a pre-vote before it heard from n1 again; n3, by now a candidate of term 3,
  // refuses it late, in its own term. Adopting that term would let n2 vote in it within n1's lease.
  net.step({ kind: 'voteResponse', from: 'n3', to: 'n2', term: 3, preVote: true, granted: false });
  assert.equal(n2.currentTerm, 2, 'the answer did not raise the term inside the lease');
  assert.equal(n2.currentLeader, 'n1');
  net.step({ kind: 'vote', from: 'n3', to: 'n2', term: 3, preVote: false, lastLogIndex: 10, lastLogTerm: 2, transfer: false });
  assert.ok(!voteAnswers(net, 'n2', 'n3').some((m) => m.granted), 'and n2 still refuses to vote in term 3');
  net.tick('n2', ELECTION_TICKS);
  net.step({ kind: 'voteResponse', from: 'n3', to: 'n2', term: 3, preVote: true, granted: false });
  assert.equal(n2.currentTerm, 3, 'past the lease, a higher term is news again');
});

test('lease rule: a leader deposed by a higher term votes for nobody for an election timeout', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.drop();
  // n3 got to term 3 behind n1's back (a pre-vote granted before n2 heard from n1) and answers n1's
  // heartbeat with it: n1 steps down at once, while the lease it reported may still run.
  net.step({ kind: 'appendResponse', from: 'n3', to: 'n1', term: 3, success: false, matchIndex: 0, rejectedIndex: 0, conflictIndex: 0, conflictTerm: 0, lastLogIndex: 0 });
  const n1 = net.raft('n1');
  assert.equal(n1.currentRole, 'follower');
  const lastIndex = n1.lastLogIndex;
  net.step({ kind: 'vote', from: 'n3', to: 'n1', term: 4, preVote: true, lastLogIndex: lastIndex, lastLogTerm: 2, transfer: false });
  net.step({ kind: 'vote', from: 'n3', to: 'n1', term: 4, preVote: false, lastLogIndex: lastIndex, lastLogTerm: 2, transfer: false });
  assert.ok(!voteAnswers(net, 'n1', 'n3').some((m) => m.granted), 'no vote inside the guard');
  assert.equal(n1.currentTerm, 3, 'the refused vote request did not raise the term');
  net.tick('n1', ELECTION_TICKS);
  net.step({ kind: 'vote', from: 'n3', to: 'n1', term: 4, preVote: true, lastLogIndex: lastIndex, lastLogTerm: 2, transfer: false });
  assert.ok(voteAnswers(net, 'n1', 'n3').some((m) => m.granted && m.preVote), 'grants once the guard is over');
});

test('lease rule: with leaseGuardOnStart a restarted member votes for nobody for an election timeout', () => {
  for (const guard of [true, false]) {
    const net = Network.bootstrap(IDS, { leaseGuardOnStart: guard });
    // Fresh members refuse votes too at first: let the guard run out before electing n1.
    for (const id of IDS) net.tick(id, guard ? ELECTION_TICKS : 0);
    net.elect('n1');
    net.crash('n2');
    net.restart('n2');
    const n2 = net.raft('n2');
    const request = { kind: 'vote', from: 'n3', to: 'n2', term: 3, preVote: true, lastLogIndex: 10, lastLogTerm: 2, transfer: false } as const;
    net.step(request);
    assert.equal(voteAnswers(net, 'n2', 'n3').some((m) => m.granted), !guard, `guard ${guard}`);
    if (!guard) continue;
    net.tick('n2', ELECTION_TICKS - 1);
    net.step(request);
    assert.ok(!voteAnswers(net, 'n2', 'n3').some((m) => m.granted), 'still inside the guard');
    net.tick('n2');
    net.step(request);
    assert.ok(voteAnswers(net, 'n2', 'n3').some((m) => m.granted), 'after an election timeout it votes again');
    assert.equal(n2.currentRole, 'follower');
  }
});

test('lease rule: a transfer vote is granted inside the guard (the old leader gave up its lease)', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.raft('n1').transferLeadership('n3');
  net.process('n1');
  net.deliverAll();
  assert.equal(net.raft('n3').currentRole, 'leader');
});

// ---- the application's health (RAFTLET_APP_HEALTH_URL) ---------------------------------------------

test('app health: an unhealthy member waits extra election timeouts before campaigning', () => {
  for (const health of ['healthy', 'unhealthy'] as const) {
    const net = Network.bootstrap(IDS);
    net.elect('n1');
    net.isolate('n1');
    const n2 = net.raft('n2');
    n2.setAppHealth(health);
    let ticks = 0;
    for (; n2.currentRole === 'follower' && ticks < 10 * ELECTION_TICKS; ticks++) net.tick('n2');
    if (health === 'healthy') assert.ok(ticks < 2 * ELECTION_TICKS + 1, `campaigned after ${ticks} ticks`);
    else assert.ok(ticks >= (1 + APP_UNHEALTHY_EXTRA_TIMEOUTS) * ELECTION_TICKS, `campaigned after ${ticks} ticks`);
    assert.notEqual(n2.currentRole, 'follower', 'it campaigns in the end');
  }
});

test('app health: heartbeat answers carry it to the leader, which prefers a healthy transfer target', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.raft('n2').setAppHealth('unhealthy');
  net.raft('n3').setAppHealth('healthy');
  net.tick('n1', HEARTBEAT_TICKS);
  net.deliverAll();
  const health = Object.fromEntries(net.raft('n1').status().progress.map((p) => [p.id, p.appHealth]));
  assert.deepEqual(health, { n2: 'unhealthy', n3: 'healthy' });
  const heartbeatAnswer = net.delivered.findLast((m) => m.kind === 'heartbeatResponse' && m.from === 'n2');
  assert.equal(heartbeatAnswer?.kind === 'heartbeatResponse' && heartbeatAnswer.appHealth, 'unhealthy');
  // n2 is further ahead, but its application is unhealthy.
  net.isolate('n3');
  net.propose('n1', 'x');
  net.deliverAll();
  net.heal();
  assert.deepEqual(net.raft('n1').transferLeadership(null), { ok: true, to: 'n3' });
});
