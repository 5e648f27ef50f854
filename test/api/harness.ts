// Runs the API app on 127.0.0.1 with an ephemeral port and a private undici Agent.
import type { AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:http';
import { Agent, request } from 'undici';
import { createApiApp, type ApiOptions } from '../../src/api/app.ts';
import type { ClientOps } from '../../src/api/ops.ts';
import { FakeOps } from './fake-ops.ts';

export interface Harness {
  readonly base: string;
  readonly port: number;
  readonly agent: Agent;
  /** An HTTP call whose body is read whole; never throws on an HTTP error status. */
  call(method: string, path: string, options?: { headers?: Record<string, string>; body?: string | Uint8Array }): Promise<Answer>;
  close(): Promise<void>;
}

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
  /** The body parsed as JSON. */
  json(): unknown;
}

export async function startApi(ops: ClientOps, options: Partial<ApiOptions> = {}): Promise<Harness> {
  const app = createApiApp(ops, { maxValueBytes: 1024, requestTimeoutMs: 5000, ...options });
  const server: Server = createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const base = `http://127.0.0.1:${port}`;
  const agent = new Agent();
  return {
    base,
    port,
    agent,
    async call(method, path, callOptions = {}) {
      const response = await request(base + path, { method, headers: callOptions.headers, body: callOptions.body, dispatcher: agent });
      const body = Buffer.from(await response.body.arrayBuffer());
      return {
        status: response.statusCode,
        headers: response.headers,
        body,
        json: () => JSON.parse(body.toString('utf8')) as unknown,
      };
    },
    async close() {
      await agent.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Polls `condition` until it holds, failing after a generous bound. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Runs `body` against the API in front of a fresh FakeOps, and stops both afterwards. */
export async function withFakeApi(body: (api: Harness, ops: FakeOps) => Promise<void>, options: Partial<ApiOptions> = {}): Promise<void> {
  const ops = new FakeOps();
  const api = await startApi(ops, options);
  try {
    await body(api, ops);
  } finally {
    ops.close();
    await api.close();
  }
}
