// The replicated key-value state machine. Deterministic: its state is a function of the entries
// applied so far and nothing else (no clock, no randomness, no I/O), so every replica that applies
// the same log holds the same data and answers a compare-and-set the same way.
import type { ChangeFeed, KvCommand, KvItem, KvResult, KvView } from './types.ts';
import { ChangeHistory, DEFAULT_HISTORY, type ChangeHistoryOptions } from './history.ts';
import type { Entry } from '../raft/types.ts';
import { decodeKvCommand, KvCodecError } from './codec.ts';
import { compareKeys, utf8Length } from './key.ts';
import {
  decodeSnapshot,
  encodeSnapshot,
  KvSnapshotError,
  SNAPSHOT_HEADER_BYTES,
  SNAPSHOT_ITEM_OVERHEAD_BYTES,
  SNAPSHOT_TRAILER_BYTES,
  type SnapshotItem,
} from './snapshot.ts';

interface StoredValue {
  readonly value: Uint8Array;
  /** The log index of the entry that last created or changed the key (SPEC §4). */
  readonly modIndex: number;
  readonly keyBytes: number;
}

/** The runtime applied entries out of order or twice: a bug in the caller, not bad data. */
export class KvApplyOrderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KvApplyOrderError';
  }
}

const keyEncoder = new TextEncoder();

export class KvStore implements KvView {
  #values = new Map<string, StoredValue>();
  /** Every key, in compareKeys (= UTF-8 byte) order, for list(). */
  #sortedKeys: string[] = [];
  #appliedIndex = 0;
  #sizeBytes = SNAPSHOT_HEADER_BYTES + SNAPSHOT_TRAILER_BYTES;
  #skippedCommands = 0;
  readonly #history: ChangeHistory;

  constructor(options: { readonly history?: ChangeHistoryOptions } = {}) {
    this.#history = new ChangeHistory(options.history ?? DEFAULT_HISTORY);
  }

  /** The recent changes, for watches (SPEC §4). */
  get changes(): ChangeFeed {
    return this.#history;
  }

  get appliedIndex(): number {
    return this.#appliedIndex;
  }

  /** Number of keys. */
  get size(): number {
    return this.#values.size;
  }

  /** The exact length snapshot() would return now: a fair measure of when to compact the log. */
  get sizeBytes(): number {
    return this.#sizeBytes;
  }

  /** Command entries that could not be decoded and were skipped (see apply). */
  get skippedCommands(): number {
    return this.#skippedCommands;
  }

  /**
   * Applies the 'command' entry at `index`. An entry whose bytes are not a valid KvCommand (damage
   * the log's checksums missed, or a command written by a newer version) is skipped: the state stays
   * as it was, appliedIndex still advances, the skip is counted in skippedCommands, and the result is
   * a failure whose message names the entry. Every replica of the same version decodes the same
   * bytes the same way, so all of them skip it alike and stay identical.
   */
  apply(index: number, term: number, data: Uint8Array): KvResult {
    let cmd: KvCommand;
    try {
      cmd = decodeKvCommand(data);
    } catch (error) {
      if (!(error instanceof KvCodecError)) throw error;
      this.#checkNext(index);
      this.#appliedIndex = index;
      this.#history.advanceTo(index);
      this.#skippedCommands++;
      return {
        ok: false,
        code: 'precondition_failed',
        index,
        term,
        message: `log entry ${index} is not a valid key-value command and was skipped, changing nothing: ${error.message}`,
      };
    }
    return this.applyCommand(index, term, cmd);
  }

  /** apply() for a command that is already decoded. */
  applyCommand(index: number, term: number, cmd: KvCommand): KvResult {
    this.#checkNext(index);
    this.#appliedIndex = index;
    this.#history.advanceTo(index);
    // The entry's term is the term of the leader that appended it: the same on every replica.
    if (cmd.ifTerm !== undefined && cmd.ifTerm !== term) {
      return {
        ok: false,
        code: 'precondition_failed',
        index,
        term,
        message: `If-Term ${cmd.ifTerm} failed: the write was appended in term ${term} (leadership changed); it was not applied`,
      };
    }
    const current = this.#values.get(cmd.key);
    if (cmd.ifMatch !== undefined && current?.modIndex !== cmd.ifMatch) {
      const found = current === undefined ? 'the key does not exist' : `its modIndex is ${current.modIndex}`;
      return { ok: false, code: 'precondition_failed', index, term, message: `If-Match ${cmd.ifMatch} failed: ${found}` };
    }
    switch (cmd.op) {
      case 'put':
        if (cmd.ifNoneMatch === true && current !== undefined) {
          return {
            ok: false,
            code: 'precondition_failed',
            index,
            term,
            message: `If-None-Match * failed: the key exists with modIndex ${current.modIndex}`,
          };
        }
        this.#set(cmd.key, cmd.value, index, current);
        this.#history.record({ index, term, key: cmd.key, op: 'put', value: cmd.value });
        return { ok: true, index, term };
      case 'del':
        if (current === undefined) return { ok: true, index, term, deleted: false };
        this.#delete(cmd.key, current);
        this.#history.record({ index, term, key: cmd.key, op: 'del', value: null });
        return { ok: true, index, term, deleted: true };
      default: {
        const unknown: never = cmd;
        throw new Error(`unknown key-value op in ${JSON.stringify(unknown)}`);
      }
    }
  }

