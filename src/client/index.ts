// raftlet/client: a typed client for raftlet's client API (SPEC §4), for the application beside a
// raftlet sidecar. Node built-ins only (fetch, AbortController, AsyncLocalStorage): it imports
// nothing else from this package or from npm, so it ships as one small file.
//
//   import { RaftletClient } from 'raftlet/client';
//   const raftlet = new RaftletClient();                    // RAFTLET_API_URL or http://127.0.0.1:7071
//   await raftlet.runAsLeader(async (signal) => {           // only while this pod's raftlet leads
//     while (!signal.aborted) {
//       await raftlet.put('jobs/last-run', new Date().toISOString()); // fenced with If-Term
//       await new Promise((resolve) => setTimeout(resolve, 1000));
//     }
//   });
import { AsyncLocalStorage } from 'node:async_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

// ---- answers and errors ----------------------------------------------------------------------------

export interface Entry {
  readonly key: string;
  readonly value: Uint8Array;
  /** The log index that last wrote the key: its ETag, for compare-and-set. */
  readonly modIndex: number;
  /** The value as UTF-8 text. */
  text(): string;
}

export interface WriteResult {
  readonly index: number;
  /** The term of the leader that appended the write. */
  readonly term: number;
}

export interface DeleteResult extends WriteResult {
  readonly deleted: boolean;
}

export interface ListResult {
  readonly items: readonly Entry[];
  /** The applied index the answer reflects: pass it as `index` to wait for the next change. */
  readonly index: number;
}

export interface Leadership {
  readonly leader: boolean;
  /** The fencing token: writes made with ifTerm = this term land only while this leadership lasts. */
  readonly term: number;
  readonly leaseRemainingMs: number;
}

export interface LeaderInfo {
  readonly id: string;
  readonly url: string;
  readonly term: number;
}

export interface Status {
  readonly id: string;
  readonly role: 'leader' | 'follower' | 'candidate';
  readonly term: number;
  readonly leader: string | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastLogIndex: number;
  readonly members: readonly { readonly id: string; readonly url: string; readonly voter: boolean }[];
}

/** An error answer of the API (`{"error":{"code","message"}}`) or a failure to reach it. */
export class RaftletError extends Error {
  /** HTTP status; 0 when raftlet could not be reached. */
  readonly status: number;
  /** SPEC §4 code: bad_request, not_found, precondition_failed, no_leader, timeout, ... or `unreachable`. */
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'RaftletError';
    this.status = status;
    this.code = code;
  }
}

/** A compare-and-set or If-Term condition failed (412): nothing was written. */
export class PreconditionFailed extends RaftletError {
  constructor(message: string) {
    super(412, 'precondition_failed', message);
    this.name = 'PreconditionFailed';
  }
}

/** A write was attempted inside runAsLeader's fn after leadership (or its lease) was lost; it was
 * not sent. */
export class LeadershipLost extends Error {
  readonly term: number;
  constructor(term: number) {
    super(`leadership of term ${term} was lost; the write was not sent`);
    this.name = 'LeadershipLost';
    this.term = term;
  }
}

/** The watch fell behind what raftlet keeps (a `resync` event or 410): re-read with list(), then
 * watch again from the index it answers. */
export class WatchResyncNeeded extends RaftletError {
  /** Where a fresh read and watch can start from. */
  readonly index: number;
  constructor(code: string, message: string, index: number) {
    super(410, code, message);
    this.name = 'WatchResyncNeeded';
    this.index = index;
  }
}

// ---- options ------------------------------------------------------------------------------------

export interface ClientOptions {
  /** Base URL of the local raftlet's client API; default RAFTLET_API_URL, else http://127.0.0.1:7071. */
  readonly url?: string;
  /** Bound of one ordinary request (not of long polls and watches); default 10 s. */
  readonly timeoutMs?: number;
}

