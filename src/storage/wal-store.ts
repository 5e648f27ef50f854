// The durable store the node runtime persists each Ready into: a write-ahead log of segment files,
// snapshot files beside it, and group commit.
//
// Group commit: save() encodes nothing to disk itself; it adds its records to the pending batch and
// returns a promise. One flush loop takes the whole pending batch, writes it as one frame and
// fdatasyncs once; every save() that arrived while that fsync ran lands in the next batch. No promise
// resolves before the fsync that covers its bytes has returned. Entries and the hard state (term,
// vote, commit index) of one Ready share that frame, so one fsync makes them durable together.
//
// Segments are preallocated (prealloc.ts): the next one is prepared in the background once the active
// one is half full, so a frame overwrites zeros and its fdatasync writes data blocks only.
import { unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Entry, HardState, Snapshot } from '../raft/types.ts';
import { StorageError } from './errors.ts';
import { FrameBuilder } from './frame.ts';
import { syncDir, timedDataSyncNow, timedSync, writeFullySync, type FsyncKind, type FsyncObserver } from './fsutil.ts';
import { LogShape } from './log-shape.ts';
import { discardPreparedSegment, installPreparedSegment, prepareSegment } from './prealloc.ts';
import type { WalRecord } from './records.ts';
import { SEGMENT_HEADER_BYTES, WAL_VERSION, segmentName } from './segment.ts';
import { pruneSnapshots, writeSnapshotFile } from './snapshot-file.ts';

/**
 * Segment size, which is also what each segment file occupies from its creation (preallocated). A
 * sidecar's log is compacted every few thousand entries, so 16 MiB rolls rarely and keeps the data
 * directory small (the active segment plus the prepared next one) and recovery's scan short.
 */
export const DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024;
export const DEFAULT_KEEP_SNAPSHOTS = 2;

export interface StorageLogger {
  warn(message: string): void;
  info?(message: string): void;
}

export interface StoreOptions {
  /** The member this data directory belongs to; a directory made for another id is refused. */
  readonly nodeId: string;
  /** Size of each (preallocated) segment; a new one is started when a frame would not fit. */
  readonly segmentBytes?: number;
  /** How many snapshot files to keep (the newest ones); at least 1. */
  readonly keepSnapshots?: number;
  /** Called after every fsync with its duration, for metrics. */
  readonly onFsync?: (seconds: number, kind: FsyncKind) => void;
  readonly logger?: StorageLogger;
}

/** What one Ready asks to persist. Pass the Ready itself: the other fields are ignored. */
export interface PersistUpdate {
  /** A snapshot received from the leader: it replaces the whole log (§7). */
  readonly snapshot?: Snapshot | null;
  /** New entries; entries[0].index may be <= the last persisted index, which discards from there. */
  readonly entries?: readonly Entry[];
  readonly hardState?: HardState | null;
}

export interface SegmentState {
  readonly seq: number;
  /** Highest entry or snapshot index recorded in the segment (0 if none). */
  maxIndex: number;
}

type PreparedSegment = { readonly ok: true; readonly handle: FileHandle } | { readonly ok: false; readonly error: unknown };

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

interface Batch {
  readonly records: WalRecord[];
  readonly waiters: Waiter[];
  /** Snapshots received from the leader: their files must be durable before the records. */
  readonly installs: Snapshot[];
  hardState: HardState | null;
  maxIndex: number;
  /** Index of the newest snapshot (install or compaction) the records refer to, or -1. */
  snapshotIndex: number;
  hasInstall: boolean;
}

/** Everything openStore learned about the directory, handed to the store it builds. */
export interface StoreInit {
  readonly dir: string;
  readonly handle: FileHandle;
  /** Where the log ends in the active segment: the next frame is written here. */
  readonly activeSize: number;
  /** Format version of the active segment; an older one is rolled over at the first write. */
  readonly activeVersion: number;
  /** Whether the active segment holds a hard state record (it must before older ones are deleted). */
  readonly activeHasHardState: boolean;
  readonly segments: SegmentState[];
  readonly shape: LogShape;
  readonly hardState: HardState | null;
  readonly snapshotIndex: number | null;
  readonly lastInstallSeq: number;
}

export class WalStore {
  readonly dir: string;
  private readonly segmentBytes: number;
  private readonly keepSnapshots: number;
  private readonly observe: FsyncObserver | undefined;
  private readonly logger: StorageLogger | undefined;