  /** For 'noop' and 'config' entries: they take a log index but do not touch the data. */
  advance(index: number): void {
    this.#checkNext(index);
    this.#appliedIndex = index;
    this.#history.advanceTo(index);
  }

  /** Applies any committed entry: a command's result, or null for noop and config entries. */
  applyEntry(entry: Entry): KvResult | null {
    switch (entry.kind) {
      case 'command':
        return this.apply(entry.index, entry.term, entry.data);
      case 'noop':
      case 'config':
        this.advance(entry.index);
        return null;
      default: {
        const unknown: never = entry;
        throw new Error(`unknown entry kind in ${JSON.stringify(unknown)}`);
      }
    }
  }

  /** The stored value is shared, not copied: callers must not modify it. */
  get(key: string): KvItem | undefined {
    const stored = this.#values.get(key);
    return stored === undefined ? undefined : { key, value: stored.value, modIndex: stored.modIndex };
  }

  list(prefix: string, limit: number): KvItem[] {
    const items: KvItem[] = [];
    for (let position = this.#lowerBound(prefix); position < this.#sortedKeys.length && items.length < limit; position++) {
      const key = this.#sortedKeys[position];
      // Keys are well-formed, so a string prefix is exactly a UTF-8 byte prefix.
      if (!key.startsWith(prefix)) break;
      const stored = this.#values.get(key);
      if (stored !== undefined) items.push({ key, value: stored.value, modIndex: stored.modIndex });
    }
    return items;
  }

  /** The whole state at appliedIndex (format in snapshot.ts). */
  snapshot(): Uint8Array {
    const values = this.#values;
    function* items(keys: readonly string[]): Generator<SnapshotItem> {
      for (const key of keys) {
        const stored = values.get(key);
        if (stored !== undefined) yield { key, keyBytes: keyEncoder.encode(key), value: stored.value, modIndex: stored.modIndex };
      }
    }
    return encodeSnapshot(this.#appliedIndex, items(this.#sortedKeys), this.#sortedKeys.length, this.#sizeBytes);
  }

  /**
   * Replaces the whole state with a snapshot taken at log index `index`. Throws KvSnapshotError,
   * leaving the current state untouched, if the bytes are damaged or were taken at another index.
   */
  restore(data: Uint8Array, index: number): void {
    const decoded = decodeSnapshot(data);
    if (decoded.appliedIndex !== index) {
      throw new KvSnapshotError(`it was taken at log index ${decoded.appliedIndex}, but is being installed as index ${index}`);
    }
    const values = new Map<string, StoredValue>();
    let sizeBytes = SNAPSHOT_HEADER_BYTES + SNAPSHOT_TRAILER_BYTES;
    for (const item of decoded.items) {
      const keyBytes = utf8Length(item.key);
      values.set(item.key, { value: item.value, modIndex: item.modIndex, keyBytes });
      sizeBytes += SNAPSHOT_ITEM_OVERHEAD_BYTES + keyBytes + item.value.byteLength;
    }
    this.#values = values;
    this.#sortedKeys = decoded.items.map((item) => item.key);
    this.#appliedIndex = decoded.appliedIndex;
    this.#sizeBytes = sizeBytes;
    this.#history.reset(decoded.appliedIndex);
  }

  #checkNext(index: number): void {
    if (index !== this.#appliedIndex + 1) {
      throw new KvApplyOrderError(
        `entry ${index} applied after entry ${this.#appliedIndex}: committed entries must be applied once each, in log order ` +
          '(call advance() for noop and config entries)',
      );
    }
  }

  #set(key: string, value: Uint8Array, modIndex: number, current: StoredValue | undefined): void {
    if (current === undefined) {
      const keyBytes = utf8Length(key);
      this.#sortedKeys.splice(this.#lowerBound(key), 0, key);
      this.#values.set(key, { value, modIndex, keyBytes });
      this.#sizeBytes += SNAPSHOT_ITEM_OVERHEAD_BYTES + keyBytes + value.byteLength;
    } else {
      this.#values.set(key, { value, modIndex, keyBytes: current.keyBytes });
      this.#sizeBytes += value.byteLength - current.value.byteLength;
    }
  }

  #delete(key: string, current: StoredValue): void {
    this.#values.delete(key);
    this.#sortedKeys.splice(this.#lowerBound(key), 1);
    this.#sizeBytes -= SNAPSHOT_ITEM_OVERHEAD_BYTES + current.keyBytes + current.value.byteLength;
  }

  /** The first position whose key is >= `key`. */
  #lowerBound(key: string): number {
    let low = 0;
    let high = this.#sortedKeys.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (compareKeys(this.#sortedKeys[middle], key) < 0) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}
