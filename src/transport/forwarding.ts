// JSON bodies of the forwarding routes (propose, read-index, transfer, status). These carry one
// client request each, far fewer than Raft messages, so they stay JSON for easy inspection with curl;
// binary values travel as base64. Every decoder validates strictly and throws only WireError.
import { Buffer } from 'node:buffer';
import type { NodeStatus } from '../api/ops.ts';
import type { KvCommand, KvResult } from '../kv/types.ts';
import type { Member, NodeId } from '../raft/types.ts';
import { WIRE_LIMITS } from './codec.ts';
import type { ErrorBody } from './protocol.ts';
import { checkBool, checkString, checkUint, describe, FieldPath, WireError } from './wire.ts';

/** SPEC section 4: keys are 1 to 512 bytes of UTF-8. */
export const MAX_KEY_BYTES = 512;
// Messages are cut to MAX_MESSAGE_CHARS when sent; UTF-8 may take 3 bytes per UTF-16 unit.
const MAX_MESSAGE_CHARS = 4096;
const MAX_MESSAGE_BYTES = 3 * MAX_MESSAGE_CHARS;
const MAX_CODE_CHARS = 64;

type Json = Record<string, unknown>;

function expectObject(value: unknown, path: FieldPath, leaf: string, required: readonly string[], optional: readonly string[] = []): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw path.error(leaf, `expected an object, got ${describe(value)}`);
  }
  const object = value as Json;
  for (const key of Object.keys(object)) {
    if (!required.includes(key) && !optional.includes(key)) throw path.error(leaf === '' ? key : `${leaf}.${key}`, 'unknown field');
  }
  for (const key of required) {
    if (!Object.hasOwn(object, key)) throw path.error(leaf === '' ? key : `${leaf}.${key}`, 'missing');
  }
  return object;
}

function checkId(value: unknown, path: FieldPath, leaf: string): NodeId {
  return checkString(value, path, leaf, 1, WIRE_LIMITS.idBytes);
}

function checkIdOrNull(value: unknown, path: FieldPath, leaf: string): NodeId | null {
  return value === null ? null : checkId(value, path, leaf);
}

/** A positive whole number of milliseconds, at most maxMs. */
function checkTimeout(value: unknown, path: FieldPath, maxMs: number): number {
  const ms = checkUint(value, path, 'timeoutMs');
  if (ms < 1 || ms > maxMs) throw path.error('timeoutMs', `expected 1 to ${maxMs} ms, got ${ms}`);
  return ms;
}

// Canonical base64 (with padding): Buffer.from(s, 'base64') would silently skip bad characters.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

