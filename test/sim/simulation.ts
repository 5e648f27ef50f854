// Deterministic simulation of a raftlet cluster: real Raft cores, a seeded network that drops,
// duplicates, reorders and delays messages and partitions, nodes that crash and restart from exactly
// what they had persisted, random client writes, ReadIndex reads, leadership transfers, membership
// changes and snapshots. Connection-loss reports (reportPeerDead) follow crashes as the transport
// would send them, late (after the node restarted) and false (about a live node, to some of its
// peers). Safety invariants are checked after every step; liveness once faults stop.
import { Raft, bootstrapState } from '../../src/raft/raft.ts';
import type { Entry, HardState, Member, Message, NodeId, RaftConfig, Ready, RestoredState, Snapshot } from '../../src/raft/types.ts';
import { ApplyUncommittedRaft, CommitByCountingRaft, CountOwnVoteEarlyRaft, VoteTwiceRaft, type PlantedBug } from './buggy.ts';
import { EventHeap } from './heap.ts';
import { SafetyChecker, Violation } from './invariants.ts';
import { Rng } from './rng.ts';

export interface SimOptions {
  readonly seed: number;
  readonly nodes: number;
  readonly steps: number;
  readonly bug?: PlantedBug;
  readonly faults?: boolean;
  readonly membershipChanges?: boolean;
  /** Connection-loss reports after crashes, and false ones (default true). */
  readonly deadSignals?: boolean;
  /** The leader's budget of uncommitted entry bytes (RaftConfig.maxUncommittedBytes); 0 = none. */
  readonly maxUncommittedBytes?: number;
  readonly trace?: (line: string) => void;
}

/** 64 of the simulator's one-byte commands (24 bytes of overhead each) may wait for commit. */
export const SIM_UNCOMMITTED_BYTES = 64 * 25;

export interface SimStats {
  steps: number;
  elections: number;
  maxTerm: number;
  committed: number;
  writesProposed: number;
  writesAcked: number;
  readsServed: number;
  snapshots: number;
  crashes: number;
  partitions: number;
  dropped: number;
  duplicated: number;
  transfers: number;
  configChanges: number;
  livenessTicks: number;
  /** Reports of a dead peer delivered: after a crash, and about a live node. */
  deadSignals: number;
  falseDeadSignals: number;
  /** Reports that reached a follower of the reported peer (the ones that start an election). */
  deadSignalsAboutLeader: number;
  /** Reports that reached a leader transferring to the reported peer (the ones that end a transfer). */
  deadSignalsAboutTransferee: number;
}

export interface SimResult {
  readonly seed: number;
  readonly violation: string | null;
  readonly stats: SimStats;
}

export { Violation };

const TICK = 10; // time units per tick
const ELECTION_TICKS = 10;
const HEARTBEAT_TICKS = 2;
/** After faults stop, a leader must commit a write and every member catch up within this many ticks. */
export const LIVENESS_BOUND_TICKS = 40 * ELECTION_TICKS;

interface Disk {
  hardState: HardState;
  snapshot: Snapshot | null;
  entries: Entry[];
}

interface SimNode {
  readonly id: NodeId;
  readonly rng: Rng;
  disk: Disk;
  raft: Raft | null; // null while crashed
  incarnation: number;
  kv: Map<string, string>;
  applied: number;
  lastCommit: number;
  leaderTermChecked: number;
  persisting: Ready | null;
  /** The term before the first entry of the Ready being persisted, when it was handed out. */
  persistingPrevTerm: number | undefined;
  readsWaiting: { requestId: number; index: number }[];
  group: number; // partition side
  /** Sim time of each tick of the current incarnation, by the core's tick count (leader lease). */
  tickTimes: Map<number, number>;
}

type SimEvent =
  | { readonly kind: 'tick'; readonly time: number; readonly seq: number; readonly node: NodeId }
  | { readonly kind: 'deliver'; readonly time: number; readonly seq: number; readonly msg: Message }
  | { readonly kind: 'persisted'; readonly time: number; readonly seq: number; readonly node: NodeId; readonly incarnation: number }
  | { readonly kind: 'client'; readonly time: number; readonly seq: number }
  | { readonly kind: 'peerDead'; readonly time: number; readonly seq: number; readonly node: NodeId; readonly peer: NodeId; readonly real: boolean }
  | { readonly kind: 'fault'; readonly time: number; readonly seq: number }
  /** A leader's word that (index, term) is committed, as its answer to a forwarded write carries it
   * (Raft.learnCommit); it may overtake the append that brings the entry. */
  | { readonly kind: 'commitNotice'; readonly time: number; readonly seq: number; readonly from: NodeId; readonly node: NodeId; readonly index: number; readonly term: number };

