// `raftlet run`: one node as a process. Opens storage, bootstraps (static members, itself, or DNS
// discovery), starts the peer, client and metrics servers, the Kubernetes adapters, and handles
// SIGTERM (a leader hands over first). Resolves with the exit code of SPEC §2.
import { createServer, type Server } from 'node:http';
import pino from 'pino';
import { createApiApp } from '../api/app.ts';
import { formatHostPort, type Settings } from '../cli/settings.ts';
import { decideBootstrap } from '../kubernetes/bootstrap.ts';
import type { Peer, SrvDiscovery } from '../kubernetes/discovery.ts';
import type { KubernetesAdapters } from '../kubernetes/index.ts';
import { AbsenceTracker, planMembershipChange } from '../kubernetes/membership.ts';
import { RaftletMetrics } from '../metrics/metrics.ts';
import { readinessOf, startMetricsServer, type MetricsServer } from '../metrics/server.ts';
import { bootstrapState } from '../raft/raft.ts';
import type { Member, NodeId, RestoredState } from '../raft/types.ts';
import { openStore, StorageError, type WalStore } from '../storage/index.ts';
import { createSecureContext } from 'node:tls';
import { FileTls, FileTokens, PeerClient, staticTokens, startPeerServer, type RunningPeerServer, type TokenSource } from '../transport/index.ts';
import { lookupVia } from '../transport/lookup.ts';
import { RaftNode } from './node.ts';

const RECONCILE_INTERVAL_MS = 2_000;

