// A follower learns the commit index from the leader's answer to a forwarded write or read.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Raft } from '../../src/raft/raft.ts';
import type { Entry, Member } from '../../src/raft/types.ts';

const members: Member[] = [
  { id: 'n1', url: 'test://n1', voter: true },
  { id: 'n2', url: 'test://n2', voter: true },
  { id: 'n3', url: 'test://n3', voter: true },
];

function follower(terms: number[]): Raft {
  const entries: Entry[] = [{ kind: 'config', term: 1, index: 1, members }];
  terms.forEach((term, i) => entries.push({ kind: 'noop', term, index: i + 2 }));
  return new Raft(
    { id: 'n2', electionTicks: 10, heartbeatTicks: 1, random: () => 0.5 },
    { hardState: { term: terms.at(-1) ?? 1, votedFor: null, commitIndex: 0 }, snapshot: null, entries },
  );
}

test('§5.3 Log Matching: a follower holding a committed entry commits up to it', () => {
  const raft = follower([2, 2, 3]);
  raft.learnCommit(3, 2);
  assert.equal(raft.committedIndex, 3);
  // The entries up to there are handed out to apply.
  assert.deepEqual(raft.ready().committed.map((e) => e.index), [1, 2, 3]);
});

test('§5.3 a follower whose entry at that index has another term commits nothing', () => {
  const raft = follower([2, 2, 3]);
  raft.learnCommit(4, 4); // the leader's entry 4 is from term 4; ours is from term 3
  assert.equal(raft.committedIndex, 0);
});

test('§5.3 a follower that does not hold the entry yet commits nothing, and never moves back', () => {
  const raft = follower([2]);
  raft.learnCommit(5, 2);
  assert.equal(raft.committedIndex, 0);
  raft.learnCommit(2, 2);
  raft.learnCommit(1, 1);
  assert.equal(raft.committedIndex, 2);
});
