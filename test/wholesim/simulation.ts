// Deterministic simulation of whole raftlet nodes (FoundationDB style): real RaftNodes with the real
// KvStore, over a modelled disk (disk.ts), network (network.ts) and clocks (scheduler.ts), driven by
// simulated clients that write, compare-and-set, delete and read (linearizable and stale) through any
// node, while faults strike: crashes aimed at the windows that matter, one-way partitions, long
// delays, duplication, pauses, clock-rate differences, disk write errors, membership changes and
// leadership transfers. Invariants are checked after every step; the client history is checked for
// linearizability at the end; liveness once faults stop. One seed replays exactly.
import { ClientError } from '../../src/api/ops.ts';
import { KvStore, decodeKvCommand } from '../../src/kv/index.ts';
import type { KvCommand, KvItem, KvResult } from '../../src/kv/types.ts';
import { RaftNode, type NodeLogger, type RaftView } from '../../src/node/node.ts';
import type { LogStore, StateMachine } from '../../src/node/ports.ts';
import { bootstrapState } from '../../src/raft/raft.ts';
import type { Entry, Member, Message, NodeId } from '../../src/raft/types.ts';
import { FIRST_WRITE_INDEX, checkHistory, type KvInput, type KvOp, type KvOutput } from '../chaos/kv-model.ts';
import { SafetyChecker, Violation } from '../sim/invariants.ts';
import { Rng } from '../sim/rng.ts';
import { describe as describeMessage } from '../sim/simulation.ts';
import { SimDisk, SimLogStore, recoverDisk, type DiskProfile, type StoreArm } from './disk.ts';
import { SimNetwork, type NetNode, type NetProfile } from './network.ts';
import { Scheduler, SimClock, type NodeSlot } from './scheduler.ts';

export interface WholeSimOptions {
  readonly seed: number;
  /** Voters at the start (3 or 5); two spare nodes may join as learners. */
  readonly nodes: number;
  /** Virtual ms of faults and client load before the liveness phase. */
  readonly durationMs?: number;
  readonly faults?: boolean;
  readonly clients?: number;
  readonly trace?: (line: string) => void;
}

export interface WholeSimStats {
  events: number;
  virtualMs: number;
  elections: number;
  maxTerm: number;
  committed: number;
  writesOk: number;
  writesFailed: number;
  writesUnknown: number;
  overloaded: number;
  readsOk: number;
  staleReads: number;
  crashes: number;
  aimedCrashes: number;
  writeErrors: number;
  tornTailsCut: number;
  partitions: number;
  pauses: number;
  configChanges: number;
  transfers: number;
  snapshots: number;
  messages: number;
  livenessMs: number;
  checkerSteps: number;
}

export interface WholeSimResult {
  readonly seed: number;
  readonly violation: string | null;
  readonly stats: WholeSimStats;
}

const HEARTBEAT_MS = 20;
const ELECTION_TIMEOUT_MS = 100;
/** Once faults stop, a write must commit and reach every member within this (40 election timeouts). */
export const LIVENESS_BOUND_MS = 40 * ELECTION_TIMEOUT_MS;
const KEYS = ['a', 'b', 'c'];
/** Virtual ms of faults and load per seed: about 20 election timeouts, a dozen faults. */
export const DEFAULT_DURATION_MS = 2000;
const SPARES = 2;

const silent: NodeLogger = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };

/** Runs one seed. Never throws: a broken invariant comes back as `violation`. */
export async function runWholeSimulation(options: WholeSimOptions): Promise<WholeSimResult> {
  const sim = new WholeSimulation(options);
  let violation: string | null = null;
  // Thousands of ClientErrors and deadline errors per seed: their stacks are a third of the time.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = options.trace ? stackTraceLimit : 0;
  try {
    await sim.run();
  } catch (err) {
    violation = err instanceof Violation ? err.message : `simulator error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
  violation ??= sim.violation;
  return { seed: options.seed, violation, stats: sim.stats };
}

/** Lets the promise continuations an event started run before the next event. A macrotask boundary
 * (setImmediate) would drain them all but costs more than the rest of a step; a fixed number of
 * microtask turns covers the node's chains, and a longer one only finishes during the next event,
 * which is still the same on every run of a seed (and only makes a client see its answer later). */
async function settle(): Promise<void> {
  for (let turn = 0; turn < 4; turn++) await null;
}

/** One member slot across restarts: its disk, clock rate and the node running now (if any). */
class SimMember implements NetNode {
  readonly slot: NodeSlot;
  readonly url: string;
  readonly disk: SimDisk;
  readonly rate: number;
  readonly offset: number;
  node: RaftNode | null = null;
  clock: SimClock | null = null;
  store: SimLogStore | null = null;
  kv: KvStore | null = null;
  /** A write error was injected: onFatal('storage') is expected. */
  expectStorageFailure = false;
  storageFailedAt = -1;
  // What the per-step checks remember about this incarnation.
  lastCommit = 0;
  leaderTerm = 0;
  /** Term and role at the end of the last step (a pre-candidate must not have moved its term). */
  lastTerm = 0;
  readonly matchSeen = new Map<NodeId, number>();
  transferBase: { term: number; to: NodeId; last: number } | null = null;
  pendingConfigKey = '';
  /** Client calls in flight at this node: told when it crashes (the connection resets). */
  readonly onCrash = new Set<() => void>();

  constructor(id: NodeId, disk: SimDisk, rate: number, offset: number) {
    this.slot = { id, incarnation: 0, up: false, pausedUntil: 0 };
    this.url = `sim://${id}`;
    this.disk = disk;
    this.rate = rate;
    this.offset = offset;
  }

  running(): { node: RaftNode; clock: SimClock } | null {
    return this.slot.up && this.node !== null && this.clock !== null ? { node: this.node, clock: this.clock } : null;
  }

  view(): RaftView | null {
    return this.slot.up && this.node !== null ? this.node.inspect() : null;
  }
}

