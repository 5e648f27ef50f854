// Opening HTTP requests to a peer: plain http, or https with this member's client certificate when
// peer TLS is on. The material is read per connection, so a rotated certificate is used by the next
// connection without a restart.
import type { Agent as HttpAgent, ClientRequest, IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { http, https } from '../util/http.ts';
import { isIP, type LookupFunction, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { NotSentError } from './replies.ts';
import type { PeerBase } from './peer-url.ts';
import { serverIdentityCheck, type TlsSource } from './tls.ts';

export interface DialOptions {
  /** Resolves peer host names (RAFTLET_DNS_SERVER); undefined = the system resolver. */
  readonly lookup: LookupFunction | undefined;
  /** Peer TLS; null = plain http (an https:// URL then trusts the system's CAs). */
  readonly tls: TlsSource | null;
}

export interface DialRequest {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly headers: OutgoingHttpHeaders;
  /** A keep-alive agent, or false for a connection of its own (a stream). */
  readonly agent: HttpAgent | false;
}

export function dial(base: PeerBase, options: DialOptions, request: DialRequest): ClientRequest {
  const common = {
    host: base.hostname,
    port: base.port,
    method: request.method,
    path: request.path,
    headers: request.headers,
    agent: request.agent,
    ...(options.lookup ? { lookup: options.lookup } : {}),
  };
  if (base.protocol === 'http:') return http.request(common);
  const tls = options.tls;
  if (tls === null) return https.request(common);
  const material = tls.current();
  return https.request({
    ...common,
    ca: material.ca,
    cert: material.cert,
    key: material.key,
    // SNI only for names (RFC 6066 forbids IP literals there).
    ...(isIP(base.hostname) === 0 ? { servername: base.hostname } : {}),
    checkServerIdentity: serverIdentityCheck(tls.verifyName),
    minVersion: 'TLSv1.2',
  });
}

/** A keep-alive agent for occasional requests (snapshots, one-off calls), of the URL's scheme. */
export function keepAliveAgent(base: PeerBase, maxSockets: number): HttpAgent {
  const options = { keepAlive: true, keepAliveMsecs: 1000, maxSockets, maxFreeSockets: maxSockets, timeout: 30_000 };
  return base.protocol === 'https:' ? new https.Agent(options) : new http.Agent(options);
}


export interface OnceRequest extends DialRequest {
  readonly body: Uint8Array | string | null;
  readonly timeoutMs: number;
  readonly maxResponseBytes: number;
  readonly signal?: AbortSignal;
}

export interface OnceResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
}

/** A timeout: name TimeoutError, as AbortSignal.timeout's. */
export class RequestTimeout extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TimeoutError';
  }
}

/** Resolves when the connection (and TLS session) to the peer is ready to carry the request; an
 * error before that is a NotSentError, so callers know the peer saw nothing. */
export function trackReady(req: ClientRequest, secure: boolean): () => boolean {
  let ready = false;
  req.once('socket', (socket: Socket) => {
    if (!socket.connecting && (!secure || (socket as TLSSocket).encrypted)) {
      ready = true;
      return;
    }
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      ready = true;
    });
  });
  return () => ready;
}

/** One request with a body, a bounded response and a time bound. */
export function requestOnce(base: PeerBase, options: DialOptions, request: OnceRequest): Promise<OnceResponse> {
  return new Promise((resolve, reject) => {
    let req: ClientRequest;
    try {
      req = dial(base, options, request);
    } catch (error) {
      reject(new NotSentError(`cannot open a request to ${base.origin}: ${error instanceof Error ? error.message : String(error)}`, 'EINVAL', error));
      return;
    }
    const ready = trackReady(req, base.protocol === 'https:');
    let settled = false;
    const fail = (error: unknown): void => {
      if (settled) return;
      settled = true;
      cleanup();
      if (!ready()) {
        const e = error as { code?: unknown; message?: unknown };
        reject(new NotSentError(String(e.message ?? error), typeof e.code === 'string' ? e.code : 'RAFTLET_CONNECT_FAILED', error));
        return;
      }
      reject(error);
    };
    const timer = setTimeout(() => req.destroy(new RequestTimeout(`no answer within ${request.timeoutMs} ms`)), request.timeoutMs);
    const onAbort = (): void => {
      req.destroy(new RequestTimeout('aborted: the transport is closing'));
    };
    request.signal?.addEventListener('abort', onAbort, { once: true });
    const cleanup = (): void => {
      clearTimeout(timer);
      request.signal?.removeEventListener('abort', onAbort);
    };
    req.once('error', fail);
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.byteLength;
        if (bytes > request.maxResponseBytes) {
          req.destroy(new Error(`the reply is larger than ${request.maxResponseBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.once('end', () => {
        if (settled) return;
        settled = true;
        cleanup();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') });
      });
      res.once('error', fail);
    });
    if (request.body !== null) req.setHeader('content-length', Buffer.byteLength(request.body));
    req.end(request.body ?? undefined);
  });
}
