// The runtime loop: the only place that wires the pure Raft core to real time, storage, the network
// and the key-value state machine. Time enters as tick() on a timer, peer messages as step(); each
// Ready is handled in the order the core prescribes (send early traffic, fsync, send promises,
// apply, advance). It also implements the client seam (ClientOps) and the peer handlers, forwarding
// to the leader when this node follows.
import { ClientError, type ClientOps, type LeaderInfo, type Leadership, type NodeStatus, type TransferReason } from '../api/ops.ts';
import { encodeKvCommand, KvCodecError, unproposable } from '../kv/index.ts';
import type { ChangeFeed, KvCommand, KvResult, KvView } from '../kv/types.ts';
import { Raft } from '../raft/raft.ts';
import type { AppHealth, ConfigChange, Entry, Member, Message, NodeId, ProposeResult, RaftConfig, RaftEvent, Ready, RestoredState, Role } from '../raft/types.ts';
import { healthyTransferTarget } from './app-health.ts';
import { bestTransferTarget } from './transfer-target.ts';
import { systemClock, type Cancel, type Clock, type LogStore, type PeerSender, type StateMachine } from './ports.ts';
import { Deadlines } from '../util/deadlines.ts';
import { AppliedWaiters, type AppliedWaitKind } from './applied-waiters.ts';
import { Waiters } from './waiters.ts';

export interface NodeLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface NodeOptions {
  readonly id: NodeId;
  readonly heartbeatMs: number;
  readonly electionTimeoutMs: number;
  readonly restored: RestoredState;
  readonly store: LogStore;
  readonly peers: PeerSender;
  /** The replicated state machine, already restored from the snapshot in `restored` if any. */
  readonly stateMachine: StateMachine;
  /** Defaults to the wall clock and Node's timers. */
  readonly clock?: Clock;
  readonly logger: NodeLogger;
  /** Take a snapshot and compact the log once this many entries were applied since the last one. */
  readonly snapshotEntries: number;
  /** ... or once the commands applied since the last one carry this many bytes (default
   * DEFAULT_SNAPSHOT_BYTES): the log between snapshots is held in memory, and snapshotEntries
   * alone would let 10,000 entries of up to RAFTLET_MAX_VALUE_BYTES each pile up. */
  readonly snapshotBytes?: number;
  /** Called once when the node cannot go on: its storage failed, or a core invariant broke. */
  readonly onFatal: (error: unknown, kind: FatalKind) => void;
  readonly random?: () => number;
  /** The leader's budget of appended-but-uncommitted proposal bytes (default 8 MiB); past it a
   * write is refused with 503 no_leader (certainly not proposed: retry). */
  readonly maxUncommittedBytes?: number;
  /** Batching and pipelining of appends (§5.3); the core's defaults, with a window of 256. */
  readonly replication?: Pick<RaftConfig, 'maxEntriesPerAppend' | 'maxBytesPerAppend' | 'maxInflightAppends'>;
  /** RAFTLET_LEASE_DRIFT_RATIO: the share of the leader lease given up for clock-rate differences
   * between members and timer slack. Default DEFAULT_LEASE_DRIFT_RATIO. */
  readonly leaseDriftRatio?: number;
  /** Whether a member is on its way out (the StatefulSet has scaled it away, as last read). A
   * transfer this leader picks the target of (POST /v1/leader/transfer without `to`, or because its
   * application is unhealthy) passes over such members: leadership handed to one would only have
   * to move again. */
  readonly departing?: (id: NodeId) => boolean;
}

export const DEFAULT_LEASE_DRIFT_RATIO = 0.1;

/** A leadership transfer this node made as leader, once it ended. */
export interface TransferOutcome {
  readonly reason: TransferReason;
  readonly from: NodeId;
  readonly to: NodeId;
  /** The new leader's term when it succeeded, else the term it was attempted in. */
  readonly term: number;
  readonly ok: boolean;
}

export const DEFAULT_MAX_UNCOMMITTED_BYTES = 8 * 1024 * 1024;
/** Command bytes applied between snapshots, at most (NodeOptions.snapshotBytes). */
export const DEFAULT_SNAPSHOT_BYTES = 16 * 1024 * 1024;

/** The consensus core as checkers may look at it (the simulators, tests): reads only. */
export type RaftView = Pick<
  Raft,
  'id' | 'currentTerm' | 'currentRole' | 'currentLeader' | 'committedIndex' | 'lastLogIndex' | 'snapshotIndex' | 'membership' | 'entryAt' | 'termAt' | 'status'
>;

/** Why a node stopped for good: the host maps it to an exit code. */
export type FatalKind = 'storage' | 'invariant';

export interface NodeHooks {
  onRaftEvent?(ev: RaftEvent): void;
  onProposal?(result: 'ok' | 'precondition_failed' | 'no_leader' | 'timeout' | 'error', seconds: number): void;
  onSnapshot?(seconds: number, kind: 'create' | 'install'): void;
  onLeadershipTransfer?(outcome: TransferOutcome): void;
  onAppHealth?(health: AppHealth): void;
}

function isNoLeader(err: unknown): err is ClientError {
  return err instanceof ClientError && err.code === 'no_leader';
}

/** A no_leader answer that also names the refusal which started the retries, when there was one. */
function withRefusal(err: ClientError, refusal: ClientError | null): ClientError {
  return refusal === null || refusal.message === err.message ? err : new ClientError('no_leader', `${err.message} (retried after: ${refusal.message})`);
}

/** A write this node proposed as leader, waiting for its index to be applied. Its deadline is in
 * RaftNode.proposalDeadlines until it is settled: one left to run out would keep the proposal (and
 * its caller's promise) alive for the whole request timeout, thousands of them under load. */
