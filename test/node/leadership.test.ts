// The node's side of GET /v1/leadership: the lease in milliseconds, counted from when the newest
// heartbeat round a quorum answered was SENT (not answered), less the drift share, 0 during a
// hand-off; and the long poll that wakes when the lease runs out. A RaftNode of three members with
// a manual clock; the test plays the two followers by answering the messages it sends.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KvStore } from '../../src/kv/store.ts';
import { RaftNode } from '../../src/node/node.ts';
import type { Cancel, Clock, LogStore, PeerSender } from '../../src/node/ports.ts';
import { bootstrapState } from '../../src/raft/raft.ts';
import type { HeartbeatRequest, Message } from '../../src/raft/types.ts';

class ManualClock implements Clock {
  time = 1_000_000;
  private timers: { at: number; every: number | null; fn: () => void; cancelled: boolean }[] = [];

  now(): number {
    return this.time;
  }

  monotonic(): number {
    return this.time;
  }

  after(ms: number, fn: () => void): Cancel {
    return this.add(ms, null, fn);
  }

  every(ms: number, fn: () => void): Cancel {
    return this.add(ms, ms, fn);
  }

  soon(fn: () => void): void {
    setImmediate(fn);
  }

  private add(ms: number, every: number | null, fn: () => void): Cancel {
    const timer = { at: this.time + Math.max(0, ms), every, fn, cancelled: false };
    this.timers.push(timer);
    return () => {
      timer.cancelled = true;
    };
  }

  /** Moves time forward, firing due timers in order (and letting the node's Ready loop run). */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    for (;;) {
      this.timers = this.timers.filter((t) => !t.cancelled);
      const next = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (next === undefined) break;
      this.time = next.at;
      if (next.every === null) next.cancelled = true;
      else next.at += next.every;
      next.fn();
      await settle();
    }
    this.time = end;
    await settle();
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

const MEMBERS = ['a', 'b', 'c'].map((id) => ({ id, url: `test://${id}`, voter: true }));

async function leaderNode(leaseDriftRatio = 0.1): Promise<{ node: RaftNode; clock: ManualClock; sent: Message[] }> {
  const clock = new ManualClock();
  const sent: Message[] = [];
  const store: LogStore = { save: async () => undefined, saveSnapshot: async () => undefined };
  const never = (): Promise<never> => Promise.reject(new Error('not used'));
  const peers: PeerSender = { sendAll: (messages) => void sent.push(...messages), propose: never, readIndex: never, transfer: never };
  const logger = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };
  const node = new RaftNode({
    id: 'a',
    heartbeatMs: 100,
    electionTimeoutMs: 1000,
    restored: bootstrapState(MEMBERS),
    store,
    peers,
    stateMachine: new KvStore(),
    clock,
    logger,
    snapshotEntries: 1_000_000,
    onFatal: (err) => {
      throw err;
    },
    random: () => 0,
    leaseDriftRatio,
  });
  node.start();
  // b grants a's pre-vote and vote once a campaigns (after its election timeout).
  for (let i = 0; i < 400 && node.status().role !== 'leader'; i++) {
    await clock.advance(10);
    for (const m of sent.splice(0)) {
      if (m.kind === 'vote' && m.to === 'b') node.onMessages([{ kind: 'voteResponse', from: 'b', to: 'a', term: m.term, preVote: m.preVote, granted: true }]);
    }
    await settle();
  }
  assert.equal(node.status().role, 'leader');
  const term = node.status().term;
  // b takes the no-op.
  node.onMessages([{ kind: 'appendResponse', from: 'b', to: 'a', term, success: true, matchIndex: node.status().lastLogIndex, rejectedIndex: 0, conflictIndex: 0, conflictTerm: 0, lastLogIndex: node.status().lastLogIndex }]);
  await settle();
  sent.length = 0;
  return { node, clock, sent };
}

/** Ticks until a heartbeat round goes out; returns b's heartbeat and the time it left. */
async function nextRound(node: RaftNode, clock: ManualClock, sent: Message[]): Promise<{ heartbeat: HeartbeatRequest; sentAt: number }> {
  for (let i = 0; i < 50; i++) {
    const before = clock.now();
    await clock.advance(10);
    const heartbeat = sent.find((m): m is HeartbeatRequest => m.kind === 'heartbeat' && m.to === 'b');
    sent.length = 0;
    // The tick that sent it began at `before + 10` (the interval fires at its due time).
    if (heartbeat) return { heartbeat, sentAt: before + 10 };
  }
  throw new Error('no heartbeat round');
}

const answer = (node: RaftNode, hb: HeartbeatRequest): void =>
  node.onMessages([{ kind: 'heartbeatResponse', from: 'b', to: 'a', term: hb.term, seq: hb.seq, lastLogIndex: node.status().lastLogIndex }]);

// 10 ms ticks, 100 ticks per election timeout: (99 * 10 - 1) ms of a follower's clock, less 10 %.
const GUARANTEE_MS = (99 * 10 - 1) * 0.9;

test('the lease counts from when the answered round was sent, not when the answer came', async () => {
  const { node, clock, sent } = await leaderNode();
  const { heartbeat, sentAt } = await nextRound(node, clock, sent);
  await clock.advance(0);
  const before = node.leadership();
  await clock.advance(40); // the answer takes 40 ms
  answer(node, heartbeat);
  const lease = node.leadership();
  assert.equal(lease.leader, true);
  assert.equal(lease.leaseRemainingMs, Math.floor(sentAt + GUARANTEE_MS - clock.now()));
  assert.ok(lease.leaseRemainingMs >= before.leaseRemainingMs - 40, 'a newer round extends the lease');
  await node.stop();
});

test('without answers the lease runs out; the drift share shortens it; a long poll wakes when it ends', async () => {
  const { node, clock, sent } = await leaderNode(0.5);
  const { heartbeat, sentAt } = await nextRound(node, clock, sent);
  answer(node, heartbeat);
  const guarantee = (99 * 10 - 1) * 0.5;
  assert.equal(node.leadership().leaseRemainingMs, Math.floor(sentAt + guarantee - clock.now()));
  const seen = { leader: true, term: node.leadership().term, leased: true };
  let woke: { leader: boolean; leaseRemainingMs: number } | null = null;
  void node.waitLeadership(seen, 60_000).then((l) => (woke = l));
  // Rounds go out, nobody answers: the lease ends at sentAt + guarantee.
  await clock.advance(Math.ceil(sentAt + guarantee - clock.now()) - 20);
  assert.equal(woke, null, 'still leased 20 ms before the end');
  assert.ok(node.leadership().leaseRemainingMs > 0);
  await clock.advance(40);
  assert.deepEqual(woke, { leader: true, term: seen.term, leaseRemainingMs: 0 });
  await node.stop();
});

test('a hand-off voids the lease at once', async () => {
  const { node, clock, sent } = await leaderNode();
  const { heartbeat } = await nextRound(node, clock, sent);
  answer(node, heartbeat);
  assert.ok(node.leadership().leaseRemainingMs > 0);
  const transfer = node.transferLeadership('b', clock.now() + 60_000).catch(() => null);
  await settle();
  assert.deepEqual(node.leadership(), { leader: true, term: heartbeat.term, leaseRemainingMs: 0 });
  await node.stop();
  await transfer;
});
