// One peer, as seen by the node that sends to it. Raft messages and forwarded calls travel on one
// long-lived stream (POST /raft/v1/stream, stream-frames.ts), opened on first use and reopened at
// once when it closes:
// - Messages handed over in one turn of the event loop leave together in one write, at the end
//   of that turn: never held for a timer or behind a request in flight.
// - A bounded queue holds messages while the stream connects or the socket is full; when full, the
//   oldest are dropped (Raft re-sends what matters: the next heartbeat is the retry).
// - Snapshots go as separate requests (POST /raft/v1/messages), so a large one never holds
//   heartbeats up behind it. At most one snapshot waits; a newer one replaces it.
// - A failed connection attempt puts the peer into backoff: queued messages are dropped and new
//   ones are not queued until the backoff ends. Forwarded calls still try to connect.
// - Token rotation: a 401 makes the next attempt use the next token of this member's set; the
//   token that worked last is used first.
// - An established stream that closed, followed by a refused connection (nothing listens: the
//   peer's process is gone), is reported once as onPeerDead. Timeouts, resets of a live process,
//   TLS and token refusals never are.
// - A link told to keep its stream open (keepOpen: the other voters) opens it before anything is
//   sent and reopens it after a backoff, so an election or a hand-off never waits for a connection.
import type { Agent, ClientRequest, IncomingMessage } from 'node:http';
import { ClientError } from '../api/ops.ts';
import type { Message, NodeId } from '../raft/types.ts';
import { bearer } from './auth.ts';
import { Backoff } from './backoff.ts';
import { clusterHeader, type ClusterIdentity } from './cluster-id.ts';
import { encodeMessage, frameEncoded } from './codec.ts';
import { dial, keepAliveAgent, requestOnce, trackReady, type DialOptions } from './dial.ts';
import type { PeerBase } from './peer-url.ts';
import { Deadlines } from '../util/deadlines.ts';
import { FEATURE_CALL_FENCE, FEATURES_HEADER, MESSAGES_CONTENT_TYPE, parseFeatures, PROTOCOL_HEADER, PROTOCOL_VERSION, ROUTES, STREAM_CONTENT_TYPE, TARGET_HEADER } from './protocol.ts';
import { describeFailure, isRefused, NotSentError, readErrorReply, refusalError } from './replies.ts';
import { senderHeader } from './sender.ts';
import { SendQueue } from './send-queue.ts';
import { decodeFence, decodeReply, encodeFenceAck, encodeFrame, FENCE_BYTES, FRAME, FrameReader, MAX_CALL_ID, type Fence, type Frame } from './stream-frames.ts';
import type { TokenSource } from './tokens.ts';
import { writeUncorked } from './uncorked.ts';
import { WireError } from './wire.ts';

export type DropReason =
  /** The peer's queue was full; the oldest message made room. */
  | 'queue_full'
  /** The peer is backing off after a failed connection or request. */
  | 'backoff'
  /** The connection or request carrying it failed (it may or may not have arrived). */
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
  /** One call per stream connection attempt ('messages'), snapshot request or forwarded call: its
   * kind, how long it took, whether it succeeded. */
  onRpc?(kind: RpcKind, seconds: number, ok: boolean): void;
  /** One call per dropped message; error is set for 'invalid' and 'failed'. */
  onDrop?(peer: NodeId, reason: DropReason, error?: Error): void;
  /** A peer became reachable or unreachable (called on changes only). On false, error says why:
   * PeerAuthError, ProtocolMismatchError and MisdirectedError deserve a loud log line. */
  onPeerReachable?(peer: NodeId, reachable: boolean, error: Error | null): void;
  /** An established connection to the peer closed and a new one was refused (ECONNREFUSED): its
   * process is gone (kill -9, OOM kill, crash). Never called for timeouts, resets while the
   * process lives, or TLS and token refusals. Called once per lost connection. */
  onPeerDead?(peer: NodeId): void;
}

