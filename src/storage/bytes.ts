// Little binary writer/reader pair for the on-disk formats. Integers are big-endian; 64-bit values
// are JavaScript safe integers stored as two u32 halves, so no BigInt is needed on the hot path.

import { GrowableBuffer } from '../util/growable-buffer.ts';

const TWO_32 = 0x1_0000_0000;

/** Thrown by ByteReader; callers turn it into a StorageCorruptError with the file's absolute offset. */
export class DecodeError extends Error {
  /** Offset into the reader's buffer where the bad value starts. */
  readonly at: number;
  constructor(at: number, message: string) {
    super(message);
    this.name = 'DecodeError';
    this.at = at;
  }
}

export class ByteWriter extends GrowableBuffer {
  constructor(initialBytes = 4096) {
    super(Math.max(64, initialBytes));
  }

  u32(value: number): void {
    this.ensure(4);
    this.buf.writeUInt32BE(value, this.pos);
    this.pos += 4;
  }

  u64(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`cannot store ${value}: storage integers must be safe non-negative integers`);
    }
    this.ensure(8);
    this.buf.writeUInt32BE(Math.floor(value / TWO_32), this.pos);
    this.buf.writeUInt32BE(value % TWO_32, this.pos + 4);
    this.pos += 8;
  }

  /** A u32 length followed by the bytes. */
  bytes(value: Uint8Array): void {
    this.u32(value.length);
    this.raw(value);
  }

  str(value: string): void {
    const byteLength = Buffer.byteLength(value, 'utf8');
    this.u32(byteLength);
    this.ensure(byteLength);
    this.buf.write(value, this.pos, byteLength, 'utf8');
    this.pos += byteLength;
  }

  /** Reserves `count` bytes to be filled later with patchU32 (length prefixes, checksums). */
  skip(count: number): number {
    this.ensure(count);
    const at = this.pos;
    this.buf.fill(0, at, at + count);
    this.pos += count;
    return at;
  }

  patchU32(at: number, value: number): void {
    this.buf.writeUInt32BE(value, at);
  }

  /** A view of the written bytes; valid until the next write. */
  view(from = 0, to = this.pos): Buffer {
    return this.buf.subarray(from, to);
  }
}

export class ByteReader {
  private readonly buf: Buffer;
  private pos: number;
  private readonly end: number;

  constructor(buf: Buffer, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(count: number, what: string): void {
    if (this.end - this.pos < count) {
      throw new DecodeError(this.pos, `${what} needs ${count} bytes but only ${this.end - this.pos} remain`);
    }
  }

  skip(count: number): void {
    this.need(count, 'skipped bytes');
    this.pos += count;
  }

  u8(what = 'byte'): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }

  u32(what = 'u32'): number {
    this.need(4, what);
    const value = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return value;
  }

  u64(what = 'u64'): number {
    this.need(8, what);
    const high = this.buf.readUInt32BE(this.pos);
    const low = this.buf.readUInt32BE(this.pos + 4);
    if (high >= 0x20_0000) throw new DecodeError(this.pos, `${what} is larger than a safe integer`);
    this.pos += 8;
    return high * TWO_32 + low;
  }

  /** A u32 length and that many bytes, copied into a plain Uint8Array the caller may keep. */
  bytes(what = 'bytes'): Uint8Array {
    const at = this.pos;
    const length = this.u32(`${what} length`);
    if (length > this.end - this.pos) {
      throw new DecodeError(at, `${what} claims ${length} bytes but only ${this.end - this.pos} remain`);
    }
    const out = new Uint8Array(length);
    out.set(this.buf.subarray(this.pos, this.pos + length));
    this.pos += length;
    return out;
  }

  str(what = 'string'): string {
    const at = this.pos;
    const length = this.u32(`${what} length`);
    if (length > this.end - this.pos) {
      throw new DecodeError(at, `${what} claims ${length} bytes but only ${this.end - this.pos} remain`);
    }
    const value = this.buf.toString('utf8', this.pos, this.pos + length);
    this.pos += length;
    return value;
  }
}
