// A node's disk as the whole-node simulator models it, and a LogStore over it that behaves like the
// real WalStore (src/storage/wal-store.ts) where a crash can tell the difference:
// - save() groups updates into one frame (the real FrameBuilder: records, checksums) written and
//   fsynced together; its promise resolves only when that frame is durable;
// - a crash loses every frame not yet fsynced; the frame being written may survive whole, vanish, or
//   survive torn (a prefix of it, or its full length with pages missing);
// - snapshot files (from the leader, or of this node's own state) are written atomically, before
//   the WAL record that refers to them, so a crash can leave a file with no record;
// - segments roll, and segments a durable snapshot makes unnecessary are deleted, so replay may
//   start in the middle of the log;
// - a write can fail: the store then refuses everything, as the real one does, and the node must
//   stop (onFatal 'storage').
// Restart reads the disk back the way openStore does: cut a torn tail (checked with the real frame
// checksums), replay the records with the real ReplayLog, fit the log to the newest snapshot file.
import type { LogStore, LogUpdate } from '../../src/node/ports.ts';
import type { HardState, RestoredState, Snapshot } from '../../src/raft/types.ts';
import { FRAME_HEADER_BYTES, FrameBuilder, bodyMatches, readFrameHeader } from '../../src/storage/frame.ts';
import { LogShape } from '../../src/storage/log-shape.ts';
import { readRecords, type WalRecord } from '../../src/storage/records.ts';
import { ReplayLog } from '../../src/storage/replay.ts';
import { StorageError } from '../../src/storage/errors.ts';
import type { Rng } from '../sim/rng.ts';
import type { NodeSlot, Scheduler } from './scheduler.ts';

export interface DiskProfile {
  /** Virtual ms one write + fsync takes: drawn from [min, max]. */
  readonly fsyncMinMs: number;
  readonly fsyncMaxMs: number;
  /** A segment is closed after this many frames (small, so that deletion and replay mid-log happen). */
  readonly framesPerSegment: number;
  /** Snapshot files kept (the real store keeps 2). */
  readonly keepSnapshots: number;
}

interface Segment {
  readonly seq: number;
  readonly frames: Buffer[];
  maxIndex: number;
}

/** What survives a crash. */
export class SimDisk {
  segments: Segment[] = [{ seq: 1, frames: [], maxIndex: 0 }];
  /** The frame that was being written at the crash, as far as it got: cut at recovery. */
  torn: Buffer | null = null;
  /** Durable snapshot files, oldest first. */
  snapshots: Snapshot[] = [];
  lastInstallSeq = 0;
  writtenHardState: HardState | null = null;
  readonly profile: DiskProfile;

  constructor(profile: DiskProfile) {
    this.profile = profile;
  }

  get frameCount(): number {
    return this.segments.reduce((n, s) => n + s.frames.length, 0);
  }

  /** Writes a frame of records durably, rolling to a new segment first if the active one is full. */
  appendDurable(records: readonly WalRecord[], maxIndex: number): void {
    this.commitFrame(this.buildFrame(records), maxIndex, records);
  }

  /** The frame's bytes, and whether it opens a new segment. */
  buildFrame(records: readonly WalRecord[]): { bytes: Buffer; roll: boolean } {
    const active = this.segments[this.segments.length - 1];
    const roll = active.frames.length >= this.profile.framesPerSegment;
    const frame = new FrameBuilder(64 + records.length * 64);
    // Every segment starts with the hard state so that deleting older segments never loses it.
    if (roll && this.writtenHardState !== null) frame.add({ kind: 'hardState', hardState: this.writtenHardState });
    for (const record of records) frame.add(record);
    return { bytes: Buffer.from(frame.seal()), roll };
  }

  commitFrame(frame: { bytes: Buffer; roll: boolean }, maxIndex: number, records: readonly WalRecord[]): void {
    if (frame.roll) this.segments.push({ seq: this.segments[this.segments.length - 1].seq + 1, frames: [], maxIndex: 0 });
    const active = this.segments[this.segments.length - 1];
    active.frames.push(frame.bytes);
    active.maxIndex = Math.max(active.maxIndex, maxIndex);
    for (const record of records) {
      if (record.kind === 'hardState') this.writtenHardState = record.hardState;
      if (record.kind === 'install') this.lastInstallSeq = active.seq;
    }
  }

