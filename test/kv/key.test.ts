import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { compareKeys, MAX_KEY_BYTES, validateKey, validatePrefix } from '../../src/kv/key.ts';

test('validateKey accepts 1 to 512 bytes of UTF-8 without control characters', () => {
  assert.equal(validateKey('a'), null);
  assert.equal(validateKey('app/config.yaml'), null);
  assert.equal(validateKey('ключ 🔑 with spaces'), null);
  assert.equal(validateKey('x'.repeat(MAX_KEY_BYTES)), null);
  assert.equal(validateKey('é'.repeat(256)), null, '256 two-byte characters are exactly 512 bytes');
});

test('validateKey refuses empty, oversized, control characters and lone surrogates, saying why', () => {
  assert.match(validateKey('') ?? '', /empty/);
  assert.match(validateKey('x'.repeat(513)) ?? '', /513 bytes.*limit is 512/);
  assert.match(validateKey('é'.repeat(256) + 'x') ?? '', /513 bytes/);
  assert.match(validateKey('a\nb') ?? '', /control characters \(found U\+000A at character 1\)/);
  assert.match(validateKey('\u0000') ?? '', /U\+0000/);
  assert.match(validateKey('a\u007f') ?? '', /U\+007F/);
  assert.match(validateKey('a\u0085') ?? '', /U\+0085/, 'C1 controls are control characters too');
  assert.match(validateKey('a\ud800') ?? '', /lone surrogate/);
  assert.match(validateKey('\udc00a') ?? '', /lone surrogate/);
});

test('validatePrefix allows the empty prefix and otherwise follows the key rules', () => {
  assert.equal(validatePrefix(''), null);
  assert.equal(validatePrefix('app/'), null);
  assert.match(validatePrefix('a\tb') ?? '', /^prefix must not contain control characters/);
  assert.match(validatePrefix('x'.repeat(513)) ?? '', /^prefix is 513 bytes/);
});

test('compareKeys orders exactly as the UTF-8 bytes do', () => {
  assert.ok(compareKeys('\uffff', '\u{10000}') < 0, 'U+FFFF sorts before U+10000 in UTF-8 (not in UTF-16)');
  assert.ok(compareKeys('\ue000', '\u{1F600}') < 0);
  assert.ok(compareKeys('a', 'ab') < 0);
  assert.equal(compareKeys('ab', 'ab'), 0);
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme' }), fc.string({ unit: 'grapheme' }), (a, b) => {
      const expected = Math.sign(Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
      assert.equal(Math.sign(compareKeys(a, b)), expected);
    }),
    { numRuns: 2000 },
  );
});
