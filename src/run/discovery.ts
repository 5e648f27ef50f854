// DNS discovery (SRV records of the headless Service) and the bootstrap it may lead to: a pristine
// node forms a new cluster only when decideBootstrap names it the seed (the lowest ordinal of the
// bootstrap set) and the peers confirm that no cluster exists (bootstrap.ts); any other pristine
// node waits until a leader adds it.
import type { Logger } from 'pino';
import type { Settings } from '../config/settings.ts';
import { decideBootstrap } from '../kubernetes/bootstrap.ts';
import type { Peer, SrvDiscovery } from '../kubernetes/discovery.ts';
import type { RaftletMetrics } from '../metrics/metrics.ts';
import type { RaftNode } from '../node/node.ts';
import type { WalStore } from '../storage/index.ts';
import type { PeerClient } from '../transport/index.ts';
import { Bootstrapper } from './bootstrap.ts';
import { newClusterId, type FileClusterIdentity } from './cluster-id.ts';

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
  const bootstrapper = new Bootstrapper({
    selfId: settings.nodeId,
    node,
    store: options.store,
    peers: options.peers,
    identity: options.identity,
    electionTimeoutMs: settings.electionTimeoutMs,
    logger,
    plan: () => ({
      decision: decideBootstrap({ selfId: settings.nodeId, discovered, expect: settings.bootstrapExpect, hasData: false, seedOnly: true }),
      peers: discovered,
    }),
    message: 'bootstrapped a new cluster from DNS discovery',
    peersBootstrapToo: false,
    clusterId: newClusterId,
    onBootstrapped: () => options.onPeers(discovered),
    onStorageFailure: options.onStorageFailure,
  });
  discovery.onChange((found) => {
    discovered = found;
    options.onPeers(found);
    void bootstrapper.attempt();
  });
  discovery.start();
  return {
    srv: discovery,
    stop: () => {
      bootstrapper.stop();
      discovery.stop();
    },
  };
}
