// Thesis §3.10 Leadership transfer: the leader stops taking proposals, brings the target's log up to
// date, and sends it TimeoutNow; the target campaigns at once and wins.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ELECTION_TICKS, Network, and, from, not, ofKind, to } from './harness.ts';

const IDS = ['n1', 'n2', 'n3'];

/** n1 leads; n3 missed two entries while cut off and is back, still behind. */
function leaderWithLaggingTarget(): Network {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.isolate('n3');
  net.propose('n1', 'a');
  net.propose('n1', 'b');
  net.deliverAll();
  net.heal();
  assert.ok(net.raft('n3').lastLogIndex < net.raft('n1').lastLogIndex);
  return net;
}

test('thesis §3.10 during a transfer the leader refuses proposals', () => {
  const net = leaderWithLaggingTarget();
  assert.deepEqual(net.raft('n1').transferLeadership('n3'), { ok: true, to: 'n3' });
  const refused = net.propose('n1', 'c');
  assert.equal(refused.ok, false);
  assert.equal(!refused.ok && refused.reason, 'transferring');
  assert.deepEqual(net.node('n1').eventsOf('transferStarted').map((e) => e.to), ['n3']);
});

test('thesis §3.10 the leader brings the target up to date before sending TimeoutNow, and the target wins at once', () => {
  const net = leaderWithLaggingTarget();
  net.raft('n1').transferLeadership('n3');
  net.process('n1');
  // Only the leader's clock runs: n3 never reaches an election timeout of its own.
  let timeoutNow = net.peek(ofKind('timeoutNow'));
  for (let ticks = 0; timeoutNow.length === 0 && ticks < ELECTION_TICKS; ticks++) {
    net.tick('n1');
    net.deliverAll(not(ofKind('timeoutNow')));
    timeoutNow = net.peek(ofKind('timeoutNow'));
  }
  assert.equal(timeoutNow.length, 1, 'TimeoutNow was sent');
  assert.equal(timeoutNow[0].to, 'n3');
  assert.equal(net.raft('n3').lastLogIndex, net.raft('n1').lastLogIndex, 'only once n3 holds the leader\'s whole log');
  net.deliverAll();
  const n3 = net.node('n3');
  assert.equal(n3.raft.currentRole, 'leader');
  assert.equal(n3.raft.currentTerm, 3);
  assert.ok(n3.readys.every((rd) => rd.messages.every((m) => !(m.kind === 'vote' && m.preVote))), 'no pre-vote on a transfer');
  assert.equal(net.raft('n1').currentRole, 'follower');
  assert.equal(net.raft('n1').currentLeader, 'n3');
  assert.deepEqual(net.node('n1').eventsOf('steppedDown').map((e) => e.reason), ['higherTerm']);
  net.propose('n3', 'after');
  net.deliverAll();
  net.announceCommit('n3');
  for (const id of IDS) assert.deepEqual(net.node(id).state, ['a', 'b', 'after']);
});

test('thesis §3.10 a target that is already up to date gets TimeoutNow immediately', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.raft('n1').transferLeadership('n2');
  net.process('n1');
  assert.deepEqual(net.peek(from('n1')).map((m) => [m.kind, m.to]), [['timeoutNow', 'n2']]);
  net.deliverAll();
  assert.equal(net.leader()?.id, 'n2');
});

test('thesis §3.10 the transfer aborts after an election timeout if the target is unreachable, and proposals are taken again', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.isolate('n3');
  net.raft('n1').transferLeadership('n3');
  net.process('n1');
  let ticks = 0;
  while (net.raft('n1').status().transferee !== null && ticks < 3 * ELECTION_TICKS) {
    net.tick('n1');
    net.tick('n2');
    net.deliverAll();
    ticks++;
    if (net.raft('n1').status().transferee !== null) assert.equal(net.propose('n1', 'refused').ok, false);
  }
  assert.equal(ticks, ELECTION_TICKS, 'abandoned after exactly one election timeout');
  assert.deepEqual(net.node('n1').eventsOf('transferAborted').map((e) => e.to), ['n3']);
  assert.equal(net.raft('n1').currentRole, 'leader', 'still leading with n2');
  assert.equal(net.propose('n1', 'accepted').ok, true);
});

test('thesis §3.10 a transfer to a non-voter, or while another is running, is refused with a reason', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  const stranger = net.raft('n1').transferLeadership('n9');
  assert.equal(stranger.ok, false);
  assert.match(!stranger.ok ? stranger.message : '', /n9 is not a voting member/);
  net.isolate('n3');
  assert.equal(net.raft('n1').transferLeadership('n3').ok, true);
  const second = net.raft('n1').transferLeadership('n2');
  assert.equal(second.ok, false);
  assert.match(!second.ok ? second.message : '', /already in progress/);
  assert.equal(net.raft('n2').transferLeadership('n1').ok, false, 'only a leader transfers');
});

