// The client HTTP API of SPEC §4. It only translates: HTTP in, ClientOps calls, HTTP out.
// Replication, forwarding and read barriers live behind ClientOps in the node runtime. Writes
// (PUT and DELETE of one key) are answered by plain node:http code, since Express's routing and
// response helpers cost a measurable share of a write's CPU; every other route is an Express app.
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { ClientOps } from './ops.ts';
import type { KvCommand, KvItem, KvResult } from '../kv/types.ts';
import { readBody, ClientGoneError } from './body.ts';
import { ApiError, badRequest, sendError, sendJson, toApiError } from './errors.ts';
import {
  booleanParam,
  consistencyParam,
  integerParam,
  KV_PATH_PREFIX,
  oneOfParam,
  parseConditions,
  parseIfTerm,
  parseKeyPath,
  parseLastEventId,
  prefixParam,
  stringParam,
  type Query,
} from './params.ts';
import { DEFAULT_WATCH_LIMITS, ResyncNeeded, TooManyWatchers, Watches, type WatchHooks, type WatchLimits } from './watch.ts';
import { steadyNow } from '../util/steady-clock.ts';

/** Keys a list answers when the client does not say. */
export const DEFAULT_LIST_LIMIT = 100;
/** Most keys one list answers: values may be up to RAFTLET_MAX_VALUE_BYTES each. */
export const MAX_LIST_LIMIT = 1000;
/** Longest leader long poll; a longer ?wait is shortened to this (as Consul's blocking queries do). */
export const MAX_LEADER_WAIT_MS = 300_000;
/** A blocking query (?index=N) without ?wait waits this long, like Consul's default. */
export const DEFAULT_WATCH_WAIT_MS = 60_000;
/** Largest body POST /v1/leader/transfer reads. */
export const MAX_JSON_BODY_BYTES = 64 * 1024;

/** The subset of a pino logger the API uses. */
export interface ApiLogger {
  error(details: object, message: string): void;
  warn(details: object, message: string): void;
}

export interface ApiOptions {
  /** RAFTLET_MAX_VALUE_BYTES: a larger PUT body is refused with 413. */
  readonly maxValueBytes: number;
  /** RAFTLET_REQUEST_TIMEOUT_MS: each request's deadline is now() + this. */
  readonly requestTimeoutMs: number;
  readonly logger?: ApiLogger;
  /** The clock deadlines are expressed in; must be the one ClientOps compares them with. steadyNow by default. */
  readonly now?: () => number;
  /** Bounds of watches and blocking queries; DEFAULT_WATCH_LIMITS by default. */
  readonly watchLimits?: WatchLimits;
  readonly watchHooks?: WatchHooks;
  /** Aborted when the node stops: open watch streams and blocking queries end at once. */
  readonly shutdown?: AbortSignal;
  /** Routes the host adds in front of the API's own (e.g. GET /v1/snapshot). */
  readonly extraRoutes?: (app: express.Express) => void;
}

/** The API as a node:http request listener. */
export type ApiListener = (req: IncomingMessage, res: ServerResponse) => void;

