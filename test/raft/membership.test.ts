// Thesis §4.1–4.2 Cluster membership changes, one server at a time: learners catch up before they
// vote, a configuration is used as soon as it is in a log, and only one change is in flight.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Membership } from '../../src/raft/types.ts';
import { ELECTION_TICKS, HEARTBEAT_TICKS, Network, and, blank, from, ofKind, to } from './harness.ts';

const IDS = ['n1', 'n2', 'n3'];

function describeMembers(members: Membership): string[] {
  return members.map((m) => `${m.id}${m.voter ? '' : '(learner)'}`).sort();
}

/** n1 leads n1..n3 and has applied one command; n4 is a fresh server not yet in the configuration. */
function clusterWithNewServer(): Network {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.propose('n1', 'a');
  net.deliverAll();
  net.add('n4', blank());
  return net;
}

/** n1 adds n4 as a learner; n4 hears of it with the next heartbeat and is brought up to date. */
function addLearnerN4(net: Network): void {
  const result = net.raft('n1').proposeConfigChange({ kind: 'addLearner', id: 'n4', url: 'test://n4' });
  assert.equal(result.ok, true);
  net.process('n1');
  net.tick('n1', HEARTBEAT_TICKS);
  net.deliverAll();
}

test('thesis §4.2.1 a new server joins as a learner and receives the whole log', () => {
  const net = clusterWithNewServer();
  addLearnerN4(net);
  const n4 = net.node('n4');
  assert.deepEqual(n4.logTerms(), net.node('n1').logTerms());
  assert.deepEqual(n4.state, ['a']);
  assert.deepEqual(describeMembers(n4.raft.membership), ['n1', 'n2', 'n3', 'n4(learner)']);
});

test('thesis §4.2.1 a learner neither votes nor campaigns', () => {
  const net = clusterWithNewServer();
  addLearnerN4(net);
  net.isolate('n4');
  net.tick('n4', 5 * ELECTION_TICKS);
  assert.equal(net.raft('n4').currentRole, 'follower', 'its election timer never makes it a candidate');
  assert.deepEqual(net.dropped.filter((m) => m.kind === 'vote'), []);
  net.heal();
  net.isolate('n1');
  net.tick('n2', ELECTION_TICKS); // out of n1's lease
  net.campaign('n2');
  const asked = [...net.peek(), ...net.dropped].filter(and(from('n2'), ofKind('vote'))).map((m) => m.to);
  assert.deepEqual(asked.sort(), ['n1', 'n3'], 'nobody asks the learner');
});

test('thesis §4.2.1 a learner does not count toward a commit', () => {
  const net = clusterWithNewServer();
  addLearnerN4(net);
  const commit = net.raft('n1').committedIndex;
  net.isolate('n2');
  net.isolate('n3');
  const { index } = net.propose('n1', 'b') as { index: number };
  net.deliverAll();
  assert.equal(net.raft('n4').lastLogIndex, index, 'the learner stores the entry');
  assert.equal(net.raft('n1').committedIndex, commit, 'but leader + learner are one voter of three');
  net.heal();
  net.tick('n1', 2);
  net.deliverAll();
  assert.equal(net.raft('n1').committedIndex, index);
});

test('thesis §4.2.1 a caught-up learner is promoted to voter, and then counts for the quorum', () => {
  const net = clusterWithNewServer();
  addLearnerN4(net);
  const row = net.raft('n1').status().progress.find((p) => p.id === 'n4');
  assert.equal(row?.matchIndex, net.raft('n1').lastLogIndex, 'caught up');
  assert.equal(row?.voter, false);
  assert.equal(net.raft('n1').proposeConfigChange({ kind: 'promote', id: 'n4' }).ok, true);
  net.process('n1');
  net.deliverAll();
  assert.deepEqual(describeMembers(net.raft('n1').membership), ['n1', 'n2', 'n3', 'n4']);
  // Four voters: a quorum is three, so n1 + n4 cannot commit alone, and n1 + n2 + n4 can.
  net.isolate('n2');
  net.isolate('n3');
  const { index } = net.propose('n1', 'b') as { index: number };
  net.deliverAll();
  assert.ok(net.raft('n1').committedIndex < index);
  net.heal();
  net.isolate('n3');
  net.tick('n1', 2);
  net.deliverAll();
  assert.equal(net.raft('n1').committedIndex, index);
});

