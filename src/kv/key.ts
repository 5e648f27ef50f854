// Key rules (SPEC §4) and the key order every replica lists in. Kept apart from the store so the
// API can reject a bad key before anything is proposed, with the same rule the log decoder uses.

export const MAX_KEY_BYTES = 512;

// Unicode general category Cc: C0 controls, DEL and the C1 controls.
const CONTROL_CHARACTER = /\p{Cc}/u;
// In a /u pattern a proper surrogate pair is one code point, so only a lone surrogate matches Cs.
const LONE_SURROGATE = /\p{Cs}/u;

export function utf8Length(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** null when `key` is a valid key, else a message saying what is wrong and what is allowed. */
export function validateKey(key: string): string | null {
  if (typeof key !== 'string') return 'key must be a string';
  if (key.length === 0) return 'key must not be empty (1 to 512 bytes of UTF-8)';
  // A lone surrogate has no UTF-8 form, so it could not be stored byte for byte.
  if (LONE_SURROGATE.test(key)) return 'key is not valid UTF-8 (it contains a lone surrogate)';
  const bytes = utf8Length(key);
  if (bytes > MAX_KEY_BYTES) return `key is ${bytes} bytes of UTF-8; the limit is ${MAX_KEY_BYTES}`;
  const control = CONTROL_CHARACTER.exec(key);
  if (control !== null) {
    const codePoint = control[0].codePointAt(0) ?? 0;
    const hex = codePoint.toString(16).toUpperCase().padStart(4, '0');
    return `key must not contain control characters (found U+${hex} at character ${control.index})`;
  }
  return null;
}

/** Like validateKey, but an empty string is allowed: it is the prefix that matches every key. */
export function validatePrefix(prefix: string): string | null {
  if (prefix === '') return null;
  const problem = validateKey(prefix);
  return problem === null ? null : problem.replace(/^key/, 'prefix');
}

/**
 * Orders well-formed strings as their UTF-8 bytes would order (= code point order). Plain `<` on
 * JS strings compares UTF-16 code units, which puts U+E000..U+FFFF after the astral planes.
 */
export function compareKeys(a: string, b: string): number {
  const shorter = Math.min(a.length, b.length);
  for (let position = 0; position < shorter; position++) {
    const unitA = a.charCodeAt(position);
    const unitB = b.charCodeAt(position);
    if (unitA === unitB) continue;
    if (unitA >= 0xd800 && unitB >= 0xd800) return rankHighUnit(unitA) - rankHighUnit(unitB);
    return unitA - unitB;
  }
  return a.length - b.length;
}

// Moves surrogates (0xD800..0xDFFF) above 0xE000..0xFFFF, so a pair sorts after every BMP unit.
function rankHighUnit(unit: number): number {
  return unit >= 0xe000 ? unit - 0x800 : unit + 0x2000;
}