class WholeSimulation {
  readonly stats: WholeSimStats = {
    events: 0,
    virtualMs: 0,
    elections: 0,
    maxTerm: 0,
    committed: 0,
    writesOk: 0,
    writesFailed: 0,
    writesUnknown: 0,
    overloaded: 0,
    readsOk: 0,
    staleReads: 0,
    crashes: 0,
    aimedCrashes: 0,
    writeErrors: 0,
    tornTailsCut: 0,
    partitions: 0,
    pauses: 0,
    configChanges: 0,
    transfers: 0,
    snapshots: 0,
    messages: 0,
    livenessMs: 0,
    checkerSteps: 0,
  };
  violation: string | null = null;
  private readonly options: WholeSimOptions;
  private readonly rng: Rng;
  private readonly scheduler = new Scheduler();
  private readonly network: SimNetwork;
  private readonly members = new Map<NodeId, SimMember>();
  private readonly spareIds: NodeId[] = [];
  private readonly safety = new SafetyChecker();
  private readonly trace: ((line: string) => void) | undefined;
  private readonly diskProfile: DiskProfile;
  private readonly snapshotEntries: number;
  private readonly maxUncommittedBytes: number;
  private readonly requestTimeoutMs: number;
  private readonly replication: { maxEntriesPerAppend: number; maxInflightAppends: number };
  private faultsOn: boolean;
  private clientsOn = true;

  // The client history and what the checks know of the committed log.
  private readonly history: KvOp[] = [];
  private nextValue = 1;
  /** Highest index of a write acknowledged so far (a later linearizable read must see it). */
  private maxAcked = 0;
  /** The modIndex clients last saw for each key (If-Match only ever names a seen index). */
  private readonly seenIndex = new Map<string, number>();
  /** Each key's changes in log order: index -> value (null = deleted), from first applications. */
  private readonly changes = new Map<string, { index: number; value: string | null }[]>();
  /** Every index up to here was applied somewhere, so `changes` is complete up to it. */
  private knownThrough = 0;
  private readonly snapshotBytes = new Map<number, Uint8Array>();

  constructor(options: WholeSimOptions) {
    this.options = options;
    this.rng = new Rng(options.seed);
    this.trace = options.trace;
    this.faultsOn = options.faults ?? true;
    const faults = this.faultsOn;
    const rng = this.rng;
    const net: NetProfile = {
      minDelayMs: 1,
      maxDelayMs: rng.pick([2, 5, 12]),
      dropRate: faults ? rng.pick([0, 0.01, 0.05, 0.12]) : 0,
      dupRate: faults ? rng.pick([0, 0.02, 0.08]) : 0,
      longDelayRate: faults ? rng.pick([0, 0, 0.005, 0.02]) : 0,
      longDelayMs: rng.pick([60, 150, 400]),
    };
    this.network = new SimNetwork(this.scheduler, rng.fork(), net, (line) => this.log(line));
    this.network.onDeliver = (to, messages, handle) => this.deliver(to as SimMember, messages, handle);
    const fsync = rng.pick([
      [0.5, 2],
      [1, 6],
      [3, 25],
    ]);
    this.diskProfile = { fsyncMinMs: fsync[0], fsyncMaxMs: fsync[1], framesPerSegment: rng.pick([4, 16, 64]), keepSnapshots: 2 };
    this.snapshotEntries = rng.pick([6, 20, 60, 1_000_000]);
    this.maxUncommittedBytes = rng.pick([90, 400, 8 * 1024 * 1024]);
    this.requestTimeoutMs = rng.pick([150, 400, 1000]);
    // Small batches let an old entry reach a follower without the newer ones after it (Figure 8).
    this.replication = { maxEntriesPerAppend: rng.pick([1, 2, 8, 512]), maxInflightAppends: rng.pick([2, 16, 256]) };
    const voters: Member[] = [];
    for (let i = 1; i <= options.nodes; i++) voters.push({ id: `n${i}`, url: `sim://n${i}`, voter: true });
    for (let i = options.nodes + 1; i <= options.nodes + SPARES; i++) this.spareIds.push(`n${i}`);
    const boot = bootstrapState(voters);
    for (const member of voters) {
      const disk = new SimDisk(this.diskProfile);
      // What openData writes for a static member list before the node starts.
      disk.appendDurable([...boot.entries.map((entry) => ({ kind: 'entry' as const, entry })), { kind: 'hardState', hardState: boot.hardState }], 1);
      this.addMember(member.id, disk, false);
    }
    this.log(
      `seed ${options.seed}: ${options.nodes} nodes, net delay 1..${net.maxDelayMs} drop ${net.dropRate} dup ${net.dupRate} long ${net.longDelayRate}x${net.longDelayMs}, ` +
        `fsync ${fsync[0]}..${fsync[1]} ms, segment ${this.diskProfile.framesPerSegment} frames, snapshot every ${this.snapshotEntries}, ` +
        `budget ${this.maxUncommittedBytes} B, request timeout ${this.requestTimeoutMs} ms, batch ${this.replication.maxEntriesPerAppend}, window ${this.replication.maxInflightAppends}`,
    );
  }

