// The peer client: Raft messages per peer on a long-lived stream (see peer-link.ts), and typed
// calls for the forwarding a follower does to reach the leader. A call to a current peer travels on
// that peer's stream (many calls in one write, answers matched by id: one round trip each); a call
// to any other URL is a one-shot request. Every call has a timeout, and every queue and the number
// of calls in flight are bounded.
import type { LookupFunction } from 'node:net';
import { ClientError, type NodeStatus } from '../api/ops.ts';
import { encodeKvCommand } from '../kv/codec.ts';
import type { KvCommand, KvResult } from '../kv/types.ts';
import type { Message, NodeId } from '../raft/types.ts';
import { tokenSource, type TokenOption } from './auth.ts';
import type { ClusterIdentity } from './cluster-id.ts';
import { WIRE_LIMITS } from './codec.ts';
import { requestOnce, type DialOptions, type OnceResponse } from './dial.ts';
import {
  decodeKvResult,
  decodeReadIndexResult,
  decodeStatus,
  decodeTransferResult,
  encodeCommand,
  encodeReadIndexRequest,
  encodeTransferRequest,
  parseJson,
  proposeBody,
} from './forwarding.ts';
import type { TransferResult } from './forwarding.ts';
import { emptyDropCounts, memberHeaders, PeerLink } from './peer-link.ts';
import type { CallEncoder, CallOutcome, DropReason, LinkOptions, PeerStats, RpcKind, TransportHooks } from './peer-link.ts';
import { parsePeerUrl } from './peer-url.ts';
import type { PeerBase } from './peer-url.ts';
import { FEATURE_PROPOSE_BYTES, JSON_CONTENT_TYPE, MAX_TIMEOUT_MS, ROUTES } from './protocol.ts';
import { describeFailure, failedBeforeSending, handlerError, isTimeout, readErrorReply, refusalError } from './replies.ts';
import { encodeCall, encodeProposeBytesCall, type CallKind } from './stream-frames.ts';
import type { TlsSource } from './tls.ts';
import type { TokenSource } from './tokens.ts';
import { steadyNow } from '../util/steady-clock.ts';

export interface PeerClientOptions {
  /** The cluster token, or a token set (the first is sent; on 401 the next is tried); null =
   * insecure mode (no Authorization header). */
  readonly token: TokenOption;
  /** Peer TLS: client certificate and CA for https peer URLs. */
  readonly tls?: TlsSource | null;
  /** Per peer: queued messages before the oldest are dropped. Default 4096. */
  readonly maxQueuedMessages?: number;
  /** Per peer: queued bytes before the oldest messages are dropped. Default 32 MiB. */
  readonly maxQueuedBytes?: number;
  /** Per frame: at most this many messages... Default 1024. */
  readonly maxBatchMessages?: number;
  /** ...and about this many bytes (a single larger message still goes alone). Default 4 MiB. */
  readonly maxBatchBytes?: number;
  /** Bound of a stream connection attempt and of a stalled write. Default 2000 ms; about the
   * election timeout is sensible. */
  readonly requestTimeoutMs?: number;
  /** Timeout of a request carrying a snapshot. Default 60 s. */
  readonly snapshotTimeoutMs?: number;
  /** Backoff after a failed connection to a peer: first delay, and its cap. Defaults 100 ms, 2000 ms. */
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /** An idle stream pings this often. Default 1000 ms. */
  readonly pingIntervalMs?: number;
  /** A stream that hears nothing for this long is reopened. Default max(4000, 2 x requestTimeoutMs). */
  readonly idleTimeoutMs?: number;
  /** Kept for compatibility; streams need one connection per peer. */
  readonly connectionsPerPeer?: number;
  /** Forwarded calls in flight across all peers; beyond this, calls are refused at once. Default 1024. */
  readonly maxConcurrentCalls?: number;
  /** Jitter source, [0, 1). Default Math.random. */
  readonly random?: () => number;
  /** Monotonic milliseconds for backoff and stream liveness. Default performance.now. */
  readonly now?: () => number;
  readonly hooks?: TransportHooks;
  /** Resolves peer host names (e.g. with RAFTLET_DNS_SERVER); default: the system resolver. */
  readonly lookup?: LookupFunction;
  /** This node's cluster id, sent with every request (cluster-id.ts). */
  readonly identity?: ClusterIdentity;
  /** This node's member id, sent with every stream and request (Raftlet-From, sender.ts); unset
   * for a client that is no member (a backup job). */
  readonly selfId?: NodeId;
}

