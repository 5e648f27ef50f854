// The cluster token check. Both sides are hashed first so timingSafeEqual compares equal lengths and
// the time taken says nothing about a token's length or its matching prefix. A member accepts every
// token of its set (rotation: the current one and the next, issue 11) and sends the first.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { TokenSource } from './tokens.ts';
import { staticTokens } from './tokens.ts';

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export type AuthOutcome = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** A token, a token set, or null = insecure mode (every request is accepted; the runtime logs
 * that loudly). */
export type TokenOption = string | TokenSource | null;

export function tokenSource(option: TokenOption): TokenSource | null {
  if (option === null) return null;
  if (typeof option === 'string') {
    if (option.length === 0) throw new Error('the cluster token is empty: set RAFTLET_CLUSTER_TOKEN, or RAFTLET_INSECURE=1 for local experiments');
    return staticTokens([option]);
  }
  if (option.current().length === 0) throw new Error('the cluster token set is empty: set RAFTLET_CLUSTER_TOKEN, or RAFTLET_INSECURE=1 for local experiments');
  return option;
}

export function makeTokenCheck(option: TokenOption): (authorization: string | undefined) => AuthOutcome {
  const source = tokenSource(option);
  if (source === null) return () => ({ ok: true });
  // Digests are recomputed only when the set changes (a token file was rewritten).
  let seen: readonly string[] | null = null;
  let expected: Buffer[] = [];
  return (authorization) => {
    const tokens = source.current();
    if (tokens !== seen) {
      seen = tokens;
      expected = tokens.map(digest);
    }
    if (authorization === undefined || authorization === '') return { ok: false, reason: 'missing Authorization: Bearer <cluster token>' };
    const match = /^Bearer (.+)$/i.exec(authorization);
    if (match === null) return { ok: false, reason: 'the Authorization header is not "Bearer <cluster token>"' };
    const given = digest(match[1]);
    // Compare against every token, without stopping early, so the time does not tell which matched.
    let ok = false;
    for (const want of expected) ok = timingSafeEqual(given, want) || ok;
    return ok ? { ok: true } : { ok: false, reason: 'wrong cluster token' };
  };
}

export function bearer(token: string | null): Record<string, string> {
  return token === null ? {} : { authorization: `Bearer ${token}` };
}