// A path that Express (parseurl) would read as it stands, up to the query: anything else goes the
// Express way, so both paths see the same key.
const PLAIN_PATH = /^[^\t\n\f\r #\u00a0\ufeff]*$/;

const KV_METHODS = 'GET, HEAD, PUT, DELETE';
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function createApiApp(ops: ClientOps, opts: ApiOptions): ApiListener {
  if (!Number.isSafeInteger(opts.maxValueBytes) || opts.maxValueBytes < 0) {
    throw new RangeError(`maxValueBytes must be a non-negative integer, got ${opts.maxValueBytes}`);
  }
  if (!Number.isFinite(opts.requestTimeoutMs) || opts.requestTimeoutMs <= 0) {
    throw new RangeError(`requestTimeoutMs must be a positive number, got ${opts.requestTimeoutMs}`);
  }
  const now = opts.now ?? steadyNow;
  const deadline = (): number => now() + opts.requestTimeoutMs;
  const watches = new Watches(() => ops.changes(), opts.watchLimits ?? DEFAULT_WATCH_LIMITS, opts.watchHooks);
  opts.shutdown?.addEventListener('abort', () => watches.closeAll(), { once: true });

  const app = express();
  app.disable('x-powered-by');
  // ETags here are modIndexes, set by hand; Express's body hashes would be wrong, and its automatic
  // 304 answers would apply them.
  app.set('etag', false);
  app.set('query parser', 'simple');
  opts.extraRoutes?.(app);

  app.get('/v1/status', (_req, res) => {
    const status = ops.status();
    res.json({
      id: status.id,
      role: status.role,
      term: status.term,
      leader: status.leader,
      commitIndex: status.commitIndex,
      appliedIndex: status.appliedIndex,
      lastLogIndex: status.lastLogIndex,
      members: status.members.map((member) => ({ id: member.id, url: member.url, voter: member.voter })),
    });
  });

  app.get('/v1/leader', async (req, res) => {
    const query = req.query as Query;
    const waitMs = integerParam(query, 'wait', 0, Number.MAX_SAFE_INTEGER);
    const seenTerm = integerParam(query, 'term', 0, Number.MAX_SAFE_INTEGER);
    const seenLeaderParam = stringParam(query, 'leader');
    let leader = ops.leader();
    if (waitMs !== undefined) {
      const status = ops.status();
      // The caller saw `term`; in one term there is at most one leader, so unless it names the
      // leader it saw (?leader=ID, empty = none), assume the one this node knows in that term.
      const seenLeader = seenLeaderParam !== undefined ? seenLeaderParam || null : status.leader;
      leader = await ops.waitLeaderChange(seenLeader, seenTerm ?? status.term, Math.min(waitMs, MAX_LEADER_WAIT_MS));
    }
    if (leader === null) throw new ApiError(503, 'no_leader', 'no leader is known right now; retry shortly');
    res.json({ id: leader.id, url: leader.url, term: leader.term });
  });

  // This node's own leadership, for the application beside it (SPEC §4): the term is the fencing
  // token for If-Term; leaseRemainingMs how long it surely stays the only leader. With ?wait, held
  // until the leader flag, the term or (while leading) the lease differs from what the caller saw.
  app.get('/v1/leadership', async (req, res) => {
    const query = req.query as Query;
    const waitMs = integerParam(query, 'wait', 0, Number.MAX_SAFE_INTEGER);
    const seenTerm = integerParam(query, 'term', 0, Number.MAX_SAFE_INTEGER);
    const seenLeader = booleanParam(query, 'leader');
    const seenLeased = booleanParam(query, 'leased');
    let leadership = ops.leadership();
    if (waitMs !== undefined) {
      const seen = {
        leader: seenLeader ?? leadership.leader,
        term: seenTerm ?? leadership.term,
        leased: seenLeased ?? leadership.leaseRemainingMs > 0,
      };
      leadership = await ops.waitLeadership(seen, Math.min(waitMs, MAX_LEADER_WAIT_MS));
    }
    res.set('Cache-Control', 'no-store').json({ leader: leadership.leader, term: leadership.term, leaseRemainingMs: leadership.leaseRemainingMs });
  });

  // Server-sent events of every change under a prefix, in this replica's apply order (SPEC §4).
  app.get('/v1/watch', async (req, res) => {
    const query = req.query as Query;
    const prefix = prefixParam(query);
    const base64 = oneOfParam(query, 'encoding', ['auto', 'base64'], 'auto') === 'base64';
    const fromQuery = integerParam(query, 'index', 0, Number.MAX_SAFE_INTEGER);
    // An EventSource reconnecting sends the last id it got: that is where to go on.
    const after = parseLastEventId(req.headers) ?? fromQuery;
    if (consistencyParam(query) === 'linearizable') await ops.readBarrier(deadline());
    if (res.destroyed) return;
    const ticket = watches.open(prefix, after ?? ops.changes().appliedIndex);
    watches.stream(ticket, res, { base64 });
  });

  app.post('/v1/leader/transfer', async (req, res) => {
    const to = parseTransferBody(await readBody(req, MAX_JSON_BODY_BYTES, 'a JSON body'));
    const result = await ops.transferLeadership(to, deadline());
    res.json({ leader: result.leader, term: result.term });
  });

  app.get('/v1/kv', async (req, res) => {
    const query = req.query as Query;
    const prefix = prefixParam(query);
    const limit = integerParam(query, 'limit', 1, MAX_LIST_LIMIT, DEFAULT_LIST_LIMIT);
    const encoding = oneOfParam(query, 'encoding', ['auto', 'base64'], 'auto');
    if (consistencyParam(query) === 'linearizable') await ops.readBarrier(deadline());
    await blockIfAsked(req, res, { prefix });
    const view = ops.kv();
    const items = view.list(prefix, limit);
    res.set('X-Raftlet-Index', String(view.appliedIndex)).json({ items: items.map((item) => listItem(item, encoding === 'base64')), index: view.appliedIndex });
  });

  /**
   * Blocking query (Consul style): with ?index=N, wait until the key or prefix changed after index
   * N, at most ?wait ms (default DEFAULT_WATCH_WAIT_MS), then let the caller answer with the local
   * state. Runs after the read barrier, so the answer is as fresh as a plain linearizable read.
   */
  async function blockIfAsked(req: Request, res: Response, match: { key: string } | { prefix: string }): Promise<void> {
    const query = req.query as Query;
    const index = integerParam(query, 'index', 0, Number.MAX_SAFE_INTEGER);
    const waitMs = integerParam(query, 'wait', 0, Number.MAX_SAFE_INTEGER);
    if (index === undefined) {
      if (waitMs !== undefined) throw badRequest('wait needs index: pass ?index=<X-Raftlet-Index of your last answer>&wait=MS to wait for a change');
      return;
    }
    const gone = new AbortController();
    const onClose = (): void => gone.abort();
    res.once('close', onClose);
    try {
      await watches.waitForChange(match, index, Math.min(waitMs ?? DEFAULT_WATCH_WAIT_MS, MAX_LEADER_WAIT_MS), gone.signal);
    } finally {
      res.off('close', onClose);
    }
  }

  app.use(async (req, res, next) => {
    if (!req.path.startsWith(KV_PATH_PREFIX)) {
      next();
      return;
    }
    const key = parseKeyPath(req.path.slice(KV_PATH_PREFIX.length));
    switch (req.method) {
      case 'GET':
      case 'HEAD':
        await getKey(req, res, key);
        return;
      case 'PUT':
      case 'DELETE':
        // Reached only by a path the write path below leaves to Express.
        await write(req, res, req.path);
        return;
      default:
        throw methodNotAllowed(req, KV_METHODS);
    }
  });

  async function getKey(req: Request, res: Response, key: string): Promise<void> {
    if (consistencyParam(req.query as Query) === 'linearizable') await ops.readBarrier(deadline());
    await blockIfAsked(req, res, { key });
    const view = ops.kv();
    const item = view.get(key);
    if (item === undefined) {
      throw new ApiError(404, 'not_found', `key ${JSON.stringify(key)} does not exist`, { 'X-Raftlet-Index': String(view.appliedIndex) });
    }
    res
      .status(200)
      .set({ ETag: etag(item.modIndex), 'Content-Type': 'application/octet-stream', 'X-Raftlet-Index': String(view.appliedIndex) })
      .end(Buffer.from(item.value.buffer, item.value.byteOffset, item.value.byteLength));
  }

  async function putKey(req: IncomingMessage, res: ServerResponse, key: string): Promise<void> {
    const conditions = parseConditions(req.headers, true);
    const ifTerm = parseIfTerm(req.headers);
    const requestDeadline = deadline();
    const value = await readBody(req, opts.maxValueBytes, 'a value');
    const cmd: KvCommand = {
      op: 'put',
      key,
      value: new Uint8Array(value.buffer, value.byteOffset, value.byteLength),
      ...conditions,
      ...(ifTerm === undefined ? {} : { ifTerm }),
    };
    const result = await proposeWrite(cmd, requestDeadline);
    sendJson(res, 200, { index: result.index, term: result.term }, { ETag: etag(result.index) });
  }

  async function deleteKey(req: IncomingMessage, res: ServerResponse, key: string): Promise<void> {
    const conditions = parseConditions(req.headers, false);
    const ifTerm = parseIfTerm(req.headers);
    const cmd: KvCommand = {
      op: 'del',
      key,
      ...(conditions.ifMatch === undefined ? {} : { ifMatch: conditions.ifMatch }),
      ...(ifTerm === undefined ? {} : { ifTerm }),
    };
    const result = await proposeWrite(cmd, deadline());
    sendJson(res, 200, { index: result.index, term: result.term, deleted: result.deleted === true });
  }

  /** PUT or DELETE of the key in rawPath (from /v1/kv/ on, still percent-encoded). */
  async function write(req: IncomingMessage, res: ServerResponse, rawPath: string): Promise<void> {
    const key = parseKeyPath(rawPath.slice(KV_PATH_PREFIX.length));
    await (req.method === 'PUT' ? putKey(req, res, key) : deleteKey(req, res, key));
  }

  async function proposeWrite(cmd: KvCommand, requestDeadline: number): Promise<Extract<KvResult, { ok: true }>> {
    let result: KvResult;
    try {
      result = await ops.propose(cmd, requestDeadline);
    } catch (error) {
      const known = toApiError(error);
      // SPEC §4: after a timeout the write may still commit, and the client must be told so.
      if (known?.code === 'timeout' && !/unknown/i.test(known.message)) {
        throw new ApiError(504, 'timeout', `${known.message}; the outcome of the write is unknown`);
      }
      throw error;
    }
    if (!result.ok) throw new ApiError(412, 'precondition_failed', result.message);
    return result;
  }

  // Known paths with a method they do not serve; then everything else.
  for (const [path, allowed] of [
    ['/v1/status', 'GET, HEAD'],
    ['/v1/leader', 'GET, HEAD'],
    ['/v1/leader/transfer', 'POST'],
    ['/v1/kv', 'GET, HEAD'],
    ['/v1/leadership', 'GET, HEAD'],
    ['/v1/watch', 'GET'],
  ] as const) {
    app.all(path, (req) => {
      throw methodNotAllowed(req, allowed);
    });
  }
  app.use((req) => {
    throw new ApiError(404, 'not_found', `no route ${req.method} ${req.path}; the API is under /v1/ (status, leader, leadership, kv, watch)`);
  });

  /** The answer to a request that failed: the error shape of SPEC §4, or a dropped connection. */
  function answerFailure(req: IncomingMessage, res: ServerResponse, path: string, error: unknown): void {
    if (res.headersSent || error instanceof ClientGoneError) {
      // Nothing sensible can be sent any more; drop the connection rather than leave it hanging.
      if (!res.writableEnded) res.destroy();
      return;
    }
    const known = toApiError(error) ?? fromWatchError(error) ?? fromExpressError(error);
    if (known !== null) {
      sendError(res, known);
      return;
    }
    opts.logger?.error({ err: error, method: req.method, path }, 'client API request failed unexpectedly');
    sendError(res, new ApiError(500, 'internal_error', 'internal error; the node logged the details'));
  }

  app.use((error: unknown, req: Request, res: Response, next: NextFunction) => {
    answerFailure(req, res, req.path, error);
    void next;
  });

  return (req, res) => {
    const url = req.url ?? '';
    if ((req.method === 'PUT' || req.method === 'DELETE') && url.startsWith(KV_PATH_PREFIX)) {
      const query = url.indexOf('?');
      const path = query < 0 ? url : url.slice(0, query);
      if (PLAIN_PATH.test(path)) {
        write(req, res, path).catch((error: unknown) => answerFailure(req, res, path, error));
        return;
      }
    }
    app(req, res);
  };
}

function methodNotAllowed(req: Request, allowed: string): ApiError {
  return new ApiError(405, 'method_not_allowed', `${req.method} is not allowed on ${req.path}; use ${allowed}`, { Allow: allowed });
}

function etag(modIndex: number): string {
  return `"${modIndex}"`;
}

/** A value as JSON: text when it is valid UTF-8, else base64 marked with "encoding". */
function listItem(item: KvItem, forceBase64: boolean): Record<string, unknown> {
  const bytes = Buffer.from(item.value.buffer, item.value.byteOffset, item.value.byteLength);
  if (!forceBase64) {
    try {
      return { key: item.key, value: utf8.decode(bytes), modIndex: item.modIndex };
    } catch {
      // not UTF-8: fall through to base64
    }
  }
  return { key: item.key, value: bytes.toString('base64'), encoding: 'base64', modIndex: item.modIndex };
}

/** Empty body = the most up-to-date follower; otherwise exactly {"to": "<id>"} (or "to": null). */
function parseTransferBody(body: Buffer): string | null {
  const text = body.toString('utf8').trim();
  if (text === '') return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw badRequest(`the body is not valid JSON (${(error as Error).message}); send {"to":"<member id>"} or nothing`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw badRequest('the body must be a JSON object such as {"to":"<member id>"}');
  }
  const unknownFields = Object.keys(parsed).filter((field) => field !== 'to');
  if (unknownFields.length > 0) throw badRequest(`unknown field ${JSON.stringify(unknownFields[0])}; the only field is "to"`);
  const to: unknown = (parsed as { to?: unknown }).to;
  if (to === undefined || to === null) return null;
  if (typeof to !== 'string' || to === '') throw badRequest('"to" must be a member id (a non-empty string) or null');
  return to;
}

function fromWatchError(error: unknown): ApiError | null {
  if (error instanceof ResyncNeeded) return new ApiError(410, error.code, error.message, { 'X-Raftlet-Index': String(error.index) });
  if (error instanceof TooManyWatchers) return new ApiError(429, 'too_many_watchers', error.message, { 'Retry-After': '1' });
  return null;
}

/** Errors Express or its helpers raise with an HTTP status (e.g. a malformed request). */
function fromExpressError(error: unknown): ApiError | null {
  if (typeof error !== 'object' || error === null) return null;
  const status = (error as { status?: unknown }).status;
  if (typeof status !== 'number' || status < 400 || status > 499) return null;
  const message = error instanceof Error ? error.message : 'bad request';
  return new ApiError(status, status === 413 ? 'payload_too_large' : 'bad_request', message);
}