test('thesis §4.1 removing a member: the leader stops replicating to it and the quorum shrinks', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  assert.equal(net.raft('n1').proposeConfigChange({ kind: 'remove', id: 'n3' }).ok, true);
  net.process('n1');
  net.deliverAll();
  assert.deepEqual(describeMembers(net.raft('n1').membership), ['n1', 'n2']);
  assert.deepEqual(net.raft('n1').status().progress.map((p) => p.id), ['n2']);
  net.crash('n3');
  net.tick('n1', 2);
  assert.deepEqual(net.peek(to('n3')), [], 'no more heartbeats to n3');
  // Two voters: both are needed.
  net.isolate('n2');
  const { index } = net.propose('n1', 'x') as { index: number };
  net.deliverAll();
  assert.ok(net.raft('n1').committedIndex < index);
  net.heal();
  net.tick('n1', 2);
  net.deliverAll();
  assert.equal(net.raft('n1').committedIndex, index);
});

test('thesis §4.1 only one configuration change may be uncommitted at a time', () => {
  const net = clusterWithNewServer();
  const raft = net.raft('n1');
  assert.equal(raft.proposeConfigChange({ kind: 'addLearner', id: 'n4', url: 'test://n4' }).ok, true);
  const second = raft.proposeConfigChange({ kind: 'addLearner', id: 'n5', url: 'test://n5' });
  assert.equal(second.ok, false);
  assert.equal(!second.ok && second.reason, 'change_in_progress');
  assert.match(!second.ok ? second.message : '', /not committed yet/);
  net.process('n1');
  net.deliverAll();
  assert.equal(raft.proposeConfigChange({ kind: 'addLearner', id: 'n5', url: 'test://n5' }).ok, true, 'allowed once the first committed');
});

test('thesis §4.1 a new leader does not change the membership before committing an entry of its term', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1'); // the bootstrap configuration is committed everywhere
  net.raft('n1').transferLeadership('n2');
  net.process('n1');
  net.deliverAll(ofKind('timeoutNow', 'vote', 'voteResponse'));
  const n2 = net.raft('n2');
  assert.equal(n2.currentRole, 'leader');
  assert.ok(n2.committedIndex < n2.lastLogIndex, 'its no-op is not committed yet');
  const early = n2.proposeConfigChange({ kind: 'addLearner', id: 'n4', url: 'test://n4' });
  assert.equal(early.ok, false);
  assert.equal(!early.ok && early.reason, 'change_in_progress');
  assert.match(!early.ok ? early.message : '', /has not committed an entry of term 3/);
  net.deliverAll();
  assert.equal(n2.proposeConfigChange({ kind: 'addLearner', id: 'n4', url: 'test://n4' }).ok, true);
});

test('thesis §4.1 a new leader treats an uncommitted configuration entry of an earlier leader as in progress', () => {
  const net = Network.bootstrap(IDS);
  net.campaign('n1');
  net.deliverAll(ofKind('vote', 'voteResponse'));
  const early = net.raft('n1').proposeConfigChange({ kind: 'addLearner', id: 'n4', url: 'test://n4' });
  assert.equal(!early.ok && early.reason, 'change_in_progress');
  assert.match(!early.ok ? early.message : '', /change at index 1 is not committed yet/, 'the bootstrap configuration itself');
});

test('thesis §4.1 a configuration takes effect on each server as soon as it is in its log, before it commits', () => {
  const net = clusterWithNewServer();
  const result = net.raft('n1').proposeConfigChange({ kind: 'addLearner', id: 'n4', url: 'test://n4' });
  assert.ok(result.ok);
  net.process('n1');
  assert.ok(net.raft('n1').committedIndex < result.index);
  assert.deepEqual(describeMembers(net.raft('n1').membership), ['n1', 'n2', 'n3', 'n4(learner)'], 'the leader uses it at once');
  assert.ok(net.raft('n1').status().progress.some((p) => p.id === 'n4'), 'and replicates to n4 already');
  net.deliver(and(from('n1'), to('n2')));
  const n2 = net.node('n2');
  assert.ok(n2.raft.committedIndex < result.index);
  assert.deepEqual(describeMembers(n2.raft.membership), ['n1', 'n2', 'n3', 'n4(learner)'], 'so does a follower');
  assert.deepEqual(n2.eventsOf('membershipChanged').at(-1)?.index, result.index);
});

