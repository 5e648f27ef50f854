// Snapshot files: snap-<index>-<term>.snap, each written whole to a temp file, fsynced and renamed,
// so a reader sees either nothing or the complete file. Layout:
//   "RAFTLSNP" u32 version, u64 index, u64 term, members, u64 data length, data, u32 CRC32 of all before
import { readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Snapshot } from '../raft/types.ts';
import { ByteReader, ByteWriter, DecodeError } from './bytes.ts';
import { StorageCorruptError } from './errors.ts';
import { syncDir, writeFileAtomically, type FsyncObserver } from './fsutil.ts';
import { readMembers, writeMembers } from './records.ts';

const SNAPSHOT_MAGIC = Buffer.from('RAFTLSNP', 'latin1');
const SNAPSHOT_VERSION = 1;
const SNAPSHOT_NAME = /^snap-(\d{20})-(\d{20})\.snap$/;

export interface SnapshotFileName {
  readonly name: string;
  readonly index: number;
  readonly term: number;
}

export function snapshotName(index: number, term: number): string {
  return `snap-${String(index).padStart(20, '0')}-${String(term).padStart(20, '0')}.snap`;
}

export function parseSnapshotName(name: string): SnapshotFileName | null {
  const match = SNAPSHOT_NAME.exec(name);
  return match ? { name, index: Number(match[1]), term: Number(match[2]) } : null;
}

export function encodeSnapshot(snapshot: Snapshot): Buffer {
  const out = new ByteWriter(snapshot.data.length + 256);
  out.raw(SNAPSHOT_MAGIC);
  out.u32(SNAPSHOT_VERSION);
  out.u64(snapshot.meta.index);
  out.u64(snapshot.meta.term);
  writeMembers(out, snapshot.meta.members);
  out.u64(snapshot.data.length);
  out.raw(snapshot.data);
  const checksumAt = out.skip(4);
  out.patchU32(checksumAt, crc32(out.view(0, checksumAt)));
  return out.view();
}

export function decodeSnapshot(path: string, bytes: Buffer): Snapshot {
  const minimum = SNAPSHOT_MAGIC.length + 4 + 4;
  if (bytes.length < minimum) throw new StorageCorruptError(path, 0, `snapshot file is only ${bytes.length} bytes long`);
  if (!bytes.subarray(0, SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) throw new StorageCorruptError(path, 0, 'bad magic, not a raftlet snapshot');
  const checksumAt = bytes.length - 4;
  if (crc32(bytes.subarray(0, checksumAt)) !== bytes.readUInt32BE(checksumAt)) {
    throw new StorageCorruptError(path, checksumAt, `snapshot checksum stored at this offset does not match bytes 0..${checksumAt}`);
  }
  const input = new ByteReader(bytes, SNAPSHOT_MAGIC.length, checksumAt);
  try {
    const versionAt = input.offset;
    const version = input.u32('snapshot version');
    if (version !== SNAPSHOT_VERSION) {
      throw new StorageCorruptError(path, versionAt, `snapshot format version ${version} is not supported (this raftlet reads version ${SNAPSHOT_VERSION})`);
    }
    const index = input.u64('snapshot index');
    const term = input.u64('snapshot term');
    const members = readMembers(input);
    const lengthAt = input.offset;
    const length = input.u64('snapshot data length');
    if (length !== input.remaining) throw new DecodeError(lengthAt, `data length ${length} but ${input.remaining} bytes are there`);
    const data = new Uint8Array(length);
    data.set(bytes.subarray(input.offset, input.offset + length));
    return { meta: { index, term, members }, data };
  } catch (error) {
    if (error instanceof DecodeError) throw new StorageCorruptError(path, error.at, `malformed snapshot: ${error.message}`);
    throw error;
  }
}

/** Snapshot files in dir, newest (highest index, then term) first. */
export async function listSnapshots(dir: string): Promise<SnapshotFileName[]> {
  const found: SnapshotFileName[] = [];
  for (const name of await readdir(dir)) {
    const parsed = parseSnapshotName(name);
    if (parsed) found.push(parsed);
  }
  return found.sort((a, b) => b.index - a.index || b.term - a.term);
}

export async function readSnapshotFile(dir: string, file: SnapshotFileName): Promise<Snapshot> {
  const path = join(dir, file.name);
  const snapshot = decodeSnapshot(path, await readFile(path));
  if (snapshot.meta.index !== file.index || snapshot.meta.term !== file.term) {
    throw new StorageCorruptError(path, 0, `file name says index ${file.index} term ${file.term} but it holds index ${snapshot.meta.index} term ${snapshot.meta.term}`);
  }
  return snapshot;
}

export async function writeSnapshotFile(dir: string, snapshot: Snapshot, observe: FsyncObserver | undefined): Promise<void> {
  await writeFileAtomically(dir, snapshotName(snapshot.meta.index, snapshot.meta.term), encodeSnapshot(snapshot), 'snapshot', observe);
}

/** Deletes all but the newest `keep` snapshot files; returns the names removed. */
export async function pruneSnapshots(dir: string, keep: number, observe: FsyncObserver | undefined): Promise<string[]> {
  const old = (await listSnapshots(dir)).slice(keep);
  for (const file of old) await unlink(join(dir, file.name));
  if (old.length > 0) await syncDir(dir, observe);
  return old.map((file) => file.name);
}