export interface LinkOptions {
  readonly tokens: TokenSource | null;
  /** This node's cluster id, sent when a stream or request opens (cluster-id.ts). */
  readonly identity?: ClusterIdentity;
  /** This node's member id, sent when a stream or request opens (sender.ts). */
  readonly selfId?: NodeId;
  readonly maxQueuedMessages: number;
  readonly maxQueuedBytes: number;
  readonly maxBatchMessages: number;
  readonly maxBatchBytes: number;
  /** Bound of a connection attempt (until the peer accepts the stream), and of a stalled write. */
  readonly requestTimeoutMs: number;
  readonly snapshotTimeoutMs: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  /** An idle stream sends a ping this often; the peer answers with a pong. */
  readonly pingIntervalMs: number;
  /** A stream that receives nothing (not even a pong) for this long is closed and reopened. */
  readonly idleTimeoutMs: number;
  readonly maxResponseBytes: number;
  readonly random: () => number;
  readonly now: () => number;
  readonly hooks: TransportHooks;
  readonly dial: DialOptions;
}

export interface PeerStats {
  readonly id: NodeId;
  readonly url: string;
  readonly queued: number;
  readonly queuedBytes: number;
  /** A stream connection attempt or a snapshot request in progress. */
  readonly inFlightRequests: number;
  /** Whether the stream is open now. */
  readonly connected: boolean;
  /** Messages handed to the stream's socket (or acknowledged, for snapshots). */
  readonly delivered: number;
  /** Stream connection attempts and snapshot requests. */
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

/** A reply to a forwarded call, or why there is none. */
export type CallOutcome =
  | { readonly kind: 'reply'; readonly status: number; readonly text: string; readonly headers: IncomingMessage['headers'] }
  /** The call never reached the peer: certainly not executed. */
  | { readonly kind: 'notSent'; readonly error: Error }
  /** It was sent and then the stream failed or the time ran out: outcome unknown. */
  | { readonly kind: 'lost'; readonly error: Error; readonly timedOut: boolean };

/** Builds a call's frame when it leaves, for the stream it leaves on (features: what that stream's
 * server announced, FEATURES_HEADER). Throws if the call cannot be encoded. */
export type CallEncoder = (id: number, features: ReadonlySet<string>) => Buffer;

interface PendingCall {
  readonly id: number;
  readonly encode: CallEncoder;
  readonly waitMs: number;
  /** A propose: a fence may release it (see onFence). */
  readonly fenceable: boolean;
  readonly settle: (outcome: CallOutcome) => void;
  written: boolean;
  /** Its place among the calls written on its stream, from 1 (0 until written). */
  ordinal: number;
}

/** The headers every request a member makes carries: the protocol version, the token, and who is
 * asking (its cluster id, cluster-id.ts, and its member id, sender.ts). */
export function memberHeaders(options: Pick<LinkOptions, 'identity' | 'selfId'>, token: string | null): Record<string, string> {
  return { [PROTOCOL_HEADER]: String(PROTOCOL_VERSION), ...bearer(token), ...clusterHeader(options.identity), ...senderHeader(options.selfId) };
}

const STREAM_ERROR_LIMIT = 64 * 1024;
// A stream that lived this long was healthy: reopen it at once when it closes. A shorter-lived one
// is reopened at once only the first time in a row (so a peer that dies right after a stream opened,
// e.g. a leader killed moments after its election, is still probed and found gone), and backs off
// after that, so a peer that accepts and drops streams cannot make a hot loop.
const HEALTHY_STREAM_MS = 1000;

export class PeerLink {
  readonly id: NodeId;
  readonly url: string;
  readonly base: PeerBase;
  private readonly options: LinkOptions;
  private readonly backoff: Backoff;
  private readonly queue: SendQueue;
  private readonly snapshots: SendQueue;
  private snapshotInFlight: AbortController | null = null;
  private readonly agent: Agent;
  private readonly dropped = emptyDropCounts();
  private delivered = 0;
  private requests = 0;
  private failedRequests = 0;
  private reachable: boolean | null = null;
  private closed = false;

