// File-system steps that durability depends on: timed fsyncs, directory fsyncs (a created, renamed or
// deleted name is only durable once its directory is synced), atomic replacement of small files.
import { fdatasyncSync, writeSync } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * What an fsync was for, so metrics can tell the WAL's latency from the rare ones. `segment` is the
 * background preparation of the next preallocated WAL segment, off every write's path.
 */
export type FsyncKind = 'wal' | 'dir' | 'snapshot' | 'meta' | 'segment';

export type FsyncObserver = (seconds: number, kind: FsyncKind) => void;

export async function timedSync(handle: FileHandle, kind: FsyncKind, observe: FsyncObserver | undefined, dataOnly: boolean): Promise<void> {
  const started = process.hrtime.bigint();
  if (dataOnly) await handle.datasync();
  else await handle.sync();
  observe?.(Number(process.hrtime.bigint() - started) / 1e9, kind);
}

/** timedSync's fdatasync on the calling thread (see WalStore.flush for when that is worth it). */
export function timedDataSyncNow(handle: FileHandle, kind: FsyncKind, observe: FsyncObserver | undefined): void {
  const started = process.hrtime.bigint();
  fdatasyncSync(handle.fd);
  observe?.(Number(process.hrtime.bigint() - started) / 1e9, kind);
}

export async function syncDir(dir: string, observe: FsyncObserver | undefined): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await timedSync(handle, 'dir', observe, false);
  } finally {
    await handle.close();
  }
}

/** Writes `name` in `dir` so that after a crash it holds either its old content or all of `data`. */
export async function writeFileAtomically(dir: string, name: string, data: Uint8Array, kind: FsyncKind, observe: FsyncObserver | undefined): Promise<void> {
  const final = join(dir, name);
  const temp = `${final}.tmp`;
  const handle = await open(temp, 'w', 0o600);
  try {
    await writeFully(handle, data, 0);
    // fdatasync also makes the new size durable (metadata needed to read the data back); the name
    // becomes durable with the directory fsync after the rename.
    await timedSync(handle, kind, observe, true);
  } catch (error) {
    await handle.close();
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  await handle.close();
  await rename(temp, final);
  await syncDir(dir, observe);
}

export async function writeFully(handle: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/**
 * writeFully on the calling thread: for the WAL's group-commit frame, a page-cache write of a few
 * kilobytes that the fdatasync after it waits for anyway. Done in the thread pool it would cost a
 * hand-off and a wake-up of the event loop per commit, on every member, for every write.
 */
export function writeFullySync(handle: FileHandle, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.length) done += writeSync(handle.fd, data, done, data.length - done, position + done);
}

const ZERO_CHUNK_BYTES = 256 * 1024;

/** Writes zero bytes over [from, to): preallocation, and clearing a torn write inside it. */
export async function writeZeros(handle: FileHandle, from: number, to: number): Promise<void> {
  if (to <= from) return;
  const zeros = Buffer.alloc(Math.min(ZERO_CHUNK_BYTES, to - from));
  for (let at = from; at < to; at += zeros.length) {
    await writeFully(handle, zeros.subarray(0, Math.min(zeros.length, to - at)), at);
  }
}

/** Reads exactly buf.length bytes at position; returns how many were there (fewer only at EOF). */
export async function readFully(handle: FileHandle, buf: Buffer, position: number): Promise<number> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await handle.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/** True if every byte in [from, to) is zero: what a file system leaves where a write never landed. */
export async function isZeroRange(handle: FileHandle, from: number, to: number): Promise<boolean> {
  const chunk = Buffer.allocUnsafe(Math.min(64 * 1024, Math.max(1, to - from)));
  for (let at = from; at < to; at += chunk.length) {
    const want = Math.min(chunk.length, to - at);
    const view = chunk.subarray(0, want);
    const got = await readFully(handle, view, at);
    for (let n = 0; n < got; n++) if (view[n] !== 0) return false;
    if (got < want) return true;
  }
  return true;
}
