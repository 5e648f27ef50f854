// Thesis §6.4 ReadIndex: linearizable reads without writing to the log. The leader records its commit
// index, confirms it still leads with a heartbeat round that a majority answers, and only then
// releases the read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HeartbeatRequest } from '../../src/raft/types.ts';
import { ELECTION_TICKS, HEARTBEAT_TICKS, Network, and, from, ofKind } from './harness.ts';

const IDS = ['n1', 'n2', 'n3'];

function heartbeatsFrom(net: Network, id: string, since = 0): HeartbeatRequest[] {
  const all = [...net.delivered.slice(since), ...net.pending, ...net.dropped];
  return all.filter((m): m is HeartbeatRequest => m.kind === 'heartbeat' && m.from === id);
}

test('thesis §6.4 a read is confirmed only after a majority answers a heartbeat round started after the read', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.tick('n1', HEARTBEAT_TICKS); // a heartbeat round that starts before the read
  const older = net.peek(ofKind('heartbeat'));
  assert.equal(older.length, 2);
  const commitAtRead = net.raft('n1').committedIndex;
  assert.deepEqual(net.readIndex('n1', 7), { ok: true });
  const newer = net.peek(ofKind('heartbeat')).filter((m) => !older.includes(m));
  assert.equal(newer.length, 2, 'the read starts its own round at once');
  const n1 = net.node('n1');

  // Answers to the older round prove nothing about leadership after the read arrived.
  net.deliver((m) => older.includes(m));
  net.deliver(ofKind('heartbeatResponse'));
  assert.deepEqual(n1.readStates, [], 'answers to a round started before the read do not count');

  // One answer of the new round, plus the leader itself, is a majority of three.
  net.deliver((m) => m === newer.find((h) => h.to === 'n2'));
  assert.deepEqual(n1.readStates, [], 'not before the answer arrives');
  net.deliver(and(from('n2'), ofKind('heartbeatResponse')));
  assert.deepEqual(n1.readStates, [{ requestId: 7, index: commitAtRead }], 'the commit index as it was when the read arrived');
});

test('thesis §6.4 the read index does not move with writes committed after the read arrived', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  const commitAtRead = net.raft('n1').committedIndex;
  net.readIndex('n1', 1);
  net.propose('n1', 'later');
  net.deliverAll();
  assert.ok(net.raft('n1').committedIndex > commitAtRead);
  assert.deepEqual(net.node('n1').readStates, [{ requestId: 1, index: commitAtRead }]);
});

test('thesis §6.4 a new leader does not confirm reads before its no-op commits', () => {
  const net = Network.bootstrap(IDS);
  net.campaign('n1');
  net.deliverAll(ofKind('vote', 'voteResponse'));
  assert.equal(net.raft('n1').currentRole, 'leader');
  const noopIndex = net.raft('n1').lastLogIndex;
  assert.deepEqual(net.readIndex('n1', 1), { ok: true }, 'accepted, to be answered later');
  // Heartbeats flow, but the appends carrying the no-op are held back.
  net.tick('n1', HEARTBEAT_TICKS);
  net.deliverAll(ofKind('heartbeat', 'heartbeatResponse'));
  assert.deepEqual(net.node('n1').readStates, [], 'the leader does not know the commit index yet');
  assert.ok(net.raft('n1').committedIndex < noopIndex);
  net.deliverAll();
  assert.deepEqual(net.node('n1').readStates, [{ requestId: 1, index: noopIndex }], 'confirmed once the no-op committed');
});

test('thesis §6.4 reads share heartbeat rounds: a hundred reads cost two rounds', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  const since = net.delivered.length;
  const before = heartbeatsFrom(net, 'n1', since).length + net.peek(ofKind('heartbeat')).length;
  assert.equal(before, 0);
  for (let requestId = 1; requestId <= 100; requestId++) net.readIndex('n1', requestId);
  net.deliverAll();
  const rounds = new Set(heartbeatsFrom(net, 'n1', since).map((m) => m.seq));
  // The first read starts a round at once; the 99 that arrive while it is in flight cannot use it
  // (it started before them) and share the next one.
  assert.equal(heartbeatsFrom(net, 'n1', since).length, 4, 'two rounds to two followers');
  assert.equal(rounds.size, 2);
  assert.deepEqual(net.node('n1').readStates.map((r) => r.requestId), Array.from({ length: 100 }, (_, i) => i + 1));
});

test('thesis §6.4 reads ride on the periodic heartbeat when one is due', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.readIndex('n1', 1); // round 1 in flight
  net.readIndex('n1', 2); // waits for round 2
  net.tick('n1', HEARTBEAT_TICKS); // the periodic heartbeat starts round 2
  const since = net.delivered.length;
  net.deliverAll();
  assert.deepEqual(net.node('n1').readStates.map((r) => r.requestId), [1, 2]);
  assert.equal(new Set(heartbeatsFrom(net, 'n1', since).map((m) => m.seq)).size, 2, 'no third round');
});

test('thesis §6.4 a deposed leader\'s pending reads fail', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.readIndex('n1', 1); // its heartbeat round is never answered
  net.drop();
  net.step({ kind: 'heartbeat', from: 'n2', to: 'n1', term: 5, commit: 0, seq: 0 });
  const n1 = net.node('n1');
  assert.equal(n1.raft.currentRole, 'follower');
  assert.deepEqual(n1.readsFailed, [1]);
  assert.deepEqual(n1.readStates, []);
});

test('thesis §6.4 reads waiting for a new leader\'s no-op fail too when it is deposed', () => {
  const net = Network.bootstrap(IDS);
  net.campaign('n1');
  net.deliverAll(ofKind('vote', 'voteResponse'));
  net.readIndex('n1', 9);
  net.drop();
  net.step({ kind: 'appendResponse', from: 'n2', to: 'n1', term: 5, success: false, matchIndex: 0, rejectedIndex: 0, conflictIndex: 0, conflictTerm: 0, lastLogIndex: 0 });
  assert.deepEqual(net.node('n1').readsFailed, [9]);
});

test('thesis §6.4 a leader cut off from the majority never confirms a read, and fails it when it steps down', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.isolate('n1');
  net.readIndex('n1', 3);
  net.tick('n1', 3 * ELECTION_TICKS);
  const n1 = net.node('n1');
  assert.deepEqual(n1.readStates, []);
  assert.deepEqual(n1.readsFailed, [3], 'check-quorum deposed it, and the read failed with it');
});

test('thesis §6.4 only the leader serves ReadIndex; a follower names the leader', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  assert.deepEqual(net.readIndex('n2', 1), { ok: false, leader: 'n1' });
  net.deliverAll();
  assert.deepEqual(net.node('n2').readStates, []);
});