function fromBase64(value: unknown, path: FieldPath, leaf: string): Uint8Array {
  if (typeof value !== 'string') throw path.error(leaf, `expected a base64 string, got ${describe(value)}`);
  if (!BASE64.test(value)) throw path.error(leaf, 'is not valid base64');
  const buf = Buffer.from(value, 'base64');
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

// ---- propose --------------------------------------------------------------------------------------

export interface ProposeRequest {
  readonly command: KvCommand;
  readonly timeoutMs: number;
}

function commandToJson(cmd: KvCommand, path: FieldPath): Json {
  if (typeof cmd !== 'object' || cmd === null) throw path.error('', `expected a command object, got ${describe(cmd)}`);
  const out: Json = { op: cmd.op, key: checkString(cmd.key, path, 'key', 1, MAX_KEY_BYTES) };
  switch (cmd.op) {
    case 'put':
      if (!(cmd.value instanceof Uint8Array)) throw path.error('value', `expected a Uint8Array, got ${describe(cmd.value)}`);
      out.value = base64(cmd.value);
      if (cmd.ifMatch !== undefined) out.ifMatch = checkUint(cmd.ifMatch, path, 'ifMatch');
      if (cmd.ifNoneMatch !== undefined) out.ifNoneMatch = checkBool(cmd.ifNoneMatch, path, 'ifNoneMatch');
      if (cmd.ifTerm !== undefined) out.ifTerm = checkUint(cmd.ifTerm, path, 'ifTerm');
      return out;
    case 'del':
      if (cmd.ifMatch !== undefined) out.ifMatch = checkUint(cmd.ifMatch, path, 'ifMatch');
      if (cmd.ifTerm !== undefined) out.ifTerm = checkUint(cmd.ifTerm, path, 'ifTerm');
      return out;
    default: {
      const unreachable: never = cmd;
      throw path.error('op', `unknown operation ${describe((unreachable as { op: unknown }).op)}`);
    }
  }
}

function commandFromJson(value: unknown, path: FieldPath): KvCommand {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw path.error('', `expected an object, got ${describe(value)}`);
  }
  const op = (value as Json).op;
  if (op === 'put') {
    const o = expectObject(value, path, '', ['op', 'key', 'value'], ['ifMatch', 'ifNoneMatch', 'ifTerm']);
    const key = checkString(o.key, path, 'key', 1, MAX_KEY_BYTES);
    const cmd: { op: 'put'; key: string; value: Uint8Array; ifMatch?: number; ifNoneMatch?: boolean; ifTerm?: number } = {
      op: 'put',
      key,
      value: fromBase64(o.value, path, 'value'),
    };
    if (o.ifMatch !== undefined) cmd.ifMatch = checkUint(o.ifMatch, path, 'ifMatch');
    if (o.ifNoneMatch !== undefined) cmd.ifNoneMatch = checkBool(o.ifNoneMatch, path, 'ifNoneMatch');
    if (o.ifTerm !== undefined) cmd.ifTerm = checkUint(o.ifTerm, path, 'ifTerm');
    return cmd;
  }
  if (op === 'del') {
    const o = expectObject(value, path, '', ['op', 'key'], ['ifMatch', 'ifTerm']);
    const cmd: { op: 'del'; key: string; ifMatch?: number; ifTerm?: number } = { op: 'del', key: checkString(o.key, path, 'key', 1, MAX_KEY_BYTES) };
    if (o.ifMatch !== undefined) cmd.ifMatch = checkUint(o.ifMatch, path, 'ifMatch');
    if (o.ifTerm !== undefined) cmd.ifTerm = checkUint(o.ifTerm, path, 'ifTerm');
    return cmd;
  }
  throw path.error('op', `expected "put" or "del", got ${describe(op)}`);
}

export function encodeProposeRequest(request: ProposeRequest): string {
  return proposeBody(encodeCommand(request.command), request.timeoutMs);
}

/** A command as JSON text, validated: encode once, then wrap it per attempt with proposeBody. */
export function encodeCommand(cmd: KvCommand): string {
  const path = new FieldPath('propose');
  path.enter('command');
  return JSON.stringify(commandToJson(cmd, path));
}

export function proposeBody(commandJson: string, timeoutMs: number): string {
  return `{"command":${commandJson},"timeoutMs":${checkUint(timeoutMs, new FieldPath('propose'), 'timeoutMs')}}`;
}

export function decodeProposeRequest(value: unknown, maxTimeoutMs: number): ProposeRequest {
  const path = new FieldPath('propose');
  const o = expectObject(value, path, '', ['command', 'timeoutMs']);
  path.enter('command');
  const command = commandFromJson(o.command, path);
  path.leave();
  return { command, timeoutMs: checkTimeout(o.timeoutMs, path, maxTimeoutMs) };
}

export function encodeKvResult(result: KvResult): string {
  const path = new FieldPath('result');
  if (result.ok) {
    const out: Json = { ok: true, index: checkUint(result.index, path, 'index'), term: checkUint(result.term, path, 'term') };
    if (result.deleted !== undefined) out.deleted = checkBool(result.deleted, path, 'deleted');
    return JSON.stringify(out);
  }
  if (result.code !== 'precondition_failed') throw path.error('code', `unknown result code ${describe(result.code)}`);
  return JSON.stringify({
    ok: false,
    code: result.code,
    index: checkUint(result.index, path, 'index'),
    term: checkUint(result.term, path, 'term'),
    message: checkString(tidyMessage(result.message), path, 'message', 0, MAX_MESSAGE_BYTES),
  });
}

