// The next WAL segment, made ready before it is needed: a temp file with the segment header and
// zeros up to the segment size, fsynced once, so its blocks and size are already durable. Appends
// into it then only overwrite zeros, and the fdatasync of each group commit has no metadata to
// write. Rolling over is a rename plus the directory fsync that every new segment needed anyway.
//
// A crash while the file is being prepared leaves only the temp file, which holds nothing: recovery
// removes it. A renamed file is always whole (it was fsynced under its temp name first).
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { timedSync, writeFully, writeZeros, type FsyncObserver } from './fsutil.ts';
import { SEGMENT_HEADER_BYTES, segmentHeader, segmentName } from './segment.ts';

/** The temp name of the segment being prepared; never a segment name, so recovery ignores its bytes. */
export const PREPARED_SEGMENT_FILE = 'next-segment.tmp';

/** Writes and fsyncs a preallocated segment of `bytes` bytes under the temp name; returns it open. */
export async function prepareSegment(dir: string, bytes: number, observe: FsyncObserver | undefined): Promise<FileHandle> {
  const path = join(dir, PREPARED_SEGMENT_FILE);
  const handle = await open(path, 'w', 0o600);
  try {
    await writeFully(handle, segmentHeader(), 0);
    await writeZeros(handle, SEGMENT_HEADER_BYTES, Math.max(SEGMENT_HEADER_BYTES, bytes));
    // A full fsync: the size and the allocated blocks are exactly what later fdatasyncs skip.
    await timedSync(handle, 'segment', observe, false);
  } catch (error) {
    await handle.close();
    await unlink(path).catch(() => undefined);
    throw error;
  }
  return handle;
}

/** Gives the prepared file its segment name. The name is durable once the directory is fsynced. */
export async function installPreparedSegment(dir: string, seq: number): Promise<void> {
  await rename(join(dir, PREPARED_SEGMENT_FILE), join(dir, segmentName(seq)));
}

/** Closes and removes a prepared file that will not be used (the store is closing). */
export async function discardPreparedSegment(dir: string, handle: FileHandle): Promise<void> {
  await handle.close();
  await unlink(join(dir, PREPARED_SEGMENT_FILE)).catch(() => undefined);
}