interface Proposal {
  readonly index: number;
  readonly term: number;
  readonly resolve: (r: KvResult) => void;
  readonly reject: (err: Error) => void;
}

const noCancel: Cancel = () => undefined;

/** Who led, and in which term, as this node saw it when a forwarded call was tried. */
interface LeaderSeen {
  readonly leader: NodeId | null;
  readonly term: number;
}

/** A leader-side ReadIndex waiting for its heartbeat round; cancelDeadline clears its timer once it
 * is settled otherwise. */
interface PendingRead {
  readonly resolve: (index: number) => void;
  readonly reject: (err: Error) => void;
  cancelDeadline: Cancel;
}

/** What drainIfElection compares: a change in any of them is an election or a hand-off. */
interface ElectionState {
  readonly term: number;
  readonly role: Role;
  readonly leader: NodeId | null;
}

/** How long a client call waits between looks for a leader while none is known. */
const LEADER_POLL_MS = 50;

export class RaftNode implements ClientOps {
  readonly id: NodeId;
  private readonly sm: StateMachine;
  private readonly clock: Clock;
  private raft: Raft;
  private readonly options: NodeOptions;
  private readonly tickMs: number;
  private readonly hooks: NodeHooks[] = [];
  private readonly waiters: Waiters;
  private stopTicking: Cancel | null = null;
  private scheduled = false;
  private persisting = false;
  private stopped = false;
  /** Bytes of the commands applied since the last snapshot (taken or installed). */
  private appliedBytesSinceSnapshot = 0;
  private failed = false;
  private nextReadId = 1;
  private readonly reads = new Map<number, PendingRead>();
  /** The member streams open to this node, per sender the newest, oldest first (onPeerStream). */
  private readonly inboundStreams = new Map<NodeId, object>();
  /** How to fence each member stream that accepts fences (onCallStream). */
  private readonly callStreams = new Set<() => void>();
  /** How often the transport reported each peer's process gone (peerDead): a transfer that sees
   * its target's count rise knows the target will not campaign. */
  private readonly deathReports = new Map<NodeId, number>();
  /** Proposals this node made as leader, by index: settled when that index is applied. Several may
   * wait on one index (this node lost office and proposed there again in a later term); the entry
   * that commits there decides all of them. */
  private readonly proposals = new Map<number, Proposal[]>();
  /** The proposals' deadlines, under one timer. */
  private readonly proposalDeadlines: Deadlines<Proposal>;
  /** Calls waiting for an index to be applied here (a forwarded write, a read barrier). */
  private readonly appliedWaits: AppliedWaiters;
  /** When each recent tick began, on the monotonic clock, by the core's tick count (the lease). */
  private readonly tickTimes: Float64Array;
  private readonly tickNumbers: Float64Array;
  private readonly leaseDriftRatio: number;
  /** A transfer because of the application's health is under way, or may not start before this. */
  private appTransferBusy = false;
  private appTransferNotBefore = 0;

  constructor(options: NodeOptions) {
    this.options = options;
    this.id = options.id;
    this.sm = options.stateMachine;
    this.clock = options.clock ?? systemClock;
    this.waiters = new Waiters(this.clock);
    this.proposalDeadlines = new Deadlines<Proposal>((p) => this.proposalTimedOut(p), this.clock);
    this.appliedWaits = new AppliedWaiters(this.clock, (index, kind) =>
      kind === 'write'
        ? new ClientError('timeout', `committed at index ${index} but not yet applied on ${this.id}`)
        : new ClientError('timeout', `read index ${index} not yet applied on ${this.id}`),
    );
    // A tick of about 10 ms keeps timeouts fine-grained; heartbeat and election are whole ticks.
    this.tickMs = Math.max(1, Math.min(10, Math.floor(options.heartbeatMs / 2)));
    this.leaseDriftRatio = options.leaseDriftRatio ?? DEFAULT_LEASE_DRIFT_RATIO;
    if (!(this.leaseDriftRatio >= 0 && this.leaseDriftRatio < 1)) throw new RangeError(`leaseDriftRatio must be in [0, 1), got ${this.leaseDriftRatio}`);
    // A lease counts from a round at most an election timeout old; older ticks are never needed.
    const remembered = 2 * Math.ceil(options.electionTimeoutMs / this.tickMs) + 64;
    this.tickTimes = new Float64Array(remembered);
    this.tickNumbers = new Float64Array(remembered).fill(-1);
    this.raft = this.makeRaft(options.restored);
  }

  private makeRaft(restored: RestoredState): Raft {
    const heartbeatTicks = Math.max(1, Math.round(this.options.heartbeatMs / this.tickMs));
    const electionTicks = Math.max(heartbeatTicks + 1, Math.round(this.options.electionTimeoutMs / this.tickMs));
    const raft = new Raft(
      {
        id: this.id,
        heartbeatTicks,
        electionTicks,
        random: this.options.random ?? Math.random,
        maxInflightAppends: 256,
        ...this.options.replication,
        maxUncommittedBytes: this.options.maxUncommittedBytes ?? DEFAULT_MAX_UNCOMMITTED_BYTES,
        // A restarted member must not vote while a lease it helped grant may run.
        leaseGuardOnStart: true,
      },
      restored,
    );
    this.tickNumbers.fill(-1);
    this.recordTick(raft.tickCount);
    return raft;
  }

  private monotonicNow(): number {
    return this.clock.monotonic?.() ?? this.clock.now();
  }

  /** Notes when tick `count` begins: a round the core sends during it left no earlier. */
  private recordTick(count: number): void {
    const slot = count % this.tickTimes.length;
    this.tickTimes[slot] = this.monotonicNow();
    this.tickNumbers[slot] = count;
  }

