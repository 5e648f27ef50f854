// §5.3 Log replication: appending, the consistency check, repairing follower logs (Figure 7),
// and the flow-control limits on what a leader sends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AppendRequest, AppendResponse, Message } from '../../src/raft/types.ts';
import { HEARTBEAT_TICKS, Network, and, from, logOfTerms, ofKind, restored, text, to } from './harness.ts';

const IDS = ['n1', 'n2', 'n3'];

function append(fields: Partial<AppendRequest> & Pick<AppendRequest, 'prevLogIndex' | 'prevLogTerm'>): AppendRequest {
  return { kind: 'append', from: 'n1', to: 'n2', term: 5, entries: [], leaderCommit: 0, ...fields };
}

function appendReplies(net: Network): AppendResponse[] {
  return net.peek(ofKind('appendResponse')).filter((m): m is AppendResponse => m.kind === 'appendResponse');
}

/** A follower n2 at term 5 holding a log with the given terms (see logOfTerms). */
function follower(terms: readonly number[], commitIndex = 0): Network {
  const net = new Network();
  net.add('n2', restored({ term: 5, commitIndex, entries: logOfTerms(terms, IDS) }));
  return net;
}

test('§5.3 the leader appends a command to its own log, replicates it, commits it on a majority, and all apply it', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  const before = net.raft('n1').lastLogIndex;
  const result = net.propose('n1', 'set x=1');
  assert.deepEqual(result, { ok: true, index: before + 1, term: 2 });
  assert.equal(net.raft('n1').lastLogIndex, before + 1, 'in the leader\'s log at once');
  assert.equal(net.raft('n1').committedIndex, before, 'not committed before a majority has it');
  net.deliver(and(from('n1'), to('n2'), ofKind('append')));
  assert.equal(net.raft('n2').lastLogIndex, before + 1);
  net.deliver(and(from('n2'), ofKind('appendResponse')));
  assert.equal(net.raft('n1').committedIndex, before + 1, 'n1 and n2 are a majority of three');
  net.deliverAll();
  net.announceCommit('n1'); // followers learn the commit index with the next heartbeat
  for (const id of IDS) {
    assert.deepEqual(net.node(id).state, ['set x=1'], `${id} applied the command`);
    assert.equal(net.raft(id).committedIndex, before + 1);
  }
});

test('§5.3 a follower commits min(leaderCommit, index of its last new entry)', () => {
  const net = follower([1, 5]);
  const entries = logOfTerms([1, 5, 5], IDS).slice(2);
  net.step(append({ prevLogIndex: 2, prevLogTerm: 5, entries, leaderCommit: 9 }));
  assert.equal(net.raft('n2').committedIndex, 3, 'the leader committed 9, but n2 only knows its log matches up to 3');
  assert.equal(net.node('n2').appliedIndex, 3);
});

test('§5.3 the consistency check refuses an append whose prevLogTerm does not match, with a conflict hint', () => {
  const net = follower([1, 1, 2, 2]);
  net.step(append({ prevLogIndex: 4, prevLogTerm: 3, entries: logOfTerms([1, 1, 2, 3, 5], IDS).slice(4) }));
  assert.equal(net.raft('n2').lastLogIndex, 4, 'nothing appended');
  assert.deepEqual(net.node('n2').logTerms(), [1, 1, 2, 2], 'nothing deleted either');
  const [reply] = appendReplies(net);
  assert.equal(reply.success, false);
  assert.equal(reply.rejectedIndex, 4);
  assert.equal(reply.conflictTerm, 2, 'the term found at prevLogIndex');
  assert.equal(reply.conflictIndex, 3, 'the first index of that term');
});

test('§5.3 the consistency check refuses an append whose prevLogIndex is past the follower\'s log', () => {
  const net = follower([1, 1]);
  net.step(append({ prevLogIndex: 6, prevLogTerm: 4 }));
  const [reply] = appendReplies(net);
  assert.equal(reply.success, false);
  assert.equal(reply.conflictTerm, 0, 'no entry there at all');
  assert.equal(reply.conflictIndex, 3, 'the follower\'s next free index');
});

