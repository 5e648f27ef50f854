// Writing a new cluster's first configuration, for a pristine node that its plan names the seed
// (the lowest ordinal or id of the members: one writer, hence one cluster id). Before writing,
// it asks the peers over the peer status route whether a cluster exists already; if one does
// (a member that lost its data, restarted next to its cluster), it never bootstraps and waits for
// that cluster's leader to add it and catch it up, by snapshot if the log was compacted.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { judgeProbes, type BootstrapDecision, type PeerProbe, type ProbeVerdict } from '../kubernetes/bootstrap.ts';
import type { Peer } from '../kubernetes/discovery.ts';
import { compareMemberIds } from '../kubernetes/ordinal.ts';
import type { RaftNode } from '../node/node.ts';
import { bootstrapState } from '../raft/raft.ts';
import type { NodeId } from '../raft/types.ts';
import type { WalStore } from '../storage/index.ts';
import type { PeerClient } from '../transport/index.ts';
import type { FileClusterIdentity } from './cluster-id.ts';
import { steadyNow } from '../util/steady-clock.ts';

/** How often a pristine node looks again while it waits (for peers to answer, or to be added). */
export const BOOTSTRAP_RETRY_MS = 1000;

export interface BootstrapperOptions {
  readonly selfId: NodeId;
  readonly node: RaftNode;
  readonly store: WalStore;
  readonly peers: PeerClient;
  readonly identity: FileClusterIdentity;
  readonly electionTimeoutMs: number;
  readonly logger: Logger;
  /** The plan for now (who would be members, and whether this node writes them), and the peers to ask. */
  readonly plan: () => { readonly decision: BootstrapDecision; readonly peers: readonly Peer[] };
  /** The log line of a bootstrap; tests count it. */
  readonly message: string;
  /** Every member of the plan bootstraps (a static list), not only its seed: then a peer that has
   * written just the first entry is forming the same cluster (judgeProbes). */
  readonly peersBootstrapToo: boolean;
  /** The new cluster's id: random for a seed-only bootstrap, shared for a static list. */
  readonly clusterId: () => string;
  readonly onBootstrapped: () => void;
  /** Storage failed while writing the first configuration. */
  readonly onStorageFailure: (err: unknown) => void;
}

/** RAFTLET_PEERS: every member writes the same first configuration (the whole list). */
export function staticPlan(peers: readonly Peer[]): BootstrapDecision {
  return { kind: 'bootstrap', members: [...peers].sort((a, b) => compareMemberIds(a.id, b.id)).map((p) => ({ id: p.id, url: p.url, voter: true })) };
}

/**
 * The cluster id of a static list: every member writes the first configuration on its own, so the
 * id must be a function of what they share, the list itself. Two clusters with the same list share
 * it (a restore still makes a new, random one).
 */
export function staticClusterId(peers: readonly Peer[]): string {
  const lines = [...peers].sort((a, b) => compareMemberIds(a.id, b.id)).map((p) => `${p.id}=${p.url}`);
  return createHash('sha256').update(`raftlet static cluster\n${lines.join('\n')}`).digest('hex').slice(0, 32);
}

export class Bootstrapper {
  private readonly options: BootstrapperOptions;
  private busy = false;
  private stopped = false;
  private clusterSeen = false;
  private lastReason = '';
  private readonly timer: NodeJS.Timeout;

  constructor(options: BootstrapperOptions) {
    this.options = options;
    // Peers that did not answer yet may answer later, and DNS may not change meanwhile.
    this.timer = setInterval(() => void this.attempt(), BOOTSTRAP_RETRY_MS);
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  async attempt(): Promise<void> {
    const { node, logger } = this.options;
    if (this.busy || this.stopped || !node.isPristine()) {
      if (!node.isPristine()) clearInterval(this.timer);
      return;
    }
    const { decision, peers } = this.options.plan();
    if (this.clusterSeen) return;
    if (decision.kind === 'wait') {
      this.say(decision.reason);
      return;
    }
    this.busy = true;
    try {
      const others = peers.filter((p) => p.id !== this.options.selfId);
      const verdict = await this.probe(others, decision.members.map((m) => m.id));
      if (this.stopped || !node.isPristine()) return;
      switch (verdict.kind) {
        case 'exists':
          this.clusterSeen = true;
          this.say(verdict.reason);
          return;
        case 'unknown':
          this.say(verdict.reason);
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
        this.options.identity.create(this.options.clusterId());
        await this.options.store.save({ entries: state.entries, hardState: state.hardState });
      } catch (err) {
        this.options.onStorageFailure(err);
        return;
      }
      if (!node.isPristine()) return; // a leader reached us meanwhile; its log wins (entry 1 is the same)
      node.bootstrap(state);
      node.campaignIfAlone();
      clearInterval(this.timer);
      this.options.onBootstrapped();
      logger.info({ members: decision.members.map((m) => m.id), clusterId: this.options.identity.current() }, this.options.message);
    } finally {
      this.busy = false;
    }
  }

  private say(reason: string): void {
    if (reason !== this.lastReason) this.options.logger.info(reason);
    this.lastReason = reason;
  }

  /** Asks every peer (in parallel) whether it belongs to a cluster. */
  private async probe(others: readonly Peer[], memberIds: readonly NodeId[]): Promise<ProbeVerdict> {
    const deadline = steadyNow() + Math.max(1000, Math.min(5000, this.options.electionTimeoutMs * 2));
    const answers = await Promise.all(
      others.map(async (peer): Promise<PeerProbe> => {
        try {
          const s = await this.options.peers.status(peer.url, deadline);
          return { id: peer.id, answered: true, members: s.members.length, leader: s.leader, term: s.term, lastLogIndex: s.lastLogIndex };
        } catch (err) {
          return { id: peer.id, answered: false, error: err instanceof Error ? err.message : String(err) };
        }
      }),
    );
    return judgeProbes(answers, memberIds, this.options.selfId, { peersBootstrapToo: this.options.peersBootstrapToo });
  }
}
