// In-memory stand-ins for what a RaftNode is given (src/node/ports.ts): a clock the test moves by
// hand, a log store whose fsyncs the test completes (or fails), and peers whose messages the test
// reads and whose forwarded calls it answers.
import { KvStore } from '../../src/kv/index.ts';
import type { KvCommand, KvResult } from '../../src/kv/types.ts';
import { RaftNode, type NodeOptions } from '../../src/node/node.ts';
import type { Cancel, Clock, LogStore, LogUpdate, PeerSender } from '../../src/node/ports.ts';
import { bootstrapState } from '../../src/raft/raft.ts';
import { repeatEvery } from '../wholesim/scheduler.ts';
import type { Member, Message, NodeId, RestoredState, Snapshot } from '../../src/raft/types.ts';

/** Lets pending promise callbacks run. */
export function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

interface Timer {
  at: number;
  readonly seq: number;
  readonly fn: () => void;
  cancelled: boolean;
}

export class FakeClock implements Clock {
  private time = 1_000_000;
  private seq = 0;
  private timers: Timer[] = [];
  private soonQueue: (() => void)[] = [];

  now(): number {
    return this.time;
  }

  /** Timers set with after() (repeating ones included) that have neither fired nor been cancelled. */
  get pendingTimers(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  after(ms: number, fn: () => void): Cancel {
    const timer: Timer = { at: this.time + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(timer);
    return () => {
      timer.cancelled = true;
    };
  }

  every(ms: number, fn: () => void): Cancel {
    return repeatEvery(this, ms, fn);
  }

  soon(fn: () => void): void {
    this.soonQueue.push(fn);
  }

  /** Runs soon() work and promise callbacks until nothing more is queued. */
  async settle(): Promise<void> {
    for (let rounds = 0; rounds < 1000; rounds++) {
      await flush();
      const queued = this.soonQueue;
      if (queued.length === 0) return;
      this.soonQueue = [];
      for (const fn of queued) fn();
    }
    throw new Error('soon() work keeps queueing more');
  }

  /** Moves time forward ms, 1 ms at a time, firing due timers and settling in between. */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    await this.settle();
    while (this.time < end) {
      this.time = Math.min(end, this.time + 1);
      for (;;) {
        const due = this.timers.filter((t) => !t.cancelled && t.at <= this.time).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
        if (due === undefined) break;
        due.cancelled = true;
        due.fn();
        await this.settle();
      }
      this.timers = this.timers.filter((t) => !t.cancelled);
    }
  }
}

/** A store whose saves complete when the test says (or at once with autoSync). */
export class FakeStore implements LogStore {
  readonly saved: LogUpdate[] = [];
  readonly snapshots: Snapshot[] = [];
  autoSync = true;
  private waiting: { resolve: () => void; reject: (err: unknown) => void }[] = [];
  private failure: Error | null = null;

  save(update: LogUpdate): Promise<void> {
    this.saved.push(update);
    if (this.failure) return Promise.reject(this.failure);
    if (this.autoSync) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  saveSnapshot(snapshot: Snapshot): Promise<void> {
    this.snapshots.push(snapshot);
    return this.failure ? Promise.reject(this.failure) : Promise.resolve();
  }

  get pending(): number {
    return this.waiting.length;
  }

  /** Completes every save waiting for its fsync. */
  syncAll(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) w.resolve();
  }

  /** Fails the saves waiting now and every later one (a disk that broke). */
  fail(error: Error): void {
    this.failure = error;
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) w.reject(error);
  }
}

type Handler<A extends unknown[], R> = ((...args: A) => Promise<R>) | null;

/** Peers that record what the node sends and answer forwarded calls with test-provided handlers. */
export class FakePeers implements PeerSender {
  readonly sent: Message[] = [];
  readonly calls: { kind: 'propose' | 'readIndex' | 'transfer'; url: string; deadlineMs: number }[] = [];
  onPropose: Handler<[string, KvCommand, number], KvResult> = null;
  onReadIndex: Handler<[string, number], { index: number; term: number }> = null;

  sendAll(messages: readonly Message[]): void {
    this.sent.push(...messages);
  }

  take(filter: (m: Message) => boolean = () => true): Message[] {
    const out = this.sent.filter(filter);
    const rest = this.sent.filter((m) => !filter(m));
    this.sent.length = 0;
    this.sent.push(...rest);
    return out;
  }

  propose(url: string, cmd: KvCommand, deadlineMs: number): Promise<KvResult> {
    this.calls.push({ kind: 'propose', url, deadlineMs });
    return this.onPropose ? this.onPropose(url, cmd, deadlineMs) : new Promise(() => undefined);
  }

  readIndex(url: string, deadlineMs: number): Promise<{ index: number; term: number }> {
    this.calls.push({ kind: 'readIndex', url, deadlineMs });
    return this.onReadIndex ? this.onReadIndex(url, deadlineMs) : new Promise(() => undefined);
  }

  transfer(url: string, _to: NodeId | null, deadlineMs: number): Promise<{ leader: NodeId; term: number }> {
    this.calls.push({ kind: 'transfer', url, deadlineMs });
    return new Promise(() => undefined);
  }
}

export interface Harness {
  readonly node: RaftNode;
  readonly clock: FakeClock;
  readonly store: FakeStore;
  readonly peers: FakePeers;
  readonly kv: KvStore;
  readonly fatal: { err: unknown; kind: string }[];
}

export const HEARTBEAT_MS = 20;
export const ELECTION_TIMEOUT_MS = 100;

export function members(ids: readonly NodeId[]): Member[] {
  return ids.map((id) => ({ id, url: `fake://${id}`, voter: true }));
}

/** A started node `id` of a cluster of `ids`, from the bootstrap state (or `restored`). */
export function startNode(id: NodeId, ids: readonly NodeId[], options: Partial<NodeOptions> & { restored?: RestoredState } = {}): Harness {
  const clock = new FakeClock();
  const store = new FakeStore();
  const peers = new FakePeers();
  const kv = new KvStore();
  const fatal: { err: unknown; kind: string }[] = [];
  let draws = 0;
  const node = new RaftNode({
    id,
    heartbeatMs: HEARTBEAT_MS,
    electionTimeoutMs: ELECTION_TIMEOUT_MS,
    restored: options.restored ?? bootstrapState(members(ids)),
    store,
    peers,
    stateMachine: kv,
    clock,
    logger: { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined },
    snapshotEntries: 1_000_000,
    onFatal: (err, kind) => fatal.push({ err, kind }),
    random: () => ((draws++ * 0.37) % 1),
    ...options,
  });
  node.start();
  return { node, clock, store, peers, kv, fatal };
}