test('§5.3 a follower deletes a conflicting entry and all that follow it, then appends the leader\'s', () => {
  const net = follower([1, 1, 2, 2, 2]);
  const leaderLog = logOfTerms([1, 1, 3, 3], IDS);
  net.step(append({ prevLogIndex: 2, prevLogTerm: 1, entries: leaderLog.slice(2) }));
  const n2 = net.node('n2');
  assert.deepEqual(n2.logTerms(), [1, 1, 3, 3]);
  const rd = n2.readys.at(-1);
  assert.equal(rd?.entries[0].index, 3, 'the Ready tells the host to overwrite from index 3');
  assert.deepEqual(n2.disk.entries.map((e) => e.term), [1, 1, 3, 3], 'the disk holds the repaired log, not the old suffix');
  assert.deepEqual(appendReplies(net).map((r) => [r.success, r.matchIndex]), [[true, 4]]);
});

test('§5.3 duplicated and reordered appends never truncate entries that match', () => {
  const net = follower([1]);
  const leaderLog = logOfTerms([1, 5, 5, 5], IDS);
  const long = append({ prevLogIndex: 1, prevLogTerm: 1, entries: leaderLog.slice(1) }); // 2..4
  const short = append({ prevLogIndex: 1, prevLogTerm: 1, entries: leaderLog.slice(1, 2) }); // 2 only
  net.step(long);
  net.step(short); // an older append overtaken by the newer one
  net.step(long); // and a duplicate
  const n2 = net.node('n2');
  assert.deepEqual(n2.logTerms(), [1, 5, 5, 5], 'the stale append did not cut entries 3 and 4');
  const replies = appendReplies(net).map((r) => [r.success, r.matchIndex]);
  assert.deepEqual(replies, [[true, 4], [true, 2], [true, 4]], 'each acknowledges only what it proves');
  const writes = n2.readys.filter((rd) => rd.entries.length > 0);
  assert.equal(writes.length, 1, 'the duplicates wrote nothing to disk');
});

// Figure 7: the leader of term 8 has entries of terms [1,1,1,4,4,5,5,6,6,6]; a follower may hold any
// of the logs (a)–(f). The follower refuses an append per conflicting term of its own (plus one if its
// log is too short), thanks to the conflict hints of §5.3's last paragraphs, instead of one per entry.
const LEADER_TERMS = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
const figure7: readonly { readonly name: string; readonly terms: readonly number[]; readonly refusals: number }[] = [
  { name: '(a) missing one entry', terms: [1, 1, 1, 4, 4, 5, 5, 6, 6], refusals: 1 },
  { name: '(b) missing many entries', terms: [1, 1, 1, 4], refusals: 1 },
  { name: '(c) one extra uncommitted entry', terms: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], refusals: 0 },
  { name: '(d) extra entries of term 7', terms: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], refusals: 0 },
  { name: '(e) missing entries and extra entries of term 4', terms: [1, 1, 1, 4, 4, 4, 4], refusals: 2 },
  { name: '(f) extra entries of terms 2 and 3', terms: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], refusals: 2 },
];

for (const c of figure7) {
  test(`§5.3 Figure 7 ${c.name}: the follower converges to the leader's log in ${c.refusals + 1} append round trip(s)`, () => {
    // s1 becomes the leader of term 8 with the vote of s3, which holds the same log; s2 is the follower.
    const ids = ['s1', 's2', 's3'];
    const net = new Network();
    net.add('s1', restored({ term: 7, entries: logOfTerms(LEADER_TERMS, ids) }));
    net.add('s2', restored({ term: 7, entries: logOfTerms(c.terms, ids) }));
    net.add('s3', restored({ term: 7, entries: logOfTerms(LEADER_TERMS, ids) }));
    net.elect('s1');
    // A follower that was probing when the no-op committed hears of the commit with the next heartbeat.
    net.tick('s1', 2);
    net.deliverAll();
    const leader = net.node('s1');
    const followerNode = net.node('s2');
    assert.equal(leader.raft.currentTerm, 8);
    assert.deepEqual(leader.logTerms(), [...LEADER_TERMS, 8], 'the new leader appended its no-op');
    assert.deepEqual(followerNode.logTerms(), leader.logTerms(), 'the follower\'s log equals the leader\'s');
    assert.equal(followerNode.raft.committedIndex, 11);
    const toFollower = net.delivered.filter((m) => m.from === 's1' && m.to === 's2' && m.kind === 'append');
    const refusals = net.delivered.filter((m: Message) => m.from === 's2' && m.kind === 'appendResponse' && !m.success);
    assert.equal(refusals.length, c.refusals, `refusals: ${refusals.map((m) => m.kind === 'appendResponse' && `${m.rejectedIndex}:hint ${m.conflictIndex}/t${m.conflictTerm}`).join(', ')}`);
    assert.ok(toFollower.length <= c.refusals + 2, `${toFollower.length} appends: the refused ones, the repair, at most one carrying the commit index`);
    // The repaired follower applies exactly the leader's commands.
    assert.deepEqual(followerNode.state, leader.state);
    assert.deepEqual(followerNode.state, LEADER_TERMS.slice(1).map((term, i) => `${i + 2}@${term}`));
  });
}

