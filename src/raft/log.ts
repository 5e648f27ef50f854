// The Raft log as one type with its invariants in one place: entries are contiguous, entry i has
// index snapshotIndex + 1 + i, and everything up to snapshotIndex is compacted into a snapshot (§7).
import type { Entry, SnapshotMeta } from './types.ts';

export class RaftLogError extends Error {}

/** Approximate bytes an entry costs on the wire and in memory; used only for batching limits. */
export function entryBytes(entry: Entry): number {
  switch (entry.kind) {
    case 'command':
      return 24 + entry.data.byteLength;
    case 'noop':
      return 24;
    case 'config':
      return 24 + entry.members.reduce((n, m) => n + m.id.length + m.url.length + 8, 0);
    default: {
      const never: never = entry;
      return never;
    }
  }
}

export class RaftLog {
  private snapshotIndexValue: number;
  private snapshotTermValue: number;
  private entries: Entry[];

  constructor(snapshot: SnapshotMeta | null, entries: readonly Entry[]) {
    this.snapshotIndexValue = snapshot?.index ?? 0;
    this.snapshotTermValue = snapshot?.term ?? 0;
    this.entries = [];
    for (const entry of entries) {
      if (entry.index <= this.snapshotIndexValue) continue;
      if (entry.index !== this.lastIndex + 1) {
        throw new RaftLogError(`log is not contiguous: entry ${entry.index} follows ${this.lastIndex}`);
      }
      this.entries.push(entry);
    }
  }

  get snapshotIndex(): number {
    return this.snapshotIndexValue;
  }

  get snapshotTerm(): number {
    return this.snapshotTermValue;
  }

  /** The first index still held as an entry (may exceed lastIndex when the log is empty). */
  get firstIndex(): number {
    return this.snapshotIndexValue + 1;
  }

  get lastIndex(): number {
    return this.snapshotIndexValue + this.entries.length;
  }

  get lastTerm(): number {
    return this.entries.length > 0 ? this.entries[this.entries.length - 1].term : this.snapshotTermValue;
  }

  /** The term of the entry at index; undefined if compacted away (below the snapshot) or absent. */
  termAt(index: number): number | undefined {
    if (index === this.snapshotIndexValue) return this.snapshotTermValue;
    if (index < this.snapshotIndexValue || index > this.lastIndex) return undefined;
    return this.entries[index - this.snapshotIndexValue - 1].term;
  }

  entryAt(index: number): Entry {
    if (index < this.firstIndex || index > this.lastIndex) {
      throw new RaftLogError(`no entry ${index} in log [${this.firstIndex}, ${this.lastIndex}]`);
    }
    return this.entries[index - this.snapshotIndexValue - 1];
  }

  /** Entries [from, to], cut to maxCount entries and roughly maxBytes (always at least one). */
  slice(from: number, to: number, maxCount = Number.MAX_SAFE_INTEGER, maxBytes = Number.MAX_SAFE_INTEGER): Entry[] {
    if (from < this.firstIndex) throw new RaftLogError(`entry ${from} is compacted (first is ${this.firstIndex})`);
    const last = Math.min(to, this.lastIndex, from + maxCount - 1);
    const out: Entry[] = [];
    let bytes = 0;
    for (let index = from; index <= last; index++) {
      const entry = this.entries[index - this.snapshotIndexValue - 1];
      bytes += entryBytes(entry);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(entry);
    }
    return out;
  }

  /** §5.4.1: a candidate's log is at least as up to date as ours. */
  isUpToDate(lastLogIndex: number, lastLogTerm: number): boolean {
    return lastLogTerm > this.lastTerm || (lastLogTerm === this.lastTerm && lastLogIndex >= this.lastIndex);
  }

  /** A leader appends a new entry at the end of its own log (§5.3: leaders never overwrite). */
  append(entry: Entry): void {
    if (entry.index !== this.lastIndex + 1) {
      throw new RaftLogError(`append of entry ${entry.index} after ${this.lastIndex}`);
    }
    this.entries.push(entry);
  }

  /**
   * §5.3 receiver rules 3 and 4: entries following prevLogIndex (which the caller checked matches).
   * An existing entry that conflicts (same index, other term) is deleted with all that follow; entries
   * already present are skipped, so a duplicated or reordered append never truncates anything.
   * Returns the index the log was truncated from, or null.
   */
  appendAfter(prevLogIndex: number, entries: readonly Entry[], commitIndex: number): number | null {
    let truncatedAt: number | null = null;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i];
      if (entry.index !== prevLogIndex + 1 + i) {
        throw new RaftLogError(`append entries are not contiguous at ${entry.index}`);
      }
      if (entry.index <= this.snapshotIndexValue) continue; // compacted: known committed and matching
      const existing = this.termAt(entry.index);
      if (existing === entry.term) continue;
      if (existing !== undefined) {
        if (entry.index <= commitIndex) {
          // Leader Completeness (§5.4) forbids this; failing loudly beats silently losing a commit.
          throw new RaftLogError(`refusing to overwrite committed entry ${entry.index} (commit ${commitIndex})`);
        }
        this.entries.length = entry.index - this.snapshotIndexValue - 1;
        truncatedAt = entry.index;
      }
      this.entries.push(entry);
    }
    return truncatedAt;
  }

  /** Drops entries up to index, which must be in the log; index becomes the snapshot point (§7). */
  compact(index: number): void {
    const term = this.termAt(index);
    if (term === undefined) throw new RaftLogError(`cannot compact to ${index}: not in log`);
    if (index <= this.snapshotIndexValue) return;
    this.entries = this.entries.slice(index - this.snapshotIndexValue);
    this.snapshotIndexValue = index;
    this.snapshotTermValue = term;
  }

  /** Discards the whole log in favour of a snapshot that does not match it (§7, receiver rule 7). */
  resetTo(meta: SnapshotMeta): void {
    this.entries = [];
    this.snapshotIndexValue = meta.index;
    this.snapshotTermValue = meta.term;
  }

  /** The last index whose entry has `term`, searching at or below `atOrBelow`; 0 if none is held. */
  lastIndexOfTerm(term: number, atOrBelow: number): number {
    for (let index = Math.min(atOrBelow, this.lastIndex); index >= this.firstIndex; index--) {
      const t = this.entries[index - this.snapshotIndexValue - 1].term;
      if (t === term) return index;
      if (t < term) return 0;
    }
    return 0;
  }

  /** The first index of the run of entries with `term` that contains `index` (for conflict hints). */
  firstIndexOfTermRun(index: number): number {
    const term = this.termAt(index);
    let first = index;
    while (first - 1 >= this.firstIndex && this.termAt(first - 1) === term) first--;
    return first;
  }

  /** The newest config entry at or below `atOrBelow`, if the log still holds one. */
  lastConfigEntry(atOrBelow = this.lastIndex): Extract<Entry, { kind: 'config' }> | undefined {
    for (let index = Math.min(atOrBelow, this.lastIndex); index >= this.firstIndex; index--) {
      const entry = this.entries[index - this.snapshotIndexValue - 1];
      if (entry.kind === 'config') return entry;
    }
    return undefined;
  }
}
