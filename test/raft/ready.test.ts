// The Ready contract (types.ts): what may leave before the fsync (sendNow), what must wait for it
// (messages), and the ready()/advance() handshake. The harness checks the ordering on every Ready of
// every test; these tests state it directly and show the harness's check can fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Raft } from '../../src/raft/raft.ts';
import type { Message, Ready } from '../../src/raft/types.ts';
import { HEARTBEAT_TICKS, InvariantError, Network, and, bytes, from, ofKind, to } from './harness.ts';

const IDS = ['n1', 'n2', 'n3'];
/** A message's kind, with votes and pre-votes told apart. */
function kindOf(m: Message): string {
  if (m.kind === 'vote' || m.kind === 'voteResponse') return m.preVote ? `pre-${m.kind}` : m.kind;
  return m.kind;
}

/** A busy life: elections, writes, reads, a lagging follower, a snapshot, a transfer, a crash. */
function busyCluster(): Network {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.isolate('n3');
  for (const c of ['a', 'b', 'c']) net.propose('n1', c);
  net.readIndex('n1', 1);
  net.deliverAll();
  net.compact('n1');
  net.heal();
  net.runUntil(() => net.node('n3').state.length === 3, 10);
  net.raft('n1').transferLeadership('n3');
  net.process('n1');
  net.runUntil(() => net.leader()?.id === 'n3', 20);
  net.crash('n2');
  net.restart('n2');
  net.propose('n3', 'd');
  net.runUntil(() => IDS.every((id) => net.node(id).state.length === 4), 20);
  return net;
}

test('Ready: sendNow carries what promises nothing durable and a leader\'s append, heartbeat, snapshot and timeoutNow traffic', () => {
  const net = busyCluster();
  const early = new Set<string>();
  const late = new Set<string>();
  for (const node of net.nodes.values()) {
    for (const rd of node.readys) {
      for (const m of rd.sendNow) early.add(kindOf(m));
      for (const m of rd.messages) late.add(kindOf(m));
    }
  }
  const promisingNothing = ['vote', 'pre-vote', 'pre-voteResponse', 'heartbeatResponse'];
  assert.deepEqual([...early].sort(), [...promisingNothing, 'append', 'heartbeat', 'snapshot', 'timeoutNow'].sort(), 'the busy run used sendNow for each of these');
  assert.deepEqual([...late].sort(), ['appendResponse', 'voteResponse'], 'a vote and an acknowledgement of entries wait for the persist step');
});

test('Ready: a follower acknowledges entries in messages, in the same Ready that hands them over to persist', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.propose('n1', 'x');
  net.deliver(and(from('n1'), to('n2'), ofKind('append')));
  const rd = net.node('n2').readys.at(-1);
  assert.ok(rd);
  assert.deepEqual(rd.entries.map((e) => e.index), [3]);
  assert.deepEqual(rd.sendNow, []);
  assert.deepEqual(rd.messages.map((m) => m.kind === 'appendResponse' && m.matchIndex), [3]);
});

test('Ready: a candidate whose votes arrive before its own vote is durable leads only after advance(), and its traffic then leaves at once', () => {
  const net = Network.bootstrap(IDS, { preVote: false });
  const n1 = net.raft('n1');
  n1.campaignNow();
  const rd1 = n1.ready(); // term 2 and the self-vote: handed over, not yet acknowledged by advance()
  assert.deepEqual(rd1.hardState, { term: 2, votedFor: 'n1', commitIndex: 0 });
  assert.deepEqual(rd1.sendNow.map((m) => [m.kind, m.to]), [['vote', 'n2'], ['vote', 'n3']]);
  net.step(rd1.sendNow[0]); // n2 votes; n3 has not heard yet
  for (const m of net.peek(ofKind('voteResponse'))) n1.step(m); // n2's vote arrives before advance()
  assert.equal(n1.currentRole, 'candidate', 'n2 granted, but n1\'s own vote is not durable yet: no majority');
  n1.advance(rd1);
  assert.equal(n1.currentRole, 'leader', 'the vote became durable: it counts, and the election is won');
  const rd2 = n1.ready();
  assert.deepEqual(rd2.sendNow.filter((m) => m.kind === 'append').map((m) => m.to), ['n2', 'n3'], 'its appends leave before the fsync');
  assert.deepEqual(rd2.messages, []);
  n1.advance(rd2);
});