  addHooks(hooks: NodeHooks): void {
    this.hooks.push(hooks);
  }

  start(): void {
    this.stopTicking = this.clock.every(this.tickMs, () => this.onTick());
    this.kick();
  }

  /** True until something has been written to the log: a fresh node may still bootstrap. */
  isPristine(): boolean {
    const s = this.raft.status();
    return s.lastLogIndex === 0 && s.snapshotIndex === 0 && s.term === 0;
  }

  /** Replaces a pristine core by one started from the bootstrap state (already persisted). */
  bootstrap(restored: RestoredState): void {
    if (!this.isPristine()) throw new Error('only a node with an empty log can bootstrap');
    this.raft = this.makeRaft(restored);
    this.kick();
  }

  /** Single-node clusters need not wait a whole election timeout. */
  campaignIfAlone(): void {
    const voters = this.raft.membership.filter((m) => m.voter);
    if (voters.length === 1 && voters[0].id === this.id) {
      this.raft.campaignNow();
      this.kick();
    }
  }

  members(): readonly Member[] {
    return this.raft.membership;
  }

  raftStatus(): ReturnType<Raft['status']> {
    return this.raft.status();
  }

  /** The core itself, read-only: for the simulator's invariant checks. */
  inspect(): RaftView {
    return this.raft;
  }

  /** The term of the log entry at index (also the snapshot's last index); undefined if not held. */
  termAt(index: number): number | undefined {
    return this.raft.termAt(index);
  }

  proposeConfigChange(change: ConfigChange): ProposeResult {
    const result = this.raft.proposeConfigChange(change);
    this.kick();
    return result;
  }

  /** Stops ticking and waits for the Ready in flight; the store and servers are closed by the caller. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopTicking?.();
    this.stopTicking = null;
    await this.waiters.until(() => !this.persisting, this.clock.now() + 10_000).catch(() => undefined);
    const closing = new ClientError('unavailable', 'the node is shutting down');
    this.proposalDeadlines.clear();
    for (const waiting of this.proposals.values()) {
      for (const p of waiting) p.reject(new ClientError('timeout', 'the node shut down before the write was applied; its outcome is unknown'));
    }
    this.proposals.clear();
    for (const r of this.reads.values()) {
      r.cancelDeadline();
      r.reject(closing);
    }
    this.reads.clear();
    this.appliedWaits.rejectAll(closing);
    this.waiters.rejectAll(closing);
  }

  // ---- the loop ----------------------------------------------------------------------------------

  private onTick(): void {
    if (this.stopped) return;
    const before = this.electionState();
    this.recordTick(this.raft.tickCount + 1);
    this.guard(() => this.raft.tick());
    this.maybeMoveLeadershipForApp();
    this.waiters.check();
    this.drainIfElection(before);
  }

  private electionState(): ElectionState {
    return { term: this.raft.currentTerm, role: this.raft.currentRole, leader: this.raft.currentLeader };
  }

  /**
   * Elections and hand-offs are rare and the whole cluster waits on them: when the term, the role or
   * the leader moved, the Ready is drained now instead of on the next turn of the event loop, so
   * vote requests leave and the fsync of a new term or vote, or of a new leader's first append on a
   * follower, starts at once (on a busy loop the next turn can be milliseconds away). Everything
   * else waits for the next turn, where what arrived together shares one fsync. So does a new
   * leader's first Ready: the writes that waited for a leader are proposed in this turn (waiters),
   * and go out with its no-op in one append, one fsync on each follower.
   */
  private drainIfElection(before: ElectionState): void {
    const now = this.electionState();
    const moved = now.term !== before.term || now.role !== before.role || now.leader !== before.leader;
    if (moved && now.role !== 'leader') this.drain();
    // Most ticks of an idle node change nothing: no turn of the loop is spent finding that out.
    else if (this.raft.hasReady()) this.kick();
  }

  /** Runs fn against the core; an exception there means a broken invariant: stop, never limp on. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.fail(err, 'invariant');
    }
  }

  private fail(err: unknown, kind: FatalKind): void {
    if (this.failed) return;
    this.failed = true;
    this.stopped = true;
    this.stopTicking?.();
    this.stopTicking = null;
    this.options.onFatal(err, kind);
  }

  /** Drains Ready batches on the next turn of the event loop, so proposals that arrive together
   * share one fsync (group commit at the core: everything appended while an fsync runs goes into
   * the next Ready). */
  private kick(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    this.clock.soon(() => {
      this.scheduled = false;
      this.drain();
    });
  }

