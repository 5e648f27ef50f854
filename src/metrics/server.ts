// The RAFTLET_METRICS_LISTEN endpoint (SPEC §6): /metrics for Prometheus, /healthz for the
// liveness probe, /readyz for the readiness probe. Plain node:http: three routes need no framework,
// and a scrape must not be slowed by middleware.
import { http } from '../util/http.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Membership, NodeId } from '../raft/types.ts';
import type { RaftletMetrics } from './metrics.ts';

export interface Readiness {
  readonly ready: boolean;
  /** Why not ready (or what makes it ready), for the operator reading the probe's output. */
  readonly reason: string;
}

export interface MetricsServerOptions {
  readonly host: string;
  /** 0 = an ephemeral port; read the bound one from the result. */
  readonly port: number;
  readonly metrics: RaftletMetrics;
  /** true while the process and its storage work (e.g. the last fsync succeeded). */
  readonly healthy: () => boolean | Promise<boolean>;
  readonly ready: () => Readiness;
  /** A health check that takes longer than this counts as unhealthy; default 2000 ms. */
  readonly healthTimeoutMs?: number;
}

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * SPEC §6 readiness: a voting member of a cluster with a known leader in its current term. `leader`
 * must be null whenever the node knows no leader in its current term (the core resets it on a new
 * term). A learner is not ready: it does not count toward a quorum yet, and a PodDisruptionBudget
 * that counted it could let one eviction too many through while it catches up.
 */
export function readinessOf(status: { readonly id: NodeId; readonly term: number; readonly leader: NodeId | null; readonly members: Membership }): Readiness {
  const self = status.members.find((member) => member.id === status.id);
  if (self === undefined) {
    return { ready: false, reason: `${status.id} is not a member of the cluster configuration (yet)` };
  }
  if (!self.voter) return { ready: false, reason: `${status.id} is a learner catching up; ready once the leader promotes it to a voter` };
  if (status.leader === null) return { ready: false, reason: `no known leader in term ${status.term}` };
  return { ready: true, reason: `voter; leader ${status.leader} in term ${status.term}` };
}

export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const healthTimeoutMs = options.healthTimeoutMs ?? 2000;
  const server = http.createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: { code: 'internal', message: errorMessage(err) } });
      else res.destroy();
    });
  });

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path !== '/metrics' && path !== '/healthz' && path !== '/readyz') {
      sendJson(res, 404, { error: { code: 'not_found', message: `no route ${path}; try /metrics, /healthz or /readyz` } });
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      sendJson(res, 405, { error: { code: 'method_not_allowed', message: `${path} answers GET only` } });
      return;
    }
    switch (path) {
      case '/metrics': {
        const body = await options.metrics.render();
        res.writeHead(200, { 'Content-Type': options.metrics.contentType, 'Cache-Control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
        return;
      }
      case '/healthz': {
        const verdict = await checkHealth(options.healthy, healthTimeoutMs);
        sendJson(res, verdict.healthy ? 200 : 503, { status: verdict.healthy ? 'ok' : 'unhealthy', reason: verdict.reason });
        return;
      }
      case '/readyz': {
        const readiness = options.ready();
        sendJson(res, readiness.ready ? 200 : 503, { ready: readiness.ready, reason: readiness.reason });
        return;
      }
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // Prometheus keeps connections alive between scrapes; do not wait for them to idle out.
        server.closeAllConnections();
      }),
  };
}

async function checkHealth(healthy: () => boolean | Promise<boolean>, timeoutMs: number): Promise<{ healthy: boolean; reason: string }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<{ healthy: boolean; reason: string }>((resolve) => {
    timer = setTimeout(() => resolve({ healthy: false, reason: `health check did not answer within ${timeoutMs} ms` }), timeoutMs);
    // A probe whose client went away must not keep the process alive.
    timer.unref();
  });
  const check = (async () => {
    try {
      return (await healthy()) ? { healthy: true, reason: 'process and storage work' } : { healthy: false, reason: 'storage check failed; see the node log' };
    } catch (err) {
      return { healthy: false, reason: `health check failed: ${errorMessage(err)}` };
    }
  })();
  try {
    return await Promise.race([check, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
