// `raftlet run`: one node as a process, composed from its parts: storage and the cluster id
// (data.ts), the peer client, the node runtime, the three servers (servers.ts), the Kubernetes
// adapters, DNS discovery and bootstrap (discovery.ts), the membership reconciler (reconciler.ts)
// and SIGTERM: the hand-off, and leaving the configuration when scaled away (leave.ts).
// Resolves with the exit code of SPEC §2 (exit-codes.ts).
import pino from 'pino';
import { formatHostPort, type Settings } from '../config/settings.ts';
import type { Peer } from '../kubernetes/discovery.ts';
import type { KubernetesAdapters, ScaleVerdict } from '../kubernetes/index.ts';
import { isScaledAway } from '../kubernetes/scale-rules.ts';
import { DEFAULT_HISTORY, KvStore } from '../kv/index.ts';
import { AppMetrics } from '../metrics/app-metrics.ts';
import { RaftletMetrics } from '../metrics/metrics.ts';
import { RaftNode } from '../node/node.ts';
import type { NodeId } from '../raft/types.ts';
import { PeerClient } from '../transport/index.ts';
import { lookupVia } from '../transport/lookup.ts';
import { Bootstrapper, staticClusterId, staticPlan } from './bootstrap.ts';
import { openData } from './data.ts';
import { startDiscovery, type Discovery } from './discovery.ts';
import { startAppHealthProbe } from './app-health.ts';
import { ExitCode } from './exit-codes.ts';
import { handOverBeforeStopping, leaveIfScaledAway } from './leave.ts';
import { yieldCpu } from './yield-cpu.ts';
import { closeServer, drainServer, firstUnbindable } from './listen.ts';
import { openPeerSecurity, PeerSecurityError, type PeerSecurity } from './peer-security.ts';
import { startReconciler } from './reconciler.ts';
import { importLazilyCompiled } from './lazy-import.ts';
import { ListenError, startServers, type Servers } from './servers.ts';
import { snapshotSource } from './snapshot-source.ts';
import { stopSignals } from './stop-signals.ts';
import { collectStartupGarbage } from './startup-gc.ts';
import { rehearse } from './rehearsal.ts';
import { steadyNow } from '../util/steady-clock.ts';

/** The start-up rehearsal takes ~0.45 s of a free core; past this it is cut short, never the start.
 * Tight on purpose: when every member restarts at once (an outage, `kill-all` in the chaos suite),
 * the cluster is back only once a quorum has started, and with members sharing cores a longer
 * budget delayed that by up to the whole budget (5 members on 2 cores: 6.6 s instead of 4.8). */
const REHEARSAL_BUDGET_MS = 600;