export function decodeKvResult(value: unknown): KvResult {
  const path = new FieldPath('result');
  if (typeof value === 'object' && value !== null && (value as Json).ok === false) {
    const o = expectObject(value, path, '', ['ok', 'code', 'index', 'term', 'message']);
    if (o.code !== 'precondition_failed') throw path.error('code', `expected "precondition_failed", got ${describe(o.code)}`);
    return {
      ok: false,
      code: 'precondition_failed',
      index: checkUint(o.index, path, 'index'),
      term: checkUint(o.term, path, 'term'),
      message: checkString(o.message, path, 'message', 0, MAX_MESSAGE_BYTES),
    };
  }
  const o = expectObject(value, path, '', ['ok', 'index', 'term'], ['deleted']);
  if (o.ok !== true) throw path.error('ok', `expected a boolean, got ${describe(o.ok)}`);
  const result: { ok: true; index: number; term: number; deleted?: boolean } = {
    ok: true,
    index: checkUint(o.index, path, 'index'),
    term: checkUint(o.term, path, 'term'),
  };
  if (o.deleted !== undefined) result.deleted = checkBool(o.deleted, path, 'deleted');
  return result;
}

// ---- read index ------------------------------------------------------------------------------------

export function encodeReadIndexRequest(timeoutMs: number): string {
  return JSON.stringify({ timeoutMs: checkUint(timeoutMs, new FieldPath('readIndex'), 'timeoutMs') });
}

export function decodeReadIndexRequest(value: unknown, maxTimeoutMs: number): { timeoutMs: number } {
  const path = new FieldPath('readIndex');
  const o = expectObject(value, path, '', ['timeoutMs']);
  return { timeoutMs: checkTimeout(o.timeoutMs, path, maxTimeoutMs) };
}

/** The leader's read index and the term of its entry there: a follower holding that entry may
 * commit up to it at once (Log Matching), instead of waiting for the next heartbeat. */
export interface ReadIndexResult {
  readonly index: number;
  readonly term: number;
}

export function encodeReadIndexResult(result: ReadIndexResult): string {
  const path = new FieldPath('readIndex');
  return JSON.stringify({ index: checkUint(result.index, path, 'index'), term: checkUint(result.term, path, 'term') });
}

export function decodeReadIndexResult(value: unknown): ReadIndexResult {
  const path = new FieldPath('readIndex');
  const o = expectObject(value, path, '', ['index', 'term']);
  return { index: checkUint(o.index, path, 'index'), term: checkUint(o.term, path, 'term') };
}

// ---- leadership transfer -----------------------------------------------------------------------------

export interface TransferRequest {
  readonly to: NodeId | null;
  readonly timeoutMs: number;
}

export interface TransferResult {
  readonly leader: NodeId;
  readonly term: number;
}

export function encodeTransferRequest(request: TransferRequest): string {
  const path = new FieldPath('transfer');
  return JSON.stringify({ to: checkIdOrNull(request.to, path, 'to'), timeoutMs: checkUint(request.timeoutMs, path, 'timeoutMs') });
}

export function decodeTransferRequest(value: unknown, maxTimeoutMs: number): TransferRequest {
  const path = new FieldPath('transfer');
  const o = expectObject(value, path, '', ['to', 'timeoutMs']);
  return { to: checkIdOrNull(o.to, path, 'to'), timeoutMs: checkTimeout(o.timeoutMs, path, maxTimeoutMs) };
}

export function encodeTransferResult(result: TransferResult): string {
  const path = new FieldPath('transfer');
  return JSON.stringify({ leader: checkId(result.leader, path, 'leader'), term: checkUint(result.term, path, 'term') });
}

