// The peer HTTP server (SPEC section 5) on node:http (or node:https with peer TLS): no framework and
// no middleware on the Raft path. It knows routes, bodies and errors, not Raft: each request is
// validated completely, then handed to a callback of the runtime. Order per request: cluster token
// (401), protocol version (426), route (404), content type (400), declared size (413, before any
// of the body is read), body budget (503), body (400 / 413 / 408), misaddressing (421), and only
// then a handler, so a refused request changes no state.
//
// Routes under /raft/v1/: `stream` is the long-lived request per peer pair that carries Raft
// messages and forwarded calls (stream-server.ts); `messages` carries one batch per request (the
// client sends snapshots this way, so a large one never holds heartbeats up behind it); `propose`,
// `read-index`, `transfer` and `status` take one call each (a caller without a stream, and curl).
import { once } from 'node:events';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { http, https } from '../util/http.ts';
import type { TLSSocket } from 'node:tls';
import type { NodeId } from '../raft/types.ts';
import { makeTokenCheck, tokenSource, type TokenOption } from './auth.ts';
import { checkCluster, CLUSTER_HEADER, type ClusterIdentity } from './cluster-id.ts';
import type { PeerRoute } from './snapshot-route.ts';
import { encodeError } from './forwarding.ts';
import { BodyBudget, ConnectionGuard, RateLimiter, type GuardRefusal } from './guard.ts';
import {
  JSON_CONTENT_TYPE,
  MAX_TIMEOUT_MS,
  MESSAGES_CONTENT_TYPE,
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
  ROUTES,
  SENDER_HEADER,
  STREAM_CONTENT_TYPE,
  statusForCode,
  TARGET_HEADER,
} from './protocol.ts';
import type { ErrorCode } from './protocol.ts';
import { errorText, failureAnswer, prepareCall, receivedMessages, type CallAnswer, type PeerHandlers } from './server-calls.ts';
import type { CallKind } from './stream-frames.ts';
import { checkSender, foreignMessage, type SenderPolicy } from './sender.ts';
import { serveStream } from './stream-server.ts';
import type { TlsSource } from './tls.ts';
import { steadyNow } from '../util/steady-clock.ts';

export type { PeerHandlers } from './server-calls.ts';

export interface PeerServerOptions {
  /** The cluster token or token set (all accepted); null = insecure mode, every request is accepted. */
  readonly token: TokenOption;
  readonly handlers: PeerHandlers;
  /** This node's cluster id: requests from another cluster are refused (421) before any handler. */
  readonly identity?: ClusterIdentity;
  /** Extra routes (snapshot-route.ts), served after authentication and the cluster check. */
  readonly extraRoutes?: readonly PeerRoute[];
  /** If set, Raft messages addressed to another id are refused with 421 (a stale peer address). */
  readonly nodeId?: NodeId;
  /** Body limit of the Raft messages route and of a stream's message frame; it carries whole
   * snapshots. Default 64 MiB. */
  readonly messagesLimitBytes?: number;
  /** Body limit of the other routes and of a stream's call frame. Default 2 MiB. */
  readonly requestLimitBytes?: number;
  /** The longest timeout a peer may ask for. Default 60 s. */
  readonly maxTimeoutMs?: number;
  /** Called for refused requests and connections (401, 426, 400, 413, 421, 404, 408, 503, and
   * connection limits), at most refusalLogBurst times per 10 s; `suppressed` counts the rest. */
  readonly onRefused?: (refusal: PeerRefusal) => void;
  readonly refusalLogBurst?: number;
  /** Peer mutual TLS: serve https, request and verify client certificates against the CA. */
  readonly tls?: TlsSource | null;
  /** With tls: require a client certificate from the CA (default true; false = server TLS only,
   * for RAFTLET_PEER_AUTH=token). */
  readonly clientCertificates?: boolean;
  /** From accepting a connection (or the end of the previous response) to complete request
   * headers, TLS handshake included. Default 5000 ms. */
  readonly headersTimeoutMs?: number;
  /** A one-shot request's body must arrive within this. Default 60 000 ms. */
  readonly bodyTimeoutMs?: number;
  /** A connection that sends nothing for this long is closed (streams ping well within it).
   * Default 30 000 ms. */
  readonly idleTimeoutMs?: number;
  /** Connections at once, overall and from one remote address. Defaults 1024 and 256. */
  readonly maxConnections?: number;
  readonly maxConnectionsPerAddress?: number;
  /** New connections an address without an authenticated connection may start at once, and then
   * per second; more wait (paused) for their turn or their header deadline. Defaults 8 and 4: a
   * member needs a stream and the odd request before its address is trusted, and each admitted
   * junk connection costs the event loop a TLS handshake or an HTTP parse (one abused TLS peer
   * server, A/B runs: 32 and 16 cost it 154-213 ms/s of CPU, 8 and 4 cost 97-124). */
  readonly admissionBurst?: number;
  readonly admissionPerSecond?: number;
  /** Bytes of one-shot request bodies being read at once. Default 2 x messagesLimitBytes. */
  readonly maxBodyBytesInFlight?: number;
  /** The peer URL of each member this node knows. Needed when tls.verifyName is on (with client
   * certificates): a sender's certificate must then name its member's URL host (sender.ts). */
  readonly memberUrl?: (id: NodeId) => string | undefined;
}

