// RaftNode, the runtime loop, with in-memory fakes for its ports: what a client call waits for and
// how it ends (src/api/ops.ts), forwarding from a follower, read barriers, shutdown and storage
// failure. The whole-node simulator (test/wholesim) runs the same code under faults.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientError } from '../../src/api/ops.ts';
import { decodeKvCommand, encodeKvCommand } from '../../src/kv/index.ts';
import type { KvCommand } from '../../src/kv/types.ts';
import type { AppendRequest, Entry, Message, VoteRequest } from '../../src/raft/types.ts';
import { ELECTION_TIMEOUT_MS, startNode, type Harness } from './fakes.ts';

const THREE = ['n1', 'n2', 'n3'];
const put = (key: string, value: string): KvCommand => ({ op: 'put', key, value: new TextEncoder().encode(value) });

/** Tracks a promise's outcome without awaiting it. */
function watch<T>(promise: Promise<T>): { settled: () => boolean; value: () => T; error: () => unknown } {
  let state: { done: false } | { done: true; ok: true; value: T } | { done: true; ok: false; error: unknown } = { done: false };
  promise.then(
    (value) => (state = { done: true, ok: true, value }),
    (error: unknown) => (state = { done: true, ok: false, error }),
  );
  return {
    settled: () => state.done,
    value: () => {
      if (!state.done || !state.ok) throw new Error(`not resolved: ${JSON.stringify(state)}`);
      return state.value;
    },
    error: () => {
      if (!state.done || state.ok) throw new Error('not rejected');
      return state.error;
    },
  };
}

function clientError(error: unknown): ClientError {
  assert.ok(error instanceof ClientError, `expected a ClientError, got ${String(error)}`);
  return error;
}

/** Makes h's node leader of a three-node cluster by granting its pre-votes and votes. */
async function elect(h: Harness): Promise<number> {
  for (let waited = 0; h.node.status().role !== 'leader'; waited += 10) {
    assert.ok(waited < 20 * ELECTION_TIMEOUT_MS, 'the node never campaigned');
    await h.clock.advance(10);
    for (const m of h.peers.take((x) => x.kind === 'vote') as VoteRequest[]) {
      h.node.onMessages([{ kind: 'voteResponse', from: m.to, to: m.from, term: m.term, preVote: m.preVote, granted: true }]);
    }
    await h.clock.settle();
  }
  h.peers.take();
  return h.node.status().term;
}

/** Makes h's node (n1) follow n2 as leader of `term`. */
async function follow(h: Harness, term: number): Promise<void> {
  h.node.onMessages([{ kind: 'heartbeat', from: 'n2', to: 'n1', term, commit: 0, seq: 1 }]);
  await h.clock.settle();
  assert.equal(h.node.leader()?.id, 'n2');
}

function appendFromN2(term: number, prevLogIndex: number, prevLogTerm: number, entries: Entry[], leaderCommit: number): Message {
  const m: AppendRequest = { kind: 'append', from: 'n2', to: 'n1', term, prevLogIndex, prevLogTerm, entries, leaderCommit };
  return m;
}

test('a proposal on a leader resolves once its entry is fsynced, committed and applied', async () => {
  const h = startNode('n1', ['n1']);
  h.node.campaignIfAlone();
  await h.clock.settle();
  assert.equal(h.node.status().role, 'leader');
  h.store.autoSync = false;
  const write = watch(h.node.propose(put('k', 'v1'), h.clock.now() + 1000));
  await h.clock.settle();
  assert.equal(write.settled(), false, 'not before the fsync');
  assert.equal(h.kv.get('k'), undefined);
  h.store.syncAll();
  await h.clock.settle();
  h.store.syncAll();
  await h.clock.settle();
  const result = write.value();
  assert.equal(result.ok, true);
  assert.ok(h.kv.appliedIndex >= result.index, 'applied here before the answer');
  assert.equal(new TextDecoder().decode(h.kv.get('k')?.value), 'v1');
  assert.equal(h.kv.get('k')?.modIndex, result.index);
});