  private addMember(id: NodeId, disk: SimDisk, start = true): SimMember {
    const rate = this.faultsOn ? this.rng.pick([1, 1, 0.9, 0.95, 1.05, 1.1]) : 1;
    const member = new SimMember(id, disk, rate, this.rng.int(1_000_000));
    this.members.set(id, member);
    this.network.add(member);
    if (start) this.start(member);
    return member;
  }

  // ---- the run -------------------------------------------------------------------------------------

  async run(): Promise<void> {
    const duration = this.options.durationMs ?? DEFAULT_DURATION_MS;
    const clients = this.options.clients ?? 4;
    for (const member of this.members.values()) this.start(member);
    for (let c = 0; c < clients; c++) this.background(this.client(`c${c}`));
    if (this.faultsOn) this.scheduler.at(this.rng.between(100, 400), () => this.fault());
    await this.runUntil(duration);
    await this.livenessPhase();
    this.safety.logsPairwise([...this.members.values()].flatMap((m) => m.view() ?? []));
    this.checkLinearizable();
    this.stats.virtualMs = Math.round(this.scheduler.now);
    this.stats.messages = this.network.stats.delivered;
  }

  private async runUntil(time: number, done: () => boolean = () => false): Promise<boolean> {
    while (this.violation === null) {
      if (done()) return true;
      if (!this.scheduler.runNext(time)) return done();
      this.stats.events++;
      // A soon() continues the step that queued it: its checks come with the next event.
      if (this.scheduler.lastFollow) continue;
      await settle();
      // A node's own job changes that node; anything else (and now and then) may change any.
      const slot = this.scheduler.lastSlot;
      const only = slot !== null && this.stats.events % 16 !== 0 ? this.members.get(slot.id) : undefined;
      this.checkStep(only);
    }
    throw new Violation(this.violation);
  }

  private violate(message: string): void {
    this.violation ??= message;
  }

  /** Client work runs beside the event loop; a violation it finds stops the run. */
  private background(work: Promise<void>): void {
    work.catch((err: unknown) => this.violate(err instanceof Violation ? err.message : `simulator error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`));
  }

  private log(line: string): void {
    this.trace?.(`t=${this.scheduler.now.toFixed(3)} ${line}`);
  }

  // ---- nodes: start, crash, restart ---------------------------------------------------------------