export async function runNode(settings: Settings): Promise<number> {
  const logger = pino({ level: settings.logLevel, base: { node: settings.nodeId } });
  for (const warning of settings.warnings) logger.warn(warning);
  const metrics = new RaftletMetrics();

  // SPEC §2: a bad configuration (a busy port included) exits 2 before anything is started,
  // so the ports are tried before the data directory is created.
  const busy = await firstUnbindable([
    ['RAFTLET_PEER_LISTEN', settings.peerListen],
    ['RAFTLET_API_LISTEN', settings.apiListen],
    ['RAFTLET_METRICS_LISTEN', settings.metricsListen],
  ]);
  if (busy) {
    logger.fatal(busy.message);
    process.stderr.write(`raftlet: ${busy.message}\n`);
    return 2;
  }

  let store: WalStore;
  let restored: RestoredState;
  try {
    const opened = await openStore(settings.dataDir, {
      nodeId: settings.nodeId,
      onFsync: (seconds, kind) => metrics.observeFsync(seconds, kind),
      logger: { warn: (m) => logger.warn(m), info: (m) => logger.info(m) },
    });
    store = opened.store;
    restored = opened.restored;
  } catch (err) {
    logger.fatal({ err }, `data directory ${settings.dataDir} is unusable`);
    process.stderr.write(`raftlet: ${err instanceof Error ? err.message : String(err)}\n`);
    return err instanceof StorageError ? 3 : 1;
  }
  const hasData = restored.entries.length > 0 || restored.snapshot !== null || restored.hardState.term > 0;
  if (!hasData && settings.membersFrom !== 'dns') {
    const members: Member[] = settings.peers.map((p) => ({ id: p.id, url: p.url, voter: true }));
    restored = bootstrapState(members);
    try {
      await store.save({ entries: restored.entries, hardState: restored.hardState });
    } catch (err) {
      logger.fatal({ err }, 'storage failed while bootstrapping');
      return 3;
    }
    logger.info({ members: members.map((m) => m.id) }, 'bootstrapped a new cluster');
  }

  let kube: KubernetesAdapters | null = null;
  if (settings.kubernetes) {
    const { KubernetesAdapters } = await import('../kubernetes/index.ts');
    try {
      kube = new KubernetesAdapters({
        namespace: settings.podNamespace,
        podName: settings.podName,
        selfId: settings.nodeId,
        roleLabel: settings.roleLabel,
        leaseName: settings.leaseName,
        logger: logger.child({ component: 'kubernetes' }),
        onLabelUpdate: (result) => metrics.onLabelUpdate(result),
      });
    } catch (err) {
      const message = `RAFTLET_KUBERNETES is on but no Kubernetes client configuration was found: ${err instanceof Error ? err.message : String(err)}`;
      logger.fatal({ err }, message);
      process.stderr.write(`raftlet: ${message}\n`);
      await store.close().catch(() => undefined);
      return 2;
    }
  }

  // ---- transport: token set (issue 11) ----
  // The token file is re-read when it changes (rotation without a restart); never logged.
  const fileTokens = settings.clusterTokenFile === null ? null : new FileTokens(settings.clusterTokenFile, {
    onWarning: (message) => logger.warn(message),
    onChange: (count) => logger.info({ tokens: count }, 'cluster token file re-read'),
  });
  const tokens: TokenSource | null = fileTokens ?? (settings.clusterTokens === null ? null : staticTokens(settings.clusterTokens));
  // Peer TLS (issue 14): certificates re-read when the files change; a pair that does not load
  // (cert and key written one after the other) keeps the previous one until the next change.
  let tls: FileTls | null = null;
  if (settings.peerTls !== null) {
    try {
      tls = new FileTls(settings.peerTls, {
        verifyName: settings.peerTlsVerifyName,
        validate: (m) => createSecureContext({ cert: m.cert, key: m.key, ca: m.ca }),
        onWarning: (message) => logger.warn(message),
        onReload: () => logger.info('peer TLS certificates re-read'),
      });
    } catch (err) {
      const message = `peer TLS files cannot be used (${settings.peerTls.certFile}, ${settings.peerTls.keyFile}, ${settings.peerTls.caFile}): ${err instanceof Error ? err.message : String(err)}`;
      logger.fatal(message);
      process.stderr.write(`raftlet: ${message}\n`);
      fileTokens?.close();
      await store.close().catch(() => undefined);
      return 2;
    }
  }
  // ---- end transport ----

  // The DNS server that answers discovery also resolves the peers' names (SPEC §3).
  const dnsServer = settings.dnsServer ? formatHostPort(settings.dnsServer) : undefined;
  const peers = new PeerClient({
    token: tokens,
    tls,
    lookup: dnsServer ? lookupVia(dnsServer) : undefined,
    requestTimeoutMs: Math.max(500, Math.min(2000, settings.electionTimeoutMs)),
    backoffMaxMs: Math.max(200, Math.min(2000, settings.electionTimeoutMs)),
    hooks: {
      onRpc: (kind, seconds, ok) => metrics.observeRpc(kind, seconds, ok),
      onDrop: (peer, reason) => metrics.onDrop(peer, reason),
      onPeerReachable: (peer, reachable, error) => {
        if (reachable) logger.info({ peer }, `peer ${peer} is reachable`);
        else logger.warn({ peer, err: error?.message }, `peer ${peer} is unreachable`);
      },
      onPeerDead: (peer) => logger.info({ peer }, `peer ${peer}: connection lost and refused (its process is gone)`),
    },
  });

  let exit: (code: number) => void = () => undefined;
  const exited = new Promise<number>((resolve) => (exit = resolve));
  let failed = false;
  const node = new RaftNode({
    id: settings.nodeId,
    heartbeatMs: settings.heartbeatMs,
    electionTimeoutMs: settings.electionTimeoutMs,
    restored,
    store,
    peers,
    logger,
    snapshotEntries: settings.snapshotEntries,
    onFatal: (err, code) => {
      failed = true;
      logger.fatal({ err }, code === 3 ? 'storage failed: stopping' : 'internal invariant broken: stopping');
      exit(code);
    },
  });

  // Peers reachable by id: the configuration, the static list and what DNS shows, so a node not
  // yet in the configuration can still answer the leader that is adding it.
  let discovered: readonly Peer[] = [];
  const updatePeers = (): void => {
    const urls = new Map<NodeId, string>();
    for (const p of settings.peers) urls.set(p.id, p.url);
    for (const p of discovered) urls.set(p.id, p.url);
    for (const m of node.members()) urls.set(m.id, m.url);
    urls.delete(settings.nodeId);
    peers.setPeers(urls);
  };
  updatePeers();

  const publishRole = (): void => {
    const s = node.status();
    kube?.update({ term: s.term, isLeader: s.role === 'leader', leaderId: s.leader, memberIds: s.members.map((m) => m.id) });
  };
  node.addHooks({
    onRaftEvent: (ev) => {
      metrics.onRaftEvent(ev);
      if (ev.kind === 'membershipChanged') {
        metrics.setMembers(ev.members);
        updatePeers();
      }
      if (ev.kind === 'roleChanged' || ev.kind === 'leaderChanged' || ev.kind === 'termChanged' || ev.kind === 'membershipChanged') publishRole();
    },
    onApplied: (status) => metrics.setIndices(status),
    onProposal: (result, seconds) => metrics.observeProposal(result, seconds),
    onSnapshot: (seconds, kind) => metrics.observeSnapshot(seconds, kind),
  });
  metrics.syncStatus({ ...node.status(), role: node.status().role });

  let peerServer: RunningPeerServer | null = null;
  let apiServer: Server | null = null;
  let metricsServer: MetricsServer | null = null;
  try {
    peerServer = await startPeerServer(settings.peerListen.host, settings.peerListen.port, {
      token: tokens,
      tls,
      clientCertificates: settings.peerAuth !== 'token',
      handlers: node,
      nodeId: settings.nodeId,
      // A forwarded write carries one value as base64; an append carries at least one entry.
      requestLimitBytes: Math.max(2 << 20, Math.ceil((settings.maxValueBytes * 4) / 3) + (64 << 10)),
      messagesLimitBytes: Math.max(64 << 20, 2 * settings.maxValueBytes + (1 << 20)),
      onRefused: (r) => logger.warn({ status: r.status, code: r.code, path: r.path, remote: r.remoteAddress, suppressed: r.suppressed }, `refused a peer request: ${r.message}`),
    }).catch((err: unknown) => {
      throw listenError(err, 'RAFTLET_PEER_LISTEN', settings.peerListen.host, settings.peerListen.port);
    });
    const app = createApiApp(node, {
      maxValueBytes: settings.maxValueBytes,
      requestTimeoutMs: settings.requestTimeoutMs,
      logger: { error: (d, m) => logger.error(d, m), warn: (d, m) => logger.warn(d, m) },
    });
    apiServer = await listen(createServer(app), settings.apiListen.host, settings.apiListen.port, 'RAFTLET_API_LISTEN');
    metricsServer = await startMetricsServer({
      host: settings.metricsListen.host,
      port: settings.metricsListen.port,
      metrics,
      healthy: () => !failed && store.error === null,
      ready: () => readinessOf(node.status()),
    }).catch((err: unknown) => {
      throw listenError(err, 'RAFTLET_METRICS_LISTEN', settings.metricsListen.host, settings.metricsListen.port);
    });
  } catch (err) {
    const message = err instanceof ListenError ? err.message : `cannot start servers: ${err instanceof Error ? err.message : String(err)}`;
    logger.fatal({ err }, message);
    process.stderr.write(`raftlet: ${message}\n`);
    await Promise.allSettled([peerServer?.close(), closeServer(apiServer), metricsServer?.close(), peers.close(), store.close()]);
    return err instanceof ListenError ? 2 : 1;
  }
  logger.info(
    { peer: settings.peerListen, api: settings.apiListen, metrics: settings.metricsListen, advertise: settings.advertiseUrl },
    `raftlet ${settings.nodeId} started`,
  );
  node.start();
  node.campaignIfAlone();

  publishRole();

  let discovery: SrvDiscovery | null = null;
  const absence = new AbsenceTracker();
  let lastRefusal = '';
  const timers: NodeJS.Timeout[] = [];
  if (settings.membersFrom === 'dns' && settings.discoveryService) {
    const { SrvDiscovery } = await import('../kubernetes/discovery.ts');
    discovery = new SrvDiscovery({
      service: settings.discoveryService,
      dnsServer,
      expected: settings.bootstrapExpect,
      logger: logger.child({ component: 'discovery' }),
      onResult: (result) => metrics.onDiscovery(result, discovery?.current()?.length),
    });
    let bootstrapping = false;
    const maybeBootstrap = async (): Promise<void> => {
      if (bootstrapping || !node.isPristine()) return;
      const decision = decideBootstrap({ selfId: settings.nodeId, discovered, expect: settings.bootstrapExpect, hasData: false });
      if (decision.kind === 'wait') {
        logger.info(decision.reason);
        return;
      }
      bootstrapping = true;
      const state = bootstrapState(decision.members);
      try {
        await store.save({ entries: state.entries, hardState: state.hardState });
      } catch (err) {
        node.stop().catch(() => undefined);
        failed = true;
        logger.fatal({ err }, 'storage failed while bootstrapping');
        exit(3);
        return;
      }
      if (!node.isPristine()) return; // a leader reached us meanwhile; its log wins (entry 1 is the same)
      node.bootstrap(state);
      updatePeers();
      logger.info({ members: decision.members.map((m) => m.id) }, 'bootstrapped a new cluster from DNS discovery');
    };
    discovery.onChange((found) => {
      discovered = found;
      updatePeers();
      void maybeBootstrap();
    });
    discovery.start();
    // The leader keeps the configuration in line with what DNS shows (issue 4: operator-style).
    timers.push(
      setInterval(() => {
        const current = discovery?.current();
        if (!current || node.status().role !== 'leader') return;
        const s = node.raftStatus();
        absence.observe(s.members.map((m) => m.id), current.map((p) => p.id), Date.now());
        const decision = planMembershipChange({
          selfId: settings.nodeId,
          members: s.members,
          lastLogIndex: s.lastLogIndex,
          progress: s.progress,
          discovered: current,
          absentForMs: absence.absentForMs(Date.now()),
          changeInProgress: false,
        });
        switch (decision.kind) {
          case 'none':
            return;
          case 'change': {
            const res = node.proposeConfigChange(decision.change);
            if (res.ok) logger.info({ change: decision.change, index: res.index }, `membership: ${decision.reason}`);
            else if (res.reason !== 'change_in_progress') logger.warn({ change: decision.change }, `membership change refused: ${res.message}`);
            return;
          }
          case 'transferFirst':
            logger.info(decision.reason);
            node.transferLeadership(null, Date.now() + settings.electionTimeoutMs).catch(() => undefined);
            return;
          case 'refused':
            if (decision.reason !== lastRefusal) logger.warn({ change: decision.change }, `membership change refused: ${decision.reason}`);
            lastRefusal = decision.reason;
            return;
          default: {
            const never: never = decision;
            return never;
          }
        }
      }, RECONCILE_INTERVAL_MS),
    );
  }

  // Replication lag per follower, as the leader sees it.
  timers.push(
    setInterval(() => {
      const s = node.raftStatus();
      const lag = new Map<NodeId, number>();
      if (s.role === 'leader') for (const p of s.progress) lag.set(p.id, Math.max(0, s.lastLogIndex - p.matchIndex));
      metrics.setFollowerLag(lag);
      metrics.setIndices({ commitIndex: s.commitIndex, appliedIndex: node.kvStore.appliedIndex, lastLogIndex: s.lastLogIndex });
    }, 1000),
  );

  const shutdown = async (signal: string): Promise<void> => {
    logger.info({ signal }, 'stopping');
    // No new client requests; those in flight finish below (their entries may commit under the
    // next leader, which this node then applies).
    const apiDrained = drainServer(apiServer, Math.min(5000, settings.requestTimeoutMs));
    if (node.status().role === 'leader' && node.members().some((m) => m.voter && m.id !== settings.nodeId)) {
      try {
        const to = await node.transferLeadership(null, Date.now() + settings.electionTimeoutMs * 2);
        logger.info({ to: to.leader, term: to.term }, 'handed leadership over before stopping');
      } catch (err) {
        logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'leadership hand-off failed; stopping anyway');
      }
    }
    publishRole();
    await apiDrained;
    exit(0);
  };
  const onSignal = (signal: string): void => {
    void shutdown(signal);
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);

  const code = await exited;
  process.removeListener('SIGTERM', onSignal);
  process.removeListener('SIGINT', onSignal);
  for (const t of timers) clearInterval(t);
  discovery?.stop();
  await node.stop();
  if (kube) {
    await kube.flush(2000).catch(() => false);
    await kube.stop().catch(() => undefined);
  }
  await Promise.allSettled([peerServer.close(), closeServer(apiServer), metricsServer.close(), peers.close()]);
  fileTokens?.close();
  tls?.close();
  if (code !== 3) await store.close().catch(() => undefined);
  logger.info({ code }, 'stopped');
  return code;
}

