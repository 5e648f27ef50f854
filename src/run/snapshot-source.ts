// The bytes of `raftlet snapshot save`: a read barrier first (the leader confirms it still leads
// and names its commit index, thesis §6.4; this node applies up to there), then the state machine
// as it stands at its applied index, taken in the same turn of the event loop, so the state, its
// index and its term belong together. Every write acknowledged before the request was made is in it.
import { ClientError } from '../api/ops.ts';
import type { KvStore } from '../kv/index.ts';
import type { RaftNode } from '../node/node.ts';
import type { ClusterIdentity } from '../transport/cluster-id.ts';
import type { SnapshotSource } from '../transport/snapshot-route.ts';
import { BACKUP_CONTENT_TYPE, encodeBackup } from './backup.ts';

export function snapshotSource(node: RaftNode, stateMachine: KvStore, identity: ClusterIdentity, timeoutMs: number): SnapshotSource {
  return {
    contentType: BACKUP_CONTENT_TYPE,
    timeoutMs,
    async take(deadlineMs: number): Promise<Uint8Array> {
      await node.readBarrier(deadlineMs);
      const index = stateMachine.appliedIndex;
      const kv = stateMachine.snapshot();
      const keys = stateMachine.size;
      const term = node.termAt(index);
      if (term === undefined) throw new ClientError('unavailable', `the term of index ${index} is no longer in the log; try again`);
      return encodeBackup({ index, term, keys, clusterId: identity.current(), members: node.members(), node: node.id, kv });
    },
  };
}
