// The leader keeps the Raft configuration in line with what DNS shows (issue 4, operator-style): new
// pods join as learners and are promoted once caught up; pods gone from DNS for a grace period are
// removed, one change at a time, never below a majority of the voters.
import type { Logger } from 'pino';
import type { SrvDiscovery } from '../kubernetes/discovery.ts';
import { AbsenceTracker, planMembershipChange } from '../kubernetes/membership.ts';
import type { RaftNode } from '../node/node.ts';
import type { NodeId } from '../raft/types.ts';

export const RECONCILE_INTERVAL_MS = 2_000;

export interface ReconcilerOptions {
  readonly selfId: NodeId;
  readonly node: RaftNode;
  readonly discovery: SrvDiscovery;
  readonly electionTimeoutMs: number;
  readonly logger: Logger;
}

/** Starts the loop; returns the function that stops it. */
export function startReconciler(options: ReconcilerOptions): () => void {
  const { node, logger } = options;
  const absence = new AbsenceTracker();
  let lastRefusal = '';
  const reconcile = (): void => {
    const current = options.discovery.current();
    if (!current || node.status().role !== 'leader') return;
    const s = node.raftStatus();
    absence.observe(s.members.map((m) => m.id), current.map((p) => p.id), Date.now());
    const decision = planMembershipChange({
      selfId: options.selfId,
      members: s.members,
      lastLogIndex: s.lastLogIndex,
      progress: s.progress,
      discovered: current,
      absentForMs: absence.absentForMs(Date.now()),
      changeInProgress: false,
    });
    switch (decision.kind) {
      case 'none':
        return;
      case 'change': {
        const res = node.proposeConfigChange(decision.change);
        if (res.ok) logger.info({ change: decision.change, index: res.index }, `membership: ${decision.reason}`);
        else if (res.reason !== 'change_in_progress') logger.warn({ change: decision.change }, `membership change refused: ${res.message}`);
        return;
      }
      case 'transferFirst':
        logger.info(decision.reason);
        node.transferLeadership(null, Date.now() + options.electionTimeoutMs).catch(() => undefined);
        return;
      case 'refused':
        if (decision.reason !== lastRefusal) logger.warn({ change: decision.change }, `membership change refused: ${decision.reason}`);
        lastRefusal = decision.reason;
        return;
      default: {
        const never: never = decision;
        return never;
      }
    }
  };
  const timer = setInterval(reconcile, RECONCILE_INTERVAL_MS);
  return () => clearInterval(timer);
}