export type RefusalCode = ErrorCode | GuardRefusal | 'tls_handshake' | 'busy';

export interface PeerRefusal {
  /** HTTP status; 0 for a connection refused or closed without an HTTP answer. */
  readonly status: number;
  readonly code: RefusalCode;
  readonly message: string;
  readonly method: string;
  readonly path: string;
  readonly remoteAddress: string | undefined;
  /** Refusals not reported since the previous report (rate limiting). */
  readonly suppressed: number;
}

export const DEFAULT_MESSAGES_LIMIT_BYTES = 64 * 1024 * 1024;
export const DEFAULT_REQUEST_LIMIT_BYTES = 2 * 1024 * 1024;
export const DEFAULT_MAX_TIMEOUT_MS = MAX_TIMEOUT_MS;
const DEFAULT_ADMISSION_BURST = 8;
const DEFAULT_ADMISSION_PER_SECOND = 4;
const REFUSAL_LOG_INTERVAL_MS = 10_000;
// A refused request's unread body (SPEC: 413 before reading it): the answer goes out, our side is
// shut and what the client still sends is discarded within these bounds, then the socket closes.
// A peer that passed the token check may send up to its declared length (at most twice the route's
// limit) within a few seconds; anyone else gets 64 KiB and 1 s, so junk costs little.
const REFUSED_DISCARD_LIMIT_MULTIPLE = 2;
const REFUSED_LINGER_MS = 5000;
const UNTRUSTED_DISCARD_BYTES = 64 * 1024;
const UNTRUSTED_LINGER_MS = 1000;

interface Route {
  readonly method: 'GET' | 'POST';
  readonly type: string | null;
  readonly limit: number;
  readonly kind: 'messages' | 'stream' | CallKind;
}

function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0].trim().toLowerCase();
}

export interface PeerRequestListener {
  (req: IncomingMessage, res: ServerResponse): void;
  readonly guard: ConnectionGuard;
  readonly budget: BodyBudget;
  /** Reports a connection-level refusal (rate-limited like the others). */
  readonly refuseConnection: (code: RefusalCode, message: string, remoteAddress: string | undefined) => void;
}

