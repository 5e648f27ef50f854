// Every storage failure the runtime must stop on is a StorageError (SPEC §2: exit code 3). The
// subclass tells an operator which kind of trouble it is: damaged bytes, a directory that cannot be
// used, or a directory that belongs to another member.

export type StorageErrorCode =
  /** Bytes on disk fail a checksum or make no sense; nothing was changed to "repair" them. */
  | 'corrupt'
  /** The data directory cannot be created, read or written. */
  | 'unusable'
  /** The data directory was created for another node id. */
  | 'wrong_node'
  /** A write or fsync failed while running: what is on disk is unknown, so the store refuses more work. */
  | 'failed';

export class StorageError extends Error {
  readonly code: StorageErrorCode;
  constructor(code: StorageErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StorageError';
    this.code = code;
  }
}

/** Damage that recovery will not guess its way around. `file` and `offset` say where to look. */
export class StorageCorruptError extends StorageError {
  readonly file: string;
  readonly offset: number;
  constructor(file: string, offset: number, problem: string) {
    super(
      'corrupt',
      `data directory is corrupt: ${file} at byte offset ${offset}: ${problem}. ` +
        'Nothing was changed. Restore this member from a backup, or remove its data directory so it ' +
        'rejoins empty and catches up from the leader (only if the rest of the cluster still has a quorum).',
    );
    this.name = 'StorageCorruptError';
    this.file = file;
    this.offset = offset;
  }
}

/** Wraps a node:fs error into an 'unusable' StorageError that names the path and what to do. */
export function unusableDir(action: string, path: string, cause: unknown): StorageError {
  const code = typeof cause === 'object' && cause !== null && 'code' in cause ? String(cause.code) : 'error';
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new StorageError(
    'unusable',
    `cannot ${action} ${path} (${code}: ${detail}); check that RAFTLET_DATA_DIR points to a writable ` +
      'directory on a local disk with free space',
    { cause },
  );
}
