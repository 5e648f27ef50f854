// Durable storage for the node runtime (SPEC §8): a write-ahead log with group commit, snapshot
// files, and the data directory's metadata. Every StorageError means "stop with exit code 3".
export { openStore, type OpenedStore } from './open.ts';
export {
  WalStore,
  DEFAULT_KEEP_SNAPSHOTS,
  DEFAULT_SEGMENT_BYTES,
  type PersistUpdate,
  type StorageLogger,
  type StoreOptions,
} from './wal-store.ts';
export { StorageCorruptError, StorageError, type StorageErrorCode } from './errors.ts';
export type { FsyncKind } from './fsutil.ts';
