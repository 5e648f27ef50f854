// An in-memory host for the Raft core where the test decides every delivery. Each node is driven
// through the Ready cycle exactly as a real host must (send sendNow, persist to its disk, send
// messages, apply committed, advance), and the harness checks the cycle's ordering promises on every
// Ready, so every paper-section test also checks them.
import { Raft, bootstrapState } from '../../src/raft/raft.ts';
import type {
  Entry,
  HardState,
  Member,
  Message,
  MessageKind,
  NodeId,
  ProposeResult,
  RaftConfig,
  RaftEvent,
  ReadState,
  Ready,
  RestoredState,
  Snapshot,
} from '../../src/raft/types.ts';

/** Base election timeout T and heartbeat interval used by every test unless it says otherwise. */
export const ELECTION_TICKS = 10;
export const HEARTBEAT_TICKS = 2;

/** A deterministic source of numbers in [0, 1): xorshift32 over a scrambled seed. */
export function seeded(seed: number): () => number {
  let state = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) >>> 0) || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 4294967296;
  };
}

/** A constant "random" source, for tests that need one exact election timeout: T + floor(r * T). */
export function fixed(r: number): () => number {
  return () => r;
}

// ---- building states --------------------------------------------------------------------------------

export function voters(ids: readonly NodeId[]): Member[] {
  return ids.map((id) => ({ id, url: `test://${id}`, voter: true }));
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

export function text(data: Uint8Array): string {
  return decoder.decode(data);
}

/**
 * A log from a list of terms, as the paper's figures draw them: entry 1 is the configuration with
 * `ids` as voters (so every node knows the cluster), every later entry is a command named
 * "<index>@<term>". Two logs built from the same ids agree wherever their terms agree.
 */
export function logOfTerms(terms: readonly number[], ids: readonly NodeId[]): Entry[] {
  return terms.map((term, i): Entry => {
    const index = i + 1;
    if (index === 1) return { kind: 'config', term, index, members: voters(ids) };
    return { kind: 'command', term, index, data: bytes(`${index}@${term}`) };
  });
}

export interface StateSpec {
  readonly term: number;
  readonly votedFor?: NodeId | null;
  readonly commitIndex?: number;
  readonly entries: readonly Entry[];
  readonly snapshot?: Snapshot | null;
}

/** A RestoredState as a host would read it back from disk. */
export function restored(spec: StateSpec): RestoredState {
  return {
    hardState: { term: spec.term, votedFor: spec.votedFor ?? null, commitIndex: spec.commitIndex ?? 0 },
    snapshot: spec.snapshot ?? null,
    entries: [...spec.entries],
  };
}

/** The state of a server that was never part of any cluster (a learner about to be added). */
export function blank(): RestoredState {
  return { hardState: { term: 0, votedFor: null, commitIndex: 0 }, snapshot: null, entries: [] };
}

// ---- message filters ----------------------------------------------------------------------------------

export type Filter = (m: Message) => boolean;

export const any: Filter = () => true;
export const from = (id: NodeId): Filter => (m) => m.from === id;
export const to = (id: NodeId): Filter => (m) => m.to === id;
export const between = (a: NodeId, b: NodeId): Filter => (m) => (m.from === a && m.to === b) || (m.from === b && m.to === a);
export const ofKind = (...kinds: MessageKind[]): Filter => (m) => kinds.includes(m.kind);
export const and = (...filters: Filter[]): Filter => (m) => filters.every((f) => f(m));
export const not = (f: Filter): Filter => (m) => !f(m);

// ---- one node and its host ------------------------------------------------------------------------------

/** What this host keeps on "stable storage"; a restart reads back exactly this. */
export interface Disk {
  hardState: HardState;
  snapshot: Snapshot | null;
  entries: Entry[];
}

export type NodeOptions = Partial<Omit<RaftConfig, 'id'>> & {
  /** A Raft subclass with a planted bug, to show that a test catches it. */
  readonly impl?: typeof Raft;
};

export class InvariantError extends Error {}

export class TestNode {
  readonly id: NodeId;
  readonly options: NodeOptions;
  readonly disk: Disk;
  raft: Raft;
  crashed = false;
  /** The state machine: commands applied so far, in order (restored from snapshots). */
  state: string[] = [];
  appliedIndex = 0;
  /** Every entry this incarnation applied, by index. */
  readonly applied = new Map<number, Entry>();
  readStates: ReadState[] = [];
  readsFailed: number[] = [];
  events: RaftEvent[] = [];
  /** Every Ready this node produced, oldest first (across restarts). */
  readonly readys: Ready[] = [];

  constructor(id: NodeId, initial: RestoredState, options: NodeOptions) {
    this.id = id;
    this.options = options;
    this.disk = { hardState: initial.hardState, snapshot: initial.snapshot, entries: [...initial.entries] };
    this.raft = this.boot();
  }

  /** Builds the core from the disk alone, as after a crash. */
  boot(): Raft {
    const { impl, ...config } = this.options;
    const Impl = impl ?? Raft;
    const raft = new Impl(
      {
        id: this.id,
        electionTicks: ELECTION_TICKS,
        heartbeatTicks: HEARTBEAT_TICKS,
        random: seeded(hashId(this.id)),
        ...config,
      },
      { hardState: this.disk.hardState, snapshot: this.disk.snapshot, entries: [...this.disk.entries] },
    );
    this.state = this.disk.snapshot ? decodeState(this.disk.snapshot.data) : [];
    this.appliedIndex = this.disk.snapshot?.meta.index ?? 0;
    this.applied.clear();
    this.raft = raft;
    this.crashed = false;
    return raft;
  }

  /** Terms of the entries this node holds, from its first held index (for comparing logs). */
  logTerms(): number[] {
    const out: number[] = [];
    for (let index = this.raft.snapshotIndex + 1; index <= this.raft.lastLogIndex; index++) out.push(this.raft.termAt(index) ?? -1);
    return out;
  }

  eventsOf<K extends RaftEvent['kind']>(kind: K): Extract<RaftEvent, { kind: K }>[] {
    return this.events.filter((e): e is Extract<RaftEvent, { kind: K }> => e.kind === kind);
  }
}

function hashId(id: string): number {
  let h = 2166136261;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** The harness state machine's snapshot format: the commands applied, in order. */
export function encodeState(state: readonly string[]): Uint8Array {
  return bytes(JSON.stringify(state));
}

function decodeState(data: Uint8Array): string[] {
  return JSON.parse(text(data)) as string[];
}

const LEADER_TRAFFIC: ReadonlySet<MessageKind> = new Set(['append', 'heartbeat', 'snapshot', 'timeoutNow']);

/** Messages whose content depends on nothing being durable. */
export function promisesNothing(m: Message): boolean {
  return m.kind === 'vote' || m.kind === 'heartbeatResponse' || (m.kind === 'voteResponse' && m.preVote);
}

// ---- the network ----------------------------------------------------------------------------------------

export class Network {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Messages sent and not yet delivered or dropped, oldest first. */
  pending: Message[] = [];
  /** Every message delivered to a live node, in order. */
  readonly delivered: Message[] = [];
  /** Every message lost to a partition, a crash or drop(). */
  readonly dropped: Message[] = [];
  private readonly isolated = new Set<NodeId>();
  private readonly cuts = new Set<string>();

  /** A brand-new cluster: every node starts from the same bootstrap configuration. */
  static bootstrap(ids: readonly NodeId[], options: NodeOptions = {}): Network {
    const net = new Network();
    const boot = bootstrapState(voters(ids));
    for (const id of ids) net.add(id, boot, options);
    return net;
  }

  add(id: NodeId, initial: RestoredState, options: NodeOptions = {}): TestNode {
    if (this.nodes.has(id)) throw new Error(`node ${id} exists already`);
    const node = new TestNode(id, initial, options);
    this.nodes.set(id, node);
    this.process(id);
    return node;
  }

  node(id: NodeId): TestNode {
    const node = this.nodes.get(id);
    if (!node) throw new Error(`no node ${id}`);
    return node;
  }

  raft(id: NodeId): Raft {
    const node = this.node(id);
    if (node.crashed) throw new Error(`node ${id} is crashed`);
    return node.raft;
  }

  // ---- the Ready cycle ----

  /** Drains node id's Ready batches, handling each in the order types.ts prescribes. */
  process(id: NodeId): void {
    const node = this.node(id);
    if (node.crashed) return;
    const raft = node.raft;
    for (let rounds = 0; raft.hasReady(); rounds++) {
      if (rounds > 100) throw new InvariantError(`${id}: hasReady() stays true after 100 Ready cycles`);
      const commitBefore = raft.committedIndex;
      const rd = raft.ready();
      node.readys.push(rd);
      this.checkSendNow(node, rd);
      this.checkLeaderVoteDurable(node, rd);
      for (const m of rd.sendNow) this.send(m);
      persist(node.disk, rd);
      this.checkMessages(node, rd);
      for (const m of rd.messages) this.send(m);
      if (rd.snapshot) {
        node.state = decodeState(rd.snapshot.data);
        node.appliedIndex = rd.snapshot.meta.index;
      }
      for (const entry of rd.committed) apply(node, entry);
      node.readStates.push(...rd.readStates);
      node.readsFailed.push(...rd.readsFailed);
      node.events.push(...rd.events);
      raft.advance(rd);
      if (raft.committedIndex < commitBefore) throw new InvariantError(`${id}: commit index went back from ${commitBefore} to ${raft.committedIndex}`);
    }
  }

  /** sendNow may leave before the fsync only because it promises nothing durable (a vote request, a
   * pre-vote answer, a heartbeat's acknowledgement of the leader) or is a leader's traffic for a
   * term and vote that are already durable (thesis §10.2.1). */
  private checkSendNow(node: TestNode, rd: Ready): void {
    const leaderTraffic = rd.sendNow.filter((m) => !promisesNothing(m));
    for (const m of leaderTraffic) {
      if (!LEADER_TRAFFIC.has(m.kind)) throw new InvariantError(`${node.id}: ${m.kind}${m.kind === 'voteResponse' ? ' (a vote)' : ''} in sendNow: only what promises nothing and a leader's replication traffic may skip the fsync`);
      if (m.term !== node.disk.hardState.term) {
        throw new InvariantError(`${node.id}: ${m.kind} of term ${m.term} in sendNow while term ${node.disk.hardState.term} is durable`);
      }
    }
    // The same Ready may step into a later term: a stopping leader's TimeoutNow of its durable term
    // leaves while its vote for the target, in the next term, is persisted. Within one term, though,
    // a leader's vote never changes.
    if (leaderTraffic.length > 0 && rd.hardState && rd.hardState.term === node.disk.hardState.term && rd.hardState.votedFor !== node.disk.hardState.votedFor) {
      throw new InvariantError(`${node.id}: leader traffic in a Ready that still has to persist a new vote in its term`);
    }
  }

  /** A candidate counts its own vote only once it is durable: by the time it has won, the disk
   * holds its term and its vote for itself (else a crash could let it vote again in that term). */
  private checkLeaderVoteDurable(node: TestNode, rd: Ready): void {
    for (const ev of rd.events) {
      if (ev.kind !== 'electionWon') continue;
      const { term, votedFor } = node.disk.hardState;
      if (term !== ev.term || votedFor !== node.id) {
        throw new InvariantError(`${node.id}: won term ${ev.term} while its disk holds term ${term}, vote ${votedFor ?? 'none'}`);
      }
    }
  }

  /** Every promise a message makes is on disk by the time it is sent (Figure 2, "before responding"). */
  private checkMessages(node: TestNode, rd: Ready): void {
    for (const m of rd.messages) {
      if (m.term > node.disk.hardState.term && !(m.kind === 'vote' && m.preVote) && !(m.kind === 'voteResponse' && m.preVote)) {
        throw new InvariantError(`${node.id}: ${m.kind} of term ${m.term} sent while term ${node.disk.hardState.term} is durable`);
      }
      if (m.kind === 'voteResponse' && m.granted && !m.preVote && node.disk.hardState.votedFor !== m.to) {
        throw new InvariantError(`${node.id}: granted its vote to ${m.to} in term ${m.term} before persisting it`);
      }
      if (m.kind === 'appendResponse' && m.success) {
        const last = node.disk.entries.at(-1)?.index ?? node.disk.snapshot?.meta.index ?? 0;
        if (m.matchIndex > last) {
          throw new InvariantError(`${node.id}: acknowledged index ${m.matchIndex} but only ${last} is on disk`);
        }
      }
    }
  }

  // ---- inputs ----

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) {
      const node = this.node(id);
      if (node.crashed) return;
      node.raft.tick();
      this.process(id);
    }
  }

  /** Hands one message to its addressee now, bypassing the queue and any partition. */
  step(m: Message): void {
    const node = this.node(m.to);
    if (node.crashed) return;
    this.delivered.push(m);
    node.raft.step(m);
    this.process(m.to);
  }

  propose(id: NodeId, command: string): ProposeResult {
    const result = this.raft(id).propose(bytes(command));
    this.process(id);
    return result;
  }

  /** Asks node id for a ReadIndex (thesis §6.4); the answer arrives in node.readStates or readsFailed. */
  readIndex(id: NodeId, requestId: number): { ok: true } | { ok: false; leader: NodeId | null } {
    const result = this.raft(id).readIndex(requestId);
    this.process(id);
    return result;
  }

  campaign(id: NodeId): void {
    this.raft(id).campaignNow();
    this.process(id);
  }

  /** Elects `id` by letting it campaign at once and delivering everything; throws if it did not win. */
  elect(id: NodeId): TestNode {
    this.campaign(id);
    this.deliverAll();
    const raft = this.raft(id);
    if (raft.currentRole !== 'leader') throw new Error(`${id} did not win its election (role ${raft.currentRole}, term ${raft.currentTerm})`);
    this.announceCommit(id);
    return this.node(id);
  }

  /** One heartbeat round from the leader: followers learn its commit index, as they do in a
   * running cluster with the next append or heartbeat (the core sends no commit-only message). */
  announceCommit(leader: NodeId): void {
    this.tick(leader, HEARTBEAT_TICKS);
    this.deliverAll();
  }

  // ---- delivery control ----

  private send(m: Message): void {
    if (this.blocked(m)) this.dropped.push(m);
    else this.pending.push(m);
  }

  private blocked(m: Message): boolean {
    return this.isolated.has(m.from) || this.isolated.has(m.to) || this.cuts.has(pairKey(m.from, m.to));
  }

  /** Delivers the pending messages that match, once each, in order; replies stay pending. */
  deliver(filter: Filter = any): number {
    const batch = this.pending.filter(filter);
    this.pending = this.pending.filter((m) => !filter(m));
    for (const m of batch) this.deliverOne(m);
    return batch.length;
  }

  /** Delivers matching messages, and the matching messages they cause, until none is pending. */
  deliverAll(filter: Filter = any, limit = 10_000): number {
    let count = 0;
    for (;;) {
      const index = this.pending.findIndex(filter);
      if (index < 0) return count;
      if (++count > limit) throw new InvariantError(`more than ${limit} deliveries: messages never settle`);
      const [m] = this.pending.splice(index, 1);
      this.deliverOne(m);
    }
  }

  private deliverOne(m: Message): void {
    const target = this.nodes.get(m.to);
    if (!target || target.crashed || this.blocked(m)) {
      this.dropped.push(m);
      return;
    }
    this.step(m);
  }

  /** Removes matching pending messages as if the network lost them. */
  drop(filter: Filter = any): Message[] {
    const lost = this.pending.filter(filter);
    this.pending = this.pending.filter((m) => !filter(m));
    this.dropped.push(...lost);
    return lost;
  }

  /** Matching pending messages, without delivering them. */
  peek(filter: Filter = any): Message[] {
    return this.pending.filter(filter);
  }

  isolate(id: NodeId): void {
    this.isolated.add(id);
  }

  /** Cuts the links between the two groups (both directions). */
  partition(groupA: readonly NodeId[], groupB: readonly NodeId[]): void {
    for (const a of groupA) for (const b of groupB) this.cuts.add(pairKey(a, b));
  }

  heal(): void {
    this.isolated.clear();
    this.cuts.clear();
  }

  crash(id: NodeId): void {
    this.node(id).crashed = true;
  }

  /** Restarts a crashed (or running) node from what its disk holds, and nothing else. */
  restart(id: NodeId): TestNode {
    const node = this.node(id);
    node.boot();
    this.process(id);
    return node;
  }

  /** The host snapshots its state machine at its applied index and compacts the log (§7). */
  compact(id: NodeId): Snapshot {
    const node = this.node(id);
    const snap = node.raft.compact(node.appliedIndex, encodeState(node.state));
    node.disk.snapshot = snap;
    node.disk.entries = node.disk.entries.filter((e) => e.index > snap.meta.index);
    return snap;
  }

  // ---- time ----

  /**
   * Rounds of "tick every live node in `ids` once, then deliver everything", until `done` holds.
   * Returns the rounds it took; throws after maxRounds so a liveness failure is a clear error.
   */
  runUntil(done: () => boolean, maxRounds = 20 * ELECTION_TICKS, ids: readonly NodeId[] = [...this.nodes.keys()]): number {
    for (let round = 0; round <= maxRounds; round++) {
      if (done()) return round;
      for (const id of ids) this.tick(id);
      this.deliverAll();
    }
    throw new Error(`condition not reached within ${maxRounds} rounds: ${this.describe()}`);
  }

  /** The one live leader of the highest term, if any. */
  leader(): TestNode | undefined {
    let best: TestNode | undefined;
    for (const node of this.nodes.values()) {
      if (node.crashed || node.raft.currentRole !== 'leader') continue;
      if (!best || node.raft.currentTerm > best.raft.currentTerm) best = node;
    }
    return best;
  }

  describe(): string {
    return [...this.nodes.values()]
      .map((n) => (n.crashed ? `${n.id}:crashed` : `${n.id}:${n.raft.currentRole}/t${n.raft.currentTerm}/last${n.raft.lastLogIndex}/c${n.raft.committedIndex}`))
      .join(' ');
  }
}

