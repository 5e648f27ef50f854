// The peer HTTP server (SPEC section 5). It knows routes, bodies and errors, not Raft: each route
// validates its request completely, then hands it to a callback of the runtime. Order per request:
// cluster token (401), protocol version (426), body size and syntax (413 / 400), misaddressing
// (421), and only then a handler, so a refused request changes no state.
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { ErrorRequestHandler, Express, NextFunction, Request, RequestHandler, Response, Router } from 'express';
import { ClientError } from '../api/ops.ts';
import type { NodeStatus } from '../api/ops.ts';
import type { KvCommand, KvResult } from '../kv/types.ts';
import type { Message, NodeId } from '../raft/types.ts';
import { makeTokenCheck } from './auth.ts';
import { checkCluster, CLUSTER_HEADER, type ClusterIdentity } from './cluster-id.ts';
import type { PeerRoute } from './snapshot-route.ts';
import { decodeMessages } from './codec.ts';
import {
  decodeProposeRequest,
  decodeReadIndexRequest,
  decodeTransferRequest,
  encodeError,
  encodeKvResult,
  encodeReadIndexResult,
  encodeStatus,
  encodeTransferResult,
} from './forwarding.ts';
import { JSON_CONTENT_TYPE, MAX_TIMEOUT_MS, MESSAGES_CONTENT_TYPE, PROTOCOL_HEADER, PROTOCOL_VERSION, ROUTES, statusForCode } from './protocol.ts';
import type { ErrorCode } from './protocol.ts';
import { WireError } from './wire.ts';

/** What the runtime does with each validated request. deadlineMs is absolute, on this process's
 * Date.now() clock: the caller sends a duration, so clocks need not agree between nodes. */
export interface PeerHandlers {
  /** Raft messages, in the order the peer sent them. Called synchronously per request. */
  onMessages(messages: Message[]): void | Promise<void>;
  /** Replicate cmd (this node should be the leader); reject with ClientError('no_leader') if it
   * certainly was not proposed, ClientError('timeout') if its outcome is unknown. */
  onPropose(cmd: KvCommand, deadlineMs: number): Promise<KvResult>;
  /** ReadIndex (thesis §6.4.1): confirm leadership with a heartbeat round and return the commit
   * index the follower must have applied before it serves a linearizable read. */
  onReadIndex(deadlineMs: number): Promise<{ index: number; term: number }>;
  /** Leadership transfer; to null = the most up-to-date follower. */
  onTransfer(to: NodeId | null, deadlineMs: number): Promise<{ leader: NodeId; term: number }>;
  onStatus(): NodeStatus | Promise<NodeStatus>;
}

export interface PeerServerOptions {
  /** The cluster token; null = insecure mode, every request is accepted. */
  readonly token: string | null;
  readonly handlers: PeerHandlers;
  /** If set, Raft messages addressed to another id are refused with 421 (a stale peer address). */
  readonly nodeId?: NodeId;
  /** Body limit of the Raft messages route; it carries whole snapshots. Default 64 MiB. */
  readonly messagesLimitBytes?: number;
  /** Body limit of the other routes; a propose carries one value as base64. Default 2 MiB. */
  readonly requestLimitBytes?: number;
  /** The longest timeout a peer may ask for. Default 60 s. */
  readonly maxTimeoutMs?: number;
  /** Called for every refused request (401, 426, 400, 413, 421, 404), e.g. to log a peer with the
   * wrong token or version. */
  readonly onRefused?: (refusal: PeerRefusal) => void;
  /** This node's cluster id: requests from another cluster are refused (421) before any handler. */
  readonly identity?: ClusterIdentity;
  /** Extra routes (snapshot-route.ts) mounted after authentication and the cluster check. */
  readonly extraRoutes?: readonly PeerRoute[];
}

export interface PeerRefusal {
  readonly status: number;
  readonly code: ErrorCode;
  readonly message: string;
  readonly method: string;
  readonly path: string;
  readonly remoteAddress: string | undefined;
}

export const DEFAULT_MESSAGES_LIMIT_BYTES = 64 * 1024 * 1024;
export const DEFAULT_REQUEST_LIMIT_BYTES = 2 * 1024 * 1024;
export const DEFAULT_MAX_TIMEOUT_MS = MAX_TIMEOUT_MS;
// A handler that ignores its deadline is answered for anyway, this long after it.
const HANDLER_GRACE_MS = 1000;

/** An express app with only the peer routes: mount it on RAFTLET_PEER_LISTEN. */
export function createPeerApp(options: PeerServerOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(createPeerRouter(options));
  return app;
}