  private state: 'idle' | 'connecting' | 'open' = 'idle';
  /** Bumped per connection attempt: events of an older attempt are ignored. */
  private generation = 0;
  private req: ClientRequest | null = null;
  private openedAtMs = 0;
  /** The cluster id the open stream announced when it opened (null: none yet). */
  private openedWithCluster: string | null = null;
  /** Streams in a row that ended before HEALTHY_STREAM_MS. */
  private shortStreams = 0;
  private lastPingMs = 0;
  private lastReadMs = 0;
  private blockedSinceMs: number | null = null;
  private flushScheduled = false;
  private callFlushScheduled = false;
  /** Keep the stream open while idle (see keepOpen). */
  private keepingOpen = false;
  /** The last connection attempt was refused (nothing listened on the peer's port). */
  private lastRefused = false;
  /** An established stream closed; a refused reconnect then means the peer's process is gone. */
  private lostEstablished = false;
  /** The token that last worked (or is being tried), and how many were refused in a row. */
  private token: string | null = null;
  private authRefusals = 0;
  private readonly waiting: PendingCall[] = [];
  private readonly inflight = new Map<number, PendingCall>();
  /** What the open stream's server accepts beyond the base protocol (FEATURES_HEADER). */
  private features: ReadonlySet<string> = new Set<string>();
  /** Calls written on the open stream, and the fences of its server still to acknowledge. */
  private callsWritten = 0;
  private fenceAcks: number[] = [];
  private readonly callDeadlines = new Deadlines<PendingCall>((call) => this.callTimedOut(call));
  private nextCallId = 1;
  private readonly ticker: NodeJS.Timeout;

  constructor(id: NodeId, url: string, base: PeerBase, options: LinkOptions) {
    this.id = id;
    this.url = url;
    this.base = base;
    this.options = options;
    this.agent = keepAliveAgent(base, 1);
    this.backoff = new Backoff({ initialMs: options.backoffInitialMs, maxMs: options.backoffMaxMs, random: options.random });
    this.queue = new SendQueue(options.maxQueuedMessages, options.maxQueuedBytes);
    this.snapshots = new SendQueue(1, Number.MAX_SAFE_INTEGER);
    this.ticker = setInterval(() => this.tick(), Math.max(10, Math.floor(options.pingIntervalMs / 2)));
    this.ticker.unref();
  }

  /** Queues one message for this turn's write. Never throws, never waits. */
  enqueue(message: Message): void {
    if (this.closed) {
      this.drop('closed', 1);
      return;
    }
    if (message.to !== this.id) {
      // The peer would refuse the whole stream carrying it (421), so it must not join one.
      this.drop('invalid', 1, new WireError('message.to', `${JSON.stringify(message.to)} does not match the peer it was sent to, ${JSON.stringify(this.id)}`));
      return;
    }
    if (this.state !== 'open' && this.backoff.isBackingOff(this.options.now())) {
      this.drop('backoff', 1);
      return;
    }
    let encoded: Uint8Array;
    try {
      encoded = encodeMessage(message);
    } catch (error) {
      this.drop('invalid', 1, error instanceof WireError ? error : new WireError('message', describeFailure(error)));
      return;
    }
    if (message.kind === 'snapshot') {
      const evicted = this.snapshots.push(encoded);
      if (evicted > 0) this.drop('queue_full', evicted);
      this.pumpSnapshot();
      return;
    }
    const evicted = this.queue.push(encoded);
    if (evicted > 0) this.drop('queue_full', evicted);
    if (this.state === 'idle') this.connect();
    else this.scheduleFlush();
  }

  /** Sends a forwarded call on the stream; its frame is built once the call leaves (encode).
   * fenceable: a propose, which the peer's fence may release (onFence). */
  call(encode: CallEncoder, waitMs: number, fenceable = false): Promise<CallOutcome> {
    return new Promise<CallOutcome>((resolve) => {
      if (this.closed) {
        resolve({ kind: 'notSent', error: new Error('the peer link is closed') });
        return;
      }
      const id = this.nextCallId;
      this.nextCallId = this.nextCallId >= MAX_CALL_ID ? 1 : this.nextCallId + 1;
      const call: PendingCall = {
        id,
        encode,
        waitMs,
        fenceable,
        written: false,
        ordinal: 0,
        settle: (outcome) => {
          this.callDeadlines.delete(call);
          resolve(outcome);
        },
      };
      this.callDeadlines.add(call, performance.now() + waitMs);
      this.waiting.push(call);
      // Calls are client requests: they try to connect even while messages back off.
      if (this.state === 'idle') this.connect();
      else this.scheduleCallFlush();
    });
  }

