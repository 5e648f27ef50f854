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

/** Big-endian writes into a buffer sized in advance. */
export class ByteWriter {
  readonly bytes: Uint8Array;
  readonly #view: DataView;
  #offset = 0;

  constructor(length: number) {
    this.bytes = new Uint8Array(length);
    this.#view = new DataView(this.bytes.buffer);
  }

  get offset(): number {
    return this.#offset;
  }

  u8(value: number): void {
    this.#view.setUint8(this.#offset++, value);
  }

  u16(value: number): void {
    this.#view.setUint16(this.#offset, value);
    this.#offset += 2;
  }

  u32(value: number): void {
    this.#view.setUint32(this.#offset, value);
    this.#offset += 4;
  }

  u64(value: number): void {
    this.#view.setBigUint64(this.#offset, BigInt(value));
    this.#offset += 8;
  }

  raw(data: Uint8Array): void {
    this.bytes.set(data, this.#offset);
    this.#offset += data.byteLength;
  }
}