export interface ReadOptions {
  /** 'stale' answers from the local copy at once; default linearizable. */
  readonly consistency?: 'linearizable' | 'stale';
  /** Blocking query: wait until the key (or prefix) changed after this index (X-Raftlet-Index). */
  readonly index?: number;
  /** How long a blocking query may wait (ms); default 60 s on the server. */
  readonly waitMs?: number;
  readonly signal?: AbortSignal;
}

export interface WriteOptions {
  /** Compare-and-set: the key's modIndex must be this. */
  readonly ifMatch?: number;
  /** Create only. */
  readonly ifNoneMatch?: boolean;
  /** Fencing: apply only while the leader of this term leads. Inside runAsLeader it is set for you. */
  readonly ifTerm?: number;
  readonly signal?: AbortSignal;
}

export interface WatchOptions {
  /** Deliver changes after this index (a list()'s index, or an event's index); default: from now. */
  readonly index?: number;
  readonly signal?: AbortSignal;
  /** Pause before reconnecting after a lost connection; default 500 ms. */
  readonly reconnectMs?: number;
  /** 'stale' skips the read barrier when (re)connecting. */
  readonly consistency?: 'linearizable' | 'stale';
}

export type WatchEvent =
  | { readonly type: 'put'; readonly key: string; readonly value: Uint8Array; readonly index: number; readonly term: number; text(): string }
  | { readonly type: 'delete'; readonly key: string; readonly index: number; readonly term: number };

export interface LeaderContext {
  /** The term of this leadership: the fencing token writes made through the client carry. */
  readonly term: number;
}

export interface RunAsLeaderOptions {
  /** Stops the loop: fn's signal is aborted, and runAsLeader resolves once fn has returned. */
  readonly signal?: AbortSignal;
  /** How often the lease is renewed from GET /v1/leadership while leading; default 100 ms. */
  readonly renewMs?: number;
  /** Called when fn is started (after) and stopped (before fn's promise settles). */
  readonly onStartedLeading?: (context: LeaderContext) => void;
  readonly onStoppedLeading?: (context: LeaderContext, reason: string) => void;
}

// ---- the client -----------------------------------------------------------------------------------

const LONG_POLL_MS = 30_000;
const utf8 = new TextDecoder();
const encoder = new TextEncoder();

function entryOf(key: string, value: Uint8Array, modIndex: number): Entry {
  return { key, value, modIndex, text: () => utf8.decode(value) };
}

function defaultUrl(): string {
  const fromEnv = typeof process !== 'undefined' ? process.env.RAFTLET_API_URL : undefined;
  return (fromEnv !== undefined && fromEnv !== '' ? fromEnv : 'http://127.0.0.1:7071').replace(/\/+$/, '');
}

function keyPath(key: string): string {
  if (key === '') throw new RangeError('key must not be empty');
  return `/v1/kv/${encodeURIComponent(key)}`;
}

/** Leadership as one runAsLeader holds it; writes inside its fn carry its term. */
interface Fence {
  readonly term: number;
  readonly signal: AbortSignal;
}

export class RaftletClient {
  readonly url: string;
  private readonly timeoutMs: number;
  private readonly fence = new AsyncLocalStorage<Fence>();