test('Ready: ready() twice without advance() throws, and so does advance() without ready()', () => {
  const net = Network.bootstrap(IDS);
  const raft = net.raft('n1');
  raft.campaignNow();
  const rd = raft.ready();
  assert.throws(() => raft.ready(), /ready\(\) called again before advance\(\)/);
  raft.advance(rd);
  assert.throws(() => raft.advance(rd), /advance\(\) without ready\(\)/);
});

test('Ready: hasReady() is false once everything was handed over, and true after new input', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  const raft = net.raft('n1');
  assert.equal(raft.hasReady(), false);
  raft.tick();
  raft.tick();
  assert.equal(raft.hasReady(), true, 'a heartbeat is due');
  net.process('n1');
  assert.equal(raft.hasReady(), false);
  net.tick('n1', HEARTBEAT_TICKS);
  assert.ok(net.peek(ofKind('heartbeat')).length > 0);
});

/** A core that sends everything early, as a host that skipped the fsync would. */
class SendsEverythingEarly extends Raft {
  override ready(): Ready {
    const rd = super.ready();
    return { ...rd, sendNow: [...rd.sendNow, ...rd.messages], messages: [] as Message[] };
  }
}

test('Ready: the harness catches a vote that leaves before its fsync (planted bug)', () => {
  const net = Network.bootstrap(IDS, { preVote: false, impl: SendsEverythingEarly });
  net.campaign('n1');
  assert.throws(() => net.deliverAll(), /voteResponse \(a vote\) in sendNow/);
});

/** A candidate that counts its own vote before it is durable. */
class CountsOwnVoteEarly extends Raft {
  protected override ownVoteDurable(): boolean {
    return true;
  }
}

test('Ready: the harness catches a leader that won before its own vote was durable (planted bug)', () => {
  const alone = Network.bootstrap(['n1'], { preVote: false });
  alone.campaign('n1');
  assert.equal(alone.raft('n1').currentRole, 'leader', 'a single voter wins once its vote is on disk');
  const net = Network.bootstrap(['n1'], { preVote: false, impl: CountsOwnVoteEarly });
  assert.throws(() => net.campaign('n1'), /won term 2 while its disk holds term 1/);
});

test('Ready: while a Ready is being persisted, takeEarlyMessages hands out what needs no fsync and nothing else', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  const n1 = net.raft('n1');
  assert.equal(n1.propose(bytes('a')).ok, true);
  const rd = n1.ready(); // entry 'a' on its way to disk
  assert.deepEqual(rd.entries.map((e) => e.index), [3]);
  assert.equal(n1.propose(bytes('b')).ok, true);
  assert.equal(n1.readIndex(7).ok, true);
  n1.transferLeadership('n2');
  const early = n1.takeEarlyMessages();
  assert.deepEqual(
    early.map((m) => [m.kind, m.to, m.kind === 'append' ? m.entries.map((e) => e.index) : null]),
    [['heartbeat', 'n2', null], ['heartbeat', 'n3', null], ['append', 'n2', [4]], ['append', 'n3', [4]]],
    'the read round and entry b leave before a and b are durable',
  );
  assert.ok(early.every((m) => m.term === net.node('n1').disk.hardState.term), 'all of them for the durable term');
  assert.deepEqual(n1.takeEarlyMessages(), [], 'taken once');
  // A follower's acknowledgement of entries is a promise: it waits for its Ready, whatever happens
  // meanwhile; its acknowledgement of a heartbeat is not, and leaves at once.
  const n3 = net.raft('n3');
  for (const m of early) if (m.to === 'n3') n3.step(m); // straight into the core: its host is busy
  const followerRd = n3.ready();
  assert.deepEqual(followerRd.sendNow.map((m) => m.kind), ['heartbeatResponse']);
  assert.deepEqual(followerRd.messages.map((m) => m.kind), ['appendResponse']);
  n3.step({ kind: 'append', from: 'n1', to: 'n3', term: 2, prevLogIndex: 4, prevLogTerm: 2, entries: [], leaderCommit: 2 });
  n3.step({ kind: 'heartbeat', from: 'n1', to: 'n3', term: 2, commit: 2, seq: 9 });
  assert.deepEqual(n3.takeEarlyMessages().map((m) => m.kind), ['heartbeatResponse'], 'only the heartbeat\'s answer skips the fsync in flight');
  n3.advance(followerRd);
  n1.advance(rd);
});