  private drain(): void {
    if (this.stopped) return;
    if (this.persisting) {
      // What needs no fsync does not wait for the one running (appends of new entries, a read
      // round's heartbeats, TimeoutNow, vote requests); the rest waits for the next Ready.
      const early = this.raft.takeEarlyMessages();
      if (early.length > 0) this.options.peers.sendAll(early);
      this.applyCommitted();
      return;
    }
    if (!this.raft.hasReady()) return;
    const raft = this.raft;
    let rd: Ready;
    try {
      rd = raft.ready();
    } catch (err) {
      this.fail(err, 'invariant');
      return;
    }
    // Membership news goes first: it gives the transport a new member's address before the appends
    // to it. Other events wait until what may leave has left and the fsync has started: a
    // TimeoutNow, vote requests, a new leader's appends, a vote's fsync are not held up by logging
    // and hooks. They still come before the fsync ends: they say what already happened in memory (a
    // won election, a new leader), so the pod label and metrics need not wait for it.
    const membershipNews = rd.events.some((ev) => ev.kind === 'membershipChanged');
    if (membershipNews) for (const ev of rd.events) this.onEvent(ev);
    if (rd.sendNow.length > 0) this.options.peers.sendAll(rd.sendNow);
    if (rd.entries.length === 0 && rd.hardState === null && rd.snapshot === null) {
      if (!membershipNews) for (const ev of rd.events) this.onEvent(ev);
      this.finish(raft, rd, 0);
      this.waiters.check();
      return;
    }
    // Committed entries do not wait for this Ready's fsync, even those it makes durable here: they
    // are durable on a majority already (Raft.takeCommitted), so the writes they answer, here or
    // forwarded from here, are done. They are applied after the save is handed over, so while it is
    // persisted. With a snapshot they wait for its install, after the fsync.
    const early = rd.snapshot === null ? rd.committed.length : 0;
    this.persisting = true;
    const saved = this.options.store.save(rd);
    if (!membershipNews) for (const ev of rd.events) this.onEvent(ev);
    const appliedEarly = early > 0 && this.applyNow(rd.committed, early) ? early : 0;
    saved.then(
      () => {
        this.persisting = false;
        if (!this.stopped) this.finish(raft, rd, appliedEarly);
        this.waiters.check();
      },
      (err: unknown) => {
        this.persisting = false;
        this.fail(err, 'storage');
      },
    );
  }

  /** Applies entries[0..count) ahead of the Ready's fsync and wakes whoever waits on them; false
   * if applying failed (the node has stopped). */
  private applyNow(entries: readonly Entry[], count: number): boolean {
    try {
      for (let i = 0; i < count; i++) this.apply(entries[i]);
    } catch (err) {
      this.fail(err, 'invariant');
      return false;
    }
    this.appliedWaits.reached(this.sm.appliedIndex);
    this.waiters.check();
    return true;
  }

  /** Applies what became committed (a forwarded write's answer, a quorum's acknowledgements) at
   * once, also while a Ready is persisted: not after that fsync and the next. */
  private applyCommitted(): void {
    if (this.stopped) return;
    let entries: Entry[] = [];
    this.guard(() => {
      entries = this.raft.takeCommitted();
    });
    if (entries.length > 0) this.applyNow(entries, entries.length);
  }

  /** Steps 3 to 5 of the Ready contract (src/raft/types.ts), once step 2 is durable; the first
   * `appliedEarly` committed entries were applied before it. */
  private finish(raft: Raft, rd: Ready, appliedEarly: number): void {
    if (rd.messages.length > 0) this.options.peers.sendAll(rd.messages);
    try {
      if (rd.snapshot) this.installSnapshot(rd);
      for (let i = appliedEarly; i < rd.committed.length; i++) this.apply(rd.committed[i]);
    } catch (err) {
      this.fail(err, 'invariant');
      return;
    }
    for (const rs of rd.readStates) {
      const read = this.reads.get(rs.requestId);
      read?.cancelDeadline();
      read?.resolve(rs.index);
      this.reads.delete(rs.requestId);
    }
    for (const requestId of rd.readsFailed) {
      const read = this.reads.get(requestId);
      read?.cancelDeadline();
      read?.reject(new ClientError('no_leader', 'leadership was lost before the read could be confirmed'));
      this.reads.delete(requestId);
    }
    this.guard(() => raft.advance(rd));
    if (rd.committed.length > 0 || rd.snapshot) this.appliedWaits.reached(this.sm.appliedIndex);
    // Also after entries alone: those applied before their fsync may be due for a snapshot now.
    if (rd.committed.length > 0 || rd.snapshot || rd.entries.length > 0) this.maybeSnapshot();
    this.waiters.check();
    this.kick();
  }

  private installSnapshot(rd: Ready): void {
    const snap = rd.snapshot;
    if (!snap) return;
    const started = this.clock.now();
    this.sm.restore(snap.data, snap.meta.index);
    this.appliedBytesSinceSnapshot = 0;
    // Proposals covered by the snapshot: whether they won their index cannot be told any more.
    for (const [index, waiting] of this.proposals) {
      if (index > snap.meta.index) continue;
      for (const p of waiting) {
        this.proposalDeadlines.delete(p);
        p.reject(new ClientError('timeout', 'the write was overtaken by a snapshot; its outcome is unknown'));
      }
      this.proposals.delete(index);
    }
    for (const h of this.hooks) h.onSnapshot?.((this.clock.now() - started) / 1000, 'install');
    this.options.logger.info({ index: snap.meta.index, term: snap.meta.term }, 'installed snapshot from leader');
  }

  private apply(entry: Entry): void {
    const result = this.sm.applyEntry(entry);
    if (entry.kind === 'command') this.appliedBytesSinceSnapshot += entry.data.byteLength;
    const waiting = this.proposals.get(entry.index);
    if (!waiting) return;
    this.proposals.delete(entry.index);
    for (const p of waiting) {
      this.proposalDeadlines.delete(p);
      if (entry.term === p.term && result !== null) p.resolve(result);
      // Another entry committed at this index: ours never can (an entry's index is fixed and a
      // committed entry is final), so a retry is safe.
      else p.reject(new ClientError('no_leader', 'leadership changed before the write committed; it was not applied'));
    }
  }