  constructor(options: ClientOptions = {}) {
    this.url = (options.url ?? defaultUrl()).replace(/\/+$/, '');
    if (!URL.canParse(this.url)) throw new RangeError(`url must be a URL such as http://127.0.0.1:7071, got ${JSON.stringify(this.url)}`);
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  // ---- plumbing ----

  private async call(method: string, path: string, init: { headers?: Record<string, string>; body?: Uint8Array; signal?: AbortSignal; timeoutMs?: number | null } = {}): Promise<Response> {
    const signals: AbortSignal[] = [];
    if (init.signal) signals.push(init.signal);
    if (init.timeoutMs !== null) signals.push(AbortSignal.timeout(init.timeoutMs ?? this.timeoutMs));
    let response: Response;
    try {
      response = await fetch(`${this.url}${path}`, {
        method,
        headers: init.headers,
        body: init.body,
        signal: signals.length === 1 ? signals[0] : AbortSignal.any(signals),
      });
    } catch (err) {
      if (init.signal?.aborted) throw init.signal.reason;
      const detail = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
      throw new RaftletError(0, 'unreachable', `cannot reach raftlet at ${this.url}: ${detail}`);
    }
    return response;
  }

  private async fail(response: Response): Promise<never> {
    const text = await response.text();
    let code = `http_${response.status}`;
    let message = text;
    try {
      const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
      if (typeof parsed.error?.code === 'string') code = parsed.error.code;
      if (typeof parsed.error?.message === 'string') message = parsed.error.message;
    } catch {
      // not the JSON error shape: keep the text
    }
    if (response.status === 412) throw new PreconditionFailed(message);
    if (response.status === 410) throw new WatchResyncNeeded(code, message, Number(response.headers.get('x-raftlet-index') ?? 0));
    throw new RaftletError(response.status, code, message);
  }

  private async json<T>(response: Response): Promise<T> {
    if (!response.ok) await this.fail(response);
    return (await response.json()) as T;
  }

  private readQuery(options: ReadOptions, extra: Record<string, string> = {}): string {
    const params = new URLSearchParams(extra);
    if (options.consistency === 'stale') params.set('consistency', 'stale');
    if (options.index !== undefined) params.set('index', String(options.index));
    if (options.waitMs !== undefined) params.set('wait', String(options.waitMs));
    const query = params.toString();
    return query === '' ? '' : `?${query}`;
  }

  /** Conditions as headers; inside runAsLeader's fn, If-Term from its leadership (refused locally
   * once that leadership is over). */
  private writeHeaders(options: WriteOptions): Record<string, string> {
    const headers: Record<string, string> = {};
    if (options.ifMatch !== undefined) headers['if-match'] = `"${options.ifMatch}"`;
    if (options.ifNoneMatch === true) headers['if-none-match'] = '*';
    const fence = this.fence.getStore();
    if (fence !== undefined && fence.signal.aborted) throw new LeadershipLost(fence.term);
    const term = options.ifTerm ?? fence?.term;
    if (term !== undefined) headers['if-term'] = String(term);
    return headers;
  }

  // ---- key-value ----

  /** The key's value, or null when it does not exist. With `index`, a blocking query. */
  async get(key: string, options: ReadOptions = {}): Promise<Entry | null> {
    return (await this.getWithIndex(key, options)).entry;
  }

  /** Like get(), with the applied index the answer reflects (for the next blocking query). */
  async getWithIndex(key: string, options: ReadOptions = {}): Promise<{ entry: Entry | null; index: number }> {
    const blocking = options.index !== undefined;
    const response = await this.call('GET', keyPath(key) + this.readQuery(options), { signal: options.signal, timeoutMs: blocking ? null : undefined });
    const index = Number(response.headers.get('x-raftlet-index') ?? 0);
    if (response.status === 404) {
      await response.body?.cancel();
      return { entry: null, index };
    }
    if (!response.ok) await this.fail(response);
    const value = new Uint8Array(await response.arrayBuffer());
    return { entry: entryOf(key, value, Number((response.headers.get('etag') ?? '"0"').replaceAll('"', ''))), index };
  }

  async put(key: string, value: string | Uint8Array, options: WriteOptions = {}): Promise<WriteResult> {
    const body = typeof value === 'string' ? encoder.encode(value) : value;
    const headers = { 'content-type': 'application/octet-stream', ...this.writeHeaders(options) };
    const response = await this.call('PUT', keyPath(key), { headers, body, signal: options.signal });
    const result = await this.json<{ index: number; term: number }>(response);
    return { index: result.index, term: result.term };
  }

  async del(key: string, options: Omit<WriteOptions, 'ifNoneMatch'> = {}): Promise<DeleteResult> {
    const response = await this.call('DELETE', keyPath(key), { headers: this.writeHeaders(options), signal: options.signal });
    return this.json<DeleteResult>(response);
  }

  /** Keys under `prefix` in byte order (at most `limit`, default 100, at most 1000). */
  async list(prefix = '', options: ReadOptions & { limit?: number } = {}): Promise<ListResult> {
    const extra: Record<string, string> = { prefix, encoding: 'base64' };
    if (options.limit !== undefined) extra.limit = String(options.limit);
    const blocking = options.index !== undefined;
    const response = await this.call('GET', `/v1/kv${this.readQuery(options, extra)}`, { signal: options.signal, timeoutMs: blocking ? null : undefined });
    const body = await this.json<{ items: { key: string; value: string; modIndex: number }[]; index: number }>(response);
    return {
      items: body.items.map((item) => entryOf(item.key, new Uint8Array(Buffer.from(item.value, 'base64')), item.modIndex)),
      index: body.index,
    };
  }

  // ---- cluster ----

  async status(): Promise<Status> {
    return this.json<Status>(await this.call('GET', '/v1/status'));
  }

  /** The cluster's leader, or null when none is known right now. */
  async leader(): Promise<LeaderInfo | null> {
    const response = await this.call('GET', '/v1/leader');
    if (response.status === 503) {
      await response.body?.cancel();
      return null;
    }
    return this.json<LeaderInfo>(response);
  }

  /** This node's own leadership. With `waitMs`, held until it differs from `seen` (a long poll). */
  async leadership(options: { waitMs?: number; seen?: Leadership; signal?: AbortSignal } = {}): Promise<Leadership> {
    const params = new URLSearchParams();
    if (options.waitMs !== undefined) {
      params.set('wait', String(options.waitMs));
      if (options.seen) {
        params.set('term', String(options.seen.term));
        params.set('leader', String(options.seen.leader));
        params.set('leased', String(options.seen.leaseRemainingMs > 0));
      }
    }
    const query = params.toString();
    const response = await this.call('GET', `/v1/leadership${query === '' ? '' : `?${query}`}`, {
      signal: options.signal,
      timeoutMs: options.waitMs === undefined ? undefined : options.waitMs + this.timeoutMs,
    });
    return this.json<Leadership>(response);
  }

  // ---- watches ----

  /**
   * Every change under `prefix`, in log order, as an async iterator over server-sent events. A lost
   * connection is resumed from the last index seen, so nothing is missed or repeated across leader
   * changes and restarts of the node; when raftlet no longer keeps what came after that index, the
   * iterator throws WatchResyncNeeded. End it with `break` or the signal.
   */
  async *watch(prefix = '', options: WatchOptions = {}): AsyncGenerator<WatchEvent, void, undefined> {
    let after = options.index;
    const reconnectMs = options.reconnectMs ?? 500;
    for (;;) {
      if (options.signal?.aborted) return;
      const params = new URLSearchParams({ prefix });
      if (after !== undefined) params.set('index', String(after));
      if (options.consistency === 'stale') params.set('consistency', 'stale');
      const local = new AbortController();
      const onAbort = (): void => local.abort();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        let response: Response;
        try {
          response = await this.call('GET', `/v1/watch?${params.toString()}`, { signal: local.signal, timeoutMs: null, headers: { accept: 'text/event-stream' } });
        } catch (err) {
          if (options.signal?.aborted) return;
          if (!(err instanceof RaftletError && err.code === 'unreachable')) throw err;
          await sleep(reconnectMs);
          continue;
        }
        if (response.status === 410) await this.fail(response);
        if (!response.ok || response.body === null) {
          // 503 (no leader for the read barrier), 429, 5xx: try again shortly.
          await response.body?.cancel();
          if (response.status === 400) await this.fail(response);
          await sleep(reconnectMs);
          continue;
        }
        for await (const message of readEvents(response.body)) {
          if (message.id !== null) after = Number(message.id);
          switch (message.event) {
            case 'put':
            case 'delete': {
              const data = JSON.parse(message.data) as { key: string; value?: string; encoding?: string; index: number; term: number };
              if (message.event === 'delete') {
                yield { type: 'delete', key: data.key, index: data.index, term: data.term };
              } else {
                const value = data.encoding === 'base64' ? new Uint8Array(Buffer.from(data.value ?? '', 'base64')) : encoder.encode(data.value ?? '');
                yield { type: 'put', key: data.key, value, index: data.index, term: data.term, text: () => utf8.decode(value) };
              }
              break;
            }
            case 'resync': {
              const data = JSON.parse(message.data) as { code: string; message: string; index: number };
              throw new WatchResyncNeeded(data.code, data.message, data.index);
            }
            default:
              break; // progress: only its id matters
          }
        }
      } catch (err) {
        if (options.signal?.aborted) return;
        if (err instanceof WatchResyncNeeded || err instanceof SyntaxError) throw err;
        if (err instanceof RaftletError && err.status === 400) throw err;
        // The connection broke mid-stream: resume from the last index.
      } finally {
        options.signal?.removeEventListener('abort', onAbort);
        local.abort();
      }
      await sleep(reconnectMs, undefined, { signal: options.signal }).catch(() => undefined);
    }
  }

