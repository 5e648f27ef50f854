// The file `raftlet snapshot save` writes and `raftlet snapshot restore` reads: one line of JSON
// (readable with `head -1`) that says what the snapshot is, then the key-value state machine's own
// snapshot bytes (src/kv/snapshot.ts, which carry a CRC of their own):
//
//   {"format":"raftlet-snapshot","version":1,"index":I,"term":T,"keys":K,"bytes":N,
//    "sha256":"<hex of the N bytes>","clusterId":"...","members":[...],"node":"...","createdAt":"..."}\n
//   <N bytes: the key-value snapshot at log index I>
//
// Decoding trusts nothing: the header's fields, the length, the SHA-256, and that the key-value
// bytes decode and were taken at the header's index.
import { createHash } from 'node:crypto';
import { KvStore } from '../kv/index.ts';
import type { Member } from '../raft/types.ts';

export const BACKUP_FORMAT = 'raftlet-snapshot';
export const BACKUP_VERSION = 1;
export const BACKUP_CONTENT_TYPE = 'application/vnd.raftlet.snapshot';
const MAX_HEADER_BYTES = 1 << 20;

export interface BackupHeader {
  readonly format: typeof BACKUP_FORMAT;
  readonly version: number;
  /** The log index the state is at; every write committed before the save started is included. */
  readonly index: number;
  /** The term of the entry at `index`. */
  readonly term: number;
  readonly keys: number;
  readonly bytes: number;
  readonly sha256: string;
  /** The cluster it came from (null for data older than cluster ids). Informational: a restore makes a new one. */
  readonly clusterId: string | null;
  /** That cluster's configuration when the snapshot was taken. Informational: a restore names its own. */
  readonly members: readonly Member[];
  /** The member that served it, and when. */
  readonly node: string;
  readonly createdAt: string;
}

export class BackupError extends Error {
  constructor(message: string) {
    super(`not a usable raftlet snapshot: ${message}`);
    this.name = 'BackupError';
  }
}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export interface BackupInput {
  readonly index: number;
  readonly term: number;
  readonly keys: number;
  readonly clusterId: string | null;
  readonly members: readonly Member[];
  readonly node: string;
  readonly kv: Uint8Array;
}

export function encodeBackup(input: BackupInput, now: Date = new Date()): Uint8Array {
  const header: BackupHeader = {
    format: BACKUP_FORMAT,
    version: BACKUP_VERSION,
    index: input.index,
    term: input.term,
    keys: input.keys,
    bytes: input.kv.byteLength,
    sha256: sha256Hex(input.kv),
    clusterId: input.clusterId,
    members: input.members.map((m) => ({ id: m.id, url: m.url, voter: m.voter })),
    node: input.node,
    createdAt: now.toISOString(),
  };
  const line = Buffer.from(`${JSON.stringify(header)}\n`, 'utf8');
  const out = new Uint8Array(line.byteLength + input.kv.byteLength);
  out.set(line, 0);
  out.set(input.kv, line.byteLength);
  return out;
}

export interface DecodedBackup {
  readonly header: BackupHeader;
  /** The key-value snapshot bytes (a view into the input). */
  readonly kv: Uint8Array;
}

/** Checks everything; throws BackupError naming the first problem. */
export function decodeBackup(data: Uint8Array): DecodedBackup {
  const newline = data.subarray(0, MAX_HEADER_BYTES).indexOf(0x0a);
  if (newline < 0) throw new BackupError('no header line (is this a snapshot file?)');
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(data.subarray(0, newline)).toString('utf8'));
  } catch {
    throw new BackupError('the header line is not JSON (is this a snapshot file?)');
  }
  const header = checkHeader(parsed);
  const kv = data.subarray(newline + 1);
  if (kv.byteLength !== header.bytes) {
    throw new BackupError(`the header promises ${header.bytes} bytes of state, the file holds ${kv.byteLength} (truncated or appended to)`);
  }
  const digest = sha256Hex(kv);
  if (digest !== header.sha256) throw new BackupError(`SHA-256 mismatch: the header says ${header.sha256}, the state hashes to ${digest}`);
  const check = new KvStore();
  try {
    check.restore(kv, header.index);
  } catch (err) {
    throw new BackupError(err instanceof Error ? err.message : String(err));
  }
  if (check.size !== header.keys) throw new BackupError(`the header says ${header.keys} keys, the state holds ${check.size}`);
  return { header, kv };
}

function checkHeader(value: unknown): BackupHeader {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new BackupError('the header is not a JSON object');
  const h = value as Record<string, unknown>;
  if (h.format !== BACKUP_FORMAT) throw new BackupError(`format is ${JSON.stringify(h.format)}, not "${BACKUP_FORMAT}"`);
  if (h.version !== BACKUP_VERSION) throw new BackupError(`version ${String(h.version)}; this raftlet reads version ${BACKUP_VERSION}`);
  const count = (name: string, min: number): number => {
    const v = h[name];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new BackupError(`header field ${name} must be a whole number >= ${min}`);
    return v;
  };
  const text = (name: string): string => {
    const v = h[name];
    if (typeof v !== 'string') throw new BackupError(`header field ${name} must be a string`);
    return v;
  };
  const sha256 = text('sha256');
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new BackupError('header field sha256 must be 64 hex digits');
  const clusterId = h.clusterId;
  if (clusterId !== null && typeof clusterId !== 'string') throw new BackupError('header field clusterId must be a string or null');
  if (!Array.isArray(h.members)) throw new BackupError('header field members must be a list');
  const members = h.members.map((m: unknown): Member => {
    const r = (typeof m === 'object' && m !== null ? m : {}) as Record<string, unknown>;
    if (typeof r.id !== 'string' || typeof r.url !== 'string' || typeof r.voter !== 'boolean') throw new BackupError('a member in the header lacks id, url or voter');
    return { id: r.id, url: r.url, voter: r.voter };
  });
  return {
    format: BACKUP_FORMAT,
    version: BACKUP_VERSION,
    index: count('index', 0),
    term: count('term', 0),
    keys: count('keys', 0),
    bytes: count('bytes', 0),
    sha256,
    clusterId,
    members,
    node: text('node'),
    createdAt: text('createdAt'),
  };
}