  addSnapshotFile(snapshot: Snapshot): void {
    if (this.snapshots.some((s) => s.meta.index === snapshot.meta.index)) return;
    this.snapshots.push(snapshot);
    this.snapshots.sort((a, b) => a.meta.index - b.meta.index);
  }

  /** After a durable snapshot record: delete what recovery no longer needs (as WalStore does). */
  dropObsolete(snapshotIndex: number): void {
    while (this.segments.length > 1) {
      const oldest = this.segments[0];
      if (oldest.maxIndex > snapshotIndex && oldest.seq >= this.lastInstallSeq) break;
      this.segments.shift();
    }
    while (this.snapshots.length > this.profile.keepSnapshots) this.snapshots.shift();
  }
}

/** What openStore would hand the node after a restart; throws StorageError as openStore would. */
export function recoverDisk(disk: SimDisk): { restored: RestoredState; shape: LogShape; cutTornTail: boolean } {
  let cutTornTail = false;
  if (disk.torn !== null) {
    const torn = disk.torn;
    disk.torn = null;
    if (isWholeFrame(torn)) {
      // Every byte landed after all: the frame is as good as fsynced.
      disk.segments[disk.segments.length - 1].frames.push(torn);
    } else {
      cutTornTail = true;
    }
  }
  const replay = new ReplayLog(disk.segments[0].seq === 1);
  for (const segment of disk.segments) {
    const file = `wal-${segment.seq}.log`;
    let offset = 0;
    for (const frame of segment.frames) {
      const header = readFrameHeader(frame.subarray(0, FRAME_HEADER_BYTES));
      if (header === null || !bodyMatches(frame.subarray(FRAME_HEADER_BYTES), header)) {
        throw new StorageError('corrupt', `${file} at ${offset}: a durable frame does not match its checksum`);
      }
      for (const placed of readRecords(frame, FRAME_HEADER_BYTES, frame.length)) replay.apply(placed.record, file, offset + placed.at);
      offset += frame.length;
    }
  }
  const snapshot = disk.snapshots.length > 0 ? disk.snapshots[disk.snapshots.length - 1] : null;
  const { entries, needsInstallRecord } = replay.finish(snapshot, `wal-${disk.segments[0].seq}.log`);
  if (needsInstallRecord && snapshot !== null) {
    disk.appendDurable([{ kind: 'install', index: snapshot.meta.index, term: snapshot.meta.term }], snapshot.meta.index);
  }
  const shape = new LogShape(snapshot?.meta.index ?? 0, snapshot?.meta.term ?? 0);
  for (const entry of entries) shape.append(entry.index, entry.term);
  return { restored: { hardState: replay.hardState, snapshot, entries }, shape, cutTornTail };
}

/** Whether bytes left by an interrupted write form one complete, checksummed frame. */
function isWholeFrame(bytes: Buffer): boolean {
  if (bytes.length < FRAME_HEADER_BYTES) return false;
  const header = readFrameHeader(bytes.subarray(0, FRAME_HEADER_BYTES));
  if (header === null || bytes.length !== FRAME_HEADER_BYTES + header.bodyLength) return false;
  return bodyMatches(bytes.subarray(FRAME_HEADER_BYTES), header);
}

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

interface Batch {
  readonly records: WalRecord[];
  readonly installs: Snapshot[];
  readonly waiters: Waiter[];
  maxIndex: number;
  snapshotIndex: number;
}

interface InFlight {
  readonly batch: Batch;
  readonly frame: { bytes: Buffer; roll: boolean };
}

/** A fault the simulation arms on a store; it fires at the next matching moment. */
export type StoreArm =
  /** Crash while the next frame is being written (after the Ready's early messages left). */
  | 'crashInFlush'
  /** Crash while the next frame that records a vote is being written. */
  | 'crashInVote'
  /** Crash right after the next frame is durable, before anyone hears of it (before apply). */
  | 'crashAfterFsync'
  /** Crash in the middle of the next snapshot save. */
  | 'crashMidSnapshot'
  /** The next write fails. */
  | 'writeError';

export interface StoreHooks {
  /** Crash this node now (the simulation settles the disk through crashImage()). */
  crash(why: string): void;
  trace(line: string): void;
}

