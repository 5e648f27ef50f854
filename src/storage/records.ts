// What the write-ahead log records, and its binary form. A record is [u32 length][u8 type][payload];
// records travel in frames (frame.ts), and the frame's checksum covers them, so records carry none.
//
// The log's shape is rebuilt from four record types:
// - entry: a log entry; an entry whose index is <= the last one replaces it and cuts everything after
//   (the conflicting suffix a follower must discard, §5.3), so no separate truncate record is needed;
// - hardState: term, vote, commit index; the last one wins;
// - install: a snapshot received from a leader replaced the whole log (§7): empty after its index;
// - compact: a snapshot this node took covers the log up to its index; later entries stay.
import type { Entry, HardState, Member } from '../raft/types.ts';
import { ByteReader, ByteWriter, DecodeError } from './bytes.ts';

export type WalRecord =
  | { readonly kind: 'entry'; readonly entry: Entry }
  | { readonly kind: 'hardState'; readonly hardState: HardState }
  | { readonly kind: 'install'; readonly index: number; readonly term: number }
  | { readonly kind: 'compact'; readonly index: number; readonly term: number };

const RECORD_ENTRY = 1;
const RECORD_HARD_STATE = 2;
const RECORD_INSTALL = 3;
const RECORD_COMPACT = 4;

const ENTRY_NOOP = 0;
const ENTRY_COMMAND = 1;
const ENTRY_CONFIG = 2;

export function writeMembers(out: ByteWriter, members: readonly Member[]): void {
  out.u32(members.length);
  for (const member of members) {
    out.str(member.id);
    out.str(member.url);
    out.u8(member.voter ? 1 : 0);
  }
}

export function readMembers(input: ByteReader): Member[] {
  const count = input.u32('member count');
  if (count > input.remaining) throw new DecodeError(input.offset - 4, `member count ${count} is impossible here`);
  const members: Member[] = [];
  for (let n = 0; n < count; n++) {
    const id = input.str('member id');
    const url = input.str('member url');
    const voterAt = input.offset;
    const voter = input.u8('member voter flag');
    if (voter > 1) throw new DecodeError(voterAt, `member voter flag is ${voter}, expected 0 or 1`);
    members.push({ id, url, voter: voter === 1 });
  }
  return members;
}

/** Appends one record; the caller has already checked that numbers are sane. */
export function writeRecord(out: ByteWriter, record: WalRecord): void {
  const lengthAt = out.skip(4);
  switch (record.kind) {
    case 'entry': {
      const entry = record.entry;
      out.u8(RECORD_ENTRY);
      out.u64(entry.term);
      out.u64(entry.index);
      switch (entry.kind) {
        case 'noop':
          out.u8(ENTRY_NOOP);
          break;
        case 'command':
          out.u8(ENTRY_COMMAND);
          out.bytes(entry.data);
          break;
        case 'config':
          out.u8(ENTRY_CONFIG);
          writeMembers(out, entry.members);
          break;
        default: {
          const never: never = entry;
          throw new Error(`unknown entry kind ${String((never as { kind: unknown }).kind)}`);
        }
      }
      break;
    }
    case 'hardState': {
      const state = record.hardState;
      out.u8(RECORD_HARD_STATE);
      out.u64(state.term);
      out.u64(state.commitIndex);
      if (state.votedFor === null) {
        out.u8(0);
      } else {
        out.u8(1);
        out.str(state.votedFor);
      }
      break;
    }
    case 'install':
    case 'compact':
      out.u8(record.kind === 'install' ? RECORD_INSTALL : RECORD_COMPACT);
      out.u64(record.index);
      out.u64(record.term);
      break;
    default: {
      const never: never = record;
      throw new Error(`unknown record kind ${String((never as { kind: unknown }).kind)}`);
    }
  }
  out.patchU32(lengthAt, out.length - lengthAt - 4);
}

/** A decoded record and where it started inside the frame body. */
export interface PlacedRecord {
  readonly record: WalRecord;
  readonly at: number;
}

/** Decodes every record of a frame body (buf[start, end)); throws DecodeError on any malformed byte. */
export function readRecords(buf: Buffer, start: number, end: number): PlacedRecord[] {
  const records: PlacedRecord[] = [];
  const frame = new ByteReader(buf, start, end);
  while (frame.remaining > 0) {
    const at = frame.offset;
    const length = frame.u32('record length');
    if (length === 0 || length > frame.remaining) {
      throw new DecodeError(at, `record length ${length} does not fit the ${frame.remaining} bytes left in its frame`);
    }
    const input = new ByteReader(buf, at + 4, at + 4 + length);
    records.push({ record: readRecordBody(input, at), at });
    if (input.remaining !== 0) throw new DecodeError(input.offset, `${input.remaining} unexpected bytes after a record`);
    frame.skip(length);
  }
  return records;
}

function readRecordBody(input: ByteReader, at: number): WalRecord {
  const type = input.u8('record type');
  switch (type) {
    case RECORD_ENTRY: {
      const term = input.u64('entry term');
      const index = input.u64('entry index');
      const kindAt = input.offset;
      const kind = input.u8('entry kind');
      switch (kind) {
        case ENTRY_NOOP:
          return { kind: 'entry', entry: { kind: 'noop', term, index } };
        case ENTRY_COMMAND:
          return { kind: 'entry', entry: { kind: 'command', term, index, data: input.bytes('command data') } };
        case ENTRY_CONFIG:
          return { kind: 'entry', entry: { kind: 'config', term, index, members: readMembers(input) } };
        default:
          throw new DecodeError(kindAt, `unknown entry kind ${kind}`);
      }
    }
    case RECORD_HARD_STATE: {
      const term = input.u64('hard state term');
      const commitIndex = input.u64('hard state commit index');
      const flagAt = input.offset;
      const hasVote = input.u8('vote flag');
      if (hasVote > 1) throw new DecodeError(flagAt, `vote flag is ${hasVote}, expected 0 or 1`);
      const votedFor = hasVote === 1 ? input.str('votedFor') : null;
      return { kind: 'hardState', hardState: { term, votedFor, commitIndex } };
    }
    case RECORD_INSTALL:
    case RECORD_COMPACT: {
      const index = input.u64('snapshot index');
      const term = input.u64('snapshot term');
      return { kind: type === RECORD_INSTALL ? 'install' : 'compact', index, term };
    }
    default:
      throw new DecodeError(at + 4, `unknown record type ${type}`);
  }
}
