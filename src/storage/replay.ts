// Recovery: rebuild the log from the segments that are left, then fit it to the newest snapshot.
//
// Segments covered by a snapshot are deleted, so replay may begin in the middle of the log. Until it
// meets an install or compact record it is "unanchored": the first entry it sees starts the log.
// Starting from segment 1 the log is anchored at index 0 and must begin at index 1.
import type { Entry, HardState, Snapshot } from '../raft/types.ts';
import { StorageCorruptError } from './errors.ts';
import type { WalRecord } from './records.ts';

interface Place {
  readonly file: string;
  readonly offset: number;
}

export class ReplayLog {
  private anchored: boolean;
  private base = 0;
  private baseTerm = 0;
  private marker: Place | null = null;
  private entries: Entry[] = [];
  private firstPlace: Place | null = null;
  hardState: HardState = { term: 0, votedFor: null, commitIndex: 0 };

  constructor(startsAtBeginning: boolean) {
    this.anchored = startsAtBeginning;
  }

  private firstIndex(): number {
    return this.entries.length > 0 ? this.entries[0]!.index : this.base + 1;
  }

  private lastIndex(): number {
    return this.entries.length > 0 ? this.entries[this.entries.length - 1]!.index : this.base;
  }

  /** Applies one record; `file`/`offset` name it in any error. */
  apply(record: WalRecord, file: string, offset: number): void {
    switch (record.kind) {
      case 'entry':
        this.applyEntry(record.entry, { file, offset });
        return;
      case 'hardState':
        this.hardState = record.hardState;
        return;
      case 'install':
        this.reset(record.index, record.term, { file, offset });
        return;
      case 'compact':
        this.applyCompact(record.index, record.term, { file, offset });
        return;
      default: {
        const never: never = record;
        throw new Error(`unknown record ${String((never as { kind: unknown }).kind)}`);
      }
    }
  }

  private applyEntry(entry: Entry, place: Place): void {
    if (!this.anchored && (this.entries.length === 0 || entry.index < this.entries[0]!.index)) {
      // A suffix rewritten from before where this replay began: the lost prefix lives in a snapshot.
      this.entries = [entry];
      this.firstPlace = place;
      return;
    }
    if (entry.index <= this.base) {
      throw new StorageCorruptError(place.file, place.offset, `entry ${entry.index} lies inside the snapshot that ends at ${this.base}`);
    }
    const next = this.lastIndex() + 1;
    if (entry.index > next) {
      throw new StorageCorruptError(place.file, place.offset, `entry ${entry.index} leaves a hole in the log after index ${next - 1}`);
    }
    if (this.entries.length === 0) this.firstPlace = place;
    this.entries.length = entry.index - this.firstIndex();
    this.entries.push(entry);
  }

  private reset(index: number, term: number, place: Place): void {
    this.anchored = true;
    this.base = index;
    this.baseTerm = term;
    this.marker = place;
    this.entries = [];
    this.firstPlace = null;
  }

  private applyCompact(index: number, term: number, place: Place): void {
    if (this.anchored && index <= this.base) return;
    // Before the first entry of an unanchored replay nothing tells whether the compaction cut the
    // log or went past its end (the entries it kept are in deleted segments); entries still to come
    // start the log either way, and the snapshot file anchors it at the end.
    if (!this.anchored && (this.entries.length === 0 || index < this.firstIndex())) return;
    if (index > this.lastIndex() || this.entries.length === 0) {
      this.reset(index, term, place);
      return;
    }
    const kept = this.entries[index - this.firstIndex()]!;
    if (kept.term !== term) {
      throw new StorageCorruptError(place.file, place.offset, `compaction at index ${index} term ${term} but the log has term ${kept.term} there`);
    }
    const rest = this.entries.slice(index - this.firstIndex() + 1);
    this.reset(index, term, place);
    this.entries = rest;
    if (rest.length > 0) this.firstPlace = place;
  }

  /**
   * Fits the replayed log to the newest snapshot. Returns the entries after it, and whether the WAL
   * needs an install record so that the next replay reaches the same answer (after a crash between
   * writing a snapshot file and the WAL record that refers to it).
   */
  finish(snapshot: Snapshot | null, firstSegment: string): { entries: Entry[]; needsInstallRecord: boolean } {
    const snapIndex = snapshot?.meta.index ?? 0;
    const snapTerm = snapshot?.meta.term ?? 0;
    if (this.anchored && this.base > snapIndex) {
      const place = this.marker ?? { file: firstSegment, offset: 0 };
      throw new StorageCorruptError(
        place.file,
        place.offset,
        `the log refers to a snapshot at index ${this.base}, but ${snapshot ? `the newest snapshot file ends at ${snapIndex}` : 'no snapshot file exists'}`,
      );
    }
    if (snapshot === null) {
      if (!this.anchored) {
        throw new StorageCorruptError(firstSegment, 0, 'the log starts after earlier segments were removed, but no snapshot file covers them');
      }
      return { entries: this.entries, needsInstallRecord: false };
    }
    if (this.anchored && this.base === snapIndex && this.baseTerm !== snapTerm) {
      const place = this.marker ?? { file: firstSegment, offset: 0 };
      throw new StorageCorruptError(place.file, place.offset, `the log's snapshot at index ${snapIndex} has term ${this.baseTerm}, the snapshot file has term ${snapTerm}`);
    }
    if (this.entries.length === 0) {
      return { entries: [], needsInstallRecord: this.anchored && this.base !== snapIndex };
    }
    const first = this.firstIndex();
    const last = this.lastIndex();
    if (first > snapIndex + 1) {
      const place = this.firstPlace ?? { file: firstSegment, offset: 0 };
      throw new StorageCorruptError(place.file, place.offset, `the log resumes at index ${first} but the newest snapshot ends at ${snapIndex}: entries in between are missing`);
    }
    if (last <= snapIndex) return { entries: [], needsInstallRecord: true };
    if (first === snapIndex + 1) return { entries: this.entries, needsInstallRecord: false };
    const atSnapshot = this.entries[snapIndex - first]!;
    if (atSnapshot.term !== snapTerm) {
      // The snapshot file was made durable but the install record after it was not: the old suffix
      // followed another history, so it goes, exactly as the install would have done.
      return { entries: [], needsInstallRecord: true };
    }
    return { entries: this.entries.slice(snapIndex - first + 1), needsInstallRecord: false };
  }
}
