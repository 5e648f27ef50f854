// Running one forwarded call on the node that received it, for the one-shot routes and the stream
// alike: validate the request completely, then run the handler with a deadline, and turn its result
// or error into a status and a JSON body. A handler that overruns its deadline is answered with a
// timeout anyway, so a caller never waits on a stuck handler.
import { ClientError, type NodeStatus } from '../api/ops.ts';
import { decodeKvCommand } from '../kv/codec.ts';
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
import { steadyNow } from '../util/steady-clock.ts';

/** What the runtime does with each validated request. deadlineMs is absolute, on this process's
 * steadyNow() clock: the caller sends a duration, so clocks need not agree between nodes. */
export interface PeerHandlers {
  /** Raft messages, in the order the peer sent them. */
  onMessages(messages: Message[]): void | Promise<void>;
  /** Replicate cmd (this node should be the leader); reject with ClientError('no_leader') if it
   * certainly was not proposed, ClientError('timeout') if its outcome is unknown. encoded: the
   * bytes cmd was strictly decoded from (a propose-bytes call), in a buffer of their own, to
   * propose as they are instead of encoding cmd again. */
  onPropose(cmd: KvCommand, deadlineMs: number, encoded?: Uint8Array): Promise<KvResult>;
  /** ReadIndex (thesis §6.4.1): confirm leadership with a heartbeat round and return the commit
   * index the follower must have applied before it serves a linearizable read. */
  onReadIndex(deadlineMs: number): Promise<{ index: number; term: number }>;
  /** Leadership transfer; to null = the most up-to-date follower. */
  onTransfer(to: NodeId | null, deadlineMs: number): Promise<{ leader: NodeId; term: number }>;
  onStatus(): NodeStatus | Promise<NodeStatus>;
  /** A member opened a stream to this node, so its process is up (it may have just restarted);
   * what it returns is called when that stream ends. */
  onPeerStream?(sender: NodeId): (() => void) | void;
  /** A member stream that accepts fences opened; fence() refuses the propose calls the stream has
   * not handled yet, until the member acknowledges (stream-frames.ts). What it returns is called
   * when that stream ends. */
  onCallStream?(fence: () => void): () => void;
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

/** Arranges for fire() to run afterMs from now unless the returned function is called first. */
export type OverrunTimer = (afterMs: number, fire: () => void) => () => void;

const ownTimer: OverrunTimer = (afterMs, fire) => {
  const timer = setTimeout(fire, afterMs);
  return () => clearTimeout(timer);
};

/** A validated call ready to run (run never rejects; overrun: how to time a handler that overruns
 * its deadline, a timer of its own by default), or why the request is malformed (a 400). */
export type PreparedCall = { readonly run: (overrun?: OverrunTimer) => Promise<CallAnswer> } | { readonly malformed: string };

/** Validates a call's JSON (already parsed; undefined for status, which has no body). */
export function prepareCall(kind: CallKind, json: unknown, handlers: PeerHandlers, maxTimeoutMs: number): PreparedCall {
  try {
    switch (kind) {
      case 'propose': {
        const request = decodeProposeRequest(json, maxTimeoutMs);
        const deadlineMs = steadyNow() + request.timeoutMs;
        return { run: (overrun) => answer(deadlineMs, () => handlers.onPropose(request.command, deadlineMs), encodeKvResult, overrun) };
      }
      case 'readIndex': {
        const request = decodeReadIndexRequest(json, maxTimeoutMs);
        const deadlineMs = steadyNow() + request.timeoutMs;
        return { run: (overrun) => answer(deadlineMs, () => handlers.onReadIndex(deadlineMs), encodeReadIndexResult, overrun) };
      }
      case 'transfer': {
        const request = decodeTransferRequest(json, maxTimeoutMs);
        const deadlineMs = steadyNow() + request.timeoutMs;
        return { run: (overrun) => answer(deadlineMs, () => handlers.onTransfer(request.to, deadlineMs), encodeTransferResult, overrun) };
      }
      case 'status':
        return { run: (overrun) => answer(steadyNow() + maxTimeoutMs, async () => handlers.onStatus(), encodeStatus, overrun) };
      default: {
        const unreachable: never = kind;
        return { malformed: `unknown call ${String(unreachable)}` };
      }
    }
  } catch (error) {
    return { malformed: `malformed request: ${errorText(error)}` };
  }
}

/**
 * A propose call whose body is the encoded command (stream-frames.ts, propose-bytes): the command is
 * decoded as strictly as a log entry is, so bad bytes are a 400 that proposes nothing.
 */
export function prepareProposeBytes(timeoutMs: number, command: Uint8Array, handlers: PeerHandlers, maxTimeoutMs: number): PreparedCall {
  if (!(timeoutMs >= 1 && timeoutMs <= maxTimeoutMs)) return { malformed: `malformed request: propose.timeoutMs: expected 1 to ${maxTimeoutMs} ms, got ${timeoutMs}` };
  // A copy of its own: the frame's buffer holds other frames, which the log entry must not keep
  // alive; and decoded from a whole buffer, the command's value is a view into it, not a second copy.
  const own = command.slice();
  let cmd: KvCommand;
  try {
    cmd = decodeKvCommand(own);
  } catch (error) {
    return { malformed: `malformed request: propose.command: ${errorText(error)}` };
  }
  const deadlineMs = steadyNow() + timeoutMs;
  return { run: (overrun) => answer(deadlineMs, () => handlers.onPropose(cmd, deadlineMs, own), encodeKvResult, overrun) };
}

function answer<T>(deadlineMs: number, run: () => Promise<T>, encode: (value: T) => string, overrun: OverrunTimer = ownTimer): Promise<CallAnswer> {
  return new Promise<CallAnswer>((resolve) => {
    let settled = false;
    const cancel = overrun(Math.max(0, deadlineMs - steadyNow()) + HANDLER_GRACE_MS, () => {
      if (settled) return;
      settled = true;
      // The reply goes out without the handler's result; its eventual outcome has nobody to go to
      // and is dropped below (never left as an unhandled rejection).
      resolve(errorAnswer('timeout', 'the node did not finish the request by its deadline; its outcome is unknown'));
    });
    let work: Promise<T>;
    try {
      work = run();
    } catch (error) {
      work = Promise.reject(error);
    }
    work.then(
      (value) => {
        if (settled) return;
        settled = true;
        cancel();
        try {
          resolve({ status: 200, body: encode(value) });
        } catch (error) {
          resolve(errorAnswer('internal', `the node produced an invalid reply: ${errorText(error)}`));
        }
      },
      (error: unknown) => {
        if (settled) return;
        settled = true;
        cancel();
        resolve(failureAnswer(error));
      },
    );
  });
}

export function failureAnswer(error: unknown): CallAnswer {
  if (error instanceof ClientError) return errorAnswer(error.code, error.message);
  return errorAnswer('internal', errorText(error));
}