interface WriteCmd {
  readonly key: string;
  readonly value: string;
}

interface PendingWrite {
  readonly node: NodeId;
  readonly index: number;
  readonly term: number;
}

interface PendingRead {
  readonly node: NodeId;
  readonly key: string;
  /** The highest index of a write acknowledged before the read was invoked. */
  readonly mustSee: number;
}

const KEYS = ['a', 'b', 'c'];

export function runSimulation(opts: SimOptions): SimResult {
  const sim = new Simulation(opts);
  let violation: string | null = null;
  try {
    sim.run();
  } catch (err) {
    if (err instanceof Violation) violation = err.message;
    else violation = `node threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
  }
  return { seed: opts.seed, violation, stats: sim.stats };
}

class Simulation {
  readonly stats: SimStats = {
    steps: 0,
    elections: 0,
    maxTerm: 0,
    committed: 0,
    writesProposed: 0,
    writesAcked: 0,
    readsServed: 0,
    snapshots: 0,
    crashes: 0,
    partitions: 0,
    dropped: 0,
    duplicated: 0,
    transfers: 0,
    configChanges: 0,
    livenessTicks: 0,
    deadSignals: 0,
    falseDeadSignals: 0,
    deadSignalsAboutLeader: 0,
    deadSignalsAboutTransferee: 0,
  };
  private readonly opts: SimOptions;
  private readonly rng: Rng;
  private readonly heap = new EventHeap<SimEvent>();
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly spareIds: NodeId[] = [];
  private now = 0;
  private seq = 0;
  private faultsOn: boolean;
  private readonly deadSignals: boolean;
  private clientsOn = true;
  private readonly trace: ((line: string) => void) | undefined;

  // Fault parameters, drawn per seed.
  private dropRate: number;
  private dupRate: number;
  private readonly maxDelay: number;
  private readonly snapshotEvery: number;
  private readonly maxEntriesPerAppend: number;
  private readonly maxInflightAppends: number;

  // What the checker knows.
  private readonly safety = new SafetyChecker({ identity: true });
  /** The latest-ending leader lease seen in each term (noteLease). */
  private readonly leases = new Map<number, { leader: NodeId; end: number }>();
  /** Leases of node N up to term T are void: N crashed (a dead process acts on no lease), or a
   * false report that N is dead was delivered. The lease rests on "a refused connection means the
   * process is gone" (reportPeerDead lets voters grant inside a lease); a false report breaks that
   * assumption, which README's lease section states. Runs without reports check leases in full. */
  private readonly voidedLeases = new Map<NodeId, number>();
  private readonly commands = new WeakMap<Uint8Array, WriteCmd>();
  private readonly snapshotStates = new WeakMap<Uint8Array, Map<string, string>>();
  private readonly pendingWrites = new Map<Uint8Array, PendingWrite>();
  private readonly pendingReads = new Map<number, PendingRead>();
  private maxAcked = 0;
  private nextRequestId = 1;
  private nextValue = 1;
  private livenessWrite: Uint8Array | null = null;
  private livenessAckIndex = 0;

  constructor(opts: SimOptions) {
    this.opts = opts;
    this.rng = new Rng(opts.seed);
    this.trace = opts.trace;
    this.faultsOn = opts.faults ?? true;
    this.deadSignals = opts.deadSignals ?? true;
    this.dropRate = this.faultsOn ? this.rng.pick([0, 0.01, 0.05, 0.15]) : 0;
    this.dupRate = this.faultsOn ? this.rng.pick([0, 0.02, 0.1]) : 0;
    this.maxDelay = this.rng.pick([2, 5, 15, 30]);
    this.snapshotEvery = this.rng.pick([8, 20, 50, 1_000_000]);
    this.maxEntriesPerAppend = this.rng.pick([1, 2, 8, 64]);
    this.maxInflightAppends = this.rng.pick([2, 4, 16]);
    const members: Member[] = [];
    for (let i = 1; i <= opts.nodes; i++) members.push({ id: `n${i}`, url: `sim://n${i}`, voter: true });
    for (let i = opts.nodes + 1; i <= opts.nodes + 2; i++) this.spareIds.push(`n${i}`);
    const boot = bootstrapState(members);
    for (const m of members) this.addNode(m.id, boot);
    this.log(`seed ${opts.seed}: ${opts.nodes} nodes, drop ${this.dropRate}, dup ${this.dupRate}, delay <= ${this.maxDelay}, snapshot every ${this.snapshotEvery}, batch ${this.maxEntriesPerAppend}, window ${this.maxInflightAppends}${opts.bug ? `, planted bug ${opts.bug}` : ''}`);
  }

  run(): void {
    this.schedule({ kind: 'client', time: this.now + this.rng.between(1, 8), seq: 0 });
    if (this.faultsOn) this.schedule({ kind: 'fault', time: this.now + this.rng.between(50, 300), seq: 0 });
    while (this.stats.steps < this.opts.steps) this.stepOnce();
    this.checkLiveness();
    this.checkLogsPairwise();
  }

  // ---- event loop --------------------------------------------------------------------------------

  private schedule(event: SimEvent): void {
    this.heap.push({ ...event, seq: this.seq++ });
  }

  private stepOnce(): void {
    const event = this.heap.pop();
    if (!event) throw new Violation('simulation ran out of events');
    this.now = event.time;
    this.stats.steps++;
    switch (event.kind) {
      case 'tick':
        this.onTick(event.node);
        return;
      case 'deliver':
        this.onDeliver(event.msg);
        return;
      case 'persisted':
        this.onPersisted(event.node, event.incarnation);
        return;
      case 'client':
        this.onClient();
        this.schedule({ kind: 'client', time: this.now + this.rng.between(1, 12), seq: 0 });
        return;
      case 'fault':
        if (!this.faultsOn) return;
        this.onFault();
        this.schedule({ kind: 'fault', time: this.now + this.rng.between(50, 400), seq: 0 });
        return;
      case 'peerDead':
        this.onPeerDead(event.node, event.peer, event.real);
        return;
      case 'commitNotice':
        this.onCommitNotice(event.from, event.node, event.index, event.term);
        return;
      default: {
        const never: never = event;
        return never;
      }
    }
  }

  private addNode(id: NodeId, restored: RestoredState): SimNode {
    const node: SimNode = {
      id,
      rng: this.rng.fork(),
      disk: { hardState: restored.hardState, snapshot: restored.snapshot, entries: [...restored.entries] },
      raft: null,
      incarnation: 0,
      kv: new Map(),
      applied: 0,
      lastCommit: 0,
      leaderTermChecked: 0,
      persisting: null,
      persistingPrevTerm: undefined,
      readsWaiting: [],
      group: 0,
      tickTimes: new Map(),
    };
    this.nodes.set(id, node);
    this.start(node);
    this.schedule({ kind: 'tick', time: this.now + 1 + node.rng.int(TICK), seq: 0, node: id });
    return node;
  }

  private start(node: SimNode): void {
    const config: RaftConfig = {
      id: node.id,
      electionTicks: ELECTION_TICKS,
      heartbeatTicks: HEARTBEAT_TICKS,
      random: () => node.rng.next(),
      maxEntriesPerAppend: this.maxEntriesPerAppend,
      maxInflightAppends: this.maxInflightAppends,
      maxUncommittedBytes: this.opts.maxUncommittedBytes ?? SIM_UNCOMMITTED_BYTES,
      leaseGuardOnStart: true,
    };
    const restored: RestoredState = { hardState: node.disk.hardState, snapshot: node.disk.snapshot, entries: [...node.disk.entries] };
    const Impl =
      this.opts.bug === 'voteTwice'
        ? VoteTwiceRaft
        : this.opts.bug === 'commitPreviousTerm'
          ? CommitByCountingRaft
          : this.opts.bug === 'countOwnVoteEarly'
            ? CountOwnVoteEarlyRaft
            : this.opts.bug === 'applyUncommitted'
              ? ApplyUncommittedRaft
              : Raft;
    node.raft = new Impl(config, restored);
    node.incarnation++;
    node.persisting = null;
    node.readsWaiting = [];
    node.tickTimes = new Map();
    const snap = node.disk.snapshot;
    node.kv = snap ? new Map(this.snapshotStates.get(snap.data)) : new Map();
    node.applied = snap ? snap.meta.index : 0;
    node.lastCommit = node.raft.committedIndex;
    node.leaderTermChecked = 0;
    this.afterInput(node);
  }

  private onTick(id: NodeId): void {
    const node = this.nodes.get(id);
    if (!node) return;
    this.schedule({ kind: 'tick', time: this.now + TICK, seq: 0, node: id });
    if (!node.raft) return;
    node.raft.tick();
    node.tickTimes.set(node.raft.tickCount, this.now);
    node.tickTimes.delete(node.raft.tickCount - 4 * ELECTION_TICKS);
    this.afterInput(node);
  }

  private onDeliver(msg: Message): void {
    const to = this.nodes.get(msg.to);
    const from = this.nodes.get(msg.from);
    if (!to?.raft || (from && from.group !== to.group)) {
      this.stats.dropped++;
      return;
    }
    this.log(`deliver ${describe(msg)}`);
    to.raft.step(msg);
    this.afterInput(to);
  }

  /** After any input: check the per-step invariants of this node and start persisting its Ready. */
  private afterInput(node: SimNode): void {
    const raft = node.raft;
    if (!raft) return;
    if (raft.committedIndex < node.lastCommit) {
      throw new Violation(`${node.id}: commit index moved backwards from ${node.lastCommit} to ${raft.committedIndex}`);
    }
    node.lastCommit = raft.committedIndex;
    if (raft.currentRole === 'leader' && node.leaderTermChecked !== raft.currentTerm) {
      node.leaderTermChecked = raft.currentTerm;
      this.checkNewLeader(node, raft);
    }
    this.noteLease(node, raft);
    if (node.persisting) {
      // As the node runtime does: what needs no fsync leaves while one runs, and what became
      // committed is applied at once, durable here or not.
      this.sendAll(raft.takeEarlyMessages());
      this.applyAll(node, raft, raft.takeCommitted());
      return;
    }
    if (!raft.hasReady()) return;
    const rd = raft.ready();
    node.persisting = rd;
    node.persistingPrevTerm = rd.entries.length > 0 ? raft.termAt(rd.entries[0].index - 1) : undefined;
    this.sendAll(rd.sendNow);
    // As the node runtime does: committed entries are applied while their fsync runs (a crash
    // before it ends loses them here, not anywhere else); after a snapshot only once it is installed.
    if (rd.snapshot === null) this.applyAll(node, raft, rd.committed);
    // The planted bug acknowledges before its fsync: a crash in between loses what it promised.
    if (this.opts.bug === 'ackBeforePersist') this.sendAll(rd.messages);
    this.schedule({ kind: 'persisted', time: this.now + this.rng.between(1, 4), seq: 0, node: node.id, incarnation: node.incarnation });
  }

  private onPersisted(id: NodeId, incarnation: number): void {
    const node = this.nodes.get(id);
    if (!node?.raft || node.incarnation !== incarnation || !node.persisting) return;
    const raft = node.raft;
    const rd = node.persisting;
    this.persist(node.disk, rd);
    // Checked once durable: entries that die unsaved with a crash were never part of any log (a
    // lone voter may lead a term twice if it crashes before its term is saved; nothing escaped).
    if (rd.entries.length > 0) this.safety.onPersist(node.id, rd.entries, node.persistingPrevTerm);
    if (this.opts.bug !== 'ackBeforePersist') this.sendAll(rd.messages);
    if (rd.snapshot) {
      node.kv = new Map(this.snapshotStates.get(rd.snapshot.data));
      node.applied = rd.snapshot.meta.index;
      for (const entry of rd.committed) this.apply(node, raft, entry);
    }
    for (const rs of rd.readStates) node.readsWaiting.push(rs);
    for (const requestId of rd.readsFailed) this.pendingReads.delete(requestId);
    this.serveAppliedReads(node);
    for (const ev of rd.events) {
      if (ev.kind === 'electionStarted') this.stats.elections++;
      if (ev.kind === 'termChanged') this.stats.maxTerm = Math.max(this.stats.maxTerm, ev.term);
    }
    raft.advance(rd);
    node.persisting = null;
    this.maybeSnapshot(node, raft);
    this.afterInput(node);
  }

  private persist(disk: Disk, rd: Ready): void {
    if (rd.snapshot) {
      const meta = rd.snapshot.meta;
      disk.snapshot = rd.snapshot;
      const keep = disk.entries.findIndex((e) => e.index === meta.index && e.term === meta.term);
      disk.entries = keep >= 0 ? disk.entries.slice(keep + 1) : [];
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0].index;
      const base = disk.snapshot?.meta.index ?? 0;
      disk.entries.length = Math.max(0, Math.min(disk.entries.length, first - base - 1));
      disk.entries.push(...rd.entries);
    }
    if (rd.hardState) disk.hardState = rd.hardState;
  }

  private sendAll(msgs: readonly Message[]): void {
    for (const msg of msgs) {
      if (this.faultsOn && this.rng.chance(this.dropRate)) {
        this.stats.dropped++;
        continue;
      }
      this.schedule({ kind: 'deliver', time: this.now + this.rng.between(1, this.maxDelay), seq: 0, msg });
      if (this.faultsOn && this.rng.chance(this.dupRate)) {
        this.stats.duplicated++;
        this.schedule({ kind: 'deliver', time: this.now + this.rng.between(1, this.maxDelay * 2), seq: 0, msg });
      }
    }
  }

  // ---- the state machine and its clients ---------------------------------------------------------

  /** Applies entries in order and serves the reads that were waiting for them. */
  private applyAll(node: SimNode, raft: Raft, entries: readonly Entry[]): void {
    for (const entry of entries) this.apply(node, raft, entry);
    this.serveAppliedReads(node);
  }

  private apply(node: SimNode, raft: Raft, entry: Entry): void {
    if (entry.index !== node.applied + 1) {
      throw new Violation(`${node.id} applied index ${entry.index} after ${node.applied}`);
    }
    if (this.safety.onApply(node.id, entry, raft.currentTerm)) this.stats.committed = Math.max(this.stats.committed, entry.index);
    node.applied = entry.index;
    this.maybeNoticeCommit(node, raft, entry);
    if (entry.kind === 'command') {
      const cmd = this.commands.get(entry.data);
      if (cmd) node.kv.set(cmd.key, cmd.value);
      const pending = this.pendingWrites.get(entry.data);
      if (pending && pending.node === node.id && pending.index === entry.index && pending.term === entry.term) {
        this.pendingWrites.delete(entry.data);
        this.maxAcked = Math.max(this.maxAcked, entry.index);
        this.stats.writesAcked++;
        if (entry.data === this.livenessWrite) this.livenessAckIndex = entry.index;
        this.log(`ack write ${cmd?.key}=${cmd?.value} at ${entry.index}`);
      }
    }
  }

  /** ReadIndex step 4 (thesis §6.4): a confirmed read is served once its index is applied. */
  private serveAppliedReads(node: SimNode): void {
    const still: { requestId: number; index: number }[] = [];
    for (const waiting of node.readsWaiting) {
      if (waiting.index > node.applied) still.push(waiting);
      else this.serveRead(node, waiting.requestId);
    }
    node.readsWaiting = still;
  }

  private serveRead(node: SimNode, requestId: number): void {
    const read = this.pendingReads.get(requestId);
    if (!read) return;
    this.pendingReads.delete(requestId);
    if (node.applied < read.mustSee) {
      throw new Violation(
        `linearizability: ${node.id} served read ${requestId} of ${read.key} at applied index ${node.applied}, but a write at ${read.mustSee} was acknowledged before the read began`,
      );
    }
    this.stats.readsServed++;
    this.log(`read ${read.key}=${node.kv.get(read.key)} at ${node.id} (applied ${node.applied} >= ${read.mustSee})`);
  }

  private maybeSnapshot(node: SimNode, raft: Raft): void {
    if (node.applied - raft.snapshotIndex < this.snapshotEvery) return;
    // Applied ahead of its fsync: the snapshot waits until what it holds is durable here.
    if (node.applied > raft.durableIndex) return;
    const data = new Uint8Array(0);
    this.snapshotStates.set(data, new Map(node.kv));
    const snap = raft.compact(node.applied, data);
    node.disk.snapshot = snap;
    node.disk.entries = node.disk.entries.filter((e) => e.index > snap.meta.index);
    this.stats.snapshots++;
    this.log(`${node.id} snapshot at ${snap.meta.index}`);
  }

  private liveLeaders(): SimNode[] {
    const out: SimNode[] = [];
    for (const node of this.nodes.values()) if (node.raft?.currentRole === 'leader') out.push(node);
    return out;
  }

  private onClient(): void {
    // Once faults stop, recovery is measured with the prober's write only (checkLiveness).
    if (!this.clientsOn) return;
    const leaders = this.liveLeaders();
    const all = [...this.nodes.values()].filter((n) => n.raft);
    if (all.length === 0) return;
    // Mostly ask a node that believes it leads; sometimes anyone, to exercise refusals.
    const node = leaders.length > 0 && this.rng.chance(0.9) ? this.rng.pick(leaders) : this.rng.pick(all);
    const raft = node.raft as Raft;
    const r = this.rng.next();
    if (r < 0.6) {
      const data = new Uint8Array(1);
      const cmd = { key: this.rng.pick(KEYS), value: `v${this.nextValue++}` };
      this.commands.set(data, cmd);
      const res = raft.propose(data);
      if (res.ok) {
        this.pendingWrites.set(data, { node: node.id, index: res.index, term: res.term });
        this.stats.writesProposed++;
        this.log(`propose ${cmd.key}=${cmd.value} at ${node.id} -> index ${res.index} term ${res.term}`);
      }
    } else if (r < 0.88) {
      const requestId = this.nextRequestId++;
      const key = this.rng.pick(KEYS);
      if (raft.readIndex(requestId).ok) this.pendingReads.set(requestId, { node: node.id, key, mustSee: this.maxAcked });
    } else if (r < 0.92) {
      const voters = raft.membership.filter((m) => m.voter && m.id !== node.id);
      const to = voters.length > 0 && this.rng.chance(0.5) ? this.rng.pick(voters).id : null;
      // Half of them as a stopping leader's (it votes for the target with its TimeoutNow); here it
      // runs on as a follower, which asks more of that vote than a member that then exits.
      const leaving = this.rng.chance(0.5);
      const term = raft.currentTerm;
      if (raft.transferLeadership(to, [], leaving).ok) {
        this.stats.transfers++;
        this.log(`transfer from ${node.id} to ${to ?? 'most up-to-date'}${leaving ? ', leaving' : ''}`);
        // Sending TimeoutNow gave the lease up; a leaving leader stepped down in the same step, so
        // noteLease never sees it lead without one.
        if (raft.currentRole !== 'leader') this.endLease(node.id, term);
      }
    } else if (r < 0.97 && (this.opts.membershipChanges ?? true)) {
      this.changeMembership(node, raft);
    }
    this.afterInput(node);
  }

  private changeMembership(node: SimNode, raft: Raft): void {
    const members = raft.membership;
    const learners = members.filter((m) => !m.voter);
    const removable = members.filter((m) => m.id !== node.id);
    const choice = this.rng.next();
    let res;
    if (learners.length > 0 && choice < 0.5) {
      res = raft.proposeConfigChange({ kind: 'promote', id: this.rng.pick(learners).id });
    } else if (members.length < this.opts.nodes + 2 && choice < 0.8) {
      const id = this.spareIds.find((s) => !members.some((m) => m.id === s));
      if (!id) return;
      res = raft.proposeConfigChange({ kind: 'addLearner', id, url: `sim://${id}` });
      if (res.ok && !this.nodes.has(id)) {
        this.addNode(id, { hardState: { term: 0, votedFor: null, commitIndex: 0 }, snapshot: null, entries: [] });
      }
    } else if (members.length > this.opts.nodes && removable.length > 0) {
      res = raft.proposeConfigChange({ kind: 'remove', id: this.rng.pick(removable).id });
    } else {
      return;
    }
    if (res.ok) {
      this.stats.configChanges++;
      this.log(`config change at ${node.id} -> index ${res.index}`);
    }
  }

  // ---- faults ------------------------------------------------------------------------------------

  private onFault(): void {
    const all = [...this.nodes.values()];
    const live = all.filter((n) => n.raft);
    const crashed = all.filter((n) => !n.raft);
    if (this.deadSignals && live.length > 1 && this.rng.chance(0.2)) {
      // A false report: a live node (mostly the leader) said dead to some of its peers.
      const leader = this.liveLeaders()[0];
      const subject = leader && this.rng.chance(0.7) ? leader : this.rng.pick(live);
      this.log(`false death report about ${subject.id}`);
      this.reportDeath(subject, live.filter((n) => n !== subject), false);
      return;
    }
    const r = this.rng.next();
    if (r < 0.3 && live.length > 0) {
      const victim = this.rng.chance(0.5) && this.liveLeaders().length > 0 ? this.rng.pick(this.liveLeaders()) : this.rng.pick(live);
      victim.raft = null;
      victim.persisting = null; // whatever was not fsynced is gone
      this.stats.crashes++;
      this.log(`crash ${victim.id}`);
      this.voidLeases(victim.id, victim.disk.hardState.term);
      if (this.deadSignals) this.reportDeath(victim, live.filter((n) => n !== victim), true);
    } else if (r < 0.6 && crashed.length > 0) {
      const node = this.rng.pick(crashed);
      this.log(`restart ${node.id} (term ${node.disk.hardState.term}, ${node.disk.entries.length} entries, snapshot ${node.disk.snapshot?.meta.index ?? 0})`);
      this.start(node);
    } else if (r < 0.8) {
      for (const node of all) node.group = this.rng.int(2);
      // Isolating the leader is the most interesting partition.
      const leader = this.liveLeaders()[0];
      if (leader && this.rng.chance(0.5)) for (const node of all) node.group = node === leader ? 1 : 0;
      this.stats.partitions++;
      this.log(`partition ${all.map((n) => `${n.id}:${n.group}`).join(' ')}`);
    } else {
      for (const node of all) node.group = 0;
      this.log('heal');
    }
  }

  /** The transport's report that `subject`'s process is gone, to each of `peers` with some chance,
   * each after its own delay (each peer sees its own connection close). */
  private reportDeath(subject: SimNode, peers: readonly SimNode[], real: boolean): void {
    for (const peer of peers) {
      if (!this.rng.chance(real ? 0.85 : 0.6)) continue;
      this.schedule({ kind: 'peerDead', time: this.now + this.rng.between(1, this.maxDelay), seq: 0, node: peer.id, peer: subject.id, real });
    }
  }

  /** Now and then a leader tells another member that an entry it applied is committed, with a delay
   * that lets it overtake the appends (a forwarded write's answer); lost like a message. */
  private maybeNoticeCommit(node: SimNode, raft: Raft, entry: Entry): void {
    if (raft.currentRole !== 'leader' || !this.rng.chance(0.2)) return;
    const others = [...this.nodes.keys()].filter((id) => id !== node.id);
    if (others.length === 0 || (this.faultsOn && this.rng.chance(this.dropRate))) return;
    const to = this.rng.pick(others);
    this.schedule({ kind: 'commitNotice', time: this.now + this.rng.between(1, this.maxDelay * 2), seq: 0, from: node.id, node: to, index: entry.index, term: entry.term });
  }

  private onCommitNotice(from: NodeId, id: NodeId, index: number, term: number): void {
    const node = this.nodes.get(id);
    const sender = this.nodes.get(from);
    if (!node?.raft || !sender || sender.group !== node.group) return;
    this.log(`${id} told (${index}, t${term}) is committed`);
    node.raft.learnCommit(index, term);
    this.afterInput(node);
  }

  private onPeerDead(id: NodeId, peer: NodeId, real: boolean): void {
    const node = this.nodes.get(id);
    const subject = this.nodes.get(peer);
    if (!node?.raft || !subject) return;
    // A refused connection needs the network: across a partition the peer would time out instead.
    if (real && subject.group !== node.group) return;
    if (real && subject.raft) real = false; // it restarted meanwhile: the report is stale
    this.stats.deadSignals++;
    if (!real) this.stats.falseDeadSignals++;
    if (node.raft.currentRole === 'follower' && node.raft.currentLeader === peer) this.stats.deadSignalsAboutLeader++;
    if (node.raft.currentRole === 'leader' && node.raft.status().transferee === peer) this.stats.deadSignalsAboutTransferee++;
    this.log(`${id} told ${peer} is dead${real ? '' : ' (false)'}`);
    if (!real) this.voidLeases(peer, subject.raft?.currentTerm ?? subject.disk.hardState.term);
    node.raft.reportPeerDead(peer);
    this.afterInput(node);
  }

  // ---- invariants ----------------------------------------------------------------------------------

  /**
   * The leader lease (Raft.leaseBasisTick): every node ticks once per TICK here, so a lease that
   * counts from the tick a quorum-answered heartbeat round was sent in ends leaseTicks ticks later.
   * Leases of different terms never overlap: no node holds one while a lower term's still runs.
   */
  private voidLeases(id: NodeId, upToTerm: number): void {
    this.voidedLeases.set(id, Math.max(upToTerm, this.voidedLeases.get(id) ?? 0));
  }

  private leaseVoid(leader: NodeId, term: number): boolean {
    return (this.voidedLeases.get(leader) ?? -1) >= term;
  }

  private endLease(leader: NodeId, term: number): void {
    const held = this.leases.get(term);
    if (held?.leader === leader && held.end > this.now) this.leases.set(term, { leader, end: this.now });
  }

  private noteLease(node: SimNode, raft: Raft): void {
    if (this.leaseVoid(node.id, raft.currentTerm)) return;
    const basis = raft.leaseBasisTick();
    if (basis === null) {
      // A leader gives its lease up while it still leads (a transfer sent TimeoutNow): it ends now.
      this.endLease(node.id, raft.currentTerm);
      return;
    }
    const sentAt = node.tickTimes.get(basis);
    if (sentAt === undefined) return;
    const end = sentAt + raft.leaseTicks * TICK;
    if (end <= this.now) return;
    const term = raft.currentTerm;
    for (const [leaseTerm, lease] of this.leases) {
      if (lease.end <= this.now || this.leaseVoid(lease.leader, leaseTerm)) this.leases.delete(leaseTerm);
      else if (leaseTerm < term) {
        throw new Violation(`leader lease: ${node.id} holds a lease in term ${term} at ${this.now}, but ${lease.leader}'s lease of term ${leaseTerm} runs until ${lease.end}`);
      }
    }
    const held = this.leases.get(term);
    if (held === undefined || held.end < end) this.leases.set(term, { leader: node.id, end });
  }

  private checkNewLeader(node: SimNode, raft: Raft): void {
    const term = raft.currentTerm;
    this.safety.onLeader(raft, term);
    this.log(`${node.id} leads term ${term}`);
    // Its own vote counted only once durable: else a crash could let it vote again in this term.
    const durable = node.disk.hardState;
    if (durable.term !== term || durable.votedFor !== node.id) {
      throw new Violation(`own vote: ${node.id} leads term ${term} while its disk holds term ${durable.term}, vote ${durable.votedFor ?? 'none'}`);
    }
  }

  private checkLogsPairwise(): void {
    this.safety.logsPairwise([...this.nodes.values()].flatMap((n) => (n.raft ? [n.raft] : [])));
  }

  /** Liveness: once faults stop, a leader is elected, a write commits and every member catches up. */
  private checkLiveness(): void {
    this.faultsOn = false;
    this.clientsOn = false;
    this.dropRate = 0;
    this.dupRate = 0;
    for (const node of this.nodes.values()) {
      node.group = 0;
      if (!node.raft) this.start(node);
    }
    this.log('faults stop: healed, every node restarted');
    const deadline = this.now + LIVENESS_BOUND_TICKS * TICK;
    const startedAt = this.now;
    let livenessProposedAt = this.now;
    while (this.now < deadline) {
      if (this.livenessAckIndex === 0 && this.livenessWrite === null) {
        const leader = this.liveLeaders()[0];
        if (leader?.raft) {
          const data = new Uint8Array(1);
          this.commands.set(data, { key: 'liveness', value: 'ok' });
          const res = leader.raft.propose(data);
          if (res.ok) {
            this.livenessWrite = data;
            this.stats.writesProposed++;
            livenessProposedAt = this.now;
            this.pendingWrites.set(data, { node: leader.id, index: res.index, term: res.term });
            this.afterInput(leader);
          }
        }
      } else if (this.livenessAckIndex === 0 && this.now - livenessProposedAt > 3 * ELECTION_TICKS * TICK) {
        this.livenessWrite = null; // lost with a leadership change, as a client would see: retry
      }
      if (this.livenessAckIndex > 0 && this.allMembersApplied(this.livenessAckIndex)) {
        this.stats.livenessTicks = Math.ceil((this.now - startedAt) / TICK);
        return;
      }
      this.stepOnce();
    }
    const states = [...this.nodes.values()]
      .map((n) => `${n.id}:${n.raft?.currentRole}/t${n.raft?.currentTerm}/c${n.raft?.committedIndex}/a${n.applied}`)
      .join(' ');
    throw new Violation(`liveness: no committed write on every member within ${LIVENESS_BOUND_TICKS} ticks after faults stopped (${states})`);
  }

  private allMembersApplied(index: number): boolean {
    const leader = this.liveLeaders()[0];
    if (!leader?.raft) return false;
    return leader.raft.membership.every((m) => (this.nodes.get(m.id)?.applied ?? 0) >= index);
  }

  private log(line: string): void {
    if (this.trace) this.trace(`t=${this.now} ${line}`);
  }
}

export function describe(m: Message): string {
  const head = `${m.from}->${m.to} ${m.kind} t${m.term}`;
  switch (m.kind) {
    case 'vote':
      return `${head}${m.preVote ? ' pre' : ''}${m.transfer ? ' transfer' : ''} last=${m.lastLogIndex}/t${m.lastLogTerm}`;
    case 'voteResponse':
      return `${head}${m.preVote ? ' pre' : ''} ${m.granted ? 'granted' : 'rejected'}`;
    case 'append':
      return `${head} prev=${m.prevLogIndex}/t${m.prevLogTerm} n=${m.entries.length} commit=${m.leaderCommit}`;
    case 'appendResponse':
      return m.success ? `${head} ok match=${m.matchIndex}` : `${head} refused ${m.rejectedIndex} hint=${m.conflictIndex}/t${m.conflictTerm}`;
    case 'heartbeat':
      return `${head} commit=${m.commit} seq=${m.seq}`;
    case 'heartbeatResponse':
      return `${head} seq=${m.seq}`;
    case 'snapshot':
      return `${head} index=${m.snapshot.meta.index}/t${m.snapshot.meta.term}`;
    case 'timeoutNow':
      return head;
    default: {
      const never: never = m;
      return never;
    }
  }
}
