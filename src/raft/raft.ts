// The Raft consensus core: a deterministic state machine with no clocks, sockets, files or global
// randomness. The host calls tick() on a timer, step() for each message received, propose()/
// readIndex()/transferLeadership()/proposeConfigChange() for clients, and drains ready()/advance().
import { RaftLog, entryBytes } from './log.ts';
import { applyConfigChange, findMember, isVoter, voters } from './membership.ts';
import { betterTransferTarget, Progress, quorumSize, quorumValue } from './progress.ts';
import type {
  AppHealth,
  AppendRequest,
  AppendResponse,
  ConfigChange,
  Entry,
  HardState,
  HeartbeatRequest,
  HeartbeatResponse,
  Membership,
  Message,
  NodeId,
  PeerProgress,
  ProposeResult,
  RaftConfig,
  RaftEvent,
  RaftStatus,
  ReadState,
  Ready,
  RestoredState,
  Role,
  Snapshot,
  SnapshotRequest,
  VoteRequest,
  VoteResponse,
} from './types.ts';

/** The configuration of a brand-new cluster: one config entry at index 1, identical on every
 * bootstrapping member so that their logs match from the start (Log Matching, §5.3). */
export function bootstrapState(members: Membership): RestoredState {
  const sorted = [...members].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return {
    hardState: { term: 1, votedFor: null, commitIndex: 0 },
    snapshot: null,
    entries: [{ kind: 'config', term: 1, index: 1, members: sorted }],
  };
}

/** A report that the leader of `term` died (reportPeerDead). */
interface DeathReport {
  readonly leader: NodeId;
  readonly term: number;
  /** While above 0, messages from that leader were in flight when it died: no sign of life. */
  inFlightTicks: number;
}

interface PendingRead {
  readonly requestId: number;
  readonly index: number;
  /** The heartbeat round that must be answered by a majority before the read may be served. */
  readonly round: number;
}

type ElectionKind = 'preVote' | 'vote' | 'transfer';

/** Extra election timeouts a member whose application is unhealthy waits before campaigning, so that
 * a member with a healthy application wins first; it still campaigns in the end, so the cluster is
 * never leaderless because of its applications. */
export const APP_UNHEALTHY_EXTRA_TIMEOUTS = 3;

/** Heartbeat rounds remembered for the lease while unconfirmed; a leader that hears from no quorum
 * steps down after one election timeout, so only a burst of reads comes near this. */
const MAX_UNCONFIRMED_ROUNDS = 4096;

const LEADER_TRAFFIC = new Set<Message['kind']>(['append', 'heartbeat', 'snapshot', 'timeoutNow']);

export class Raft {
  readonly id: NodeId;
  private readonly electionTicks: number;
  private readonly heartbeatTicks: number;
  private readonly random: () => number;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly maxEntriesPerAppend: number;
  private readonly maxBytesPerAppend: number;
  private readonly maxInflight: number;
  private readonly maxUncommittedBytes: number;

  // Persistent state (Figure 2) and the log.
  private term: number;
  private votedFor: NodeId | null;
  private readonly log: RaftLog;

  // Volatile state.
  private role: Role = 'follower';
  private leader: NodeId | null = null;
  private commitIndex: number;
  /** The last committed index handed to the host for applying. */
  private appliedHandedOut: number;
  /** The highest commit learnt (learnCommit) for an entry this log did not hold yet. */
  private commitHint: { readonly index: number; readonly term: number } | null = null;
  /** A Ready with a snapshot was handed out and not advanced yet: its entries wait for the install. */
  private snapshotOutstanding = false;
  private members: Membership;
  /** Index of the config entry in effect (0: it came from the snapshot). */
  private configIndex = 0;

  // Timers, in ticks.
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;

  // Candidate state.
  private readonly votes = new Map<NodeId, boolean>();
  /** This pre-vote round began because the leader was reported dead (see reportPeerDead). */
  private hurriedPreVote = false;
  /** Pre-candidates this round asked a second time (contestPreVote), at most once each. */
  private readonly askedAgain = new Set<NodeId>();

  /** The leader we followed was reported dead (reportPeerDead). */
  private deathReport: DeathReport | null = null;

  // Leader state.
  private readonly progress = new Map<NodeId, Progress>();
  /** Index of this leader's first entry (its no-op); reads and config changes wait for its commit. */
  private termStartIndex = 0;
  private pendingConfigIndex = 0;
  private transferee: NodeId | null = null;
  private transferElapsed = 0;
  /** The transfer under way is a stopping leader's: its vote goes with the TimeoutNow. */
  private transferringToLeave = false;
  private readRound = 0;
  private pendingReads: PendingRead[] = [];
  private readsAwaitingTermCommit: number[] = [];
  private needsBroadcast = false;
  /** Bytes of command entries in this leader's log past its commit index (the overload budget). */
  private uncommittedBytes = 0;

  // Leader lease (leaseBasisTick) and the application's health.
  /** tick() calls so far: the clock the lease is counted in. */
  private ticks = 0;
  /** Heartbeat round -> the tick in which it was sent, for rounds no quorum has answered yet. */
  private readonly roundSentAt = new Map<number, number>();
  /** The newest heartbeat round a quorum answered in this term, and the tick it was sent in. */
  private leaseRound = 0;
  private leaseRoundTick = -1;
  /** The term in which this node sent TimeoutNow: its lease is void for the rest of that term. */
  private leaseForfeitedTerm = 0;
  /** A leader elected through TimeoutNow has no lease before this tick: its predecessor's may run. */
  private leaseNotBeforeTick = 0;
  private lastCampaign: ElectionKind = 'vote';
  /** Refuse (pre-)votes for an election timeout although no leader is known: after a (re)start and
   * after stepping down, when a lease this node helped grant may still run (see handleTerm). */
  private leaseGuard: boolean;
  private appHealth: AppHealth = 'unchecked';

  // Persistence bookkeeping: what has been handed to the host, what it has made durable.
  private persistedHardState: HardState;
  private unstableFrom: number;
  private stableIndex: number;
  private readyOutstanding = false;
  private truncatedWhileOutstanding: number | null = null;
  private snapshot: Snapshot | null;
  private snapshotToPersist: Snapshot | null = null;

  // Outboxes, drained by ready().
  private sendNow: Message[] = [];
  private messages: Message[] = [];
  private events: RaftEvent[] = [];
  private readStates: ReadState[] = [];
  private readsFailed: number[] = [];

  constructor(config: RaftConfig, restored: RestoredState) {
    if (config.heartbeatTicks < 1 || config.electionTicks <= config.heartbeatTicks) {
      throw new Error(`electionTicks (${config.electionTicks}) must exceed heartbeatTicks (${config.heartbeatTicks}) >= 1`);
    }
    this.id = config.id;
    this.electionTicks = config.electionTicks;
    this.heartbeatTicks = config.heartbeatTicks;
    this.random = config.random;
    this.preVote = config.preVote ?? true;
    this.checkQuorum = config.checkQuorum ?? true;
    this.maxEntriesPerAppend = config.maxEntriesPerAppend ?? 512;
    this.maxBytesPerAppend = config.maxBytesPerAppend ?? 1 << 20;
    this.maxInflight = config.maxInflightAppends ?? 64;
    this.maxUncommittedBytes = config.maxUncommittedBytes ?? 0;
    this.leaseGuard = config.leaseGuardOnStart ?? false;

    this.log = new RaftLog(restored.snapshot?.meta ?? null, restored.entries);
    this.snapshot = restored.snapshot;
    this.term = restored.hardState.term;
    this.votedFor = restored.hardState.votedFor;
    this.persistedHardState = restored.hardState;
    // The persisted commit index is a hint; everything up to it was committed when it was written.
    this.commitIndex = Math.max(this.log.snapshotIndex, Math.min(restored.hardState.commitIndex, this.log.lastIndex));
    this.appliedHandedOut = this.log.snapshotIndex;
    this.stableIndex = this.log.lastIndex;
    this.unstableFrom = this.log.lastIndex + 1;
    this.members = restored.snapshot?.meta.members ?? [];
    this.refreshMembership();
    this.resetElectionTimeout();
  }

