// The growable output buffer under both binary formats (WAL records on disk, peer messages on the
// wire); each format adds its own integer encodings on top.
export class GrowableBuffer {
  protected buf: Buffer;
  protected pos = 0;

  constructor(initialBytes: number) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  get length(): number {
    return this.pos;
  }

  /** Makes room for `extra` more bytes, doubling so appends stay amortised O(1). */
  protected ensure(extra: number): void {
    const need = this.pos + extra;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const bigger = Buffer.allocUnsafe(size);
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  u8(value: number): void {
    this.ensure(1);
    this.buf[this.pos++] = value;
  }

  raw(value: Uint8Array): void {
    this.ensure(value.byteLength);
    this.buf.set(value, this.pos);
    this.pos += value.byteLength;
  }
}
