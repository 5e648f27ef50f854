// fast-check generators shared by the key-value tests.
import fc from 'fast-check';
import type { KvCommand } from '../../src/kv/types.ts';
import { validateKey } from '../../src/kv/key.ts';

/** Any valid key: printable text of every plane, including astral characters and a leading BOM. */
export const validKey = fc
  .string({ unit: fc.oneof(fc.constantFrom('\ufeff', '\ue000', '\uffff', '/'), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 })), minLength: 1, maxLength: 40 })
  .filter((key) => validateKey(key) === null);

/** A handful of keys, so random command sequences hit the same key often. Chosen to straddle the
 * UTF-16 / UTF-8 order difference (U+FFFF vs U+10000) and prefix relations. */
export const smallKeyPool = ['a', 'ab', 'b', 'app/x', 'app/y', '\uffff', '\u{10000}', 'é'] as const;

export const value = fc.uint8Array({ maxLength: 24 });

export function commandOver(key: fc.Arbitrary<string>, ifMatch: fc.Arbitrary<number>, ifTerm: fc.Arbitrary<number> = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })): fc.Arbitrary<KvCommand> {
  // At most one of If-Match and If-None-Match: together they are refused by the encoder. If-Term
  // (fencing) combines with either.
  const put = fc.oneof(
    fc.record({ op: fc.constant('put' as const), key, value, ifMatch, ifTerm }, { requiredKeys: ['op', 'key', 'value'], noNullPrototype: true }),
    fc.record({ op: fc.constant('put' as const), key, value, ifNoneMatch: fc.constant(true as const), ifTerm }, { requiredKeys: ['op', 'key', 'value', 'ifNoneMatch'], noNullPrototype: true }),
  );
  const del = fc.record({ op: fc.constant('del' as const), key, ifMatch, ifTerm }, { requiredKeys: ['op', 'key'], noNullPrototype: true });
  return fc.oneof(put, del);
}

export const anyCommand = commandOver(validKey, fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }));
