// §5.2 Leader election and §5.4.1 the election restriction.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { VoteRequest } from '../../src/raft/types.ts';
import { ELECTION_TICKS, Network, and, from, fixed, logOfTerms, ofKind, restored, seeded, to } from './harness.ts';

const IDS = ['n1', 'n2', 'n3'];
const T = ELECTION_TICKS;

/** Ticks a lone follower (its messages go nowhere) until it leaves the follower role. */
function ticksUntilElection(net: Network, id: string): number {
  for (let ticks = 1; ticks <= 4 * T; ticks++) {
    net.tick(id);
    if (net.raft(id).currentRole !== 'follower') return ticks;
  }
  throw new Error(`${id} never started an election`);
}

function voteRequest(fields: Partial<VoteRequest> & Pick<VoteRequest, 'from' | 'to' | 'term'>): VoteRequest {
  return { kind: 'vote', preVote: false, lastLogIndex: 1, lastLogTerm: 1, transfer: false, ...fields };
}

test('§5.2 a follower that hears from no leader starts a pre-vote after between T and 2T ticks', () => {
  const seen = new Set<number>();
  for (let seed = 1; seed <= 60; seed++) {
    const net = Network.bootstrap(IDS, { random: seeded(seed) });
    const ticks = ticksUntilElection(net, 'n1');
    assert.ok(ticks >= T && ticks < 2 * T, `seed ${seed}: election after ${ticks} ticks, outside [${T}, ${2 * T})`);
    assert.equal(net.raft('n1').currentRole, 'precandidate');
    assert.equal(net.raft('n1').currentTerm, 1, 'a pre-vote does not touch the term');
    const requests = net.peek(ofKind('vote'));
    assert.equal(requests.length, 2);
    assert.ok(requests.every((m) => m.kind === 'vote' && m.preVote && m.term === 2));
    seen.add(ticks);
  }
  assert.ok(seen.size >= T / 2, `timeouts are spread over the range (saw ${[...seen].sort((a, b) => a - b).join(', ')})`);
});

test('§5.2 without pre-vote, the timed-out follower increments its term, votes for itself and asks the others', () => {
  const net = Network.bootstrap(IDS, { preVote: false, random: seeded(7) });
  const ticks = ticksUntilElection(net, 'n1');
  assert.ok(ticks >= T && ticks < 2 * T);
  const n1 = net.raft('n1').status();
  assert.equal(n1.role, 'candidate');
  assert.equal(n1.term, 2);
  assert.equal(n1.votedFor, 'n1');
  assert.deepEqual(net.peek(ofKind('vote')).map((m) => [m.to, m.term]), [['n2', 2], ['n3', 2]]);
});

test('§5.2 a follower that keeps hearing from its leader never starts an election', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  for (let round = 0; round < 10 * T; round++) {
    for (const id of IDS) net.tick(id);
    net.deliverAll();
  }
  for (const id of ['n2', 'n3']) {
    assert.equal(net.raft(id).currentRole, 'follower');
    assert.deepEqual(net.node(id).eventsOf('electionStarted'), []);
  }
  assert.equal(net.raft('n1').currentTerm, 2);
});

test('§5.2 randomized election timeouts differ across nodes with different random sources', () => {
  const timeouts: number[] = [];
  for (const seed of [11, 22, 33, 44, 55]) {
    const net = Network.bootstrap(IDS, { random: seeded(seed) });
    timeouts.push(ticksUntilElection(net, 'n1'));
  }
  assert.ok(new Set(timeouts).size > 1, `five sources gave the same timeout ${timeouts[0]}`);
  const again = ticksUntilElection(Network.bootstrap(IDS, { random: seeded(11) }), 'n1');
  assert.equal(again, timeouts[0], 'the same source gives the same timeout (deterministic replay)');
});

test('§5.2 each server votes for at most one candidate per term (first come, first served)', () => {
  const net = Network.bootstrap(IDS);
  net.step(voteRequest({ from: 'n1', to: 'n3', term: 2 }));
  net.step(voteRequest({ from: 'n2', to: 'n3', term: 2 }));
  net.step(voteRequest({ from: 'n1', to: 'n3', term: 2 })); // a retransmission is answered again
  const replies = net.peek(ofKind('voteResponse')).map((m) => m.kind === 'voteResponse' && [m.to, m.granted]);
  assert.deepEqual(replies, [['n1', true], ['n2', false], ['n1', true]]);
  assert.equal(net.raft('n3').status().votedFor, 'n1');
});

test('§5.2 a vote survives a crash: the restarted voter still refuses a second candidate of that term', () => {
  const net = Network.bootstrap(IDS);
  net.step(voteRequest({ from: 'n1', to: 'n3', term: 2 }));
  net.crash('n3');
  net.restart('n3');
  net.drop();
  net.step(voteRequest({ from: 'n2', to: 'n3', term: 2 }));
  const [reply] = net.peek(ofKind('voteResponse'));
  assert.equal(reply.kind === 'voteResponse' && reply.granted, false);
});

test('§5.2 a candidate wins with votes from a majority, and not before', () => {
  const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
  const net = Network.bootstrap(ids, { preVote: false });
  net.campaign('n1');
  net.drop(to('n4'));
  net.drop(to('n5'));
  net.deliver(ofKind('vote'));
  net.deliver(from('n2'));
  assert.equal(net.raft('n1').currentRole, 'candidate', 'two votes of five are not a majority');
  net.deliver(from('n3'));
  const n1 = net.node('n1');
  assert.equal(n1.raft.currentRole, 'leader', 'three votes of five are');
  assert.deepEqual(n1.eventsOf('electionWon').map((e) => e.term), [2]);
  const appends = net.peek(and(from('n1'), ofKind('append')));
  assert.deepEqual(appends.map((m) => m.to).sort(), ['n2', 'n3', 'n4', 'n5'], 'the new leader announces itself to everyone');
});

