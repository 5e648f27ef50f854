// Frames: the unit of one write + fsync. A frame is
//   [u32 body length][u32 CRC32 of the body][u32 CRC32 of the previous 8 bytes] body
// and its body is a run of records. One group commit writes exactly one frame, so a crash while it
// is being written can only damage the last frame of the last segment, however the disk reorders the
// pages of that write. The header has its own checksum so that a damaged length is never trusted
// (trusting it could make a bit flip in the middle of the log look like a torn tail).
import { crc32 } from 'node:zlib';
import { ByteWriter } from './bytes.ts';
import { writeRecord, type WalRecord } from './records.ts';

export const FRAME_HEADER_BYTES = 12;

export class FrameBuilder {
  private readonly out: ByteWriter;
  private count = 0;

  constructor(initialBytes = 4096) {
    this.out = new ByteWriter(initialBytes);
    this.out.skip(FRAME_HEADER_BYTES);
  }

  get records(): number {
    return this.count;
  }

  get bytes(): number {
    return this.out.length;
  }

  add(record: WalRecord): void {
    writeRecord(this.out, record);
    this.count++;
  }

  /** Fills in the header and returns the frame's bytes (a view that stays valid until add()). */
  seal(): Buffer {
    const body = this.out.view(FRAME_HEADER_BYTES);
    if (body.length > 0xffff_ffff) throw new RangeError(`a frame of ${body.length} bytes is too large; save fewer or smaller entries at once`);
    this.out.patchU32(0, body.length);
    this.out.patchU32(4, crc32(body));
    this.out.patchU32(8, crc32(this.out.view(0, 8)));
    return this.out.view();
  }
}

export interface FrameHeader {
  readonly bodyLength: number;
  readonly bodyCrc: number;
}

/** Parses a frame header, or returns null if its checksum does not match. */
export function readFrameHeader(header: Buffer): FrameHeader | null {
  const headerCrc = header.readUInt32BE(8);
  if (crc32(header.subarray(0, 8)) !== headerCrc) return null;
  return { bodyLength: header.readUInt32BE(0), bodyCrc: header.readUInt32BE(4) };
}

export function bodyMatches(body: Buffer, header: FrameHeader): boolean {
  return crc32(body) === header.bodyCrc;
}
