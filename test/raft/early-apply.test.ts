// Committed entries are handed out at once (takeCommitted), also while a Ready is being persisted and
// also before they are durable here: committed means durable on a majority (§5.3, §5.4). Never out of
// order, never ahead of a snapshot waiting to be installed, and the log is compacted only over what
// is durable here.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Raft } from '../../src/raft/raft.ts';
import type { AppendRequest, Entry, Member } from '../../src/raft/types.ts';

const members: Member[] = [
  { id: 'n1', url: 'test://n1', voter: true },
  { id: 'n2', url: 'test://n2', voter: true },
  { id: 'n3', url: 'test://n3', voter: true },
];

/** Follower n2 of leader n1 in term 3, its log (restored, so durable) 1..4. */
function follower(): Raft {
  const entries: Entry[] = [{ kind: 'config', term: 1, index: 1, members }];
  [2, 2, 3].forEach((term, i) => entries.push({ kind: 'noop', term, index: i + 2 }));
  return new Raft(
    { id: 'n2', electionTicks: 10, heartbeatTicks: 1, random: () => 0.5 },
    { hardState: { term: 3, votedFor: null, commitIndex: 0 }, snapshot: null, entries },
  );
}

function append(prevLogIndex: number, prevLogTerm: number, indexes: number[], leaderCommit: number): AppendRequest {
  return {
    kind: 'append', from: 'n1', to: 'n2', term: 3, prevLogIndex, prevLogTerm,
    entries: indexes.map((index) => ({ kind: 'noop', term: 3, index })), leaderCommit,
  };
}

const indexes = (entries: readonly Entry[]): number[] => entries.map((e) => e.index);

test('§5.3 a commit learnt while a Ready is persisted is handed out at once', () => {
  const raft = follower();
  assert.equal(raft.durableIndex, 4);
  const rd = raft.ready();
  raft.learnCommit(3, 2);
  assert.deepEqual(indexes(raft.takeCommitted()), [1, 2, 3]);
  assert.deepEqual(raft.takeCommitted(), [], 'each entry is handed out once');
  raft.advance(rd);
  assert.deepEqual(raft.ready().committed, [], 'and the next Ready does not hand them out again');
});

test('§5.4 committed entries not yet durable here are handed out before the fsync that covers them', () => {
  const raft = follower();
  raft.step(append(4, 3, [5, 6], 4));
  const first = raft.ready();
  assert.deepEqual(indexes(first.entries), [5, 6]);
  assert.deepEqual(indexes(first.committed), [1, 2, 3, 4]);
  raft.learnCommit(6, 3);
  assert.equal(raft.durableIndex, 4, '5 and 6 are still being persisted here');
  assert.deepEqual(indexes(raft.takeCommitted()), [5, 6], 'but committed: durable on a majority');
  raft.advance(first);
  assert.equal(raft.durableIndex, 6);
  assert.deepEqual(raft.ready().committed, [], 'handed out once');
});

test('§5.3 a Ready hands out the committed entries it persists, and later commits follow in order', () => {
  const raft = follower();
  raft.step(append(4, 3, [5, 6], 6));
  const first = raft.ready();
  assert.deepEqual(indexes(first.committed), [1, 2, 3, 4, 5, 6], 'committed with the entries that make them durable here');
  raft.step(append(6, 3, [7], 6));
  assert.deepEqual(raft.takeCommitted(), [], '7 is not committed');
  raft.learnCommit(7, 3);
  assert.deepEqual(indexes(raft.takeCommitted()), [7], 'committed before it reached a Ready');
  raft.advance(first);
  const second = raft.ready();
  assert.deepEqual(indexes(second.entries), [7], 'still to be persisted');
  assert.deepEqual(second.committed, []);
});

test('§7 while a snapshot waits to be persisted, no committed entry is handed out', () => {
  const raft = follower();
  const rd = raft.ready();
  raft.step({
    kind: 'snapshot', from: 'n1', to: 'n2', term: 3,
    snapshot: { meta: { index: 10, term: 3, members }, data: new Uint8Array([1]) },
  });
  raft.step(append(10, 3, [11], 11));
  assert.deepEqual(raft.takeCommitted(), [], 'entry 11 waits for the snapshot before it');
  raft.advance(rd);
  const withSnapshot = raft.ready();
  assert.equal(withSnapshot.snapshot?.meta.index, 10);
  assert.deepEqual(indexes(withSnapshot.committed), [11], 'handed out with the snapshot, to apply after its install');
  raft.step(append(11, 3, [12], 12));
  assert.deepEqual(raft.takeCommitted(), [], 'nor while it is being persisted');
  raft.advance(withSnapshot);
  assert.deepEqual(indexes(raft.takeCommitted()), [12], 'once installed, later commits are handed out again');
});

test('§7 the log is compacted only over entries durable here, even when later ones were applied', () => {
  const raft = follower();
  raft.step(append(4, 3, [5, 6], 6));
  const rd = raft.ready();
  assert.deepEqual(indexes(rd.committed), [1, 2, 3, 4, 5, 6]);
  assert.throws(() => raft.compact(6, new Uint8Array([1])), /beyond the durable index 4/);
  assert.equal(raft.compact(4, new Uint8Array([1])).meta.index, 4, 'up to what is durable, it may');
  raft.advance(rd);
  assert.equal(raft.compact(6, new Uint8Array([2])).meta.index, 6, 'and past it once the fsync ended');
});

test('§5.3 a commit learnt before the entry arrives is taken up when the append brings it', () => {
  const raft = follower();
  raft.ready();
  raft.learnCommit(6, 3);
  assert.deepEqual(raft.takeCommitted(), [], 'entry 6 is not in this log yet');
  raft.step(append(4, 3, [5, 6], 4));
  assert.deepEqual(indexes(raft.takeCommitted()), [1, 2, 3, 4, 5, 6], 'the append says 4, the answer said 6');
});

test('§5.3 a learnt commit is taken up only for the same entry, index and term', () => {
  const raft = follower();
  raft.ready();
  // Leader n1 of term 3 replicated 5 and 6; only 5 committed. n3 won term 4 without 6 and
  // committed its own 6 (term 4), which it tells this follower before its appends arrive.
  raft.step(append(4, 3, [5, 6], 4));
  const fromN3 = (prevLogIndex: number, entries: Entry[], leaderCommit: number): AppendRequest => ({
    kind: 'append', from: 'n3', to: 'n2', term: 4, prevLogIndex, prevLogTerm: 3, entries, leaderCommit,
  });
  raft.learnCommit(6, 4);
  assert.deepEqual(indexes(raft.takeCommitted()), [1, 2, 3, 4], 'this log holds (6, term 3), not (6, term 4)');
  raft.step(fromN3(4, [{ kind: 'noop', term: 3, index: 5 }], 5));
  assert.deepEqual(indexes(raft.takeCommitted()), [5], 'an append that leaves the old 6 in place does not commit it');
  raft.step(fromN3(5, [{ kind: 'noop', term: 4, index: 6 }], 5));
  assert.deepEqual(indexes(raft.takeCommitted()), [6], 'the append that brings (6, term 4) does');
});
