// Turning a peer's HTTP reply or a failed request into an error the runtime can act on. The
// distinction that matters for a forwarded write: refused before it was sent (certainly not
// proposed, safe to retry) versus lost after it was sent (outcome unknown).
import type { IncomingHttpHeaders } from 'node:http';
import { ClientError } from '../api/ops.ts';
import { decodeError, parseJson } from './forwarding.ts';
import { isClientErrorCode, MemberIdentityError, MisdirectedError, PeerAuthError, PROTOCOL_HEADER, ProtocolMismatchError } from './protocol.ts';

// Failures that happen before a single byte of the request reached the peer.
const NOT_SENT_CODES: ReadonlySet<unknown> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** An error raised before the request could reach the peer (no connection, no TLS session). */
export class NotSentError extends Error {
  readonly code: string;
  readonly notSent = true;
  constructor(message: string, code: string, cause?: unknown) {
    super(message, { cause });
    this.name = 'NotSentError';
    this.code = code;
  }
}

export function failedBeforeSending(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  if ((error as { notSent?: unknown }).notSent === true) return true;
  if (NOT_SENT_CODES.has((error as { code?: unknown }).code)) return true;
  // Node's happy-eyeballs connect reports every address it tried in one AggregateError.
  if (error instanceof AggregateError) return error.errors.length > 0 && error.errors.every(failedBeforeSending);
  return false;
}

/** Nothing listens at the peer's address: its process is gone (not a slow or cut-off network). */
export function isRefused(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const cause = (error as { cause?: unknown }).cause;
  if ((error as { code?: unknown }).code === 'ECONNREFUSED') return true;
  if (error instanceof AggregateError) return error.errors.length > 0 && error.errors.every(isRefused);
  return cause !== undefined && cause !== error && isRefused(cause);
}

export function isTimeout(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { name, code } = error as { name?: unknown; code?: unknown };
  return name === 'TimeoutError' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT';
}

export function describeFailure(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    const { code, message } = error as { code?: unknown; message?: unknown };
    if (error instanceof AggregateError && error.errors.length > 0) return describeFailure(error.errors[0]);
    if (typeof code === 'string' && typeof message === 'string') return message.includes(code) ? message : `${code}: ${message}`;
    if (typeof message === 'string' && message !== '') return message;
  }
  return String(error);
}

function headerNumber(headers: IncomingHttpHeaders, name: string): number | null {
  const raw = headers[name];
  const value = typeof raw === 'string' ? Number(raw) : NaN;
  return Number.isSafeInteger(value) ? value : null;
}

export interface ErrorReply {
  /** The peer's error code and message, when its body was a well-formed error. */
  readonly code: string | null;
  readonly message: string;
}

export function readErrorReply(status: number, text: string): ErrorReply {
  try {
    const error = decodeError(parseJson(text, 'error reply'));
    return { code: error.code, message: error.message };
  } catch {
    const snippet = text.length > 200 ? `${text.slice(0, 200)}…` : text;
    return { code: null, message: `HTTP ${status}${snippet === '' ? '' : `: ${snippet}`}` };
  }
}

/** The transport's own refusals, which mean the peer will refuse every request until an operator
 * acts: wrong token, other version, wrong node, a certificate that does not name this member. null for anything else. */
export function refusalError(peer: string, status: number, headers: IncomingHttpHeaders, reply: ErrorReply): ClientError | null {
  if (status === 401 || reply.code === 'unauthorized') return new PeerAuthError(peer, reply.message);
  if (status === 426 || reply.code === 'protocol_mismatch') return new ProtocolMismatchError(peer, headerNumber(headers, PROTOCOL_HEADER), reply.message);
  if (reply.code === 'no_route') return new ProtocolMismatchError(peer, headerNumber(headers, PROTOCOL_HEADER), reply.message);
  if (status === 421 || reply.code === 'misdirected') return new MisdirectedError(peer, reply.message);
  if (status === 403 || reply.code === 'forbidden') return new MemberIdentityError(peer, reply.message);
  return null;
}

/** The handler's own ClientError, rebuilt with the same code and message. */
export function handlerError(reply: ErrorReply): ClientError | null {
  return reply.code !== null && isClientErrorCode(reply.code) ? new ClientError(reply.code, reply.message) : null;
}
