// The key-value state machine's vocabulary: commands as they travel through the log, their results,
// and the read-only view the client API serves reads from. Owned here; the runtime, the client API
// and the peer transport import it.
/** A key-value command as it travels through the log. Conditions are checked when it is applied,
 * on every replica alike, so a compare-and-set is decided by log order, not by who received it. */
export type KvCommand =
  | { readonly op: 'put'; readonly key: string; readonly value: Uint8Array; readonly ifMatch?: number; readonly ifNoneMatch?: boolean }
  | { readonly op: 'del'; readonly key: string; readonly ifMatch?: number };

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