/** The request listener of the peer port, with its limits. */
export function createPeerListener(options: PeerServerOptions): PeerRequestListener {
  const handlers = options.handlers;
  const maxTimeoutMs = options.maxTimeoutMs ?? DEFAULT_MAX_TIMEOUT_MS;
  const messagesLimitBytes = options.messagesLimitBytes ?? DEFAULT_MESSAGES_LIMIT_BYTES;
  const requestLimitBytes = options.requestLimitBytes ?? DEFAULT_REQUEST_LIMIT_BYTES;
  const bodyTimeoutMs = options.bodyTimeoutMs ?? 60_000;
  const tokens = tokenSource(options.token);
  const checkToken = makeTokenCheck(tokens);
  const limiter = new RateLimiter(options.refusalLogBurst ?? 10, REFUSAL_LOG_INTERVAL_MS);
  const budget = new BodyBudget(options.maxBodyBytesInFlight ?? 2 * messagesLimitBytes);
  const senderPolicy = namePolicy(options);

  const report = (status: number, code: RefusalCode, message: string, method: string, path: string, remoteAddress: string | undefined): void => {
    if (options.onRefused === undefined) return;
    const suppressed = limiter.admit(steadyNow());
    if (suppressed === null) return;
    options.onRefused({ status, code, message, method, path, remoteAddress, suppressed });
  };
  const guard = new ConnectionGuard(
    {
      maxConnections: options.maxConnections ?? 1024,
      maxConnectionsPerAddress: options.maxConnectionsPerAddress ?? 256,
      headersTimeoutMs: options.headersTimeoutMs ?? 5000,
      admissionBurst: options.admissionBurst ?? DEFAULT_ADMISSION_BURST,
      admissionPerSecond: options.admissionPerSecond ?? DEFAULT_ADMISSION_PER_SECOND,
    },
    (reason, remote) => report(0, reason, connectionRefusalText(reason), '', '', remote),
  );

  const routes = new Map<string, Route>([
    [ROUTES.stream, { method: 'POST', type: STREAM_CONTENT_TYPE, limit: 0, kind: 'stream' }],
    [ROUTES.messages, { method: 'POST', type: MESSAGES_CONTENT_TYPE, limit: messagesLimitBytes, kind: 'messages' }],
    [ROUTES.propose, { method: 'POST', type: JSON_CONTENT_TYPE, limit: requestLimitBytes, kind: 'propose' }],
    [ROUTES.readIndex, { method: 'POST', type: JSON_CONTENT_TYPE, limit: requestLimitBytes, kind: 'readIndex' }],
    [ROUTES.transfer, { method: 'POST', type: JSON_CONTENT_TYPE, limit: requestLimitBytes, kind: 'transfer' }],
    [ROUTES.status, { method: 'GET', type: null, limit: 0, kind: 'status' }],
  ]);

  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    const socket = req.socket;
    guard.gotHeaders(socket);
    res.on('finish', () => guard.awaitHeaders(socket));
    res.setHeader(PROTOCOL_HEADER, String(PROTOCOL_VERSION));
    const rawUrl = req.url ?? '/';
    const query = rawUrl.indexOf('?');
    const path = query === -1 ? rawUrl : rawUrl.slice(0, query);
    const method = req.method ?? 'GET';

    // Bytes of the body a refusal may still discard: set once the token check passed and the route is known.
    let discardBytes = UNTRUSTED_DISCARD_BYTES;
    let lingerMs = UNTRUSTED_LINGER_MS;

    /** Answers without reading the body, and closes the connection once the answer is out. */
    const refuse = (code: ErrorCode, message: string, extra: Record<string, string> = {}): void => {
      const status = statusForCode(code);
      report(status, code, message, method, path, socket.remoteAddress);
      if (!req.complete) {
        res.setHeader('connection', 'close');
        closeAfterAnswer(req, discardBytes, lingerMs);
      }
      sendJson(res, status, encodeError(code, message), extra);
    };

    const outcome = checkToken(req.headers.authorization);
    if (!outcome.ok) {
      refuse('unauthorized', outcome.reason, { 'www-authenticate': 'Bearer realm="raftlet peers"' });
      return;
    }
    guard.trust(socket);

    const pathVersion = /^\/raft\/v(\d+)(?:\/|$)/.exec(path);
    if (pathVersion !== null) {
      const version = Number(pathVersion[1]);
      if (version !== PROTOCOL_VERSION) {
        refuse('protocol_mismatch', `peer speaks raftlet protocol ${version}, this node speaks ${PROTOCOL_VERSION}`);
        return;
      }
      const header = req.headers[PROTOCOL_HEADER];
      if (header === undefined) {
        refuse('protocol_mismatch', `request carries no Raftlet-Protocol header; this node speaks raftlet protocol ${PROTOCOL_VERSION}`);
        return;
      }
      if (header !== String(PROTOCOL_VERSION)) {
        refuse('protocol_mismatch', `peer speaks raftlet protocol ${String(header)}, this node speaks ${PROTOCOL_VERSION}`);
        return;
      }
    }
    const extra = options.extraRoutes?.find((r) => r.path === path && r.method === method);
    const cluster = checkCluster(options.identity, req.headers[CLUSTER_HEADER], path === ROUTES.stream || path === ROUTES.messages);
    if (!cluster.ok) {
      refuse(cluster.code, cluster.message);
      return;
    }
    const route = routes.get(path);
    // Raft messages and forwarded calls act for a member; status and snapshot reads (curl, a backup
    // job) need no member identity, but a sender they name is checked all the same.
    const actsForMember = route !== undefined && route.kind !== 'status' && extra === undefined;
    const named = checkSender(req.headers[SENDER_HEADER], socket, actsForMember, senderPolicy);
    if (!named.ok) {
      refuse(named.code, named.message);
      return;
    }
    if (extra !== undefined) {
      extra.handle(req, res);
      return;
    }
    if (route === undefined || route.method !== method) {
      refuse('no_route', `no peer route ${method} ${path}; routes live under /raft/v${PROTOCOL_VERSION}/`);
      return;
    }
    if (route.type !== null && mediaType(req.headers['content-type']) !== route.type) {
      refuse('bad_request', `expected Content-Type ${route.type}, got ${req.headers['content-type'] ?? 'none'}`);
      return;
    }
    if (route.kind === 'stream') {
      const target = req.headers[TARGET_HEADER];
      if (options.nodeId !== undefined && target !== undefined && target !== options.nodeId) {
        refuse('misdirected', `a stream for ${JSON.stringify(target)} reached node ${JSON.stringify(options.nodeId)}`);
        return;
      }
      guard.trust(socket, true);
      const authorization = req.headers.authorization;
      let seenTokens = tokens?.current() ?? null;
      serveStream(req, res, {
        // A token removed from this member's set (rotation done) ends the streams opened with it.
        stillAuthorized: () => {
          if (tokens === null || tokens.current() === seenTokens) return true;
          seenTokens = tokens.current();
          return checkToken(authorization).ok;
        },
        handlers,
        nodeId: options.nodeId,
        sender: named.sender,
        messagesLimitBytes,
        requestLimitBytes,
        maxTimeoutMs,
        refuse: (code, message) => report(200, code, `stream: ${message}`, method, path, socket.remoteAddress),
      });
      return;
    }
    const declared = req.headers['content-length'] === undefined ? null : Number(req.headers['content-length']);
    discardBytes = Math.min(declared ?? Number.POSITIVE_INFINITY, REFUSED_DISCARD_LIMIT_MULTIPLE * route.limit);
    lingerMs = REFUSED_LINGER_MS;
    if (declared !== null && declared > route.limit) {
      refuse('payload_too_large', `request body too large for ${path}: ${declared} bytes declared, the limit is ${route.limit}`);
      return;
    }
    readBody(req, route.limit, declared, budget, bodyTimeoutMs).then(
      (body) => {
        if (typeof body === 'string') {
          const [code, message] = body === 'too_large'
            ? (['payload_too_large', `request body too large for ${path}: more than ${route.limit} bytes`] as const)
            : body === 'busy'
              ? (['unavailable', 'too many request bodies in flight on this node; retry shortly'] as const)
              : (['request_timeout', `the request body did not arrive within ${bodyTimeoutMs} ms`] as const);
          refuse(code, message, code === 'unavailable' ? { 'retry-after': '1' } : {});
          return;
        }
        dispatch(route, body, res, named.sender, (code, message) => refuse(code, message));
      },
      () => {
        // The connection failed while the body was read: nobody to answer.
      },
    );
  };

  const dispatch = (route: Route, body: Buffer, res: ServerResponse, sender: NodeId | null, refuse: (code: ErrorCode, message: string) => void): void => {
    if (route.kind === 'messages') {
      const received = receivedMessages(body, options.nodeId);
      if (!received.ok) {
        refuse(received.code, received.message);
        return;
      }
      const messages = received.messages;
      const foreign = foreignMessage(messages, sender);
      if (foreign !== undefined) {
        refuse('forbidden', `a message from ${JSON.stringify(foreign.from)} arrived in a request sent by ${JSON.stringify(sender)}`);
        return;
      }
      Promise.resolve()
        .then(() => handlers.onMessages(messages))
        .then(
          () => {
            res.statusCode = 204;
            res.end();
          },
          (error: unknown) => sendAnswer(res, failureAnswer(error)),
        );
      return;
    }
    if (route.kind === 'stream') return;
    let json: unknown;
    if (route.kind !== 'status') {
      try {
        json = JSON.parse(body.toString('utf8')) as unknown;
      } catch (error) {
        refuse('bad_request', `unreadable request body: ${errorText(error)}`);
        return;
      }
    }
    const prepared = prepareCall(route.kind, json, handlers, maxTimeoutMs);
    if ('malformed' in prepared) {
      refuse('bad_request', prepared.malformed);
      return;
    }
    prepared.run().then((answer) => sendAnswer(res, answer));
  };

  return Object.assign(listener, {
    guard,
    budget,
    refuseConnection: (code: RefusalCode, message: string, remoteAddress: string | undefined) => report(0, code, message, '', '', remoteAddress),
  });
}

