// The peer client: fire-and-forget Raft messages per peer (see peer-link.ts), and typed calls for
// the forwarding routes a follower uses to reach the leader. Every request has a timeout, and every
// queue and the number of calls in flight are bounded.
import type { LookupFunction } from 'node:net';
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';
import { ClientError } from '../api/ops.ts';
import type { NodeStatus } from '../api/ops.ts';
import type { KvCommand, KvResult } from '../kv/types.ts';
import type { Message, NodeId } from '../raft/types.ts';
import { bearer } from './auth.ts';
import { clusterHeader, type ClusterIdentity } from './cluster-id.ts';
import { WIRE_LIMITS } from './codec.ts';
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
import { emptyDropCounts, PeerLink } from './peer-link.ts';
import type { DropReason, LinkOptions, PeerStats, RpcKind, TransportHooks } from './peer-link.ts';
import { parsePeerUrl } from './peer-url.ts';
import type { PeerBase } from './peer-url.ts';
import { JSON_CONTENT_TYPE, MAX_TIMEOUT_MS, PROTOCOL_HEADER, PROTOCOL_VERSION, ROUTES } from './protocol.ts';
import { describeFailure, failedBeforeSending, handlerError, isTimeout, readErrorReply, refusalError } from './replies.ts';

export interface PeerClientOptions {
  /** The cluster token; null = insecure mode (no Authorization header). */
  readonly token: string | null;
  /** Per peer: queued messages before the oldest are dropped. Default 4096. */
  readonly maxQueuedMessages?: number;
  /** Per peer: queued bytes before the oldest messages are dropped. Default 32 MiB. */
  readonly maxQueuedBytes?: number;
  /** Per request: at most this many messages... Default 1024. */
  readonly maxBatchMessages?: number;
  /** ...and about this many bytes (a single larger message still goes alone). Default 4 MiB. */
  readonly maxBatchBytes?: number;
  /** Timeout of a Raft messages request. Default 2000 ms; about the election timeout is sensible. */
  readonly requestTimeoutMs?: number;
  /** Timeout of a request carrying a snapshot. Default 60 s. */
  readonly snapshotTimeoutMs?: number;
  /** Backoff after a failed request to a peer: first delay, and its cap. Defaults 100 ms, 2000 ms. */
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /** Connections per peer (Raft lanes use two; the rest carry forwarded calls). Default 16. */
  readonly connectionsPerPeer?: number;
  /** Forwarded calls in flight across all peers; beyond this, calls are refused at once. Default 1024. */
  readonly maxConcurrentCalls?: number;
  /** Jitter source, [0, 1). Default Math.random. */
  readonly random?: () => number;
  /** Monotonic milliseconds for backoff. Default performance.now (tests pass a fake clock). */
  readonly now?: () => number;
  readonly hooks?: TransportHooks;
  /** Resolves peer host names (e.g. with RAFTLET_DNS_SERVER); default: the system resolver. */
  readonly lookup?: LookupFunction;
  /** This node's cluster id, sent with every request (cluster-id.ts). */
  readonly identity?: ClusterIdentity;
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
  connectionsPerPeer: 16,
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

const SEMANTICS: Record<Exclude<RpcKind, 'messages' | 'snapshot'>, CallSemantics> = {
  propose: { notSent: 'no_leader', unknown: 'timeout', subject: 'the write' },
  readIndex: { notSent: 'no_leader', unknown: 'timeout', subject: 'the read barrier' },
  transfer: { notSent: 'no_leader', unknown: 'timeout', subject: 'the leadership transfer' },
  status: { notSent: 'unavailable', unknown: 'unavailable', subject: 'the status request' },
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
  private readonly jsonHeaders: Record<string, string>;
  private readonly statusTimeoutMs: number;
  private links = new Map<NodeId, PeerLink>();
  /** Peers whose URL could not be used: their messages are dropped as 'bad_url'. */
  private badUrls = new Map<NodeId, string>();
  private readonly unknownDrops = emptyDropCounts();
  private callsInFlight = 0;
  private closed = false;
  /** Aborts every forwarded call in flight when the client closes. */
  private readonly closing = new AbortController();

  constructor(options: PeerClientOptions) {
    const requestTimeoutMs = positive('requestTimeoutMs', options.requestTimeoutMs, DEFAULTS.requestTimeoutMs, MAX_TIMEOUT_MS);
    const backoffInitialMs = positive('backoffInitialMs', options.backoffInitialMs, DEFAULTS.backoffInitialMs);
    this.hooks = options.hooks ?? {};
    this.linkOptions = {
      token: options.token,
      maxQueuedMessages: positive('maxQueuedMessages', options.maxQueuedMessages, DEFAULTS.maxQueuedMessages),
      maxQueuedBytes: positive('maxQueuedBytes', options.maxQueuedBytes, DEFAULTS.maxQueuedBytes),
      maxBatchMessages: positive('maxBatchMessages', options.maxBatchMessages, DEFAULTS.maxBatchMessages, WIRE_LIMITS.messagesPerFrame),
      maxBatchBytes: positive('maxBatchBytes', options.maxBatchBytes, DEFAULTS.maxBatchBytes),
      requestTimeoutMs,
      snapshotTimeoutMs: positive('snapshotTimeoutMs', options.snapshotTimeoutMs, DEFAULTS.snapshotTimeoutMs),
      backoffInitialMs,
      backoffMaxMs: positive('backoffMaxMs', options.backoffMaxMs, Math.max(DEFAULTS.backoffMaxMs, backoffInitialMs)),
      connectionsPerPeer: positive('connectionsPerPeer', options.connectionsPerPeer, DEFAULTS.connectionsPerPeer),
      maxResponseBytes: MAX_RESPONSE_BYTES,
      random: options.random ?? Math.random,
      now: options.now ?? (() => performance.now()),
      hooks: this.hooks,
      lookup: options.lookup,
      identity: options.identity,
    };
    if (this.linkOptions.backoffMaxMs < backoffInitialMs) {
      throw new RangeError(`PeerClient option backoffMaxMs (${this.linkOptions.backoffMaxMs}) must not be below backoffInitialMs (${backoffInitialMs})`);
    }
    this.maxConcurrentCalls = positive('maxConcurrentCalls', options.maxConcurrentCalls, DEFAULTS.maxConcurrentCalls);
    this.statusTimeoutMs = requestTimeoutMs;
    this.jsonHeaders = { 'content-type': JSON_CONTENT_TYPE, [PROTOCOL_HEADER]: String(PROTOCOL_VERSION), ...bearer(options.token) };
  }

  /** The peers to send to, id → URL (this node may be included; it is simply never sent to unless
   * asked). Links of removed peers, or of peers whose URL changed, are closed: their queued
   * messages are dropped and their connections closed. */
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
  }