  private start(member: SimMember): void {
    let recovered;
    try {
      recovered = recoverDisk(member.disk);
    } catch (err) {
      throw new Violation(`recovery: ${member.slot.id} cannot restart from its disk: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (recovered.cutTornTail) this.stats.tornTailsCut++;
    const { restored } = recovered;
    member.slot.up = true;
    member.expectStorageFailure = false;
    member.storageFailedAt = -1;
    member.lastCommit = 0;
    member.leaderTerm = 0;
    member.lastTerm = restored.hardState.term;
    member.matchSeen.clear();
    member.transferBase = null;
    member.pendingConfigKey = '';
    const id = member.slot.id;
    const kv = new KvStore();
    if (restored.snapshot) kv.restore(restored.snapshot.data, restored.snapshot.meta.index);
    member.kv = kv;
    const clock = new SimClock(this.scheduler, member.slot, member.rate, member.offset);
    member.clock = clock;
    const rng = this.rng.fork();
    const store = new SimLogStore(member.disk, recovered.shape, this.scheduler, member.slot, rng.fork(), {
      crash: (why) => this.crash(member, why),
      trace: (line) => this.log(line),
    });
    member.store = store;
    const checkedStore: LogStore = {
      save: (update) => {
        const entries = update.entries ?? [];
        const saved = store.save(update);
        if (entries.length > 0) {
          // Checked once durable: entries lost unsaved in a crash were never part of any log.
          const prevTerm = member.node?.inspect().termAt(entries[0].index - 1);
          saved.then(
            () => {
              try {
                this.safety.onPersist(id, entries, prevTerm);
              } catch (err) {
                this.violate(err instanceof Error ? err.message : String(err));
              }
            },
            () => undefined,
          );
        }
        return saved;
      },
      saveSnapshot: (snapshot) => {
        this.stats.snapshots++;
        return store.saveSnapshot(snapshot);
      },
    };
    const node = new RaftNode({
      id,
      heartbeatMs: HEARTBEAT_MS,
      electionTimeoutMs: ELECTION_TIMEOUT_MS,
      restored,
      store: checkedStore,
      peers: this.network.sender(member),
      stateMachine: this.checkedStateMachine(member, kv),
      clock,
      logger: this.trace ? this.nodeLogger(id) : silent,
      snapshotEntries: this.snapshotEntries,
      random: () => rng.next(),
      maxUncommittedBytes: this.maxUncommittedBytes,
      replication: this.replication,
      onFatal: (err, kind) => this.onFatal(member, err, kind),
    });
    node.addHooks({
      onRaftEvent: (ev) => {
        if (ev.kind === 'electionStarted') this.stats.elections++;
        if (ev.kind === 'termChanged') this.stats.maxTerm = Math.max(this.stats.maxTerm, ev.term);
        if (ev.kind === 'electionWon') this.log(`${id} leads term ${ev.term}`);
      },
    });
    member.node = node;
    member.lastCommit = node.inspect().committedIndex;
    this.log(`start ${id} (term ${restored.hardState.term}, ${restored.entries.length} entries, snapshot ${restored.snapshot?.meta.index ?? 0}, clock x${member.rate})`);
    node.start();
  }

  private nodeLogger(id: NodeId): NodeLogger {
    const line = (obj: object, msg: string): void => this.log(`${id}: ${msg} ${JSON.stringify(obj)}`);
    return { info: line, warn: line, error: line, debug: line };
  }

  private onFatal(member: SimMember, err: unknown, kind: 'storage' | 'invariant'): void {
    if (err instanceof Violation) {
      this.violate(err.message);
      return;
    }
    const message = err instanceof Error ? err.message : String(err);
    if (kind === 'storage' && member.expectStorageFailure) {
      this.log(`${member.slot.id} stopped on its storage failure, as it must`);
      this.crash(member, 'storage failure');
      this.scheduler.at(this.scheduler.now + this.downtime(), () => this.restart(member));
      return;
    }
    this.violate(`${member.slot.id} stopped (${kind}): ${message}`);
  }

  private crash(member: SimMember, why: string): void {
    if (!member.slot.up) return;
    member.store?.crashImage();
    member.slot.up = false;
    member.slot.incarnation++;
    member.slot.pausedUntil = 0;
    member.node = null;
    member.clock = null;
    member.store = null;
    member.kv = null;
    this.stats.crashes++;
    this.log(`crash ${member.slot.id}: ${why}`);
    const calls = [...member.onCrash];
    member.onCrash.clear();
    for (const reset of calls) reset();
    // A crash armed before the faults stopped may still fire: the supervisor restarts the node.
    if (!this.faultsOn) this.scheduler.at(this.scheduler.now + this.rng.between(1, 50), () => this.restart(member));
  }

  /** How long a crashed node stays down: often long, sometimes back at once (a supervisor restarts
   * it while messages of the election it crashed in are still arriving). */
  private downtime(): number {
    return this.rng.chance(0.3) ? this.rng.between(1, 8) : this.rng.between(10, 500);
  }

  private restart(member: SimMember): void {
    if (member.slot.up) return;
    this.start(member);
  }

  /** The real KvStore, with the checks that must hold of every replica. */
  private checkedStateMachine(member: SimMember, kv: KvStore): StateMachine {
    const id = member.slot.id;
    return {
      get: (key: string): KvItem | undefined => kv.get(key),
      list: (prefix: string, limit: number): KvItem[] => kv.list(prefix, limit),
      get appliedIndex(): number {
        return kv.appliedIndex;
      },
      get changes() {
        return kv.changes;
      },
      applyEntry: (entry: Entry): KvResult | null => {
        const first = this.safety.onApply(id, entry, member.node?.inspect().currentTerm ?? 0);
        const result = kv.applyEntry(entry);
        if (first) this.recordChange(entry, result);
        this.stats.committed = Math.max(this.stats.committed, entry.index);
        return result;
      },
      restore: (data: Uint8Array, index: number): void => kv.restore(data, index),
      snapshot: (): Uint8Array => {
        const bytes = kv.snapshot();
        const index = kv.appliedIndex;
        const other = this.snapshotBytes.get(index);
        if (other === undefined) this.snapshotBytes.set(index, bytes);
        else if (Buffer.compare(Buffer.from(other), Buffer.from(bytes)) !== 0) {
          throw new Violation(`state machine safety: ${id}'s state at index ${index} differs from another node's at the same index`);
        }
        return bytes;
      },
    };
  }

  private recordChange(entry: Entry, result: KvResult | null): void {
    if (entry.kind === 'command' && result !== null && result.ok) {
      const cmd = decodeKvCommand(entry.data);
      const list = this.changes.get(cmd.key) ?? [];
      const change = { index: entry.index, value: cmd.op === 'put' ? Buffer.from(cmd.value).toString() : null };
      let at = list.length;
      while (at > 0 && list[at - 1].index > entry.index) at--;
      list.splice(at, 0, change);
      this.changes.set(cmd.key, list);
    }
    while (this.safety.applied[this.knownThrough + 1] !== undefined) this.knownThrough++;
  }

  // ---- per-step invariants ----------------------------------------------------------------------

  /** Delivers messages to a node, checking that a pre-vote never moves a term (thesis §9.6). */
  private deliver(member: SimMember, messages: readonly Message[], handle: () => void): void {
    const raft = member.view();
    const before = raft?.currentTerm ?? 0;
    if (this.trace) for (const m of messages) this.log(`deliver ${describeMessage(m)}`);
    handle();
    const after = member.view();
    if (after === null || after.currentTerm === before) return;
    for (const m of messages) {
      if (m.kind === 'vote' && m.preVote) {
        throw new Violation(`pre-vote: ${member.slot.id} moved from term ${before} to ${after.currentTerm} on a pre-vote request from ${m.from}`);
      }
      if (m.kind === 'voteResponse' && m.preVote && m.granted && after.currentRole !== 'candidate') {
        throw new Violation(`pre-vote: ${member.slot.id} moved from term ${before} to ${after.currentTerm} on a granted pre-vote without campaigning`);
      }
    }
  }

  private checkStep(only?: SimMember): void {
    for (const member of only ? [only] : this.members.values()) {
      const raft = member.view();
      if (raft === null) continue;
      const id = member.slot.id;
      if (member.store?.failed && member.storageFailedAt < 0) member.storageFailedAt = this.scheduler.now;
      if (member.storageFailedAt >= 0 && this.scheduler.now > member.storageFailedAt + 1) {
        throw new Violation(`${id}'s storage failed at ${member.storageFailedAt} but it kept running (it must stop: onFatal 'storage')`);
      }
      if (raft.committedIndex < member.lastCommit) {
        throw new Violation(`${id}: commit index moved back from ${member.lastCommit} to ${raft.committedIndex}`);
      }
      member.lastCommit = raft.committedIndex;
      if ((this.options as { paranoid?: boolean }).paranoid) for (const key of KEYS) this.checkStaleRead(member, key);
      if (raft.currentRole === 'precandidate' && raft.currentTerm > member.lastTerm) {
        throw new Violation(`pre-vote: ${id} raised its own term from ${member.lastTerm} to ${raft.currentTerm} as a pre-candidate`);
      }
      member.lastTerm = raft.currentTerm;
      if (raft.currentRole !== 'leader') continue;
      const term = raft.currentTerm;
      if (member.leaderTerm !== term) {
        member.leaderTerm = term;
        member.matchSeen.clear();
        member.transferBase = null;
        this.safety.onLeader(raft, term);
      }
      this.checkLeader(id, raft, member);
    }
  }