/** The sender name check, when it applies: peer TLS with client certificates and verifyName. */
function namePolicy(options: PeerServerOptions): SenderPolicy | null {
  const tls = options.tls ?? null;
  if (tls === null || !tls.verifyName || options.clientCertificates === false) return null;
  if (options.memberUrl === undefined) throw new Error('the peer server checks senders\' certificates (verifyName) and needs memberUrl');
  return { memberUrl: options.memberUrl };
}

function connectionRefusalText(reason: GuardRefusal): string {
  switch (reason) {
    case 'too_many_connections':
      return 'connection refused: the peer port holds its maximum of connections';
    case 'too_many_connections_from_address':
      return 'connection refused: too many connections from this address';
    case 'headers_timeout':
      return 'connection closed: request headers did not arrive in time';
    case 'evicted':
      return 'connection closed to make room: it had not sent an authenticated request';
    default: {
      const unreachable: never = reason;
      return String(unreachable);
    }
  }
}

/** Reads a one-shot request's body within its limit, the body budget and the time bound. */
function readBody(req: IncomingMessage, limit: number, declared: number | null, budget: BodyBudget, timeoutMs: number): Promise<Buffer | 'too_large' | 'busy' | 'timeout'> {
  return new Promise((resolve, reject) => {
    let reserved = 0;
    if (declared !== null) {
      if (!budget.reserve(declared)) {
        resolve('busy');
        return;
      }
      reserved = declared;
    }
    const chunks: Buffer[] = [];
    let received = 0;
    let settled = false;
    const done = (outcome: Buffer | 'too_large' | 'busy' | 'timeout' | Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      budget.release(reserved);
      req.removeListener('data', onData);
      if (outcome instanceof Error) reject(outcome);
      else resolve(outcome);
    };
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    const onData = (chunk: Buffer): void => {
      received += chunk.byteLength;
      if (received > limit) {
        done('too_large');
        return;
      }
      if (declared === null) {
        if (!budget.reserve(chunk.byteLength)) {
          done('busy');
          return;
        }
        reserved += chunk.byteLength;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => done(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, received)));
    req.once('error', (error) => done(error));
    req.once('close', () => done(new Error('the connection closed')));
  });
}

