// StatefulSet pods are named <set>-<ordinal>. Ordering member ids by ordinal (numerically, so
// raftlet-10 comes after raftlet-9) gives every pod the same order whatever it saw first.

const ORDINAL = /^(.*)-(\d+)$/;

export interface Ordinal {
  readonly prefix: string;
  readonly ordinal: number;
}

/** `raftlet-2` → { prefix: 'raftlet', ordinal: 2 }; null for a name without a numeric suffix. */
export function ordinalOf(id: string): Ordinal | null {
  const match = ORDINAL.exec(id);
  if (match === null) return null;
  const digits = match[2] ?? '';
  // `x-01` is not a StatefulSet name; treating it as ordinal 1 would let two ids share a slot.
  if (digits.length > 1 && digits.startsWith('0')) return null;
  return { prefix: match[1] ?? '', ordinal: Number(digits) };
}

/** Ordinal names first, by ordinal then prefix; other names after them, lexically. */
export function compareMemberIds(a: string, b: string): number {
  const oa = ordinalOf(a);
  const ob = ordinalOf(b);
  if (oa !== null && ob !== null) {
    if (oa.ordinal !== ob.ordinal) return oa.ordinal - ob.ordinal;
    return lexical(oa.prefix, ob.prefix);
  }
  if (oa !== null) return -1;
  if (ob !== null) return 1;
  return lexical(a, b);
}

function lexical(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
