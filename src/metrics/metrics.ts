// Prometheus metrics of one raftlet node (SPEC §6). The runtime pushes what it observes into
// RaftletMetrics; the metrics server renders the registry. Every label value is bounded: fixed
// enumerations below, or member ids (peers), whose series are removed when a member leaves.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Membership, NodeId, RaftEvent, Role } from '../raft/types.ts';

/** The outcome a client saw for one write (PUT/DELETE), counted once by the node the client asked.
 * precondition_failed is a normal client outcome (a lost compare-and-set), not a failure of raftlet. */
export type ProposalResult = 'ok' | 'precondition_failed' | 'no_leader' | 'timeout' | 'error';
export const PROPOSAL_RESULTS: readonly ProposalResult[] = ['ok', 'precondition_failed', 'no_leader', 'timeout', 'error'];

/** One role-label write attempt on a pod (the labeler's outcomes): ok = patched; conflict = 409, the
 * pod changed, read again; fenced = skipped, the pod carries a higher raftlet.io/term; forbidden =
 * 403, RBAC is missing; throttled = 429; not_found = the pod does not exist; error = anything else. */
export type LabelUpdateResult = 'ok' | 'conflict' | 'fenced' | 'forbidden' | 'throttled' | 'not_found' | 'error';
export const LABEL_UPDATE_RESULTS: readonly LabelUpdateResult[] = ['ok', 'conflict', 'fenced', 'forbidden', 'throttled', 'not_found', 'error'];

/** One DNS discovery lookup: ok = at least one member found; empty = answered without members. */
export type DiscoveryResult = 'ok' | 'empty' | 'error';
export const DISCOVERY_RESULTS: readonly DiscoveryResult[] = ['ok', 'empty', 'error'];

/** One outgoing peer HTTP call, as the transport makes them: messages = a batch of Raft messages;
 * snapshot = InstallSnapshot; propose, readIndex, transfer, status = a client request forwarded to
 * the leader (SPEC §4: any node accepts every request). */
export type RpcKind = 'messages' | 'snapshot' | 'propose' | 'readIndex' | 'transfer' | 'status';
export const RPC_KINDS: readonly RpcKind[] = ['messages', 'snapshot', 'propose', 'readIndex', 'transfer', 'status'];

/** Why the transport dropped a message to a peer without delivering it. */
export type PeerDropReason = 'queue_full' | 'backoff' | 'failed' | 'unknown_peer' | 'bad_url' | 'invalid' | 'closed';
const PEER_DROP_REASONS: ReadonlySet<string> = new Set<PeerDropReason>(['queue_full', 'backoff', 'failed', 'unknown_peer', 'bad_url', 'invalid', 'closed']);

/** What an fsync made durable: WAL appends, directory entries, snapshot files, small metadata files, a preallocated segment. */
export type FsyncKind = 'wal' | 'dir' | 'snapshot' | 'meta' | 'segment';
const FSYNC_KINDS: readonly FsyncKind[] = ['wal', 'dir', 'snapshot', 'meta', 'segment'];

/** create = this node compacted its log into a snapshot; install = it received one from the leader. */
export type SnapshotKind = 'create' | 'install';

/** The roles SPEC §6 exports; a pre-candidate is reported as a candidate. */
export type ExportedRole = 'leader' | 'follower' | 'candidate';
const EXPORTED_ROLES: readonly ExportedRole[] = ['leader', 'follower', 'candidate'];

export function exportedRole(role: Role): ExportedRole {
  switch (role) {
    case 'leader': return 'leader';
    case 'follower': return 'follower';
    case 'candidate':
    case 'precandidate': return 'candidate';
    default: {
      const unknown: never = role;
      throw new Error(`unknown role ${String(unknown)}`);
    }
  }
}