test('§5.3 batching: no append carries more than maxEntriesPerAppend entries', () => {
  const net = Network.bootstrap(IDS, { maxEntriesPerAppend: 3 });
  net.elect('n1');
  net.isolate('n3');
  for (let i = 0; i < 10; i++) net.propose('n1', `c${i}`);
  net.deliverAll();
  net.heal();
  // n3 learns it is behind from the next heartbeat round; the leader then streams batches of three.
  net.tick('n1', 2);
  net.deliverAll();
  const appendsToN3 = net.delivered.filter((m): m is AppendRequest => m.kind === 'append' && m.to === 'n3');
  assert.ok(appendsToN3.every((m) => m.entries.length <= 3), `sizes ${appendsToN3.map((m) => m.entries.length).join(',')}`);
  assert.deepEqual(net.node('n3').logTerms(), net.node('n1').logTerms(), 'n3 caught up anyway');
  assert.ok(appendsToN3.filter((m) => m.entries.length > 0).length >= 4, '10 entries in batches of 3 need four appends');
});

test('§5.3 pipelining: at most maxInflightAppends unacknowledged appends per follower', () => {
  const net = Network.bootstrap(IDS, { maxInflightAppends: 3 });
  net.elect('n1');
  // n2 stops answering; each proposal would otherwise stream another append to it.
  for (let i = 0; i < 8; i++) net.propose('n1', `c${i}`);
  const inFlight = net.peek(and(from('n1'), to('n2'), ofKind('append')));
  assert.equal(inFlight.length, 3, 'the window is full after three appends');
  assert.equal(net.peek(and(from('n1'), to('n3'), ofKind('append'))).length, 3);
  // One acknowledgement opens one slot, and the next append carries everything not yet sent.
  net.deliver((m) => m === inFlight[0]);
  net.deliver(and(from('n2'), ofKind('appendResponse')));
  const next = net
    .peek(and(from('n1'), to('n2'), ofKind('append')))
    .filter((m): m is AppendRequest => m.kind === 'append' && !inFlight.includes(m) && m.entries.length > 0);
  assert.equal(next.length, 1, 'one slot, one append (an empty one may carry the new commit index)');
  assert.equal(next[0].entries.length, 5, 'the five proposals that waited for the window');
  net.deliverAll();
  net.announceCommit('n1');
  assert.deepEqual(net.node('n2').state, net.node('n1').state);
  assert.equal(net.node('n2').state.length, 8);
});

test('§5.3 a new leader streams to its voters at once: a write made while its no-op is unacknowledged leaves at once', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.propose('n1', 'a');
  net.deliverAll();
  net.announceCommit('n1');
  // n1 hands leadership to n2 (thesis §3.10), which wins term 3; its no-op is on the way to n3
  // and not yet acknowledged.
  net.raft('n1').transferLeadership('n2');
  net.process('n1');
  net.deliverAll((m) => m.kind === 'timeoutNow' || m.kind === 'vote' || m.kind === 'voteResponse');
  assert.equal(net.raft('n2').currentRole, 'leader');
  const noop = net.peek(and(from('n2'), to('n3'), ofKind('append')));
  assert.equal(noop.length, 1, 'the no-op went out');
  net.propose('n2', 'b');
  const toN3 = net.peek(and(from('n2'), to('n3'), ofKind('append'))).filter((m): m is AppendRequest => m.kind === 'append');
  assert.equal(toN3.length, 2, 'the write left without waiting for the answer to the no-op');
  assert.deepEqual(toN3[1].entries.map((e) => e.kind === 'command' && text(e.data)), ['b']);
  assert.equal(toN3[1].prevLogIndex, toN3[0].prevLogIndex + 1, 'streamed right behind the no-op');
  net.deliverAll();
  net.announceCommit('n2');
  for (const id of IDS) assert.deepEqual(net.node(id).state, ['a', 'b'], `${id} applied both`);
  assert.equal(net.delivered.filter((m) => m.kind === 'appendResponse' && !m.success).length, 0, 'nothing was refused');
});

