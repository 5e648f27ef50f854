// §5.5 Follower and candidate crashes: a node restarted from what it persisted, and nothing else,
// rejoins; the leader's retries are harmless because AppendEntries is idempotent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AppendRequest } from '../../src/raft/types.ts';
import { Network, and, from, ofKind, to } from './harness.ts';

const IDS = ['n1', 'n2', 'n3'];

test('§5.5 a crashed follower, restarted from its disk alone, rejoins and catches up', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.propose('n1', 'a');
  net.deliverAll();
  net.crash('n3');
  net.propose('n1', 'b');
  net.propose('n1', 'c');
  net.deliverAll();
  assert.deepEqual(net.node('n1').state, ['a', 'b', 'c'], 'n1 and n2 commit without n3');
  const n3 = net.restart('n3');
  assert.equal(n3.raft.currentTerm, n3.disk.hardState.term, 'term from disk');
  assert.deepEqual(n3.state, [], 'the state machine starts empty and is rebuilt from the log');
  net.runUntil(() => n3.state.length === 3, 10);
  assert.deepEqual(n3.state, ['a', 'b', 'c']);
  assert.deepEqual(n3.logTerms(), net.node('n1').logTerms());
});

test('§5.5 a crashed leader restarts as a follower, and its unreplicated entry is replaced', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.propose('n1', 'lost'); // on n1's disk only
  net.drop();
  net.crash('n1');
  net.runUntil(() => net.leader() !== undefined, undefined, ['n2', 'n3']);
  net.propose(net.leader()?.id ?? '', 'kept');
  net.deliverAll();
  const n1 = net.restart('n1');
  assert.equal(n1.raft.currentRole, 'follower');
  net.runUntil(() => n1.state.includes('kept'), 10);
  assert.deepEqual(n1.state, ['kept'], 'the uncommitted entry was never applied');
  assert.deepEqual(n1.logTerms(), net.leader()?.logTerms());
  for (const id of IDS) assert.ok(!net.node(id).state.includes('lost'));
});

test('§5.5 AppendEntries is idempotent: a retransmission after the follower crashed changes nothing', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.propose('n1', 'a');
  const [sent] = net.peek(and(from('n1'), to('n2'), ofKind('append')));
  assert.ok(sent?.kind === 'append');
  net.deliver((m) => m === sent);
  net.drop(from('n2')); // n2 crashes before its acknowledgement leaves
  net.crash('n2');
  const n2 = net.restart('n2');
  const before = n2.logTerms();
  const writes = n2.readys.length;
  net.step(sent satisfies AppendRequest); // the leader retries the same request
  assert.deepEqual(n2.logTerms(), before);
  assert.ok(n2.readys.slice(writes).every((rd) => rd.entries.length === 0), 'nothing rewritten on disk');
  const ack = net.peek(and(from('n2'), ofKind('appendResponse')));
  assert.deepEqual(ack.map((m) => m.kind === 'appendResponse' && [m.success, m.matchIndex]), [[true, 3]]);
});

test('§5.5 a candidate that crashes keeps its term and its vote for itself', () => {
  const net = Network.bootstrap(IDS, { preVote: false });
  net.campaign('n1');
  net.drop();
  net.crash('n1');
  const n1 = net.restart('n1');
  assert.equal(n1.raft.currentTerm, 2);
  assert.equal(n1.raft.status().votedFor, 'n1');
  net.step({ kind: 'vote', from: 'n2', to: 'n1', term: 2, preVote: false, lastLogIndex: 1, lastLogTerm: 1, transfer: false });
  const [reply] = net.peek(ofKind('voteResponse'));
  assert.equal(reply.kind === 'voteResponse' && reply.granted, false, 'no second vote in term 2');
});
