// Shared bits for the storage tests: throwaway data directories, entry makers, a recording logger.
import { mkdtemp, open, readdir, readFile, rm, stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Entry, Membership, Snapshot } from '../../src/raft/types.ts';
import type { FsyncKind, StoreOptions } from '../../src/storage/index.ts';

export async function withTempDir<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'raftlet-storage-'));
  try {
    return await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface Recorder {
  readonly warnings: string[];
  readonly fsyncs: FsyncKind[];
  options(extra?: Partial<StoreOptions>): StoreOptions;
}

export function recorder(nodeId = 'n1'): Recorder {
  const warnings: string[] = [];
  const fsyncs: FsyncKind[] = [];
  return {
    warnings,
    fsyncs,
    options: (extra = {}) => ({
      nodeId,
      logger: { warn: (message: string) => warnings.push(message) },
      onFsync: (_seconds: number, kind: FsyncKind) => fsyncs.push(kind),
      ...extra,
    }),
  };
}

export const members: Membership = [
  { id: 'n1', url: 'http://127.0.0.1:7070', voter: true },
  { id: 'n2', url: 'http://127.0.0.1:7080', voter: true },
  { id: 'n3', url: 'http://127.0.0.1:7090', voter: false },
];

/** A command entry whose payload says which index and term it was made for. */
export function command(index: number, term: number, size = 100): Entry {
  const data = new Uint8Array(size);
  for (let n = 0; n < size; n++) data[n] = (index * 31 + term * 7 + n) & 0xff;
  return { kind: 'command', term, index, data };
}

export function commands(from: number, to: number, term: number, size = 100): Entry[] {
  const out: Entry[] = [];
  for (let index = from; index <= to; index++) out.push(command(index, term, size));
  return out;
}

export function snapshotAt(index: number, term: number, size = 64): Snapshot {
  const data = new Uint8Array(size);
  for (let n = 0; n < size; n++) data[n] = (index + n) & 0xff;
  return { meta: { index, term, members }, data };
}

export async function segmentFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.startsWith('wal-')).sort();
}

export async function snapshotFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.startsWith('snap-')).sort();
}

// ---- segment layout (src/storage/FORMAT.md), for tests that damage files the way a crash would ----

const SEGMENT_HEADER_BYTES = 16;
const FRAME_HEADER_BYTES = 12;

/** The format version in a segment's header. */
export async function segmentVersion(path: string): Promise<number> {
  return (await readFile(path)).readUInt32BE(8);
}

/**
 * Where the log in a segment ends: after the last frame, found by walking frame lengths; in a
 * preallocated segment that is where the zero tail starts, in an appended one the file's end.
 */
export async function logEnd(path: string): Promise<number> {
  const bytes = await readFile(path);
  let at = SEGMENT_HEADER_BYTES;
  while (at + FRAME_HEADER_BYTES <= bytes.length) {
    if (bytes.subarray(at, at + FRAME_HEADER_BYTES).every((b) => b === 0)) break;
    const next = at + FRAME_HEADER_BYTES + bytes.readUInt32BE(at);
    if (next > bytes.length) break;
    at = next;
  }
  return at;
}

/**
 * What a crash at byte `offset` of the last write leaves: an appended (format 1) segment ends there;
 * in a preallocated one the file keeps its size and the bytes that never landed are still zeros.
 */
export async function crashAt(path: string, offset: number): Promise<void> {
  if ((await segmentVersion(path)) === 1) {
    await truncate(path, offset);
    return;
  }
  const size = (await stat(path)).size;
  const handle = await open(path, 'r+');
  try {
    await handle.write(Buffer.alloc(size - offset), 0, size - offset, offset);
  } finally {
    await handle.close();
  }
}

/** Writes bytes at an offset, leaving the rest of the file as it is. */
export async function writeAt(path: string, offset: number, bytes: Uint8Array): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.write(bytes, 0, bytes.length, offset);
  } finally {
    await handle.close();
  }
}

/**
 * Turns every segment of a closed data directory into what raftlet before preallocation wrote
 * (format 1): the same frames, no zero tail, version 1 in the header.
 */
export async function toAppendedFormat(dir: string): Promise<void> {
  for (const name of await segmentFiles(dir)) {
    const path = join(dir, name);
    await truncate(path, await logEnd(path));
    const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
    Buffer.from('RAFTLWAL', 'latin1').copy(header, 0);
    header.writeUInt32BE(1, 8);
    header.writeUInt32BE(crc32(header.subarray(0, 12)), 12);
    await writeAt(path, 0, header);
  }
}

/** The two segment layouts recovery must handle: what this raftlet writes, and format 1 directories. */
export const LAYOUTS = ['preallocated', 'appended (format 1)'] as const;
export type Layout = (typeof LAYOUTS)[number];
