// DNS discovery (SRV records of the headless Service) and the bootstrap it may lead to: a pristine
// node forms a new cluster only when decideBootstrap says so; otherwise an existing leader adds it.
import type { Logger } from 'pino';
import type { Settings } from '../config/settings.ts';
import { decideBootstrap } from '../kubernetes/bootstrap.ts';
import type { Peer, SrvDiscovery } from '../kubernetes/discovery.ts';
import type { RaftletMetrics } from '../metrics/metrics.ts';
import type { RaftNode } from '../node/node.ts';
import { bootstrapState } from '../raft/raft.ts';
import type { WalStore } from '../storage/index.ts';

export interface DiscoveryOptions {
  readonly settings: Settings;
  readonly dnsServer: string | undefined;
  readonly node: RaftNode;
  readonly store: WalStore;
  readonly metrics: RaftletMetrics;
  readonly logger: Logger;
  /** Called with every new set of discovered peers (after a bootstrap, too). */
  readonly onPeers: (found: readonly Peer[]) => void;
  /** Storage failed while writing the bootstrap configuration. */
  readonly onStorageFailure: (err: unknown) => void;
}

export async function startDiscovery(options: DiscoveryOptions): Promise<SrvDiscovery | null> {
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
      await options.store.save({ entries: state.entries, hardState: state.hardState });
    } catch (err) {
      options.onStorageFailure(err);
      return;
    }
    if (!node.isPristine()) return; // a leader reached us meanwhile; its log wins (entry 1 is the same)
    node.bootstrap(state);
    options.onPeers(discovered);
    logger.info({ members: decision.members.map((m) => m.id) }, 'bootstrapped a new cluster from DNS discovery');
  };
  discovery.onChange((found) => {
    discovered = found;
    options.onPeers(found);
    void maybeBootstrap();
  });
  discovery.start();
  return discovery;
}