const DEFAULTS = {
  maxQueuedMessages: 4096,
  maxQueuedBytes: 32 * 1024 * 1024,
  maxBatchMessages: 1024,
  maxBatchBytes: 4 * 1024 * 1024,
  requestTimeoutMs: 2000,
  snapshotTimeoutMs: 60_000,
  backoffInitialMs: 100,
  backoffMaxMs: 2000,
  pingIntervalMs: 1000,
  maxConcurrentCalls: 1024,
} as const;

// Replies to forwarded calls are small JSON; a status lists at most WIRE_LIMITS.members members.
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/** What a failed forwarded call means for its caller. */
type CallSemantics = {
  /** The request never left this node. */
  readonly notSent: ClientError['code'];
  /** It was sent and then lost, timed out, or answered with something unreadable. */
  readonly unknown: ClientError['code'];
  /** For messages: "<subject> was not sent", "after <subject> was sent". */
  readonly subject: string;
};

const SEMANTICS: Record<CallKind, CallSemantics> = {
  propose: { notSent: 'no_leader', unknown: 'timeout', subject: 'the write' },
  readIndex: { notSent: 'no_leader', unknown: 'timeout', subject: 'the read barrier' },
  transfer: { notSent: 'no_leader', unknown: 'timeout', subject: 'the leadership transfer' },
  status: { notSent: 'unavailable', unknown: 'unavailable', subject: 'the status request' },
};

const ONE_SHOT: Record<CallKind, { method: 'GET' | 'POST'; route: string }> = {
  propose: { method: 'POST', route: ROUTES.propose },
  readIndex: { method: 'POST', route: ROUTES.readIndex },
  transfer: { method: 'POST', route: ROUTES.transfer },
  status: { method: 'GET', route: ROUTES.status },
};

function positive(name: string, value: number | undefined, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  const chosen = value ?? fallback;
  if (!Number.isSafeInteger(chosen) || chosen < 1 || chosen > max) {
    throw new RangeError(`PeerClient option ${name} must be a whole number from 1 to ${max} (got ${chosen})`);
  }
  return chosen;
}

export class PeerClient {
  private readonly linkOptions: LinkOptions;
  private readonly maxConcurrentCalls: number;
  private readonly hooks: TransportHooks;
  private readonly tokens: TokenSource | null;
  private readonly statusTimeoutMs: number;
  private links = new Map<NodeId, PeerLink>();
  /** The current links by their URL as given and by endpoint (PeerBase.key): a forwarded call
   * finds its stream without parsing the leader's URL each time. */
  private linksByUrl = new Map<string, PeerLink>();
  private linksByKey = new Map<string, PeerLink>();
  /** Peers whose URL could not be used: their messages are dropped as 'bad_url'. */
  private badUrls = new Map<NodeId, string>();
  private readonly unknownDrops = emptyDropCounts();
  private callsInFlight = 0;
  private closed = false;
  /** Aborts every one-shot call in flight when the client closes. */
  private readonly closing = new AbortController();

  constructor(options: PeerClientOptions) {
    const requestTimeoutMs = positive('requestTimeoutMs', options.requestTimeoutMs, DEFAULTS.requestTimeoutMs, MAX_TIMEOUT_MS);
    const backoffInitialMs = positive('backoffInitialMs', options.backoffInitialMs, DEFAULTS.backoffInitialMs);
    const pingIntervalMs = positive('pingIntervalMs', options.pingIntervalMs, DEFAULTS.pingIntervalMs);
    this.hooks = options.hooks ?? {};
    this.tokens = tokenSource(options.token);
    this.linkOptions = {
      tokens: this.tokens,
      maxQueuedMessages: positive('maxQueuedMessages', options.maxQueuedMessages, DEFAULTS.maxQueuedMessages),
      maxQueuedBytes: positive('maxQueuedBytes', options.maxQueuedBytes, DEFAULTS.maxQueuedBytes),
      maxBatchMessages: positive('maxBatchMessages', options.maxBatchMessages, DEFAULTS.maxBatchMessages, WIRE_LIMITS.messagesPerFrame),
      maxBatchBytes: positive('maxBatchBytes', options.maxBatchBytes, DEFAULTS.maxBatchBytes),
      requestTimeoutMs,
      snapshotTimeoutMs: positive('snapshotTimeoutMs', options.snapshotTimeoutMs, DEFAULTS.snapshotTimeoutMs),
      backoffInitialMs,
      backoffMaxMs: positive('backoffMaxMs', options.backoffMaxMs, Math.max(DEFAULTS.backoffMaxMs, backoffInitialMs)),
      pingIntervalMs,
      idleTimeoutMs: positive('idleTimeoutMs', options.idleTimeoutMs, Math.max(4 * pingIntervalMs, 4000, 2 * requestTimeoutMs)),
      maxResponseBytes: MAX_RESPONSE_BYTES,
      random: options.random ?? Math.random,
      now: options.now ?? (() => performance.now()),
      hooks: this.hooks,
      dial: { lookup: options.lookup, tls: options.tls ?? null },
      identity: options.identity,
      selfId: options.selfId,
    };
    if (this.linkOptions.backoffMaxMs < backoffInitialMs) {
      throw new RangeError(`PeerClient option backoffMaxMs (${this.linkOptions.backoffMaxMs}) must not be below backoffInitialMs (${backoffInitialMs})`);
    }
    this.maxConcurrentCalls = positive('maxConcurrentCalls', options.maxConcurrentCalls, DEFAULTS.maxConcurrentCalls);
    this.statusTimeoutMs = requestTimeoutMs;
  }