/** n2's acknowledgement to leader n1 that its log matches up to matchIndex. */
function ackFromN2(term: number, matchIndex: number): Message {
  return { kind: 'appendResponse', from: 'n2', to: 'n1', term, success: true, matchIndex, rejectedIndex: 0, conflictIndex: 0, conflictTerm: 0, lastLogIndex: matchIndex };
}

test('a leader answers a write committed during one fsync without waiting for the next (entries appended meanwhile)', async () => {
  const h = startNode('n1', THREE);
  const term = await elect(h);
  h.node.onMessages([ackFromN2(term, h.node.status().lastLogIndex)]);
  await h.clock.settle();
  h.store.autoSync = false;
  const first = watch(h.node.propose(put('a', '1'), h.clock.now() + 1000));
  await h.clock.settle();
  assert.equal(h.store.pending, 1, "the first write's fsync runs");
  const firstIndex = h.node.status().lastLogIndex;
  h.node.onMessages([ackFromN2(term, firstIndex)]); // n2 was faster than our disk
  const second = watch(h.node.propose(put('b', '2'), h.clock.now() + 1000));
  await h.clock.settle();
  assert.equal(first.settled(), false, 'not committed before this leader has it on disk (it counts itself once durable)');
  h.store.syncAll();
  await h.clock.settle();
  assert.equal(h.store.pending, 1, "the second write's fsync runs");
  assert.deepEqual(first.value(), { ok: true, index: firstIndex, term }, 'answered while the fsync of the entry appended after it runs');
  assert.equal(second.settled(), false, 'the second write is not durable here yet');
  h.node.onMessages([ackFromN2(term, firstIndex + 1)]);
  await h.clock.settle();
  assert.equal(second.settled(), false, 'a follower acknowledgement alone does not commit it');
  h.store.syncAll();
  await h.clock.settle();
  h.store.syncAll();
  await h.clock.settle();
  assert.equal(second.value().ok, true);
});

test('a follower applies what the append says is committed while its own fsync of it runs, and snapshots only once it is durable', async () => {
  const h = startNode('n1', THREE, { snapshotEntries: 2 });
  await follow(h, 2);
  h.store.autoSync = false;
  const entries: Entry[] = [
    { kind: 'noop', term: 2, index: 2 },
    { kind: 'command', term: 2, index: 3, data: encodeKvCommand(put('k', 'v')) },
  ];
  h.node.onMessages([appendFromN2(2, 1, 1, entries, 3)]);
  await h.clock.settle();
  assert.equal(h.store.pending, 1, 'entries 2 and 3 are not yet on this disk');
  // Committed: the leader has them durably on a majority (§5.4), whatever this fsync does.
  assert.equal(h.kv.appliedIndex, 3);
  assert.equal(h.store.snapshots.length, 0, 'no snapshot over entries not durable here');
  h.store.syncAll();
  await h.clock.settle();
  assert.equal(h.store.snapshots.length, 1, 'once they are durable, the snapshot is due');
  assert.equal(h.store.snapshots[0]!.meta.index, 3);
});

test('a write or read that is answered leaves no deadline timer behind (none piles up under load)', async () => {
  const h = startNode('n1', ['n1']);
  h.node.campaignIfAlone();
  await h.clock.settle();
  assert.equal(h.node.status().role, 'leader');
  const before = h.clock.pendingTimers();
  // Deadlines an hour away: a timer not cancelled when its call is answered would still be pending.
  const deadline = h.clock.now() + 3_600_000;
  const writes = Array.from({ length: 50 }, (_, i) => watch(h.node.propose(put(`k${i}`, 'v'), deadline)));
  const reads = Array.from({ length: 5 }, () => watch(h.node.readBarrier(deadline)));
  await h.clock.advance(50);
  assert.ok(writes.every((w) => w.settled() && w.value().ok), 'every write was answered');
  assert.ok(reads.every((r) => r.settled()), 'every read barrier was answered');
  assert.equal(h.clock.pendingTimers(), before, 'the deadline timers of answered calls were cancelled');
});