  // ---- leadership for singleton work ----

  /**
   * Runs `fn(signal, context)` whenever this pod's raftlet leads, like client-go's
   * OnStartedLeading / OnStoppedLeading, but fenced: writes made through this client inside fn
   * carry If-Term = the leadership's term, so raftlet refuses them (412) once another leader took
   * over, and they are refused locally (LeadershipLost) once the signal is aborted. The signal
   * aborts the moment leadership is lost or its lease runs out (a local timer at the lease's end,
   * renewed every renewMs, and a long poll on GET /v1/leadership), whichever comes first; fn must
   * stop its work then. If fn returns while still leading, it is not started again before this
   * leadership ends; after a lost lease it starts again once the lease is back. Resolves when
   * options.signal aborts (after fn returned); rejects with fn's error if it throws while leading.
   */
  async runAsLeader(fn: (signal: AbortSignal, context: LeaderContext) => Promise<void> | void, options: RunAsLeaderOptions = {}): Promise<void> {
    const renewMs = options.renewMs ?? 100;
    while (!options.signal?.aborted) {
      const sentAt = performance.now();
      let current: Leadership;
      try {
        current = await this.leadership({ signal: options.signal });
      } catch (err) {
        if (options.signal?.aborted) break;
        if (!(err instanceof RaftletError)) throw err;
        await sleep(renewMs * 5, undefined, { signal: options.signal }).catch(() => undefined);
        continue;
      }
      if (current.leader && current.leaseRemainingMs > 0) {
        await this.lead(fn, current, sentAt, renewMs, options);
        continue;
      }
      // Not leading, or no lease yet: wait for a change.
      try {
        const waitMs = current.leader ? renewMs : LONG_POLL_MS;
        await this.leadership({ waitMs, seen: current, signal: options.signal });
      } catch (err) {
        if (options.signal?.aborted) break;
        if (!(err instanceof RaftletError)) throw err;
        await sleep(renewMs * 5, undefined, { signal: options.signal }).catch(() => undefined);
      }
    }
  }

