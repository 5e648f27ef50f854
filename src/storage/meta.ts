// raftlet-meta.json: which member a data directory belongs to and which format it is in. It is written
// once, atomically, when the directory is first used, and checked on every start so that a volume
// mounted into the wrong pod is refused instead of letting one member impersonate another.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { StorageCorruptError, StorageError } from './errors.ts';
import { writeFileAtomically, type FsyncObserver } from './fsutil.ts';

export const META_FILE = 'raftlet-meta.json';
const FORMAT = 'raftlet-data';
export const DATA_VERSION = 1;

export interface DataDirMeta {
  readonly format: string;
  readonly version: number;
  readonly nodeId: string;
}

function checksum(meta: DataDirMeta): number {
  return crc32(JSON.stringify({ format: meta.format, version: meta.version, nodeId: meta.nodeId }));
}

export async function writeMeta(dir: string, nodeId: string, observe: FsyncObserver | undefined): Promise<void> {
  const meta: DataDirMeta = { format: FORMAT, version: DATA_VERSION, nodeId };
  const text = `${JSON.stringify({ ...meta, crc32: checksum(meta) })}\n`;
  await writeFileAtomically(dir, META_FILE, Buffer.from(text, 'utf8'), 'meta', observe);
}

/** Reads and checks the metadata; null if the file does not exist. */
export async function readMeta(dir: string): Promise<DataDirMeta | null> {
  const path = join(dir, META_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (typeof error === 'object' && error !== null && 'code' in error && error.code === 'ENOENT') return null;
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new StorageCorruptError(path, 0, 'metadata is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null) throw new StorageCorruptError(path, 0, 'metadata is not a JSON object');
  const record = parsed as Record<string, unknown>;
  const { format, version, nodeId, crc32: stored } = record;
  if (format !== FORMAT || typeof version !== 'number' || typeof nodeId !== 'string' || typeof stored !== 'number') {
    throw new StorageCorruptError(path, 0, `metadata lacks format "${FORMAT}", version, nodeId or crc32`);
  }
  const meta: DataDirMeta = { format, version, nodeId };
  if (checksum(meta) !== stored) throw new StorageCorruptError(path, 0, 'metadata checksum mismatch');
  if (version > DATA_VERSION) {
    throw new StorageError('unusable', `${dir} was written by a newer raftlet (data format ${version}, this one reads ${DATA_VERSION}); run that version or newer`);
  }
  return meta;
}
