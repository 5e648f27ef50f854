// Opening the data directory and its cluster id, and for a one-member cluster of itself (nobody to
// ask first), writing the first configuration before the node starts. Other new clusters are
// written by bootstrap.ts once the peers answered.
import type { Logger } from 'pino';
import type { Settings } from '../config/settings.ts';
import type { RaftletMetrics } from '../metrics/metrics.ts';
import { bootstrapState } from '../raft/raft.ts';
import type { Member, RestoredState } from '../raft/types.ts';
import { openStore, StorageError, type WalStore } from '../storage/index.ts';
import { ClusterIdFileError, FileClusterIdentity, readClusterId } from './cluster-id.ts';
import { ExitCode } from './exit-codes.ts';

export interface OpenedData {
  readonly store: WalStore;
  readonly restored: RestoredState;
  readonly identity: FileClusterIdentity;
}

/** The store and what it restored, or the exit code to stop with (after saying why). */
export async function openData(settings: Settings, metrics: RaftletMetrics, logger: Logger): Promise<OpenedData | ExitCode> {
  let store: WalStore;
  let restored: RestoredState;
  try {
    const opened = await openStore(settings.dataDir, {
      nodeId: settings.nodeId,
      onFsync: (seconds, kind) => metrics.observeFsync(seconds, kind),
      logger: { warn: (m) => logger.warn(m), info: (m) => logger.info(m) },
    });
    store = opened.store;
    restored = opened.restored;
  } catch (err) {
    logger.fatal({ err }, `data directory ${settings.dataDir} is unusable`);
    process.stderr.write(`raftlet: ${err instanceof Error ? err.message : String(err)}\n`);
    return err instanceof StorageError ? ExitCode.badData : ExitCode.failure;
  }
  let identity: FileClusterIdentity;
  try {
    const id = readClusterId(settings.dataDir);
    identity = new FileClusterIdentity(settings.dataDir, id, (adopted) => logger.info({ clusterId: adopted }, `joined cluster ${adopted}`));
    if (id !== null) logger.info({ clusterId: id }, `cluster id ${id}`);
  } catch (err) {
    logger.fatal({ err }, `data directory ${settings.dataDir} is unusable`);
    process.stderr.write(`raftlet: ${err instanceof Error ? err.message : String(err)}\n`);
    await store.close().catch(() => undefined);
    return err instanceof ClusterIdFileError ? ExitCode.badData : ExitCode.failure;
  }
  if (hasData(restored) || settings.membersFrom !== 'self') return { store, restored, identity };
  const members: Member[] = settings.peers.map((p) => ({ id: p.id, url: p.url, voter: true }));
  const state = bootstrapState(members);
  try {
    identity.create();
    await store.save({ entries: state.entries, hardState: state.hardState });
  } catch (err) {
    logger.fatal({ err }, 'storage failed while bootstrapping');
    await store.close().catch(() => undefined);
    return ExitCode.badData;
  }
  logger.info({ members: members.map((m) => m.id), clusterId: identity.current() }, 'bootstrapped a new cluster');
  return { store, restored: state, identity };
}

export function hasData(restored: RestoredState): boolean {
  return restored.entries.length > 0 || restored.snapshot !== null || restored.hardState.term > 0;
}
