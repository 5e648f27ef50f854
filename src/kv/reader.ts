// Bounds-checked big-endian reads over untrusted bytes (log entries, snapshots). Every overrun or
// out-of-range number becomes the caller's own error type, naming the field, never a RangeError.

export class ByteReader {
  readonly #data: Uint8Array;
  readonly #view: DataView;
  readonly #what: string;
  readonly #fail: (message: string) => Error;
  #offset = 0;

  constructor(data: Uint8Array, what: string, fail: (message: string) => Error) {
    this.#data = data;
    this.#view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    this.#what = what;
    this.#fail = fail;
  }

  get offset(): number {
    return this.#offset;
  }

  get remaining(): number {
    return this.#data.byteLength - this.#offset;
  }

  #need(length: number, field: string): void {
    if (length > this.remaining) {
      throw this.#fail(
        `${this.#what} is truncated: ${field} needs ${length} bytes at offset ${this.#offset}, ${this.remaining} left`,
      );
    }
  }

  u8(field: string): number {
    this.#need(1, field);
    return this.#view.getUint8(this.#offset++);
  }

  u16(field: string): number {
    this.#need(2, field);
    const value = this.#view.getUint16(this.#offset);
    this.#offset += 2;
    return value;
  }

  u32(field: string): number {
    this.#need(4, field);
    const value = this.#view.getUint32(this.#offset);
    this.#offset += 4;
    return value;
  }

  /** A u64 that must fit a JS safe integer (log indices do). */
  u64(field: string): number {
    this.#need(8, field);
    const value = this.#view.getBigUint64(this.#offset);
    this.#offset += 8;
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw this.#fail(`${this.#what}: ${field} ${value} is beyond 2^53-1`);
    return Number(value);
  }

  /** A view into the input, not a copy. */
  bytes(length: number, field: string): Uint8Array {
    this.#need(length, field);
    const slice = this.#data.subarray(this.#offset, this.#offset + length);
    this.#offset += length;
    return slice;
  }

  end(): void {
    if (this.remaining !== 0) throw this.#fail(`${this.#what} has ${this.remaining} unexpected trailing bytes`);
  }
}

const TWO_32 = 2 ** 32;
const utf8Encoder = new TextEncoder();

/** Big-endian writes into a buffer sized in advance. Plain byte stores, no DataView or BigInt: every
 * write through a follower encodes one command, and each extra object is garbage to collect. */
export class ByteWriter {
  readonly bytes: Uint8Array;
  #offset = 0;

  constructor(length: number) {
    this.bytes = new Uint8Array(length);
  }

  get offset(): number {
    return this.#offset;
  }

  u8(value: number): void {
    this.bytes[this.#offset++] = value;
  }

  u16(value: number): void {
    this.bytes[this.#offset++] = value >>> 8;
    this.bytes[this.#offset++] = value;
  }

  u32(value: number): void {
    const b = this.bytes;
    b[this.#offset++] = value >>> 24;
    b[this.#offset++] = value >>> 16;
    b[this.#offset++] = value >>> 8;
    b[this.#offset++] = value;
  }

  /** A safe integer (callers check the range) as 8 bytes. */
  u64(value: number): void {
    this.u32(Math.floor(value / TWO_32));
    this.u32(value % TWO_32);
  }

  raw(data: Uint8Array): void {
    this.bytes.set(data, this.#offset);
    this.#offset += data.byteLength;
  }

  /** `text` as UTF-8, written in place; byteLength is its UTF-8 length, known to the caller. */
  utf8(text: string, byteLength: number): void {
    utf8Encoder.encodeInto(text, this.bytes.subarray(this.#offset, this.#offset + byteLength));
    this.#offset += byteLength;
  }
}