  private async lead(
    fn: (signal: AbortSignal, context: LeaderContext) => Promise<void> | void,
    first: Leadership,
    firstSentAt: number,
    renewMs: number,
    options: RunAsLeaderOptions,
  ): Promise<void> {
    const term = first.term;
    const controller = new AbortController();
    let reason = 'fn returned';
    const stop = (why: string): void => {
      if (controller.signal.aborted) return;
      reason = why;
      controller.abort(new LeadershipLost(term));
    };
    // The lease counts from when the question was asked: raftlet answered no earlier.
    let deadline = firstSentAt + first.leaseRemainingMs;
    let timer: NodeJS.Timeout | null = null;
    const arm = (): void => {
      if (timer !== null) clearTimeout(timer);
      timer = setTimeout(() => stop('the lease ran out before it was renewed'), Math.max(0, deadline - performance.now()));
    };
    arm();
    const onOuterAbort = (): void => stop('stopped by the caller');
    options.signal?.addEventListener('abort', onOuterAbort, { once: true });
    const still = (l: Leadership): boolean => l.leader && l.term === term && l.leaseRemainingMs > 0;

    // Renew the lease while leading, and watch for a change (long poll) to stop at once.
    const renew = (async (): Promise<void> => {
      while (!controller.signal.aborted) {
        await sleep(renewMs, undefined, { signal: controller.signal }).catch(() => undefined);
        if (controller.signal.aborted) return;
        const sentAt = performance.now();
        try {
          const now = await this.leadership({ signal: controller.signal });
          if (!still(now)) return stop(now.leader ? (now.term === term ? 'the lease is gone (a hand-off started)' : `term moved to ${now.term}`) : 'no longer the leader');
          deadline = sentAt + now.leaseRemainingMs;
          arm();
        } catch {
          // Unreachable raftlet: the timer ends the lease if this goes on.
        }
      }
    })();
    const watchChange = (async (): Promise<void> => {
      const seen: Leadership = { leader: true, term, leaseRemainingMs: 1 };
      while (!controller.signal.aborted) {
        try {
          const now = await this.leadership({ waitMs: LONG_POLL_MS, seen, signal: controller.signal });
          if (!still(now)) return stop(now.leader ? (now.term === term ? 'the lease is gone (a hand-off started)' : `term moved to ${now.term}`) : 'no longer the leader');
        } catch {
          if (controller.signal.aborted) return;
          await sleep(renewMs, undefined, { signal: controller.signal }).catch(() => undefined);
        }
      }
    })();

    const context: LeaderContext = { term };
    options.onStartedLeading?.(context);
    let failure: unknown = null;
    try {
      await this.fence.run({ term, signal: controller.signal }, () => fn(controller.signal, context));
    } catch (err) {
      // Work cut short by the abort is the expected way to stop; anything else is fn's own error.
      if (!controller.signal.aborted) failure = err;
    } finally {
      stop(reason);
      if (timer !== null) clearTimeout(timer);
      options.signal?.removeEventListener('abort', onOuterAbort);
      await Promise.all([renew, watchChange]);
      options.onStoppedLeading?.(context, reason);
    }
    if (failure !== null) throw failure;
    // fn returned while still leading: wait for this leadership to end before looking again.
    if (reason === 'fn returned') {
      const seen: Leadership = { leader: true, term, leaseRemainingMs: 1 };
      while (!options.signal?.aborted) {
        try {
          const now = await this.leadership({ waitMs: LONG_POLL_MS, seen, signal: options.signal });
          if (!(now.leader && now.term === term)) return;
        } catch {
          if (options.signal?.aborted) return;
          await sleep(renewMs * 5, undefined, { signal: options.signal }).catch(() => undefined);
        }
      }
    }
  }
}

// ---- server-sent events ------------------------------------------------------------------------------

interface SseMessage {
  readonly id: string | null;
  readonly event: string;
  readonly data: string;
}

/** Parses a text/event-stream body (the WHATWG rules that raftlet's events use). */
export async function* readEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<SseMessage, void, undefined> {
  const decoder = new TextDecoder();
  let buffer = '';
  let id: string | null = null;
  let event = '';
  let data: string[] = [];
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffer.search(/\r\n|\n|\r/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1));
      if (line === '') {
        if (data.length > 0 || event !== '') yield { id, event: event === '' ? 'message' : event, data: data.join('\n') };
        event = '';
        data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') data.push(value);
      else if (field === 'event') event = value;
      else if (field === 'id' && !value.includes('\0')) id = value;
    }
  }
}