  /** The peers to send to, id → URL (this node may be included; it is simply never sent to unless
   * asked). Links of removed peers, or of peers whose URL changed, are closed: their queued
   * messages are dropped and their streams closed. */
  setPeers(peers: ReadonlyMap<NodeId, string> | Readonly<Record<NodeId, string>>): void {
    if (this.closed) return;
    const wanted = peers instanceof Map ? new Map(peers) : new Map(Object.entries(peers));
    for (const [id, link] of this.links) {
      if (wanted.get(id) !== link.url) {
        this.links.delete(id);
        this.closeLink(link);
      }
    }
    this.badUrls = new Map();
    for (const [id, url] of wanted) {
      if (this.links.has(id)) continue;
      let base: PeerBase;
      try {
        base = parsePeerUrl(url);
      } catch (error) {
        // A bad URL in a replicated configuration must not stop the node; say so and drop.
        this.badUrls.set(id, url);
        this.hooks.onPeerReachable?.(id, false, error instanceof Error ? error : new Error(String(error)));
        continue;
      }
      this.links.set(id, new PeerLink(id, url, base, this.linkOptions));
    }
    this.linksByUrl = new Map();
    this.linksByKey = new Map();
    for (const link of this.links.values()) {
      if (!this.linksByUrl.has(link.url)) this.linksByUrl.set(link.url, link);
      if (!this.linksByKey.has(link.base.key)) this.linksByKey.set(link.base.key, link);
    }
  }

  /** The URL this client knows for a member (given to setPeers), usable or not. */
  urlOf(id: NodeId): string | undefined {
    return this.links.get(id)?.url ?? this.badUrls.get(id);
  }

  /** Keeps the streams to these peers open while idle (the other voters: whoever wins an election
   * sends to them at once); the streams to all other peers open on first use, as before. */
  keepOpen(ids: Iterable<NodeId>): void {
    if (this.closed) return;
    const wanted = new Set(ids);
    for (const [id, link] of this.links) link.keepOpen(wanted.has(id));
  }

  /** A message from peer arrived, so its process is up: a kept-open link that is down (backing
   * off after the peer went away) reconnects now instead of at its next retry. */
  heardFrom(peer: NodeId): void {
    this.links.get(peer)?.peerAlive();
  }

  /** peer opened a stream to this node: a kept-open link to it that is down reconnects now. */
  streamFrom(peer: NodeId): void {
    this.links.get(peer)?.peerOpenedStream();
  }

  /** Queues messages for one peer and returns at once; they leave at the end of this turn of the
   * event loop. Delivery is best effort, in order. */
  send(to: NodeId, messages: readonly Message[]): void {
    const link = this.closed ? undefined : this.links.get(to);
    if (link === undefined) {
      this.dropUnsent(to, messages.length);
      return;
    }
    for (const message of messages) link.enqueue(message);
  }

  /** Sends each message to its `to` peer (a Ready batch's messages, say). */
  sendAll(messages: readonly Message[]): void {
    for (const message of messages) this.send(message.to, [message]);
  }

  /** Forwards a write to the leader at peerUrl. deadlineMs is absolute (steadyNow() clock).
   * Rejects with ClientError: 'no_leader' = certainly not proposed (unreachable, refused before
   * sending, or the peer is not the leader), 'timeout' = outcome unknown, or the leader's own error. */
  async propose(peerUrl: string, cmd: KvCommand, deadlineMs: number, encoded?: Uint8Array): Promise<KvResult> {
    // The command as its log entry will hold it: sent as it is where the leader's stream accepts
    // that (propose-bytes), else as JSON, built only then.
    let bytes: Uint8Array;
    try {
      bytes = encoded ?? encodeKvCommand(cmd);
    } catch (error) {
      throw new ClientError('bad_request', `the write cannot be forwarded: ${describeFailure(error)}`);
    }
    let command: string | null = null;
    const body = (timeoutMs: number): string => {
      if (command === null) {
        try {
          command = encodeCommand(cmd);
        } catch (error) {
          throw new ClientError('bad_request', `the write cannot be forwarded: ${describeFailure(error)}`);
        }
      }
      return proposeBody(command, timeoutMs);
    };
    return this.call('propose', peerUrl, body, deadlineMs, decodeKvResult, bytes);
  }

