// §7 Log compaction: snapshots, and InstallSnapshot for followers behind the compacted prefix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Snapshot } from '../../src/raft/types.ts';
import { ELECTION_TICKS, Network, encodeState, logOfTerms, not, ofKind, restored, voters } from './harness.ts';

const IDS = ['n1', 'n2', 'n3'];

function snapshotAt(index: number, term: number, state: readonly string[]): Snapshot {
  return { meta: { index, term, members: voters(IDS) }, data: encodeState(state) };
}

test('§7 compact() drops the log prefix up to the applied index and keeps the rest', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  for (const c of ['a', 'b', 'c']) net.propose('n1', c);
  net.deliverAll();
  const raft = net.raft('n1');
  const applied = net.node('n1').appliedIndex;
  const termThere = raft.termAt(applied);
  assert.throws(() => raft.compact(applied + 1, new Uint8Array()), /beyond applied/, 'nothing that is not applied');
  const snap = net.compact('n1');
  assert.deepEqual(snap.meta, { index: applied, term: termThere, members: raft.membership });
  assert.equal(raft.snapshotIndex, applied);
  assert.equal(raft.status().firstLogIndex, applied + 1);
  assert.equal(raft.entryAt(applied), undefined, 'the prefix is gone');
  assert.equal(raft.termAt(applied), termThere, 'but the term at the snapshot point is kept for the consistency check');
  assert.throws(() => raft.compact(applied, new Uint8Array()), /cannot snapshot/);
  // The log goes on after the snapshot point.
  net.propose('n1', 'd');
  net.deliverAll();
  net.announceCommit('n1');
  assert.deepEqual(net.node('n2').state, ['a', 'b', 'c', 'd']);
});

test('§7 a follower behind the compacted prefix receives InstallSnapshot and catches up', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.isolate('n3');
  for (const c of ['a', 'b', 'c', 'd']) net.propose('n1', c);
  net.deliverAll();
  const snap = net.compact('n1');
  net.propose('n1', 'e'); // one entry after the snapshot point
  net.deliverAll();
  net.heal();
  const n3 = net.node('n3');
  net.runUntil(() => n3.state.length === 5, 10);
  const snapshots = net.delivered.filter((m) => m.kind === 'snapshot' && m.to === 'n3');
  assert.equal(snapshots.length, 1, 'one InstallSnapshot');
  assert.equal(n3.raft.snapshotIndex, snap.meta.index);
  assert.deepEqual(n3.disk.snapshot?.meta, snap.meta, 'the snapshot is on n3\'s disk');
  assert.deepEqual(n3.state, ['a', 'b', 'c', 'd', 'e'], 'state from the snapshot, then the entry after it');
  assert.deepEqual(n3.logTerms(), net.node('n1').logTerms());
  // The result survives a restart: the disk holds the snapshot and the entries after it.
  net.crash('n3');
  net.restart('n3');
  const restarted = net.node('n3').readys.at(-1);
  assert.equal(restarted?.committed[0]?.index, snap.meta.index + 1, 'applying resumes after the snapshot');
  net.runUntil(() => net.node('n3').state.length === 5, 10);
  assert.deepEqual(net.node('n3').state, ['a', 'b', 'c', 'd', 'e']);
});

test('§7 a snapshot whose last entry matches the follower\'s log keeps the entries that follow it', () => {
  const net = new Network();
  net.add('n2', restored({ term: 5, entries: logOfTerms([1, 5, 5, 5, 5], IDS) }));
  net.step({ kind: 'snapshot', from: 'n1', to: 'n2', term: 5, snapshot: snapshotAt(3, 5, ['2@5', '3@5']) });
  const n2 = net.node('n2');
  assert.equal(n2.raft.lastLogIndex, 5, 'entries 4 and 5 are kept');
  assert.equal(n2.raft.committedIndex, 3);
  assert.ok(n2.readys.every((rd) => rd.snapshot === null), 'nothing to install: the log already has it');
  assert.deepEqual(n2.state, ['2@5', '3@5']);
  const [ack] = net.peek(ofKind('appendResponse'));
  assert.ok(ack.kind === 'appendResponse' && ack.success && ack.matchIndex === 3);
});

test('§7 a snapshot that conflicts with the follower\'s log replaces the whole log', () => {
  const net = new Network();
  net.add('n2', restored({ term: 5, entries: logOfTerms([1, 2, 2, 2], IDS) }));
  net.step({ kind: 'snapshot', from: 'n1', to: 'n2', term: 5, snapshot: snapshotAt(3, 5, ['x', 'y']) });
  const n2 = net.node('n2');
  assert.equal(n2.raft.lastLogIndex, 3);
  assert.equal(n2.raft.snapshotIndex, 3);
  assert.deepEqual(n2.disk.entries, [], 'the conflicting entries are gone from disk');
  assert.equal(n2.disk.snapshot?.meta.index, 3);
  assert.deepEqual(n2.state, ['x', 'y'], 'the state machine was loaded from the snapshot');
});

test('§7 a stale snapshot (covered by the commit index) is acknowledged without changes', () => {
  const net = new Network();
  net.add('n2', restored({ term: 5, commitIndex: 4, entries: logOfTerms([1, 5, 5, 5, 5], IDS) }));
  const readys = net.node('n2').readys.length;
  net.step({ kind: 'snapshot', from: 'n1', to: 'n2', term: 5, snapshot: snapshotAt(3, 5, ['2@5', '3@5']) });
  const n2 = net.node('n2');
  assert.equal(n2.raft.snapshotIndex, 0);
  assert.equal(n2.raft.lastLogIndex, 5);
  assert.ok(n2.readys.slice(readys).every((rd) => rd.snapshot === null && rd.entries.length === 0));
  const [ack] = net.peek(ofKind('appendResponse'));
  assert.ok(ack.kind === 'appendResponse' && ack.success);
  assert.equal(ack.kind === 'appendResponse' && ack.matchIndex, 4, 'it reports what it has, so the leader skips ahead');
});

test('§7 a lost InstallSnapshot is sent again', () => {
  const net = Network.bootstrap(IDS);
  net.elect('n1');
  net.isolate('n3');
  for (const c of ['a', 'b']) net.propose('n1', c);
  net.deliverAll();
  net.compact('n1');
  net.heal();
  let lost = 0;
  let rounds = 0;
  while (net.node('n3').state.length < 2 && rounds < 5 * ELECTION_TICKS) {
    for (const id of IDS) net.tick(id);
    net.deliverAll(not(ofKind('snapshot')));
    if (lost === 0) lost = net.drop(ofKind('snapshot')).length;
    net.deliverAll();
    rounds++;
  }
  assert.equal(lost, 1, 'the first snapshot was lost');
  assert.equal(net.delivered.filter((m) => m.kind === 'snapshot').length, 1, 'the second one arrived');
  assert.deepEqual(net.node('n3').state, ['a', 'b']);
  assert.ok(rounds <= 3 * ELECTION_TICKS, `recovered after ${rounds} rounds`);
});

test('§7 a follower takes its configuration from an installed snapshot', () => {
  const net = new Network();
  net.add('n2', restored({ term: 5, entries: logOfTerms([1, 2], ['n2', 'old']) }));
  net.step({ kind: 'snapshot', from: 'n1', to: 'n2', term: 5, snapshot: snapshotAt(4, 5, []) });
  assert.deepEqual(net.raft('n2').membership.map((m) => m.id), IDS);
  assert.deepEqual(net.node('n2').eventsOf('membershipChanged').at(-1)?.members.map((m) => m.id), IDS);
});
