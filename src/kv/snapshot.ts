// The key-value state as one byte string for log compaction (§7). A snapshot travels between
// replicas and sits on disk, so it carries a version and a checksum, and decoding trusts nothing.
//
// Version 1 layout (big-endian):
//   "RLKV" | u8 version = 1 | u64 appliedIndex | u32 item count
//   per item, in compareKeys order: u16 key length | key (UTF-8) | u64 modIndex | u32 value length | value
//   u32 CRC-32 of every byte before it
import { crc32 } from 'node:zlib';
import type { KvItem } from './types.ts';
import { compareKeys, validateKey } from './key.ts';
import { ByteReader, ByteWriter } from './reader.ts';

export const KV_SNAPSHOT_VERSION = 1;
const MAGIC = [0x52, 0x4c, 0x4b, 0x56]; // "RLKV"
export const SNAPSHOT_HEADER_BYTES = MAGIC.length + 1 + 8 + 4;
export const SNAPSHOT_TRAILER_BYTES = 4;
/** Fixed bytes per item besides its key and value. */
export const SNAPSHOT_ITEM_OVERHEAD_BYTES = 2 + 8 + 4;

export class KvSnapshotError extends Error {
  constructor(message: string) {
    super(`key-value snapshot rejected: ${message}`);
    this.name = 'KvSnapshotError';
  }
}

export interface SnapshotItem {
  readonly key: string;
  readonly keyBytes: Uint8Array;
  readonly value: Uint8Array;
  readonly modIndex: number;
}

/** `items` must already be in compareKeys order; `totalBytes` is the exact encoded length. */
export function encodeSnapshot(appliedIndex: number, items: Iterable<SnapshotItem>, count: number, totalBytes: number): Uint8Array {
  const writer = new ByteWriter(totalBytes);
  for (const byte of MAGIC) writer.u8(byte);
  writer.u8(KV_SNAPSHOT_VERSION);
  writer.u64(appliedIndex);
  writer.u32(count);
  for (const item of items) {
    writer.u16(item.keyBytes.byteLength);
    writer.raw(item.keyBytes);
    writer.u64(item.modIndex);
    writer.u32(item.value.byteLength);
    writer.raw(item.value);
  }
  writer.u32(crc32(writer.bytes.subarray(0, writer.offset)));
  if (writer.offset !== totalBytes) throw new Error(`snapshot size mismatch: wrote ${writer.offset} of ${totalBytes} bytes`);
  return writer.bytes;
}

export interface DecodedSnapshot {
  readonly appliedIndex: number;
  /** In compareKeys order; values are copies, independent of the input buffer. */
  readonly items: KvItem[];
}

const keyDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Throws KvSnapshotError on any damage: wrong magic or version, bad checksum, bad item. */
export function decodeSnapshot(data: Uint8Array): DecodedSnapshot {
  if (data.byteLength < SNAPSHOT_HEADER_BYTES + SNAPSHOT_TRAILER_BYTES) {
    throw new KvSnapshotError(`only ${data.byteLength} bytes, less than an empty snapshot`);
  }
  for (let position = 0; position < MAGIC.length; position++) {
    if (data[position] !== MAGIC[position]) throw new KvSnapshotError('not a raftlet key-value snapshot (bad magic bytes)');
  }
  const version = data[MAGIC.length];
  if (version !== KV_SNAPSHOT_VERSION) {
    throw new KvSnapshotError(`unknown snapshot version ${version} (this build reads version ${KV_SNAPSHOT_VERSION})`);
  }
  const bodyLength = data.byteLength - SNAPSHOT_TRAILER_BYTES;
  const stored = new DataView(data.buffer, data.byteOffset + bodyLength, SNAPSHOT_TRAILER_BYTES).getUint32(0);
  const computed = crc32(data.subarray(0, bodyLength));
  if (stored !== computed) {
    throw new KvSnapshotError(`checksum mismatch (stored ${hex(stored)}, computed ${hex(computed)}): the snapshot is damaged`);
  }

  const reader = new ByteReader(data.subarray(0, bodyLength), 'snapshot', (message) => new KvSnapshotError(message));
  reader.bytes(MAGIC.length + 1, 'header');
  const appliedIndex = reader.u64('appliedIndex');
  const count = reader.u32('item count');
  const items: KvItem[] = [];
  let previousKey: string | null = null;
  for (let itemNumber = 0; itemNumber < count; itemNumber++) {
    const keyBytes = reader.bytes(reader.u16('key length'), `key of item ${itemNumber}`);
    let key: string;
    try {
      key = keyDecoder.decode(keyBytes);
    } catch {
      throw new KvSnapshotError(`key of item ${itemNumber} is not valid UTF-8`);
    }
    const keyProblem = validateKey(key);
    if (keyProblem !== null) throw new KvSnapshotError(`item ${itemNumber}: ${keyProblem}`);
    if (previousKey !== null && compareKeys(previousKey, key) >= 0) {
      throw new KvSnapshotError(`item ${itemNumber} is out of order or repeated (${JSON.stringify(key)})`);
    }
    const modIndex = reader.u64(`modIndex of item ${itemNumber}`);
    if (modIndex < 1 || modIndex > appliedIndex) {
      throw new KvSnapshotError(`item ${itemNumber} has modIndex ${modIndex}, outside 1..${appliedIndex}`);
    }
    const value = reader.bytes(reader.u32(`value length of item ${itemNumber}`), `value of item ${itemNumber}`).slice();
    items.push({ key, value, modIndex });
    previousKey = key;
  }
  reader.end();
  return { appliedIndex, items };
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}
