// §5.1 Raft basics: terms act as a logical clock; stale terms are refused, newer terms win.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Message } from '../../src/raft/types.ts';
import { Network, and, from, logOfTerms, ofKind, restored, to } from './harness.ts';

const IDS = ['n1', 'n2', 'n3'];

/** n2 at term 5 holding entries of terms 1 and 2, as a follower that has moved on. */
function followerAtTerm5(): Network {
  const net = new Network();
  net.add('n2', restored({ term: 5, entries: logOfTerms([1, 2], IDS) }));
  return net;
}

test('§5.1 a node with a stale term refuses an AppendEntries and answers with its own term', () => {
  const net = followerAtTerm5();
  net.step({ kind: 'append', from: 'n1', to: 'n2', term: 3, prevLogIndex: 2, prevLogTerm: 2, entries: logOfTerms([1, 2, 3], IDS).slice(2), leaderCommit: 3 });
  const n2 = net.raft('n2');
  assert.equal(n2.lastLogIndex, 2, 'the stale leader appended nothing');
  assert.equal(n2.committedIndex, 0);
  assert.equal(n2.currentTerm, 5);
  assert.equal(n2.currentLeader, null, 'a stale leader is not recognised');
  const [reply] = net.peek(to('n1'));
  assert.equal(reply.kind, 'appendResponse');
  assert.equal(reply.term, 5, 'the refusal carries the current term so the sender can step down');
  assert.equal(reply.kind === 'appendResponse' && reply.success, false);
});

test('§5.1 a node with a stale term refuses a heartbeat and answers with its own term', () => {
  const net = followerAtTerm5();
  net.step({ kind: 'heartbeat', from: 'n1', to: 'n2', term: 4, commit: 2, seq: 0 });
  assert.equal(net.raft('n2').committedIndex, 0, 'a stale heartbeat does not move the commit index');
  assert.equal(net.raft('n2').currentLeader, null);
  const [reply] = net.peek(to('n1'));
  assert.equal(reply.kind === 'appendResponse' && !reply.success && reply.term, 5);
});

test('§5.1 a node with a stale term refuses a RequestVote (and a pre-vote) without changing its vote', () => {
  const net = followerAtTerm5();
  net.step({ kind: 'vote', from: 'n3', to: 'n2', term: 4, preVote: false, lastLogIndex: 9, lastLogTerm: 4, transfer: false });
  net.step({ kind: 'vote', from: 'n1', to: 'n2', term: 4, preVote: true, lastLogIndex: 9, lastLogTerm: 4, transfer: false });
  const n2 = net.raft('n2').status();
  assert.equal(n2.term, 5);
  assert.equal(n2.votedFor, null);
  assert.equal(net.node('n2').disk.hardState.votedFor, null);
  const granted = net.peek((m) => m.kind === 'voteResponse' && m.granted);
  assert.deepEqual(granted, [], 'no stale candidate gets a vote');
  const preRefusal = net.peek(and(to('n1'), ofKind('voteResponse')));
  assert.equal(preRefusal.length, 1, 'a stale pre-candidate is told the current term');
  assert.equal(preRefusal[0].term, 5);
});

test('§5.1 a node that sees a higher term adopts it and forgets its vote', () => {
  const net = new Network();
  net.add('n2', restored({ term: 3, votedFor: 'n3', entries: logOfTerms([1, 2], IDS) }));
  net.step({ kind: 'heartbeat', from: 'n1', to: 'n2', term: 7, commit: 0, seq: 0 });
  const n2 = net.raft('n2').status();
  assert.equal(n2.term, 7);
  assert.equal(n2.votedFor, null, 'the vote belonged to term 3');
  assert.equal(n2.role, 'follower');
  assert.equal(n2.leader, 'n1');
  assert.deepEqual(net.node('n2').disk.hardState, { term: 7, votedFor: null, commitIndex: 0 }, 'the new term is durable');
});

