// The recent changes of the local replica, in apply order, for watches and blocking queries (SPEC §4).
// A bounded ring: past maxChanges changes or maxBytes of keys and values the oldest go, and `floor`
// rises with them, so a watcher can always tell "nothing changed" from "changes may be missing".
// Deterministic like the store: fed only by what is applied, in log order, on every replica alike;
// a replica that starts from or installs a snapshot has no history before it.
import type { ChangeFeed, KvChange } from './types.ts';

/** Bytes a change costs beyond its key and value (the record, the ring slot). */
const CHANGE_OVERHEAD_BYTES = 64;

export interface ChangeHistoryOptions {
  /** Most changes kept. */
  readonly maxChanges: number;
  /** Most bytes of keys and values kept (values are shared with the store while current, but a
   * replaced value lives on here). */
  readonly maxBytes: number;
}

export const DEFAULT_HISTORY: ChangeHistoryOptions = { maxChanges: 10_000, maxBytes: 64 * 1024 * 1024 };

type Listener = (change: KvChange | null) => void;

export class ChangeHistory implements ChangeFeed {
  readonly #options: ChangeHistoryOptions;
  /** Ring buffer: #count changes from position #start, oldest first. */
  #ring: (KvChange | undefined)[];
  #start = 0;
  #count = 0;
  #bytes = 0;
  #floor: number;
  #appliedIndex: number;
  readonly #listeners = new Set<Listener>();

  constructor(options: ChangeHistoryOptions = DEFAULT_HISTORY, appliedIndex = 0) {
    if (!Number.isSafeInteger(options.maxChanges) || options.maxChanges < 1) {
      throw new RangeError(`maxChanges must be a positive integer, got ${options.maxChanges}`);
    }
    this.#options = options;
    this.#ring = new Array<KvChange | undefined>(Math.min(options.maxChanges, 1024));
    this.#floor = appliedIndex;
    this.#appliedIndex = appliedIndex;
  }

  get floor(): number {
    return this.#floor;
  }

  get appliedIndex(): number {
    return this.#appliedIndex;
  }

  /** Changes kept now. */
  get size(): number {
    return this.#count;
  }

  /** The applied index moved without a change of state (noop, config, failed condition). */
  advanceTo(index: number): void {
    this.#appliedIndex = index;
  }

  record(change: KvChange): void {
    this.#appliedIndex = change.index;
    if (this.#count === this.#ring.length) this.#grow();
    this.#ring[(this.#start + this.#count) % this.#ring.length] = change;
    this.#count++;
    this.#bytes += costOf(change);
    while (this.#count > 0 && (this.#count > this.#options.maxChanges || this.#bytes > this.#options.maxBytes)) this.#evictOldest();
    for (const listener of this.#listeners) listener(change);
  }

  /** The state was replaced by a snapshot taken at `index`: everything before it is gone. */
  reset(index: number): void {
    this.#ring = new Array<KvChange | undefined>(Math.min(this.#options.maxChanges, 1024));
    this.#start = 0;
    this.#count = 0;
    this.#bytes = 0;
    this.#floor = index;
    this.#appliedIndex = index;
    for (const listener of this.#listeners) listener(null);
  }

  since(after: number, prefix: string, max: number): KvChange[] {
    const out: KvChange[] = [];
    for (let position = this.#firstAfter(after); position < this.#count && out.length < max; position++) {
      const change = this.#at(position);
      if (change.key.startsWith(prefix)) out.push(change);
    }
    return out;
  }

  subscribe(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #at(position: number): KvChange {
    return this.#ring[(this.#start + position) % this.#ring.length] as KvChange;
  }

  /** The first position whose change has an index above `after` (#count if none). */
  #firstAfter(after: number): number {
    let low = 0;
    let high = this.#count;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#at(middle).index <= after) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  #evictOldest(): void {
    const oldest = this.#at(0);
    this.#ring[this.#start] = undefined;
    this.#start = (this.#start + 1) % this.#ring.length;
    this.#count--;
    this.#bytes -= costOf(oldest);
    this.#floor = oldest.index;
  }

  #grow(): void {
    const size = Math.min(this.#options.maxChanges + 1, this.#ring.length * 2);
    const ring = new Array<KvChange | undefined>(size);
    for (let position = 0; position < this.#count; position++) ring[position] = this.#at(position);
    this.#ring = ring;
    this.#start = 0;
  }
}

function costOf(change: KvChange): number {
  return CHANGE_OVERHEAD_BYTES + change.key.length * 2 + (change.value?.byteLength ?? 0);
}
