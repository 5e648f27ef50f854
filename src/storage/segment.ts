// Segment files: wal-<seq>.log, a 16-byte header, then frames. Only the last segment is ever written;
// a full one is left alone, and whole segments are deleted once a snapshot covers them.
//
// Version 2 segments are preallocated: the file is created at its full size filled with zeros (in
// the background, under a temp name), so that appending a frame overwrites zeros and the fdatasync
// after it has no file size or block allocation to make durable. The log in such a segment ends at
// the first all-zero frame header, and only zeros may follow it. Version 1 segments (older raftlet)
// grew with every append and end at the end of the file; they are still read.
//
// Reading tells a torn tail from damage. A crash during a group commit can only hurt the frame that
// was being written, which is the last thing in the last segment, so a bad frame there is cut off
// when nothing but zeros (where writes never landed) follows it. A bad frame anywhere else, or
// followed by more data, is damage: recovery refuses to guess and throws StorageCorruptError.
import { open } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { DecodeError } from './bytes.ts';
import { StorageCorruptError } from './errors.ts';
import { FRAME_HEADER_BYTES, bodyMatches, readFrameHeader } from './frame.ts';
import { isZeroRange, readFully } from './fsutil.ts';
import { readRecords, type WalRecord } from './records.ts';

export const SEGMENT_HEADER_BYTES = 16;
const SEGMENT_MAGIC = Buffer.from('RAFTLWAL', 'latin1');
/** The version this raftlet writes. */
export const WAL_VERSION = 2;
/** The last version whose segments grow with each append (no preallocated zero tail). */
const APPENDED_WAL_VERSION = 1;

const SEGMENT_NAME = /^wal-(\d{16})\.log$/;

export function segmentName(seq: number): string {
  return `wal-${String(seq).padStart(16, '0')}.log`;
}

/** The sequence number in a segment file name, or null if the name is not a segment's. */
export function parseSegmentName(name: string): number | null {
  const match = SEGMENT_NAME.exec(name);
  return match ? Number(match[1]) : null;
}

export function segmentHeader(version: number = WAL_VERSION): Buffer {
  const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
  SEGMENT_MAGIC.copy(header, 0);
  header.writeUInt32BE(version, 8);
  header.writeUInt32BE(crc32(header.subarray(0, 12)), 12);
  return header;
}

/** Why a segment header is unacceptable, or null if it is fine. */
function headerProblem(header: Buffer): string | null {
  if (!header.subarray(0, 8).equals(SEGMENT_MAGIC)) return `bad magic ${JSON.stringify(header.subarray(0, 8).toString('latin1'))}, not a raftlet WAL segment`;
  if (crc32(header.subarray(0, 12)) !== header.readUInt32BE(12)) return 'segment header checksum mismatch';
  const version = header.readUInt32BE(8);
  if (version !== APPENDED_WAL_VERSION && version !== WAL_VERSION) {
    return `WAL format version ${version} is not supported (this raftlet reads versions ${APPENDED_WAL_VERSION} and ${WAL_VERSION}); run the raftlet version that wrote it`;
  }
  return null;
}

function allZero(bytes: Buffer): boolean {
  for (let n = 0; n < bytes.length; n++) if (bytes[n] !== 0) return false;
  return true;
}

export type ScanOutcome =
  /** Every frame was whole; the log ends at `end` (the file size, or where a zero tail starts). */
  | { readonly kind: 'clean'; readonly end: number; readonly size: number; readonly version: number }
  /**
   * The last frame was torn: the file is valid up to `end`. Bytes in [end, dirtyEnd) are what the
   * torn write left, and only zeros follow them: cut there (version 1) or overwrite them with zeros
   * (version 2, which keeps the preallocation).
   */
  | { readonly kind: 'tornTail'; readonly end: number; readonly dirtyEnd: number; readonly size: number; readonly reason: string; readonly version: number }
  /** The segment never got a whole header (it was being created): it holds nothing. */
  | { readonly kind: 'tornHeader'; readonly size: number };

/** Called for every record in order with its absolute file offset; may throw StorageCorruptError. */
export type RecordVisitor = (record: WalRecord, offset: number) => void;

