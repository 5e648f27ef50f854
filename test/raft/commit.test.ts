// §5.4.2 Committing entries from previous terms: Figure 8, step by step, and the new leader's no-op.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Raft } from '../../src/raft/raft.ts';
import type { Message } from '../../src/raft/types.ts';
import { Network, and, from, not, ofKind, to, type NodeOptions } from './harness.ts';

const FIVE = ['s1', 's2', 's3', 's4', 's5'];

/** Commits whatever a majority stores, whatever its term: the mistake Figure 8 warns about. */
class CountsReplicasRaft extends Raft {
  protected override canCommitByCounting(_index: number): boolean {
    return true;
  }
}

// Figure 8 is about basic Raft: no pre-vote and no leader lease, so that every vote the figure needs is
// cast. One entry per append lets an old entry reach a follower without the leader's newer ones.
const FIGURE8: NodeOptions = { preVote: false, checkQuorum: false, maxEntriesPerAppend: 1 };

/** The term of the entry each node's state machine applied at index, or undefined. */
function appliedTermAt(net: Network, id: string, index: number): number | undefined {
  return net.node(id).applied.get(index)?.term;
}

/**
 * Figure 8 (a)–(c). Index 1 is the bootstrap configuration; each leader's first entry is its no-op,
 * so "the entry of term 2 at index 2" is s1's no-op of term 2.
 */
function figure8UpToC(options: NodeOptions = FIGURE8): Network {
  const net = Network.bootstrap(FIVE, options);

  // (a) s1 leads term 2 and replicates its entry at index 2 to s2 only.
  net.campaign('s1');
  net.deliver(ofKind('vote'));
  net.deliver(ofKind('voteResponse'));
  assert.equal(net.raft('s1').currentRole, 'leader');
  assert.equal(net.raft('s1').currentTerm, 2);
  net.deliver(and(from('s1'), to('s2')));
  net.deliver(from('s2'));
  net.drop();
  assert.deepEqual(net.node('s1').logTerms(), [1, 2]);
  assert.deepEqual(net.node('s2').logTerms(), [1, 2]);
  assert.equal(net.raft('s1').committedIndex, 0, '(a) two of five is no majority (the bootstrap entry is not known committed yet either)');

  // (b) s1 crashes; s5 is elected for term 3 by s3, s4 and itself and appends a different entry at
  // index 2, which nobody receives before s5 crashes too.
  net.crash('s1');
  net.campaign('s5');
  net.deliver(ofKind('vote'));
  net.deliver(ofKind('voteResponse'));
  assert.equal(net.raft('s5').currentRole, 'leader');
  assert.equal(net.raft('s5').currentTerm, 3);
  net.drop();
  net.crash('s5');
  assert.deepEqual(net.node('s5').logTerms(), [1, 3]);

  // (c) s1 restarts from its disk. Its first try (term 3) fails because s3 and s4 voted for s5 in
  // term 3; it wins term 4 with s2 and s3.
  net.restart('s1');
  net.campaign('s1');
  net.deliver(ofKind('vote'));
  net.deliver(ofKind('voteResponse'));
  assert.equal(net.raft('s1').currentRole, 'candidate');
  net.campaign('s1');
  net.drop(to('s4'));
  net.deliver(ofKind('vote'));
  net.deliver(ofKind('voteResponse'));
  assert.equal(net.raft('s1').currentRole, 'leader');
  assert.equal(net.raft('s1').currentTerm, 4);
  // s1 replicates: s2 takes the term-4 no-op; s3 is repaired one entry at a time and so far holds
  // the term-2 entry only. (The figure shows s2 without index 3; holding it changes nothing below.)
  net.drop(to('s4'));
  net.drop(to('s5'));
  const s3WouldTakeIndex3 = (m: Message): boolean => m.to === 's3' && m.kind === 'append' && m.prevLogIndex === 2 && net.raft('s3').lastLogIndex >= 2;
  net.deliverAll(and(ofKind('append', 'appendResponse'), not(s3WouldTakeIndex3)));
  assert.deepEqual(net.node('s1').logTerms(), [1, 2, 4]);
  assert.deepEqual(net.node('s2').logTerms(), [1, 2, 4]);
  assert.deepEqual(net.node('s3').logTerms(), [1, 2]);
  assert.deepEqual(net.node('s4').logTerms(), [1]);
  assert.deepEqual(net.node('s5').logTerms(), [1, 3]);
  const known = net.raft('s1').status().progress.filter((p) => p.matchIndex >= 2).map((p) => p.id).sort();
  assert.deepEqual(known, ['s2', 's3'], 'the leader knows that s1, s2 and s3, a majority, store the term-2 entry');
  return net;
}

