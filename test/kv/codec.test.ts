import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeKvCommand, encodeKvCommand, encodedKvCommandLength, KvCodecError } from '../../src/kv/codec.ts';
import type { KvCommand } from '../../src/kv/types.ts';
import { anyCommand } from './arbitraries.ts';

test('every command survives encode and decode unchanged', () => {
  fc.assert(
    fc.property(anyCommand, (cmd) => {
      const bytes = encodeKvCommand(cmd);
      assert.equal(bytes.byteLength, encodedKvCommandLength(cmd));
      assert.deepEqual(decodeKvCommand(bytes), cmd);
    }),
    { numRuns: 1000 },
  );
});

test('a value decoded from inside a larger buffer is a copy: it keeps neither the buffer alive nor changes with it', () => {
  const bytes = encodeKvCommand({ op: 'put', key: 'k', value: new Uint8Array([1, 2, 3]) });
  const frame = new Uint8Array(bytes.byteLength + 64);
  frame.set(bytes, 32);
  const cmd = decodeKvCommand(frame.subarray(32, 32 + bytes.byteLength));
  frame.fill(0);
  assert.ok(cmd.op === 'put');
  assert.deepEqual([...cmd.value], [1, 2, 3]);
  assert.notEqual(cmd.value.buffer, frame.buffer);
  assert.equal(cmd.value.buffer.byteLength, 3);
  // At the start of a larger buffer too.
  const head = new Uint8Array(bytes.byteLength + 1);
  head.set(bytes, 0);
  const fromHead = decodeKvCommand(head.subarray(0, bytes.byteLength));
  assert.ok(fromHead.op === 'put');
  assert.notEqual(fromHead.value.buffer, head.buffer);
});

test('a value decoded from a command in a buffer of its own is a view into it, not a second copy', () => {
  const bytes = encodeKvCommand({ op: 'put', key: 'k', value: new Uint8Array([1, 2, 3]) });
  assert.equal(bytes.byteLength, bytes.buffer.byteLength, 'encodeKvCommand gives each command its own buffer');
  const cmd = decodeKvCommand(bytes);
  assert.ok(cmd.op === 'put');
  assert.deepEqual([...cmd.value], [1, 2, 3]);
  assert.equal(cmd.value.buffer, bytes.buffer);
});

test('decode accepts a command inside a larger buffer (a subarray view)', () => {
  const bytes = encodeKvCommand({ op: 'del', key: 'k', ifMatch: 7 });
  const padded = new Uint8Array(bytes.byteLength + 10);
  padded.set(bytes, 5);
  assert.deepEqual(decodeKvCommand(padded.subarray(5, 5 + bytes.byteLength)), { op: 'del', key: 'k', ifMatch: 7 });
});

// Pure noise is refused at the version byte, so half the cases start like a real command.
const garbage = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc
    .tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 12 }), fc.uint8Array({ maxLength: 24 }))
    .map(([op, flags, lengthHigh, lengthLow, rest]) => Uint8Array.from([1, op, flags, lengthHigh, lengthLow, ...rest])),
);

test('garbage never crashes decode: it returns a command or throws KvCodecError', () => {
  fc.assert(
    fc.property(garbage, (bytes) => {
      try {
        const cmd = decodeKvCommand(bytes);
        // Anything accepted is canonical: it encodes back to the very same bytes.
        assert.deepEqual(encodeKvCommand(cmd), bytes);
      } catch (error) {
        assert.ok(error instanceof KvCodecError, `unexpected ${String(error)}`);
      }
    }),
    { numRuns: 5000 },
  );
});

test('a damaged valid command is either refused or decodes to a valid command', () => {
  fc.assert(
    fc.property(anyCommand, fc.nat(), fc.integer({ min: 1, max: 255 }), fc.boolean(), (cmd, at, xor, truncate) => {
      const bytes = encodeKvCommand(cmd).slice();
      const position = at % bytes.byteLength;
      const damaged = truncate ? bytes.subarray(0, position) : (bytes[position] ^= xor, bytes);
      try {
        assert.deepEqual(encodeKvCommand(decodeKvCommand(damaged)), damaged);
      } catch (error) {
        assert.ok(error instanceof KvCodecError, `unexpected ${String(error)}`);
      }
    }),
    { numRuns: 3000 },
  );
});