  // ---- host API ---------------------------------------------------------------------------------

  tick(): void {
    if (this.deathReport !== null && this.deathReport.inFlightTicks > 0) this.deathReport.inFlightTicks--;
    this.ticks++;
    if (this.role === 'leader') this.tickLeader();
    else this.tickElection();
  }

  step(m: Message): void {
    if (m.to !== this.id) return;
    if (!this.handleTerm(m)) return;
    switch (m.kind) {
      case 'vote':
        this.handleVoteRequest(m);
        return;
      case 'voteResponse':
        this.handleVoteResponse(m);
        return;
      case 'append':
        this.followLeader(m.from);
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.followLeader(m.from);
        this.handleHeartbeat(m);
        return;
      case 'snapshot':
        this.followLeader(m.from);
        this.handleSnapshot(m);
        return;
      case 'timeoutNow':
        // Thesis §3.10: the leader says our log is up to date; campaign at once, skipping pre-vote.
        if (this.role !== 'leader' && this.promotable()) this.campaign('transfer');
        return;
      case 'appendResponse':
        if (this.role === 'leader') this.handleAppendResponse(m);
        return;
      case 'heartbeatResponse':
        if (this.role === 'leader') this.handleHeartbeatResponse(m);
        return;
      default: {
        const never: never = m;
        return never;
      }
    }
  }

  /**
   * The host learned that peer's process is gone: an established connection to it closed and a
   * new one was refused. Not a timeout: a leader that is slow or cut off is still waited out for an
   * election timeout. A follower of that leader campaigns now (pre-vote first) instead of waiting
   * its timeout out. Campaigning, it no longer follows anyone, so the leader lease (thesis §4.2.3)
   * no longer holds it back from granting the pre-vote and vote of a follower that saw the same;
   * one that did not see it still drops them. Safety does not depend on this report: a false one
   * costs an election, nothing more (but it does void the lease the leader counted on).
   *
   * A leader told that the target of its transfer died gives the transfer up now (§3.10) instead of
   * refusing proposals for the rest of an election timeout: a dead target cannot campaign, and if
   * the report was false and its TimeoutNow was already out, the target may still win, which is
   * what a transfer given up after its timeout allows as well.
   */
  reportPeerDead(peer: NodeId): void {
    if (this.role === 'leader' && peer === this.transferee) {
      this.abortTransfer();
      return;
    }
    if (this.role !== 'follower' || peer !== this.leader) return;
    this.deathReport = { leader: peer, term: this.term, inFlightTicks: this.heartbeatTicks };
    if (!this.promotable()) return;
    if (this.appHealth === 'unhealthy') {
      // A member whose application is unhealthy lets a healthy one win: it does not hurry its own
      // campaign (that waits its extra timeouts), it only stops following the dead leader, so the
      // leader's lease no longer holds its vote back from the member that campaigns now.
      this.setLeader(null);
      return;
    }
    this.campaign(this.preVote ? 'preVote' : 'vote');
    this.hurriedPreVote = this.currentRole === 'precandidate'; // (campaign may have decided at once)
  }

  /** Start an election now (used to let a single-node cluster elect itself without waiting). */
  campaignNow(): void {
    if (this.role !== 'leader' && this.promotable()) this.campaign(this.preVote ? 'preVote' : 'vote');
  }

  propose(data: Uint8Array): ProposeResult {
    const refused = this.refuseProposal();
    if (refused) return refused;
    const entry: Entry = { kind: 'command', term: this.term, index: this.log.lastIndex + 1, data };
    const bytes = entryBytes(entry);
    if (this.overBudget(bytes)) {
      return this.refusal('overloaded', `${this.uncommittedBytes} bytes of entries are waiting to commit (limit ${this.maxUncommittedBytes}); not proposed, retry later`);
    }
    this.uncommittedBytes += bytes;
    return this.appendAsLeader(entry);
  }

  /** etcd's MaxUncommittedEntriesSize: past the budget a leader takes no more proposals until
   * commits catch up, so a burst cannot pile up entries faster than a quorum can persist them. An
   * entry larger than the budget is still taken when nothing else is waiting. */
  private overBudget(bytes: number): boolean {
    return this.maxUncommittedBytes > 0 && this.uncommittedBytes > 0 && this.uncommittedBytes + bytes > this.maxUncommittedBytes;
  }

  proposeConfigChange(change: ConfigChange): ProposeResult {
    const refused = this.refuseProposal();
    if (refused) return refused;
    // Thesis §4.1 (and the 2015 fix on raft-dev): one change at a time, and only after this leader
    // has committed an entry of its own term.
    if (this.pendingConfigIndex > this.commitIndex) {
      return this.refusal('change_in_progress', `configuration change at index ${this.pendingConfigIndex} is not committed yet`);
    }
    if (this.commitIndex < this.termStartIndex) {
      return this.refusal('change_in_progress', `leader has not committed an entry of term ${this.term} yet`);
    }
    const next = applyConfigChange(this.members, change, this.id);
    if ('error' in next) return this.refusal('invalid_change', next.error);
    if (change.kind === 'promote') {
      // Thesis §4.2.1: a new server gets a vote only once it has caught up (has answered, and is
      // within one append batch of the commit index), or commits could stall behind a voter that
      // still has the whole log to fetch.
      const match = this.progress.get(change.id)?.matchIndex ?? 0;
      if (match === 0 || match + this.maxEntriesPerAppend < this.commitIndex) {
        return this.refusal('invalid_change', `${change.id} has not caught up yet (matchIndex ${match}, commitIndex ${this.commitIndex})`);
      }
    }
    const result = this.appendAsLeader({ kind: 'config', term: this.term, index: this.log.lastIndex + 1, members: next.members });
    if (result.ok) this.pendingConfigIndex = result.index;
    return result;
  }

  /** ReadIndex (thesis §6.4). The answer comes later as a ReadState or in readsFailed. */
  readIndex(requestId: number): { ok: true } | { ok: false; leader: NodeId | null } {
    if (this.role !== 'leader') return { ok: false, leader: this.leader };
    if (this.commitIndex < this.termStartIndex) {
      // §6.4 step 1: until its no-op commits, a new leader does not know the commit index.
      this.readsAwaitingTermCommit.push(requestId);
      return { ok: true };
    }
    this.pendingReads.push({ requestId, index: this.commitIndex, round: this.readRound + 1 });
    this.startReadRoundIfIdle();
    return { ok: true };
  }

  /** Thesis §3.10. `to` null: the most up-to-date voter; among equals, the first in `prefer` (the
   * host's order, e.g. the longest connected first: a member that has just restarted is the
   * coldest to lead), then any. `leaving`: this leader is stopping, and votes for the target as it
   * sends TimeoutNow (voteForTransferee). */
  transferLeadership(to: NodeId | null, prefer: readonly NodeId[] = [], leaving = false): { ok: true; to: NodeId } | { ok: false; message: string } {
    if (this.role !== 'leader') return { ok: false, message: 'not the leader' };
    if (this.transferee !== null) return { ok: false, message: `a transfer to ${this.transferee} is already in progress` };
    const target = to ?? this.mostUpToDateVoter(prefer);
    if (target === null) return { ok: false, message: 'no other voter to transfer leadership to' };
    if (target === this.id) return { ok: true, to: target };
    if (!isVoter(this.members, target)) return { ok: false, message: `${target} is not a voting member` };
    const pr = this.progress.get(target);
    if (!pr) return { ok: false, message: `${target} is not a member` };
    this.transferee = target;
    this.transferElapsed = 0;
    this.transferringToLeave = leaving;
    this.events.push({ kind: 'transferStarted', to: target, term: this.term });
    if (pr.matchIndex === this.log.lastIndex) this.sendTimeoutNow(target);
    else this.sendAppend(pr, false);
    return { ok: true, to: target };
  }