  private handle: FileHandle;
  private activeSize: number;
  private activeVersion: number;
  private activeHasHardState: boolean;
  private readonly segments: SegmentState[];
  private readonly shape: LogShape;
  /** The newest hard state already on disk: repeated at the start of each new segment. */
  private writtenHardState: HardState | null;
  /** Index of the newest durable snapshot, or null if there is none yet. */
  private snapshotIndex: number | null;
  /** Segment holding the newest install record: every segment before it is obsolete. */
  private lastInstallSeq: number;

  /** The next segment being prepared in the background, or null until the active one is half full. */
  private nextSegment: Promise<PreparedSegment> | null = null;
  private pending: Batch | null = null;
  private flushing: Promise<void> | null = null;
  private compactions: Promise<void> = Promise.resolve();
  private failure: StorageError | null = null;
  private closed = false;

  constructor(init: StoreInit, options: StoreOptions) {
    this.dir = init.dir;
    this.segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.keepSnapshots = Math.max(1, options.keepSnapshots ?? DEFAULT_KEEP_SNAPSHOTS);
    this.observe = options.onFsync;
    this.logger = options.logger;
    this.handle = init.handle;
    this.activeSize = init.activeSize;
    this.activeVersion = init.activeVersion;
    this.activeHasHardState = init.activeHasHardState;
    this.segments = init.segments;
    this.shape = init.shape;
    this.writtenHardState = init.hardState;
    this.snapshotIndex = init.snapshotIndex;
    this.lastInstallSeq = init.lastInstallSeq;
  }

  /** Index of the last persisted (or queued) entry; the snapshot index if the log is empty. */
  get lastIndex(): number {
    return this.shape.last;
  }

  /** Index the newest snapshot covers (0 = none): the log holds entries after it. */
  get snapshotBase(): number {
    return this.shape.base;
  }

  /** Number of segment files in use; for tests and status. */
  get segmentCount(): number {
    return this.segments.length;
  }

  /** The error that stopped the store, or null while it works (for /healthz). */
  get error(): StorageError | null {
    return this.failure;
  }

  /**
   * Persists a snapshot from the leader, then entries, then the hard state, as one atomic step
   * for recovery's purposes, and resolves once they are fsynced. Calls made while an fsync runs
   * share the next one. An update with nothing in it resolves once everything before it is durable.
   */
  save(update: PersistUpdate): Promise<void> {
    const refused = this.refusal();
    if (refused) return Promise.reject(refused);
    const snapshot = update.snapshot ?? null;
    const entries = update.entries ?? [];
    const hardState = update.hardState ?? null;
    try {
      if (snapshot !== null) checkSnapshot(snapshot);
      checkEntries(entries);
      if (hardState !== null) checkHardState(hardState);
      this.checkFits(snapshot, entries);
    } catch (error) {
      return Promise.reject(error);
    }
    if (snapshot === null && entries.length === 0 && hardState === null) {
      if (this.pending === null && this.flushing === null) return Promise.resolve();
    }

    const batch = this.pendingBatch();
    if (snapshot !== null) {
      const { index, term } = snapshot.meta;
      this.shape.install(index, term);
      batch.installs.push(snapshot);
      batch.records.push({ kind: 'install', index, term });
      batch.maxIndex = Math.max(batch.maxIndex, index);
      batch.snapshotIndex = Math.max(batch.snapshotIndex, index);
      batch.hasInstall = true;
    }
    for (const entry of entries) {
      this.shape.append(entry.index, entry.term);
      batch.records.push({ kind: 'entry', entry });
      batch.maxIndex = Math.max(batch.maxIndex, entry.index);
    }
    if (hardState !== null) {
      batch.records.push({ kind: 'hardState', hardState });
      batch.hardState = hardState;
    }
    return this.wait(batch);
  }

  /**
   * Records a snapshot this node took of its own state machine (log compaction): writes its file
   * atomically, then records in the WAL that the log now starts after it, then deletes segments
   * and old snapshot files it makes unnecessary. Entries after the snapshot stay. A snapshot not
   * newer than the current one is ignored.
   */
  saveSnapshot(snapshot: Snapshot): Promise<void> {
    const refused = this.refusal();
    if (refused) return Promise.reject(refused);
    try {
      checkSnapshot(snapshot);
    } catch (error) {
      return Promise.reject(error);
    }
    const run = this.compactions.then(() => this.compact(snapshot));
    this.compactions = run.catch(() => undefined);
    return run;
  }

