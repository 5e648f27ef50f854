// A single-node stand-in for the node runtime behind ClientOps: commands go through the real codec
// into a real KvStore at once; leader, term and failures are set by the test.
import { encodeKvCommand } from '../../src/kv/codec.ts';
import { KvStore } from '../../src/kv/store.ts';
import type { ChangeHistoryOptions } from '../../src/kv/history.ts';
import { ClientError, type ClientOps, type LeaderInfo, type Leadership, type NodeStatus } from '../../src/api/ops.ts';
import type { ChangeFeed, KvCommand, KvResult, KvView } from '../../src/kv/types.ts';
import type { NodeId } from '../../src/raft/types.ts';

interface Waiter {
  readonly seenLeader: NodeId | null;
  readonly seenTerm: number;
  readonly waitMs: number;
  readonly resolve: (leader: LeaderInfo | null) => void;
  readonly timer: NodeJS.Timeout;
}

const MEMBERS = [
  { id: 'n1', url: 'http://127.0.0.1:17001', voter: true },
  { id: 'n2', url: 'http://127.0.0.1:17002', voter: true },
  { id: 'n3', url: 'http://127.0.0.1:17003', voter: false },
] as const;

export class FakeOps implements ClientOps {
  readonly store: KvStore;
  term = 3;
  leaderId: NodeId | null = 'n1';
  readonly proposals: Array<{ readonly cmd: KvCommand; readonly deadlineMs: number }> = [];
  readonly readBarriers: number[] = [];
  readonly transfers: Array<{ readonly to: NodeId | null; readonly deadlineMs: number }> = [];
  readonly waits: Array<{ readonly seenLeader: NodeId | null; readonly seenTerm: number; readonly waitMs: number }> = [];
  /** When set, the next calls reject with it. */
  proposeError: Error | null = null;
  readBarrierError: Error | null = null;
  transferError: Error | null = null;
  readonly #waiters = new Set<Waiter>();
  /** This node's own lease, as the test sets it (GET /v1/leadership). */
  leaseRemainingMs = 800;
  readonly leadershipWaits: Array<{ readonly seen: { leader: boolean; term: number; leased: boolean }; readonly waitMs: number }> = [];
  readonly #leadershipWaiters = new Set<{ readonly seen: { leader: boolean; term: number; leased: boolean }; readonly resolve: () => void; readonly timer: NodeJS.Timeout }>();

  constructor(options: { readonly history?: ChangeHistoryOptions } = {}) {
    this.store = new KvStore(options.history === undefined ? {} : { history: options.history });
  }

  get pendingWaits(): number {
    return this.#waiters.size;
  }

  status(): NodeStatus {
    return {
      id: 'n1',
      role: this.leaderId === 'n1' ? 'leader' : 'follower',
      term: this.term,
      leader: this.leaderId,
      commitIndex: this.store.appliedIndex,
      appliedIndex: this.store.appliedIndex,
      lastLogIndex: this.store.appliedIndex,
      members: MEMBERS,
    };
  }

  leader(): LeaderInfo | null {
    const member = MEMBERS.find((candidate) => candidate.id === this.leaderId);
    return member === undefined ? null : { id: member.id, url: member.url, term: this.term };
  }

  setLeader(leaderId: NodeId | null, term: number): void {
    this.leaderId = leaderId;
    this.term = term;
    for (const waiter of this.#waiters) {
      if (waiter.seenLeader !== leaderId || waiter.seenTerm !== term) this.#finish(waiter);
    }
    this.#checkLeadershipWaiters();
  }

  leadership(): Leadership {
    const leader = this.leaderId === 'n1';
    return { leader, term: this.term, leaseRemainingMs: leader ? this.leaseRemainingMs : 0 };
  }

  setLease(ms: number): void {
    this.leaseRemainingMs = ms;
    this.#checkLeadershipWaiters();
  }

  #leadershipChanged(seen: { leader: boolean; term: number; leased: boolean }): boolean {
    const now = this.leadership();
    return now.leader !== seen.leader || now.term !== seen.term || (now.leader && now.leaseRemainingMs > 0) !== (seen.leader && seen.leased);
  }

  #checkLeadershipWaiters(): void {
    for (const waiter of this.#leadershipWaiters) {
      if (!this.#leadershipChanged(waiter.seen)) continue;
      clearTimeout(waiter.timer);
      this.#leadershipWaiters.delete(waiter);
      waiter.resolve();
    }
  }

  get pendingLeadershipWaits(): number {
    return this.#leadershipWaiters.size;
  }

  async waitLeadership(seen: { leader: boolean; term: number; leased: boolean }, waitMs: number): Promise<Leadership> {
    this.leadershipWaits.push({ seen, waitMs });
    if (!this.#leadershipChanged(seen)) {
      await new Promise<void>((resolve) => {
        const waiter = {
          seen,
          resolve,
          timer: setTimeout(() => {
            this.#leadershipWaiters.delete(waiter);
            resolve();
          }, waitMs),
        };
        this.#leadershipWaiters.add(waiter);
      });
    }
    return this.leadership();
  }

  changes(): ChangeFeed {
    return this.store.changes;
  }

  waitLeaderChange(seenLeader: NodeId | null, seenTerm: number, waitMs: number): Promise<LeaderInfo | null> {
    this.waits.push({ seenLeader, seenTerm, waitMs });
    if (seenLeader !== this.leaderId || seenTerm !== this.term) return Promise.resolve(this.leader());
    return new Promise((resolve) => {
      const waiter: Waiter = { seenLeader, seenTerm, waitMs, resolve, timer: setTimeout(() => this.#finish(waiter), waitMs) };
      this.#waiters.add(waiter);
    });
  }

  #finish(waiter: Waiter): void {
    clearTimeout(waiter.timer);
    this.#waiters.delete(waiter);
    waiter.resolve(this.leader());
  }

  async propose(cmd: KvCommand, deadlineMs: number): Promise<KvResult> {
    this.proposals.push({ cmd, deadlineMs });
    if (this.proposeError !== null) throw this.proposeError;
    return this.store.apply(this.store.appliedIndex + 1, this.term, encodeKvCommand(cmd));
  }

  async readBarrier(deadlineMs: number): Promise<void> {
    this.readBarriers.push(deadlineMs);
    if (this.readBarrierError !== null) throw this.readBarrierError;
  }

  kv(): KvView {
    return this.store;
  }

  async transferLeadership(to: NodeId | null, deadlineMs: number): Promise<{ leader: NodeId; term: number }> {
    this.transfers.push({ to, deadlineMs });
    if (this.transferError !== null) throw this.transferError;
    if (to !== null && !MEMBERS.some((member) => member.id === to)) throw new ClientError('bad_request', `${to} is not a member`);
    this.setLeader(to ?? 'n2', this.term + 1);
    return { leader: this.leaderId ?? 'n2', term: this.term };
  }

  /** Ends pending long polls so no timer outlives the test. */
  close(): void {
    for (const waiter of this.#waiters) this.#finish(waiter);
    for (const waiter of this.#leadershipWaiters) {
      clearTimeout(waiter.timer);
      waiter.resolve();
    }
    this.#leadershipWaiters.clear();
  }
}
