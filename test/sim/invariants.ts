// The Raft safety properties (Figure 3 of the paper) as one checker that both simulators feed: the
// core simulator (test/sim) with bare Raft cores, the whole-node simulator (test/wholesim) with
// RaftNodes over a modelled disk and network. Each check throws a Violation naming the property.
import type { Entry, NodeId } from '../../src/raft/types.ts';

export class Violation extends Error {}

/** What the checker reads of one node's log. */
export interface LogView {
  readonly id: NodeId;
  readonly snapshotIndex: number;
  readonly lastLogIndex: number;
  termAt(index: number): number | undefined;
}

export function describeEntry(entry: Entry): string {
  return `${entry.kind}@${entry.index}/t${entry.term}`;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Equal content: entries that went through a disk or a wire are copies, not the same object. */
export function sameEntry(a: Entry, b: Entry): boolean {
  if (a === b) return true;
  if (a.kind !== b.kind || a.term !== b.term || a.index !== b.index) return false;
  switch (a.kind) {
    case 'noop':
      return true;
    case 'command':
      return b.kind === 'command' && sameBytes(a.data, b.data);
    case 'config':
      return b.kind === 'config' && JSON.stringify(a.members) === JSON.stringify(b.members);
    default: {
      const never: never = a;
      return never;
    }
  }
}

export class SafetyChecker {
  /** The leader of each term seen so far. */
  private readonly leaders = new Map<number, NodeId>();
  /** The entry applied at each index (by whichever node applied it first). */
  readonly applied: (Entry | undefined)[] = [];
  /** An upper bound on the term in which each applied index was committed. */
  private readonly commitTerm: number[] = [];
  private readonly logIdentity = new Map<string, { entry: Entry; prevTerm: number | undefined }>();
  /** With identity, two entries are the same only if they are the same object (the core simulator
   * shares entries between nodes, and its commands all have the same bytes). */
  private readonly same: (a: Entry, b: Entry) => boolean;

  constructor(options: { identity?: boolean } = {}) {
    this.same = options.identity ? (a, b) => a === b : sameEntry;
  }

  /** Election Safety (§5.2) and Leader Completeness (§5.4) for a node that just became leader. */
  onLeader(log: LogView, term: number): void {
    const other = this.leaders.get(term);
    if (other !== undefined && other !== log.id) {
      throw new Violation(`election safety: ${other} and ${log.id} are both leaders of term ${term}`);
    }
    this.leaders.set(term, log.id);
    for (let index = log.snapshotIndex + 1; index < this.applied.length; index++) {
      const entry = this.applied[index];
      if (entry === undefined || this.commitTerm[index] >= term) continue;
      if (log.termAt(index) !== entry.term) {
        throw new Violation(
          `leader completeness: ${log.id} leads term ${term} without ${describeEntry(entry)} committed by term ${this.commitTerm[index]} (its log has term ${log.termAt(index) ?? 'none'} there)`,
        );
      }
    }
  }

  /** State Machine Safety (§5.4.3): every node applies the same entry at an index. `term` is the
   * applying node's current term, an upper bound on the term the entry was committed in. Returns
   * true the first time an index is applied anywhere. */
  onApply(id: NodeId, entry: Entry, term: number): boolean {
    const seen = this.applied[entry.index];
    if (seen === undefined) {
      this.applied[entry.index] = entry;
      this.commitTerm[entry.index] = term;
      return true;
    }
    if (!this.same(seen, entry)) {
      throw new Violation(`state machine safety: ${id} applied ${describeEntry(entry)} at index ${entry.index}, another node applied ${describeEntry(seen)}`);
    }
    if (term < this.commitTerm[entry.index]) this.commitTerm[entry.index] = term;
    return false;
  }

  /** Log Matching (§5.3): an (index, term) pair names one entry, always with the same predecessor.
   * `prevTerm` is the term of the entry before entries[0] in the persisting node's log. */
  onPersist(id: NodeId, entries: readonly Entry[], prevTerm: number | undefined): void {
    for (const entry of entries) {
      const key = `${entry.index}/${entry.term}`;
      const known = this.logIdentity.get(key);
      if (!known) {
        this.logIdentity.set(key, { entry, prevTerm });
      } else if (!this.same(known.entry, entry) || (prevTerm !== undefined && known.prevTerm !== undefined && known.prevTerm !== prevTerm)) {
        throw new Violation(`log matching: ${id} has a different entry or predecessor at index ${entry.index} term ${entry.term}`);
      }
      prevTerm = entry.term;
    }
  }

  /** Any two logs that agree at an index agree on everything before it. */
  logsPairwise(logs: readonly LogView[]): void {
    for (let i = 0; i < logs.length; i++) {
      for (let j = i + 1; j < logs.length; j++) {
        const a = logs[i];
        const b = logs[j];
        const from = Math.max(a.snapshotIndex, b.snapshotIndex) + 1;
        let agreeing = false;
        for (let index = Math.min(a.lastLogIndex, b.lastLogIndex); index >= from; index--) {
          const same = a.termAt(index) === b.termAt(index);
          if (agreeing && !same) throw new Violation(`log matching: ${a.id} and ${b.id} agree past index ${index} but differ there`);
          if (same) agreeing = true;
        }
      }
    }
  }
}