test('§5.4.2 Figure 8 (c): a leader does not commit a previous term\'s entry by counting replicas', () => {
  const net = figure8UpToC();
  assert.ok(net.raft('s1').committedIndex < 2, `index 2 is on a majority but is of term 2, not 4 (commit ${net.raft('s1').committedIndex})`);
  for (const id of ['s1', 's2', 's3']) assert.equal(appliedTermAt(net, id, 2), undefined, `${id} did not apply index 2`);
});

test('§5.4.2 Figure 8 (d): that entry can still be overwritten, and no one ever applied it', () => {
  const net = figure8UpToC();
  net.crash('s1');
  net.drop(from('s1'));
  // s5 restarts; it fails in term 4 (s2 and s3 voted for s1) and wins term 5 with s3, s4 and itself:
  // its last entry (term 3) is more up to date than theirs (terms 2 and 1).
  net.restart('s5');
  net.campaign('s5');
  net.deliver(ofKind('vote'));
  net.deliver(ofKind('voteResponse'));
  net.campaign('s5');
  net.deliverAll();
  assert.equal(net.raft('s5').currentRole, 'leader');
  assert.equal(net.raft('s5').currentTerm, 5);
  net.announceCommit('s5');
  for (const id of ['s2', 's3', 's4', 's5']) {
    assert.deepEqual(net.node(id).logTerms(), [1, 3, 5], `${id}: index 2 now holds s5's entry of term 3`);
    assert.equal(appliedTermAt(net, id, 2), 3);
  }
  assert.equal(appliedTermAt(net, 's1', 2), undefined, 's1 never applied the entry that was lost');
});

test('§5.4.2 Figure 8 (e): once the leader commits an entry of its own term, the earlier entry is committed and safe', () => {
  const net = figure8UpToC();
  net.deliverAll(); // s3 receives the term-4 entry: now on s1, s2, s3
  assert.equal(net.raft('s1').committedIndex, 3);
  assert.equal(appliedTermAt(net, 's1', 2), 2, 'index 2 (term 2) is committed with index 3');
  assert.equal(appliedTermAt(net, 's1', 3), 4);
  net.crash('s1');
  net.drop(from('s1'));
  // s5 can no longer win: s2 and s3 hold a more up-to-date log (last term 4).
  net.restart('s5');
  for (let attempt = 0; attempt < 3; attempt++) {
    net.campaign('s5');
    net.deliverAll();
    assert.notEqual(net.raft('s5').currentRole, 'leader');
  }
  net.runUntil(() => net.leader() !== undefined, undefined, ['s2', 's3', 's4', 's5']);
  const leader = net.leader();
  assert.ok(leader && ['s2', 's3'].includes(leader.id), `the new leader holds the committed entries (got ${leader?.id})`);
  net.runUntil(() => ['s2', 's3', 's4', 's5'].every((id) => net.node(id).appliedIndex >= 3), undefined, ['s2', 's3', 's4', 's5']);
  for (const id of ['s2', 's3', 's4', 's5']) assert.equal(appliedTermAt(net, id, 2), 2, `${id} applied the committed entry`);
});

test('§5.4.2 the Figure 8 check catches a leader that commits by counting replicas (planted bug)', () => {
  const net = figure8UpToC({ ...FIGURE8, impl: CountsReplicasRaft });
  assert.equal(net.raft('s1').committedIndex, 2, 'the buggy leader commits the term-2 entry that (d) will overwrite');
});