// Latencies on a LAN are milliseconds; the upper buckets catch stalls up to the request timeout.
const PROPOSAL_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const RPC_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
// fsync on SSDs is tens of microseconds to a few ms; RaftletFsyncSlow alerts at 0.5 s, a bucket edge.
const FSYNC_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const SNAPSHOT_BUCKETS = [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export interface Indices {
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastLogIndex: number;
}

export interface RaftletMetricsOptions {
  /** prom-client's process_* and nodejs_* metrics; default true. */
  readonly defaultMetrics?: boolean;
}

interface CounterChild {
  inc(value?: number): void;
}

/**
 * The metrics of one node, in their own Registry (several nodes may share a process in
 * `raftlet local`). Methods are cheap enough for the hot path: no allocation for unlabeled
 * updates, label children cached for fixed label values.
 *
 * "Leader change" (raftlet_leader_changes_total): incremented each time this node learns of a
 * leader for a (leader id, term) pair other than the last one it learned of. Raft allows at most
 * one leader per term, so this counts the terms in which this node saw a leader: a new election
 * won by anyone (including the same node again) or a leadership transfer. Losing sight of a leader
 * and finding the same one again in the same term is not a change. Every member counts the same
 * changes, so `max` over the members of a cluster is the cluster's number of leader changes; the
 * first leader a freshly started node learns of counts once, so a restart adds one.
 */
export class RaftletMetrics {
  readonly registry: Registry;

  readonly #term: Gauge;
  readonly #isLeader: Gauge;
  readonly #hasLeader: Gauge;
  readonly #role: Gauge;
  readonly #leaderChanges: Counter;
  readonly #electionsStarted: Counter;
  readonly #electionsWon: Counter;
  readonly #commitIndex: Gauge;
  readonly #appliedIndex: Gauge;
  readonly #lastLogIndex: Gauge;
  readonly #proposals: Counter;
  readonly #proposalDuration: Histogram;
  readonly #labelUpdates: Counter;
  readonly #followerLag: Gauge;
  readonly #rpcDuration: Histogram;
  readonly #rpcFailures: Counter;
  readonly #fsyncDuration: Histogram;
  readonly #snapshots: Counter;
  readonly #snapshotDuration: Histogram;
  readonly #discoveryLookups: Counter;
  readonly #discoveryMembers: Gauge;
  readonly #peerDrops: Counter;
  readonly #members: Gauge;

  readonly #proposalChildren: Map<ProposalResult, CounterChild>;
  readonly #labelUpdateChildren: Map<LabelUpdateResult, CounterChild>;
  readonly #discoveryChildren: Map<DiscoveryResult, CounterChild>;
  readonly #rpcDurationChildren = new Map<RpcKind, { observe(value: number): void }>();
  readonly #rpcFailureChildren: Map<RpcKind, CounterChild>;
  readonly #fsyncChildren = new Map<FsyncKind, { observe(value: number): void }>();

  // What this node believes, to derive the 0/1 gauges and to count leader changes.
  #currentTerm = 0;
  #currentRole: ExportedRole = 'follower';
  #leader: NodeId | null = null;
  #leaderTerm = -1;
  #lastSeenLeader: NodeId | null = null;
  #lastSeenLeaderTerm = -1;
  #lagPeers = new Set<NodeId>();
  #dropPeers = new Set<NodeId>();
  #memberIds: ReadonlySet<NodeId> | null = null;
  #indicesSource: (() => Indices) | null = null;
  #lastCommitIndex = -1;
  #lastAppliedIndex = -1;
  #seenLastLogIndex = -1;

  constructor(options: RaftletMetricsOptions = {}) {
    const registry = new Registry();
    this.registry = registry;
    const registers = [registry];

    this.#term = new Gauge({ name: 'raftlet_term', help: 'Current Raft term of this node.', registers });
    this.#isLeader = new Gauge({ name: 'raftlet_is_leader', help: '1 if this node is the Raft leader, else 0.', registers });
    this.#hasLeader = new Gauge({
      name: 'raftlet_has_leader',
      help: '1 if this node knows a leader in its current term, else 0.',
      registers,
    });
    this.#role = new Gauge({
      name: 'raftlet_role',
      help: 'Current Raft role of this node: 1 for its role (leader, follower or candidate; a pre-candidate counts as candidate), 0 for the others.',
      labelNames: ['role'],
      registers,
    });
    this.#leaderChanges = new Counter({
      name: 'raftlet_leader_changes_total',
      help: 'Leaders this node has learned of: +1 for each (leader, term) pair different from the previous one.',
      registers,
    });
    this.#electionsStarted = new Counter({
      name: 'raftlet_elections_started_total',
      help: 'Elections this node has started as a candidate.',
      registers,
    });
    this.#electionsWon = new Counter({ name: 'raftlet_elections_won_total', help: 'Elections this node has won.', registers });
    // Read at scrape time from readIndicesFrom's source: they move with every write, and setting a
    // gauge costs prom-client a label lookup, paid per forwarded write on a follower otherwise.
    const collect = (): void => this.#collectIndices();
    this.#commitIndex = new Gauge({ name: 'raftlet_commit_index', help: 'Highest log index this node knows to be committed.', registers, collect });
    this.#appliedIndex = new Gauge({
      name: 'raftlet_applied_index',
      help: 'Highest log index applied to the key-value state machine of this node.',
      registers,
      collect,
    });
    this.#lastLogIndex = new Gauge({ name: 'raftlet_last_log_index', help: 'Index of the last entry in the log of this node.', registers, collect });
    this.#proposals = new Counter({
      name: 'raftlet_proposals_total',
      help: 'Client writes answered by this node, by outcome (ok, precondition_failed, no_leader, timeout, error).',
      labelNames: ['result'],
      registers,
    });
    this.#proposalDuration = new Histogram({
      name: 'raftlet_proposal_duration_seconds',
      help: 'Time from receiving a client write to answering it (commit and apply on this node), all outcomes.',
      buckets: PROPOSAL_BUCKETS,
      registers,
    });
    this.#labelUpdates = new Counter({
      name: 'raftlet_label_updates_total',
      help: 'Role-label writes to member pods, by result (ok, conflict, fenced, error).',
      labelNames: ['result'],
      registers,
    });
    this.#followerLag = new Gauge({
      name: 'raftlet_follower_lag_entries',
      help: 'Leader only: entries a member is behind the leader (leader last log index minus the member match index).',
      labelNames: ['peer'],
      registers,
    });
    this.#rpcDuration = new Histogram({
      name: 'raftlet_rpc_duration_seconds',
      help: 'Duration of outgoing peer calls, by kind (Raft message kinds and forwarded client requests).',
      labelNames: ['kind'],
      buckets: RPC_BUCKETS,
      registers,
    });
    this.#rpcFailures = new Counter({
      name: 'raftlet_rpc_failures_total',
      help: 'Outgoing peer calls that failed (network error, timeout or error status), by kind.',
      labelNames: ['kind'],
      registers,
    });
    this.#fsyncDuration = new Histogram({
      name: 'raftlet_fsync_duration_seconds',
      help: 'Duration of fsync calls, by kind (wal = log appends with term and vote, meta = data directory metadata, dir = directory entries, snapshot = snapshot files, segment = preallocating the next WAL segment in the background).',
      labelNames: ['kind'],
      buckets: FSYNC_BUCKETS,
      registers,
    });
    this.#snapshots = new Counter({
      name: 'raftlet_snapshots_total',
      help: 'Snapshots created (log compaction) or installed (sent by the leader), by kind.',
      labelNames: ['kind'],
      registers,
    });
    this.#snapshotDuration = new Histogram({
      name: 'raftlet_snapshot_duration_seconds',
      help: 'Time to create or install a snapshot, by kind.',
      labelNames: ['kind'],
      buckets: SNAPSHOT_BUCKETS,
      registers,
    });
    this.#discoveryLookups = new Counter({
      name: 'raftlet_discovery_lookups_total',
      help: 'DNS discovery lookups of the headless Service, by result (ok, empty, error).',
      labelNames: ['result'],
      registers,
    });
    this.#discoveryMembers = new Gauge({
      name: 'raftlet_discovery_members',
      help: 'Members found by the last DNS discovery lookup that answered.',
      registers,
    });
    this.#peerDrops = new Counter({
      name: 'raftlet_peer_messages_dropped_total',
      help: 'Messages to a member dropped undelivered, by peer id and reason (queue_full, backoff, failed, bad_url, invalid, closed).',
      labelNames: ['peer', 'reason'],
      registers,
    });
    this.#members = new Gauge({
      name: 'raftlet_members',
      help: 'Members in the configuration this node uses, by voter (true = voter, false = learner).',
      labelNames: ['voter'],
      registers,
    });

    // Series with fixed label values exist from the start, so rate() and increase() see their
    // first increment instead of a series appearing at 1.
    this.#proposalChildren = childrenOf(this.#proposals, PROPOSAL_RESULTS);
    this.#labelUpdateChildren = childrenOf(this.#labelUpdates, LABEL_UPDATE_RESULTS);
    this.#discoveryChildren = childrenOf(this.#discoveryLookups, DISCOVERY_RESULTS);
    this.#rpcFailureChildren = childrenOf(this.#rpcFailures, RPC_KINDS);
    for (const kind of ['create', 'install'] as const) this.#snapshots.labels(kind).inc(0);
    for (const kind of FSYNC_KINDS) this.#fsyncChildren.set(kind, this.#fsyncDuration.labels(kind));
    // The WAL's buckets exist from the start, so its latency panel and alert have series at once.
    this.#fsyncDuration.zero({ kind: 'wal' });
    this.#members.labels('true').set(0);
    this.#members.labels('false').set(0);
    this.#term.set(0);
    this.#discoveryMembers.set(0);
    this.#publishLeadership();
    this.setIndices({ commitIndex: 0, appliedIndex: 0, lastLogIndex: 0 });

    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  }

  /** Feed every event of every Ready batch here, in order. */
  onRaftEvent(ev: RaftEvent): void {
    switch (ev.kind) {
      case 'termChanged':
        this.#observeTerm(ev.term);
        break;
      case 'roleChanged':
        this.#observeTerm(ev.term);
        this.#currentRole = exportedRole(ev.role);
        // Lag is the leader's view; a former leader's numbers would only go stale.
        if (this.#currentRole !== 'leader') this.setFollowerLag(EMPTY_LAG);
        break;
      case 'leaderChanged':
        this.#observeTerm(ev.term);
        this.#leader = ev.leader;
        this.#leaderTerm = ev.term;
        if (ev.leader !== null && (ev.leader !== this.#lastSeenLeader || ev.term !== this.#lastSeenLeaderTerm)) {
          this.#lastSeenLeader = ev.leader;
          this.#lastSeenLeaderTerm = ev.term;
          this.#leaderChanges.inc();
        }
        break;
      case 'electionStarted':
        this.#observeTerm(ev.term);
        this.#electionsStarted.inc();
        break;
      case 'electionWon':
        this.#observeTerm(ev.term);
        this.#electionsWon.inc();
        break;
      case 'membershipChanged':
        this.setMembers(ev.members);
        break;
      case 'transferStarted':
      case 'transferAborted':
      case 'steppedDown':
        // Visible through roleChanged / leaderChanged, which follow them.
        break;
      default: {
        const unknown: never = ev;
        throw new Error(`unknown raft event ${JSON.stringify(unknown)}`);
      }
    }
    this.#publishLeadership();
  }

  /**
   * For start-up (after restoring state) or periodic resynchronisation from the node's status:
   * idempotent, and it counts a leader change only as onRaftEvent would.
   */
  syncStatus(status: {
    readonly role: Role;
    readonly term: number;
    readonly leader: NodeId | null;
    readonly members: Membership;
  } & Indices): void {
    this.onRaftEvent({ kind: 'termChanged', term: status.term });
    this.onRaftEvent({ kind: 'roleChanged', role: status.role, term: status.term });
    this.onRaftEvent({ kind: 'leaderChanged', leader: status.leader, term: status.term });
    this.setMembers(status.members);
    this.setIndices(status);
  }

  /** Where the index gauges are read from when scraped (the node, once it runs). */
  readIndicesFrom(source: () => Indices): void {
    this.#indicesSource = source;
  }

  #collectIndices(): void {
    if (this.#indicesSource !== null) this.setIndices(this.#indicesSource());
  }

  /** Sets the index gauges now (start-up, tests); unchanged values cost a comparison. */
  setIndices(indices: Indices): void {
    if (indices.commitIndex !== this.#lastCommitIndex) {
      this.#lastCommitIndex = indices.commitIndex;
      this.#commitIndex.set(indices.commitIndex);
    }
    if (indices.appliedIndex !== this.#lastAppliedIndex) {
      this.#lastAppliedIndex = indices.appliedIndex;
      this.#appliedIndex.set(indices.appliedIndex);
    }
    if (indices.lastLogIndex !== this.#seenLastLogIndex) {
      this.#seenLastLogIndex = indices.lastLogIndex;
      this.#lastLogIndex.set(indices.lastLogIndex);
    }
  }

  /**
   * Leader only: entries each other member is behind (lastLogIndex - matchIndex). The map replaces
   * the previous one: peers absent from it lose their series. Ignored unless this node leads.
   */
  setFollowerLag(lagByPeer: ReadonlyMap<NodeId, number>): void {
    const keep = this.#currentRole === 'leader' ? lagByPeer : EMPTY_LAG;
    for (const peer of this.#lagPeers) {
      if (!keep.has(peer)) {
        this.#followerLag.remove(peer);
        this.#lagPeers.delete(peer);
      }
    }
    for (const [peer, lag] of keep) {
      this.#followerLag.labels(peer).set(Math.max(0, lag));
      this.#lagPeers.add(peer);
    }
  }

  observeProposal(result: ProposalResult, seconds: number): void {
    (this.#proposalChildren.get(result) ?? unknownLabel('proposal result', result)).inc();
    this.#proposalDuration.observe(seconds);
  }

  /** One outgoing peer call; ok = false for a network error, timeout or error status. */
  observeRpc(kind: RpcKind, seconds: number, ok: boolean): void {
    let child = this.#rpcDurationChildren.get(kind);
    if (child === undefined) {
      if (!this.#rpcFailureChildren.has(kind)) unknownLabel('rpc kind', kind);
      child = this.#rpcDuration.labels(kind);
      this.#rpcDurationChildren.set(kind, child);
    }
    child.observe(seconds);
    if (!ok) this.#rpcFailureChildren.get(kind)?.inc();
  }

  /** Same shape as the storage's FsyncObserver, so it can be passed as one. */
  observeFsync(seconds: number, kind: FsyncKind = 'wal'): void {
    (this.#fsyncChildren.get(kind) ?? unknownLabel('fsync kind', kind)).observe(seconds);
  }

  observeSnapshot(seconds: number, kind: SnapshotKind = 'create'): void {
    this.#snapshots.labels(kind).inc();
    this.#snapshotDuration.labels(kind).observe(seconds);
  }

  /** memberCount is what the lookup found (omit it if unknown); an error keeps the last count. */
  onDiscovery(result: DiscoveryResult, memberCount?: number): void {
    (this.#discoveryChildren.get(result) ?? unknownLabel('discovery result', result)).inc();
    if (result === 'empty') this.#discoveryMembers.set(0);
    else if (result === 'ok' && memberCount !== undefined) this.#discoveryMembers.set(memberCount);
  }

  onLabelUpdate(result: LabelUpdateResult): void {
    (this.#labelUpdateChildren.get(result) ?? unknownLabel('label update result', result)).inc();
  }

  /**
   * A message to `peer` was dropped; the same shape as the transport's onDrop hook. Peers that are
   * not members are not counted, so the peer label stays bounded by the configuration.
   */
  onDrop(peer: NodeId, reason: PeerDropReason): void {
    if (this.#memberIds !== null && !this.#memberIds.has(peer)) return;
    if (!PEER_DROP_REASONS.has(reason)) unknownLabel('drop reason', reason);
    this.#peerDrops.labels(peer, reason).inc();
    this.#dropPeers.add(peer);
  }

  /** The configuration in use; per-peer series of former members are removed. */
  setMembers(members: Membership): void {
    let voters = 0;
    for (const member of members) if (member.voter) voters++;
    this.#members.labels('true').set(voters);
    this.#members.labels('false').set(members.length - voters);
    const ids = new Set(members.map((member) => member.id));
    this.#memberIds = ids;
    for (const peer of this.#dropPeers) {
      if (!ids.has(peer)) {
        for (const reason of PEER_DROP_REASONS) this.#peerDrops.remove(peer, reason);
        this.#dropPeers.delete(peer);
      }
    }
    for (const peer of this.#lagPeers) {
      if (!ids.has(peer)) {
        this.#followerLag.remove(peer);
        this.#lagPeers.delete(peer);
      }
    }
  }

  /** Prometheus text exposition of everything in the registry. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  #observeTerm(term: number): void {
    // Terms only grow (§5.1); events of one batch may arrive in any order, so take the maximum.
    if (term > this.#currentTerm) {
      this.#currentTerm = term;
      this.#term.set(term);
    }
  }

  #publishLeadership(): void {
    const role = this.#currentRole;
    for (const candidate of EXPORTED_ROLES) this.#role.labels(candidate).set(candidate === role ? 1 : 0);
    this.#isLeader.set(role === 'leader' ? 1 : 0);
    const hasLeader = this.#leader !== null && this.#leaderTerm === this.#currentTerm;
    this.#hasLeader.set(hasLeader ? 1 : 0);
  }
}

const EMPTY_LAG: ReadonlyMap<NodeId, number> = new Map();

function childrenOf<T extends string>(counter: Counter, values: readonly T[]): Map<T, CounterChild> {
  const children = new Map<T, CounterChild>();
  for (const value of values) {
    const child = counter.labels(value);
    child.inc(0);
    children.set(value, child);
  }
  return children;
}

function unknownLabel(what: string, value: string): never {
  // The types already prevent this; a cast somewhere upstream would otherwise grow the label set.
  throw new Error(`unknown ${what} "${value}": add it to src/metrics/metrics.ts before using it`);
}