  private callTimedOut(call: PendingCall): void {
    const at = this.waiting.indexOf(call);
    if (at >= 0) this.waiting.splice(at, 1);
    this.inflight.delete(call.id);
    const error = new Error(`no answer within ${call.waitMs} ms`);
    error.name = 'TimeoutError';
    call.settle(
      call.written
        ? { kind: 'lost', error, timedOut: true }
        : { kind: 'notSent', error: new NotSentError(`could not reach ${this.url} within ${call.waitMs} ms`, 'RAFTLET_CONNECT_TIMEOUT') },
    );
  }

  /**
   * Keeps the stream open even while nothing is sent (or stops doing so): a follower never sends to
   * the other followers, and the first vote request or first append to one must not wait for a
   * connection to be made (under load, a connection and the stream's handshake cost tens of ms).
   * A link that backs off is reopened when the backoff ends.
   */
  keepOpen(on: boolean): void {
    this.keepingOpen = on;
    if (on && this.state === 'idle' && !this.backoff.isBackingOff(this.options.now())) this.connect();
  }

  /** The peer is up (a message from it arrived): a kept-open link whose last attempt was refused
   * (nothing listened: the peer was restarting) reconnects now, not at its next retry. */
  peerAlive(): void {
    if (this.state !== 'idle' || !this.keepingOpen || !this.lastRefused) return;
    this.connect();
  }

  /** The peer opened a stream to this node: its process is up and serving, whatever our last
   * attempt met (refused, or a server that was starting or stopping), so a kept-open link that
   * is down reconnects now. Bounded by how often the peer opens streams, which it backs off. */
  peerOpenedStream(): void {
    if (this.state !== 'idle' || !this.keepingOpen) return;
    this.connect();
  }

  stats(): PeerStats {
    return {
      id: this.id,
      url: this.url,
      queued: this.queue.length + this.snapshots.length,
      queuedBytes: this.queue.bytes + this.snapshots.bytes,
      inFlightRequests: (this.state === 'connecting' ? 1 : 0) + (this.snapshotInFlight === null ? 0 : 1),
      connected: this.state === 'open',
      delivered: this.delivered,
      requests: this.requests,
      failedRequests: this.failedRequests,
      dropped: { ...this.dropped },
      reachable: this.reachable,
      backingOff: this.backoff.isBackingOff(this.options.now()),
      consecutiveFailures: this.backoff.consecutiveFailures,
    };
  }

  /** Ends the stream, aborts a snapshot in flight, drops what is queued, fails calls in flight. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.ticker);
    this.drop('closed', this.queue.clear() + this.snapshots.clear());
    this.snapshotInFlight?.abort();
    const closing = new Error('the peer transport closed');
    this.failCalls(closing, closing);
    this.generation++;
    this.req?.destroy();
    this.req = null;
    this.state = 'idle';
    this.agent.destroy();
  }

  // ---- the stream ----

  private currentToken(): string | null {
    const tokens = this.options.tokens?.current() ?? null;
    if (tokens === null) return null;
    if (this.token === null || !tokens.includes(this.token)) this.token = tokens[0];
    return this.token;
  }

  /** After a 401: the next token of the set, and whether one is left that was not refused yet. */
  private nextToken(): boolean {
    const tokens = this.options.tokens?.current() ?? null;
    if (tokens === null || tokens.length < 2) return false;
    this.authRefusals++;
    const at = this.token === null ? -1 : tokens.indexOf(this.token);
    this.token = tokens[(at + 1) % tokens.length];
    return this.authRefusals < tokens.length;
  }