test('§5.2 with pre-vote, a pre-candidate campaigns for real only after a majority of pre-votes', () => {
  const net = Network.bootstrap(IDS);
  net.campaign('n1');
  assert.equal(net.raft('n1').currentRole, 'precandidate');
  net.deliver(and(ofKind('vote'), to('n2')));
  net.deliver(and(ofKind('voteResponse'), from('n2')));
  const n1 = net.raft('n1').status();
  assert.equal(n1.role, 'candidate');
  assert.equal(n1.term, 2);
  net.deliverAll();
  assert.equal(net.raft('n1').currentRole, 'leader');
  assert.equal(net.raft('n1').currentTerm, 2);
});

test('§5.2 a candidate that hears from a leader of its own term becomes its follower', () => {
  const net = Network.bootstrap(IDS, { preVote: false });
  net.campaign('n1');
  net.drop();
  net.step({ kind: 'append', from: 'n2', to: 'n1', term: 2, prevLogIndex: 1, prevLogTerm: 1, entries: [], leaderCommit: 1 });
  const n1 = net.raft('n1').status();
  assert.equal(n1.role, 'follower');
  assert.equal(n1.leader, 'n2');
  assert.equal(n1.term, 2);
});

test('§5.2 a split vote ends without a leader and a new election follows in a later term', () => {
  const net = Network.bootstrap(IDS, { preVote: false });
  for (const id of IDS) net.campaign(id); // everyone times out at once: each votes for itself
  net.deliverAll();
  assert.equal(net.leader(), undefined, 'nobody has a majority');
  for (const id of IDS) assert.equal(net.raft(id).currentTerm, 2);
  net.runUntil(() => net.leader() !== undefined);
  const leader = net.leader();
  assert.ok(leader);
  assert.ok(leader.raft.currentTerm >= 3, `the winner leads a later term (got ${leader.raft.currentTerm})`);
  const leadersOfTerm = IDS.filter((id) => net.raft(id).currentRole === 'leader');
  assert.equal(leadersOfTerm.length, 1, 'Election Safety: one leader');
});

// §5.4.1: grant only to a candidate whose log is at least as up to date: compare the last terms, then
// the lengths. The voter's log is [1, 1, 2] (terms), so its last entry is index 3 of term 2.
const restriction: readonly { readonly lastLogTerm: number; readonly lastLogIndex: number; readonly granted: boolean; readonly why: string }[] = [
  { lastLogTerm: 1, lastLogIndex: 10, granted: false, why: 'lower last term, however long' },
  { lastLogTerm: 2, lastLogIndex: 2, granted: false, why: 'same last term, shorter' },
  { lastLogTerm: 2, lastLogIndex: 3, granted: true, why: 'same last term, same length' },
  { lastLogTerm: 2, lastLogIndex: 5, granted: true, why: 'same last term, longer' },
  { lastLogTerm: 3, lastLogIndex: 1, granted: true, why: 'higher last term, however short' },
];

for (const preVote of [false, true]) {
  for (const c of restriction) {
    test(`§5.4.1 a voter ${c.granted ? 'grants' : 'refuses'} a ${preVote ? 'pre-vote' : 'vote'} for a candidate with ${c.why}`, () => {
      const net = new Network();
      net.add('n3', restored({ term: 2, entries: logOfTerms([1, 1, 2], IDS) }));
      net.step(voteRequest({ from: 'n1', to: 'n3', term: 3, preVote, lastLogTerm: c.lastLogTerm, lastLogIndex: c.lastLogIndex }));
      const [reply] = net.peek(ofKind('voteResponse'));
      assert.equal(reply.kind === 'voteResponse' && reply.granted, c.granted);
      assert.equal(net.raft('n3').status().votedFor, c.granted && !preVote ? 'n1' : null);
    });
  }
}

test('§5.4.1 a server that missed committed entries cannot be elected', () => {
  const net = Network.bootstrap(IDS, { random: fixed(0.5) }); // timeouts of 1.5 T: ticking T stays quiet
  net.elect('n1');
  net.isolate('n3');
  assert.equal(net.propose('n1', 'x').ok, true);
  net.deliverAll();
  assert.equal(net.raft('n1').committedIndex, 3, 'committed by n1 and n2');
  net.crash('n1');
  net.heal();
  net.drop();
  // n3 campaigns first; n2, which holds the committed entry, refuses it.
  net.tick('n2', T); // n2's lease from n1 runs out (its own timeout is at least T)
  net.campaign('n3');
  net.deliverAll();
  assert.notEqual(net.raft('n3').currentRole, 'leader');
  const refusal = net.delivered.find((m) => m.kind === 'voteResponse' && m.from === 'n2' && m.to === 'n3');
  assert.ok(refusal?.kind === 'voteResponse' && !refusal.granted, 'refused by n2');
  assert.equal(net.raft('n3').currentTerm, 2, 'and with pre-vote, it did not even raise its term');
  net.runUntil(() => net.leader() !== undefined, 20 * T, ['n2', 'n3']);
  assert.equal(net.leader()?.id, 'n2');
});