  private maybeSnapshot(): void {
    const applied = this.sm.appliedIndex;
    const bytesDue = this.appliedBytesSinceSnapshot >= (this.options.snapshotBytes ?? DEFAULT_SNAPSHOT_BYTES);
    if (applied - this.raft.snapshotIndex < this.options.snapshotEntries && !bytesDue) return;
    if (applied <= this.raft.snapshotIndex) return;
    // Applied ahead of this node's fsync (takeCommitted): the log is compacted over durable entries
    // only, so the snapshot waits for the fsync that covers what it holds.
    if (applied > this.raft.durableIndex) return;
    const started = this.clock.now();
    const snapshot = this.raft.compact(applied, this.sm.snapshot());
    this.appliedBytesSinceSnapshot = 0;
    this.options.store.saveSnapshot(snapshot).then(
      () => {
        for (const h of this.hooks) h.onSnapshot?.((this.clock.now() - started) / 1000, 'create');
        this.options.logger.debug({ index: applied }, 'snapshot taken, log compacted');
      },
      (err: unknown) => this.fail(err, 'storage'),
    );
  }

  private onEvent(ev: RaftEvent): void {
    for (const h of this.hooks) h.onRaftEvent?.(ev);
    switch (ev.kind) {
      case 'leaderChanged':
        this.options.logger.info({ leader: ev.leader, term: ev.term }, ev.leader === null ? 'no leader' : `leader is ${ev.leader}`);
        break;
      case 'electionWon':
        this.options.logger.info({ term: ev.term }, 'won the election');
        break;
      case 'steppedDown':
        if (ev.reason === 'transfer') this.options.logger.info({ term: ev.term }, 'stepped down, voting for the member it hands leadership to');
        else this.options.logger.warn({ term: ev.term, reason: ev.reason }, 'stepped down');
        break;
      case 'membershipChanged':
        this.options.logger.info({ members: ev.members, index: ev.index }, 'membership changed');
        break;
      case 'transferStarted':
      case 'transferAborted':
        this.options.logger.info({ to: ev.to, term: ev.term }, ev.kind === 'transferStarted' ? 'leadership transfer started' : 'leadership transfer aborted');
        break;
      case 'termChanged':
      case 'roleChanged':
      case 'electionStarted':
        break;
      default: {
        const never: never = ev;
        return never;
      }
    }
  }

  /**
   * The transport saw peer's process go away: a connection to it closed and a new one was refused
   * (never a timeout). If it is our leader we campaign now instead of waiting out the election
   * timeout; if it is the target of our transfer, the transfer ends now (Raft.reportPeerDead, and
   * awaitTransfer for a stopping leader, which has already stepped down).
   */
  peerDead(peer: NodeId): void {
    if (this.stopped) return;
    this.deathReports.set(peer, (this.deathReports.get(peer) ?? 0) + 1);
    const following = this.raft.currentRole === 'follower' && this.raft.currentLeader === peer;
    const before = this.electionState();
    this.guard(() => this.raft.reportPeerDead(peer));
    if (following) this.options.logger.info({ peer, term: this.raft.currentTerm }, `leader ${peer} is gone (connection refused): campaigning now`);
    this.waiters.check();
    this.drainIfElection(before);
  }

  // ---- peer handlers (SPEC §5) --------------------------------------------------------------------

  /** The members with a stream open to this node, the longest connected first. */
  contactOrder(): NodeId[] {
    return [...this.inboundStreams.keys()];
  }

  onPeerStream(sender: NodeId): () => void {
    if (!this.stopped) this.options.peers.streamFrom?.(sender);
    // Moved to the end: the map's order is the order of contact, the longest connected first.
    const mark = {};
    this.inboundStreams.delete(sender);
    this.inboundStreams.set(sender, mark);
    return () => {
      if (this.inboundStreams.get(sender) === mark) this.inboundStreams.delete(sender);
    };
  }

  onCallStream(fence: () => void): () => void {
    this.callStreams.add(fence);
    return () => this.callStreams.delete(fence);
  }

  onMessages(messages: Message[]): void {
    if (this.stopped) return;
    const before = this.electionState();
    if (this.options.peers.heardFrom !== undefined && messages.length > 0) {
      let last: NodeId | null = null;
      for (const m of messages) if (m.from !== last) this.options.peers.heardFrom((last = m.from));
    }
    this.guard(() => {
      for (const m of messages) this.raft.step(m);
    });
    this.waiters.check();
    this.drainIfElection(before);
  }

  async onPropose(cmd: KvCommand, deadlineMs: number, encoded?: Uint8Array): Promise<KvResult> {
    // A forwarded command passed the wire's type checks; the key-value rules (key bytes, control
    // characters, If-Match >= 1) are checked here, as a 400 that proposes nothing. Bytes that
    // came as they are (encoded) passed the log's own strict decoder, which checks those rules.
    let data: Uint8Array;
    if (encoded !== undefined) {
      // The one rule the decoder does not enforce (encodeKvCommand does, on the other path).
      const problem = unproposable(cmd);
      if (problem !== null) throw new ClientError('bad_request', problem);
      data = encoded;
    } else {
      try {
        data = encodeKvCommand(cmd);
      } catch (err) {
        if (err instanceof KvCodecError) throw new ClientError('bad_request', err.message);
        throw err;
      }
    }
    // Never forwarded again: a follower forwarding to a stale leader gets no_leader and retries.
    return this.proposeHere(data, deadlineMs);
  }

  async onReadIndex(deadlineMs: number): Promise<{ index: number; term: number }> {
    const index = await this.readIndexHere(deadlineMs);
    return { index, term: this.raft.termAt(index) ?? 0 };
  }

  async onTransfer(to: NodeId | null, deadlineMs: number): Promise<{ leader: NodeId; term: number }> {
    return this.transferHere(to, deadlineMs);
  }

  onStatus(): NodeStatus {
    return this.status();
  }

  // ---- client seam (src/api/ops.ts) ---------------------------------------------------------------