  private connect(): void {
    if (this.closed || this.state !== 'idle') return;
    this.state = 'connecting';
    const generation = ++this.generation;
    this.requests++;
    const started = performance.now();
    this.openedWithCluster = this.options.identity?.current() ?? null;
    let req: ClientRequest;
    try {
      req = dial(this.base, this.options.dial, {
        method: 'POST',
        path: this.base.prefix + ROUTES.stream,
        headers: { 'content-type': STREAM_CONTENT_TYPE, [TARGET_HEADER]: this.id, [FEATURES_HEADER]: FEATURE_CALL_FENCE, ...memberHeaders(this.options, this.currentToken()) },
        agent: false,
      });
    } catch (error) {
      this.connectFailed(generation, started, new NotSentError(describeFailure(error), 'EINVAL', error));
      return;
    }
    this.req = req;
    const ready = trackReady(req, this.base.protocol === 'https:');
    const timer = setTimeout(() => {
      const error = new Error(`the peer did not accept the stream within ${this.options.requestTimeoutMs} ms`);
      error.name = 'TimeoutError';
      req.destroy(error);
    }, this.options.requestTimeoutMs);
    req.on('socket', (socket) => socket.setNoDelay(true));
    req.on('error', (error) => {
      clearTimeout(timer);
      if (generation !== this.generation) return;
      if (this.state === 'connecting') {
        this.connectFailed(generation, started, ready() ? error : new NotSentError(describeFailure(error), (error as { code?: string }).code ?? 'RAFTLET_CONNECT_FAILED', error));
      } else {
        this.streamEnded(generation, error);
      }
    });
    req.on('response', (res) => {
      clearTimeout(timer);
      if (generation !== this.generation) {
        res.destroy();
        return;
      }
      if (res.statusCode !== 200) {
        this.refused(generation, started, res);
        return;
      }
      this.opened(generation, started, res);
    });
    req.flushHeaders();
  }

  private refused(generation: number, started: number, res: IncomingMessage): void {
    const chunks: Buffer[] = [];
    let bytes = 0;
    res.on('data', (chunk: Buffer) => {
      bytes += chunk.byteLength;
      if (bytes <= STREAM_ERROR_LIMIT) chunks.push(chunk);
    });
    const done = (): void => {
      if (generation !== this.generation) return;
      const status = res.statusCode ?? 0;
      this.req?.destroy();
      const reply = readErrorReply(status, Buffer.concat(chunks).toString('utf8'));
      const error = refusalError(this.id, status, res.headers, reply) ?? new Error(`peer ${this.id} refused the stream: ${reply.message}`);
      if (status === 401 && this.nextToken()) {
        // Another token of this member's set may be the one the peer accepts (rotation).
        this.options.hooks.onRpc?.('messages', (performance.now() - started) / 1000, false);
        this.state = 'idle';
        this.req = null;
        this.connect();
        return;
      }
      this.connectFailed(generation, started, error);
    };
    res.once('end', done);
    res.once('error', done);
  }

  private opened(generation: number, started: number, res: IncomingMessage): void {
    this.state = 'open';
    this.features = parseFeatures(res.headers[FEATURES_HEADER]);
    this.callsWritten = 0;
    this.fenceAcks = [];
    this.authRefusals = 0;
    this.lastRefused = false;
    const now = this.options.now();
    this.openedAtMs = now;
    this.lastReadMs = now;
    this.lastPingMs = now;
    this.backoff.succeed();
    this.options.hooks.onRpc?.('messages', (performance.now() - started) / 1000, true);
    this.setReachable(true, null);
    const reader = new FrameReader((type) => {
      switch (type) {
        case FRAME.reply:
          return this.options.maxResponseBytes;
        case FRAME.pong:
          return 0;
        case FRAME.error:
          return STREAM_ERROR_LIMIT;
        case FRAME.fence:
          return FENCE_BYTES;
        default:
          return -1;
      }
    });
    res.on('data', (chunk: Buffer) => {
      if (generation !== this.generation) return;
      this.lastReadMs = this.options.now();
      let frames: Frame[];
      try {
        frames = reader.push(chunk);
      } catch (error) {
        this.streamEnded(generation, new Error(`peer ${this.id} sent an unreadable stream: ${describeFailure(error)}`));
        return;
      }
      for (const frame of frames) this.onFrame(generation, frame);
    });
    res.once('end', () => this.streamEnded(generation, new Error(`peer ${this.id} ended the stream`)));
    res.once('error', (error) => this.streamEnded(generation, error));
    this.flush();
  }

