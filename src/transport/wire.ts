// Byte-level primitives for the binary peer codec: unsigned LEB128 varints (sized for safe
// integers), length-prefixed UTF-8 strings and byte strings. The reader validates as it goes and
// reports every problem as a WireError naming the field, so a decoder built on it can only return a
// fully valid value or throw a WireError.
import { GrowableBuffer } from '../util/growable-buffer.ts';
import { Buffer, isUtf8 } from 'node:buffer';

/** A value that cannot go on the wire, or bytes that are not a valid encoding. `field` names the
 * offending field as a path, e.g. `messages[3].entries[0].term`. */
export class WireError extends Error {
  readonly field: string;
  constructor(field: string, problem: string) {
    super(`${field}: ${problem}`);
    this.name = 'WireError';
    this.field = field;
  }
}

/** Where a codec is inside a value, kept as a stack so that naming a field costs nothing until a
 * WireError needs the name. */
export class FieldPath {
  private readonly segments: (string | number)[] = [];

  constructor(root: string) {
    this.segments.push(root);
  }

  enter(segment: string | number): void {
    this.segments.push(segment);
  }

  leave(): void {
    this.segments.pop();
  }

  at(leaf: string): string {
    let out = '';
    for (const segment of this.segments) {
      out += typeof segment === 'number' ? `[${segment}]` : out === '' ? segment : `.${segment}`;
    }
    return leaf === '' ? out : `${out}.${leaf}`;
  }

  error(leaf: string, problem: string): WireError {
    return new WireError(this.at(leaf), problem);
  }
}

// 2^53 - 1 needs 53 bits; 8 varint bytes carry 56.
const MAX_VARINT_BYTES = 8;
const TWO_POW_7 = [1, 2 ** 7, 2 ** 14, 2 ** 21, 2 ** 28, 2 ** 35, 2 ** 42, 2 ** 49];

export function checkUint(value: unknown, path: FieldPath, leaf: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw path.error(leaf, `expected a non-negative safe integer, got ${describe(value)}`);
  }
  return value;
}

export function checkBool(value: unknown, path: FieldPath, leaf: string): boolean {
  if (typeof value !== 'boolean') throw path.error(leaf, `expected a boolean, got ${describe(value)}`);
  return value;
}

// A lone surrogate would silently become U+FFFD in UTF-8 and come back as a different string.
const LONE_SURROGATE = /\p{Cs}/u;

export function checkString(value: unknown, path: FieldPath, leaf: string, minBytes: number, maxBytes: number): string {
  if (typeof value !== 'string') throw path.error(leaf, `expected a string, got ${describe(value)}`);
  // Every UTF-16 unit takes at least one UTF-8 byte, so this refuses early without measuring.
  if (value.length > maxBytes) throw path.error(leaf, `longer than ${maxBytes} bytes`);
  if (LONE_SURROGATE.test(value)) throw path.error(leaf, 'is not well-formed Unicode (lone surrogate)');
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes < minBytes) throw path.error(leaf, `shorter than ${minBytes} byte(s)`);
  if (bytes > maxBytes) throw path.error(leaf, `longer than ${maxBytes} bytes`);
  return value;
}

export function checkBytes(value: unknown, path: FieldPath, leaf: string, maxBytes: number): Uint8Array {
  if (!(value instanceof Uint8Array)) throw path.error(leaf, `expected a Uint8Array, got ${describe(value)}`);
  if (value.byteLength > maxBytes) throw path.error(leaf, `longer than ${maxBytes} bytes`);
  return value;
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Uint8Array) return `${value.byteLength} bytes`;
  switch (typeof value) {
    case 'number':
      return String(value);
    case 'string':
      return value.length > 40 ? `a ${value.length}-character string` : JSON.stringify(value);
    case 'undefined':
      return 'nothing';
    default:
      return `a ${typeof value}`;
  }
}

/** Uninitialised memory as a plain Uint8Array (zero-filling large outputs costs as much as the copy
 * that fills them). */
export function allocBytes(length: number): Uint8Array {
  const buf = Buffer.allocUnsafe(length);
  return new Uint8Array(buf.buffer, buf.byteOffset, length);
}

/** A growable output buffer. Encoding reuses one scratch buffer and copies the result out, so a
 * small message costs one small allocation. */
export class ByteWriter extends GrowableBuffer {
  constructor(initialBytes = 4096) {
    super(initialBytes);
  }

  reset(): void {
    this.pos = 0;
  }

  /** Drops an oversized buffer (after a snapshot) so the scratch space does not pin it. */
  shrink(maxBytes: number): void {
    if (this.buf.length > maxBytes) {
      this.buf = Buffer.allocUnsafe(maxBytes);
      this.pos = 0;
    }
  }

  /** A copy of what was written (the scratch buffer is reused). */
  take(): Uint8Array {
    const out = allocBytes(this.pos);
    out.set(this.buf.subarray(0, this.pos));
    return out;
  }

