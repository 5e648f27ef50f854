// Thesis §9.6 Pre-Vote: a server campaigns for real (raising its term) only after a majority says it
// could win, so a server that was partitioned away cannot disrupt a healthy cluster when it returns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ELECTION_TICKS, Network, logOfTerms, ofKind, restored, type NodeOptions } from './harness.ts';
import type { Message } from '../../src/raft/types.ts';

const IDS = ['n1', 'n2', 'n3'];
const T = ELECTION_TICKS;

/** Elects n1, cuts n3 off for several election timeouts while the others run, then heals and runs on. */
function partitionAndReturn(options: NodeOptions, writeWhileAway: boolean): Network {
  const net = Network.bootstrap(IDS, options);
  net.elect('n1');
  net.isolate('n3');
  if (writeWhileAway) net.propose('n1', 'while n3 was away');
  for (let round = 0; round < 5 * T; round++) {
    for (const id of IDS) net.tick(id);
    net.deliverAll();
  }
  net.heal();
  for (let round = 0; round < 5 * T; round++) {
    for (const id of IDS) net.tick(id);
    net.deliverAll();
  }
  return net;
}

test('thesis §9.6 a partitioned node that returns does not raise the cluster\'s term or disrupt its leader', () => {
  const net = partitionAndReturn({}, false);
  for (const id of IDS) assert.equal(net.raft(id).currentTerm, 2, `${id} is still in term 2`);
  assert.equal(net.leader()?.id, 'n1');
  assert.deepEqual(net.node('n1').eventsOf('steppedDown'), []);
  assert.equal(net.raft('n3').currentLeader, 'n1', 'n3 rejoined as n1\'s follower');
  assert.deepEqual(net.node('n3').eventsOf('electionStarted'), [], 'n3 never got past its pre-vote');
  const preVotes = net.dropped.filter((m) => m.kind === 'vote' && m.from === 'n3');
  assert.ok(preVotes.length >= 2 && preVotes.every((m) => m.kind === 'vote' && m.preVote && m.term === 3), 'n3 did try, in pre-votes only');
});

test('thesis §9.6 (contrast) without pre-vote the same partition does disrupt the leader when n3 returns', () => {
  const net = partitionAndReturn({ preVote: false }, false);
  assert.ok(net.node('n3').eventsOf('electionStarted').length >= 2, 'n3 raised its term on every timeout');
  assert.deepEqual(net.node('n1').eventsOf('steppedDown').map((e) => e.reason), ['higherTerm'], 'n1 was deposed by n3\'s term');
  assert.ok((net.leader()?.raft.currentTerm ?? 0) > 2);
});

test('thesis §9.6 a pre-vote changes neither the voter\'s term nor its vote', () => {
  const net = new Network();
  net.add('n2', restored({ term: 2, votedFor: 'n1', entries: logOfTerms([1, 2], IDS) }));
  const before = net.node('n2').readys.length;
  net.step({ kind: 'vote', from: 'n3', to: 'n2', term: 3, preVote: true, lastLogIndex: 2, lastLogTerm: 2, transfer: false });
  const n2 = net.node('n2');
  const [reply] = net.peek(ofKind('voteResponse'));
  assert.ok(reply.kind === 'voteResponse' && reply.granted && reply.preVote, 'it would vote for n3');
  assert.equal(reply.term, 3, 'the answer names the term n3 would campaign in');
  assert.equal(n2.raft.currentTerm, 2);
  assert.equal(n2.raft.status().votedFor, 'n1');
  assert.ok(n2.readys.slice(before).every((rd) => rd.hardState === null), 'nothing to persist');
  assert.deepEqual(n2.disk.hardState, { term: 2, votedFor: 'n1', commitIndex: 0 });
});

test('thesis §9.6 a pre-candidate does not change its own term or vote either', () => {
  const net = Network.bootstrap(IDS);
  const before = net.node('n1').readys.length;
  net.campaign('n1');
  const n1 = net.node('n1');
  assert.equal(n1.raft.currentRole, 'precandidate');
  assert.equal(n1.raft.currentTerm, 1);
  assert.equal(n1.raft.status().votedFor, null);
  assert.ok(n1.readys.slice(before).every((rd) => rd.hardState === null));
});

/**
 * The sharpest return: n3 comes back exactly as its election timer fires, so its pre-vote reaches the
 * others before any heartbeat reaches n3. The others heard from n1 a moment ago.
 */