  status(): NodeStatus {
    const s = this.raft.status();
    return {
      id: s.id,
      role: s.role === 'precandidate' ? 'candidate' : s.role,
      term: s.term,
      leader: s.leader,
      commitIndex: s.commitIndex,
      appliedIndex: this.sm.appliedIndex,
      lastLogIndex: s.lastLogIndex,
      members: s.members,
    };
  }

  leader(): LeaderInfo | null {
    const id = this.raft.currentLeader;
    if (id === null) return null;
    const member = this.raft.membership.find((m) => m.id === id);
    return member ? { id, url: member.url, term: this.raft.currentTerm } : null;
  }

  // ---- leadership for the application (SPEC §4 /v1/leadership) -----------------------------------

  leadership(): Leadership {
    const leader = this.raft.currentRole === 'leader';
    return { leader, term: this.raft.currentTerm, leaseRemainingMs: leader ? this.leaseRemainingMs() : 0 };
  }

  /**
   * The leader lease in milliseconds. The core names the tick in which it sent the newest heartbeat
   * round a quorum answered (Raft.leaseBasisTick); that round left no earlier than this node's clock
   * read at the start of the tick. Each follower that answered refuses every vote for a higher term
   * until leaseTicks of its own ticks have passed since it received the round; its ticks come from a
   * timer of tickMs that never fires early, but the first may come at once and libuv's clock has
   * millisecond steps: (leaseTicks * tickMs - 1) ms of the follower's clock. Every member runs with
   * the same settings. Clocks may run at slightly different rates and timers slip, so a share
   * (leaseDriftRatio) of that is given up. What remains, counted from the round's tick, ends the
   * lease: until then no other member can have won an election (the argument is in
   * Raft.leaseBasisTick).
   */
  private leaseRemainingMs(): number {
    const basis = this.raft.leaseBasisTick();
    if (basis === null) return 0;
    const slot = basis % this.tickTimes.length;
    if (this.tickNumbers[slot] !== basis) return 0; // older than remembered: long expired
    const guaranteedMs = (this.raft.leaseTicks * this.tickMs - 1) * (1 - this.leaseDriftRatio);
    return Math.max(0, Math.floor(this.tickTimes[slot] + guaranteedMs - this.monotonicNow()));
  }

  async waitLeadership(seen: { readonly leader: boolean; readonly term: number; readonly leased: boolean }, waitMs: number): Promise<Leadership> {
    const changed = (): boolean => {
      const now = this.leadership();
      return now.leader !== seen.leader || now.term !== seen.term || (now.leader && now.leaseRemainingMs > 0) !== (seen.leader && seen.leased);
    };
    await this.waiters.until(changed, this.clock.now() + waitMs).catch(() => undefined);
    return this.leadership();
  }

  changes(): ChangeFeed {
    return this.sm.changes;
  }

  // ---- leadership that follows the application's health ------------------------------------------

  /** The application beside this node, as RAFTLET_APP_HEALTH_URL's probe sees it. */
  setAppHealth(health: AppHealth): void {
    if (health === this.raft.currentAppHealth) return;
    this.raft.setAppHealth(health);
    for (const h of this.hooks) h.onAppHealth?.(health);
    this.options.logger.info({ appHealth: health }, `the application is ${health}`);
    this.maybeMoveLeadershipForApp();
  }

  private maybeMoveLeadershipForApp(): void {
    if (this.raft.currentAppHealth !== 'unhealthy' || this.raft.currentRole !== 'leader') return;
    if (this.appTransferBusy || this.stopped || this.clock.now() < this.appTransferNotBefore) return;
    const status = this.raft.status();
    if (status.transferee !== null) return;
    const target = healthyTransferTarget(status, this.contactOrder(), this.options.departing);
    if (target === null) return; // no staying member's application is healthy: stay, never go leaderless
    this.appTransferBusy = true;
    this.options.logger.warn({ to: target, term: status.term }, `the application is unhealthy: handing leadership to ${target}`);
    this.transferHere(target, this.clock.now() + 2 * this.options.electionTimeoutMs, 'app_unhealthy')
      .catch((err: unknown) => {
        this.options.logger.warn({ to: target, err: err instanceof Error ? err.message : String(err) }, 'leadership hand-off for the application failed');
        // Try again later, perhaps to another member.
        this.appTransferNotBefore = this.clock.now() + this.options.electionTimeoutMs;
      })
      .finally(() => {
        this.appTransferBusy = false;
      });
  }

  /** Resolves once another member leads this node's term and has committed an entry of that term
   * here, with nothing of this node's own left to persist or send: the new leader's commits no
   * longer wait for this node's acknowledgements (a leader stopping after a hand-off). Rejects at
   * deadlineMs. */
  successorCommitted(deadlineMs: number): Promise<void> {
    return this.waiters.until(() => {
      if (this.stopped) return true;
      const leader = this.raft.currentLeader;
      if (leader === null || leader === this.id || this.persisting || this.raft.hasReady()) return false;
      return this.raft.termAt(this.raft.committedIndex) === this.raft.currentTerm;
    }, deadlineMs);
  }

  async waitLeaderChange(seenLeader: NodeId | null, seenTerm: number, waitMs: number): Promise<LeaderInfo | null> {
    const changed = (): boolean => this.raft.currentLeader !== seenLeader || this.raft.currentTerm !== seenTerm;
    await this.waiters.until(changed, this.clock.now() + waitMs).catch(() => undefined);
    return this.leader();
  }

  async propose(cmd: KvCommand, deadlineMs: number): Promise<KvResult> {
    const started = this.clock.now();
    try {
      const result = await this.proposeAnywhere(cmd, deadlineMs);
      this.observeProposal(result.ok ? 'ok' : 'precondition_failed', started);
      return result;
    } catch (err) {
      this.observeProposal(err instanceof ClientError && (err.code === 'no_leader' || err.code === 'timeout') ? err.code : 'error', started);
      throw err;
    }
  }