function pairKey(a: NodeId, b: NodeId): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}

/** Step 2 of the Ready contract: snapshot, then entries (replacing any suffix from their first
 * index), then the hard state. */
function persist(disk: Disk, rd: Ready): void {
  if (rd.snapshot) {
    const meta = rd.snapshot.meta;
    disk.snapshot = rd.snapshot;
    const at = disk.entries.findIndex((e) => e.index === meta.index && e.term === meta.term);
    disk.entries = at >= 0 ? disk.entries.slice(at + 1) : [];
  }
  if (rd.entries.length > 0) {
    const first = rd.entries[0].index;
    disk.entries = disk.entries.filter((e) => e.index < first);
    const expected = (disk.entries.at(-1)?.index ?? disk.snapshot?.meta.index ?? 0) + 1;
    if (first !== expected) throw new InvariantError(`Ready entries start at ${first} but the disk continues at ${expected}`);
    disk.entries.push(...rd.entries);
  }
  if (rd.hardState) disk.hardState = rd.hardState;
}

function apply(node: TestNode, entry: Entry): void {
  if (entry.index !== node.appliedIndex + 1) {
    throw new InvariantError(`${node.id}: applied entry ${entry.index} after ${node.appliedIndex}`);
  }
  if (entry.kind === 'command') node.state.push(text(entry.data));
  node.appliedIndex = entry.index;
  node.applied.set(entry.index, entry);
}