  /** Queues messages for one peer and returns at once; delivery is best effort, in order. */
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

  /** Forwards a write to the leader at peerUrl. deadlineMs is absolute (Date.now() clock).
   * Rejects with ClientError: 'no_leader' = certainly not proposed (unreachable, refused before
   * sending, or the peer is not the leader), 'timeout' = outcome unknown, or the leader's own error. */
  async propose(peerUrl: string, cmd: KvCommand, deadlineMs: number): Promise<KvResult> {
    let command: string;
    try {
      command = encodeCommand(cmd);
    } catch (error) {
      throw new ClientError('bad_request', `the write cannot be forwarded: ${describeFailure(error)}`);
    }
    return this.call('propose', peerUrl, 'POST', ROUTES.propose, (timeoutMs) => proposeBody(command, timeoutMs), deadlineMs, decodeKvResult);
  }

  /** Asks the leader at peerUrl for a read index (thesis §6.4.1): once this node has applied up to
   * the returned index, its state reflects every write committed before the call. */
  async readIndex(peerUrl: string, deadlineMs: number): Promise<{ index: number; term: number }> {
    return this.call('readIndex', peerUrl, 'POST', ROUTES.readIndex, (timeoutMs) => encodeReadIndexRequest(timeoutMs), deadlineMs, decodeReadIndexResult);
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
    return this.call('transfer', peerUrl, 'POST', ROUTES.transfer, body, deadlineMs, decodeTransferResult);
  }

  /** The peer's own status. Rejects with ClientError('unavailable') if it cannot be had. */
  async status(peerUrl: string, deadlineMs: number = Date.now() + this.statusTimeoutMs): Promise<NodeStatus> {
    return this.call('status', peerUrl, 'GET', ROUTES.status, null, deadlineMs, decodeStatus);
  }

  stats(): PeerStats[] {
    return [...this.links.values()].map((link) => link.stats());
  }

  /** Messages dropped because no usable link existed for their peer id, by reason. */
  droppedWithoutLink(): Readonly<Record<DropReason, number>> {
    return { ...this.unknownDrops };
  }

