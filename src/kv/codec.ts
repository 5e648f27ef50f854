// The bytes of a KvCommand inside a Raft 'command' entry. Every replica decodes the same bytes, so
// decoding is strict: anything but exactly one well-formed command is refused with KvCodecError.
//
// Version 1 layout (big-endian):
//   u8 version = 1 | u8 op (1 put, 2 del) | u8 flags (bit 0 ifMatch, bit 1 ifNoneMatch; put only)
//   [u64 ifMatch, when flag bit 0] | u16 key length | key (UTF-8)
//   put only: u32 value length | value
// Version 2 adds fencing (If-Term): flag bit 2, and [u64 ifTerm] right after [u64 ifMatch].
// A command without ifTerm is still written as version 1, byte for byte as before, so replicas of
// the previous release read every entry that does not use If-Term. One that does is skipped there
// (see KvStore.apply): run one version across the cluster before using If-Term.
import type { KvCommand } from './types.ts';
import { utf8Length, validateKey } from './key.ts';
import { ByteReader, ByteWriter } from './reader.ts';

/** The newest version this build writes and reads; it reads every older one too. */
export const KV_COMMAND_VERSION = 2;
const VERSION_WITHOUT_IF_TERM = 1;

const OP_PUT = 1;
const OP_DEL = 2;
const FLAG_IF_MATCH = 0b01;
const FLAG_IF_NONE_MATCH = 0b10;
const FLAG_IF_TERM = 0b100;
const MAX_VALUE_LENGTH = 0xffff_ffff;

export class KvCodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KvCodecError';
  }
}

const keyDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function encodeKvCommand(cmd: KvCommand): Uint8Array {
  const keyProblem = validateKey(cmd.key);
  if (keyProblem !== null) throw new KvCodecError(`cannot encode command: ${keyProblem}`);
  if (cmd.ifMatch !== undefined) checkModIndex(cmd.ifMatch, 'cannot encode command: ifMatch');
  if (cmd.ifTerm !== undefined) checkTerm(cmd.ifTerm, 'cannot encode command: ifTerm');
  const keyLength = utf8Length(cmd.key);
  const writer = new ByteWriter(commandLength(cmd, keyLength));
  writer.u8(cmd.ifTerm === undefined ? VERSION_WITHOUT_IF_TERM : KV_COMMAND_VERSION);
  const termFlag = cmd.ifTerm !== undefined ? FLAG_IF_TERM : 0;
  switch (cmd.op) {
    case 'put':
      if (cmd.value.byteLength > MAX_VALUE_LENGTH) throw new KvCodecError('cannot encode command: value is over 4 GiB');
      const problem = unproposable(cmd);
      if (problem !== null) throw new KvCodecError(`cannot encode command: ${problem}`);
      writer.u8(OP_PUT);
      writer.u8((cmd.ifMatch !== undefined ? FLAG_IF_MATCH : 0) | (cmd.ifNoneMatch === true ? FLAG_IF_NONE_MATCH : 0) | termFlag);
      writeKey(writer, cmd.ifMatch, cmd.ifTerm, cmd.key, keyLength);
      writer.u32(cmd.value.byteLength);
      writer.raw(cmd.value);
      break;
    case 'del':
      writer.u8(OP_DEL);
      writer.u8((cmd.ifMatch !== undefined ? FLAG_IF_MATCH : 0) | termFlag);
      writeKey(writer, cmd.ifMatch, cmd.ifTerm, cmd.key, keyLength);
      break;
    default: {
      const unknown: never = cmd;
      throw new KvCodecError(`cannot encode command: unknown op in ${JSON.stringify(unknown)}`);
    }
  }
  return writer.bytes;
}

/**
 * Why a command that decodes cannot be proposed, or null. "Exists with this modIndex" and "does not
 * exist" together can never hold: such a put is refused rather than committed as an entry that
 * always fails (the client API answers 400 for it as well). decodeKvCommand reads it, as it must
 * read whatever a log holds; encodeKvCommand refuses it, and so does a leader given a command's
 * bytes as they came from a follower.
 */
export function unproposable(cmd: KvCommand): string | null {
  return cmd.op === 'put' && cmd.ifMatch !== undefined && cmd.ifNoneMatch === true ? 'ifMatch and ifNoneMatch exclude each other' : null;
}

function writeKey(writer: ByteWriter, ifMatch: number | undefined, ifTerm: number | undefined, key: string, keyLength: number): void {
  if (ifMatch !== undefined) writer.u64(ifMatch);
  if (ifTerm !== undefined) writer.u64(ifTerm);
  writer.u16(keyLength);
  writer.utf8(key, keyLength);
}

