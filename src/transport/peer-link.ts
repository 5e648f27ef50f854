// Everything this node sends one peer: keep-alive pools, two lanes, and the peer's backoff. Raft's
// lanes and forwarded client calls use separate pools, so a burst of forwarded writes (each held
// until commit) can never queue heartbeats and acknowledgements behind it and cost the leader its
// quorum.
// - The message lane carries every Raft message but snapshots: one request in flight at a time,
//   carrying everything queued meanwhile as one batch, so messages arrive in the order sent.
// - The snapshot lane carries InstallSnapshot alone, so a large snapshot never holds heartbeats up
//   behind it. At most one snapshot waits; a newer one replaces it.
// A failed request puts the peer into backoff: queued messages are dropped and new ones are not
// queued until the backoff ends (Raft re-sends: the next heartbeat is the retry).
import type { LookupFunction } from 'node:net';
import { Pool } from 'undici';
import type { Message, NodeId } from '../raft/types.ts';
import { bearer } from './auth.ts';
import { Backoff } from './backoff.ts';
import { clusterHeader, type ClusterIdentity } from './cluster-id.ts';
import { encodeMessage, frameEncoded } from './codec.ts';
import type { PeerBase } from './peer-url.ts';
import { MESSAGES_CONTENT_TYPE, PROTOCOL_HEADER, PROTOCOL_VERSION, ROUTES } from './protocol.ts';
import { describeFailure, readErrorReply, refusalError } from './replies.ts';
import { SendQueue } from './send-queue.ts';
import { WireError } from './wire.ts';

export type DropReason =
  /** The peer's queue was full; the oldest message made room. */
  | 'queue_full'
  /** The peer is backing off after a failed request. */
  | 'backoff'
  /** The request carrying it failed (it may or may not have arrived). */
  | 'failed'
  /** No peer with that id (setPeers did not name it). */
  | 'unknown_peer'
  /** The peer's URL is unusable. */
  | 'bad_url'
  /** The message could not be encoded (a bug in its producer; see the error). */
  | 'invalid'
  /** The transport or the peer's link was closed. */
  | 'closed';

export type RpcKind = 'messages' | 'snapshot' | 'propose' | 'readIndex' | 'transfer' | 'status';

export interface TransportHooks {
  /** One call per HTTP request: its kind, how long it took, whether it succeeded. */
  onRpc?(kind: RpcKind, seconds: number, ok: boolean): void;
  /** One call per dropped message; error is set for 'invalid' and 'failed'. */
  onDrop?(peer: NodeId, reason: DropReason, error?: Error): void;
  /** A peer became reachable or unreachable (called on changes only). On false, error says why:
   * PeerAuthError, ProtocolMismatchError and MisdirectedError deserve a loud log line. */
  onPeerReachable?(peer: NodeId, reachable: boolean, error: Error | null): void;
}

export interface LinkOptions {
  readonly token: string | null;
  readonly maxQueuedMessages: number;
  readonly maxQueuedBytes: number;
  readonly maxBatchMessages: number;
  readonly maxBatchBytes: number;
  readonly requestTimeoutMs: number;
  readonly snapshotTimeoutMs: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly connectionsPerPeer: number;
  readonly maxResponseBytes: number;
  readonly random: () => number;
  readonly now: () => number;
  readonly hooks: TransportHooks;
  /** How peer host names are resolved; undefined = the system resolver. */
  readonly lookup: LookupFunction | undefined;
  readonly identity?: ClusterIdentity;
}

export interface PeerStats {
  readonly id: NodeId;
  readonly url: string;
  readonly queued: number;
  readonly queuedBytes: number;
  readonly inFlightRequests: number;
  /** Messages in requests the peer acknowledged. */
  readonly delivered: number;
  readonly requests: number;
  readonly failedRequests: number;
  readonly dropped: Readonly<Record<DropReason, number>>;
  readonly reachable: boolean | null;
  readonly backingOff: boolean;
  readonly consecutiveFailures: number;
}

export function emptyDropCounts(): Record<DropReason, number> {
  return { queue_full: 0, backoff: 0, failed: 0, unknown_peer: 0, bad_url: 0, invalid: 0, closed: 0 };
}

interface Lane {
  readonly kind: 'messages' | 'snapshot';
  readonly queue: SendQueue;
  readonly timeoutMs: number;
  inFlight: AbortController | null;
}

export class PeerLink {
  readonly id: NodeId;
  readonly url: string;
  readonly base: PeerBase;
  /** Raft messages and snapshots. */
  readonly pool: Pool;
  /** Forwarded client calls (propose, read index, transfer, status). */
  readonly callPool: Pool;
  private readonly options: LinkOptions;
  private readonly backoff: Backoff;
  private readonly messages: Lane;
  private readonly snapshots: Lane;
  private readonly headers: Record<string, string>;
  private readonly dropped = emptyDropCounts();
  private delivered = 0;
  private requests = 0;
  private failedRequests = 0;
  private reachable: boolean | null = null;
  private closed = false;