/**
 * After a refusal with the body unread: close without a reset. Destroying a socket with unread
 * bytes in its receive buffer makes the kernel send RST, and a client still writing its body may
 * then see its write fail (EPIPE / ECONNRESET) before it reads the answer already on its way. So
 * the answer (Connection: close) is followed by a half-close only: FIN, over TLS a close_notify
 * first; what the client still sends is read and discarded until it closes its side, up to
 * `discardBytes` or `lingerMs`, and only then is the socket destroyed.
 *
 * Node's HTTP server ends a connection after its last response with socket.destroySoon() (end,
 * then destroy once the FIN is out); this socket's destroySoon is replaced by the end alone.
 */
function closeAfterAnswer(req: IncomingMessage, discardBytes: number, lingerMs: number): void {
  const socket = req.socket;
  socket.destroySoon = () => {
    if (socket.writable) socket.end();
  };
  const timer = setTimeout(() => socket.destroy(), lingerMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  let discarded = 0;
  req.on('data', (chunk: Buffer) => {
    discarded += chunk.byteLength;
    if (discarded > discardBytes) socket.destroy();
  });
}

function sendJson(res: ServerResponse, status: number, body: string, extra: Record<string, string> = {}): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': `${JSON_CONTENT_TYPE}; charset=utf-8`, 'content-length': Buffer.byteLength(body), ...extra });
  res.end(body);
}

