// openStore: check the data directory, recover what it holds, and hand back a store ready to append.
import { mkdir, open, readdir, truncate, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { RestoredState, Snapshot } from '../raft/types.ts';
import { StorageCorruptError, StorageError, unusableDir } from './errors.ts';
import { syncDir, timedSync, writeZeros } from './fsutil.ts';
import { LogShape } from './log-shape.ts';
import { META_FILE, readMeta, writeMeta } from './meta.ts';
import { PREPARED_SEGMENT_FILE, installPreparedSegment, prepareSegment } from './prealloc.ts';
import { ReplayLog } from './replay.ts';
import { SEGMENT_HEADER_BYTES, WAL_VERSION, parseSegmentName, scanSegment, segmentName } from './segment.ts';
import { listSnapshots, parseSnapshotName, readSnapshotFile } from './snapshot-file.ts';
import { DEFAULT_SEGMENT_BYTES, WalStore, type SegmentState, type StoreOptions } from './wal-store.ts';

/** What recovery keeps of a segment it scanned. */
interface KeptSegment {
  readonly state: SegmentState;
  /** Where its log ends (the next frame would go there). */
  readonly end: number;
  readonly version: number;
  readonly hasHardState: boolean;
}

export interface OpenedStore {
  readonly store: WalStore;
  /** What the core starts from: hand it over, then drop the reference (it holds the whole log). */
  readonly restored: RestoredState;
}

/**
 * Opens (creating if needed) the data directory of node `options.nodeId` and recovers it. A torn
 * write at the tail of the last segment is cut off with a warning; any other damage throws
 * StorageCorruptError naming the file and offset. Every refusal is a StorageError (exit code 3).
 */
export async function openStore(dir: string, options: StoreOptions): Promise<OpenedStore> {
  try {
    return await recover(dir, options);
  } catch (error) {
    if (error instanceof StorageError) throw error;
    throw unusableDir('use data directory', dir, error);
  }
}

async function recover(dir: string, options: StoreOptions): Promise<OpenedStore> {
  const observe = options.onFsync;
  const warn = (message: string): void => options.logger?.warn(message);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw unusableDir('create data directory', dir, error);
  }
  await probeWritable(dir);
  const names = await readdir(dir);
  await removeLeftoverTempFiles(dir, names, observe);

  const seqs = names.map(parseSegmentName).filter((seq): seq is number => seq !== null).sort((a, b) => a - b);
  const snapshotFiles = await listSnapshots(dir);
  const meta = await readMeta(dir);
  if (meta === null) {
    if (seqs.length > 0 || snapshotFiles.length > 0) {
      throw new StorageCorruptError(join(dir, META_FILE), 0, 'missing, but the directory holds WAL segments or snapshots; it is not safe to guess which member they belong to');
    }
    await writeMeta(dir, options.nodeId, observe);
  } else if (meta.nodeId !== options.nodeId) {
    throw new StorageError(
      'wrong_node',
      `data directory ${dir} belongs to node "${meta.nodeId}", not "${options.nodeId}"; mount this member's own volume, or set RAFTLET_DATA_DIR to another directory`,
    );
  }
  for (let n = 1; n < seqs.length; n++) {
    if (seqs[n] !== seqs[n - 1]! + 1) {
      throw new StorageCorruptError(join(dir, segmentName(seqs[n - 1]! + 1)), 0, `segment is missing between ${segmentName(seqs[n - 1]!)} and ${segmentName(seqs[n]!)}`);
    }
  }

  const newest = snapshotFiles[0];
  const snapshot: Snapshot | null = newest ? await readSnapshotFile(dir, newest) : null;

  const replay = new ReplayLog(seqs.length === 0 || seqs[0] === 1);
  const kept: KeptSegment[] = [];
  let lastInstallSeq = 0;
  for (let n = 0; n < seqs.length; n++) {
    const seq = seqs[n]!;
    const path = join(dir, segmentName(seq));
    const isLast = n === seqs.length - 1;
    const segment: SegmentState = { seq, maxIndex: 0 };
    let hasHardState = false;
    const outcome = await scanSegment(path, isLast, (record, offset) => {
      replay.apply(record, path, offset);
      switch (record.kind) {
        case 'entry':
          segment.maxIndex = Math.max(segment.maxIndex, record.entry.index);
          break;
        case 'install':
          lastInstallSeq = seq;
          segment.maxIndex = Math.max(segment.maxIndex, record.index);
          break;
        case 'compact':
          segment.maxIndex = Math.max(segment.maxIndex, record.index);
          break;
        case 'hardState':
          hasHardState = true;
          break;
        default: {
          const never: never = record;
          throw new Error(`unknown record ${String((never as { kind: unknown }).kind)}`);
        }
      }
    });
    switch (outcome.kind) {
      case 'clean':
        kept.push({ state: segment, end: outcome.end, version: outcome.version, hasHardState });
        break;
      case 'tornTail':
        warn(`storage: cut a torn write off the end of ${path}: ${outcome.reason}; kept bytes 0..${outcome.end}, dropped ${outcome.dirtyEnd - outcome.end} bytes that were never acknowledged`);
        await cutTornTail(path, outcome.version, outcome.end, outcome.dirtyEnd, observe);
        kept.push({ state: segment, end: outcome.end, version: outcome.version, hasHardState });
        break;
      case 'tornHeader':
        warn(`storage: removed ${path}: a segment whose creation was interrupted (${outcome.size} bytes, no complete header)`);
        await unlink(path);
        await syncDir(dir, observe);
        break;
      default: {
        const never: never = outcome;
        throw new Error(`unknown scan outcome ${String((never as { kind: unknown }).kind)}`);
      }
    }
  }

  const firstSegment = join(dir, segmentName(seqs[0] ?? 1));
  const { entries, needsInstallRecord } = replay.finish(snapshot, firstSegment);

  let handle;
  let active = kept.at(-1);
  if (active === undefined) {
    // A fresh directory (or one whose only segment never got its header): start at segment 1.
    const seq = seqs.length > 0 ? seqs[0]! : 1;
    handle = await prepareSegment(dir, options.segmentBytes ?? DEFAULT_SEGMENT_BYTES, observe);
    try {
      await installPreparedSegment(dir, seq);
      await syncDir(dir, observe);
    } catch (error) {
      await handle.close();
      throw error;
    }
    active = { state: { seq, maxIndex: 0 }, end: SEGMENT_HEADER_BYTES, version: WAL_VERSION, hasHardState: false };
    kept.push(active);
  } else {
    handle = await open(join(dir, segmentName(active.state.seq)), 'r+');
  }
  const segments = kept.map((segment) => segment.state);

  const shape = new LogShape(snapshot?.meta.index ?? 0, snapshot?.meta.term ?? 0);
  for (const entry of entries) shape.append(entry.index, entry.term);
  const store = new WalStore(
    {
      dir,
      handle,
      activeSize: active.end,
      activeVersion: active.version,
      activeHasHardState: active.hasHardState,
      segments,
      shape,
      hardState: replay.hardState,
      snapshotIndex: snapshot?.meta.index ?? null,
      lastInstallSeq,
    },
    options,
  );
  if (needsInstallRecord && snapshot !== null) {
    options.logger?.info?.(`storage: the newest snapshot (${snapshot.meta.index}) was written but not yet recorded in the WAL; recording it now`);
    await store.recordInstall(snapshot.meta.index, snapshot.meta.term);
  }
  return { store, restored: { hardState: replay.hardState, snapshot, entries } };
}