function returnAsTimerFires(options: NodeOptions, writeWhileAway = false): Network {
  const net = Network.bootstrap(IDS, options);
  net.elect('n1');
  net.isolate('n3');
  if (writeWhileAway) {
    net.propose('n1', 'while n3 was away');
    net.deliverAll();
  }
  while (net.raft('n3').currentRole !== 'precandidate') net.tick('n3');
  net.heal();
  while (net.peek(ofKind('vote')).length === 0) net.tick('n3');
  net.deliverAll();
  for (let round = 0; round < 3 * T; round++) {
    for (const id of IDS) net.tick(id);
    net.deliverAll();
  }
  return net;
}

test('thesis §9.6 a node whose pre-vote arrives while the others hear from their leader gets no votes', () => {
  const net = returnAsTimerFires({});
  for (const id of IDS) assert.equal(net.raft(id).currentTerm, 2);
  assert.equal(net.leader()?.id, 'n1');
  assert.ok(net.delivered.some((m) => m.kind === 'vote' && m.from === 'n3' && m.preVote), 'the pre-votes did arrive');
  assert.ok(!net.delivered.some((m) => m.kind === 'voteResponse' && m.to === 'n3' && m.granted), 'and none was granted');
});

test('thesis §9.6 a returning node whose log is behind gets no pre-votes, even without the leader lease', () => {
  const net = returnAsTimerFires({ checkQuorum: false }, true);
  assert.ok(net.delivered.some((m) => m.kind === 'vote' && m.from === 'n3' && m.preVote), 'the pre-votes did arrive');
  for (const id of IDS) assert.equal(net.raft(id).currentTerm, 2);
  assert.equal(net.leader()?.id, 'n1');
  assert.deepEqual(net.node('n3').state, ['while n3 was away'], 'and n3 caught up');
});

// Thesis §9.6 grants a pre-vote only if the voter's log check passes and it "hasn't received
// heartbeats from a valid leader for at least a baseline election timeout". The core honours that
// leader lease only with check-quorum on (raftlet always runs with it), as etcd does. Without
// check-quorum a leader never steps down for want of acknowledgements, so a voter that keeps hearing
// from a leader that hears nobody would refuse every candidate for ever: no leader could commit
// again. The first test below shows that case; the second, that check-quorum clears it too.

/**
 * n1 leads; then the links n1-n3 are cut both ways and n2 -> n1 only: n2 still hears n1's heartbeats,
 * n1 hears nobody. Runs `rounds` rounds of ticks and deliveries under those cuts.
 */
function oneWayFromLeader(options: NodeOptions, rounds: number): Network {
  const net = Network.bootstrap(IDS, options);
  net.elect('n1');
  net.partition(['n1'], ['n3']);
  for (let round = 0; round < rounds; round++) roundWithoutN2ToN1(net);
  return net;
}

/** Ticks every node once, then delivers until nothing is pending, losing whatever n2 sends n1. */
function roundWithoutN2ToN1(net: Network): void {
  for (const id of IDS) net.tick(id);
  for (;;) {
    net.drop((m: Message) => m.from === 'n2' && m.to === 'n1');
    if (net.deliver() === 0) return;
  }
}

/** Which of n2 and n3 leads, once a write proposed to it is applied on both; undefined if neither. */
function commitsWithoutN1(net: Network): string | undefined {
  const leader = ['n2', 'n3'].find((id) => net.raft(id).currentRole === 'leader');
  if (leader === undefined) return undefined;
  net.propose(leader, 'after the cut');
  const applied = (): boolean => ['n2', 'n3'].every((id) => net.node(id).state.includes('after the cut'));
  for (let round = 0; round < T && !applied(); round++) roundWithoutN2ToN1(net);
  return applied() ? leader : undefined;
}

test('thesis §9.6 without check-quorum, voters grant pre-votes despite a leader they hear: else a leader that hears nobody would block every election', () => {
  const net = oneWayFromLeader({ checkQuorum: false }, 6 * T);
  assert.equal(net.raft('n1').currentRole, 'leader', 'n1 never stepped down: without check-quorum nothing makes it');
  assert.ok(net.node('n2').eventsOf('leaderChanged').some((ev) => ev.leader === 'n3'), 'n2 follows n3: its vote elected n3 while it still heard n1');
  assert.equal(commitsWithoutN1(net), 'n3', 'n2 and n3 elected n3, and it commits');
});

test('thesis §9.6 with check-quorum, the same cut ends in a new leader: the leader that hears nobody steps down, and the lease it gave n2 runs out', () => {
  const net = oneWayFromLeader({}, 6 * T);
  assert.deepEqual(net.node('n1').eventsOf('steppedDown').map((ev) => ev.reason), ['checkQuorum']);
  assert.notEqual(commitsWithoutN1(net), undefined, 'n2 and n3 elected one of them, and it commits');
});