export class SimLogStore implements LogStore {
  private readonly disk: SimDisk;
  private readonly scheduler: Scheduler;
  private readonly slot: NodeSlot;
  private readonly incarnation: number;
  private readonly rng: Rng;
  private readonly hooks: StoreHooks;
  private readonly shape: LogShape;
  private pending: Batch | null = null;
  private inFlight: InFlight | null = null;
  /** A snapshot file being written (its rename may or may not happen before a crash). */
  private fileInFlight: Snapshot | null = null;
  private compactions: Promise<void> = Promise.resolve();
  private failure: StorageError | null = null;
  arm: StoreArm | null = null;
  /** Frames made durable by this incarnation. */
  fsyncs = 0;

  constructor(disk: SimDisk, shape: LogShape, scheduler: Scheduler, slot: NodeSlot, rng: Rng, hooks: StoreHooks) {
    this.disk = disk;
    this.shape = shape;
    this.scheduler = scheduler;
    this.slot = slot;
    this.incarnation = slot.incarnation;
    this.rng = rng;
    this.hooks = hooks;
  }

  get failed(): boolean {
    return this.failure !== null;
  }

  save(update: LogUpdate): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const snapshot = update.snapshot ?? null;
    const entries = update.entries ?? [];
    const hardState = update.hardState ?? null;
    // The real store's checkFits: a batch that would leave a hole is a caller's bug, refused alone.
    let base = this.shape.base;
    let last = this.shape.last;
    if (snapshot !== null) {
      if (snapshot.meta.index < base) return Promise.reject(new RangeError(`snapshot ${snapshot.meta.index} is older than the stored one (${base})`));
      base = snapshot.meta.index;
      last = base;
    }
    if (entries.length > 0 && (entries[0].index <= base || entries[0].index > last + 1)) {
      return Promise.reject(new RangeError(`cannot save entries from index ${entries[0].index}: the persisted log holds ${base + 1}..${last}`));
    }
    for (let i = 1; i < entries.length; i++) {
      if (entries[i].index !== entries[i - 1].index + 1) return Promise.reject(new RangeError(`entries are not contiguous at ${entries[i].index}`));
    }
    if (snapshot === null && entries.length === 0 && hardState === null && this.pending === null && this.inFlight === null) return Promise.resolve();
    const batch = this.pendingBatch();
    if (snapshot !== null) {
      this.shape.install(snapshot.meta.index, snapshot.meta.term);
      batch.installs.push(snapshot);
      batch.records.push({ kind: 'install', index: snapshot.meta.index, term: snapshot.meta.term });
      batch.maxIndex = Math.max(batch.maxIndex, snapshot.meta.index);
      batch.snapshotIndex = Math.max(batch.snapshotIndex, snapshot.meta.index);
    }
    for (const entry of entries) {
      this.shape.append(entry.index, entry.term);
      batch.records.push({ kind: 'entry', entry });
      batch.maxIndex = Math.max(batch.maxIndex, entry.index);
    }
    if (hardState !== null) batch.records.push({ kind: 'hardState', hardState });
    return this.wait(batch);
  }

  saveSnapshot(snapshot: Snapshot): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const run = this.compactions.then(() => this.compact(snapshot));
    this.compactions = run.catch(() => undefined);
    return run;
  }

  private async compact(snapshot: Snapshot): Promise<void> {
    const { index, term } = snapshot.meta;
    if (index <= this.shape.base) return;
    if (this.failure) throw this.failure;
    if (this.arm === 'crashMidSnapshot') {
      this.arm = null;
      // Somewhere in the file write, or between the file and its WAL record.
      const delay = this.delay();
      this.scheduler.at(this.scheduler.now + this.rng.next() * 2 * delay, () => this.hooks.crash(`mid-snapshot at ${index}`), this.slot, this.incarnation);
    }
    this.fileInFlight = snapshot;
    await new Promise<void>((resolve) => {
      this.scheduler.at(this.scheduler.now + this.delay(), resolve, this.slot, this.incarnation);
    });
    this.fileInFlight = null;
    this.disk.addSnapshotFile(snapshot);
    if (this.failure) throw this.failure;
    if (index <= this.shape.base) return;
    const known = this.shape.termAt(index);
    if (known !== undefined && known !== term) {
      throw new RangeError(`cannot compact at index ${index} term ${term}: the log has term ${known} there`);
    }
    this.shape.compact(index, term);
    const batch = this.pendingBatch();
    batch.records.push({ kind: 'compact', index, term });
    batch.maxIndex = Math.max(batch.maxIndex, index);
    batch.snapshotIndex = Math.max(batch.snapshotIndex, index);
    await this.wait(batch);
  }

  /** The disk as a crash of this incarnation leaves it. */
  crashImage(): void {
    const flight = this.inFlight;
    if (flight !== null) {
      // Installed snapshot files are written, fsynced and renamed (directory fsynced) before the
      // frame that records them is written at all: if any byte of the frame reached the disk, so
      // did the files. Only a crash before the frame's write may lose them (or leave them whole).
      const fate = this.rng.int(3);
      const filesLanded = fate !== 2 || this.rng.chance(0.5);
      if (filesLanded) for (const snap of flight.batch.installs) this.disk.addSnapshotFile(snap);
      if (fate === 0) this.disk.commitFrame(flight.frame, flight.batch.maxIndex, flight.batch.records);
      if (fate === 1) this.disk.torn = tear(flight.frame, this.rng);
    }
    if (this.fileInFlight !== null && this.rng.chance(0.5)) this.disk.addSnapshotFile(this.fileInFlight);
    this.inFlight = null;
    this.pending = null;
    this.fileInFlight = null;
  }

  private delay(): number {
    const p = this.disk.profile;
    return p.fsyncMinMs + this.rng.next() * (p.fsyncMaxMs - p.fsyncMinMs);
  }

  private pendingBatch(): Batch {
    if (this.pending === null) this.pending = { records: [], installs: [], waiters: [], maxIndex: 0, snapshotIndex: -1 };
    return this.pending;
  }

  private wait(batch: Batch): Promise<void> {
    const done = new Promise<void>((resolve, reject) => batch.waiters.push({ resolve, reject }));
    if (this.inFlight === null) this.scheduler.at(this.scheduler.now, () => this.startFlush(), this.slot, this.incarnation);
    return done;
  }

  private startFlush(): void {
    if (this.inFlight !== null || this.pending === null) return;
    const batch = this.pending;
    this.pending = null;
    if (this.failure) {
      for (const w of batch.waiters) w.reject(this.failure);
      return;
    }
    const frame = this.disk.buildFrame(batch.records);
    this.inFlight = { batch, frame };
    const delay = this.delay();
    const vote = batch.records.some((r) => r.kind === 'hardState' && r.hardState.votedFor !== null && r.hardState.votedFor !== this.disk.writtenHardState?.votedFor);
    if (this.arm === 'crashInFlush' || (this.arm === 'crashInVote' && vote)) {
      this.arm = null;
      this.scheduler.at(this.scheduler.now + this.rng.next() * delay * 0.99, () => this.hooks.crash('while its frame was being written'), this.slot, this.incarnation);
    }
    this.scheduler.at(this.scheduler.now + delay, () => this.completeFlush(), this.slot, this.incarnation);
  }

  private completeFlush(): void {
    const flight = this.inFlight;
    if (flight === null) return;
    const { batch, frame } = flight;
    if (this.arm === 'writeError') {
      this.arm = null;
      this.crashImage(); // what reached the disk is unknown
      this.failure = new StorageError('failed', 'simulated write error: what reached the disk is unknown; the node must stop and recover from its WAL');
      this.hooks.trace(`${this.slot.id} write error`);
      for (const w of batch.waiters) w.reject(this.failure);
      return;
    }
    for (const snap of batch.installs) this.disk.addSnapshotFile(snap);
    this.disk.commitFrame(frame, batch.maxIndex, batch.records);
    if (batch.snapshotIndex >= 0) this.disk.dropObsolete(Math.max(batch.snapshotIndex, this.disk.snapshots.at(-1)?.meta.index ?? 0));
    this.inFlight = null;
    this.fsyncs++;
    if (this.arm === 'crashAfterFsync' && batch.records.some((r) => r.kind !== 'compact')) {
      this.arm = null;
      this.hooks.crash('after its fsync, before anyone heard of it');
      return;
    }
    for (const w of batch.waiters) w.resolve();
    if (this.pending !== null) this.startFlush();
  }
}

/** An interrupted write: a prefix of the frame, or its full length with some pages never written. */
function tear(frame: { bytes: Buffer }, rng: Rng): Buffer {
  const bytes = frame.bytes;
  if (rng.chance(0.5)) return Buffer.from(bytes.subarray(0, rng.int(bytes.length)));
  const out = Buffer.from(bytes);
  const from = rng.int(bytes.length);
  out.fill(0, from, Math.min(bytes.length, from + 1 + rng.int(512)));
  return out;
}
