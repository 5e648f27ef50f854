// One error shape for every answer that is not a success: {"error":{"code","message"}} (SPEC §4).
import type { ServerResponse } from 'node:http';
import { ClientError, clientErrorStatus } from './ops.ts';

export type ApiErrorCode =
  | ClientError['code']
  | 'method_not_allowed'
  | 'internal_error'
  /** 410: a watch's index is older than the changes this node still keeps: re-read, then watch. */
  | 'history_compacted'
  | 'too_far_behind'
  /** 429: RAFTLET_WATCH_MAX_WATCHERS reached. */
  | 'too_many_watchers';

/** Thrown by handlers; the error middleware turns it into the JSON answer. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: ApiErrorCode;
  /** Extra headers for the answer (Allow on 405, Connection: close on 413). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, code: ApiErrorCode, message: string, headers: Readonly<Record<string, string>> = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

export function badRequest(message: string): ApiError {
  return new ApiError(400, 'bad_request', message);
}

/** The HTTP status for each error code the runtime can reject with. */
export const statusOf = clientErrorStatus;

/** null when `error` is not one the API knows how to answer (a bug: answered 500 and logged). */
export function toApiError(error: unknown): ApiError | null {
  if (error instanceof ApiError) return error;
  if (error instanceof ClientError) return new ApiError(statusOf(error.code), error.code, error.message);
  return null;
}

export function sendError(res: ServerResponse, error: ApiError): void {
  sendJson(res, error.status, { error: { code: error.code, message: error.message } }, error.headers);
}

/**
 * A JSON answer with the same status line, headers and body Express's res.json gives (the write
 * path answers without Express, so both must agree byte for byte). A HEAD answer's body is left
 * out by node:http itself.
 */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers?: Readonly<Record<string, string>>): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  if (headers !== undefined) for (const name of Object.keys(headers)) res.setHeader(name, headers[name]);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}