test('§5.4.2 a new leader\'s no-op commits the entries of earlier terms it holds', () => {
  const ids = ['n1', 'n2', 'n3'];
  const net = Network.bootstrap(ids, { maxEntriesPerAppend: 1 });
  net.elect('n1');
  // n1 appends x and reaches n2 only, then crashes without learning it.
  net.propose('n1', 'x');
  net.deliver(and(from('n1'), to('n2')));
  net.drop();
  net.crash('n1');
  assert.equal(net.raft('n2').committedIndex, 2);
  net.runUntil(() => net.raft('n2').currentRole === 'leader', undefined, ['n2', 'n3']);
  const n2 = net.node('n2');
  // The run above already repaired n3 and committed; replay the key moment from n2's point of view.
  assert.deepEqual(n2.logTerms().slice(0, 3), [1, 2, 2]);
  const termOfNoop = n2.raft.currentTerm;
  assert.equal(n2.raft.termAt(4), termOfNoop, 'the leader\'s own no-op follows x');
  const batch = n2.readys.find((rd) => rd.committed.some((e) => e.index === 3));
  assert.deepEqual(batch?.committed.map((e) => [e.index, e.term]), [[3, 2], [4, termOfNoop]], 'x was committed together with the no-op, not before it');
  assert.deepEqual(n2.state, ['x']);
  net.announceCommit('n2');
  assert.deepEqual(net.node('n3').state, ['x']);
});

test('§5.4.2 a new leader that knows a majority holds an old entry still waits for its no-op', () => {
  const ids = ['n1', 'n2', 'n3'];
  const net = Network.bootstrap(ids, { maxEntriesPerAppend: 1 });
  net.elect('n1');
  net.propose('n1', 'x');
  net.deliver(and(from('n1'), to('n2')));
  net.drop();
  net.crash('n1');
  net.tick('n3', 2 * 10); // n3's lease from n1 runs out (it may start a pre-vote; nobody answers)
  net.drop();
  net.campaign('n2');
  net.deliverAll(ofKind('vote', 'voteResponse'));
  assert.equal(net.raft('n2').currentRole, 'leader');
  // n3 lacks x: it refuses the first append, then receives x alone (one entry per append).
  const holdsX = (): boolean => net.raft('n3').lastLogIndex >= 3;
  net.deliverAll((m) => !(m.kind === 'append' && m.to === 'n3' && m.entries.some((e) => e.kind === 'noop') && holdsX()));
  assert.deepEqual(net.node('n3').logTerms(), [1, 2, 2]);
  assert.ok(net.raft('n2').status().progress.some((p) => p.id === 'n3' && p.matchIndex === 3), 'n2 knows n3 holds x');
  assert.equal(net.raft('n2').committedIndex, 2, 'x is on n2 and n3, but it is of an earlier term');
  net.deliverAll();
  assert.equal(net.raft('n2').committedIndex, 4, 'the no-op commits, and x with it');
  assert.deepEqual(net.node('n2').state, ['x']);
});

test('§5.3 thesis §10.2.1 a leader counts its own entry toward commit only once it is durable', () => {
  // Five voters: the leader and two followers are a majority only if the leader counts itself.
  const net = Network.bootstrap(FIVE);
  net.elect('s1');
  const leader = net.raft('s1');
  const result = leader.propose(new TextEncoder().encode('x'));
  assert.ok(result.ok);
  const rd = leader.ready(); // the entry goes out (sendNow) while the leader's own fsync runs
  for (const follower of ['s2', 's3']) {
    leader.step({ kind: 'appendResponse', from: follower, to: 's1', term: leader.currentTerm, success: true, matchIndex: result.index, rejectedIndex: 0, conflictIndex: 0, conflictTerm: 0, lastLogIndex: result.index });
  }
  assert.ok(leader.committedIndex < result.index, 'two followers and an entry the leader has not fsynced are not a majority');
  leader.advance(rd);
  assert.equal(leader.committedIndex, result.index, 'once its own fsync is done the leader counts itself');
});
