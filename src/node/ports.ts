// What a RaftNode needs from the world, as interfaces (openraft's storage and network traits are the
// model): a log store that makes a Ready durable, a peer sender, a state machine and a clock. The
// real write-ahead log (src/storage), HTTP transport (src/transport) and key-value store (src/kv)
// satisfy them structurally; the whole-node simulator and the unit tests supply in-memory ones, so
// nothing here knows what a file, a socket or a timer is.
import type { ChangeFeed, KvCommand, KvResult, KvView } from '../kv/types.ts';
import type { Entry, HardState, Message, NodeId, Snapshot } from '../raft/types.ts';
import { steadyNow } from '../util/steady-clock.ts';

/** What one Ready asks to persist (the Ready itself is passed; other fields are ignored). */
export interface LogUpdate {
  /** A snapshot received from the leader: it replaces the whole log (§7). */
  readonly snapshot?: Snapshot | null;
  /** New entries; entries[0].index may be <= the last persisted index, which discards from there. */
  readonly entries?: readonly Entry[];
  readonly hardState?: HardState | null;
}

export interface LogStore {
  /** Resolves once the update is durable (fsynced); a rejection means storage failed for good. */
  save(update: LogUpdate): Promise<void>;
  /** Persists a snapshot this node took of its own state and compacts the log up to it. */
  saveSnapshot(snapshot: Snapshot): Promise<void>;
}

export interface PeerSender {
  /** Fire and forget: Raft tolerates loss, so failures are the sender's to count, not to report. */
  sendAll(messages: readonly Message[]): void;
  /** Forwards a write to the leader at peerUrl; resolves with its result once it is applied there.
   * `encoded` is cmd as encodeKvCommand made it, when the caller has it already. */
  propose(peerUrl: string, cmd: KvCommand, deadlineMs: number, encoded?: Uint8Array): Promise<KvResult>;
  /** Asks the leader at peerUrl for a read index (thesis §6.4.1). */
  readIndex(peerUrl: string, deadlineMs: number): Promise<{ index: number; term: number }>;
  transfer(peerUrl: string, to: NodeId | null, deadlineMs: number): Promise<{ leader: NodeId; term: number }>;
  /** A message from peer arrived: it is up (a link that gave up on it may reconnect now). */
  heardFrom?(peer: NodeId): void;
  /** peer opened a stream to this node: it is up and serving (it may have just restarted). */
  streamFrom?(peer: NodeId): void;
}

/** The replicated state machine: applies committed entries in order and snapshots itself. */
export interface StateMachine extends KvView {
  /** Applies the entry at the next index; a result for entries carrying a client command, else null. */
  applyEntry(entry: Entry): KvResult | null;
  /** Replaces the whole state by a snapshot taken at index. */
  restore(data: Uint8Array, index: number): void;
  snapshot(): Uint8Array;
  /** Recent changes in apply order, for watches (the key-value store keeps them). */
  readonly changes: ChangeFeed;
}

export type Cancel = () => void;

/** Time as the node sees it. Deadlines handed to a node are on this clock's now(). */
export interface Clock {
  now(): number;
  /** A clock that never steps (ms): the leader lease is measured on it. Defaults to now(). */
  monotonic?(): number;
  after(ms: number, fn: () => void): Cancel;
  every(ms: number, fn: () => void): Cancel;
  /** Runs fn on a later turn of the event loop, after I/O already waiting (group commit relies on it). */
  soon(fn: () => void): void;
}

/** The wall clock and Node's timers. Timers are unref'd: a node's servers keep the process alive. */
export const systemClock: Clock = {
  now: steadyNow,
  monotonic: () => performance.now(),
  after(ms, fn) {
    const timer = setTimeout(fn, Math.max(0, ms));
    timer.unref();
    return () => clearTimeout(timer);
  },
  every(ms, fn) {
    const timer = setInterval(fn, ms);
    timer.unref();
    return () => clearInterval(timer);
  },
  soon(fn) {
    setImmediate(fn);
  },
};