test('writes waiting on a leader share one deadline timer, however many there are', async () => {
  const h = startNode('n1', THREE);
  await elect(h);
  const before = h.clock.pendingTimers();
  // No follower acknowledges: all 50 wait for their commit, each with its own deadline.
  const writes = Array.from({ length: 50 }, (_, i) => watch(h.node.propose(put(`k${i}`, 'v'), h.clock.now() + 10_000 + i)));
  await h.clock.settle();
  assert.equal(writes.some((w) => w.settled()), false);
  assert.ok(h.clock.pendingTimers() - before <= 1, `one timer for 50 deadlines, found ${h.clock.pendingTimers() - before}`);
});

test('forwarded writes waiting to be applied on a follower share one deadline timer, and are answered in index order', async () => {
  const h = startNode('n1', THREE);
  await follow(h, 2);
  const cmds = Array.from({ length: 20 }, (_, i) => put(`k${i}`, `v${i}`));
  // The leader answers each with its index (3 onwards: 2 is the new leader's no-op), in any order.
  h.peers.onPropose = async (_url, cmd) => ({ ok: true, index: 3 + cmds.indexOf(cmd), term: 2 });
  const before = h.clock.pendingTimers();
  const writes = [...cmds].reverse().map((cmd) => watch(h.node.propose(cmd, h.clock.now() + 10_000)));
  await h.clock.settle();
  assert.equal(writes.some((w) => w.settled()), false, 'committed at the leader, not yet applied here');
  assert.ok(h.clock.pendingTimers() - before <= 1, `one timer for 20 waits, found ${h.clock.pendingTimers() - before}`);
  const entries: Entry[] = [{ kind: 'noop', term: 2, index: 2 }, ...cmds.map((cmd, i): Entry => ({ kind: 'command', term: 2, index: 3 + i, data: encodeKvCommand(cmd) }))];
  // The entries up to index 12 arrive: the first ten writes are answered, the others still wait.
  h.node.onMessages([appendFromN2(2, 1, 1, entries.slice(0, 11), 12)]);
  await h.clock.settle();
  const answered = writes.filter((w) => w.settled()).map((w) => w.value().index).sort((a, b) => a - b);
  assert.deepEqual(answered, [3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  // The rest arrive with the leader's commit index still at 12: the answers said they are committed
  // (Raft.learnCommit keeps that until the entries are here), so they are applied now.
  h.node.onMessages([appendFromN2(2, 12, 2, entries.slice(11), 12)]);
  await h.clock.settle();
  assert.ok(writes.every((w) => w.settled() && w.value().ok));
  assert.equal(h.clock.pendingTimers(), before, 'no deadline timer is left behind');
});

test('a forwarded write committed at the leader but not applied here by its deadline is a timeout', async () => {
  const h = startNode('n1', THREE);
  await follow(h, 2);
  h.peers.onPropose = async () => ({ ok: true, index: 3, term: 2 });
  const write = watch(h.node.propose(put('k', 'v'), h.clock.now() + 200));
  await h.clock.advance(150);
  assert.equal(write.settled(), false);
  await h.clock.advance(100);
  const error = clientError(write.error());
  assert.equal(error.code, 'timeout');
  assert.equal(error.message, 'committed at index 3 but not yet applied on n1');
});

test('stop() rejects a forwarded write waiting to be applied here', async () => {
  const h = startNode('n1', THREE);
  await follow(h, 2);
  h.peers.onPropose = async () => ({ ok: true, index: 3, term: 2 });
  const write = watch(h.node.propose(put('k', 'v'), h.clock.now() + 10_000));
  await h.clock.settle();
  assert.equal(write.settled(), false);
  await h.node.stop();
  await h.clock.settle();
  assert.equal(clientError(write.error()).code, 'unavailable');
});

test('a leader proposes a forwarded command as the bytes it came in, and refuses one that can never apply', async () => {
  const h = startNode('n1', ['n1']);
  h.node.campaignIfAlone();
  await h.clock.settle();
  const cmd = put('k', 'v');
  const bytes = encodeKvCommand(cmd);
  const write = watch(h.node.onPropose(cmd, h.clock.now() + 1000, bytes));
  await h.clock.settle();
  const result = write.value();
  assert.equal(result.ok, true);
  const entry = h.store.saved.flatMap((u) => u.entries ?? []).find((e) => e.index === result.index);
  assert.ok(entry !== undefined && entry.kind === 'command');
  assert.equal(entry.data, bytes, 'the very bytes, not encoded again');
  // A put with both If-Match and If-None-Match: encodeKvCommand refuses it, so set the
  // If-None-Match flag bit (0b10, the third byte) in a valid If-Match put by hand.
  const last = h.node.status().lastLogIndex;
  const encodedBoth = encodeKvCommand({ ...put('k', 'v'), ifMatch: 1 });
  encodedBoth[2] = (encodedBoth[2] ?? 0) | 0b10;
  const both = decodeKvCommand(encodedBoth);
  assert.ok(both.op === 'put' && both.ifMatch === 1 && both.ifNoneMatch === true, 'the log decoder reads it');
  const refused = watch(h.node.onPropose(both, h.clock.now() + 1000, encodedBoth));
  await h.clock.settle();
  const error = clientError(refused.error());
  assert.equal(error.code, 'bad_request');
  assert.match(error.message, /exclude each other/);
  assert.equal(h.node.status().lastLogIndex, last, 'nothing was proposed');
});

test('a forwarded write refused by an overloaded leader until its deadline says so, not only that time ran out', async () => {
  const h = startNode('n1', THREE);
  await follow(h, 2);
  h.peers.onPropose = async (_url, _cmd, deadlineMs) => {
    if (h.clock.now() + 1 > deadlineMs) throw new ClientError('no_leader', 'the deadline passed before the propose could be forwarded; not sent');
    throw new ClientError('no_leader', 'the leader is overloaded: 99 bytes of entries are waiting to commit (limit 90); not proposed, retry later');
  };
  const write = watch(h.node.propose(put('k', 'v'), h.clock.now() + 200));
  await h.clock.advance(300);
  const error = clientError(write.error());
  assert.equal(error.code, 'no_leader', 'certainly not applied: a retry is safe');
  assert.match(error.message, /\(retried after: the leader is overloaded: 99 bytes/);
  assert.ok(h.peers.calls.length >= 2, 'it retried while time remained');
});

test('a forward refused after leadership moved goes to the new leader at once, a write and a read alike', async () => {
  // The pattern of a hand-off: the old leader answers a forward late (its thread busy with the
  // transfer), after this node has already heard from its successor. Nothing was appended by the
  // refusal, so the call goes on to the successor without waiting for another change of leader.
  const h = startNode('n1', THREE);
  await follow(h, 2);
  const refuseFromN2: { propose?: () => void; read?: () => void } = {};
  const noLeader = (): ClientError => new ClientError('no_leader', 'n2 is not the leader: not proposed');
  h.peers.onPropose = (url) =>
    url === 'fake://n2' ? new Promise((_resolve, reject) => (refuseFromN2.propose = () => reject(noLeader()))) : Promise.resolve({ ok: true, index: 5, term: 3 });
  h.peers.onReadIndex = (url) =>
    url === 'fake://n2' ? new Promise((_resolve, reject) => (refuseFromN2.read = () => reject(noLeader()))) : Promise.resolve({ index: 0, term: 3 });
  const write = watch(h.node.propose(put('k', 'v'), h.clock.now() + 5000));
  const read = watch(h.node.readBarrier(h.clock.now() + 5000));
  await h.clock.settle();
  assert.deepEqual(h.peers.calls.map((c) => c.url), ['fake://n2', 'fake://n2']);
  h.node.onMessages([{ kind: 'heartbeat', from: 'n3', to: 'n1', term: 3, commit: 0, seq: 1 }]);
  await h.clock.settle();
  assert.equal(h.node.leader()?.id, 'n3');
  refuseFromN2.propose?.();
  refuseFromN2.read?.();
  await h.clock.settle(); // no time passes: a wait for the next change would hold both calls here
  assert.deepEqual(h.peers.calls.map((c) => `${c.kind} ${c.url}`).sort(), ['propose fake://n2', 'propose fake://n3', 'readIndex fake://n2', 'readIndex fake://n3']);
  assert.equal(read.settled(), true, 'n3 confirmed the read');
  assert.equal(write.settled(), false, 'committed at n3, answered once applied here');
});

test('a snapshot is taken once the commands applied since the last one reach snapshotBytes, however few they are', async () => {
  // The log between snapshots is held in memory: 10,000 entries of 1 MiB values must not pile up
  // just because the entry count is not reached.
  const h = startNode('n1', ['n1'], { snapshotEntries: 1_000_000, snapshotBytes: 2000 });
  h.node.campaignIfAlone();
  await h.clock.settle();
  const value = 'x'.repeat(900);
  const write = async (key: string): Promise<number> => {
    const w = watch(h.node.propose(put(key, value), h.clock.now() + 1000));
    await h.clock.advance(10);
    const result = w.value();
    assert.ok(result.ok);
    return result.index;
  };
  await write('a');
  await write('b');
  assert.equal(h.store.snapshots.length, 0, 'about 1,800 bytes applied: no snapshot yet');
  const third = await write('c');
  assert.equal(h.store.snapshots.length, 1, 'past 2,000 bytes: one snapshot');
  assert.equal(h.store.snapshots[0]!.meta.index, third, 'taken at the applied index');
  await write('d');
  assert.equal(h.store.snapshots.length, 1, 'the count starts again after a snapshot');
});

test('a follower forwards a write to the leader and answers once the entry is applied locally', async () => {
  const h = startNode('n1', THREE);
  await follow(h, 2);
  const cmd = put('k', 'v1');
  h.peers.onPropose = async () => ({ ok: true, index: 3, term: 2 });
  const write = watch(h.node.propose(cmd, h.clock.now() + 1000));
  await h.clock.settle();
  assert.deepEqual(h.peers.calls.map((c) => [c.kind, c.url]), [['propose', 'fake://n2']]);
  assert.equal(write.settled(), false, 'committed at the leader, but not yet applied here (read-your-writes)');
  const entries: Entry[] = [
    { kind: 'noop', term: 2, index: 2 },
    { kind: 'command', term: 2, index: 3, data: encodeKvCommand(cmd) },
  ];
  h.node.onMessages([appendFromN2(2, 1, 1, entries, 3)]);
  await h.clock.settle();
  assert.deepEqual(write.value(), { ok: true, index: 3, term: 2 });
  assert.equal(h.kv.appliedIndex, 3);
});

test('a read barrier on a follower waits until the read index is applied here', async () => {
  const h = startNode('n1', THREE);
  await follow(h, 2);
  h.peers.onReadIndex = async () => ({ index: 3, term: 2 });
  const barrier = watch(h.node.readBarrier(h.clock.now() + 1000));
  await h.clock.advance(50);
  assert.equal(barrier.settled(), false, 'the leader confirmed index 3; this node has applied less');
  h.node.onMessages([appendFromN2(2, 1, 1, [{ kind: 'noop', term: 2, index: 2 }], 2)]);
  await h.clock.settle();
  assert.equal(barrier.settled(), false, 'index 2 is not enough');
  h.node.onMessages([appendFromN2(2, 2, 2, [{ kind: 'command', term: 2, index: 3, data: encodeKvCommand(put('k', 'v')) }], 3)]);
  await h.clock.settle();
  assert.equal(barrier.settled(), true);
  assert.equal(h.kv.appliedIndex, 3);
});

test('without a leader, a write is refused with no_leader at its deadline (certainly not proposed)', async () => {
  const h = startNode('n1', THREE);
  const write = watch(h.node.propose(put('k', 'v'), h.clock.now() + 200));
  await h.clock.advance(150);
  assert.equal(write.settled(), false, 'it waits for a leader while the deadline allows');
  await h.clock.advance(100);
  assert.equal(clientError(write.error()).code, 'no_leader');
  assert.equal(h.peers.calls.length, 0);
  const read = watch(h.node.readBarrier(h.clock.now() + 100));
  await h.clock.advance(150);
  assert.equal(clientError(read.error()).code, 'no_leader');
});

test('a write a leader proposed but could not commit in time is a timeout (outcome unknown)', async () => {
  const h = startNode('n1', THREE);
  await elect(h);
  // Within an election timeout (before check-quorum deposes it) the leader still believes it leads.
  const read = watch(h.node.readBarrier(h.clock.now() + 40));
  const write = watch(h.node.propose(put('k', 'v'), h.clock.now() + 200));
  await h.clock.advance(50);
  assert.equal(clientError(read.error()).code, 'timeout', 'no majority answered the heartbeat round');
  await h.clock.advance(200);
  const error = clientError(write.error());
  assert.equal(error.code, 'timeout');
  assert.match(error.message, /outcome is unknown/);
});

test('past its budget of uncommitted bytes a leader refuses writes with no_leader (not proposed: retry)', async () => {
  const h = startNode('n1', THREE, { maxUncommittedBytes: 100 });
  await elect(h);
  const last = h.node.status().lastLogIndex;
  const first = watch(h.node.propose(put('k', 'x'.repeat(60)), h.clock.now() + 1000));
  const second = watch(h.node.propose(put('k', 'y'.repeat(60)), h.clock.now() + 100));
  await h.clock.advance(150);
  const error = clientError(second.error());
  assert.equal(error.code, 'no_leader');
  assert.match(error.message, /overloaded/);
  assert.equal(h.node.status().lastLogIndex, last + 1, 'only the first write was appended');
  assert.equal(first.settled(), false, 'the first one still waits for its commit');
});

test('stop() rejects every waiting call', async () => {
  const h = startNode('n1', THREE);
  await elect(h);
  const write = watch(h.node.propose(put('k', 'v'), h.clock.now() + 10_000));
  const read = watch(h.node.readBarrier(h.clock.now() + 10_000));
  await h.clock.advance(30);
  assert.equal(write.settled() || read.settled(), false);
  await h.node.stop();
  await h.clock.settle();
  assert.equal(clientError(write.error()).code, 'timeout', 'proposed: its outcome is unknown');
  assert.ok(['unavailable', 'no_leader'].includes(clientError(read.error()).code));
  const late = watch(h.node.propose(put('k', 'w'), h.clock.now() + 1000));
  await h.clock.settle();
  assert.equal(clientError(late.error()).code, 'unavailable');
});

test('a storage failure stops the node (onFatal storage) and nothing it did not persist is acknowledged', async () => {
  const h = startNode('n1', THREE);
  await follow(h, 2);
  h.peers.take();
  h.store.autoSync = false;
  h.node.onMessages([appendFromN2(2, 1, 1, [{ kind: 'noop', term: 2, index: 2 }], 1)]);
  await h.clock.settle();
  h.store.fail(new Error('EIO: simulated write error'));
  await h.clock.settle();
  assert.deepEqual(h.fatal.map((f) => f.kind), ['storage']);
  await h.clock.advance(5 * ELECTION_TIMEOUT_MS);
  assert.deepEqual(h.peers.sent.filter((m) => m.kind === 'appendResponse'), [], 'the append was never acknowledged');
  assert.deepEqual(h.peers.sent, [], 'a stopped node sends nothing, not even a campaign');
});

test('a transfer with no target named goes to the equally up-to-date member connected longest', async () => {
  const h = startNode('n1', THREE);
  // n2's first stream was replaced by a newer one, which ends too (only the replaced one's end is
  // stale); then n2 reconnects (it restarted, say): n3 has been in contact longest.
  const n2First = h.node.onPeerStream('n2');
  const n2Second = h.node.onPeerStream('n2');
  n2First();
  const n3Stream = h.node.onPeerStream('n3');
  assert.deepEqual(h.node.contactOrder(), ['n2', 'n3']);
  n2Second();
  assert.deepEqual(h.node.contactOrder(), ['n3'], 'a member whose stream ended is no longer in contact');
  const n2Third = h.node.onPeerStream('n2');
  assert.deepEqual(h.node.contactOrder(), ['n3', 'n2']);

  const term = await elect(h);
  // Both followers take the leader's no-op: they are equally up to date.
  const matchIndex = h.node.raftStatus().lastLogIndex;
  for (const from of ['n2', 'n3']) {
    h.node.onMessages([{ kind: 'appendResponse', from, to: 'n1', term, success: true, matchIndex, rejectedIndex: 0, conflictIndex: 0, conflictTerm: 0, lastLogIndex: matchIndex }]);
  }
  await h.clock.settle();
  h.peers.take();
  void h.node.transferLeadership(null, Date.now() + 60_000).catch(() => undefined);
  await h.clock.settle();
  assert.deepEqual(h.peers.take((m) => m.kind === 'timeoutNow').map((m) => m.to), ['n3'], 'n3, in contact longest; n2 is first in member order');
  n2Third();
  n3Stream();
  await h.node.stop();
});

test('a transfer with no target named passes over a departing member; a named one, or nothing departing, is left as it is', async () => {
  // The runtime says n3 is on its way out (scaled away): n2 gets leadership, although the core alone
  // would pick n3 (the most up to date).
  const transfereeOf = async (to: string | null, departing: readonly string[]): Promise<{ transferee: string | null; asked: number }> => {
    let asked = 0;
    const h = startNode('n1', THREE, { departing: (id) => (asked++, departing.includes(id)) });
    const term = await elect(h);
    const lastIndex = h.node.raftStatus().lastLogIndex;
    const ack = (from: string, matchIndex: number): Message =>
      ({ kind: 'appendResponse', from, to: 'n1', term, success: true, matchIndex, rejectedIndex: 0, conflictIndex: 0, conflictTerm: 0, lastLogIndex: matchIndex });
    h.node.onMessages([ack('n2', lastIndex - 1), ack('n3', lastIndex)]);
    await h.clock.settle();
    void h.node.transferLeadership(to, h.clock.now() + 60_000).catch(() => undefined);
    await h.clock.settle();
    const transferee = h.node.raftStatus().transferee;
    await h.node.stop();
    return { transferee, asked };
  };
  assert.equal((await transfereeOf(null, ['n3'])).transferee, 'n2', "the staying member, not the core's pick (n3)");
  assert.equal((await transfereeOf(null, [])).transferee, 'n3', 'nothing departing: the most up to date, as the core picks');
  assert.deepEqual(await transfereeOf('n2', ['n2']), { transferee: 'n2', asked: 0 }, 'a named target is not second-guessed');
});

test('a leader whose application is unhealthy hands leadership to a healthy member that is not departing', async () => {
  // n3 is the most up to date and healthy, n2 healthy too: n3 is the pick unless the runtime says
  // n3 is on its way out (scaled away), then n2. With only n3 healthy and departing, n1 stays.
  const transfereeOf = async (departing: ((id: string) => boolean) | undefined, n2Health: 'healthy' | 'unhealthy'): Promise<string | null> => {
    const h = startNode('n1', THREE, departing === undefined ? {} : { departing });
    const term = await elect(h);
    const lastIndex = h.node.raftStatus().lastLogIndex;
    const ack = (from: string, matchIndex: number): Message =>
      ({ kind: 'appendResponse', from, to: 'n1', term, success: true, matchIndex, rejectedIndex: 0, conflictIndex: 0, conflictTerm: 0, lastLogIndex: matchIndex });
    const beat = (from: string, appHealth: 'healthy' | 'unhealthy', lastLogIndex: number): Message =>
      ({ kind: 'heartbeatResponse', from, to: 'n1', term, seq: 0, lastLogIndex, appHealth });
    h.node.onMessages([ack('n2', lastIndex - 1), ack('n3', lastIndex), beat('n2', n2Health, lastIndex - 1), beat('n3', 'healthy', lastIndex)]);
    await h.clock.settle();
    h.node.setAppHealth('unhealthy');
    await h.clock.settle();
    const transferee = h.node.raftStatus().transferee;
    await h.node.stop();
    return transferee;
  };
  assert.equal(await transfereeOf(undefined, 'healthy'), 'n3', 'the longest log among the healthy');
  assert.equal(await transfereeOf((id) => id === 'n3', 'healthy'), 'n2', 'passing over the departing member');
  assert.equal(await transfereeOf((id) => id === 'n3', 'unhealthy'), null, 'no healthy member that stays: it stays leader');
});

test('successorCommitted resolves once another leader has committed an entry of its own term here', async () => {
  const h = startNode('n1', THREE);
  await follow(h, 2);
  const successor = watch(h.node.successorCommitted(h.clock.now() + 1000));
  // The new leader's no-op arrives while only an entry of the previous term is committed.
  h.node.onMessages([appendFromN2(2, 1, 1, [{ kind: 'noop', term: 2, index: 2 }], 1)]);
  await h.clock.settle();
  assert.equal(h.node.raftStatus().commitIndex, 1);
  assert.equal(successor.settled(), false, 'only an entry of the previous term is committed');
  h.node.onMessages([{ kind: 'heartbeat', from: 'n2', to: 'n1', term: 2, commit: 2, seq: 2 }]);
  await h.clock.settle();
  assert.equal(successor.settled(), true, 'the no-op of term 2 is committed');
  successor.value();
  await h.node.stop();
});

test('successorCommitted does not count the commits this node makes as leader: it rejects at its deadline', async () => {
  const h = startNode('n1', THREE);
  const term = await elect(h);
  const leading = watch(h.node.successorCommitted(h.clock.now() + 100));
  // n2 takes the leader's no-op: this leader commits an entry of its own term.
  const matchIndex = h.node.raftStatus().lastLogIndex;
  h.node.onMessages([{ kind: 'appendResponse', from: 'n2', to: 'n1', term, success: true, matchIndex, rejectedIndex: 0, conflictIndex: 0, conflictTerm: 0, lastLogIndex: matchIndex }]);
  await h.clock.settle();
  assert.equal(h.node.raftStatus().commitIndex, matchIndex);
  await h.clock.advance(150);
  assert.ok(leading.settled() && leading.error() instanceof Error, 'its own commits do not count');
  await h.node.stop();
});

test('a stopping leader whose transfer target is reported gone stops waiting for it at once', async () => {
  const h = startNode('n1', THREE);
  const term = await elect(h);
  const matchIndex = h.node.raftStatus().lastLogIndex;
  h.node.onMessages([{ kind: 'appendResponse', from: 'n2', to: 'n1', term, success: true, matchIndex, rejectedIndex: 0, conflictIndex: 0, conflictTerm: 0, lastLogIndex: matchIndex }]);
  await h.clock.settle();
  const handOff = watch(h.node.transferLeadership('n2', h.clock.now() + 60_000, 'shutdown'));
  await h.clock.settle();
  assert.deepEqual(h.peers.take((m) => m.kind === 'timeoutNow').map((m) => m.to), ['n2']);
  assert.equal(h.node.raftStatus().role, 'follower', 'it stepped down and voted for n2 with its TimeoutNow');
  h.node.peerDead('n3');
  await h.clock.settle();
  assert.equal(handOff.settled(), false, 'another member gone does not end the wait');
  h.node.peerDead('n2');
  await h.clock.settle();
  assert.ok(handOff.settled(), 'no wait for the deadline, a minute away');
  const err = clientError(handOff.error());
  assert.equal(err.code, 'unavailable');
  assert.match(err.message, /n2 failed: its process is gone/);
  await h.node.stop();
});

test('a leader whose transfer target is reported gone before TimeoutNow leads on and takes writes again', async () => {
  const h = startNode('n1', THREE);
  await elect(h);
  // n2 has not acknowledged the no-op: the leader catches it up before any TimeoutNow.
  const handOff = watch(h.node.transferLeadership('n2', h.clock.now() + 60_000));
  await h.clock.settle();
  assert.equal(h.node.raftStatus().transferee, 'n2');
  h.node.peerDead('n2');
  await h.clock.settle();
  assert.equal(clientError(handOff.error()).code, 'unavailable');
  assert.equal(h.node.raftStatus().role, 'leader');
  assert.equal(h.node.raftStatus().transferee, null);
  assert.equal(h.peers.take((m) => m.kind === 'timeoutNow').length, 0);
  await h.node.stop();
});