  private onFrame(generation: number, frame: Frame): void {
    if (generation !== this.generation) return;
    switch (frame.type) {
      case FRAME.reply: {
        let reply: ReturnType<typeof decodeReply>;
        try {
          reply = decodeReply(frame.payload);
        } catch (error) {
          this.streamEnded(generation, new Error(`peer ${this.id} sent an unreadable reply: ${describeFailure(error)}`));
          return;
        }
        const call = this.inflight.get(reply.id);
        if (call === undefined) return; // timed out meanwhile
        this.inflight.delete(reply.id);
        call.settle({ kind: 'reply', status: reply.status, text: reply.json, headers: {} });
        return;
      }
      case FRAME.pong:
        return;
      case FRAME.fence: {
        let fence: Fence;
        try {
          fence = decodeFence(frame.payload);
        } catch (error) {
          this.streamEnded(generation, new Error(`peer ${this.id} sent an unreadable fence: ${describeFailure(error)}`));
          return;
        }
        this.onFence(fence);
        return;
      }
      case FRAME.error: {
        const text = frame.payload.toString('utf8');
        const reply = readErrorReply(0, text);
        const status = reply.code === 'unauthorized' ? 401 : reply.code === 'misdirected' ? 421 : 0;
        const error = refusalError(this.id, status, {}, reply) ?? new Error(`peer ${this.id} closed the stream: ${reply.message}`);
        if (reply.code === 'unauthorized') {
          // The peer dropped the token this stream was opened with (rotation): reopen at once with
          // the next token of this member's set.
          this.nextToken();
          this.streamEnded(generation, error, 'reconnect');
          return;
        }
        this.streamEnded(generation, error, 'backoff');
        return;
      }
      default:
        this.streamEnded(generation, new Error(`peer ${this.id} sent an unexpected frame type ${frame.type}`));
    }
  }

  /**
   * The peer hands leadership off (stream-frames.ts): it refuses each propose it handles from its
   * fence to our fence-ack. Those written after the first fence.callsHandled calls of this stream
   * are therefore certain not to be appended there, and are settled now as refused (no_leader),
   * for the node to take them to the next leader without waiting out the peer's own refusal,
   * which a busy old leader may send only milliseconds later (its late reply finds no call and is
   * dropped). The ack leaves in the next write, after every call written so far.
   */
  private onFence(fence: Fence): void {
    for (const call of this.inflight.values()) {
      if (!call.fenceable || call.ordinal <= fence.callsHandled) continue;
      this.inflight.delete(call.id);
      call.settle({ kind: 'notSent', error: new ClientError('no_leader', `not proposed: ${this.id} is handing off leadership`) });
    }
    this.fenceAcks.push(fence.fence);
    this.flush();
  }

  /** The open stream ended or failed. Reopens at once if it was healthy (or when told to);
   * refusals by the peer back off. */
  private streamEnded(generation: number, error: Error, then: 'auto' | 'reconnect' | 'backoff' = 'auto'): void {
    if (generation !== this.generation || this.closed) return;
    this.generation++;
    this.req?.destroy();
    this.req = null;
    const lived = this.options.now() - this.openedAtMs;
    this.state = 'idle';
    this.blockedSinceMs = null;
    this.lostEstablished = true;
    // Calls written to the old stream may or may not have run; calls not yet written can go on
    // the next stream.
    this.failCalls(null, new Error(`the stream to ${this.id} failed after the call was sent: ${describeFailure(error)}`));
    this.shortStreams = lived < HEALTHY_STREAM_MS ? this.shortStreams + 1 : 0;
    if (then === 'backoff' || (then === 'auto' && this.shortStreams > 1)) {
      this.failedRequests++;
      this.backoff.fail(this.options.now());
      this.drop('failed', this.queue.clear());
      this.setReachable(false, error);
      const waiting = this.waiting.splice(0);
      for (const call of waiting) call.settle({ kind: 'notSent', error });
      return;
    }
    this.connect();
  }