test('thesis §4.1 a configuration entry that is truncated away reverts the configuration', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  const result = net.raft('n1').proposeConfigChange({ kind: 'addLearner', id: 'n4', url: 'test://n4' });
  assert.ok(result.ok);
  net.process('n1');
  net.drop(); // nobody else ever sees it
  assert.deepEqual(describeMembers(net.raft('n1').membership), ['n1', 'n2', 'n3', 'n4(learner)']);
  net.isolate('n1');
  net.runUntil(() => net.leader() !== undefined && net.leader()?.id !== 'n1', undefined, ['n2', 'n3']);
  const leader = net.leader();
  assert.ok(leader);
  net.heal();
  net.runUntil(() => net.raft('n1').termAt(result.index) === leader.raft.currentTerm, 10);
  const n1 = net.node('n1');
  assert.deepEqual(describeMembers(n1.raft.membership), ['n1', 'n2', 'n3'], 'back to the configuration before the lost entry');
  assert.deepEqual(describeMembers(n1.eventsOf('membershipChanged').at(-1)?.members ?? []), ['n1', 'n2', 'n3']);
});

test('thesis §4.2.2 removing the leader is refused with a message saying what to do', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  const result = net.raft('n1').proposeConfigChange({ kind: 'remove', id: 'n1' });
  assert.equal(result.ok, false);
  assert.equal(!result.ok && result.reason, 'invalid_change');
  assert.match(!result.ok ? result.message : '', /transfer leadership first/);
  assert.deepEqual(describeMembers(net.raft('n1').membership), ['n1', 'n2', 'n3']);
});

test('thesis §4.1 changes that make no sense are refused as invalid', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  const raft = net.raft('n1');
  const cases = [
    { change: { kind: 'addLearner', id: 'n2', url: 'test://n2' }, message: /already a member/ },
    { change: { kind: 'promote', id: 'n2' }, message: /already a voter/ },
    { change: { kind: 'promote', id: 'n9' }, message: /not a member/ },
    { change: { kind: 'remove', id: 'n9' }, message: /not a member/ },
  ] as const;
  for (const c of cases) {
    const result = raft.proposeConfigChange(c.change);
    assert.equal(!result.ok && result.reason, 'invalid_change', JSON.stringify(c.change));
    assert.match(!result.ok ? result.message : '', c.message);
  }
  assert.equal(raft.lastLogIndex, 2, 'nothing was appended');
});

test('thesis §4.2.3 a removed server that never learned of its removal does not disrupt the cluster', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.isolate('n3');
  assert.equal(net.raft('n1').proposeConfigChange({ kind: 'remove', id: 'n3' }).ok, true);
  net.process('n1');
  net.deliverAll();
  net.heal();
  for (let round = 0; round < 5 * ELECTION_TICKS; round++) {
    for (const id of IDS) net.tick(id);
    net.deliverAll();
  }
  assert.ok(net.delivered.some((m) => m.kind === 'vote' && m.from === 'n3'), 'n3 kept asking for votes');
  assert.equal(net.leader()?.id, 'n1');
  assert.equal(net.raft('n1').currentTerm, 2, 'the leader lease kept its term');
  assert.equal(net.raft('n2').currentTerm, 2);
});

// Thesis §4.2.1: a new server should catch up before it is given a vote, otherwise the cluster may
// have to wait for it to commit anything. The core promotes a learner whatever its progress.
test('thesis §4.2.1 a learner that has not caught up is not promoted', () => {
  const net = clusterWithNewServer();
  net.isolate('n4'); // n4 will never catch up
  assert.equal(net.raft('n1').proposeConfigChange({ kind: 'addLearner', id: 'n4', url: 'test://n4' }).ok, true);
  net.process('n1');
  net.deliverAll();
  assert.equal(net.raft('n1').status().progress.find((p) => p.id === 'n4')?.matchIndex, 0);
  const promote = net.raft('n1').proposeConfigChange({ kind: 'promote', id: 'n4' });
  assert.equal(promote.ok, false);
});
