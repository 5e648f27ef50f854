// The consensus core's vocabulary. Everything here is plain, readonly data so that the core stays
// pure: time enters as tick() calls, the network as step(message), randomness from a seeded source,
// and everything the host must do leaves as one Ready batch (persist, send, apply, events).

export type NodeId = string;

/** A cluster member as the replicated configuration records it. The core treats url as opaque. */
export interface Member {
  readonly id: NodeId;
  readonly url: string;
  /** false = learner: receives the log but neither votes nor counts toward a quorum (thesis §4.2.1). */
  readonly voter: boolean;
}

export type Membership = readonly Member[];

export type Entry =
  /** Appended by every new leader at once so it can commit entries of earlier terms (§5.4.2, §8). */
  | { readonly kind: 'noop'; readonly term: number; readonly index: number }
  /** An opaque state-machine command. */
  | { readonly kind: 'command'; readonly term: number; readonly index: number; readonly data: Uint8Array }
  /** A full new configuration; it takes effect as soon as it is in a log (thesis §4.1). */
  | { readonly kind: 'config'; readonly term: number; readonly index: number; readonly members: Membership };

export type EntryKind = Entry['kind'];

/** What must be on stable storage before any message that depends on it is sent (Figure 2). */
export interface HardState {
  readonly term: number;
  readonly votedFor: NodeId | null;
  /** Persisted only as a hint: a restarted node may apply up to here without waiting for a leader. */
  readonly commitIndex: number;
}

export interface SnapshotMeta {
  /** The last index the snapshot covers, and its term (§7). */
  readonly index: number;
  readonly term: number;
  /** The configuration in effect at `index`. */
  readonly members: Membership;
}

export interface Snapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

// ---- messages -----------------------------------------------------------------------------------

interface Envelope {
  readonly from: NodeId;
  readonly to: NodeId;
  /** The sender's current term; for a pre-vote request, the term it would campaign in. */
  readonly term: number;
}

/** RequestVote (§5.2), also used for pre-vote (thesis §9.6). */
export interface VoteRequest extends Envelope {
  readonly kind: 'vote';
  readonly preVote: boolean;
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  /** Sent on a TimeoutNow: voters set aside their leader lease (thesis §3.10). */
  readonly transfer: boolean;
}

export interface VoteResponse extends Envelope {
  readonly kind: 'voteResponse';
  readonly preVote: boolean;
  readonly granted: boolean;
}

/** AppendEntries (§5.3). */
export interface AppendRequest extends Envelope {
  readonly kind: 'append';
  readonly prevLogIndex: number;
  readonly prevLogTerm: number;
  readonly entries: readonly Entry[];
  readonly leaderCommit: number;
}

export interface AppendResponse extends Envelope {
  readonly kind: 'appendResponse';
  readonly success: boolean;
  /** On success: the follower's log matches the leader's up to here. */
  readonly matchIndex: number;
  /** On failure: the prevLogIndex that was refused, so stale refusals can be told apart. */
  readonly rejectedIndex: number;
  /** On failure: hints for fast back-off (§5.3, last paragraphs). conflictTerm 0 = log too short. */
  readonly conflictIndex: number;
  readonly conflictTerm: number;
  readonly lastLogIndex: number;
}

/** Leader heartbeat; `seq` numbers ReadIndex rounds (thesis §6.4), `commit` is min(match, commit). */
export interface HeartbeatRequest extends Envelope {
  readonly kind: 'heartbeat';
  readonly commit: number;
  readonly seq: number;
}

export interface HeartbeatResponse extends Envelope {
  readonly kind: 'heartbeatResponse';
  readonly seq: number;
  readonly lastLogIndex: number;
  /** The follower's application health, so the leader can hand leadership to a healthy member;
   * absent = unchecked. */
  readonly appHealth?: AppHealth;
}

/** What a member knows of the application beside it (RAFTLET_APP_HEALTH_URL): `unchecked` when it
 * does not check, which counts as healthy (it cannot tell otherwise). */
export type AppHealth = 'unchecked' | 'healthy' | 'unhealthy';

/** InstallSnapshot (§7), sent whole. */
export interface SnapshotRequest extends Envelope {
  readonly kind: 'snapshot';
  readonly snapshot: Snapshot;
}

/** Leadership transfer: "campaign now" (thesis §3.10). */
export interface TimeoutNowRequest extends Envelope {
  readonly kind: 'timeoutNow';
}

export type Message =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | HeartbeatRequest
  | HeartbeatResponse
  | SnapshotRequest
  | TimeoutNowRequest;

export type MessageKind = Message['kind'];

// ---- host interface ------------------------------------------------------------------------------

export type Role = 'follower' | 'precandidate' | 'candidate' | 'leader';

