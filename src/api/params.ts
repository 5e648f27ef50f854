// Parsing of what a client sends besides the body: the key in the path, query parameters and the
// conditional headers. Each parser throws a 400 ApiError that says what to send instead, so bad
// input is refused before anything is proposed.
import type { IncomingHttpHeaders } from 'node:http';
import { validateKey, validatePrefix } from '../kv/key.ts';
import { badRequest } from './errors.ts';

export const KV_PATH_PREFIX = '/v1/kv/';

/** The key from a raw (still percent-encoded) path below /v1/kv/. */
export function parseKeyPath(rawKey: string): string {
  let key: string;
  try {
    key = decodeURIComponent(rawKey);
  } catch {
    throw badRequest('the key in the path is not valid percent-encoded UTF-8');
  }
  if (key === '') throw badRequest('key must not be empty (1 to 512 bytes of UTF-8); to list keys use GET /v1/kv?prefix=P');
  const problem = validateKey(key);
  if (problem !== null) throw badRequest(problem);
  return key;
}

/** Query values as Express's simple parser gives them: a repeated name becomes an array. */
export type Query = Record<string, unknown>;

function single(query: Query, name: string): string | undefined {
  const raw = query[name];
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string') throw badRequest(`query parameter ${name} must be given once`);
  return raw;
}

/** A decimal integer in [min, max], or `fallback` when absent. */
export function integerParam(query: Query, name: string, min: number, max: number, fallback: number): number;
export function integerParam(query: Query, name: string, min: number, max: number): number | undefined;
export function integerParam(query: Query, name: string, min: number, max: number, fallback?: number): number | undefined {
  const raw = single(query, name);
  if (raw === undefined) return fallback;
  const value = /^[0-9]{1,16}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw badRequest(`query parameter ${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

export function oneOfParam<T extends string>(query: Query, name: string, allowed: readonly T[], fallback: T): T {
  const raw = single(query, name);
  if (raw === undefined) return fallback;
  const match = allowed.find((candidate) => candidate === raw);
  if (match === undefined) {
    throw badRequest(`query parameter ${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(raw)}`);
  }
  return match;
}

export function stringParam(query: Query, name: string): string | undefined {
  return single(query, name);
}

export function prefixParam(query: Query): string {
  const prefix = single(query, 'prefix') ?? '';
  const problem = validatePrefix(prefix);
  if (problem !== null) throw badRequest(problem);
  return prefix;
}

/** true/false or 1/0; undefined when absent. */
export function booleanParam(query: Query, name: string): boolean | undefined {
  const raw = single(query, name);
  if (raw === undefined) return undefined;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw badRequest(`query parameter ${name} must be true or false, got ${JSON.stringify(raw)}`);
}

export type Consistency = 'linearizable' | 'stale';

export function consistencyParam(query: Query): Consistency {
  return oneOfParam<Consistency>(query, 'consistency', ['linearizable', 'stale'], 'linearizable');
}

export interface Conditions {
  /** The modIndex the key must have now (If-Match). */
  readonly ifMatch?: number;
  /** The key must not exist now (If-None-Match: *). */
  readonly ifNoneMatch?: true;
}

const STRONG_ETAG = /^"([0-9]{1,16})"$/;

/**
 * If-Match: "<modIndex>" (exactly one strong ETag, as GET and PUT answer it) and, for PUT only,
 * If-None-Match: *. Everything else (lists, weak or unquoted tags, `If-Match: *`, both headers at
 * once) is refused rather than guessed at, since a misread condition would silently overwrite data.
 */
export function parseConditions(headers: IncomingHttpHeaders, allowIfNoneMatch: boolean): Conditions {
  const ifMatchHeader = headers['if-match'];
  const ifNoneMatchHeader = headers['if-none-match'];
  let ifMatch: number | undefined;
  if (ifMatchHeader !== undefined) {
    const match = STRONG_ETAG.exec(ifMatchHeader.trim());
    const value = match === null ? Number.NaN : Number(match[1]);
    if (!Number.isSafeInteger(value) || value < 1) {
      throw badRequest(`If-Match must be one quoted modIndex as the ETag header gives it, such as "42"; got ${JSON.stringify(ifMatchHeader)}`);
    }
    ifMatch = value;
  }
  if (ifNoneMatchHeader !== undefined) {
    if (!allowIfNoneMatch) throw badRequest('If-None-Match is only supported on PUT (If-None-Match: * = create only)');
    if (ifNoneMatchHeader.trim() !== '*') {
      throw badRequest(`If-None-Match supports only * (create only); got ${JSON.stringify(ifNoneMatchHeader)}`);
    }
    if (ifMatch !== undefined) throw badRequest('If-Match and If-None-Match cannot be combined: no key can satisfy both');
    return { ifNoneMatch: true };
  }
  return ifMatch === undefined ? {} : { ifMatch };
}

/**
 * If-Term: <term> (fencing, SPEC §4): the write applies only if the leader that appends it leads in
 * that term; the entry's term decides, on every replica alike, so an old leader's late write is 412.
 */
export function parseIfTerm(headers: IncomingHttpHeaders): number | undefined {
  const raw = headers['if-term'];
  if (raw === undefined) return undefined;
  const text = (Array.isArray(raw) ? raw.join(',') : raw).trim();
  const value = /^[0-9]{1,16}$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw badRequest(`If-Term must be one term, a positive integer such as the "term" GET /v1/leadership answers; got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** Last-Event-ID as an EventSource sends it on reconnecting: the index of the last event it got. */
export function parseLastEventId(headers: IncomingHttpHeaders): number | undefined {
  const raw = headers['last-event-id'];
  if (raw === undefined || Array.isArray(raw)) return undefined;
  const text = raw.trim();
  const value = /^[0-9]{1,16}$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value)) throw badRequest(`Last-Event-ID must be the index of an event (an integer); got ${JSON.stringify(raw)}`);
  return value;
}