  private connectFailed(generation: number, started: number, error: Error): void {
    if (generation !== this.generation) return;
    this.state = 'idle';
    this.req = null;
    this.failedRequests++;
    this.options.hooks.onRpc?.('messages', (performance.now() - started) / 1000, false);
    this.lastRefused = isRefused(error);
    if (this.lostEstablished && isRefused(error)) {
      this.lostEstablished = false;
      this.options.hooks.onPeerDead?.(this.id);
    }
    this.backoff.fail(this.options.now());
    this.drop('failed', this.queue.clear());
    const waiting = this.waiting.splice(0);
    for (const call of waiting) call.settle({ kind: 'notSent', error });
    // A refusal (token, version, address) is reported as itself, for a loud log line.
    this.setReachable(false, error instanceof ClientError ? error : new Error(`peer ${this.id} at ${this.url} unreachable: ${describeFailure(error)}`, { cause: error }));
  }

  /** Settles calls in flight (written) as lost, and waiting ones as not sent when notSent is given. */
  private failCalls(notSent: Error | null, lost: Error): void {
    for (const call of this.inflight.values()) call.settle({ kind: 'lost', error: lost, timedOut: false });
    this.inflight.clear();
    if (notSent !== null) {
      for (const call of this.waiting.splice(0)) call.settle({ kind: 'notSent', error: notSent });
    }
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.state !== 'open') return;
    this.flushScheduled = true;
    // The end of this turn: everything handed over meanwhile leaves in one write.
    process.nextTick(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /**
   * Calls leave once the event loop has run every callback of its current poll: the client requests
   * read from many sockets in one poll then share one write (one syscall, one read on the peer),
   * instead of one each. A call waits at most that one poll, never for a timer.
   */
  private scheduleCallFlush(): void {
    if (this.callFlushScheduled || this.state !== 'open') return;
    this.callFlushScheduled = true;
    setImmediate(() => {
      this.callFlushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const req = this.req;
    if (this.state !== 'open' || req === null || this.blockedSinceMs !== null) return;
    // The cluster id travels in the stream's opening headers. A stream opened before this node had
    // one (opened while bootstrapping, or kept open before the leader's id arrived) would never
    // tell the peer, which then never adopts it: reopen it once, between calls, so it does.
    const cluster = this.options.identity?.current() ?? null;
    if (cluster !== this.openedWithCluster && this.inflight.size === 0) {
      this.streamEnded(this.generation, new Error(`reopening the stream to ${this.id} to announce cluster id ${cluster}`), 'reconnect');
      return;
    }
    const parts: Uint8Array[] = [];
    let bytes = 0;
    for (const fence of this.fenceAcks.splice(0)) {
      const frame = encodeFenceAck(fence);
      parts.push(frame);
      bytes += frame.byteLength;
    }
    while (this.queue.length > 0) {
      const batch = this.queue.takeBatch(this.options.maxBatchMessages, this.options.maxBatchBytes);
      const frame = frameEncoded(batch);
      const head = encodeFrame(FRAME.messages, null);
      head.writeUInt32BE(1 + frame.byteLength, 0);
      parts.push(head, frame);
      bytes += head.byteLength + frame.byteLength;
      this.delivered += batch.length;
    }
    for (const call of this.waiting.splice(0)) {
      let frame: Buffer;
      try {
        frame = call.encode(call.id, this.features);
      } catch (error) {
        call.settle({ kind: 'notSent', error: error instanceof Error ? error : new Error(String(error)) });
        continue;
      }
      call.written = true;
      call.ordinal = ++this.callsWritten;
      this.inflight.set(call.id, call);
      parts.push(frame);
      bytes += frame.byteLength;
    }
    if (parts.length === 0) return;
    const now = this.options.now();
    const ok = writeUncorked(req, parts.length === 1 ? parts[0] : Buffer.concat(parts, bytes));
    if (!ok) {
      this.blockedSinceMs = now;
      const generation = this.generation;
      req.once('drain', () => {
        if (generation !== this.generation) return;
        this.blockedSinceMs = null;
        this.flush();
      });
    }
  }

  /** Pings an idle stream; closes one that hears nothing or cannot write. */
  private tick(): void {
    const now = this.options.now();
    if (this.state === 'idle' && this.keepingOpen && !this.backoff.isBackingOff(now)) this.connect();
    if (this.state !== 'open' || this.req === null) return;
    if (now - this.lastReadMs > this.options.idleTimeoutMs) {
      const error = new Error(`peer ${this.id} sent nothing for ${this.options.idleTimeoutMs} ms`);
      error.name = 'TimeoutError';
      this.streamEnded(this.generation, error);
      return;
    }
    if (this.blockedSinceMs !== null && now - this.blockedSinceMs > this.options.requestTimeoutMs) {
      const error = new Error(`peer ${this.id} read nothing for ${this.options.requestTimeoutMs} ms`);
      error.name = 'TimeoutError';
      this.streamEnded(this.generation, error);
      return;
    }
    // Pinged whenever the peer was silent for an interval, however much we send: a follower's stream
    // to its leader carries only its answers, and the leader writes nothing back on it but pongs.
    // (Pinging only when we sent nothing let that stream hit the idle timeout every few seconds.)
    const interval = this.options.pingIntervalMs;
    if (this.blockedSinceMs === null && now - this.lastReadMs >= interval && now - this.lastPingMs >= interval) {
      this.lastPingMs = now;
      this.req.write(encodeFrame(FRAME.ping, null));
    }
  }

  // ---- snapshots ----

  private pumpSnapshot(): void {
    if (this.closed || this.snapshotInFlight !== null || this.snapshots.length === 0) return;
    const batch = this.snapshots.takeBatch(1, Number.MAX_SAFE_INTEGER);
    const controller = new AbortController();
    this.snapshotInFlight = controller;
    this.deliverSnapshot(batch, controller).catch((error: unknown) => {
      // deliverSnapshot handles every failure itself; reaching this is a bug in this file.
      process.emitWarning(`raftlet transport: delivering a snapshot to ${this.id} failed unexpectedly: ${describeFailure(error)}`);
    });
  }

  private async deliverSnapshot(batch: Uint8Array[], controller: AbortController): Promise<void> {
    const started = performance.now();
    let failure: Error | null = null;
    this.requests++;
    try {
      const response = await requestOnce(this.base, this.options.dial, {
        method: 'POST',
        path: this.base.prefix + ROUTES.messages,
        headers: { 'content-type': MESSAGES_CONTENT_TYPE, ...memberHeaders(this.options, this.currentToken()) },
        agent: this.agent,
        body: frameEncoded(batch),
        timeoutMs: this.options.snapshotTimeoutMs,
        maxResponseBytes: STREAM_ERROR_LIMIT,
        signal: controller.signal,
      });
      if (response.status < 200 || response.status > 299) {
        const reply = readErrorReply(response.status, response.text);
        failure = refusalError(this.id, response.status, response.headers, reply) ?? new Error(`peer ${this.id} refused a snapshot: ${reply.message}`);
      }
    } catch (error) {
      failure = new Error(`peer ${this.id} at ${this.url} unreachable: ${describeFailure(error)}`, { cause: error });
    }
    this.snapshotInFlight = null;
    if (this.closed) return;
    this.options.hooks.onRpc?.('snapshot', (performance.now() - started) / 1000, failure === null);
    if (failure === null) {
      this.delivered += batch.length;
      this.pumpSnapshot();
      return;
    }
    this.failedRequests++;
    this.drop('failed', batch.length, failure);
    this.pumpSnapshot();
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