  /** Asks the leader at peerUrl for a read index (thesis §6.4.1): once this node has applied up to
   * the returned index, its state reflects every write committed before the call. */
  async readIndex(peerUrl: string, deadlineMs: number): Promise<{ index: number; term: number }> {
    return this.call('readIndex', peerUrl, (timeoutMs) => encodeReadIndexRequest(timeoutMs), deadlineMs, decodeReadIndexResult);
  }

  /** Asks the leader at peerUrl to hand leadership to `to` (null: its most up-to-date follower). */
  async transfer(peerUrl: string, to: NodeId | null, deadlineMs: number): Promise<TransferResult> {
    let body: (timeoutMs: number) => string;
    try {
      encodeTransferRequest({ to, timeoutMs: 1 });
      body = (timeoutMs) => encodeTransferRequest({ to, timeoutMs });
    } catch (error) {
      throw new ClientError('bad_request', `the transfer cannot be forwarded: ${describeFailure(error)}`);
    }
    return this.call('transfer', peerUrl, body, deadlineMs, decodeTransferResult);
  }

  /** The peer's own status. Rejects with ClientError('unavailable') if it cannot be had. */
  async status(peerUrl: string, deadlineMs: number = steadyNow() + this.statusTimeoutMs): Promise<NodeStatus> {
    return this.call('status', peerUrl, null, deadlineMs, decodeStatus);
  }

  stats(): PeerStats[] {
    return [...this.links.values()].map((link) => link.stats());
  }

  /** Messages dropped because no usable link existed for their peer id, by reason. */
  droppedWithoutLink(): Readonly<Record<DropReason, number>> {
    return { ...this.unknownDrops };
  }

