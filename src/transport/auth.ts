// The cluster token check. Both sides are hashed first so timingSafeEqual compares equal lengths and
// the time taken says nothing about the token's length or its matching prefix.
import { createHash, timingSafeEqual } from 'node:crypto';

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export type AuthOutcome = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** token null = insecure mode: every request is accepted (the runtime logs that loudly). */
export function makeTokenCheck(token: string | null): (authorization: string | undefined) => AuthOutcome {
  if (token === null) return () => ({ ok: true });
  if (token.length === 0) throw new Error('the cluster token is empty: set RAFTLET_CLUSTER_TOKEN, or RAFTLET_INSECURE=1 for local experiments');
  const expected = digest(token);
  return (authorization) => {
    if (authorization === undefined || authorization === '') return { ok: false, reason: 'missing Authorization: Bearer <cluster token>' };
    const match = /^Bearer (.+)$/i.exec(authorization);
    if (match === null) return { ok: false, reason: 'the Authorization header is not "Bearer <cluster token>"' };
    if (!timingSafeEqual(digest(match[1]), expected)) return { ok: false, reason: 'wrong cluster token' };
    return { ok: true };
  };
}

export function bearer(token: string | null): Record<string, string> {
  return token === null ? {} : { authorization: `Bearer ${token}` };
}