export function createPeerRouter(options: PeerServerOptions): Router {
  const handlers = options.handlers;
  const maxTimeoutMs = options.maxTimeoutMs ?? DEFAULT_MAX_TIMEOUT_MS;
  const checkToken = makeTokenCheck(options.token);
  const router = express.Router();

  const refuse = (req: Request, res: Response, code: ErrorCode, message: string): void => {
    const status = statusForCode(code);
    options.onRefused?.({ status, code, message, method: req.method, path: req.path, remoteAddress: req.socket.remoteAddress });
    sendError(res, code, message);
  };

  router.use((req, res, next) => {
    res.setHeader(PROTOCOL_HEADER, String(PROTOCOL_VERSION));
    const outcome = checkToken(req.headers.authorization);
    if (!outcome.ok) {
      res.setHeader('www-authenticate', 'Bearer realm="raftlet peers"');
      refuse(req, res, 'unauthorized', outcome.reason);
      return;
    }
    const cluster = checkCluster(options.identity, req.headers[CLUSTER_HEADER], req.path === ROUTES.messages);
    if (!cluster.ok) {
      refuse(req, res, cluster.code, cluster.message);
      return;
    }
    next();
  });

  router.use((req, res, next) => {
    const pathVersion = /^\/raft\/v(\d+)(?:\/|$)/.exec(req.path);
    if (pathVersion === null) {
      next();
      return;
    }
    const version = Number(pathVersion[1]);
    if (version !== PROTOCOL_VERSION) {
      refuse(req, res, 'protocol_mismatch', `peer speaks raftlet protocol ${version}, this node speaks ${PROTOCOL_VERSION}`);
      return;
    }
    const header = req.headers[PROTOCOL_HEADER];
    if (header === undefined) {
      refuse(req, res, 'protocol_mismatch', `request carries no Raftlet-Protocol header; this node speaks raftlet protocol ${PROTOCOL_VERSION}`);
      return;
    }
    if (header !== String(PROTOCOL_VERSION)) {
      refuse(req, res, 'protocol_mismatch', `peer speaks raftlet protocol ${String(header)}, this node speaks ${PROTOCOL_VERSION}`);
      return;
    }
    next();
  });

  const requireType = (type: string): RequestHandler => (req, res, next) => {
    if (!req.is(type)) {
      refuse(req, res, 'bad_request', `expected Content-Type ${type}, got ${req.headers['content-type'] ?? 'none'}`);
      return;
    }
    next();
  };
  const rawBody = express.raw({ type: () => true, limit: options.messagesLimitBytes ?? DEFAULT_MESSAGES_LIMIT_BYTES, inflate: false });
  const jsonBody = express.json({ type: () => true, limit: options.requestLimitBytes ?? DEFAULT_REQUEST_LIMIT_BYTES, inflate: false, strict: true });
  const emptyBody = express.raw({ type: () => true, limit: 0, inflate: false });

  router.post(ROUTES.messages, requireType(MESSAGES_CONTENT_TYPE), rawBody, async (req, res) => {
    let messages: Message[];
    try {
      messages = decodeMessages(bodyBytes(req.body));
    } catch (error) {
      refuse(req, res, 'bad_request', `malformed Raft messages: ${errorText(error)}`);
      return;
    }
    if (options.nodeId !== undefined) {
      const stray = messages.find((m) => m.to !== options.nodeId);
      if (stray !== undefined) {
        refuse(req, res, 'misdirected', `message for ${JSON.stringify(stray.to)} reached node ${JSON.stringify(options.nodeId)}`);
        return;
      }
    }
    try {
      await handlers.onMessages(messages);
    } catch (error) {
      sendFailure(res, error);
      return;
    }
    res.status(204).end();
  });

  router.post(ROUTES.propose, requireType(JSON_CONTENT_TYPE), jsonBody, async (req, res) => {
    const request = decodeOrRefuse(req, res, () => decodeProposeRequest(req.body, maxTimeoutMs));
    if (request === null) return;
    const deadlineMs = Date.now() + request.timeoutMs;
    await answer(res, deadlineMs, () => handlers.onPropose(request.command, deadlineMs), encodeKvResult);
  });

  router.post(ROUTES.readIndex, requireType(JSON_CONTENT_TYPE), jsonBody, async (req, res) => {
    const request = decodeOrRefuse(req, res, () => decodeReadIndexRequest(req.body, maxTimeoutMs));
    if (request === null) return;
    const deadlineMs = Date.now() + request.timeoutMs;
    await answer(res, deadlineMs, () => handlers.onReadIndex(deadlineMs), encodeReadIndexResult);
  });

  router.post(ROUTES.transfer, requireType(JSON_CONTENT_TYPE), jsonBody, async (req, res) => {
    const request = decodeOrRefuse(req, res, () => decodeTransferRequest(req.body, maxTimeoutMs));
    if (request === null) return;
    const deadlineMs = Date.now() + request.timeoutMs;
    await answer(res, deadlineMs, () => handlers.onTransfer(request.to, deadlineMs), encodeTransferResult);
  });

  router.get(ROUTES.status, emptyBody, async (_req, res) => {
    await answer(res, Date.now() + maxTimeoutMs, async () => handlers.onStatus(), encodeStatus);
  });

  for (const route of options.extraRoutes ?? []) router.get(route.path, (req, res) => route.handle(req, res));

  router.use((req, res) => {
    refuse(req, res, 'no_route', `no peer route ${req.method} ${req.path}; routes live under /raft/v${PROTOCOL_VERSION}/`);
  });

  const bodyErrors: ErrorRequestHandler = (error: unknown, req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) {
      next(error);
      return;
    }
    const status = httpStatusOf(error);
    if (status === 413) {
      refuse(req, res, 'payload_too_large', `request body too large for ${req.path}: ${errorText(error)}`);
    } else if (status !== undefined && status >= 400 && status < 500) {
      refuse(req, res, 'bad_request', `unreadable request body: ${errorText(error)}`);
    } else {
      sendError(res, 'internal', errorText(error));
    }
  };
  router.use(bodyErrors);

  function decodeOrRefuse<T>(req: Request, res: Response, decode: () => T): T | null {
    try {
      return decode();
    } catch (error) {
      refuse(req, res, 'bad_request', `malformed request: ${errorText(error)}`);
      return null;
    }
  }

  return router;
}