  /** Stops everything: ends streams, aborts requests in flight, drops queues. Calls made
   * afterwards reject with ClientError('unavailable'); sends are dropped as 'closed'. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closing.abort();
    const links = [...this.links.values()];
    this.links.clear();
    this.linksByUrl.clear();
    this.linksByKey.clear();
    await Promise.all(links.map((link) => link.close()));
  }

  private closeLink(link: PeerLink): void {
    link.close().catch((error: unknown) => {
      process.emitWarning(`raftlet transport: closing the link to ${link.id} failed: ${describeFailure(error)}`);
    });
  }

  private dropUnsent(to: NodeId, count: number): void {
    const reason: DropReason = this.closed ? 'closed' : this.badUrls.has(to) ? 'bad_url' : 'unknown_peer';
    this.unknownDrops[reason] += count;
    for (let i = 0; i < count; i++) this.hooks.onDrop?.(to, reason);
  }

  private async call<T>(
    kind: CallKind,
    peerUrl: string,
    body: ((timeoutMs: number) => string) | null,
    deadlineMs: number,
    decode: (json: unknown) => T,
    /** For propose: the encoded command, sent as a propose-bytes call where the stream accepts it. */
    proposeBytes: Uint8Array | null = null,
  ): Promise<T> {
    const semantics = SEMANTICS[kind];
    if (this.closed) throw new ClientError('unavailable', 'the peer transport is closed (the node is shutting down)');
    let link = this.linksByUrl.get(peerUrl);
    let base: PeerBase;
    if (link !== undefined) base = link.base;
    else {
      try {
        base = parsePeerUrl(peerUrl);
      } catch (error) {
        throw new ClientError(semantics.notSent, describeFailure(error));
      }
      link = this.linksByKey.get(base.key);
    }
    const remainingMs = Math.floor(deadlineMs - steadyNow());
    if (!(remainingMs >= 1)) {
      throw new ClientError(semantics.notSent, `the deadline passed before ${semantics.subject} could be forwarded to ${peerUrl}; ${semantics.subject} was not sent`);
    }
    if (this.callsInFlight >= this.maxConcurrentCalls) {
      throw new ClientError('unavailable', `too many requests forwarded at once (limit ${this.maxConcurrentCalls}); ${semantics.subject} was not sent, retry later`);
    }
    // The peer gets a slightly earlier deadline, so its own 'timeout' answer arrives before ours fires.
    const waitMs = Math.min(remainingMs, MAX_TIMEOUT_MS);
    const peerTimeoutMs = Math.max(1, waitMs - Math.min(250, Math.ceil(waitMs / 10)));
    this.callsInFlight++;
    const started = performance.now();
    let ok = false;
    try {
      let outcome: CallOutcome;
      if (link !== undefined) {
        const encode: CallEncoder = (id, features) =>
          proposeBytes !== null && features.has(FEATURE_PROPOSE_BYTES)
            ? encodeProposeBytesCall(id, peerTimeoutMs, proposeBytes)
            : encodeCall(id, kind, body === null ? '' : body(peerTimeoutMs));
        outcome = await link.call(encode, waitMs, kind === 'propose');
      } else {
        outcome = await this.oneShot(kind, base, body === null ? null : body(peerTimeoutMs), waitMs);
      }
      switch (outcome.kind) {
        case 'notSent':
          // The peer's own refusal (token, version, address) says more than "unreachable".
          if (outcome.error instanceof ClientError) throw outcome.error;
          if (this.closed) throw new ClientError('unavailable', `the peer transport closed before ${semantics.subject} was sent`);
          throw new ClientError(semantics.notSent, `${peerUrl} is unreachable (${describeFailure(outcome.error)}); ${semantics.subject} was not sent`);
        case 'lost':
          throw this.lost(semantics, peerUrl, waitMs, outcome.error, outcome.timedOut);
        case 'reply': {
          const value = this.interpret(semantics, peerUrl, outcome.status, outcome.headers, outcome.text, decode);
          ok = true;
          return value;
        }
        default: {
          const unreachable: never = outcome;
          throw new Error(`unknown call outcome ${String(unreachable)}`);
        }
      }
    } finally {
      this.callsInFlight--;
      this.hooks.onRpc?.(kind, (performance.now() - started) / 1000, ok);
    }
  }

  /** A call without a stream: one request, retried with the next token of the set on 401 (a 401
   * comes before anything runs, so retrying is safe). */
  private async oneShot(kind: CallKind, base: PeerBase, json: string | null, waitMs: number): Promise<CallOutcome> {
    const { method, route } = ONE_SHOT[kind];
    const tokens = this.tokens?.current() ?? [null];
    const until = performance.now() + waitMs;
    let response: OnceResponse | null = null;
    for (const token of tokens) {
      const leftMs = Math.max(1, Math.floor(until - performance.now()));
      try {
        response = await requestOnce(base, this.linkOptions.dial, {
          method,
          path: base.prefix + route,
          headers: { ...(json === null ? {} : { 'content-type': JSON_CONTENT_TYPE }), ...memberHeaders(this.linkOptions, token) },
          agent: false,
          body: json,
          timeoutMs: leftMs,
          maxResponseBytes: MAX_RESPONSE_BYTES,
          signal: this.closing.signal,
        });
      } catch (error) {
        if (failedBeforeSending(error)) return { kind: 'notSent', error: error as Error };
        return { kind: 'lost', error: error as Error, timedOut: isTimeout(error) };
      }
      if (response.status !== 401) break;
    }
    const last = response as OnceResponse;
    return { kind: 'reply', status: last.status, text: last.text, headers: last.headers };
  }

  private interpret<T>(semantics: CallSemantics, peerUrl: string, status: number, headers: OnceResponse['headers'], text: string, decode: (json: unknown) => T): T {
    if (status === 200) {
      try {
        return decode(parseJson(text, 'reply'));
      } catch (error) {
        throw new ClientError(semantics.unknown, `${peerUrl} answered ${semantics.subject} with an unreadable reply (${describeFailure(error)}); its outcome is unknown`);
      }
    }
    const reply = readErrorReply(status, text);
    const refusal = refusalError(peerUrl, status, headers, reply);
    if (refusal !== null) throw refusal;
    const own = handlerError(reply);
    if (own !== null) throw own;
    throw new ClientError(semantics.unknown, `${peerUrl} failed ${semantics.subject} (${reply.message}); its outcome is unknown`);
  }

  private lost(semantics: CallSemantics, peerUrl: string, waitMs: number, error: unknown, timedOut: boolean): ClientError {
    if (this.closed) return new ClientError('unavailable', `the peer transport closed while ${semantics.subject} was in flight; its outcome is unknown`);
    const why = timedOut || isTimeout(error) ? `no answer within ${waitMs} ms` : `the connection failed (${describeFailure(error)})`;
    return new ClientError(semantics.unknown, `${why} after ${semantics.subject} was sent to ${peerUrl}; its outcome is unknown`);
  }
}
