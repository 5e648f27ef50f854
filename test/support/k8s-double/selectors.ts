// Label selectors as the API server parses `?labelSelector=`: equality (`k=v`, `k==v`, `k!=v`),
// sets (`k in (a,b)`, `k notin (a,b)`) and existence (`k`, `!k`), comma-separated, all ANDed.

type Requirement =
  | { readonly op: 'eq' | 'neq'; readonly key: string; readonly value: string }
  | { readonly op: 'in' | 'notin'; readonly key: string; readonly values: readonly string[] }
  | { readonly op: 'exists' | 'notexists'; readonly key: string };

export type LabelSelector = readonly Requirement[];

/** Throws an Error with the API server's wording on a malformed selector. */
export function parseLabelSelector(text: string): LabelSelector {
  const parts = splitTopLevel(text.trim());
  return parts.map((raw) => parseRequirement(raw.trim()));
}

export function matchesSelector(selector: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  return selector.every((req) => {
    const has = Object.hasOwn(labels, req.key);
    const value = labels[req.key];
    switch (req.op) {
      case 'eq':
        return has && value === req.value;
      case 'neq':
        return !has || value !== req.value;
      case 'in':
        return has && value !== undefined && req.values.includes(value);
      case 'notin':
        return !has || value === undefined || !req.values.includes(value);
      case 'exists':
        return has;
      case 'notexists':
        return !has;
      default: {
        const never: never = req;
        return never;
      }
    }
  });
}

function splitTopLevel(text: string): string[] {
  if (text === '') return [];
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '(') depth += 1;
    if (ch === ')') depth -= 1;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts;
}

const KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

function parseRequirement(raw: string): Requirement {
  const set = /^(\S+)\s+(in|notin)\s+\((.*)\)$/.exec(raw);
  if (set !== null) {
    const key = checkKey(set[1] ?? '');
    const values = (set[3] ?? '').split(',').map((v) => v.trim());
    return { op: set[2] === 'in' ? 'in' : 'notin', key, values };
  }
  const eq = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(raw);
  if (eq !== null) {
    return { op: eq[2] === '!=' ? 'neq' : 'eq', key: checkKey(eq[1] ?? ''), value: eq[3] ?? '' };
  }
  if (raw.startsWith('!')) return { op: 'notexists', key: checkKey(raw.slice(1).trim()) };
  return { op: 'exists', key: checkKey(raw) };
}

function checkKey(key: string): string {
  if (!KEY.test(key)) throw new Error(`unable to parse requirement: invalid label key "${key}"`);
  return key;
}