/**
 * Reads one segment frame by frame (memory bounded by the largest frame) and hands each record to
 * `visit`. `isLast` allows a torn tail; anything else wrong throws StorageCorruptError.
 */
export async function scanSegment(path: string, isLast: boolean, visit: RecordVisitor): Promise<ScanOutcome> {
  const handle = await open(path, 'r');
  try {
    const size = (await handle.stat()).size;
    const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
    const got = await readFully(handle, header, 0);
    if (got < SEGMENT_HEADER_BYTES) {
      if (isLast) return { kind: 'tornHeader', size };
      throw new StorageCorruptError(path, got, `segment is only ${size} bytes long, shorter than its header`);
    }
    const problem = headerProblem(header);
    if (problem !== null) {
      if (isLast && (await isZeroRange(handle, 0, size))) return { kind: 'tornHeader', size };
      throw new StorageCorruptError(path, 0, problem);
    }
    const version = header.readUInt32BE(8);
    const preallocated = version >= WAL_VERSION;

    const frameHeader = Buffer.alloc(FRAME_HEADER_BYTES);
    let at = SEGMENT_HEADER_BYTES;
    while (at < size) {
      const torn = async (reason: string, dirtyEnd: number): Promise<ScanOutcome> => {
        if (!isLast) throw new StorageCorruptError(path, at, `${reason} in a segment that is not the last, so it is not a torn write at the tail`);
        if (await isZeroRange(handle, dirtyEnd, size)) return { kind: 'tornTail', end: at, dirtyEnd, size, reason, version };
        throw new StorageCorruptError(path, at, `${reason}, and data follows it, so it is not a torn write at the tail`);
      };
      if (size - at < FRAME_HEADER_BYTES) {
        if (preallocated && (await isZeroRange(handle, at, size))) return { kind: 'clean', end: at, size, version };
        if (isLast) return { kind: 'tornTail', end: at, dirtyEnd: size, size, reason: `only ${size - at} bytes of a frame header`, version };
        throw new StorageCorruptError(path, at, `only ${size - at} bytes of a frame header at the end of a segment that is not the last`);
      }
      await readFully(handle, frameHeader, at);
      if (preallocated && allZero(frameHeader)) {
        // The end of the log in a preallocated segment. A real frame header is never all zeros (its
        // checksum of 8 zero bytes is not zero), so this is where appends stopped.
        if (await isZeroRange(handle, at + FRAME_HEADER_BYTES, size)) return { kind: 'clean', end: at, size, version };
        throw new StorageCorruptError(path, at, 'the log ends here (an all-zero frame header) but data follows in the preallocated space');
      }
      const frame = readFrameHeader(frameHeader);
      // In an appended segment a crash leaves nothing after a torn header; in a preallocated one the
      // zeros after it were there before.
      if (frame === null) return await torn('frame header checksum mismatch', preallocated ? at + FRAME_HEADER_BYTES : at);
      if (frame.bodyLength === 0) throw new StorageCorruptError(path, at, 'frame with an empty body');
      const bodyAt = at + FRAME_HEADER_BYTES;
      const frameEnd = bodyAt + frame.bodyLength;
      if (frameEnd > size) {
        if (isLast) return { kind: 'tornTail', end: at, dirtyEnd: size, size, reason: `frame of ${frame.bodyLength} bytes cut short at ${size - bodyAt}`, version };
        throw new StorageCorruptError(path, at, `frame of ${frame.bodyLength} bytes runs past the end of a segment that is not the last`);
      }
      const body = Buffer.allocUnsafe(frame.bodyLength);
      await readFully(handle, body, bodyAt);
      if (!bodyMatches(body, frame)) return await torn('frame checksum mismatch', frameEnd);
      let records;
      try {
        records = readRecords(body, 0, body.length);
      } catch (error) {
        if (error instanceof DecodeError) throw new StorageCorruptError(path, bodyAt + error.at, `malformed record: ${error.message}`);
        throw error;
      }
      for (const placed of records) visit(placed.record, bodyAt + placed.at);
      at = frameEnd;
    }
    return { kind: 'clean', end: size, size, version };
  } finally {
    await handle.close();
  }
}