  constructor(id: NodeId, url: string, base: PeerBase, options: LinkOptions) {
    this.id = id;
    this.url = url;
    this.base = base;
    this.options = options;
    const connect = options.lookup ? { connect: { lookup: options.lookup } } : {};
    this.pool = new Pool(base.origin, {
      connections: 2, // the message lane and the snapshot lane
      pipelining: 1,
      connectTimeout: Math.min(options.requestTimeoutMs, 10_000),
      keepAliveTimeout: 4_000,
      maxResponseSize: options.maxResponseBytes,
      ...connect,
    });
    this.callPool = new Pool(base.origin, {
      connections: options.connectionsPerPeer,
      pipelining: 1,
      connectTimeout: Math.min(options.requestTimeoutMs, 10_000),
      keepAliveTimeout: 4_000,
      maxResponseSize: options.maxResponseBytes,
      ...connect,
    });
    this.backoff = new Backoff({ initialMs: options.backoffInitialMs, maxMs: options.backoffMaxMs, random: options.random });
    this.messages = {
      kind: 'messages',
      queue: new SendQueue(options.maxQueuedMessages, options.maxQueuedBytes),
      timeoutMs: options.requestTimeoutMs,
      inFlight: null,
    };
    this.snapshots = { kind: 'snapshot', queue: new SendQueue(1, Number.MAX_SAFE_INTEGER), timeoutMs: options.snapshotTimeoutMs, inFlight: null };
    this.headers = {
      'content-type': MESSAGES_CONTENT_TYPE,
      [PROTOCOL_HEADER]: String(PROTOCOL_VERSION),
      ...bearer(options.token),
    };
  }

  /** Queues one message and starts a request if none is in flight. Never throws, never waits. */
  enqueue(message: Message): void {
    if (this.closed) {
      this.drop('closed', 1);
      return;
    }
    if (this.backoff.isBackingOff(this.options.now())) {
      this.drop('backoff', 1);
      return;
    }
    if (message.to !== this.id) {
      // The peer would refuse the whole batch carrying it (421), so it must not join one.
      this.drop('invalid', 1, new WireError('message.to', `${JSON.stringify(message.to)} does not match the peer it was sent to, ${JSON.stringify(this.id)}`));
      return;
    }
    let encoded: Uint8Array;
    try {
      encoded = encodeMessage(message);
    } catch (error) {
      this.drop('invalid', 1, error instanceof WireError ? error : new WireError('message', describeFailure(error)));
      return;
    }
    const lane = message.kind === 'snapshot' ? this.snapshots : this.messages;
    const evicted = lane.queue.push(encoded);
    if (evicted > 0) this.drop('queue_full', evicted);
    this.pump(lane);
  }

  stats(): PeerStats {
    return {
      id: this.id,
      url: this.url,
      queued: this.messages.queue.length + this.snapshots.queue.length,
      queuedBytes: this.messages.queue.bytes + this.snapshots.queue.bytes,
      inFlightRequests: (this.messages.inFlight === null ? 0 : 1) + (this.snapshots.inFlight === null ? 0 : 1),
      delivered: this.delivered,
      requests: this.requests,
      failedRequests: this.failedRequests,
      dropped: { ...this.dropped },
      reachable: this.reachable,
      backingOff: this.backoff.isBackingOff(this.options.now()),
      consecutiveFailures: this.backoff.consecutiveFailures,
    };
  }

  /** Aborts requests in flight, drops what is queued, and closes the pool's connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const lane of [this.messages, this.snapshots]) {
      this.drop('closed', lane.queue.clear());
      lane.inFlight?.abort();
    }
    await Promise.all([this.pool.destroy(), this.callPool.destroy()]);
  }

  private pump(lane: Lane): void {
    if (this.closed || lane.inFlight !== null || lane.queue.length === 0) return;
    const batch = lane.queue.takeBatch(this.options.maxBatchMessages, this.options.maxBatchBytes);
    const controller = new AbortController();
    lane.inFlight = controller;
    this.deliver(lane, batch, controller).catch((error: unknown) => {
      // deliver handles every failure itself; reaching this is a bug in this file.
      process.emitWarning(`raftlet transport: delivering to ${this.id} failed unexpectedly: ${describeFailure(error)}`);
    });
  }

  private async deliver(lane: Lane, batch: Uint8Array[], controller: AbortController): Promise<void> {
    const started = performance.now();
    let failure: Error | null = null;
    this.requests++;
    try {
      const response = await this.pool.request({
        method: 'POST',
        path: this.base.prefix + ROUTES.messages,
        headers: { ...this.headers, ...clusterHeader(this.options.identity) },
        body: frameEncoded(batch),
        signal: AbortSignal.any([controller.signal, AbortSignal.timeout(lane.timeoutMs)]),
      });
      const text = await response.body.text();
      if (response.statusCode < 200 || response.statusCode > 299) {
        const reply = readErrorReply(response.statusCode, text);
        failure = refusalError(this.id, response.statusCode, response.headers, reply) ?? new Error(`peer ${this.id} refused Raft messages: ${reply.message}`);
      }
    } catch (error) {
      failure = new Error(`peer ${this.id} at ${this.url} unreachable: ${describeFailure(error)}`, { cause: error });
    }
    lane.inFlight = null;
    if (this.closed) return;
    this.options.hooks.onRpc?.(lane.kind, (performance.now() - started) / 1000, failure === null);
    if (failure === null) {
      this.delivered += batch.length;
      this.backoff.succeed();
      this.setReachable(true, null);
      this.pump(lane);
      return;
    }
    this.failedRequests++;
    this.drop('failed', batch.length, failure);
    this.backoff.fail(this.options.now());
    this.drop('backoff', this.messages.queue.clear() + this.snapshots.queue.clear());
    this.setReachable(false, failure);
  }

  private setReachable(reachable: boolean, error: Error | null): void {
    if (this.reachable === reachable) return;
    this.reachable = reachable;
    this.options.hooks.onPeerReachable?.(this.id, reachable, error);
  }

  private drop(reason: DropReason, count: number, error?: Error): void {
    if (count === 0) return;
    this.dropped[reason] += count;
    const onDrop = this.options.hooks.onDrop;
    if (onDrop === undefined) return;
    for (let i = 0; i < count; i++) onDrop(this.id, reason, error);
  }
}