export function decodeTransferResult(value: unknown): TransferResult {
  const path = new FieldPath('transfer');
  const o = expectObject(value, path, '', ['leader', 'term']);
  return { leader: checkId(o.leader, path, 'leader'), term: checkUint(o.term, path, 'term') };
}

// ---- status ----------------------------------------------------------------------------------------

const STATUS_ROLES: ReadonlySet<unknown> = new Set<NodeStatus['role']>(['leader', 'follower', 'candidate']);

function checkMembers(value: unknown, path: FieldPath): Member[] {
  if (!Array.isArray(value)) throw path.error('members', `expected an array, got ${describe(value)}`);
  if (value.length > WIRE_LIMITS.members) throw path.error('members', `more than ${WIRE_LIMITS.members} members`);
  path.enter('members');
  const seen = new Set<string>();
  const members = value.map((item: unknown, i): Member => {
    path.enter(i);
    const o = expectObject(item, path, '', ['id', 'url', 'voter']);
    const id = checkId(o.id, path, 'id');
    if (seen.has(id)) throw path.error('id', `duplicate member id ${JSON.stringify(id)}`);
    seen.add(id);
    const member = { id, url: checkString(o.url, path, 'url', 0, WIRE_LIMITS.urlBytes), voter: checkBool(o.voter, path, 'voter') };
    path.leave();
    return member;
  });
  path.leave();
  return members;
}

function checkStatus(value: unknown, path: FieldPath): NodeStatus {
  const o = expectObject(value, path, '', ['id', 'role', 'term', 'leader', 'commitIndex', 'appliedIndex', 'lastLogIndex', 'members']);
  if (!STATUS_ROLES.has(o.role)) throw path.error('role', `expected "leader", "follower" or "candidate", got ${describe(o.role)}`);
  return {
    id: checkId(o.id, path, 'id'),
    role: o.role as NodeStatus['role'],
    term: checkUint(o.term, path, 'term'),
    leader: checkIdOrNull(o.leader, path, 'leader'),
    commitIndex: checkUint(o.commitIndex, path, 'commitIndex'),
    appliedIndex: checkUint(o.appliedIndex, path, 'appliedIndex'),
    lastLogIndex: checkUint(o.lastLogIndex, path, 'lastLogIndex'),
    members: checkMembers(o.members, path),
  };
}

/** Validates on the way out too, so a bad status is caught on the node that produced it. */
export function encodeStatus(status: NodeStatus): string {
  return JSON.stringify(checkStatus(status, new FieldPath('status')));
}

export function decodeStatus(value: unknown): NodeStatus {
  return checkStatus(value, new FieldPath('status'));
}

// ---- errors ----------------------------------------------------------------------------------------

/** Cut to a bounded length and made well-formed, so the peer's strict decoder accepts it. */
function tidyMessage(message: unknown): string {
  const text = typeof message === 'string' ? message : String(message);
  const cut = text.length > MAX_MESSAGE_CHARS ? `${text.slice(0, MAX_MESSAGE_CHARS - 1)}…` : text;
  return cut.replace(/\p{Cs}/gu, '\uFFFD');
}

export function encodeError(code: string, message: string): string {
  const body: ErrorBody = { error: { code, message: tidyMessage(message) } };
  return JSON.stringify(body);
}

export function decodeError(value: unknown): ErrorBody['error'] {
  const path = new FieldPath('');
  const o = expectObject(value, path, '', ['error']);
  path.enter('error');
  const e = expectObject(o.error, path, '', ['code', 'message']);
  return { code: checkString(e.code, path, 'code', 1, MAX_CODE_CHARS), message: checkString(e.message, path, 'message', 0, MAX_MESSAGE_BYTES) };
}

/** Parses JSON text, reporting bad syntax as a WireError. */
export function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new WireError(what, `is not valid JSON (${error instanceof Error ? error.message : String(error)})`);
  }
}
