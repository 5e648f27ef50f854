// Failure detection beyond the election timeout (raftlet, issue 12): the host reports a peer whose
// process is gone (an established connection closed and a new one was refused) with
// reportPeerDead. A follower of that leader pre-votes at once, and a voter that got the same report
// grants despite the leader lease (thesis §4.2.3). A leader that is only slow or cut off is never
// reported: it is waited out for an election timeout as before. Safety does not rest on the report
// (the simulator delivers false ones); these tests pin down the liveness rule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ELECTION_TICKS, HEARTBEAT_TICKS, Network, and, from, ofKind, to } from './harness.ts';

const IDS = ['n1', 'n2', 'n3'];
const T = ELECTION_TICKS;

function reportDead(net: Network, at: string, peer: string): void {
  net.raft(at).reportPeerDead(peer);
  net.process(at);
}

/** n1 leads term 2, its commit index is known to all; then its process dies. */
function leaderDied(): Network {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.crash('n1');
  return net;
}

test('a follower told that its leader died starts a pre-vote at once, without a tick', () => {
  const net = leaderDied();
  reportDead(net, 'n2', 'n1');
  const n2 = net.raft('n2');
  assert.equal(n2.currentRole, 'precandidate');
  assert.equal(n2.currentTerm, 2, 'a pre-vote changes no term');
  assert.deepEqual(
    net.peek(from('n2')).map((m) => m.kind === 'vote' && m.preVote && m.term === 3 && m.to),
    ['n1', 'n3'],
    'pre-vote requests for term 3 went out',
  );
});

test('a voter that got the same report grants the pre-vote and the vote despite the lease: a new leader without any tick', () => {
  const net = leaderDied();
  reportDead(net, 'n2', 'n1');
  reportDead(net, 'n3', 'n1');
  net.deliverAll();
  const leader = net.leader();
  assert.ok(leader !== undefined && leader.id !== 'n1', `a new leader: ${net.describe()}`);
  assert.equal(leader.raft.currentTerm, 3, 'in the very next term: no split vote, no retry');
  const others = IDS.filter((id) => id !== 'n1' && id !== leader.id);
  for (const id of others) assert.equal(net.raft(id).currentLeader, leader.id);
  assert.deepEqual(net.node(leader.id).eventsOf('electionWon').map((e) => e.term), [3]);
});

test('a voter that got no report keeps the lease: the pre-vote of a follower that did is dropped', () => {
  const net = leaderDied();
  reportDead(net, 'n2', 'n1');
  net.deliverAll();
  assert.equal(net.raft('n2').currentRole, 'precandidate', 'n3 did not answer');
  assert.equal(net.raft('n3').currentLeader, 'n1', 'n3 still follows n1 (it heard from it within T)');
  assert.ok(net.delivered.some((m) => m.kind === 'vote' && m.from === 'n2' && m.to === 'n3'), 'the pre-vote reached n3');
  assert.ok(!net.delivered.some((m) => m.kind === 'voteResponse' && m.to === 'n2'));
});

test('without a report a dead leader is waited out for an election timeout (contrast)', () => {
  const net = leaderDied();
  const rounds = net.runUntil(() => net.leader() !== undefined, 10 * T, ['n2', 'n3']);
  assert.ok(rounds >= T, `elected after ${rounds} ticks, not before an election timeout of ${T}`);
});

test('followers told at the same moment do not split the vote: the more up-to-date log goes on, the other steps aside', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.propose('n1', 'x');
  net.deliver(to('n3')); // only n3 gets the new entry before n1 dies
  net.drop(to('n2'));
  net.crash('n1');
  reportDead(net, 'n2', 'n1');
  reportDead(net, 'n3', 'n1');
  assert.equal(net.raft('n2').currentRole, 'precandidate');
  assert.equal(net.raft('n3').currentRole, 'precandidate');
  net.deliverAll();
  assert.equal(net.leader()?.id, 'n3', 'n3 holds the longer log');
  assert.equal(net.raft('n3').currentTerm, 3);
  assert.deepEqual(net.node('n2').eventsOf('electionStarted'), [], 'n2 never ran for real');
  assert.equal(net.raft('n2').currentLeader, 'n3');
});

test('with equal logs the lower id goes on (a fixed order, so both cannot go on)', () => {
  const net = leaderDied();
  reportDead(net, 'n3', 'n1');
  reportDead(net, 'n2', 'n1');
  net.deliverAll();
  assert.equal(net.leader()?.id, 'n2');
  assert.equal(net.raft('n2').currentTerm, 3);
  assert.deepEqual(net.node('n3').eventsOf('electionStarted'), []);
});

test('a follower told late still elects at once: the pre-candidate that goes on asks it again', () => {
  const net = leaderDied();
  reportDead(net, 'n2', 'n1');
  net.deliverAll(); // n3 has no report yet: it drops n2's pre-vote under the lease
  assert.equal(net.raft('n2').currentRole, 'precandidate');
  reportDead(net, 'n3', 'n1'); // n3 pre-votes; n2 outranks it (lower id), refuses and asks again
  net.deliverAll();
  assert.equal(net.leader()?.id, 'n2');
  assert.equal(net.raft('n2').currentTerm, 3);
  assert.equal(net.raft('n3').currentLeader, 'n2');
});