export type RaftEvent =
  | { readonly kind: 'termChanged'; readonly term: number }
  | { readonly kind: 'roleChanged'; readonly role: Role; readonly term: number }
  | { readonly kind: 'leaderChanged'; readonly leader: NodeId | null; readonly term: number }
  | { readonly kind: 'electionStarted'; readonly term: number }
  | { readonly kind: 'electionWon'; readonly term: number }
  | { readonly kind: 'membershipChanged'; readonly members: Membership; readonly index: number }
  | { readonly kind: 'transferStarted'; readonly to: NodeId; readonly term: number }
  | { readonly kind: 'transferAborted'; readonly to: NodeId; readonly term: number }
  | { readonly kind: 'steppedDown'; readonly reason: 'checkQuorum' | 'higherTerm' | 'transfer'; readonly term: number };

/** A ReadIndex request that has been confirmed: serve it once appliedIndex >= index. */
export interface ReadState {
  readonly requestId: number;
  readonly index: number;
}

/**
 * One batch of work for the host. Handle it in this order:
 * 1. send `sendNow`: what needs nothing on disk (a leader's replication traffic for its durable term,
 *    §10.2.1 of the thesis; vote requests, pre-vote answers, heartbeat acknowledgements). While a
 *    Ready is being persisted, Raft.takeEarlyMessages() hands out more of these at once;
 * 2. persist `snapshot`, then `entries` (entries[0].index may be <= the last index already
 *    persisted: discard the persisted suffix from there first), then `hardState`, with one fsync;
 * 3. send `messages` (votes, acknowledgements: they promise what step 2 made durable);
 * 4. install `snapshot` into the state machine if set, apply `committed` in order, answer `readStates`;
 * 5. call advance(ready).
 * Without a snapshot, the entries of `committed` may be applied while step 2 runs: committed means
 * durable on a majority, whether or not this node's own fsync has ended. While a Ready is being
 * persisted, Raft.takeCommitted() hands out further committed entries to apply at once, after the
 * Ready's own `committed` (apply order).
 */
export interface Ready {
  readonly hardState: HardState | null;
  readonly snapshot: Snapshot | null;
  readonly entries: readonly Entry[];
  readonly sendNow: readonly Message[];
  /** Votes and acknowledgements of entries: they promise what step 2 makes durable. */
  readonly messages: readonly Message[];
  readonly committed: readonly Entry[];
  readonly readStates: readonly ReadState[];
  /** ReadIndex requests that can no longer be confirmed here (leadership lost). */
  readonly readsFailed: readonly number[];
  /** What already happened in memory; a host may report them before step 2 (a leader's term and
   * vote are durable before it wins, so announcing the win early is safe). */
  readonly events: readonly RaftEvent[];
}

export interface RaftConfig {
  readonly id: NodeId;
  /** Base election timeout T in ticks; each timeout is drawn uniformly from [T, 2T) (§5.2). */
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  /** A number in [0, 1) from a source the host seeds: the core never calls Math.random(). */
  readonly random: () => number;
  readonly preVote?: boolean;
  readonly checkQuorum?: boolean;
  /** Batching and pipelining limits for AppendEntries (§5.3). */
  readonly maxEntriesPerAppend?: number;
  readonly maxBytesPerAppend?: number;
  readonly maxInflightAppends?: number;
  /** A leader refuses proposals once its appended-but-uncommitted entries of this term reach this
   * many bytes (etcd's MaxUncommittedEntriesSize), so overload cannot starve commits. One entry is
   * always accepted when nothing is uncommitted. Absent or 0: no limit. */
  readonly maxUncommittedBytes?: number;
  /** Refuse votes and pre-votes for one election timeout after starting, as if a leader had just
   * been heard: a restarted member cannot know whose leader lease it helped grant before it went
   * down. Required for the leader lease (Raft.leaseBasisTick) to hold across restarts; default off. */
  readonly leaseGuardOnStart?: boolean;
}

/** What a node had on stable storage when it (re)started. */
export interface RestoredState {
  readonly hardState: HardState;
  readonly snapshot: Snapshot | null;
  /** Entries after the snapshot, contiguous. */
  readonly entries: readonly Entry[];
}

export type ProposeResult =
  | { readonly ok: true; readonly index: number; readonly term: number }
  | { readonly ok: false; readonly reason: 'not_leader' | 'transferring' | 'overloaded' | 'change_in_progress' | 'invalid_change'; readonly leader: NodeId | null; readonly message: string };

export type ConfigChange =
  | { readonly kind: 'addLearner'; readonly id: NodeId; readonly url: string }
  | { readonly kind: 'promote'; readonly id: NodeId }
  | { readonly kind: 'remove'; readonly id: NodeId };

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export interface PeerProgress {
  readonly id: NodeId;
  readonly voter: boolean;
  readonly matchIndex: number;
  readonly nextIndex: number;
  readonly state: ProgressState;
  readonly recentActive: boolean;
  /** As the follower last reported it in a heartbeat answer; null before its first in this term. */
  readonly appHealth: AppHealth | null;
}

export interface RaftStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly votedFor: NodeId | null;
  readonly leader: NodeId | null;
  readonly commitIndex: number;
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  readonly firstLogIndex: number;
  readonly snapshotIndex: number;
  readonly members: Membership;
  readonly transferee: NodeId | null;
  /** Leader only: one row per other member. */
  readonly progress: readonly PeerProgress[];
}