  /** matchIndex never moves back within a term; at most one configuration change pending; no
   * proposal accepted while leadership is being transferred (thesis §3.10, §4.1). */
  private checkLeader(id: NodeId, raft: RaftView, member: SimMember): void {
    const status = raft.status();
    // A member removed from the configuration loses its progress; if it is added again it starts over.
    if (member.matchSeen.size > status.progress.length) {
      for (const peer of [...member.matchSeen.keys()]) if (!status.progress.some((pr) => pr.id === peer)) member.matchSeen.delete(peer);
    }
    for (const pr of status.progress) {
      const seen = member.matchSeen.get(pr.id) ?? 0;
      if (pr.matchIndex < seen) {
        throw new Violation(`matchIndex: leader ${id} of term ${status.term} moved ${pr.id}'s matchIndex back from ${seen} to ${pr.matchIndex}`);
      }
      member.matchSeen.set(pr.id, pr.matchIndex);
    }
    const key = `${status.commitIndex}/${status.lastLogIndex}`;
    if (key !== member.pendingConfigKey) {
      member.pendingConfigKey = key;
      let pending = 0;
      for (let index = Math.max(status.commitIndex + 1, raft.snapshotIndex + 1); index <= status.lastLogIndex; index++) {
        if (raft.entryAt(index)?.kind === 'config') pending++;
      }
      if (pending > 1) throw new Violation(`configuration: leader ${id} has ${pending} uncommitted configuration entries (at most one may be pending)`);
    }
    if (status.transferee === null) {
      member.transferBase = null;
    } else if (member.transferBase === null || member.transferBase.term !== status.term || member.transferBase.to !== status.transferee) {
      member.transferBase = { term: status.term, to: status.transferee, last: status.lastLogIndex };
    } else if (status.lastLogIndex > member.transferBase.last) {
      throw new Violation(`transfer: leader ${id} accepted a proposal at ${status.lastLogIndex} while transferring leadership to ${status.transferee}`);
    }
  }