  /** The host serialised its state machine at `index` (<= the last index it was handed to apply,
   * and <= durableIndex): drop the log up to there (§7) and return the snapshot for the host to persist. */
  compact(index: number, data: Uint8Array): Snapshot {
    if (index > this.appliedHandedOut) throw new Error(`snapshot at ${index} is beyond applied index ${this.appliedHandedOut}`);
    // Entries may be applied before they are durable here (takeCommitted), but the log is compacted
    // only over durable ones: an entry still waiting for its fsync would be dropped unsaved.
    if (index > this.stableIndex) throw new Error(`snapshot at ${index} is beyond the durable index ${this.stableIndex}`);
    const term = this.log.termAt(index);
    if (term === undefined || index <= this.log.snapshotIndex) throw new Error(`cannot snapshot at ${index}: log holds [${this.log.firstIndex}, ${this.log.lastIndex}]`);
    const snapshot: Snapshot = { meta: { index, term, members: this.membersAt(index) }, data };
    this.log.compact(index);
    this.snapshot = snapshot;
    return snapshot;
  }

  /**
   * The leader says the entry (index, term) is committed, e.g. in its answer to a write or read
   * this follower forwarded. If this log holds that entry, Log Matching (§5.3) makes everything up
   * to it identical to the leader's log, hence committed: apply it now rather than after the next
   * append or heartbeat (read-your-writes on followers without a commit broadcast). If it does not
   * hold it yet (the answer overtook the append that carries it), the commit is kept and taken up
   * when an append brings that entry (adoptCommitHint): a committed entry stays committed.
   */
  learnCommit(index: number, term: number): void {
    if (index <= this.commitIndex) return;
    if (index <= this.log.lastIndex && this.log.termAt(index) === term) {
      // A follower that forwarded the request may have become leader since.
      if (this.role === 'leader') this.releaseBudget(this.commitIndex + 1, index);
      this.commitIndex = index;
      return;
    }
    if (this.commitHint === null || index > this.commitHint.index) this.commitHint = { index, term };
  }

  /** The last log index this node holds durably: step 2 of an earlier Ready covered it. */
  get durableIndex(): number {
    return this.stableIndex;
  }

  /**
   * Committed entries not handed out yet, handed out now instead of in the next Ready; a host may
   * call it while a Ready is being persisted and apply what it returns at once. They need not be
   * durable here: a committed entry is durable on a majority and final (§5.4), and Log Matching
   * (§5.3) makes this log's entries up to commitIndex the committed ones, so applying one ahead of
   * this node's own fsync changes nothing a crash could take back (a restarted node applies again
   * from what it persisted). A forwarded write's answer (learnCommit) or a quorum's acknowledgement
   * is thus applied as soon as it arrives, not after the fsync still running here. Nothing is handed
   * out while a snapshot is waiting to be installed: entries after it must not be applied before it.
   */
  takeCommitted(): Entry[] {
    if (this.snapshotToPersist !== null || this.snapshotOutstanding) return [];
    const to = this.appliableIndex();
    if (to <= this.appliedHandedOut) return [];
    const entries = this.log.slice(this.appliedHandedOut + 1, to);
    this.appliedHandedOut = to;
    return entries;
  }

  /** The last entry that may be applied, by a Ready or takeCommitted: committed, and in this log.
   * (A planted bug in the simulator's checker tests overrides it.) */
  protected appliableIndex(): number {
    return Math.min(this.commitIndex, this.log.lastIndex);
  }

  hasReady(): boolean {
    return (
      this.needsBroadcast ||
      this.sendNow.length > 0 ||
      this.messages.length > 0 ||
      this.events.length > 0 ||
      this.readStates.length > 0 ||
      this.readsFailed.length > 0 ||
      this.snapshotToPersist !== null ||
      this.unstableFrom <= this.log.lastIndex ||
      this.hardStateChanged() ||
      this.appliedHandedOut < Math.min(this.commitIndex, this.log.lastIndex)
    );
  }

  /**
   * What may leave before any fsync (Ready.sendNow), taken while a Ready is still being persisted so
   * that it need not wait for that fsync: new entries go out to followers as they are appended
   * (thesis §10.2.1), a read round's heartbeats and their answers, a TimeoutNow, vote requests at
   * once. Sending them is all there is to do; the next Ready carries the rest as usual.
   */
  takeEarlyMessages(): Message[] {
    if (this.needsBroadcast && this.role === 'leader') this.broadcastAppends();
    const early = this.sendNow;
    this.sendNow = [];
    return early;
  }

  ready(): Ready {
    if (this.readyOutstanding) throw new Error('ready() called again before advance()');
    if (this.needsBroadcast) this.broadcastAppends();
    const entries = this.unstableFrom <= this.log.lastIndex ? this.log.slice(this.unstableFrom, this.log.lastIndex) : [];
    const hardState = this.hardStateChanged() || entries.length > 0 ? this.currentHardState() : null;
    const committedTo = this.appliableIndex();
    const committed = committedTo > this.appliedHandedOut ? this.log.slice(this.appliedHandedOut + 1, committedTo) : [];
    const rd: Ready = {
      hardState,
      snapshot: this.snapshotToPersist,
      entries,
      sendNow: this.sendNow,
      messages: this.messages,
      committed,
      readStates: this.readStates,
      readsFailed: this.readsFailed,
      events: this.events,
    };
    this.appliedHandedOut = committedTo > this.appliedHandedOut ? committedTo : this.appliedHandedOut;
    this.snapshotOutstanding = rd.snapshot !== null;
    this.unstableFrom = this.log.lastIndex + 1;
    this.snapshotToPersist = null;
    this.sendNow = [];
    this.messages = [];
    this.readStates = [];
    this.readsFailed = [];
    this.events = [];
    this.readyOutstanding = true;
    this.truncatedWhileOutstanding = null;
    return rd;
  }

  /** The host has persisted, sent and applied everything in rd. */
  advance(rd: Ready): void {
    if (!this.readyOutstanding) throw new Error('advance() without ready()');
    this.readyOutstanding = false;
    this.snapshotOutstanding = false;
    if (rd.hardState) this.persistedHardState = rd.hardState;
    if (rd.snapshot) this.stableIndex = Math.max(this.stableIndex, rd.snapshot.meta.index);
    if (rd.entries.length > 0) {
      let durable = rd.entries[rd.entries.length - 1].index;
      // Entries overwritten after ready() were persisted in their old form: not durable as they are now.
      if (this.truncatedWhileOutstanding !== null) durable = Math.min(durable, this.truncatedWhileOutstanding - 1);
      this.stableIndex = Math.max(this.stableIndex, durable);
    }
    this.truncatedWhileOutstanding = null;
    if (this.role === 'leader') this.maybeCommit();
    else if (this.role === 'candidate') this.tallyVotes(false); // our own vote may count now
  }

