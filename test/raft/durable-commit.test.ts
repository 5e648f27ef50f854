// Committed entries that a node already holds durably are handed out at once (takeDurableCommitted),
// also while a Ready is being persisted, never beyond what is durable here and never out of order.
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

test('§5.3 a commit learnt while a Ready is persisted is handed out at once when the entries are durable here', () => {
  const raft = follower();
  assert.equal(raft.durableIndex, 4);
  const rd = raft.ready();
  raft.learnCommit(3, 2);
  assert.deepEqual(indexes(raft.takeDurableCommitted()), [1, 2, 3]);
  assert.deepEqual(raft.takeDurableCommitted(), [], 'each entry is handed out once');
  raft.advance(rd);
  assert.deepEqual(raft.ready().committed, [], 'and the next Ready does not hand them out again');
});

test('§5.3 committed entries not yet durable here wait for the fsync that covers them', () => {
  const raft = follower();
  raft.step(append(4, 3, [5, 6], 4));
  const first = raft.ready();
  assert.deepEqual(indexes(first.entries), [5, 6]);
  assert.deepEqual(indexes(first.committed), [1, 2, 3, 4]);
  assert.equal(raft.durableIndex, 4, 'the committed entries of this Ready are durable before its fsync');
  raft.learnCommit(6, 3);
  assert.deepEqual(raft.takeDurableCommitted(), [], '5 and 6 are committed but still being persisted');
  raft.advance(first);
  assert.equal(raft.durableIndex, 6);
  assert.deepEqual(indexes(raft.ready().committed), [5, 6]);
});

test('§5.3 nothing is handed out ahead of committed entries that still wait for an fsync (apply order)', () => {
  const raft = follower();
  raft.step(append(4, 3, [5, 6], 6));
  const first = raft.ready();
  assert.deepEqual(indexes(first.committed), [1, 2, 3, 4, 5, 6], 'handed out, 5 and 6 to apply after the fsync');
  raft.step(append(6, 3, [7], 6));
  assert.deepEqual(raft.takeDurableCommitted(), []);
  raft.advance(first);
  const second = raft.ready();
  assert.deepEqual(indexes(second.entries), [7]);
  assert.deepEqual(second.committed, []);
});

test('§7 while a snapshot waits to be persisted, no committed entry is handed out', () => {
  const raft = follower();
  const rd = raft.ready();
  raft.step({
    kind: 'snapshot', from: 'n1', to: 'n2', term: 3,
    snapshot: { meta: { index: 10, term: 3, members }, data: new Uint8Array([1]) },
  });
  raft.learnCommit(4, 3);
  assert.deepEqual(raft.takeDurableCommitted(), []);
  raft.advance(rd);
  const withSnapshot = raft.ready();
  assert.equal(withSnapshot.snapshot?.meta.index, 10);
  assert.deepEqual(raft.takeDurableCommitted(), [], 'nor while it is being persisted');
});
