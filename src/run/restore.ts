// `raftlet snapshot restore`: a data directory that starts a NEW cluster from a snapshot file: the
// state at the snapshot's index as the member's snapshot, the given members as its configuration,
// and a new cluster id, so members of the old cluster (and of any other restore of the same file)
// are refused by this one's peer port. Built beside the target and renamed into place, so an
// interrupted restore leaves no half-made data directory behind.
import { mkdir, open, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Member } from '../raft/types.ts';
import { openStore } from '../storage/index.ts';
import type { DecodedBackup } from './backup.ts';
import { writeClusterId } from './cluster-id.ts';

export class RestoreRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RestoreRefused';
  }
}

export interface RestoreOptions {
  readonly backup: DecodedBackup;
  readonly dataDir: string;
  readonly nodeId: string;
  /** The new cluster's configuration (all voters); must include nodeId. */
  readonly members: readonly Member[];
  readonly clusterId: string;
}

export async function restoreDataDir(options: RestoreOptions): Promise<void> {
  const { backup, dataDir, nodeId } = options;
  if (!options.members.some((m) => m.id === nodeId)) {
    throw new RestoreRefused(`the members (${options.members.map((m) => m.id).join(', ')}) do not include this node, ${nodeId}`);
  }
  if (backup.header.index < 1) throw new RestoreRefused('the snapshot is of an empty cluster (index 0): nothing to restore');
  const existed = await emptyOrAbsent(dataDir);
  const parent = dirname(dataDir);
  await mkdir(parent, { recursive: true });
  const temp = join(parent, `.${basename(dataDir)}.restoring-${process.pid}-${Date.now()}`);
  try {
    const { store } = await openStore(temp, { nodeId });
    try {
      const { index, term } = backup.header;
      await store.save({
        snapshot: { meta: { index, term, members: options.members }, data: backup.kv },
        hardState: { term, votedFor: null, commitIndex: index },
      });
    } finally {
      await store.close();
    }
    writeClusterId(temp, options.clusterId);
    if (existed) await rmdir(dataDir);
    await rename(temp, dataDir);
    await syncDir(parent);
  } catch (err) {
    await rm(temp, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
}

/** True if dataDir is an empty directory, false if absent; refuses anything else. */
async function emptyOrAbsent(dataDir: string): Promise<boolean> {
  let isDir: boolean;
  try {
    isDir = (await stat(dataDir)).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  if (!isDir) throw new RestoreRefused(`--data-dir ${dataDir} exists and is not a directory`);
  const names = await readdir(dataDir);
  if (names.length > 0) {
    throw new RestoreRefused(`--data-dir ${dataDir} is not empty (${names.length} entries); restore only into a new or empty directory, never over a member's data`);
  }
  return true;
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