/** Fails early, with the directory's name, when it cannot be written (read-only volume, no space). */
async function probeWritable(dir: string): Promise<void> {
  const probe = join(dir, '.raftlet-probe.tmp');
  try {
    const handle = await open(probe, 'w', 0o600);
    try {
      await handle.write(Buffer.from('probe'));
    } finally {
      await handle.close();
    }
    await unlink(probe);
  } catch (error) {
    throw unusableDir('write to data directory', dir, error);
  }
}

/**
 * Temp files are atomic writes that never reached their rename, or a segment whose preparation was
 * interrupted (or never used): they hold nothing durable.
 */
async function removeLeftoverTempFiles(dir: string, names: readonly string[], observe: StoreOptions['onFsync']): Promise<void> {
  const temps = names.filter((name) =>
    name === PREPARED_SEGMENT_FILE || (name.endsWith('.tmp') && (name === `${META_FILE}.tmp` || parseSnapshotName(name.slice(0, -4)) !== null)));
  for (const name of temps) await unlink(join(dir, name));
  if (temps.length > 0) await syncDir(dir, observe);
}

/**
 * Removes what a torn write left: an appended (version 1) segment is cut at `end`; a preallocated one
 * keeps its size and gets zeros over the torn bytes, so the log ends at `end` again and the next
 * frame, however short, is not followed by leftovers that would read as damage.
 */
async function cutTornTail(path: string, version: number, end: number, dirtyEnd: number, observe: StoreOptions['onFsync']): Promise<void> {
  if (version < WAL_VERSION) await truncate(path, end);
  const handle = await open(path, 'r+');
  try {
    if (version >= WAL_VERSION) await writeZeros(handle, end, dirtyEnd);
    await timedSync(handle, 'wal', observe, true);
  } finally {
    await handle.close();
  }
}
