// The key-value state machine's vocabulary: commands as they travel through the log, their results,
// and the read-only view the client API serves reads from. Owned here; the runtime, the client API
// and the peer transport import it.
/** A key-value command as it travels through the log. Conditions are checked when it is applied,
 * on every replica alike, so a compare-and-set is decided by log order, not by who received it. */
export type KvCommand =
  | {
      readonly op: 'put';
      readonly key: string;
      readonly value: Uint8Array;
      readonly ifMatch?: number;
      readonly ifNoneMatch?: boolean;
      /** Fencing (If-Term): applied only if the entry's term, the term of the leader that appended
       * it, is this one; so a write meant for a leadership that has ended can never land. */
      readonly ifTerm?: number;
    }
  | { readonly op: 'del'; readonly key: string; readonly ifMatch?: number; readonly ifTerm?: number };

/** The outcome of applying a KvCommand at log index `index` in term `term`. */
export type KvResult =
  | { readonly ok: true; readonly index: number; readonly term: number; readonly deleted?: boolean }
  | { readonly ok: false; readonly code: 'precondition_failed'; readonly index: number; readonly term: number; readonly message: string };

export interface KvItem {
  readonly key: string;
  readonly value: Uint8Array;
  readonly modIndex: number;
}

/** Read-only view of the local replica of the key-value state machine. */
export interface KvView {
  get(key: string): KvItem | undefined;
  /** Keys in byte order starting with prefix, at most limit of them. */
  list(prefix: string, limit: number): KvItem[];
  /** The log index the view reflects. */
  readonly appliedIndex: number;
}

/** One change of the key-value state, in apply order: what a watch delivers (SPEC §4 watches). */
export interface KvChange {
  /** The log index of the entry that made the change (the key's new modIndex for a put). */
  readonly index: number;
  /** The term of that entry: the term of the leader that appended it. */
  readonly term: number;
  readonly key: string;
  readonly op: 'put' | 'del';
  /** The new value of a put; null for a delete. Shared with the store: do not modify. */
  readonly value: Uint8Array | null;
}

/** Recent changes of the local replica, for watches and blocking queries. */
export interface ChangeFeed {
  /** Every change with an index above this is still kept (older ones may be gone: compacted out of
   * the bounded history, or before a snapshot this replica installed or started from). */
  readonly floor: number;
  /** The index the local replica has applied. */
  readonly appliedIndex: number;
  /** Changes with index > `after` whose key starts with `prefix`, oldest first, at most `max`.
   * Callers check `after >= floor` first: below it changes may be missing. */
  since(after: number, prefix: string, max: number): KvChange[];
  /** Called after each change is applied, and with null when the history was reset (a snapshot was
   * installed): then everything at or below the new floor is gone. Returns the unsubscriber. */
  subscribe(listener: (change: KvChange | null) => void): () => void;
}
