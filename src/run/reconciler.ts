// The leader keeps the Raft configuration in line with the StatefulSet (issue 4 and 11,
// operator-style): new pods in DNS join as learners and are promoted once caught up; pods the
// StatefulSet is scaling away (ordinal >= its desired replicas, read from the API by the leader
// itself) are removed at once, highest ordinal first, so several pods scaled away together leave
// in turn without losing quorum, often before their SIGTERM arrives; pods gone from DNS for a
// grace period are removed too, unless they belong to the StatefulSet below its desired replicas
// (those only restart). One change at a time, never below a majority of responding voters.
import type { Logger } from 'pino';
import type { DesiredReplicas, ScaleReader } from '../kubernetes/index.ts';
import type { SrvDiscovery } from '../kubernetes/discovery.ts';
import { AbsenceTracker, planMembershipChange } from '../kubernetes/membership.ts';
import type { RaftNode } from '../node/node.ts';
import type { NodeId } from '../raft/types.ts';
import { steadyNow } from '../util/steady-clock.ts';

/** How often the leader looks when nothing is changing. */
export const RECONCILE_INTERVAL_MS = 1_000;
/** How soon it looks again after proposing a change (the next one waits for its commit). */
const AFTER_CHANGE_MS = 150;
/** The StatefulSet is read at most this often... */
const SCALE_READ_INTERVAL_MS = 2_000;
/** ...and a reading older than this is too stale to remove a member on (it still keeps
 * restarting pods from being removed). */
const SCALE_FRESH_MS = 10_000;

export interface ReconcilerOptions {
  readonly selfId: NodeId;
  readonly node: RaftNode;
  readonly discovery: SrvDiscovery;
  /** The API reader of the desired replicas; null outside Kubernetes. */
  readonly scale: ScaleReader | null;
  readonly electionTimeoutMs: number;
  readonly logger: Logger;
}

/** Starts the loop; returns the function that stops it. */
export function startReconciler(options: ReconcilerOptions): () => void {
  const { node, logger } = options;
  const absence = new AbsenceTracker();
  let lastRefusal = '';
  let lastScaleProblem = '';
  let scaleReadAt = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;

  const readScale = async (scale: ScaleReader): Promise<void> => {
    scaleReadAt = steadyNow();
    const reading = await scale.read(AbortSignal.timeout(Math.max(1000, options.electionTimeoutMs)));
    if (!reading.ok && reading.reason !== lastScaleProblem) {
      logger.warn(`cannot read the StatefulSet's desired replicas (${reading.reason}): no member is removed as scaled away until it can`);
    }
    lastScaleProblem = reading.ok ? '' : reading.reason;
  };

  /** The desired replicas for this round: a fresh read every SCALE_READ_INTERVAL_MS. */
  const desired = async (): Promise<(DesiredReplicas & { fresh: boolean }) | null> => {
    const scale = options.scale;
    if (scale === null) return null;
    if (steadyNow() - scaleReadAt >= SCALE_READ_INTERVAL_MS) await readScale(scale);
    const latest = scale.latest();
    return latest === null ? null : { statefulSet: latest.statefulSet, replicas: latest.replicas, fresh: steadyNow() - latest.readAtMs <= SCALE_FRESH_MS };
  };

  /** One round; true if it proposed something (then the next round comes sooner). */
  const reconcile = async (): Promise<boolean> => {
    const current = options.discovery.current();
    if (!current || node.status().role !== 'leader') return false;
    const wanted = await desired();
    if (stopped || node.status().role !== 'leader') return false;
    const s = node.raftStatus();
    absence.observe(s.members.map((m) => m.id), current.map((p) => p.id), steadyNow());
    const decision = planMembershipChange({
      selfId: options.selfId,
      members: s.members,
      lastLogIndex: s.lastLogIndex,
      progress: s.progress,
      discovered: current,
      absentForMs: absence.absentForMs(steadyNow()),
      changeInProgress: false,
      desired: wanted,
    });
    switch (decision.kind) {
      case 'none':
        return false;
      case 'change': {
        const res = node.proposeConfigChange(decision.change);
        if (res.ok) logger.info({ change: decision.change, index: res.index }, `membership: ${decision.reason}`);
        else if (res.reason !== 'change_in_progress') logger.warn({ change: decision.change }, `membership change refused: ${res.message}`);
        return res.ok || res.reason === 'change_in_progress';
      }
      case 'transferFirst':
        logger.info(decision.reason);
        await node.transferLeadership(decision.to, steadyNow() + options.electionTimeoutMs).catch(() => undefined);
        return true;
      case 'refused':
        if (decision.reason !== lastRefusal) logger.warn({ change: decision.change }, `membership change refused: ${decision.reason}`);
        lastRefusal = decision.reason;
        return false;
      default: {
        const never: never = decision;
        return never;
      }
    }
  };

  const loop = (): void => {
    if (stopped) return;
    reconcile().then(
      (changed) => schedule(changed ? AFTER_CHANGE_MS : RECONCILE_INTERVAL_MS),
      (err: unknown) => {
        logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'membership reconciliation failed');
        schedule(RECONCILE_INTERVAL_MS);
      },
    );
  };
  const schedule = (ms: number): void => {
    if (stopped) return;
    timer = setTimeout(loop, ms);
  };
  // Learn the pod's StatefulSet (one pod GET) now, while nothing else is going on, rather than on
  // the first round as leader, next to the labeler's own reads.
  if (options.scale !== null) void readScale(options.scale);
  schedule(RECONCILE_INTERVAL_MS);
  return () => {
    stopped = true;
    if (timer !== null) clearTimeout(timer);
  };
}