  /** Waits for every accepted save to be durable, then closes the active segment. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.compactions;
    while (this.flushing) await this.flushing;
    await this.handle.close();
    if (this.nextSegment !== null) {
      const prepared = await this.nextSegment;
      this.nextSegment = null;
      if (prepared.ok) await discardPreparedSegment(this.dir, prepared.handle);
    }
  }

  private refusal(): StorageError | null {
    if (this.failure) return this.failure;
    if (this.closed) return new StorageError('failed', `the store for ${this.dir} is closed`);
    return null;
  }

  /** Rejects a batch that would leave a hole or rewrite what a snapshot already covers. */
  private checkFits(snapshot: Snapshot | null, entries: readonly Entry[]): void {
    let base = this.shape.base;
    let last = this.shape.last;
    if (snapshot !== null) {
      const { index, term } = snapshot.meta;
      if (index < base || (index === base && base > 0 && term !== this.shape.baseTerm)) {
        throw new RangeError(`cannot install snapshot at index ${index} term ${term}: the store already has a snapshot at index ${base} term ${this.shape.baseTerm}`);
      }
      base = snapshot.meta.index;
      last = base;
    }
    const first = entries[0];
    if (first === undefined) return;
    if (first.index <= base || first.index > last + 1) {
      throw new RangeError(`cannot save entries from index ${first.index}: the persisted log holds ${base + 1}..${last}, so the next entry must be in ${base + 1}..${last + 1}`);
    }
  }

  private async compact(snapshot: Snapshot): Promise<void> {
    const { index, term } = snapshot.meta;
    if (index <= this.shape.base) return;
    this.checkCompactionTerm(index, term);
    try {
      await writeSnapshotFile(this.dir, snapshot, this.observe);
    } catch (error) {
      throw this.fail(error, `write snapshot ${index}`);
    }
    // A close() that began meanwhile waits for this compaction, so only a failure stops it here.
    if (this.failure) throw this.failure;
    // Saves ran while the file was written; the snapshot may be stale now.
    if (index <= this.shape.base) return;
    this.checkCompactionTerm(index, term);
    this.shape.compact(index, term);
    const batch = this.pendingBatch();
    batch.records.push({ kind: 'compact', index, term });
    batch.maxIndex = Math.max(batch.maxIndex, index);
    batch.snapshotIndex = Math.max(batch.snapshotIndex, index);
    await this.wait(batch);
  }

  private checkCompactionTerm(index: number, term: number): void {
    const known = this.shape.termAt(index);
    if (known !== undefined && known !== term) {
      throw new RangeError(`cannot compact at index ${index} term ${term}: the log has term ${known} there (only committed entries may be compacted)`);
    }
  }

  /** For openStore only: records that the newest snapshot file replaced the log (see replay.ts). */
  recordInstall(index: number, term: number): Promise<void> {
    const batch = this.pendingBatch();
    batch.records.push({ kind: 'install', index, term });
    batch.maxIndex = Math.max(batch.maxIndex, index);
    batch.hasInstall = true;
    return this.wait(batch);
  }

  private pendingBatch(): Batch {
    if (this.pending === null) {
      this.pending = { records: [], waiters: [], installs: [], hardState: null, maxIndex: 0, snapshotIndex: -1, hasInstall: false };
    }
    return this.pending;
  }

  private wait(batch: Batch): Promise<void> {
    const done = new Promise<void>((resolve, reject) => {
      batch.waiters.push({ resolve, reject });
    });
    if (this.flushing === null) {
      // Start at the end of this turn's code, so that saves issued in the same synchronous burst
      // share the first fsync. process.nextTick orders it after the transport's own flush of the
      // messages handed over before this save (peer-link.ts, which uncorks its socket as it writes:
      // transport/uncorked.ts): a term or vote save, whose fdatasync runs on this thread (flush),
      // never holds up the vote requests or the TimeoutNow that left before it, even when this
      // runs inside a promise callback. It starts in the tick itself, not in a promise callback
      // queued from it: that one would run after every callback queued meanwhile (the answers to
      // the writes this Ready applied), and the fsync would start late.
      this.flushing = new Promise<void>((resolve) => process.nextTick(() => resolve(this.runFlushes())));
    }
    return done;
  }

