// The three listeners of a node: peer RPC, the client API and /metrics with the probes. Started
// together; if one cannot start, the ones already up are closed again.
import type { Server } from 'node:http';
import { http } from '../util/http.ts';
import type { Logger } from 'pino';
import { createApiApp, type ApiOptions } from '../api/app.ts';
import type { Settings } from '../config/settings.ts';
import type { RaftletMetrics } from '../metrics/metrics.ts';
import { readinessOf, startMetricsServer, type MetricsServer } from '../metrics/server.ts';
import type { RaftNode } from '../node/node.ts';
import type { NodeId } from '../raft/types.ts';
import type { ClusterIdentity } from '../transport/cluster-id.ts';
import { startPeerServer, type RunningPeerServer } from '../transport/index.ts';
import { serveSnapshot, snapshotPeerRoute, type SnapshotSource } from '../transport/snapshot-route.ts';
import { closeServer, listen, listenError, ListenError } from './listen.ts';
import type { PeerSecurity } from './peer-security.ts';

export interface Servers {
  readonly peer: RunningPeerServer;
  readonly api: Server;
  readonly metrics: MetricsServer;
}

export interface ServersOptions {
  readonly settings: Settings;
  readonly node: RaftNode;
  readonly metrics: RaftletMetrics;
  readonly logger: Logger;
  readonly security: PeerSecurity;
  readonly healthy: () => boolean;
  readonly identity: ClusterIdentity;
  /** The peer URL of each member this node knows: a sender's certificate must name its host
   * (RAFTLET_PEER_TLS_VERIFY_NAME). */
  readonly memberUrl: (id: NodeId) => string | undefined;
  /** GET /v1/snapshot on the client API and GET /raft/v1/snapshot on the peer port. */
  readonly snapshot: SnapshotSource;
  /** Watch limits and hooks, and the signal that ends watches at shutdown. */
  readonly api?: Pick<ApiOptions, 'watchLimits' | 'watchHooks' | 'shutdown'>;
}

export async function startServers({ settings, node, metrics, logger, security, healthy, identity, memberUrl, snapshot, api: apiOptions }: ServersOptions): Promise<Servers> {
  let peer: RunningPeerServer | null = null;
  let api: Server | null = null;
  let metricsServer: MetricsServer | null = null;
  try {
    peer = await startPeerServer(settings.peerListen.host, settings.peerListen.port, {
      token: security.tokens,
      tls: security.tls,
      clientCertificates: settings.peerAuth !== 'token',
      handlers: node,
      nodeId: settings.nodeId,
      identity,
      memberUrl,
      extraRoutes: [snapshotPeerRoute(snapshot)],
      // A forwarded write carries one value as base64; an append carries at least one entry.
      requestLimitBytes: Math.max(2 << 20, Math.ceil((settings.maxValueBytes * 4) / 3) + (64 << 10)),
      messagesLimitBytes: Math.max(64 << 20, 2 * settings.maxValueBytes + (1 << 20)),
      onRefused: (r) => logger.warn({ status: r.status, code: r.code, path: r.path, remote: r.remoteAddress, suppressed: r.suppressed }, `refused a peer request: ${r.message}`),
    }).catch((err: unknown) => {
      throw listenError(err, 'RAFTLET_PEER_LISTEN', settings.peerListen);
    });
    const app = createApiApp(node, {
      maxValueBytes: settings.maxValueBytes,
      requestTimeoutMs: settings.requestTimeoutMs,
      logger: { error: (d, m) => logger.error(d, m), warn: (d, m) => logger.warn(d, m) },
      extraRoutes: (routes) => routes.get('/v1/snapshot', (_req, res) => serveSnapshot(res, snapshot)),
      ...apiOptions,
    });
    api = await listen(http.createServer(app), settings.apiListen, 'RAFTLET_API_LISTEN');
    metricsServer = await startMetricsServer({
      host: settings.metricsListen.host,
      port: settings.metricsListen.port,
      metrics,
      healthy,
      ready: () => readinessOf(node.status()),
    }).catch((err: unknown) => {
      throw listenError(err, 'RAFTLET_METRICS_LISTEN', settings.metricsListen);
    });
    return { peer, api, metrics: metricsServer };
  } catch (err) {
    await Promise.allSettled([peer?.close(), closeServer(api), metricsServer?.close()]);
    throw err;
  }
}

export { ListenError };
