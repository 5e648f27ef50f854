// DNS discovery (SRV records of the headless Service) and the bootstrap it may lead to. A pristine
// node forms a new cluster only when decideBootstrap says so (it is the seed: the lowest ordinal
// of the bootstrap set) and every discovered peer answered that it belongs to no cluster; any other
// pristine node waits until a leader adds it (and catches it up by snapshot if the log is
// compacted), so a member that lost its data never bootstraps next to its old cluster.
import type { Logger } from 'pino';
import type { Settings } from '../config/settings.ts';
import { decideBootstrap, judgeProbes, type PeerProbe, type ProbeVerdict } from '../kubernetes/bootstrap.ts';
import type { Peer, SrvDiscovery } from '../kubernetes/discovery.ts';
import type { RaftletMetrics } from '../metrics/metrics.ts';
import type { RaftNode } from '../node/node.ts';
import { bootstrapState } from '../raft/raft.ts';
import type { WalStore } from '../storage/index.ts';
import type { PeerClient } from '../transport/index.ts';
import type { FileClusterIdentity } from './cluster-id.ts';

/** How often a pristine node looks again while it waits (for peers to answer, or to be added). */
const RETRY_MS = 1000;

export interface DiscoveryOptions {
  readonly settings: Settings;
  readonly dnsServer: string | undefined;
  readonly node: RaftNode;
  readonly store: WalStore;
  readonly peers: PeerClient;
  readonly identity: FileClusterIdentity;
  readonly metrics: RaftletMetrics;
  readonly logger: Logger;
  /** Called with every new set of discovered peers (after a bootstrap, too). */
  readonly onPeers: (found: readonly Peer[]) => void;
  /** Storage failed while writing the bootstrap configuration. */
  readonly onStorageFailure: (err: unknown) => void;
}

export interface Discovery {
  readonly srv: SrvDiscovery;
  stop(): void;
}

export async function startDiscovery(options: DiscoveryOptions): Promise<Discovery | null> {
  const { settings, node, logger } = options;
  if (settings.membersFrom !== 'dns' || !settings.discoveryService) return null;
  const { SrvDiscovery } = await import('../kubernetes/discovery.ts');
  const discovery: SrvDiscovery = new SrvDiscovery({
    service: settings.discoveryService,
    dnsServer: options.dnsServer,
    expected: settings.bootstrapExpect,
    logger: logger.child({ component: 'discovery' }),
    onResult: (result) => options.metrics.onDiscovery(result, discovery.current()?.length),
  });
  let discovered: readonly Peer[] = [];
  let busy = false;
  let stopped = false;
  let clusterSeen = false;
  let lastReason = '';
  const say = (reason: string): void => {
    if (reason !== lastReason) logger.info(reason);
    lastReason = reason;
  };

  const maybeBootstrap = async (): Promise<void> => {
    if (busy || stopped || !node.isPristine()) return;
    const decision = decideBootstrap({ selfId: settings.nodeId, discovered, expect: settings.bootstrapExpect, hasData: false, clusterSeen, seedOnly: true });
    if (decision.kind === 'wait') {
      say(decision.reason);
      return;
    }
    busy = true;
    try {
      const verdict = await probe(options.peers, discovered.filter((p) => p.id !== settings.nodeId), settings.electionTimeoutMs);
      if (stopped || !node.isPristine()) return;
      switch (verdict.kind) {
        case 'exists':
          clusterSeen = true;
          say(verdict.reason);
          return;
        case 'unknown':
          say(verdict.reason);
          return;
        case 'none':
          break;
        default: {
          const never: never = verdict;
          return never;
        }
      }
      const state = bootstrapState(decision.members);
      try {
        options.identity.create();
        await options.store.save({ entries: state.entries, hardState: state.hardState });
      } catch (err) {
        options.onStorageFailure(err);
        return;
      }
      if (!node.isPristine()) return; // a leader reached us meanwhile; its log wins (entry 1 is the same)
      node.bootstrap(state);
      options.onPeers(discovered);
      logger.info(
        { members: decision.members.map((m) => m.id), clusterId: options.identity.current() },
        'bootstrapped a new cluster from DNS discovery',
      );
    } finally {
      busy = false;
    }
  };
  discovery.onChange((found) => {
    discovered = found;
    options.onPeers(found);
    void maybeBootstrap();
  });
  // Peers that did not answer yet may answer later, and DNS may not change meanwhile.
  const retry = setInterval(() => void maybeBootstrap(), RETRY_MS);
  discovery.start();
  return {
    srv: discovery,
    stop: () => {
      stopped = true;
      clearInterval(retry);
      discovery.stop();
    },
  };
}

/** Asks every discovered peer (in parallel) whether it belongs to a cluster. */
async function probe(peers: PeerClient, others: readonly Peer[], timeoutMs: number): Promise<ProbeVerdict> {
  const deadline = Date.now() + Math.max(1000, Math.min(5000, timeoutMs * 2));
  const answers = await Promise.all(
    others.map(async (peer): Promise<PeerProbe> => {
      try {
        const s = await peers.status(peer.url, deadline);
        return { id: peer.id, answered: true, members: s.members.length, leader: s.leader, term: s.term };
      } catch (err) {
        return { id: peer.id, answered: false, error: err instanceof Error ? err.message : String(err) };
      }
    }),
  );
  return judgeProbes(answers);
}
