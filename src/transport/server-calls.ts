// Running one forwarded call on the node that received it, for the one-shot routes and the stream
// alike: validate the request completely, then run the handler with a deadline, and turn its result
// or error into a status and a JSON body. A handler that overruns its deadline is answered with a
// timeout anyway, so a caller never waits on a stuck handler.
import { ClientError, type NodeStatus } from '../api/ops.ts';
import type { KvCommand, KvResult } from '../kv/types.ts';
import type { Message, NodeId } from '../raft/types.ts';
import {
  decodeProposeRequest,
  decodeReadIndexRequest,
  decodeTransferRequest,
  encodeError,
  encodeKvResult,
  encodeReadIndexResult,
  encodeStatus,
  encodeTransferResult,
} from './forwarding.ts';
import { decodeMessages } from './codec.ts';
import { statusForCode } from './protocol.ts';
import type { ErrorCode } from './protocol.ts';
import type { CallKind } from './stream-frames.ts';

/** What the runtime does with each validated request. deadlineMs is absolute, on this process's
 * Date.now() clock: the caller sends a duration, so clocks need not agree between nodes. */
export interface PeerHandlers {
  /** Raft messages, in the order the peer sent them. */
  onMessages(messages: Message[]): void | Promise<void>;
  /** Replicate cmd (this node should be the leader); reject with ClientError('no_leader') if it
   * certainly was not proposed, ClientError('timeout') if its outcome is unknown. */
  onPropose(cmd: KvCommand, deadlineMs: number): Promise<KvResult>;
  /** ReadIndex (thesis §6.4.1): confirm leadership with a heartbeat round and return the commit
   * index the follower must have applied before it serves a linearizable read. */
  onReadIndex(deadlineMs: number): Promise<{ index: number; term: number }>;
  /** Leadership transfer; to null = the most up-to-date follower. */
  onTransfer(to: NodeId | null, deadlineMs: number): Promise<{ leader: NodeId; term: number }>;
  onStatus(): NodeStatus | Promise<NodeStatus>;
}

export interface CallAnswer {
  readonly status: number;
  readonly body: string;
}

// A handler that ignores its deadline is answered for anyway, this long after it.
const HANDLER_GRACE_MS = 1000;

export function errorAnswer(code: ErrorCode, message: string): CallAnswer {
  return { status: statusForCode(code), body: encodeError(code, message) };
}

/**
 * Raft messages from a request or stream frame, all addressed to this node (when it knows its id), or
 * why they are refused: malformed (400), or meant for another node (421: a stale address).
 */
export function receivedMessages(body: Buffer, nodeId: NodeId | undefined): { ok: true; messages: Message[] } | { ok: false; code: ErrorCode; message: string } {
  let messages: Message[];
  try {
    messages = decodeMessages(body);
  } catch (error) {
    return { ok: false, code: 'bad_request', message: `malformed Raft messages: ${errorText(error)}` };
  }
  const stray = nodeId === undefined ? undefined : messages.find((m) => m.to !== nodeId);
  if (stray !== undefined) return { ok: false, code: 'misdirected', message: `message for ${JSON.stringify(stray.to)} reached node ${JSON.stringify(nodeId)}` };
  return { ok: true, messages };
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A validated call ready to run (run never rejects), or why the request is malformed (a 400). */
export type PreparedCall = { readonly run: () => Promise<CallAnswer> } | { readonly malformed: string };

/** Validates a call's JSON (already parsed; undefined for status, which has no body). */
export function prepareCall(kind: CallKind, json: unknown, handlers: PeerHandlers, maxTimeoutMs: number): PreparedCall {
  try {
    switch (kind) {
      case 'propose': {
        const request = decodeProposeRequest(json, maxTimeoutMs);
        const deadlineMs = Date.now() + request.timeoutMs;
        return { run: () => answer(deadlineMs, () => handlers.onPropose(request.command, deadlineMs), encodeKvResult) };
      }
      case 'readIndex': {
        const request = decodeReadIndexRequest(json, maxTimeoutMs);
        const deadlineMs = Date.now() + request.timeoutMs;
        return { run: () => answer(deadlineMs, () => handlers.onReadIndex(deadlineMs), encodeReadIndexResult) };
      }
      case 'transfer': {
        const request = decodeTransferRequest(json, maxTimeoutMs);
        const deadlineMs = Date.now() + request.timeoutMs;
        return { run: () => answer(deadlineMs, () => handlers.onTransfer(request.to, deadlineMs), encodeTransferResult) };
      }
      case 'status':
        return { run: () => answer(Date.now() + maxTimeoutMs, async () => handlers.onStatus(), encodeStatus) };
      default: {
        const unreachable: never = kind;
        return { malformed: `unknown call ${String(unreachable)}` };
      }
    }
  } catch (error) {
    return { malformed: `malformed request: ${errorText(error)}` };
  }
}

async function answer<T>(deadlineMs: number, run: () => Promise<T>, encode: (value: T) => string): Promise<CallAnswer> {
  let timer: NodeJS.Timeout | undefined;
  const overrun = new Promise<'overrun'>((resolve) => {
    timer = setTimeout(() => resolve('overrun'), Math.max(0, deadlineMs - Date.now()) + HANDLER_GRACE_MS);
  });
  const work = Promise.resolve().then(run);
  try {
    const outcome = await Promise.race([work.then((value) => ({ value })), overrun]);
    if (outcome === 'overrun') {
      // The reply goes out without the handler's result; its eventual outcome has nobody to go
      // to, so it is deliberately dropped here rather than left as an unhandled rejection.
      work.catch(() => undefined);
      return errorAnswer('timeout', 'the node did not finish the request by its deadline; its outcome is unknown');
    }
    try {
      return { status: 200, body: encode(outcome.value) };
    } catch (error) {
      return errorAnswer('internal', `the node produced an invalid reply: ${errorText(error)}`);
    }
  } catch (error) {
    return failureAnswer(error);
  } finally {
    clearTimeout(timer);
  }
}

export function failureAnswer(error: unknown): CallAnswer {
  if (error instanceof ClientError) return errorAnswer(error.code, error.message);
  return errorAnswer('internal', errorText(error));
}