  private async runFlushes(): Promise<void> {
    try {
      while (this.pending !== null) {
        const batch = this.pending;
        this.pending = null;
        if (this.failure) {
          for (const waiter of batch.waiters) waiter.reject(this.failure);
          continue;
        }
        try {
          await this.flush(batch);
        } catch (error) {
          const failure = this.fail(error, 'write the WAL');
          for (const waiter of batch.waiters) waiter.reject(failure);
          continue;
        }
        for (const waiter of batch.waiters) waiter.resolve();
      }
    } finally {
      this.flushing = null;
    }
  }

  private async flush(batch: Batch): Promise<void> {
    for (const snapshot of batch.installs) await writeSnapshotFile(this.dir, snapshot, this.observe);
    if (batch.records.length > 0) {
      let bytes = this.buildFrame(batch, false);
      // An old-format segment is left at once; otherwise a new segment starts when the frame would
      // run past the preallocated space (a frame larger than a whole segment gets one to itself).
      const roll = this.activeVersion < WAL_VERSION ||
        (this.activeSize + bytes.length > this.segmentBytes && this.activeSize > SEGMENT_HEADER_BYTES);
      if (roll) {
        await this.roll();
        bytes = this.buildFrame(batch, true);
      }
      writeFullySync(this.handle, bytes, this.activeSize);
      if (!roll && batch.installs.length === 0 && batch.records.every((r) => r.kind === 'hardState')) {
        // A new term or vote alone: an election, where the whole cluster waits for this fsync (a
        // candidate counts its own vote, a voter answers, only after it). In the thread pool it
        // costs two hand-offs between threads, which on a busy machine took 2-9 ms around an
        // fdatasync of 0.3-1 ms; on this thread it is the fdatasync alone. Elections are rare, and
        // a save with entries (the write path) stays in the pool, where it blocks nothing.
        timedDataSyncNow(this.handle, 'wal', this.observe);
      } else {
        await timedSync(this.handle, 'wal', this.observe, true);
      }
      if (roll) await syncDir(this.dir, this.observe);
      this.activeSize += bytes.length;
      const active = this.segments[this.segments.length - 1]!;
      active.maxIndex = Math.max(active.maxIndex, batch.maxIndex);
      if (batch.hardState !== null) this.writtenHardState = batch.hardState;
      if (this.writtenHardState !== null) this.activeHasHardState = true;
      if (batch.hasInstall) this.lastInstallSeq = active.seq;
      this.prepareNextSegment();
    }
    if (batch.snapshotIndex >= 0) {
      this.snapshotIndex = Math.max(this.snapshotIndex ?? 0, batch.snapshotIndex);
      await this.dropObsoleteSegments();
      const removed = await pruneSnapshots(this.dir, this.keepSnapshots, this.observe);
      if (removed.length > 0) this.logger?.info?.(`storage: removed old snapshot files ${removed.join(', ')}`);
    }
  }

  /**
   * One frame with the batch's records. A segment that has no hard state record yet (just rolled, or
   * created by a crash between its rename and its first frame) gets the current one first, so that
   * deleting older segments never loses the term and vote.
   */
  private buildFrame(batch: Batch, rolled: boolean): Buffer {
    const frame = new FrameBuilder(64 + batch.records.length * 128);
    const needsHardState = rolled || !this.activeHasHardState;
    if (needsHardState && batch.hardState === null && this.writtenHardState !== null) {
      frame.add({ kind: 'hardState', hardState: this.writtenHardState });
    }
    for (const record of batch.records) frame.add(record);
    return frame.seal();
  }

  /** Starts preparing the next segment once the active one is half full (never two at a time). */
  private prepareNextSegment(): void {
    if (this.nextSegment !== null || this.closed || this.failure !== null) return;
    if (this.activeSize < this.segmentBytes / 2) return;
    this.nextSegment = prepareSegment(this.dir, this.segmentBytes, this.observe).then(
      (handle): PreparedSegment => ({ ok: true, handle }),
      (error: unknown): PreparedSegment => ({ ok: false, error }),
    );
  }

