// The key-value state machine's public surface, for the node runtime and the client API.
export { KvStore, KvApplyOrderError } from './store.ts';
export { encodeKvCommand, decodeKvCommand, encodedKvCommandLength, unproposable, KvCodecError, KV_COMMAND_VERSION } from './codec.ts';
export { KvSnapshotError, KV_SNAPSHOT_VERSION } from './snapshot.ts';
export { validateKey, validatePrefix, compareKeys, MAX_KEY_BYTES } from './key.ts';
export { ChangeHistory, DEFAULT_HISTORY, type ChangeHistoryOptions } from './history.ts';
export type { ChangeFeed, KvChange, KvCommand, KvItem, KvResult, KvView } from './types.ts';