  // ---- clients -----------------------------------------------------------------------------------

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.scheduler.at(this.scheduler.now + ms, resolve));
  }

  private upMembers(): SimMember[] {
    return [...this.members.values()].filter((m) => m.running() !== null);
  }

  /** A client with one request at a time, to any node. */
  private async client(name: string): Promise<void> {
    while (this.clientsOn && this.violation === null) {
      await this.sleep(this.rng.next() * 15);
      if (!this.clientsOn) return;
      const targets = this.upMembers();
      if (targets.length === 0) continue;
      const member = this.rng.pick(targets);
      const key = this.rng.pick(KEYS);
      const r = this.rng.next();
      if (r < 0.35) await this.read(name, member, key, 'linearizable');
      else if (r < 0.45) await this.read(name, member, key, 'stale');
      else if (r < 0.99) await this.write(name, member, key, this.pickWrite(key));
      else await this.transfer(member);
    }
  }

  private pickWrite(key: string): KvInput {
    const r = this.rng.next();
    const seen = this.seenIndex.get(key);
    const ifMatch = seen !== undefined && this.rng.chance(0.8) ? seen : FIRST_WRITE_INDEX - 1;
    if (r < 0.55) return { kind: 'put', value: `v${this.nextValue++}` };
    if (r < 0.65) return { kind: 'put', value: `v${this.nextValue++}`, ifNoneMatch: true };
    if (r < 0.85) return { kind: 'put', value: `v${this.nextValue++}`, ifMatch };
    if (r < 0.95) return { kind: 'del' };
    return { kind: 'del', ifMatch };
  }

  /** Runs a call against a node; a crash of that node resets the connection (outcome unknown). */
  private async against<T>(member: SimMember, call: () => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
    return new Promise((resolve) => {
      const reset = (): void => resolve({ ok: false, error: new ClientError('timeout', 'the connection reset: the node crashed') });
      member.onCrash.add(reset);
      call().then(
        (value) => {
          member.onCrash.delete(reset);
          resolve({ ok: true, value });
        },
        (error: unknown) => {
          member.onCrash.delete(reset);
          resolve({ ok: false, error });
        },
      );
    });
  }

  /** Records an operation as it is invoked: until it returns, its outcome is unknown (an operation
   * still in flight when the run ends may or may not have taken effect). */
  private invoke(client: string, node: NodeId, key: string, input: KvInput): (done: Pick<KvOp, 'outcome' | 'output' | 'ret' | 'note'>) => void {
    const id = this.history.length;
    this.history.push({ id, key, client, node, input, call: this.scheduler.now, ret: Infinity, outcome: 'unknown', output: null });
    return (done) => {
      this.history[id] = { ...this.history[id], ...done };
    };
  }

  private async write(client: string, member: SimMember, key: string, input: KvInput): Promise<void> {
    const running = member.running();
    if (running === null || input.kind === 'get') return;
    const cmd: KvCommand =
      input.kind === 'put'
        ? { op: 'put', key, value: Buffer.from(input.value), ...(input.ifMatch !== undefined ? { ifMatch: input.ifMatch } : {}), ...(input.ifNoneMatch ? { ifNoneMatch: true } : {}) }
        : { op: 'del', key, ...(input.ifMatch !== undefined ? { ifMatch: input.ifMatch } : {}) };
    const node = member.slot.id;
    const done = this.invoke(client, node, key, input);
    const deadline = running.clock.now() + this.requestTimeoutMs;
    const res = await this.against(member, () => running.node.propose(cmd, deadline));
    const ret = this.scheduler.now;
    if (res.ok) {
      const result = res.value;
      let output: KvOutput;
      if (!result.ok) output = { kind: 'precondition_failed' };
      else if (input.kind === 'put') output = { kind: 'written', index: result.index };
      else output = { kind: 'deleted', deleted: result.deleted === true, index: result.index };
      // SPEC §4: answered once committed AND applied on the node that answers (read-your-writes).
      const applied = member.kv?.appliedIndex ?? Infinity;
      if (member.running() !== null && applied < result.index) {
        throw new Violation(`read-your-writes: ${node} answered a write at index ${result.index} while it had applied only ${applied}`);
      }
      if (result.ok) {
        this.maxAcked = Math.max(this.maxAcked, result.index);
        if (input.kind === 'put') this.seenIndex.set(key, result.index);
      }
      this.stats.writesOk++;
      done({ ret, outcome: 'ok', output });
      this.log(`${client} ${describeInput(key, input)} at ${node} -> ${JSON.stringify(output)}`);
      return;
    }
    const error = res.error;
    if (!(error instanceof ClientError) || (error.code !== 'no_leader' && error.code !== 'timeout' && error.code !== 'unavailable')) {
      throw new Violation(`client: a write at ${node} failed unexpectedly: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (error.message.includes('overloaded')) this.stats.overloaded++;
    // no_leader: certainly not proposed (SPEC §4); anything else may or may not have happened.
    const outcome = error.code === 'no_leader' ? 'failed' : 'unknown';
    if (outcome === 'failed') this.stats.writesFailed++;
    else this.stats.writesUnknown++;
    done({ ret: Infinity, outcome, output: null, note: `${error.code}: ${error.message}` });
    this.log(`${client} ${describeInput(key, input)} at ${node} -> ${error.code}: ${error.message}`);
  }

  private async read(client: string, member: SimMember, key: string, consistency: 'linearizable' | 'stale'): Promise<void> {
    const running = member.running();
    if (running === null) return;
    const node = member.slot.id;
    if (consistency === 'stale') {
      this.checkStaleRead(member, key);
      this.stats.staleReads++;
      return;
    }
    const call = this.scheduler.now;
    const done = this.invoke(client, node, key, { kind: 'get' });
    const mustSee = this.maxAcked;
    const deadline = running.clock.now() + this.requestTimeoutMs;
    const res = await this.against(member, () => running.node.readBarrier(deadline));
    if (!res.ok || member.running() === null || member.kv === null) return;
    // ReadIndex (thesis §6.4): once the barrier resolves, every write acknowledged before the read
    // began is applied here.
    if (member.kv.appliedIndex < mustSee) {
      throw new Violation(`linearizable read: ${node} passed its read barrier at applied index ${member.kv.appliedIndex}, but a write at ${mustSee} was acknowledged before the read began`);
    }
    const item = member.kv.get(key);
    const output: KvOutput = item === undefined ? { kind: 'absent' } : { kind: 'found', value: Buffer.from(item.value).toString(), modIndex: item.modIndex };
    if (item !== undefined) this.seenIndex.set(key, item.modIndex);
    this.stats.readsOk++;
    done({ ret: this.scheduler.now, outcome: 'ok', output });
    this.log(`${client} get ${key} at ${node} -> ${JSON.stringify(output)} (called ${call}, applied ${member.kv.appliedIndex}, must see ${mustSee}, known ${this.knownThrough})`);
  }

  /** A stale read answers from the local copy: it must be the committed state at its applied index. */
  private checkStaleRead(member: SimMember, key: string): void {
    const kv = member.kv;
    if (kv === null) return;
    const applied = kv.appliedIndex;
    if (applied > this.knownThrough) return;
    const list = this.changes.get(key) ?? [];
    let expected: { index: number; value: string | null } | undefined;
    for (const change of list) {
      if (change.index > applied) break;
      expected = change;
    }
    const item = kv.get(key);
    const got = item === undefined ? null : { index: item.modIndex, value: Buffer.from(item.value).toString() };
    const want = expected === undefined || expected.value === null ? null : expected;
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      throw new Violation(`stale read: ${member.slot.id} at applied index ${applied} shows ${key}=${JSON.stringify(got)}, but the committed log says ${JSON.stringify(want)}`);
    }
  }

  private async transfer(member: SimMember): Promise<void> {
    const running = member.running();
    if (running === null) return;
    const voters = running.node.members().filter((m) => m.voter);
    const to = this.rng.chance(0.5) && voters.length > 0 ? this.rng.pick(voters).id : null;
    // Half of them as a stopping leader's hand-off (its vote goes with the TimeoutNow); the member
    // runs on afterwards, which asks more of that vote than a member that then exits.
    const reason = this.rng.chance(0.5) ? 'shutdown' : 'requested';
    this.stats.transfers++;
    this.log(`transfer via ${member.slot.id} to ${to ?? 'most up-to-date'} (${reason})`);
    await this.against(member, () => running.node.transferLeadership(to, running.clock.now() + this.requestTimeoutMs, reason));
  }

  // ---- faults ------------------------------------------------------------------------------------

  private leader(): SimMember | null {
    let best: SimMember | null = null;
    for (const member of this.members.values()) {
      const raft = member.view();
      if (raft?.currentRole === 'leader' && (best === null || raft.currentTerm > (best.view()?.currentTerm ?? 0))) best = member;
    }
    return best;
  }

  private victim(): SimMember | null {
    const up = this.upMembers();
    if (up.length === 0) return null;
    const leader = this.leader();
    return leader !== null && this.rng.chance(0.5) ? leader : this.rng.pick(up);
  }

  private fault(): void {
    if (!this.faultsOn) return;
    this.scheduler.at(this.scheduler.now + this.rng.between(60, 350), () => this.fault());
    const r = this.rng.next();
    const all = [...this.members.values()];
    if (r < 0.14) {
      const member = this.victim();
      if (member === null) return;
      this.crash(member, 'fault');
      this.scheduler.at(this.scheduler.now + this.downtime(), () => this.restart(member));
    } else if (r < 0.34) {
      const member = this.victim();
      if (!member?.store) return;
      const arm: StoreArm = this.rng.pick(['crashInFlush', 'crashInFlush', 'crashInVote', 'crashAfterFsync', 'crashMidSnapshot']);
      member.store.arm = arm;
      this.stats.aimedCrashes++;
      this.log(`arm ${arm} on ${member.slot.id}`);
      const slot = member.slot;
      const incarnation = slot.incarnation;
      // Whenever it fires, bring the node back later.
      const restartLater = (): void => {
        if (slot.incarnation !== incarnation) this.scheduler.at(this.scheduler.now + this.downtime(), () => this.restart(member));
        else if (this.faultsOn) this.scheduler.at(this.scheduler.now + 50, restartLater);
      };
      this.scheduler.at(this.scheduler.now + 1, restartLater);
    } else if (r < 0.39) {
      const member = this.victim();
      if (!member?.store) return;
      member.store.arm = 'writeError';
      member.expectStorageFailure = true;
      this.stats.writeErrors++;
      this.log(`arm write error on ${member.slot.id}`);
    } else if (r < 0.57) {
      this.network.heal();
      const leader = this.leader();
      const kind = this.rng.next();
      if (leader !== null && kind < 0.4) {
        // Cut the leader off one way or both: it may still hear, or still be heard.
        const way = this.rng.int(3);
        for (const other of all) {
          if (other === leader) continue;
          if (way !== 1) this.network.cutLink(leader.slot.id, other.slot.id);
          if (way !== 0) this.network.cutLink(other.slot.id, leader.slot.id);
        }
      } else {
        for (const a of all) for (const b of all) if (a !== b && this.rng.chance(0.3)) this.network.cutLink(a.slot.id, b.slot.id);
      }
      this.stats.partitions++;
      this.log(`partition ${this.network.describeCuts()}`);
    } else if (r < 0.7) {
      this.network.heal();
      this.log('heal');
    } else if (r < 0.78) {
      const member = this.victim();
      if (member === null) return;
      member.slot.pausedUntil = this.scheduler.now + this.rng.between(30, 700);
      this.stats.pauses++;
      this.log(`pause ${member.slot.id} until ${member.slot.pausedUntil}`);
    } else if (r < 0.83) {
      const burst = this.network.profile.longDelayRate;
      this.network.profile.longDelayRate = 0.3;
      this.log('long delays for 40 ms');
      this.scheduler.at(this.scheduler.now + 40, () => {
        this.network.profile.longDelayRate = this.faultsOn ? burst : 0;
      });
    } else if (r < 0.93) {
      this.changeMembership();
    } else {
      const member = this.victim();
      if (member !== null) this.background(this.transfer(member));
    }
  }

  private changeMembership(): void {
    // Like the reconciler, sometimes ask again at once: the second must wait for the first (§4.1).
    const again = this.rng.chance(0.5);
    this.proposeMembershipChange();
    if (again) this.proposeMembershipChange();
  }

  private proposeMembershipChange(): void {
    const leader = this.leader();
    const running = leader?.running();
    if (!leader || !running) return;
    const members = running.node.members();
    const learners = members.filter((m) => !m.voter);
    const removable = members.filter((m) => m.id !== leader.slot.id);
    const choice = this.rng.next();
    let change;
    if (learners.length > 0 && choice < 0.5) {
      change = { kind: 'promote' as const, id: this.rng.pick(learners).id };
    } else if (members.length < this.options.nodes + SPARES && choice < 0.8) {
      const id = this.spareIds.find((s) => !members.some((m) => m.id === s));
      if (id === undefined) return;
      change = { kind: 'addLearner' as const, id, url: `sim://${id}` };
    } else if (members.length > this.options.nodes && removable.length > 0) {
      change = { kind: 'remove' as const, id: this.rng.pick(removable).id };
    } else {
      return;
    }
    const res = running.node.proposeConfigChange(change);
    this.log(`config ${change.kind} ${change.id} at ${leader.slot.id}: ${res.ok ? `index ${res.index}` : res.message}`);
    if (!res.ok) return;
    this.stats.configChanges++;
    if (change.kind === 'addLearner' && !this.members.has(change.id)) this.addMember(change.id, new SimDisk(this.diskProfile));
  }

  // ---- liveness and the history ---------------------------------------------------------------------

  private async livenessPhase(): Promise<void> {
    this.faultsOn = false;
    this.clientsOn = false;
    const profile = this.network.profile;
    profile.dropRate = 0;
    profile.dupRate = 0;
    profile.longDelayRate = 0;
    this.network.heal();
    for (const member of this.members.values()) {
      member.slot.pausedUntil = 0;
      if (member.store) member.store.arm = null;
      if (!member.slot.up) this.start(member);
    }
    this.log('faults stop: healed, resumed, every node restarted');
    const started = this.scheduler.now;
    const deadline = started + LIVENESS_BOUND_MS;
    let ackIndex = 0;
    let attempt: Promise<void> | null = null;
    const tryWrite = async (): Promise<void> => {
      // Through a member of the configuration: a removed node may never hear of a leader again.
      const config = this.leader()?.running()?.node.members() ?? [];
      const inConfig = this.upMembers().filter((m) => config.some((c) => c.id === m.slot.id));
      const member = this.rng.pick(inConfig.length > 0 ? inConfig : this.upMembers());
      const before = this.history.length;
      await this.write('liveness', member, 'liveness', { kind: 'put', value: `v${this.nextValue++}` });
      const op = this.history[before];
      if (op?.outcome === 'ok' && op.output?.kind === 'written') ackIndex = op.output.index;
      else await this.sleep(20);
      attempt = null;
    };
    const everyoneApplied = (): boolean => {
      if (ackIndex === 0) {
        if (attempt === null) {
          attempt = tryWrite();
          this.background(attempt);
        }
        return false;
      }
      const leader = this.leader()?.running();
      if (!leader) return false;
      return leader.node.members().every((m) => (this.members.get(m.id)?.kv?.appliedIndex ?? 0) >= ackIndex);
    };
    if (await this.runUntil(deadline, everyoneApplied)) {
      this.stats.livenessMs = Math.round(this.scheduler.now - started);
      return;
    }
    const states = [...this.members.values()]
      .map((m) => {
        const raft = m.view();
        return raft ? `${m.slot.id}:${raft.currentRole}/t${raft.currentTerm}/c${raft.committedIndex}/a${m.kv?.appliedIndex}` : `${m.slot.id}:down`;
      })
      .join(' ');
    throw new Violation(`liveness: no write committed and applied on every member within ${LIVENESS_BOUND_MS} ms after faults stopped (${states})`);
  }

  private checkLinearizable(): void {
    for (const [key, verdict] of checkHistory(this.history, { maxSteps: 2_000_000 })) {
      this.stats.checkerSteps += verdict.steps;
      if (verdict.verdict === 'illegal') {
        const tail = verdict.tail.map((op) => `#${op.id} ${op.client}@${op.node} ${describeInput(key, op.input)} -> ${JSON.stringify(op.output)}`).join('; ');
        throw new Violation(
          `linearizability: key ${key}: no legal order reaches #${verdict.stuck.id} ${verdict.stuck.client}@${verdict.stuck.node} ${describeInput(key, verdict.stuck.input)} -> ${JSON.stringify(verdict.stuck.output)} (after: ${tail})`,
        );
      }
    }
  }
}

function describeInput(key: string, input: KvInput): string {
  switch (input.kind) {
    case 'get':
      return `get ${key}`;
    case 'put':
      return `put ${key}=${input.value}${input.ifMatch !== undefined ? ` if-match ${input.ifMatch}` : ''}${input.ifNoneMatch ? ' if-none-match' : ''}`;
    case 'del':
      return `del ${key}${input.ifMatch !== undefined ? ` if-match ${input.ifMatch}` : ''}`;
    default: {
      const never: never = input;
      return never;
    }
  }
}

