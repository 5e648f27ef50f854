// How raftlet's Kubernetes calls reach the API server: kept-alive connections, and a request that
// leaves in the same turn of the event loop as the call that makes it.
//
// @kubernetes/client-node 2.x, left to itself, builds a new undici Agent for every call as soon as
// the cluster has any TLS setting (a CA, a client certificate, or insecure-skip-tls-verify: always
// in a pod), so every call opens a new connection and, against a real API server, does a new TLS
// handshake; the idle connection it leaves behind is never used again. Pooling undici's Agent is
// not enough either: undici (>= 8) writes a request on a kept-alive connection only after one full
// turn of the event loop (it first checks the idle socket for bytes the server sent meanwhile), and
// a new leader's event loop has a burst of Raft work queued in exactly that turn (measured: 100-250
// ms on a loaded 2-core machine between the call and the PATCH leaving).
//
// So the generated clients run over this transport instead: client-node still builds every request
// (URL, query, body, content type, serialization, ApiException) and its KubeConfig still computes
// the credentials per call (its authenticators refresh a rotated service-account token); the bytes
// go through node:http(s) with one keep-alive Agent, which hands a free socket over at once. A
// cluster reached through a proxy keeps client-node's own transport (see KubeClient).
import { createHash } from 'node:crypto';
import http, { type IncomingMessage } from 'node:http';
import https, { type AgentOptions, type RequestOptions } from 'node:https';
import {
  ResponseContext,
  SelfDecodingBody,
  wrapHttpLibrary,
  type HttpLibrary,
  type KubeConfig,
  type RequestContext,
  type SecurityAuthentication,
} from '@kubernetes/client-node';

/**
 * How long an idle connection is kept. kube-apiserver and client-go keep idle connections 90 s,
 * load balancers in front of the API server commonly 60 s; a server that announces a shorter
 * keep-alive (Keep-Alive: timeout=N) is believed.
 */
const IDLE_MS = 30_000;

export class KubeTransport implements SecurityAuthentication {
  private readonly kc: KubeConfig;
  private pool: { readonly key: string; readonly agent: http.Agent } | null = null;
  /** For createConfiguration({ httpApi }). */
  readonly httpApi: HttpLibrary;

  constructor(kc: KubeConfig) {
    this.kc = kc;
    this.httpApi = wrapHttpLibrary({ send: (request) => this.exchange(request) });
  }

  getName(): string {
    return 'kubeconfig credentials over kept-alive node:https connections';
  }

  /** Credentials from the KubeConfig (per call); the connection pool follows its TLS material. */
  async applySecurityAuthentication(ctx: RequestContext): Promise<void> {
    const opts: RequestOptions = {};
    await this.kc.applyToHTTPSOptions(opts);
    for (const [name, value] of headerEntries(opts.headers)) ctx.setHeaderParam(name, value);
    if (typeof opts.auth === 'string') ctx.setHeaderParam('Authorization', `Basic ${Buffer.from(opts.auth).toString('base64')}`);
    const tls: AgentOptions = { ca: opts.ca, cert: opts.cert, key: opts.key, pfx: opts.pfx, passphrase: opts.passphrase };
    if (opts.rejectUnauthorized !== undefined) tls.rejectUnauthorized = opts.rejectUnauthorized;
    if (opts.servername !== undefined) tls.servername = opts.servername;
    this.poolFor(new URL(ctx.getUrl()).protocol, tls);
  }

  /** Closes the idle connections; a later call opens new ones. */
  close(): void {
    const pool = this.pool;
    this.pool = null;
    pool?.agent.destroy();
  }

  private poolFor(protocol: string, tls: AgentOptions): http.Agent {
    const key = `${protocol}${fingerprint(tls)}`;
    if (this.pool?.key === key) return this.pool.agent;
    // New TLS material (a rotated client certificate): new connections from now on; calls still on
    // the old pool finish there, and its idle connections time out.
    const common = { keepAlive: true, keepAliveMsecs: 30_000, timeout: IDLE_MS, scheduling: 'lifo' as const };
    const agent = protocol === 'http:' ? new http.Agent(common) : new https.Agent({ ...common, ...tls });
    this.pool = { key, agent };
    return agent;
  }

  private async exchange(request: RequestContext): Promise<ResponseContext> {
    const agent = this.pool?.agent;
    if (agent === undefined) throw new Error('Kubernetes API request without credentials applied');
    try {
      return await send(request, agent);
    } catch (err) {
      // The server closed an idle kept-alive connection just as this request went out on it:
      // nothing was processed, so send it once more on a new connection (what Node's docs advise).
      if (!(err instanceof StaleSocketError)) throw err;
      return send(request, agent);
    }
  }
}

class StaleSocketError extends Error {}

function send(request: RequestContext, agent: http.Agent): Promise<ResponseContext> {
  const url = new URL(request.getUrl());
  const body = request.getBody();
  if (body !== undefined && typeof body !== 'string') return Promise.reject(new Error('only string request bodies are supported'));
  const headers: Record<string, string> = { ...request.getHeaders() };
  if (body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(body));
  const options: RequestOptions = { method: request.getHttpMethod(), headers, agent, signal: request.getSignal() };
  return new Promise((resolve, reject) => {
    let answered = false;
    const onResponse = (res: IncomingMessage): void => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('close', () => {
        if (!res.complete) reject(new Error('the connection closed before the whole response arrived', { cause: options.signal?.reason }));
      });
      res.on('end', () => {
        const data = Buffer.concat(chunks);
        resolve(new ResponseContext(res.statusCode ?? 0, responseHeaders(res), new SelfDecodingBody(Promise.resolve(data))));
      });
    };
    const req = url.protocol === 'http:' ? http.request(url, options, onResponse) : https.request(url, options, onResponse);
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (!answered && req.reusedSocket && err.code === 'ECONNRESET') reject(new StaleSocketError(err.message, { cause: err }));
      else reject(err);
    });
    req.end(body);
  });
}

function responseHeaders(res: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(res.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return headers;
}

function headerEntries(headers: RequestOptions['headers']): [string, string][] {
  if (headers === undefined || Array.isArray(headers)) return [];
  const pairs: [string, string][] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) pairs.push([name, Array.isArray(value) ? value.join(', ') : String(value)]);
  }
  return pairs;
}

/** A digest of the TLS material and settings (CA, client certificate and key, verification). */
function fingerprint(tls: AgentOptions): string {
  const hash = createHash('sha256');
  const entries: [string, unknown][] = Object.entries(tls);
  for (const [name, value] of entries.sort(([a], [b]) => a.localeCompare(b))) {
    if (value === undefined) continue;
    hash.update(`${name}=`);
    const parts: unknown[] = Array.isArray(value) ? value : [value];
    for (const part of parts) {
      if (Buffer.isBuffer(part)) hash.update(part);
      else hash.update(JSON.stringify(part) ?? String(part));
      hash.update(',');
    }
    hash.update(';');
  }
  return hash.digest('base64');
}