  private observeProposal(result: 'ok' | 'precondition_failed' | 'no_leader' | 'timeout' | 'error', started: number): void {
    const seconds = (this.clock.now() - started) / 1000;
    for (const h of this.hooks) h.onProposal?.(result, seconds);
  }

  private async proposeAnywhere(cmd: KvCommand, deadlineMs: number): Promise<KvResult> {
    const data = encodeKvCommand(cmd);
    // Why the first try was refused (an overloaded leader, say): named in the answer if retries then
    // run out of time, which alone would only say "the deadline passed".
    let refusal: ClientError | null = null;
    for (;;) {
      if (this.stopped) throw new ClientError('unavailable', 'the node is shutting down');
      const seen = this.leaderSeen();
      try {
        if (this.raft.currentRole === 'leader') return await this.proposeHere(data, deadlineMs);
        const leader = this.leader();
        if (leader && leader.id !== this.id) {
          const result = await this.options.peers.propose(leader.url, cmd, deadlineMs, data);
          this.learnCommit(result.index, result.term);
          // Read-your-writes on this node (SPEC §4): answer once the entry is applied here too.
          if (this.sm.appliedIndex < result.index) await this.waitApplied(result.index, deadlineMs, 'write');
          return result;
        }
      } catch (err) {
        // no_leader means certainly not applied (refused, or another entry won its index): the
        // write may go to the new leader, as long as the client's deadline allows.
        if (!isNoLeader(err)) throw err;
        if (this.clock.now() >= deadlineMs) throw withRefusal(err, refusal);
        refusal ??= err;
      }
      await this.awaitLeader(deadlineMs, seen).catch((err: unknown) => {
        throw isNoLeader(err) ? withRefusal(err, refusal) : err;
      });
    }
  }

  /** Leader-only: append, then resolve once applied here. */
  private proposeHere(data: Uint8Array, deadlineMs: number): Promise<KvResult> {
    const res = this.raft.propose(data);
    if (!res.ok) {
      // Every refusal, 'overloaded' included, is 503 no_leader: nothing was appended, so a retry is
      // safe (SPEC §4); proposeAnywhere retries until the client's deadline.
      const hint = res.leader && res.reason !== 'overloaded' ? ` (the leader is ${res.leader})` : '';
      const what = res.reason === 'overloaded' ? 'the leader is overloaded' : 'not proposed';
      return Promise.reject(new ClientError('no_leader', `${what}: ${res.message}${hint}`));
    }
    this.kick();
    return new Promise<KvResult>((resolve, reject) => {
      const proposal: Proposal = { index: res.index, term: res.term, resolve, reject };
      const waiting = this.proposals.get(res.index);
      if (waiting) waiting.push(proposal);
      else this.proposals.set(res.index, [proposal]);
      this.proposalDeadlines.add(proposal, deadlineMs);
    });
  }

  private proposalTimedOut(proposal: Proposal): void {
    const still = this.proposals.get(proposal.index);
    const at = still?.indexOf(proposal) ?? -1;
    if (!still || at < 0) return; // already settled
    still.splice(at, 1);
    if (still.length === 0) this.proposals.delete(proposal.index);
    proposal.reject(new ClientError('timeout', `the write was proposed at index ${proposal.index} but not committed in time; its outcome is unknown`));
  }

  async readBarrier(deadlineMs: number): Promise<void> {
    for (;;) {
      if (this.stopped) throw new ClientError('unavailable', 'the node is shutting down');
      const seen = this.leaderSeen();
      let index: number | null = null;
      try {
        if (this.raft.currentRole === 'leader') {
          index = await this.readIndexHere(deadlineMs);
        } else {
          const leader = this.leader();
          // ReadIndex from a follower (thesis §6.4.1): the leader confirms, this node serves.
          if (leader && leader.id !== this.id) {
            const confirmed = await this.options.peers.readIndex(leader.url, deadlineMs);
            this.learnCommit(confirmed.index, confirmed.term);
            index = confirmed.index;
          }
        }
      } catch (err) {
        // Leadership moved before the read was confirmed: ask the new leader.
        if (!isNoLeader(err) || this.clock.now() >= deadlineMs) throw err;
      }
      if (index !== null) {
        if (this.sm.appliedIndex < index) await this.waitApplied(index, deadlineMs, 'read');
        return;
      }
      await this.awaitLeader(deadlineMs, seen);
    }
  }

  private readIndexHere(deadlineMs: number): Promise<number> {
    const requestId = this.nextReadId++;
    const res = this.raft.readIndex(requestId);
    if (!res.ok) return Promise.reject(new ClientError('no_leader', `${this.id} is not the leader`));
    this.kick();
    return new Promise<number>((resolve, reject) => {
      const read: PendingRead = { resolve, reject, cancelDeadline: noCancel };
      this.reads.set(requestId, read);
      read.cancelDeadline = this.waiters.deadline(deadlineMs, () => {
        if (!this.reads.delete(requestId)) return;
        reject(new ClientError('timeout', 'the leader could not confirm its leadership in time'));
      });
    });
  }

  async transferLeadership(to: NodeId | null, deadlineMs: number, reason: TransferReason = 'requested'): Promise<{ leader: NodeId; term: number }> {
    for (;;) {
      if (this.raft.currentRole === 'leader') return this.transferHere(to, deadlineMs, reason);
      const leader = this.leader();
      if (leader && leader.id !== this.id) return this.options.peers.transfer(leader.url, to, deadlineMs);
      await this.awaitLeader(deadlineMs, this.leaderSeen());
    }
  }