  /**
   * Switches to the next segment: the prepared one (waiting for it if it is still being written, or
   * preparing it now if that failed, e.g. while the disk was full), renamed into place. The caller
   * writes its first frame and then fsyncs the directory.
   */
  private async roll(): Promise<void> {
    const seq = this.segments[this.segments.length - 1]!.seq + 1;
    let prepared = await (this.nextSegment ?? Promise.resolve<PreparedSegment>({ ok: false, error: null }));
    this.nextSegment = null;
    if (!prepared.ok) prepared = { ok: true, handle: await prepareSegment(this.dir, this.segmentBytes, this.observe) };
    try {
      await installPreparedSegment(this.dir, seq);
    } catch (error) {
      await prepared.handle.close();
      throw error;
    }
    // The previous segment's frames were all fsynced by earlier flushes.
    await this.handle.close();
    this.handle = prepared.handle;
    this.activeSize = SEGMENT_HEADER_BYTES;
    this.activeVersion = WAL_VERSION;
    this.activeHasHardState = false;
    this.segments.push({ seq, maxIndex: 0 });
  }

  /** Deletes the oldest segments while a durable snapshot makes them unnecessary for recovery. */
  private async dropObsoleteSegments(): Promise<void> {
    if (this.snapshotIndex === null) return;
    const removed: string[] = [];
    while (this.segments.length > 1) {
      const oldest = this.segments[0]!;
      if (oldest.maxIndex > this.snapshotIndex && oldest.seq >= this.lastInstallSeq) break;
      const name = segmentName(oldest.seq);
      await unlink(join(this.dir, name));
      this.segments.shift();
      removed.push(name);
    }
    if (removed.length > 0) {
      await syncDir(this.dir, this.observe);
      this.logger?.info?.(`storage: removed segments covered by snapshot ${this.snapshotIndex}: ${removed.join(', ')}`);
    }
  }

  private fail(error: unknown, action: string): StorageError {
    if (this.failure === null) {
      const detail = error instanceof Error ? error.message : String(error);
      this.failure = new StorageError(
        'failed',
        `storage in ${this.dir} failed to ${action} (${detail}); what reached the disk is unknown, so this node must stop and restart to recover from its WAL`,
        { cause: error },
      );
      this.logger?.warn(this.failure.message);
    }
    return this.failure;
  }
}

function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

// Checks happen before a record joins the pending frame, so a bad value is refused alone instead of
// leaving half a record behind for everyone else's fsync.

function checkEntries(entries: readonly Entry[]): void {
  for (let n = 0; n < entries.length; n++) {
    const entry = entries[n]!;
    if (!isIndex(entry.index) || entry.index < 1 || !isIndex(entry.term)) {
      throw new RangeError(`entry ${n} has index ${entry.index} term ${entry.term}: both must be safe integers, the index at least 1`);
    }
    if (n > 0 && entry.index !== entries[n - 1]!.index + 1) {
      throw new RangeError(`entries must be contiguous: index ${entry.index} follows ${entries[n - 1]!.index}`);
    }
    switch (entry.kind) {
      case 'noop':
        break;
      case 'command':
        if (!(entry.data instanceof Uint8Array)) throw new TypeError(`entry ${entry.index}: command data must be a Uint8Array`);
        break;
      case 'config':
        checkMembers(entry.members, `entry ${entry.index}`);
        break;
      default: {
        const never: never = entry;
        throw new TypeError(`entry ${n} has unknown kind ${String((never as { kind: unknown }).kind)}`);
      }
    }
  }
}

function checkMembers(members: Snapshot['meta']['members'], where: string): void {
  if (!Array.isArray(members)) throw new TypeError(`${where}: members must be an array`);
  for (const member of members) {
    if (typeof member.id !== 'string' || typeof member.url !== 'string' || typeof member.voter !== 'boolean') {
      throw new TypeError(`${where}: every member needs a string id, a string url and a boolean voter`);
    }
  }
}

function checkHardState(state: HardState): void {
  if (!isIndex(state.term) || !isIndex(state.commitIndex)) {
    throw new RangeError(`hard state term ${state.term} / commitIndex ${state.commitIndex} must be safe non-negative integers`);
  }
  if (state.votedFor !== null && typeof state.votedFor !== 'string') throw new TypeError('hard state votedFor must be a string or null');
}

function checkSnapshot(snapshot: Snapshot): void {
  if (!isIndex(snapshot.meta.index) || !isIndex(snapshot.meta.term)) {
    throw new RangeError(`snapshot index ${snapshot.meta.index} / term ${snapshot.meta.term} must be safe non-negative integers`);
  }
  if (!(snapshot.data instanceof Uint8Array)) throw new TypeError('snapshot data must be a Uint8Array');
  checkMembers(snapshot.meta.members, `snapshot ${snapshot.meta.index}`);
}