  status(): RaftStatus {
    const progress: PeerProgress[] = [];
    if (this.role === 'leader') {
      for (const pr of this.progress.values()) {
        progress.push({
          id: pr.id,
          voter: isVoter(this.members, pr.id),
          matchIndex: pr.matchIndex,
          nextIndex: pr.nextIndex,
          state: pr.state,
          recentActive: pr.recentActive,
          appHealth: pr.appHealth,
        });
      }
    }
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      votedFor: this.votedFor,
      leader: this.leader,
      commitIndex: this.commitIndex,
      lastLogIndex: this.log.lastIndex,
      lastLogTerm: this.log.lastTerm,
      firstLogIndex: this.log.firstIndex,
      snapshotIndex: this.log.snapshotIndex,
      members: this.members,
      transferee: this.transferee,
      progress,
    };
  }

  // Cheap read-only views for hot paths (status() allocates).
  get currentTerm(): number {
    return this.term;
  }

  get currentRole(): Role {
    return this.role;
  }

  get currentLeader(): NodeId | null {
    return this.leader;
  }

  get committedIndex(): number {
    return this.commitIndex;
  }

  get lastLogIndex(): number {
    return this.log.lastIndex;
  }

  get snapshotIndex(): number {
    return this.log.snapshotIndex;
  }

  get membership(): Membership {
    return this.members;
  }

  /** The log entry at index, for hosts that need to read back (e.g. the simulator's checker). */
  entryAt(index: number): Entry | undefined {
    return index >= this.log.firstIndex && index <= this.log.lastIndex ? this.log.entryAt(index) : undefined;
  }

  termAt(index: number): number | undefined {
    return this.log.termAt(index);
  }

  // ---- leader lease and the application's health -------------------------------------------------

  /** tick() calls since this core was made. */
  get tickCount(): number {
    return this.ticks;
  }

  /**
   * How many of its own ticks a follower refuses every vote and pre-vote for a higher term after it
   * last heard from its leader: handleTerm drops them while electionElapsed < electionTicks, and
   * electionElapsed reaches electionTicks at the electionTicks-th tick after that message, of which
   * the first may come at once. So the refusal lasts at least electionTicks - 1 tick intervals.
   */
  get leaseTicks(): number {
    return this.electionTicks - 1;
  }

  /**
   * The leader lease, in ticks (the host turns them into time). Returns the tick in which this
   * leader sent the newest heartbeat round that a quorum has answered, or null when it may not count
   * on a lease: not leading, check-quorum off, no round answered yet in this term, a transfer under
   * way, or TimeoutNow sent in this term (it makes voters set their lease aside, and a late copy
   * could still arrive).
   *
   * Why no other leader can exist until leaseTicks follower ticks after that round was sent: a
   * leader of a higher term needs votes from a quorum, which shares a member m with the quorum that
   * answered. If m is a follower, it received the round after it was sent and refuses every vote and
   * pre-vote for a higher term (TimeoutNow aside) for leaseTicks of its ticks (handleTerm); if m is
   * this leader, it votes for nobody while it leads, and after stepping down it refuses for an
   * election timeout too (leaseGuard). A member that restarts keeps refusing for an election timeout
   * (leaseGuard), as it cannot know whose lease it helped grant. No term rises without such votes
   * (pre-vote, §9.6 of the thesis), so until then no message can depose anyone either.
   *
   * A transfer is the exception, made safe from both ends: the old leader has no lease from the
   * moment it starts one (and none for the rest of its term once it sent TimeoutNow, whose voters set
   * their lease aside), and a leader elected through TimeoutNow takes no lease before an election
   * timeout of its own ticks, by when every lease its predecessor reported has run out.
   */
  leaseBasisTick(): number | null {
    if (this.role !== 'leader' || !this.checkQuorum) return null;
    if (this.transferee !== null || this.leaseForfeitedTerm === this.term) return null;
    if (this.leaseRound === 0 || this.leaseRoundTick < 0 || this.ticks < this.leaseNotBeforeTick) return null;
    return this.leaseRoundTick;
  }

  /** The application beside this node (RAFTLET_APP_HEALTH_URL). An unhealthy one makes this node
   * wait APP_UNHEALTHY_EXTRA_TIMEOUTS more election timeouts before campaigning, and its heartbeat
   * answers tell the leader, which prefers healthy members when it hands leadership over. */
  setAppHealth(health: AppHealth): void {
    if (health === this.appHealth) return;
    this.appHealth = health;
    if (this.role !== 'leader') this.resetElectionTimeout();
  }

  get currentAppHealth(): AppHealth {
    return this.appHealth;
  }

  // ---- rules that a test may override to plant a known bug -------------------------------------

  /** §5.2, §5.4.1: at most one vote per term, only for a candidate whose log is at least as up to date. */
  protected canGrantVote(m: VoteRequest): boolean {
    const free =
      this.votedFor === m.from ||
      (this.votedFor === null && this.leader === null) ||
      (m.preVote && m.term > this.term);
    return free && this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
  }

  /**
   * Figure 2 "persist before responding", applied to the vote a candidate gives itself: it wins only
   * once its term and vote are durable, or a crash could let it vote again in the term it leads.
   * (Its vote requests left before that fsync; see campaign.) So a leader's term is always durable.
   */
  protected ownVoteDurable(): boolean {
    return this.persistedHardState.term === this.term && this.persistedHardState.votedFor === this.id;
  }

  /** §5.4.2: only an entry of the leader's current term is committed by counting replicas. */
  protected canCommitByCounting(index: number): boolean {
    return this.log.termAt(index) === this.term;
  }

  // ---- terms and roles ---------------------------------------------------------------------------

  /** §5.1 term rules, with the pre-vote and leader-lease exceptions. Returns false to drop m. */
  private handleTerm(m: Message): boolean {
    if (m.term > this.term) {
      if (m.kind === 'vote' || m.kind === 'voteResponse') {
        // Thesis §4.2.3 / §6.2: while we hear from a leader, an election's higher term is a
        // disruption, not news: a vote request, and also, on a follower, the answer to a pre-vote
        // it sent before it heard from the leader again (a refusal carries the refuser's term;
        // adopting it would let the follower vote in that term within the lease; a leader steps
        // down on it as on any higher term, §5.1, and then votes for nobody, leaseGuard). The
        // leader lease (leaseBasisTick) rests on this rule: change it and the lease must change.
        const inLease = this.checkQuorum && (this.leader !== null || this.leaseGuard) && this.electionElapsed < this.electionTicks;
        if (m.kind === 'vote') {
          if (inLease && !m.transfer) return false;
          if (m.preVote) return true; // a pre-vote never changes our term
        } else if (m.preVote && m.granted) {
          return true; // carries the future term
        } else if (inLease && this.role !== 'leader') {
          return false;
        }
      }
      const fromLeader = m.kind === 'append' || m.kind === 'heartbeat' || m.kind === 'snapshot';
      if (this.role === 'leader') this.events.push({ kind: 'steppedDown', reason: 'higherTerm', term: m.term });
      this.becomeFollower(m.term, fromLeader ? m.from : null);
      return true;
    }
    if (m.term < this.term) {
      if (m.kind === 'append' || m.kind === 'heartbeat' || m.kind === 'snapshot') {
        // A deposed leader (e.g. returning from a partition) learns our term and steps down; with
        // pre-vote and check-quorum it would otherwise never hear of it.
        this.messages.push(this.appendReply(m.from, false, 0, 0, 0, 0));
      } else if (m.kind === 'vote' && m.preVote) {
        this.sendNow.push({ kind: 'voteResponse', from: this.id, to: m.from, term: this.term, preVote: true, granted: false });
      }
      return false;
    }
    return true;
  }

  private becomeFollower(term: number, leader: NodeId | null): void {
    const wasLeader = this.role === 'leader';
    this.setTerm(term);
    this.setRole('follower');
    this.setLeader(leader);
    this.electionElapsed = 0;
    this.resetElectionTimeout();
    if (wasLeader) {
      // The lease this node last reported may still run: vote for nobody until it is over.
      this.leaseGuard = true;
      this.dropLeaderState();
    }
  }

  private followLeader(from: NodeId): void {
    const report = this.deathReport;
    if (report !== null && report.leader === from && report.term === this.term) {
      // Sent before it died (its last messages can trail the report): take the entries, but this
      // is no sign of life. Still hearing from it after that, the report was false: forget it.
      if (report.inFlightTicks > 0) return;
      this.deathReport = null;
    }
    // An append in our own term comes from the one leader of this term (Election Safety, §5.2).
    if (this.role !== 'follower') this.setRole('follower');
    if (this.leader !== from) this.setLeader(from);
    this.electionElapsed = 0;
  }

  private setTerm(term: number): void {
    if (term === this.term) return;
    this.term = term;
    this.votedFor = null;
    this.events.push({ kind: 'termChanged', term });
  }

  private setRole(role: Role): void {
    if (role === this.role) return;
    this.role = role;
    this.events.push({ kind: 'roleChanged', role, term: this.term });
  }

  private setLeader(leader: NodeId | null): void {
    if (leader === this.leader) return;
    this.leader = leader;
    this.events.push({ kind: 'leaderChanged', leader, term: this.term });
  }

  private dropLeaderState(): void {
    this.progress.clear();
    this.transferee = null;
    this.needsBroadcast = false;
    this.uncommittedBytes = 0;
    for (const read of this.pendingReads) this.readsFailed.push(read.requestId);
    this.readsFailed.push(...this.readsAwaitingTermCommit);
    this.pendingReads = [];
    this.readsAwaitingTermCommit = [];
    this.resetLease();
  }

  private resetLease(): void {
    this.roundSentAt.clear();
    this.leaseRound = 0;
    this.leaseRoundTick = -1;
  }

  private promotable(): boolean {
    return isVoter(this.members, this.id);
  }

  private resetElectionTimeout(): void {
    // §5.2: randomized in [T, 2T) so that split votes are rare.
    const appDelay = this.appHealth === 'unhealthy' ? APP_UNHEALTHY_EXTRA_TIMEOUTS * this.electionTicks : 0;
    this.randomizedElectionTimeout = this.electionTicks + Math.floor(this.random() * this.electionTicks) + appDelay;
  }

  // ---- elections (§5.2, thesis §9.6 pre-vote) ----------------------------------------------------

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed >= this.randomizedElectionTimeout && this.promotable()) {
      this.electionElapsed = 0;
      this.campaign(this.preVote ? 'preVote' : 'vote');
      return;
    }
    // A pre-vote hurried by a death report may have reached a voter that had no report yet and
    // dropped it under the lease (handleTerm answers nothing). That voter may learn of the death
    // without campaigning itself (its application is unhealthy) or never (no connection to the
    // dead leader, so only its lease runs out), and then nothing in contestPreVote asks it again.
    // So every heartbeat interval the voters that have not answered are asked again, instead of
    // waiting out this round's election timeout. A pre-vote binds nothing: liveness only.
    if (this.hurriedPreVote && this.role === 'precandidate' && this.electionElapsed % this.heartbeatTicks === 0) {
      for (const voter of voters(this.members)) {
        if (voter !== this.id && !this.votes.has(voter)) this.sendNow.push(this.voteRequest(voter, this.term + 1, 'preVote'));
      }
    }
  }

  private campaign(kind: ElectionKind): void {
    this.leaseGuard = false;
    this.lastCampaign = kind;
    this.votes.clear();
    this.hurriedPreVote = false;
    this.askedAgain.clear();
    this.resetElectionTimeout();
    this.electionElapsed = 0;
    let electionTerm: number;
    if (kind === 'preVote') {
      // Pre-vote changes nothing durable: a partitioned node cannot inflate its term (thesis §9.6).
      electionTerm = this.term + 1;
      this.setRole('precandidate');
      this.setLeader(null);
    } else {
      this.becomeCandidate();
      electionTerm = this.term;
    }
    this.votes.set(this.id, true);
    if (this.tallyVotes(kind === 'preVote')) return;
    for (const voter of voters(this.members)) {
      if (voter === this.id) continue;
      // A request promises nothing, so it need not wait for the fsync of this term and self-vote:
      // the voters' fsyncs run alongside ours. What needs our vote durable is winning with it, and
      // tallyVotes waits for that (so the election costs one round trip and one fsync).
      this.sendNow.push(this.voteRequest(voter, electionTerm, kind));
    }
  }

  private voteRequest(to: NodeId, electionTerm: number, kind: ElectionKind): VoteRequest {
    return {
      kind: 'vote',
      from: this.id,
      to,
      term: electionTerm,
      preVote: kind === 'preVote',
      lastLogIndex: this.log.lastIndex,
      lastLogTerm: this.log.lastTerm,
      transfer: kind === 'transfer',
    };
  }

  private becomeCandidate(): void {
    const wasLeader = this.role === 'leader';
    this.setTerm(this.term + 1);
    this.votedFor = this.id;
    this.setRole('candidate');
    this.setLeader(null);
    if (wasLeader) this.dropLeaderState();
    this.events.push({ kind: 'electionStarted', term: this.term });
  }

  /** Decides the election once a majority answered either way; true if it is decided. */
  private tallyVotes(preVote: boolean): boolean {
    const voterIds = voters(this.members);
    let granted = 0;
    let rejected = 0;
    for (const id of voterIds) {
      const vote = this.votes.get(id);
      if (vote === true) granted++;
      else if (vote === false) rejected++;
    }
    const quorum = quorumSize(voterIds.length);
    if (granted >= quorum) {
      if (preVote) this.campaign('vote');
      else if (this.ownVoteDurable()) this.becomeLeader();
      else return false; // advance() tallies again once it is
      return true;
    }
    if (rejected >= quorum) {
      this.becomeFollower(this.term, null);
      return true;
    }
    return false;
  }

  private handleVoteRequest(m: VoteRequest): void {
    if (m.preVote && this.contestPreVote(m)) return;
    const granted = this.canGrantVote(m);
    if (granted && !m.preVote) {
      this.votedFor = m.from;
      this.electionElapsed = 0; // §5.2: granting a vote restarts the election timer
      this.leaseGuard = false; // a later candidate must not wait a whole timeout for this vote
    }
    // A granted pre-vote answers in the proposed term so the pre-candidate can tell it from a stale
    // answer; a refusal carries our term so a stale pre-candidate catches up.
    const term = granted && m.preVote ? m.term : this.term;
    // A vote must be durable before it is told (Figure 2); a pre-vote answer binds nothing.
    (m.preVote ? this.sendNow : this.messages).push({ kind: 'voteResponse', from: this.id, to: m.from, term, preVote: m.preVote, granted });
  }

  /**
   * Followers that see their leader die campaign at the same moment; if each granted the other's
   * pre-vote, both would run for the same term, split the vote and wait out an election timeout.
   * So between two pre-candidates hurried by that report, the one with the more up-to-date log
   * (then the lower id) goes on and the other steps aside and votes for it. The winner also asks
   * again (once), in case its first request arrived before the other had seen the leader die (and
   * was dropped under the lease), or carried an older log. Pre-vote changes nothing durable: this
   * is about liveness only.
   * Returns true if it answered m itself.
   */
  private contestPreVote(m: VoteRequest): boolean {
    if (!this.hurriedPreVote || this.role !== 'precandidate' || m.term !== this.term + 1) return false;
    const sameLog = m.lastLogTerm === this.log.lastTerm && m.lastLogIndex === this.log.lastIndex;
    const outranked = sameLog ? m.from < this.id : this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
    if (outranked) {
      this.becomeFollower(this.term, null); // the usual rules below grant its pre-vote
      return false;
    }
    this.sendNow.push({ kind: 'voteResponse', from: this.id, to: m.from, term: this.term, preVote: true, granted: false });
    if (!this.askedAgain.has(m.from)) {
      this.askedAgain.add(m.from);
      this.sendNow.push(this.voteRequest(m.from, this.term + 1, 'preVote'));
    }
    return true;
  }

  private handleVoteResponse(m: VoteResponse): void {
    const expecting = m.preVote ? this.role === 'precandidate' : this.role === 'candidate';
    if (!expecting) return;
    if (m.preVote && m.granted && m.term !== this.term + 1) return; // from an earlier pre-vote round
    this.votes.set(m.from, m.granted);
    this.tallyVotes(m.preVote);
  }

  private becomeLeader(): void {
    this.setRole('leader');
    this.setLeader(this.id);
    this.events.push({ kind: 'electionWon', term: this.term });
    this.heartbeatElapsed = 0;
    this.electionElapsed = 0;
    this.transferee = null;
    this.readRound = 0;
    // Entries earlier leaders left uncommitted count too: otherwise each short leadership without
    // a quorum could add a budget's worth, and they would pile up across terms.
    this.uncommittedBytes = this.maxUncommittedBytes > 0 ? this.commandBytes(this.commitIndex + 1, this.log.lastIndex) : 0;
    this.resetLease();
    this.leaseNotBeforeTick = this.lastCampaign === 'transfer' ? this.ticks + this.electionTicks : 0;
    this.progress.clear();
    for (const member of this.members) {
      if (member.id === this.id) continue;
      const pr = this.newProgress(member.id);
      pr.startReplicating();
      this.progress.set(member.id, pr);
    }
    // Config entries appended by earlier leaders but not known committed count as pending.
    this.pendingConfigIndex = this.configIndex > this.commitIndex ? this.configIndex : 0;
    // §5.4.2 / §8: a no-op of the new term lets earlier entries commit and reads find the commit index.
    const noop: Entry = { kind: 'noop', term: this.term, index: this.log.lastIndex + 1 };
    this.log.append(noop);
    this.termStartIndex = noop.index;
    this.needsBroadcast = true;
    this.maybeCommit();
  }

  private newProgress(id: NodeId): Progress {
    const pr = new Progress(id, this.log.lastIndex + 1);
    pr.recentActive = true; // a fresh leader gives everyone a full check-quorum period
    return pr;
  }

  // ---- leader: ticks, replication, commit (§5.3, §5.4) -----------------------------------------

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    // Thesis §3.10: give up after an election timeout and take proposals again.
    if (this.transferee !== null && ++this.transferElapsed >= this.electionTicks) this.abortTransfer();
    if (this.electionElapsed >= this.electionTicks) {
      this.electionElapsed = 0;
      if (this.checkQuorum && !this.quorumActive()) {
        // Thesis §6.2: a leader cut off from a majority stops believing it leads.
        this.events.push({ kind: 'steppedDown', reason: 'checkQuorum', term: this.term });
        this.becomeFollower(this.term, null);
        return;
      }
      for (const pr of this.progress.values()) pr.recentActive = false;
    }
    for (const pr of this.progress.values()) {
      if (pr.state === 'snapshot' && ++pr.snapshotTicks >= this.electionTicks) pr.becomeProbe(); // lost: retry
    }
    if (this.heartbeatElapsed >= this.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat();
    }
  }

  private quorumActive(): boolean {
    const voterIds = voters(this.members);
    let active = 0;
    for (const id of voterIds) {
      if (id === this.id || this.progress.get(id)?.recentActive) active++;
    }
    return active >= quorumSize(voterIds.length);
  }

  private refuseProposal(): ProposeResult | null {
    if (this.role !== 'leader') return this.refusal('not_leader', this.leader ? `the leader is ${this.leader}` : 'no leader is known');
    if (this.transferee !== null) return this.refusal('transferring', `leadership is being transferred to ${this.transferee}`);
    return null;
  }

  private refusal(reason: Exclude<ProposeResult, { ok: true }>['reason'], message: string): ProposeResult {
    return { ok: false, reason, leader: this.leader, message };
  }

  private appendAsLeader(entry: Entry): ProposeResult {
    this.log.append(entry);
    if (entry.kind === 'config') this.refreshMembership();
    this.needsBroadcast = true;
    // A single-voter cluster commits as soon as the entry is durable (in advance()).
    return { ok: true, index: entry.index, term: entry.term };
  }

  private broadcastAppends(): void {
    this.needsBroadcast = false;
    // Followers hear of a new commit index with the next append or heartbeat; one that forwarded a
    // write learns it from the answer (learnCommit), so no commit-only broadcast is needed.
    for (const pr of this.progress.values()) this.sendAppend(pr, false);
  }

  private broadcastHeartbeat(): void {
    // Every heartbeat starts a round: reads registered since the last one ride on it (thesis §6.4:
    // batching), and the lease counts from the newest round a quorum answered.
    this.readRound++;
    this.roundSentAt.set(this.readRound, this.ticks);
    if (this.roundSentAt.size > MAX_UNCONFIRMED_ROUNDS) this.roundSentAt.delete(this.roundSentAt.keys().next().value as number);
    for (const pr of this.progress.values()) {
      const hb: HeartbeatRequest = {
        kind: 'heartbeat',
        from: this.id,
        to: pr.id,
        term: this.term,
        commit: Math.min(pr.matchIndex, this.commitIndex),
        seq: this.readRound,
      };
      this.send(hb);
      if (pr.state === 'probe') pr.probeSent = false; // heartbeats pace probes of a silent follower
    }
    this.confirmLeaseRound();
    this.releaseConfirmedReads();
  }

  /** The newest heartbeat round a quorum of voters (this leader included) has answered. */
  private quorumAckedRound(): number {
    return quorumValue(voters(this.members).map((id) => (id === this.id ? this.readRound : (this.progress.get(id)?.readRoundAcked ?? 0))));
  }

  private confirmLeaseRound(): void {
    const confirmed = this.quorumAckedRound();
    if (confirmed <= this.leaseRound) return;
    this.leaseRound = confirmed;
    // A round pruned from the map is older than any kept: keep the older basis then (conservative).
    const sentAt = this.roundSentAt.get(confirmed);
    if (sentAt !== undefined) this.leaseRoundTick = sentAt;
    for (const round of this.roundSentAt.keys()) {
      if (round > confirmed) break;
      this.roundSentAt.delete(round);
    }
  }

  private abortTransfer(): void {
    if (this.transferee === null) return;
    this.events.push({ kind: 'transferAborted', to: this.transferee, term: this.term });
    this.transferee = null;
  }

  private sendTimeoutNow(to: NodeId): void {
    this.leaseForfeitedTerm = this.term;
    this.send({ kind: 'timeoutNow', from: this.id, to, term: this.term });
    if (this.transferringToLeave && this.promotable()) this.voteForTransferee(to);
  }

  /**
   * A leader that is stopping (transferLeadership with `leaving`) sends its own vote with its
   * TimeoutNow (thesis §3.10): it steps into the term the target is about to campaign in and votes
   * for it, as it would on the target's request, which it could not refuse: TimeoutNow goes only to
   * a target holding all of this leader's log, and proposals are refused while the transfer runs,
   * so the target's log is at least as up to date (§5.4.1). The answer leaves once the vote is
   * durable (Figure 2), after the TimeoutNow on the same ordered link, and reaches the target about
   * when its own vote is durable: in a cluster of three the target then wins without waiting for
   * another voter's round trip and fsync. The price, a lost TimeoutNow leaving the cluster without a
   * leader for an election timeout, is one a stopping leader pays anyway; a transfer asked for by an
   * operator keeps this leader leading until the target wins, and lets it lead on if the transfer
   * is given up.
   */
  private voteForTransferee(to: NodeId): void {
    const term = this.term + 1;
    this.events.push({ kind: 'steppedDown', reason: 'transfer', term });
    this.becomeFollower(term, null);
    this.votedFor = to;
    this.messages.push({ kind: 'voteResponse', from: this.id, to, term, preVote: false, granted: true });
  }

  /** Sends the follower what it lacks, as far as flow control allows (§5.3); with allowEmpty, an
   * append without entries goes out when none may (a probe, or news of the commit index). */
  private sendAppend(pr: Progress, allowEmpty: boolean): void {
    if (pr.state === 'snapshot' || (pr.state === 'probe' && pr.probeSent)) return;
    const carry = pr.nextIndex <= this.log.lastIndex && pr.canSend(this.maxInflight);
    if (!carry && !allowEmpty) return;
    const prevLogIndex = pr.nextIndex - 1;
    const prevLogTerm = this.log.termAt(prevLogIndex);
    if (prevLogTerm === undefined) {
      this.sendSnapshot(pr);
      return;
    }
    const entries = carry ? this.log.slice(pr.nextIndex, this.log.lastIndex, this.maxEntriesPerAppend, this.maxBytesPerAppend) : [];
    const msg: AppendRequest = {
      kind: 'append',
      from: this.id,
      to: pr.id,
      term: this.term,
      prevLogIndex,
      prevLogTerm,
      entries,
      leaderCommit: this.commitIndex,
    };
    this.send(msg);
    if (pr.state === 'probe') {
      pr.probeSent = true;
    } else if (entries.length > 0) {
      // Pipelining: assume success and stream the next batch; a refusal drops us back to probe.
      const last = entries[entries.length - 1].index;
      pr.nextIndex = last + 1;
      pr.inflight.push(last);
    }
  }

  private sendSnapshot(pr: Progress): void {
    if (!this.snapshot) throw new Error(`entry ${pr.nextIndex - 1} is compacted but no snapshot is held`);
    const msg: SnapshotRequest = { kind: 'snapshot', from: this.id, to: pr.id, term: this.term, snapshot: this.snapshot };
    this.send(msg);
    pr.becomeSnapshot(this.snapshot.meta.index);
  }

  private handleAppendResponse(m: AppendResponse): void {
    const pr = this.progress.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    if (m.success) {
      const advanced = pr.acknowledge(m.matchIndex);
      if (advanced) pr.matchRound = this.readRound;
      if (pr.state === 'probe' && (advanced || m.matchIndex >= pr.matchIndex)) pr.becomeReplicate();
      else if (pr.state === 'snapshot' && pr.matchIndex >= pr.pendingSnapshot) pr.becomeReplicate();
      if (advanced) this.maybeCommit();
      if (this.role !== 'leader') return;
      if (this.transferee === m.from && pr.matchIndex === this.log.lastIndex) {
        this.sendTimeoutNow(m.from);
        if (this.role !== 'leader') return; // it voted for the target (voteForTransferee)
      }
      this.sendAppend(pr, false);
      return;
    }
    if (m.rejectedIndex <= pr.matchIndex) return; // stale: that prefix is known to match
    if (pr.state === 'probe' && m.rejectedIndex !== pr.nextIndex - 1) return; // answer to an older probe
    if (pr.state === 'snapshot') return;
    pr.becomeProbe();
    pr.nextIndex = this.nextIndexAfterRefusal(pr, m);
    this.sendAppend(pr, true);
  }

  /**
   * A follower whose log is shorter than what it acknowledged has lost entries (a wiped or restored
   * data directory). Refusals below matchIndex would otherwise be ignored as stale forever: probe
   * again from what it really holds. Commit is unaffected (commitIndex never moves back). Only an
   * answer to a heartbeat sent after matchIndex last advanced is evidence: a delayed or reordered
   * answer from before the follower caught up must not move matchIndex back.
   */
  private forgetLostEntries(pr: Progress, followerLastIndex: number): boolean {
    if (followerLastIndex >= pr.matchIndex) return false;
    pr.matchIndex = followerLastIndex;
    pr.nextIndex = followerLastIndex + 1;
    pr.becomeProbe();
    this.sendAppend(pr, true);
    return true;
  }

  /** Fast back-off using the follower's conflict hints (§5.3, end): skip a whole term at a time. */
  private nextIndexAfterRefusal(pr: Progress, m: AppendResponse): number {
    let next = m.conflictIndex;
    if (m.conflictTerm > 0) {
      const lastOfTerm = this.log.lastIndexOfTerm(m.conflictTerm, m.rejectedIndex);
      if (lastOfTerm > 0) next = lastOfTerm + 1;
    }
    return Math.max(pr.matchIndex + 1, Math.min(next, m.rejectedIndex));
  }

  private handleHeartbeatResponse(m: HeartbeatResponse): void {
    const pr = this.progress.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    pr.appHealth = m.appHealth ?? 'unchecked';
    if (m.seq > pr.readRoundAcked) {
      pr.readRoundAcked = m.seq;
      this.confirmLeaseRound();
    }
    if (pr.state !== 'snapshot' && m.seq > pr.matchRound && this.forgetLostEntries(pr, m.lastLogIndex)) {
      this.releaseConfirmedReads();
      return;
    }
    // A follower that is behind (lost appends, restarted) gets an append. In replicate state with
    // everything sent, an empty one doubles as a probe: it travels behind the appends in flight on
    // the same ordered channel, so it is refused only if one of them went missing.
    if (pr.matchIndex < this.log.lastIndex || pr.state === 'probe') this.sendAppend(pr, true);
    this.releaseConfirmedReads();
  }

  private maybeCommit(): void {
    const voterIds = voters(this.members);
    const matches = voterIds.map((id) => (id === this.id ? this.stableIndex : (this.progress.get(id)?.matchIndex ?? 0)));
    const candidate = quorumValue(matches);
    if (candidate <= this.commitIndex || !this.canCommitByCounting(candidate)) return;
    this.releaseBudget(this.commitIndex + 1, candidate);
    this.commitIndex = candidate;
    if (this.readsAwaitingTermCommit.length > 0 && this.commitIndex >= this.termStartIndex) {
      for (const requestId of this.readsAwaitingTermCommit) {
        this.pendingReads.push({ requestId, index: this.commitIndex, round: this.readRound + 1 });
      }
      this.readsAwaitingTermCommit = [];
      this.startReadRoundIfIdle();
    }
    this.needsBroadcast = true; // entries appended meanwhile may go out; commit rides along
    if (!isVoter(this.members, this.id) && this.commitIndex >= this.configIndex) {
      // Defensive: a leader is never removed (transfer first), but never lead outside the config.
      this.becomeFollower(this.term, null);
    }
  }

  /** Command bytes in the log between two indexes: what the overload budget counts. */
  private commandBytes(from: number, to: number): number {
    let bytes = 0;
    for (let index = Math.max(from, this.log.firstIndex); index <= to; index++) {
      const entry = this.log.entryAt(index);
      if (entry.kind === 'command') bytes += entryBytes(entry);
    }
    return bytes;
  }

  /** Committed entries leave the overload budget. */
  private releaseBudget(from: number, to: number): void {
    if (this.uncommittedBytes === 0) return;
    this.uncommittedBytes = Math.max(0, this.uncommittedBytes - this.commandBytes(from, to));
  }

  // ---- ReadIndex (thesis §6.4) ---------------------------------------------------------------------

  private startReadRoundIfIdle(): void {
    const roundInFlight = this.pendingReads.some((r) => r.round <= this.readRound);
    if (!roundInFlight) this.broadcastHeartbeat();
  }

  private releaseConfirmedReads(): void {
    if (this.pendingReads.length === 0) return;
    const confirmed = this.quorumAckedRound();
    const still: PendingRead[] = [];
    for (const read of this.pendingReads) {
      if (read.round <= confirmed) this.readStates.push({ requestId: read.requestId, index: read.index });
      else still.push(read);
    }
    this.pendingReads = still;
    // Reads that arrived during the round just confirmed start the next one now.
    if (still.length > 0 && !still.some((r) => r.round <= this.readRound)) this.broadcastHeartbeat();
  }

  /** The voter with the longest log, preferring one whose application is not unhealthy; ties go
   * to the earlier in `prefer`. */
  private mostUpToDateVoter(prefer: readonly NodeId[]): NodeId | null {
    let best: Progress | null = null;
    const ahead = betterTransferTarget(prefer);
    // A follower whose application is unhealthy only when no other will do.
    const better = (pr: Progress, than: Progress): boolean => {
      const sick = pr.appHealth === 'unhealthy';
      const thanSick = than.appHealth === 'unhealthy';
      return sick !== thanSick ? !sick : ahead(pr, than);
    };
    for (const pr of this.progress.values()) {
      if (!isVoter(this.members, pr.id)) continue;
      if (!best || better(pr, best)) best = pr;
    }
    return best?.id ?? null;
  }

  // ---- follower: appends, heartbeats, snapshots ---------------------------------------------------

  private handleAppend(m: AppendRequest): void {
    if (m.prevLogIndex < this.commitIndex) {
      // Everything up to our commit index is known to match; trim what we already have.
      const skip = this.commitIndex - m.prevLogIndex;
      if (skip >= m.entries.length) {
        this.messages.push(this.appendReply(m.from, true, this.commitIndex, 0, 0, 0));
        return;
      }
      this.acceptAppend(m, this.commitIndex, m.entries.slice(skip));
      return;
    }
    const prevTerm = this.log.termAt(m.prevLogIndex);
    if (prevTerm !== m.prevLogTerm) {
      // §5.3 receiver rule 2, with the hint that lets the leader skip a term per round trip.
      let conflictIndex: number;
      let conflictTerm: number;
      if (prevTerm === undefined) {
        conflictIndex = this.log.lastIndex + 1;
        conflictTerm = 0;
      } else {
        conflictTerm = prevTerm;
        conflictIndex = this.log.firstIndexOfTermRun(m.prevLogIndex);
      }
      this.messages.push(this.appendReply(m.from, false, 0, m.prevLogIndex, conflictIndex, conflictTerm));
      return;
    }
    this.acceptAppend(m, m.prevLogIndex, m.entries);
  }

  private acceptAppend(m: AppendRequest, prevLogIndex: number, entries: readonly Entry[]): void {
    const truncatedAt = this.log.appendAfter(prevLogIndex, entries, this.commitIndex);
    if (truncatedAt !== null) this.noteTruncation(truncatedAt);
    if (entries.some((e) => e.kind === 'config') || truncatedAt !== null) this.refreshMembership();
    const lastNewIndex = prevLogIndex + entries.length;
    // §5.3 receiver rule 5.
    const newCommit = Math.min(m.leaderCommit, lastNewIndex);
    if (newCommit > this.commitIndex) this.commitIndex = newCommit;
    this.adoptCommitHint();
    this.messages.push(this.appendReply(m.from, true, lastNewIndex, 0, 0, 0));
  }

  /** A commit learnt before this log held its entry (learnCommit) takes effect once it holds that
   * entry, (index, term): by Log Matching (§5.3) everything up to it is then the leader's, committed. */
  private adoptCommitHint(): void {
    const hint = this.commitHint;
    if (hint === null) return;
    if (hint.index <= this.commitIndex) this.commitHint = null;
    else if (this.log.termAt(hint.index) === hint.term) {
      this.commitIndex = hint.index;
      this.commitHint = null;
    }
  }

  private handleHeartbeat(m: HeartbeatRequest): void {
    // The leader sends min(our matchIndex, its commit), so this never commits an unmatched entry.
    const newCommit = Math.min(m.commit, this.log.lastIndex);
    if (newCommit > this.commitIndex) this.commitIndex = newCommit;
    const reply: HeartbeatResponse = {
      kind: 'heartbeatResponse',
      from: this.id,
      to: m.from,
      term: this.term,
      seq: m.seq,
      lastLogIndex: this.log.lastIndex,
      appHealth: this.appHealth,
    };
    // It acknowledges the leader of this term, which needs nothing on disk (granting a vote in it
    // would); so a read round (thesis §6.4) does not wait for the fsync of entries in flight here.
    this.sendNow.push(reply);
  }

  private handleSnapshot(m: SnapshotRequest): void {
    const meta = m.snapshot.meta;
    if (meta.index <= this.commitIndex) {
      this.messages.push(this.appendReply(m.from, true, this.commitIndex, 0, 0, 0));
      return;
    }
    if (this.log.termAt(meta.index) === meta.term) {
      // §7 receiver rule 6: our log already has the snapshot's last entry; keep what follows.
      this.commitIndex = meta.index;
    } else {
      // §7 receiver rule 7: discard the log and take the snapshot.
      this.log.resetTo(meta);
      this.noteTruncation(meta.index + 1);
      this.stableIndex = Math.min(this.stableIndex, meta.index);
      this.unstableFrom = meta.index + 1;
      this.snapshot = m.snapshot;
      this.snapshotToPersist = m.snapshot;
      this.commitIndex = meta.index;
      this.appliedHandedOut = meta.index;
      this.refreshMembership();
    }
    this.messages.push(this.appendReply(m.from, true, meta.index, 0, 0, 0));
  }

  private noteTruncation(index: number): void {
    this.stableIndex = Math.min(this.stableIndex, index - 1);
    this.unstableFrom = Math.min(this.unstableFrom, index);
    if (this.readyOutstanding) {
      this.truncatedWhileOutstanding = Math.min(this.truncatedWhileOutstanding ?? index, index);
    }
  }

  private appendReply(to: NodeId, success: boolean, matchIndex: number, rejectedIndex: number, conflictIndex: number, conflictTerm: number): AppendResponse {
    return {
      kind: 'appendResponse',
      from: this.id,
      to,
      term: this.term,
      success,
      matchIndex,
      rejectedIndex,
      conflictIndex,
      conflictTerm,
      lastLogIndex: this.log.lastIndex,
    };
  }

  // ---- membership ------------------------------------------------------------------------------

  /** The configuration in effect at index (the newest config entry at or below it). */
  private membersAt(index: number): Membership {
    return this.log.lastConfigEntry(index)?.members ?? this.snapshot?.meta.members ?? [];
  }

  /** Thesis §4.1: a server uses the newest configuration in its log, committed or not. */
  private refreshMembership(): void {
    const entry = this.log.lastConfigEntry();
    const members = entry ? entry.members : this.snapshot?.meta.members ?? this.members;
    const index = entry ? entry.index : 0;
    if (index === this.configIndex && members === this.members) return;
    this.configIndex = index;
    this.members = members;
    this.events.push({ kind: 'membershipChanged', members, index: index || this.log.snapshotIndex });
    if (this.role !== 'leader') return;
    for (const member of members) {
      if (member.id !== this.id && !this.progress.has(member.id)) this.progress.set(member.id, this.newProgress(member.id));
    }
    for (const id of [...this.progress.keys()]) {
      if (!findMember(members, id)) this.progress.delete(id);
    }
    if (this.transferee !== null && !isVoter(members, this.transferee)) this.transferee = null;
  }

  // ---- outbox ------------------------------------------------------------------------------------

  private send(m: Message): void {
    // A leader's replication traffic may leave before its own fsync (thesis §10.2.1) as long as the
    // term and vote it speaks for are durable; everything else waits for the persist step.
    const early =
      this.role === 'leader' &&
      LEADER_TRAFFIC.has(m.kind) &&
      this.persistedHardState.term === this.term &&
      this.persistedHardState.votedFor === this.votedFor;
    (early ? this.sendNow : this.messages).push(m);
  }

  private currentHardState(): HardState {
    return { term: this.term, votedFor: this.votedFor, commitIndex: this.commitIndex };
  }

  private hardStateChanged(): boolean {
    return this.persistedHardState.term !== this.term || this.persistedHardState.votedFor !== this.votedFor;
  }

}