  /** Stops everything: aborts requests in flight, drops queues, closes every connection. Calls made
   * afterwards reject with ClientError('unavailable'); sends are dropped as 'closed'. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closing.abort();
    const links = [...this.links.values()];
    this.links.clear();
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
    kind: Exclude<RpcKind, 'messages' | 'snapshot'>,
    peerUrl: string,
    method: 'GET' | 'POST',
    route: string,
    body: ((timeoutMs: number) => string) | null,
    deadlineMs: number,
    decode: (json: unknown) => T,
  ): Promise<T> {
    const semantics = SEMANTICS[kind];
    if (this.closed) throw new ClientError('unavailable', 'the peer transport is closed (the node is shutting down)');
    let base: PeerBase;
    try {
      base = parsePeerUrl(peerUrl);
    } catch (error) {
      throw new ClientError(semantics.notSent, describeFailure(error));
    }
    const remainingMs = Math.floor(deadlineMs - Date.now());
    if (!(remainingMs >= 1)) {
      throw new ClientError(semantics.notSent, `the deadline passed before ${semantics.subject} could be forwarded to ${peerUrl}; ${semantics.subject} was not sent`);
    }
    if (this.callsInFlight >= this.maxConcurrentCalls) {
      throw new ClientError('unavailable', `too many requests forwarded at once (limit ${this.maxConcurrentCalls}); ${semantics.subject} was not sent, retry later`);
    }
    // The peer gets a slightly earlier deadline, so its own 'timeout' answer arrives before ours fires.
    const waitMs = Math.min(remainingMs, MAX_TIMEOUT_MS);
    const peerTimeoutMs = Math.max(1, waitMs - Math.min(250, Math.ceil(waitMs / 10)));
    const link = [...this.links.values()].find((candidate) => candidate.base.key === base.key);
    // A URL that is not a current peer (rare: a leader this node has not heard of) gets its own
    // pool for this one call.
    const lookup = this.linkOptions.lookup;
    const pool =
      link?.callPool ??
      new Pool(base.origin, { connections: 1, maxResponseSize: MAX_RESPONSE_BYTES, connectTimeout: waitMs, ...(lookup ? { connect: { lookup } } : {}) });
    this.callsInFlight++;
    const started = performance.now();
    let ok = false;
    try {
      let response: Dispatcher.ResponseData;
      try {
        response = await pool.request({
          method,
          path: base.prefix + route,
          headers: {
            ...(body === null ? { [PROTOCOL_HEADER]: String(PROTOCOL_VERSION), ...bearer(this.linkOptions.token) } : this.jsonHeaders),
            ...clusterHeader(this.linkOptions.identity),
          },
          body: body === null ? null : body(peerTimeoutMs),
          signal: AbortSignal.any([this.closing.signal, AbortSignal.timeout(waitMs)]),
        });
      } catch (error) {
        if (failedBeforeSending(error)) {
          throw new ClientError(semantics.notSent, `${peerUrl} is unreachable (${describeFailure(error)}); ${semantics.subject} was not sent`);
        }
        throw this.lost(semantics, peerUrl, waitMs, error);
      }
      let text: string;
      try {
        text = await response.body.text();
      } catch (error) {
        throw this.lost(semantics, peerUrl, waitMs, error);
      }
      if (response.statusCode === 200) {
        try {
          const value = decode(parseJson(text, 'reply'));
          ok = true;
          return value;
        } catch (error) {
          throw new ClientError(semantics.unknown, `${peerUrl} answered ${semantics.subject} with an unreadable reply (${describeFailure(error)}); its outcome is unknown`);
        }
      }
      const reply = readErrorReply(response.statusCode, text);
      const refusal = refusalError(peerUrl, response.statusCode, response.headers, reply);
      if (refusal !== null) throw refusal;
      const own = handlerError(reply);
      if (own !== null) throw own;
      throw new ClientError(semantics.unknown, `${peerUrl} failed ${semantics.subject} (${reply.message}); its outcome is unknown`);
    } finally {
      this.callsInFlight--;
      this.hooks.onRpc?.(kind, (performance.now() - started) / 1000, ok);
      if (link === undefined) await pool.destroy();
    }
  }

  private lost(semantics: CallSemantics, peerUrl: string, waitMs: number, error: unknown): ClientError {
    if (this.closed) return new ClientError('unavailable', `the peer transport closed while ${semantics.subject} was in flight; its outcome is unknown`);
    const why = isTimeout(error) ? `no answer within ${waitMs} ms` : `the connection failed (${describeFailure(error)})`;
    return new ClientError(semantics.unknown, `${why} after ${semantics.subject} was sent to ${peerUrl}; its outcome is unknown`);
  }
}