  /** value must already be checked with checkUint. */
  uint(value: number): void {
    this.ensure(MAX_VARINT_BYTES);
    let rest = value;
    while (rest >= 0x80) {
      this.buf[this.pos++] = (rest % 0x80) | 0x80;
      rest = Math.floor(rest / 0x80);
    }
    this.buf[this.pos++] = rest;
  }

  /** value must already be checked with checkString. */
  string(value: string): void {
    const maxBytes = value.length * 3;
    this.ensure(MAX_VARINT_BYTES + maxBytes);
    // Write the bytes after room for the largest length prefix, then move them if the prefix is short.
    if (value.length < 0x80 / 3) {
      const written = this.buf.write(value, this.pos + 1, 'utf8');
      this.buf[this.pos] = written;
      this.pos += 1 + written;
      return;
    }
    const bytes = Buffer.byteLength(value, 'utf8');
    this.uint(bytes);
    this.pos += this.buf.write(value, this.pos, 'utf8');
  }

  bytes(value: Uint8Array): void {
    this.uint(value.byteLength);
    this.raw(value);
  }
}

export class ByteReader {
  readonly path: FieldPath;
  private readonly view: Uint8Array;
  private owned: Uint8Array | null = null;
  private pos = 0;

  constructor(view: Uint8Array, root: string) {
    // A plain Uint8Array view: Buffer#slice would share memory instead of copying.
    this.view = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
    this.path = new FieldPath(root);
  }

  get remaining(): number {
    return this.view.byteLength - this.pos;
  }

  fail(leaf: string, problem: string): WireError {
    return this.path.error(leaf, problem);
  }

  end(): void {
    if (this.pos !== this.view.byteLength) {
      throw this.fail('', `${this.view.byteLength - this.pos} unexpected trailing byte(s)`);
    }
  }

  u8(leaf: string): number {
    if (this.pos >= this.view.byteLength) throw this.fail(leaf, 'truncated');
    return this.view[this.pos++];
  }

  bool(leaf: string): boolean {
    const byte = this.u8(leaf);
    if (byte > 1) throw this.fail(leaf, `expected a boolean (0 or 1), got ${byte}`);
    return byte === 1;
  }

  /** A canonical (shortest) varint holding a safe integer. */
  uint(leaf: string): number {
    let value = 0;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (this.pos >= this.view.byteLength) throw this.fail(leaf, 'truncated');
      const byte = this.view[this.pos++];
      value += (byte & 0x7f) * TWO_POW_7[i];
      if (byte < 0x80) {
        if (byte === 0 && i > 0) throw this.fail(leaf, 'non-canonical integer encoding');
        if (value > Number.MAX_SAFE_INTEGER) throw this.fail(leaf, 'integer above 2^53 - 1');
        return value;
      }
    }
    throw this.fail(leaf, 'integer above 2^53 - 1');
  }

  /** A count of items that each take at least minItemBytes, so a lying count fails here rather than
   * after allocating for it. */
  count(leaf: string, max: number, minItemBytes: number): number {
    const n = this.uint(leaf);
    if (n > max) throw this.fail(leaf, `${n} items, more than the limit of ${max}`);
    if (n * minItemBytes > this.remaining) throw this.fail(leaf, `${n} items cannot fit in the remaining ${this.remaining} bytes`);
    return n;
  }

  private span(leaf: string, maxBytes: number): number {
    const length = this.uint(leaf);
    if (length > maxBytes) throw this.fail(leaf, `${length} bytes, more than the limit of ${maxBytes}`);
    if (length > this.remaining) throw this.fail(leaf, 'truncated');
    return length;
  }

  string(leaf: string, minBytes: number, maxBytes: number): string {
    const length = this.span(leaf, maxBytes);
    if (length < minBytes) throw this.fail(leaf, `shorter than ${minBytes} byte(s)`);
    const start = this.pos;
    this.pos += length;
    const view = this.view;
    // Ids are short and almost always ASCII: skip the generic decoder for them.
    if (length <= 64) {
      let ascii = '';
      let i = 0;
      for (; i < length; i++) {
        const byte = view[start + i];
        if (byte >= 0x80) break;
        ascii += String.fromCharCode(byte);
      }
      if (i === length) return ascii;
    }
    const bytes = view.subarray(start, start + length);
    if (!isUtf8(bytes)) throw this.fail(leaf, 'is not valid UTF-8');
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  }

  /** A view into a private copy of the input, made once on the first call: the caller may reuse
   * its buffer, and copying each small entry separately costs far more than one copy of the whole
   * frame. A decoded value therefore keeps at most its own frame alive. */
  bytes(leaf: string, maxBytes: number): Uint8Array {
    const length = this.span(leaf, maxBytes);
    const start = this.pos;
    this.pos += length;
    if (this.owned === null) this.owned = this.view.slice();
    return this.owned.subarray(start, start + length);
  }
}