export async function runNode(settings: Settings): Promise<ExitCode> {
  // Caught already if the bin started this process; the node stops once started (stop-signals.ts).
  const signals = stopSignals;
  signals.listen();
  const logger = pino({ level: settings.logLevel, base: { node: settings.nodeId } });
  // The first line: a start that takes long (a large log to replay) shows as under way.
  logger.info({ dataDir: settings.dataDir, pid: process.pid, nodejs: process.versions.node }, `raftlet ${settings.nodeId} starting`);
  for (const warning of settings.warnings) logger.warn(warning);
  const metrics = new RaftletMetrics();
  const appMetrics = new AppMetrics(metrics.registry);

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
    return ExitCode.badConfig;
  }

  const opened = await openData(settings, metrics, logger);
  if (typeof opened === 'number') return opened;
  const { store, restored, identity } = opened;

  let kube: KubernetesAdapters | null = null;
  if (settings.kubernetes) {
    const { KubernetesAdapters } = await importLazilyCompiled(() => import('../kubernetes/index.ts'));
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
      return ExitCode.badConfig;
    }
  }

  let security: PeerSecurity;
  try {
    security = openPeerSecurity(settings, logger);
  } catch (err) {
    if (!(err instanceof PeerSecurityError)) throw err;
    logger.fatal(err.message);
    process.stderr.write(`raftlet: ${err.message}\n`);
    await store.close().catch(() => undefined);
    return ExitCode.badConfig;
  }

  // The DNS server that answers discovery also resolves the peers' names (SPEC §3).
  const dnsServer = settings.dnsServer ? formatHostPort(settings.dnsServer) : undefined;
  const peers = new PeerClient({
    token: security.tokens,
    tls: security.tls,
    lookup: dnsServer ? lookupVia(dnsServer) : undefined,
    identity,
    selfId: settings.nodeId,
    requestTimeoutMs: Math.max(500, Math.min(2000, settings.electionTimeoutMs)),
    backoffMaxMs: Math.max(200, Math.min(2000, settings.electionTimeoutMs)),
    hooks: {
      onRpc: (kind, seconds, ok) => metrics.observeRpc(kind, seconds, ok),
      onDrop: (peer, reason) => metrics.onDrop(peer, reason),
      onPeerReachable: (peer, reachable, error) => {
        if (reachable) logger.info({ peer }, `peer ${peer} is reachable`);
        else logger.warn({ peer, err: error?.message }, `peer ${peer} is unreachable`);
      },
      // Its process is gone (connection refused, never a timeout): if it led, campaign now.
      onPeerDead: (peer) => {
        logger.info({ peer }, `peer ${peer}: connection lost and refused (its process is gone)`);
        node.peerDead(peer);
      },
    },
  });

  let exit: (code: ExitCode) => void = () => undefined;
  const exited = new Promise<ExitCode>((resolve) => (exit = resolve));
  let failed = false;
  const stateMachine = new KvStore({ history: { ...DEFAULT_HISTORY, maxChanges: settings.watchHistory } });
  if (restored.snapshot) stateMachine.restore(restored.snapshot.data, restored.snapshot.meta.index);
  const node = new RaftNode({
    id: settings.nodeId,
    heartbeatMs: settings.heartbeatMs,
    electionTimeoutMs: settings.electionTimeoutMs,
    restored,
    store,
    peers,
    stateMachine,
    logger,
    snapshotEntries: settings.snapshotEntries,
    leaseDriftRatio: settings.leaseDriftRatio,
    // Transfers the leader picks the target of go to a member that stays, as the replicas were last read.
    departing: (id: NodeId): boolean => {
      const desired = kube?.scale.latest() ?? null;
      return desired !== null && isScaledAway(id, desired);
    },
    onFatal: (err, kind) => {
      failed = true;
      logger.fatal({ err }, kind === 'storage' ? 'storage failed: stopping' : 'internal invariant broken: stopping');
      exit(kind === 'storage' ? ExitCode.badData : ExitCode.failure);
    },
  });

  // Peers reachable by id: the configuration, the static list and what DNS shows, so a node not
  // yet in the configuration can still answer the leader that is adding it.
  let discovered: readonly Peer[] = [];
  // The streams kept open to the other voters open once this member's own peer server listens. A
  // member's stream makes each peer connect back at once (PeerLink.peerOpenedStream); opened before
  // the rehearsal and the listen, that connection was refused, and the peer's link then came back
  // only at its next retry, up to ~0.8 s after this member was up. A leader dying in that window
  // lost the hurried election (reportPeerDead): the vote requests to this member were dropped.
  let serving = false;
  const updatePeers = (): void => {
    const urls = new Map<NodeId, string>();
    for (const p of settings.peers) urls.set(p.id, p.url);
    for (const p of discovered) urls.set(p.id, p.url);
    for (const m of node.members()) urls.set(m.id, m.url);
    urls.delete(settings.nodeId);
    peers.setPeers(urls);
    // Any voter may be the next leader, or its first follower: their streams are open beforehand.
    peers.keepOpen(serving ? node.members().filter((m) => m.voter && m.id !== settings.nodeId).map((m) => m.id) : []);
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
    onProposal: (result, seconds) => metrics.observeProposal(result, seconds),
    onSnapshot: (seconds, kind) => metrics.observeSnapshot(seconds, kind),
    onAppHealth: (health) => appMetrics.setAppHealth(health),
    onLeadershipTransfer: (outcome) => {
      appMetrics.onLeadershipTransfer(outcome.reason, outcome.ok);
      if (outcome.reason === 'app_unhealthy' && outcome.ok) {
        kube?.recordEvent('LeadershipMovedAppUnhealthy', `the application beside ${outcome.from} is unhealthy (${settings.appHealthUrl ?? ''}): leadership moved to ${outcome.to} (term ${outcome.term})`, 'Warning', outcome.term);
      }
    },
  });
  metrics.syncStatus(node.status());
  metrics.readIndicesFrom(() => {
    const s = node.status();
    return { commitIndex: s.commitIndex, appliedIndex: s.appliedIndex, lastLogIndex: s.lastLogIndex };
  });

  // V8 warms the code a member runs in a failover now, not during the first one (rehearsal.ts).
  if (settings.rehearsal) {
    const rehearsal = await rehearse({ budgetMs: REHEARSAL_BUDGET_MS });
    const report = { ...rehearsal, elapsedMs: Math.round(rehearsal.elapsedMs) };
    if (rehearsal.completed) logger.debug(report, 'start-up rehearsal done');
    else logger.info(report, `start-up rehearsal cut short (${rehearsal.error ?? 'unknown'}); starting anyway`);
  }

  const apiShutdown = new AbortController();
  let servers: Servers;
  try {
    servers = await startServers({
      settings,
      node,
      metrics,
      logger,
      security,
      identity,
      memberUrl: (id) => peers.urlOf(id),
      snapshot: snapshotSource(node, stateMachine, identity, settings.requestTimeoutMs),
      healthy: () => !failed && store.error === null,
      api: {
        watchLimits: { maxWatchers: settings.watchMaxWatchers, maxBuffered: settings.watchMaxBuffered, progressMs: 10_000 },
        watchHooks: {
          onWatchers: (kind, count) => appMetrics.setWatchers(kind, count),
          onEventsSent: (count) => appMetrics.onWatchEventsSent(count),
          onDropped: (reason) => appMetrics.onWatchDropped(reason),
        },
        shutdown: apiShutdown.signal,
      },
    });
  } catch (err) {
    const message = err instanceof ListenError ? err.message : `cannot start servers: ${err instanceof Error ? err.message : String(err)}`;
    logger.fatal({ err }, message);
    process.stderr.write(`raftlet: ${message}\n`);
    await Promise.allSettled([peers.close(), store.close()]);
    security.close();
    return err instanceof ListenError ? ExitCode.badConfig : ExitCode.failure;
  }
  // Start-up's garbage goes now, not in a full collection a second from now, maybe in a hand-off.
  const collected = collectStartupGarbage();
  if (collected !== null) {
    const mb = (bytes: number): number => Math.round(bytes / 1e5) / 10;
    logger.debug({ heapUsedMb: [mb(collected.usedBefore), mb(collected.usedAfter)], pauseMs: Math.round(collected.pauseMs) }, 'collected start-up garbage');
  }
  logger.info(
    { peer: settings.peerListen, api: settings.apiListen, metrics: settings.metricsListen, advertise: settings.advertiseUrl },
    `raftlet ${settings.nodeId} started`,
  );
  serving = true;
  updatePeers();
  node.start();
  node.campaignIfAlone();
  publishRole();

  const stops: (() => void)[] = [];
  if (settings.appHealthUrl !== null) {
    stops.push(startAppHealthProbe({
      url: settings.appHealthUrl,
      intervalMs: settings.appHealthIntervalMs,
      threshold: settings.appHealthThreshold,
      onHealth: (health) => node.setAppHealth(health),
      logger: logger.child({ component: 'app-health' }),
    }));
  }
  const onBootstrapStorageFailure = (err: unknown): void => {
    node.stop().catch(() => undefined);
    failed = true;
    logger.fatal({ err }, 'storage failed while bootstrapping');
    exit(ExitCode.badData);
  };
  const discovery: Discovery | null = await startDiscovery({
    settings,
    dnsServer,
    node,
    store,
    peers,
    identity,
    metrics,
    logger,
    onPeers: (found) => {
      discovered = found;
      updatePeers();
    },
    onStorageFailure: onBootstrapStorageFailure,
  });
  if (settings.membersFrom === 'peers' && node.isPristine()) {
    const bootstrapper = new Bootstrapper({
      selfId: settings.nodeId,
      node,
      store,
      peers,
      identity,
      electionTimeoutMs: settings.electionTimeoutMs,
      logger,
      plan: () => ({ decision: staticPlan(settings.peers), peers: settings.peers }),
      message: 'bootstrapped a new cluster',
      peersBootstrapToo: true,
      clusterId: () => staticClusterId(settings.peers),
      onBootstrapped: updatePeers,
      onStorageFailure: onBootstrapStorageFailure,
    });
    void bootstrapper.attempt();
    stops.push(() => bootstrapper.stop());
  }
  if (discovery) {
    stops.push(() => discovery.stop());
    stops.push(
      startReconciler({ selfId: settings.nodeId, node, discovery: discovery.srv, scale: kube?.scale ?? null, electionTimeoutMs: settings.electionTimeoutMs, logger }),
    );
  }

  // Replication lag per follower, as the leader sees it.
  const lagTimer = setInterval(() => {
    const s = node.raftStatus();
    const lag = new Map<NodeId, number>();
    if (s.role === 'leader') for (const p of s.progress) lag.set(p.id, Math.max(0, s.lastLogIndex - p.matchIndex));
    metrics.setFollowerLag(lag);
  }, 1000);
  stops.push(() => clearInterval(lagTimer));

  const shutdown = async (signal: string): Promise<void> => {
    const startedAt = steadyNow();
    const ledAtStop = node.raftStatus().role === 'leader';
    // Scale-down or restart? Asked of the API at once.
    const verdict = signal === 'SIGTERM' && kube !== null ? kube.scale.verdict(AbortSignal.timeout(3000)) : null;
    // The hand-off starts before anything else: without Kubernetes, TimeoutNow is on its way before
    // this function first waits (thesis §3.10); the rest of the shutdown runs alongside.
    const handedOver = handOverBeforeStopping({
      node, verdict, latestDesired: () => kube?.scale.latest() ?? null, electionTimeoutMs: settings.electionTimeoutMs, logger,
    });
    // The transport writes what the core emitted at the end of this turn: one turn of the loop
    // before the logging and the API drain below, so the TimeoutNow is on the wire before them.
    await new Promise<void>((resolve) => setImmediate(resolve));
    // The successor's election and its first commits wait for this member: its vote, then its
    // acknowledgements. It is warm; the other voter may have been restarted a moment ago (a rolling
    // update) and run its code for the first time. So until the successor has committed an entry of
    // its own term here, this member does nothing but Raft, at full priority: the rest of the
    // shutdown (logging, the API drain) waits. Then it steps back (yield-cpu.ts) so its shutdown
    // takes no CPU from the new leader. A hand-off that failed goes on at once: this member still
    // leads, or it stepped down for a target whose process is gone and no successor is coming.
    if (ledAtStop) {
      const successor = node.successorCommitted(steadyNow() + 2 * settings.electionTimeoutMs).catch(() => undefined);
      const successorKnown = (): boolean => {
        const leader = node.raftStatus().leader;
        return leader !== null && leader !== node.id;
      };
      await Promise.race([successor, handedOver.then(() => (successorKnown() ? successor : undefined))]);
      yieldCpu();
    }
    logger.info({ signal }, 'stopping');
    // No new client requests; those in flight finish below (their entries may commit under the
    // next leader, which this node then applies). Watches end now: they would never finish.
    apiShutdown.abort();
    const apiDrained = drainServer(servers.api, Math.min(5000, settings.requestTimeoutMs));
    await handedOver;
    publishRole();
    if (verdict !== null) {
      await leaveIfScaledAway({ node, peers, verdict: await verdict, startedAt, electionTimeoutMs: settings.electionTimeoutMs, logger });
      publishRole();
    }
    await apiDrained;
    exit(ExitCode.ok);
  };
  if (signals.received !== null) logger.info({ signal: signals.received }, 'the stop signal came during the start: stopping now that the start is done');
  signals.onStop((signal) => void shutdown(signal));

  const code = await exited;
  signals.close();
  for (const stop of stops) stop();
  await node.stop();
  if (kube) {
    await kube.flush(2000).catch(() => false);
    await kube.stop().catch(() => undefined);
  }
  await Promise.allSettled([servers.peer.close(), closeServer(servers.api), servers.metrics.close(), peers.close()]);
  security.close();
  if (code !== ExitCode.badData) await store.close().catch(() => undefined);
  logger.info({ code }, 'stopped');
  return code;
}