class ListenError extends Error {}

function listenError(err: unknown, setting: string, host: string, port: number): Error {
  const code = (err as { code?: string } | null)?.code;
  if (code === 'EADDRINUSE') return new ListenError(`${setting} ${host}:${port} is already in use`);
  if (code === 'EADDRNOTAVAIL' || code === 'EACCES') return new ListenError(`${setting} ${host}:${port} cannot be bound (${code})`);
  return err instanceof Error ? err : new Error(String(err));
}

/** Binds and releases each address; the first that cannot be bound, as a ListenError. */
async function firstUnbindable(addresses: readonly (readonly [string, { host: string; port: number }])[]): Promise<ListenError | null> {
  for (const [setting, { host, port }] of addresses) {
    if (port === 0) continue;
    try {
      const server = await listen(createServer(), host, port, setting);
      await closeServer(server);
    } catch (err) {
      if (err instanceof ListenError) return err;
      throw err;
    }
  }
  return null;
}

function listen(server: Server, host: string, port: number, setting: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(listenError(err, setting, host, port)));
    server.listen(port, host, () => resolve(server));
  });
}

/** Stops accepting connections, lets requests in flight finish for up to graceMs, then closes. */
async function drainServer(server: Server | null, graceMs: number): Promise<void> {
  if (!server || !server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
  await Promise.race([closed, grace]);
  clearTimeout(timer);
  server.closeAllConnections();
}

function closeServer(server: Server | null): Promise<void> {
  if (!server || !server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