/** Runs a handler and answers with its result, its ClientError, or a timeout if it overruns. */
async function answer<T>(res: Response, deadlineMs: number, run: () => Promise<T>, encode: (value: T) => string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const overrun = new Promise<'overrun'>((resolve) => {
    timer = setTimeout(() => resolve('overrun'), Math.max(0, deadlineMs - Date.now()) + HANDLER_GRACE_MS);
  });
  const work = Promise.resolve().then(run);
  try {
    const outcome = await Promise.race([work.then((value) => ({ value })), overrun]);
    if (outcome === 'overrun') {
      // The reply is going out without the handler's result; its eventual outcome has nobody to
      // go to, so it is deliberately dropped here rather than left as an unhandled rejection.
      work.catch(() => undefined);
      sendError(res, 'timeout', 'the node did not finish the request by its deadline; its outcome is unknown');
      return;
    }
    let body: string;
    try {
      body = encode(outcome.value);
    } catch (error) {
      sendError(res, 'internal', `the node produced an invalid reply: ${errorText(error)}`);
      return;
    }
    res.status(200).set('content-type', `${JSON_CONTENT_TYPE}; charset=utf-8`).send(body);
  } catch (error) {
    sendFailure(res, error);
  } finally {
    clearTimeout(timer);
  }
}

function sendFailure(res: Response, error: unknown): void {
  if (error instanceof ClientError) sendError(res, error.code, error.message);
  else sendError(res, 'internal', errorText(error));
}

function sendError(res: Response, code: ErrorCode, message: string): void {
  if (res.headersSent) return;
  res.status(statusForCode(code)).set('content-type', `${JSON_CONTENT_TYPE}; charset=utf-8`).send(encodeError(code, message));
}

function bodyBytes(body: unknown): Uint8Array {
  if (body instanceof Uint8Array) return body;
  throw new WireError('frame', 'the request has no body');
}

function httpStatusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const status = (error as { status?: unknown; statusCode?: unknown }).status ?? (error as { statusCode?: unknown }).statusCode;
  return typeof status === 'number' ? status : undefined;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// ---- a listening server, for the runtime and tests ------------------------------------------------------

export interface RunningPeerServer {
  readonly server: Server;
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** http://host:port of the bound address. */
  readonly url: string;
  /** Stops accepting, drops every open connection (peers' keep-alive pools included), waits. */
  close(): Promise<void>;
}

export async function startPeerServer(host: string, port: number, options: PeerServerOptions): Promise<RunningPeerServer> {
  const app = createPeerApp(options);
  const server = app.listen(port, host);
  // Longer than the clients' keep-alive (undici: 4 s) so a client never reuses a socket the server
  // is closing, which would make a forwarded write's outcome unknown for no reason.
  server.keepAliveTimeout = 10_000;
  await once(server, 'listening');
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    server,
    port: address.port,
    url: `http://${shownHost}:${address.port}`,
    close: async () => {
      const closed = new Promise<void>((resolve, reject) => server.close((error) => (error === undefined ? resolve() : reject(error))));
      server.closeAllConnections();
      await closed;
    },
  };
}
