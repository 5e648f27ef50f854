// Known bugs planted in a node so the simulator can prove that its checker catches them.
import { Raft } from '../../src/raft/raft.ts';
import type { VoteRequest } from '../../src/raft/types.ts';

export type PlantedBug = 'voteTwice' | 'commitPreviousTerm' | 'ackBeforePersist' | 'countOwnVoteEarly' | 'applyUncommitted';

/** Grants every vote whose log check passes, forgetting whom it already voted for this term (§5.2). */
export class VoteTwiceRaft extends Raft {
  protected override canGrantVote(m: VoteRequest): boolean {
    const lastTerm = this.termAt(this.lastLogIndex) ?? 0;
    return m.lastLogTerm > lastTerm || (m.lastLogTerm === lastTerm && m.lastLogIndex >= this.lastLogIndex);
  }
}

/** Commits any entry a majority holds, whatever its term: the mistake Figure 8 warns about (§5.4.2). */
export class CommitByCountingRaft extends Raft {
  protected override canCommitByCounting(_index: number): boolean {
    return true;
  }
}

/** Wins an election before the fsync of its own term and vote: its vote requests leave before that
 * fsync (campaign), so its voters' grants can arrive first. */
export class CountOwnVoteEarlyRaft extends Raft {
  protected override ownVoteDurable(): boolean {
    return true;
  }
}

/** Applies, while a Ready is persisted, every entry it holds, committed or not: what applying ahead of
 * the local fsync must never turn into (takeCommitted, §5.4). */
export class ApplyUncommittedRaft extends Raft {
  protected override appliableIndex(): number {
    return this.lastLogIndex;
  }
}