function sendAnswer(res: ServerResponse, answer: CallAnswer): void {
  sendJson(res, answer.status, answer.body);
}


// ---- a listening server, for the runtime and tests ------------------------------------------------------

export interface RunningPeerServer {
  /** The HTTP(S) server; connections reach it through the guard, it does not listen itself. */
  readonly server: Server;
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** http(s)://host:port of the bound address. */
  readonly url: string;
  /** Connections open now (for tests and metrics). */
  connections(): number;
  /** Of those, connections waiting for their turn (admission pacing). */
  waitingConnections(): number;
  /** Stops accepting, drops every open connection (peers' streams included), waits. */
  close(): Promise<void>;
}

export async function startPeerServer(host: string, port: number, options: PeerServerOptions): Promise<RunningPeerServer> {
  const listener = createPeerListener(options);
  const tls = options.tls ?? null;
  const headersTimeoutMs = options.headersTimeoutMs ?? 5000;
  const serverOptions = { maxHeaderSize: 16 * 1024, requestTimeout: 0, headersTimeout: 0, keepAliveTimeout: 10_000 };
  let server: Server;
  if (tls === null) {
    server = http.createServer(serverOptions, listener);
  } else {
    const material = tls.current();
    const secure = https.createServer(
      {
        ...serverOptions,
        cert: material.cert,
        key: material.key,
        ca: material.ca,
        requestCert: options.clientCertificates ?? true,
        rejectUnauthorized: options.clientCertificates ?? true,
        minVersion: 'TLSv1.2',
        handshakeTimeout: headersTimeoutMs,
      },
      listener,
    );
    tls.onChange(() => {
      const next = tls.current();
      secure.setSecureContext({ cert: next.cert, key: next.key, ca: next.ca });
    });
    secure.on('tlsClientError', (error: Error, socket: TLSSocket) => {
      listener.refuseConnection('tls_handshake', `TLS handshake refused: ${errorText(error)}`, socket.remoteAddress);
    });
    server = secure;
  }
  // Longer than the clients' keep-alive so a client never reuses a socket the server is closing.
  server.keepAliveTimeout = 10_000;
  server.timeout = options.idleTimeoutMs ?? 30_000;
  server.maxHeadersCount = 64;
  // The guard sees each TCP connection first and hands only those it admits to HTTP (or TLS), at
  // once or when their turn comes (pacing): a refused or waiting connection costs no parser and no
  // handshake, and nothing is read from it (pauseOnConnect). Both servers take injected
  // connections: their 'connection' event is documented for that. allowHalfOpen and noDelay are
  // what node:http's own listening socket would use.
  const front: NetServer = createNetServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (socket) => {
    listener.guard.admit(socket, (admitted) => {
      server.emit('connection', admitted);
      admitted.resume();
    });
  });
  front.listen(port, host);
  await once(front, 'listening');
  const address = front.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    server,
    port: address.port,
    url: `${tls === null ? 'http' : 'https'}://${shownHost}:${address.port}`,
    connections: () => listener.guard.connections,
    waitingConnections: () => listener.guard.waiting,
    close: async () => {
      const closed = new Promise<void>((resolve, reject) => front.close((error) => (error === undefined ? resolve() : reject(error))));
      server.closeAllConnections();
      // closeAllConnections knows HTTP connections only: streams and half-open junk go too.
      listener.guard.destroyAll();
      await closed;
      listener.guard.close();
    },
  };
}