/**
 * Throws KvCodecError unless `data` is exactly one valid command.
 *
 * The value of a put is a copy when `data` is part of a larger buffer (a peer's frame, a WAL frame),
 * so that a value the store keeps for a long time never keeps the rest of that buffer alive. When
 * `data` is a buffer of its own, as encodeKvCommand makes it, the value is a view into it: the
 * bytes of a log entry are never changed once made, and the view spares every write a second
 * ArrayBuffer (~350 bytes with V8's and malloc's bookkeeping, for a 100-byte value) that would
 * live as long as the watch history keeps the change.
 */
export function decodeKvCommand(data: Uint8Array): KvCommand {
  const reader = new ByteReader(data, 'command', (message) => new KvCodecError(message));
  const version = reader.u8('version');
  if (version < VERSION_WITHOUT_IF_TERM || version > KV_COMMAND_VERSION) {
    throw new KvCodecError(`unknown command version ${version} (this build reads versions ${VERSION_WITHOUT_IF_TERM} to ${KV_COMMAND_VERSION})`);
  }
  const op = reader.u8('op');
  if (op !== OP_PUT && op !== OP_DEL) throw new KvCodecError(`unknown command op ${op}`);
  const flags = reader.u8('flags');
  const termFlag = version === VERSION_WITHOUT_IF_TERM ? 0 : FLAG_IF_TERM;
  const allowedFlags = (op === OP_PUT ? FLAG_IF_MATCH | FLAG_IF_NONE_MATCH : FLAG_IF_MATCH) | termFlag;
  if ((flags & ~allowedFlags) !== 0) throw new KvCodecError(`unknown command flags 0x${flags.toString(16)} in version ${version}`);
  // Version 2 exists for If-Term: without it the command is written as version 1.
  if (version !== VERSION_WITHOUT_IF_TERM && (flags & FLAG_IF_TERM) === 0) {
    throw new KvCodecError(`a version ${version} command must carry ifTerm`);
  }
  const ifMatch = (flags & FLAG_IF_MATCH) !== 0 ? reader.u64('ifMatch') : undefined;
  if (ifMatch !== undefined) checkModIndex(ifMatch, 'ifMatch');
  const ifTerm = (flags & FLAG_IF_TERM) !== 0 ? reader.u64('ifTerm') : undefined;
  if (ifTerm !== undefined) checkTerm(ifTerm, 'ifTerm');
  const keyBytes = reader.bytes(reader.u16('key length'), 'key');
  let key: string;
  try {
    key = keyDecoder.decode(keyBytes);
  } catch {
    throw new KvCodecError('key is not valid UTF-8');
  }
  const keyProblem = validateKey(key);
  if (keyProblem !== null) throw new KvCodecError(keyProblem);
  let cmd: KvCommand;
  if (op === OP_PUT) {
    const valueBytes = reader.bytes(reader.u32('value length'), 'value');
    const value = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? valueBytes : valueBytes.slice();
    cmd = {
      op: 'put',
      key,
      value,
      ...(ifMatch !== undefined ? { ifMatch } : {}),
      ...((flags & FLAG_IF_NONE_MATCH) !== 0 ? { ifNoneMatch: true } : {}),
      ...(ifTerm !== undefined ? { ifTerm } : {}),
    };
  } else {
    cmd = { op: 'del', key, ...(ifMatch !== undefined ? { ifMatch } : {}), ...(ifTerm !== undefined ? { ifTerm } : {}) };
  }
  reader.end();
  return cmd;
}

/** The encoded size without encoding: lets the API refuse an oversized command early. */
export function encodedKvCommandLength(cmd: KvCommand): number {
  return commandLength(cmd, utf8Length(cmd.key));
}

function commandLength(cmd: KvCommand, keyLength: number): number {
  const fixed = 3 + (cmd.ifMatch !== undefined ? 8 : 0) + (cmd.ifTerm !== undefined ? 8 : 0) + 2 + keyLength;
  return cmd.op === 'put' ? fixed + 4 + cmd.value.byteLength : fixed;
}

function checkTerm(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new KvCodecError(`${what} must be a term (an integer from 1 to 2^53-1), got ${value}`);
  }
}

function checkModIndex(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new KvCodecError(`${what} must be a log index (an integer from 1 to 2^53-1), got ${value}`);
  }
}
