// Thesis §6.2 (check-quorum) and §4.2.3 (leader lease against disruptive servers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { VoteRequest } from '../../src/raft/types.ts';
import { ELECTION_TICKS, Network, ofKind } from './harness.ts';

const IDS = ['n1', 'n2', 'n3'];
const T = ELECTION_TICKS;

function disruptiveVote(to: string, term: number, transfer = false): VoteRequest {
  // A candidate with a higher term and a log at least as up to date as anyone's.
  return { kind: 'vote', from: 'n3', to, term, preVote: false, lastLogIndex: 100, lastLogTerm: 2, transfer };
}

test('thesis §6.2 a leader that hears from no majority for an election timeout steps down', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.tick('n1', 3);
  net.deliverAll();
  net.isolate('n1');
  let ticks = 0;
  while (net.raft('n1').currentRole === 'leader' && ticks < 5 * T) {
    net.tick('n1');
    ticks++;
  }
  const n1 = net.node('n1');
  assert.equal(n1.raft.currentRole, 'follower');
  assert.ok(ticks >= T - 1 && ticks <= 2 * T, `stepped down after ${ticks} ticks: within one or two election timeouts`);
  assert.deepEqual(n1.eventsOf('steppedDown').map((e) => e.reason), ['checkQuorum']);
  assert.equal(n1.raft.currentTerm, 2, 'stepping down does not change the term');
  assert.equal(n1.raft.propose(new Uint8Array(1)).ok, false);
});

test('thesis §6.2 a leader that hears from a majority stays leader', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.isolate('n3');
  for (let round = 0; round < 10 * T; round++) {
    for (const id of IDS) net.tick(id);
    net.deliverAll();
  }
  assert.equal(net.raft('n1').currentRole, 'leader');
  assert.equal(net.raft('n1').currentTerm, 2);
  assert.deepEqual(net.node('n1').eventsOf('steppedDown'), []);
});

test('thesis §6.2 without check-quorum an isolated leader keeps believing it leads (contrast)', () => {
  const net = Network.bootstrap(IDS, { checkQuorum: false });
  net.elect('n1');
  net.isolate('n1');
  net.tick('n1', 10 * T);
  assert.equal(net.raft('n1').currentRole, 'leader');
});

test('thesis §4.2.3 a follower that hears from its leader ignores a disruptive vote request', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.tick('n2', 2); // a little time passes, well inside the lease
  net.step(disruptiveVote('n2', 9));
  const n2 = net.raft('n2').status();
  assert.equal(n2.term, 2, 'the request does not even raise the term');
  assert.equal(n2.votedFor, 'n1');
  assert.equal(n2.leader, 'n1');
  assert.deepEqual(net.peek(ofKind('voteResponse')), [], 'no answer at all');
});

test('thesis §4.2.3 the leader itself ignores a disruptive vote request', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.step(disruptiveVote('n1', 9));
  assert.equal(net.raft('n1').currentRole, 'leader');
  assert.equal(net.raft('n1').currentTerm, 2);
});

test('thesis §4.2.3 once the lease has run out, the same vote request is considered', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.isolate('n2'); // n2 stops hearing from n1 (its own pre-votes go nowhere)
  net.tick('n2', T);
  net.heal();
  net.drop();
  net.step(disruptiveVote('n2', 9));
  assert.equal(net.raft('n2').currentTerm, 9);
  const [reply] = net.peek(ofKind('voteResponse'));
  assert.ok(reply?.kind === 'voteResponse' && reply.granted);
});

test('thesis §3.10 a vote request sent on a leadership transfer overrides the lease', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.step(disruptiveVote('n2', 3, true));
  assert.equal(net.raft('n2').currentTerm, 3);
  const [reply] = net.peek(ofKind('voteResponse'));
  assert.ok(reply?.kind === 'voteResponse' && reply.granted);
});