  private async transferHere(to: NodeId | null, deadlineMs: number, reason: TransferReason = 'requested'): Promise<{ leader: NodeId; term: number }> {
    if (this.raft.currentRole !== 'leader') throw new ClientError('no_leader', `${this.id} is not the leader`);
    const startTerm = this.raft.currentTerm;
    // Among equally up-to-date targets, the member in contact longest (as etcd picks its
    // transferee): one that has just restarted would lead with cold code and caches. With no
    // target named, a member on its way out is passed over; if no other is eligible, the core
    // picks among all.
    const order = this.contactOrder();
    const departing = this.options.departing;
    const chosen = to ?? (departing === undefined ? null : bestTransferTarget(this.raft.status(), order, (peer) => !departing(peer.id)));
    const res = this.raft.transferLeadership(chosen, order, reason === 'shutdown');
    if (!res.ok) throw new ClientError('bad_request', `cannot transfer leadership: ${res.message}`);
    if (res.to === this.id) return { leader: this.id, term: this.raft.currentTerm };
    // Thesis §3.10: TimeoutNow leaves at once (an early message: it needs no fsync), not on the
    // next turn of a loop that may be busy with the client requests of a shutdown.
    this.drain();
    // From here this node appends no proposal in its term (§3.10) unless the transfer is aborted.
    // Each member learns at once which of the writes it forwarded here will not be appended (those
    // this node has not handled yet, stream-frames.ts), and takes them to the next leader without
    // waiting for their refusals: the target, whose own forwards are then proposed the moment it
    // wins, with its first entry, instead of a round trip to this busy node later.
    for (const fence of this.callStreams) fence();
    const target = res.to;
    const deathsBefore = this.deathReports.get(target) ?? 0;
    try {
      const moved = await this.awaitTransfer(target, deadlineMs, deathsBefore);
      for (const h of this.hooks) h.onLeadershipTransfer?.({ reason, from: this.id, to: moved.leader, term: moved.term, ok: true });
      return moved;
    } catch (err) {
      for (const h of this.hooks) h.onLeadershipTransfer?.({ reason, from: this.id, to: target, term: startTerm, ok: false });
      throw err;
    }
  }

  /**
   * Until another member leads. A stopping leader has stepped down with its TimeoutNow (its vote
   * went with it), so the core cannot give that transfer up: if the target's process is reported
   * gone meanwhile, nobody will win that term soon, and the wait ends now rather than at the
   * deadline (with every member stopping at once, as `raftlet local` or a StatefulSet deleted with
   * parallel pod management does, it used to last two election timeouts).
   */
  private async awaitTransfer(target: NodeId, deadlineMs: number, deathsBefore: number): Promise<{ leader: NodeId; term: number }> {
    const done = (): boolean => {
      const leader = this.raft.currentLeader;
      return leader !== null && leader !== this.id;
    };
    const aborted = (): boolean => this.raft.currentRole === 'leader' && this.raft.status().transferee === null;
    const targetGone = (): boolean => (this.deathReports.get(target) ?? 0) > deathsBefore;
    try {
      await this.waiters.until(() => done() || aborted() || targetGone(), deadlineMs);
    } catch {
      throw new ClientError('timeout', `leadership transfer to ${target} did not finish in time`);
    }
    if (done()) return { leader: this.raft.currentLeader as NodeId, term: this.raft.currentTerm };
    if (targetGone()) throw new ClientError('unavailable', `leadership transfer to ${target} failed: its process is gone (connection refused)`);
    throw new ClientError('timeout', `leadership transfer to ${target} was aborted after an election timeout`);
  }

  private learnCommit(index: number, term: number): void {
    this.guard(() => this.raft.learnCommit(index, term));
    // What this node holds of it is applied now, durable here or not, so the caller's wait for it
    // below usually ends at once, without another turn of the loop or a timer.
    this.applyCommitted();
    this.kick();
  }

  kv(): KvView {
    return this.sm;
  }

  // ---- waiting helpers ----------------------------------------------------------------------------

  /** Resolves once index is applied here; rejects with ClientError 'timeout' at deadlineMs, or
   * 'unavailable' if the node stops first. Callers check first that index is not applied yet (and
   * so skip the await when it is). */
  private waitApplied(index: number, deadlineMs: number, kind: AppliedWaitKind): Promise<void> {
    if (this.stopped) return Promise.reject(new ClientError('unavailable', 'the node is shutting down'));
    return this.appliedWaits.wait(index, deadlineMs, kind);
  }

  /** Who led, and in which term, when a try began. */
  private leaderSeen(): LeaderSeen {
    return { leader: this.raft.currentLeader, term: this.raft.currentTerm };
  }

  /**
   * Waits a little for the leader or term to differ from `seen` (taken when the refused try began);
   * past the deadline, no_leader (nothing was proposed). When they already differ it returns at
   * once: a refusal that arrives after leadership has moved (a forward the old leader answered late,
   * its thread busy with a hand-off) is retried against the new leader now, not after a wait for
   * the next change. Each retry without a wait consumes a change of leader or term, so this cannot
   * spin.
   */
  private async awaitLeader(deadlineMs: number, seen: LeaderSeen): Promise<void> {
    const now = this.clock.now();
    if (now >= deadlineMs) {
      const why = this.raft.currentLeader === null ? 'no leader was elected within the request timeout' : 'the request timeout passed before a retry';
      throw new ClientError('no_leader', why);
    }
    await this.waitLeaderChange(seen.leader, seen.term, Math.min(LEADER_POLL_MS, deadlineMs - now));
  }
}
