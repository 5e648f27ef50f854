// What a leader knows about one follower's log (§5.3 nextIndex / matchIndex), with explicit flow
// control states so that a lagging or restarted follower is probed one append at a time, a healthy
// one is streamed to within a bounded window, and one behind the compacted prefix gets a snapshot.
import type { AppHealth, NodeId, ProgressState } from './types.ts';

export class Progress {
  readonly id: NodeId;
  matchIndex = 0;
  nextIndex: number;
  state: ProgressState = 'probe';
  /** probe: an append is outstanding; wait for its answer or the next heartbeat before another. */
  probeSent = false;
  /** replicate: the last index of each append in flight, oldest first (bounded window). */
  readonly inflight: number[] = [];
  /** snapshot: the index of the snapshot sent, and ticks spent waiting for its answer. */
  pendingSnapshot = 0;
  snapshotTicks = 0;
  /** check-quorum (thesis §6.2): heard from since the last check. */
  recentActive = false;
  /** ReadIndex (thesis §6.4): the highest heartbeat round this follower answered in this term. */
  readRoundAcked = 0;
  /** The leader's heartbeat round when matchIndex last advanced: only an answer to a later round
   * can show that the follower lost acknowledged entries (a stale answer cannot move matchIndex back). */
  matchRound = 0;
  /** The follower's application health, from its heartbeat answers (RAFTLET_APP_HEALTH_URL);
   * null until it answered one in this term. */
  appHealth: AppHealth | null = null;

  constructor(id: NodeId, nextIndex: number) {
    this.id = id;
    this.nextIndex = nextIndex;
  }

  becomeProbe(): void {
    this.state = 'probe';
    this.probeSent = false;
    this.inflight.length = 0;
    this.nextIndex = Math.max(this.nextIndex, this.matchIndex + 1);
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.inflight.length = 0;
    this.nextIndex = this.matchIndex + 1;
  }

  /**
   * A new leader's start for each member of its configuration (members added later are probed):
   * it assumes the follower's log matches its own up to nextIndex - 1 and streams at once, so writes
   * that arrive while its no-op is on the way are not held until that no-op is acknowledged. Most
   * followers of a new leader are caught up (a hand-off sends TimeoutNow only to a caught-up
   * target, and a voter's log is never ahead of the candidate it elects); one that is not refuses
   * the first append and is probed from its hints. matchIndex stays 0: only an answer moves it.
   */
  startReplicating(): void {
    this.state = 'replicate';
    this.probeSent = false;
    this.inflight.length = 0;
  }

  becomeSnapshot(index: number): void {
    this.state = 'snapshot';
    this.pendingSnapshot = index;
    this.snapshotTicks = 0;
    this.inflight.length = 0;
  }

  /** Records a success; false if the answer was stale (told us nothing new). */
  acknowledge(matchIndex: number): boolean {
    if (matchIndex <= this.matchIndex) return false;
    this.matchIndex = matchIndex;
    this.nextIndex = Math.max(this.nextIndex, matchIndex + 1);
    while (this.inflight.length > 0 && this.inflight[0] <= matchIndex) this.inflight.shift();
    return true;
  }

  /** May another append with entries go out now? */
  canSend(maxInflight: number): boolean {
    switch (this.state) {
      case 'probe':
        return !this.probeSent;
      case 'replicate':
        return this.inflight.length < maxInflight;
      case 'snapshot':
        return false;
      default: {
        const never: never = this.state;
        return never;
      }
    }
  }
}

/** The size of a majority of n voters (§5.2). */
export function quorumSize(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/** The largest value that a majority of the given per-voter values has reached (matchIndex, rounds). */
export function quorumValue(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => b - a);
  return sorted[quorumSize(values.length) - 1];
}

/**
 * The order of leadership-transfer targets (thesis §3.10 leaves the choice open): whether `a` is a
 * better target than `b`. The more up-to-date follower first, so TimeoutNow can go sooner; among
 * equals, the earlier in `prefer` (the members in contact with the leader, longest connected
 * first, as etcd picks its transferee: one that has just restarted would lead with cold code and
 * caches); members missing from `prefer` rank last. Shared by the core's own pick and the
 * runtime's (src/node/transfer-target.ts), which adds its eligibility rules on top.
 */
export function betterTransferTarget(prefer: readonly NodeId[]): (a: { readonly id: NodeId; readonly matchIndex: number }, b: { readonly id: NodeId; readonly matchIndex: number }) => boolean {
  const rank = (id: NodeId): number => {
    const at = prefer.indexOf(id);
    return at < 0 ? prefer.length : at;
  };
  return (a, b) => (a.matchIndex !== b.matchIndex ? a.matchIndex > b.matchIndex : rank(a.id) < rank(b.id));
}