test('a voter that dropped a hurried pre-vote under the lease is asked again within a heartbeat', () => {
  // n3's application is unhealthy: told of the death it stops following n1 but does not campaign
  // itself, so no pre-vote of its own makes n2 ask again (contestPreVote). n2's re-asking every
  // heartbeat interval does, instead of its pre-vote round's election timeout.
  const net = leaderDied();
  net.raft('n3').setAppHealth('unhealthy');
  reportDead(net, 'n2', 'n1');
  net.deliverAll(); // n3 has no report yet: it drops n2's pre-vote under the lease
  reportDead(net, 'n3', 'n1');
  assert.deepEqual(net.peek(from('n3')), [], 'n3 does not campaign');
  assert.equal(net.raft('n3').currentLeader, null);
  const rounds = net.runUntil(() => net.leader() !== undefined, 3 * T, ['n2', 'n3']);
  assert.ok(rounds <= HEARTBEAT_TICKS, `elected after ${rounds} ticks, within a heartbeat interval (${HEARTBEAT_TICKS}), not an election timeout (${T})`);
  assert.equal(net.leader()?.id, 'n2');
  assert.equal(net.raft('n2').currentTerm, 3);
});

test('a hurried pre-candidate asks again only the voters that have not answered', () => {
  const net = leaderDied();
  reportDead(net, 'n2', 'n1');
  net.drop(); // both requests lost (n1 is dead anyway; n3's copy dropped on the way)
  net.tick('n2', HEARTBEAT_TICKS);
  assert.deepEqual(
    net.peek(from('n2')).filter((m) => m.kind === 'vote').map((m) => m.kind === 'vote' && m.preVote && m.term === 3 && m.to),
    ['n1', 'n3'],
    'both asked again after a heartbeat interval',
  );
  net.drop();
  net.step({ kind: 'voteResponse', from: 'n3', to: 'n2', term: 2, preVote: true, granted: false });
  net.tick('n2', HEARTBEAT_TICKS);
  assert.deepEqual(net.peek(from('n2')).filter((m) => m.kind === 'vote').map((m) => m.to), ['n1'], 'a refusal is an answer: n3 is not asked again');
});

test('a message the leader sent just before it died does not stop the election', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.propose('n1', 'last words');
  net.crash('n1'); // its appends are still on the wire
  reportDead(net, 'n2', 'n1');
  reportDead(net, 'n3', 'n1');
  net.deliverAll(and(from('n1'), ofKind('append')));
  assert.equal(net.raft('n2').currentRole, 'precandidate', 'the late append took no lease back');
  assert.equal(net.raft('n2').lastLogIndex, 3, 'its entry was taken all the same');
  net.deliverAll();
  assert.equal(net.leader()?.id, 'n2');
  assert.equal(net.raft('n2').currentTerm, 3);
});

test('a false report about a live leader costs no term when the other voters still hear from it', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  reportDead(net, 'n2', 'n1'); // n1 is alive: the report is wrong
  net.deliverAll();
  assert.equal(net.raft('n2').currentRole, 'precandidate');
  // What arrives from n1 within a heartbeat of the report may have been on the wire; after that,
  // hearing from it means it lives.
  const rounds = net.runUntil(() => net.raft('n2').currentLeader === 'n1', 3 * HEARTBEAT_TICKS);
  assert.ok(rounds <= 2 * HEARTBEAT_TICKS, `n2 followed n1 again after ${rounds} ticks`);
  for (const id of IDS) assert.equal(net.raft(id).currentTerm, 2, `${id} term`);
  assert.equal(net.leader()?.id, 'n1');
  assert.equal(net.raft('n2').currentLeader, 'n1', 'n2 follows n1 again');
  assert.deepEqual(net.node('n1').eventsOf('steppedDown'), []);
});

test('once the reported leader speaks again, the lease is back', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  reportDead(net, 'n3', 'n1'); // false report to n3: it pre-votes, nobody grants
  net.deliverAll();
  net.runUntil(() => net.raft('n3').currentLeader === 'n1', 3 * HEARTBEAT_TICKS); // n1 speaks: the report is forgotten
  net.drop(); // nothing in flight
  net.step({ kind: 'vote', from: 'n2', to: 'n3', term: 3, preVote: true, lastLogIndex: 99, lastLogTerm: 2, transfer: false });
  assert.deepEqual(net.peek(ofKind('voteResponse')), [], 'n3 drops a pre-vote under the lease again');
});

test('a report about a peer that is not our leader, or received while leading or without a leader, changes nothing', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  const before = net.describe();
  reportDead(net, 'n2', 'n3'); // not n2's leader
  reportDead(net, 'n1', 'n2'); // a leader about a follower
  assert.equal(net.describe(), before);
  assert.deepEqual(net.peek(ofKind('vote')), []);
  const fresh = Network.bootstrap(IDS); // nobody leads yet
  reportDead(fresh, 'n2', 'n1');
  assert.equal(fresh.raft('n2').currentRole, 'follower');
  assert.deepEqual(fresh.peek(ofKind('vote')), []);
});

test('a learner told its leader died does not campaign, but grants a voter that saw the same', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  assert.equal(net.raft('n1').proposeConfigChange({ kind: 'addLearner', id: 'n4', url: 'test://n4' }).ok, true);
  net.process('n1');
  net.add('n4', { hardState: { term: 0, votedFor: null, commitIndex: 0 }, snapshot: null, entries: [] });
  net.runUntil(() => net.raft('n4').lastLogIndex === net.raft('n1').lastLogIndex, 5 * T, ['n1']);
  net.crash('n1');
  reportDead(net, 'n4', 'n1');
  assert.equal(net.raft('n4').currentRole, 'follower');
  assert.deepEqual(net.peek(from('n4')), [], 'no vote requests from a learner');
  reportDead(net, 'n2', 'n1');
  reportDead(net, 'n3', 'n1');
  net.deliverAll();
  assert.equal(net.leader()?.id, 'n2');
});