test('§5.3 a new leader streaming to a voter whose log differs falls back to probing it, and the streamed appends behind the refused one change nothing', () => {
  // s1 leads term 8 with s3's vote; s2 holds entries of terms 2 and 3 that s1 does not (Figure 7 (f)).
  const ids = ['s1', 's2', 's3'];
  const net = new Network();
  net.add('s1', restored({ term: 7, entries: logOfTerms(LEADER_TERMS, ids) }));
  net.add('s2', restored({ term: 7, entries: logOfTerms([1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], ids) }));
  net.add('s3', restored({ term: 7, entries: logOfTerms(LEADER_TERMS, ids) }));
  net.campaign('s1');
  net.deliverAll((m) => m.kind === 'vote' || m.kind === 'voteResponse');
  assert.equal(net.raft('s1').currentRole, 'leader');
  for (let i = 0; i < 3; i++) net.propose('s1', `w${i}`);
  const streamed = net.peek(and(from('s1'), to('s2'), ofKind('append')));
  assert.ok(streamed.length >= 2, `${streamed.length} appends streamed before any answer`);
  net.deliverAll();
  net.announceCommit('s1');
  assert.deepEqual(net.node('s2').logTerms(), net.node('s1').logTerms(), 's2 converged to the leader\'s log');
  assert.deepEqual(net.node('s2').state, net.node('s1').state);
  assert.deepEqual(net.node('s1').state.slice(-3), ['w0', 'w1', 'w2']);
  assert.ok(net.delivered.some((m) => m.kind === 'appendResponse' && m.from === 's2' && !m.success), 's2 refused the optimistic append');
});

test('§5.3 the leader retries until a lost append arrives (followers that stopped answering catch up)', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.isolate('n2'); // everything to n2 is lost for a while
  net.propose('n1', 'a');
  net.deliverAll();
  assert.equal(net.raft('n1').committedIndex, 3);
  assert.equal(net.raft('n2').lastLogIndex, 2);
  net.heal();
  const rounds = net.runUntil(() => net.node('n2').state.length === 1, 5);
  assert.deepEqual(net.node('n2').state, ['a']);
  assert.ok(rounds <= 2, `caught up by the next heartbeat (took ${rounds} rounds)`);
});

test('§5.3 a follower never commits past the last entry an append vouched for, even if it holds more', () => {
  // n2 still holds entries 3 and 4 of an old term 2 that the leader of term 5 does not have. An
  // append that matches up to 2 says nothing about them: committing them by leaderCommit would apply
  // entries the cluster never committed.
  const net = follower([1, 1, 2, 2]);
  net.step(append({ prevLogIndex: 2, prevLogTerm: 1, entries: [], leaderCommit: 4 }));
  assert.equal(net.raft('n2').committedIndex, 2, 'the append vouched for the log up to 2 only');
  assert.equal(net.node('n2').appliedIndex, 2);
});

test('§5.3 a stale answer never moves matchIndex back; an answer to a later heartbeat round from a follower that lost entries does', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.propose('n1', 'set x=1');
  net.deliverAll();
  const leader = net.raft('n1');
  const matchOf = (id: string): number => leader.status().progress.find((p) => p.id === id)?.matchIndex ?? -1;
  const acked = matchOf('n2');
  assert.equal(acked, leader.lastLogIndex);
  const term = leader.currentTerm;
  // An answer to a heartbeat sent before n2 acknowledged (delayed or reordered on the way back).
  net.step({ kind: 'heartbeatResponse', from: 'n2', to: 'n1', term, seq: 0, lastLogIndex: 1 });
  assert.equal(matchOf('n2'), acked, 'a stale answer says nothing about what n2 holds now');
  // An answer to a round that started after the acknowledgement: n2 really lost its entries (a
  // wiped data directory), so the leader probes it again from what it holds.
  net.tick('n1', HEARTBEAT_TICKS);
  const round = net.peek(ofKind('heartbeat')).find((m) => m.to === 'n2');
  assert.ok(round?.kind === 'heartbeat');
  net.step({ kind: 'heartbeatResponse', from: 'n2', to: 'n1', term, seq: round.seq, lastLogIndex: 1 });
  assert.equal(matchOf('n2'), 1);
});