// Every message that carries a higher term makes a leader step down, except a vote request during the
// leader lease, which thesis §6.2 ignores on purpose (see checkquorum.test.ts).
const higherTermMessages: { readonly name: string; readonly message: (term: number) => Message }[] = [
  { name: 'appendResponse', message: (term) => ({ kind: 'appendResponse', from: 'n2', to: 'n1', term, success: false, matchIndex: 0, rejectedIndex: 0, conflictIndex: 0, conflictTerm: 0, lastLogIndex: 0 }) },
  { name: 'heartbeatResponse', message: (term) => ({ kind: 'heartbeatResponse', from: 'n2', to: 'n1', term, seq: 0, lastLogIndex: 0 }) },
  { name: 'append', message: (term) => ({ kind: 'append', from: 'n3', to: 'n1', term, prevLogIndex: 0, prevLogTerm: 0, entries: [], leaderCommit: 0 }) },
  { name: 'heartbeat', message: (term) => ({ kind: 'heartbeat', from: 'n3', to: 'n1', term, commit: 0, seq: 0 }) },
  { name: 'voteResponse', message: (term) => ({ kind: 'voteResponse', from: 'n2', to: 'n1', term, preVote: false, granted: false }) },
];

for (const { name, message } of higherTermMessages) {
  test(`§5.1 a leader that sees a higher term in a ${name} steps down to follower`, () => {
    const net = Network.bootstrap(IDS);
    net.elect('n1');
    const term = net.raft('n1').currentTerm;
    net.step(message(term + 3));
    const n1 = net.node('n1');
    assert.equal(n1.raft.currentRole, 'follower');
    assert.equal(n1.raft.currentTerm, term + 3);
    assert.deepEqual(n1.eventsOf('steppedDown').map((e) => e.reason), ['higherTerm']);
    assert.equal(n1.raft.propose(new Uint8Array(1)).ok, false, 'a deposed leader takes no proposals');
  });
}

test('§5.1 a candidate that sees a higher term returns to follower', () => {
  const net = Network.bootstrap(IDS, { preVote: false });
  net.campaign('n1');
  assert.equal(net.raft('n1').currentRole, 'candidate');
  net.step({ kind: 'voteResponse', from: 'n2', to: 'n1', term: 9, preVote: false, granted: false });
  assert.equal(net.raft('n1').currentRole, 'follower');
  assert.equal(net.raft('n1').currentTerm, 9);
});

test('§5.1 a partitioned old leader learns the new term from the first refusal and steps down', () => {
  const net = Network.bootstrap(IDS, { checkQuorum: false });
  net.elect('n1');
  net.isolate('n1');
  net.runUntil(() => net.raft('n2').currentRole === 'leader' || net.raft('n3').currentRole === 'leader', undefined, ['n2', 'n3']);
  const newTerm = net.leader()?.raft.currentTerm ?? 0;
  assert.equal(net.raft('n1').currentRole, 'leader', 'without check-quorum the old leader does not know yet');
  net.heal();
  net.tick('n1', 2); // its next heartbeat
  net.deliver(from('n1'));
  net.deliver(to('n1'));
  assert.equal(net.raft('n1').currentRole, 'follower');
  assert.equal(net.raft('n1').currentTerm, newTerm);
});

test('§5.1 term and vote are in the Ready\'s hardState, and the vote response waits in messages', () => {
  const net = Network.bootstrap(IDS, { preVote: false });
  net.campaign('n1');
  const [candidateReady] = net.node('n1').readys.slice(-1);
  assert.deepEqual(candidateReady.hardState, { term: 2, votedFor: 'n1', commitIndex: 0 });
  // A request promises nothing: it leaves with the fsync of the candidate's own vote under way.
  assert.equal(candidateReady.sendNow.filter((m) => m.kind === 'vote').length, 2, 'vote requests leave before the persist step');
  assert.deepEqual(candidateReady.messages, []);

  net.deliver(and(from('n1'), to('n2')));
  const voterReady = net.node('n2').readys.at(-1);
  assert.ok(voterReady);
  assert.deepEqual(voterReady.hardState, { term: 2, votedFor: 'n1', commitIndex: 0 });
  assert.deepEqual(voterReady.sendNow, [], 'a vote is never sent before the fsync');
  const reply = voterReady.messages.find((m) => m.kind === 'voteResponse');
  assert.ok(reply && reply.kind === 'voteResponse' && reply.granted);
});