test('decode refuses each kind of malformed command with a message naming the problem', () => {
  const good = encodeKvCommand({ op: 'put', key: 'k', value: new Uint8Array([9]) });
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['empty', new Uint8Array(0), /truncated: version/],
    ['unknown version', Uint8Array.from([3, ...good.subarray(1)]), /unknown command version 3/],
    ['version 0', Uint8Array.from([0, ...good.subarray(1)]), /unknown command version 0/],
    ['version 2 without ifTerm', Uint8Array.from([2, ...good.subarray(1)]), /must carry ifTerm/],
    ['unknown op', Uint8Array.from([1, 3, 0, 0, 1, 0x6b]), /unknown command op 3/],
    ['unknown flag', Uint8Array.from([1, 1, 4, ...good.subarray(3)]), /unknown command flags 0x4/],
    ['ifNoneMatch on a delete', Uint8Array.from([1, 2, 2, 0, 1, 0x6b]), /unknown command flags 0x2/],
    ['trailing byte', Uint8Array.from([...good, 0]), /1 unexpected trailing bytes/],
    ['truncated value', good.subarray(0, good.byteLength - 1), /truncated: value/],
    ['empty key', Uint8Array.from([1, 2, 0, 0, 0]), /must not be empty/],
    ['control character in key', Uint8Array.from([1, 2, 0, 0, 1, 0x0a]), /control characters/],
    ['invalid UTF-8 key', Uint8Array.from([1, 2, 0, 0, 1, 0xff]), /not valid UTF-8/],
    ['ifMatch zero', Uint8Array.from([1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x6b]), /ifMatch must be a log index/],
    ['ifMatch beyond 2^53', Uint8Array.from([1, 2, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 1, 0x6b]), /beyond 2\^53-1/],
  ];
  for (const [name, bytes, message] of cases) {
    assert.throws(() => decodeKvCommand(bytes), (error: unknown) => error instanceof KvCodecError && message.test(error.message), name);
  }
});

test('encode refuses what decode would refuse', () => {
  const bad: KvCommand[] = [
    { op: 'put', key: '', value: new Uint8Array() },
    { op: 'put', key: 'x'.repeat(513), value: new Uint8Array() },
    { op: 'del', key: 'a\u0000' },
    { op: 'del', key: 'k', ifMatch: 0 },
    { op: 'del', key: 'k', ifMatch: 1.5 },
  ];
  for (const cmd of bad) assert.throws(() => encodeKvCommand(cmd), KvCodecError);
});

test('a put with both If-Match and If-None-Match is refused: the two conditions can never both hold', () => {
  const both: KvCommand = { op: 'put', key: 'k', value: new Uint8Array([1]), ifMatch: 3, ifNoneMatch: true };
  assert.throws(() => encodeKvCommand(both), (err: unknown) => err instanceof KvCodecError && /exclude each other/.test(err.message));
  assert.doesNotThrow(() => encodeKvCommand({ op: 'put', key: 'k', value: new Uint8Array([1]), ifMatch: 3 }));
  assert.doesNotThrow(() => encodeKvCommand({ op: 'put', key: 'k', value: new Uint8Array([1]), ifNoneMatch: true }));
});

test('If-Term: version 2 carries it; a command without it is version 1, as before', () => {
  const plain = encodeKvCommand({ op: 'put', key: 'k', value: new Uint8Array([9]), ifMatch: 5 });
  // The version 1 layout, byte for byte: old replicas read every entry that does not use If-Term.
  assert.deepEqual([...plain], [1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 1, 0x6b, 0, 0, 0, 1, 9]);
  const fenced = encodeKvCommand({ op: 'put', key: 'k', value: new Uint8Array([9]), ifMatch: 5, ifTerm: 7 });
  assert.deepEqual([...fenced], [2, 1, 0b101, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 7, 0, 1, 0x6b, 0, 0, 0, 1, 9]);
  assert.deepEqual(decodeKvCommand(fenced), { op: 'put', key: 'k', value: new Uint8Array([9]), ifMatch: 5, ifTerm: 7 });
  const del = encodeKvCommand({ op: 'del', key: 'k', ifTerm: 3 });
  assert.deepEqual([...del], [2, 2, 0b100, 0, 0, 0, 0, 0, 0, 0, 3, 0, 1, 0x6b]);
  assert.deepEqual(decodeKvCommand(del), { op: 'del', key: 'k', ifTerm: 3 });
  assert.throws(() => encodeKvCommand({ op: 'del', key: 'k', ifTerm: 0 }), /ifTerm must be a term/);
  assert.throws(() => decodeKvCommand(Uint8Array.from([1, 2, 0b100, 0, 0, 0, 0, 0, 0, 0, 3, 0, 1, 0x6b])), /unknown command flags 0x4 in version 1/);
});