test('thesis §3.10 without a named target, the most up-to-date voter is chosen', () => {
  const net = leaderWithLaggingTarget(); // n3 is behind, n2 is not
  const result = net.raft('n1').transferLeadership(null);
  assert.deepEqual(result, { ok: true, to: 'n2' });
  net.process('n1');
  net.deliverAll(to('n2'));
  net.deliverAll();
  assert.equal(net.leader()?.id, 'n2');
});

test('thesis §3.10 with no target named, the most up-to-date voter; among equals the first the host prefers', () => {
  const five = ['n1', 'n2', 'n3', 'n4', 'n5'];
  const net = Network.bootstrap(five);
  net.elect('n1');
  net.isolate('n2');
  net.propose('n1', 'a');
  net.deliverAll();
  net.heal();
  // n3, n4 and n5 hold the whole log, n2 does not: preferring n2 does not make it the target.
  assert.deepEqual(net.raft('n1').transferLeadership(null, ['n2', 'n5', 'n3']), { ok: true, to: 'n5' });
});

test('thesis §3.10 with no target named and no preference, ties go to the first voter in progress order', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  assert.deepEqual(net.raft('n1').transferLeadership(null), { ok: true, to: 'n2' });
});

test('thesis §3.10 a stopping leader votes for the target with its TimeoutNow, once that vote is durable: the target wins without waiting for another voter', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.propose('n1', 'a');
  net.deliverAll();
  net.isolate('n3'); // the third voter answers nothing
  assert.deepEqual(net.raft('n1').transferLeadership('n2', [], true), { ok: true, to: 'n2' });
  net.process('n1');
  // The harness refuses a vote sent before its fsync; here the disk already holds it.
  assert.equal(net.node('n1').disk.hardState.term, 3);
  assert.equal(net.node('n1').disk.hardState.votedFor, 'n2');
  assert.equal(net.raft('n1').currentRole, 'follower', 'it leads no more once its vote is cast');
  assert.deepEqual(net.node('n1').eventsOf('steppedDown').map((e) => e.reason), ['transfer']);
  assert.deepEqual(
    net.peek(from('n1')).map((m) => [m.kind, m.to, m.term, m.kind === 'voteResponse' && m.granted]),
    [['timeoutNow', 'n2', 2, false], ['voteResponse', 'n2', 3, true]],
    'TimeoutNow first, then the vote for the term the target is about to campaign in',
  );
  net.deliver(from('n1'));
  const n2 = net.raft('n2');
  assert.equal(n2.currentRole, 'leader', 'its own vote and the stopping leader\'s are a majority of three');
  assert.equal(n2.currentTerm, 3);
  assert.equal(net.peek(and(from('n2'), to('n1'), ofKind('vote'))).length, 1, 'won before its vote request reached n1');
  net.heal();
  net.deliverAll();
  net.propose('n2', 'b');
  net.deliverAll();
  net.announceCommit('n2');
  for (const id of IDS) assert.deepEqual(net.node(id).state, ['a', 'b'], `${id} applied both`);
});

test('thesis §3.10 a stopping leader whose TimeoutNow is lost leaves the cluster leaderless only until an election timeout', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.raft('n1').transferLeadership('n2', [], true);
  net.process('n1');
  assert.equal(net.drop(and(from('n1'), to('n2'))).length, 2, 'TimeoutNow and the vote, both lost');
  net.runUntil(() => net.leader() !== undefined);
  const leader = net.leader();
  assert.ok(leader !== undefined, net.describe());
  assert.ok(leader.raft.currentTerm >= 3, `term ${leader.raft.currentTerm}`);
  net.propose(leader.id, 'after');
  net.deliverAll();
  net.announceCommit(leader.id);
  for (const id of IDS) assert.deepEqual(net.node(id).state, ['after'], `${id} applied the write of the new leader`);
});

test('thesis §3.10 a leader told that its transfer target died gives the transfer up at once and takes proposals again', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.isolate('n3'); // n3 lags behind: no TimeoutNow yet, the leader is still catching it up
  net.propose('n1', 'a');
  net.deliverAll();
  net.raft('n1').transferLeadership('n3');
  net.process('n1');
  assert.equal(net.propose('n1', 'refused').ok, false, 'refused while the transfer runs');
  net.raft('n1').reportPeerDead('n2'); // not the target: nothing changes
  net.process('n1');
  assert.equal(net.raft('n1').status().transferee, 'n3');
  net.crash('n3');
  net.raft('n1').reportPeerDead('n3');
  net.process('n1');
  assert.equal(net.raft('n1').status().transferee, null, 'given up without waiting an election timeout');
  assert.deepEqual(net.node('n1').eventsOf('transferAborted').map((e) => e.to), ['n3']);
  assert.equal(net.raft('n1').currentRole, 'leader', 'still leading with n2');
  assert.equal(net.propose('n1', 'b').ok, true);
  net.deliverAll();
  net.announceCommit('n1');
  assert.deepEqual(net.node('n2').state, ['a', 'b']);
});
