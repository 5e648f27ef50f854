// SIGTERM on a pod being scaled away: leave the Raft configuration before exiting, within the
// termination grace period. The removal itself is the leader's (reconciler.ts removes scaled-away
// members one at a time, highest ordinal first); this member hands leadership to a member that
// stays if it leads, then waits until the leader's committed configuration no longer holds it.
// It never guesses: a restart, an unreadable API, or a scale to zero leaves the configuration as it is.
import type { Logger } from 'pino';
import type { NodeStatus } from '../api/ops.ts';
import { isScaledAway, type DesiredReplicas, type ScaleVerdict } from '../kubernetes/scale-rules.ts';
import type { RaftNode } from '../node/node.ts';
import { bestTransferTarget } from '../node/transfer-target.ts';
import type { NodeId } from '../raft/types.ts';
import type { PeerClient } from '../transport/index.ts';
import { steadyNow } from '../util/steady-clock.ts';

/** Time kept back from the grace period for the rest of the shutdown (flush, close, exit). */
const RESERVE_MS = 3_000;
const DEFAULT_GRACE_MS = 30_000;
const POLL_MS = 150;

/** What leaving needs of the node and the peer client (narrow, so a test can stand in for them). */
export type LeavingNode = Pick<RaftNode, 'id' | 'status' | 'raftStatus' | 'contactOrder' | 'leader' | 'members' | 'transferLeadership'>;
export type LeaderAsker = Pick<PeerClient, 'status'>;

/** The transfer target (bestTransferTarget) among the members that are not scaled away (null: any
 * voter will do). */
export function stayingTarget(node: Pick<RaftNode, 'raftStatus' | 'contactOrder'>, desired: DesiredReplicas | null): NodeId | null {
  if (desired === null) return null;
  return bestTransferTarget(node.raftStatus(), node.contactOrder(), (peer) => !isScaledAway(peer.id, desired));
}

/** What the shutdown hand-off needs of the node (narrow, so a test can stand in for it). */
export type HandingNode = Pick<RaftNode, 'id' | 'raftStatus' | 'contactOrder' | 'members' | 'transferLeadership' | 'waitLeaderChange'>;

export interface HandOverOptions {
  readonly node: HandingNode;
  /** Scale-down or restart, as the API answers (null without Kubernetes). */
  readonly verdict: Promise<ScaleVerdict> | null;
  /** The replicas as last read, for when the API does not answer at once. */
  readonly latestDesired: () => DesiredReplicas | null;
  readonly electionTimeoutMs: number;
  readonly logger: Logger;
  /** How long the hand-off waits for the API's verdict (SPEC §7: the API must not hold it up). */
  readonly verdictWaitMs?: number;
}

/**
 * On SIGTERM a leader gives leadership to a member that stays, and resolves once another member
 * leads (or the attempt failed); any other member resolves at once. Never throws.
 */
export async function handOverBeforeStopping(options: HandOverOptions): Promise<void> {
  const { node, verdict, logger } = options;
  let s = node.raftStatus();
  if (s.role !== 'leader') return;
  let now: ScaleVerdict | null = null;
  if (s.transferee === null) {
    if (!node.members().some((m) => m.voter && m.id !== node.id)) return;
    // To a member that stays: the replicas as the API says them now if it answers at once, else
    // as last read. Without Kubernetes nothing is awaited, so TimeoutNow leaves in this turn.
    const wait = options.verdictWaitMs ?? 300;
    if (verdict !== null) now = await Promise.race([verdict, new Promise<null>((resolve) => setTimeout(() => resolve(null), wait))]);
    s = node.raftStatus();
    // Leadership may have moved on while the API was asked (the reconciler hands a scaled-away
    // leader's role over by itself): then there is nothing left to hand over. Asking anyway would
    // forward the request to the new leader, which would pick a target of its own, maybe this
    // very member on its way out.
    if (s.role !== 'leader') return;
  }
  if (s.transferee !== null) {
    // A transfer is under way already (the reconciler's: this leader is scaled away): let it finish.
    await node.waitLeaderChange(s.leader, s.term, options.electionTimeoutMs * 2);
    return;
  }
  const desired = now !== null && now.kind !== 'unknown' ? now.desired : options.latestDesired();
  try {
    const to = await node.transferLeadership(stayingTarget(node, desired), steadyNow() + options.electionTimeoutMs * 2, 'shutdown');
    logger.info({ to: to.leader, term: to.term }, 'handed leadership over before stopping');
  } catch (err) {
    logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'leadership hand-off failed; stopping anyway');
  }
}

export interface LeaveOptions {
  readonly node: LeavingNode;
  readonly peers: LeaderAsker;
  readonly verdict: ScaleVerdict;
  /** When SIGTERM arrived (steadyNow()). */
  readonly startedAt: number;
  readonly electionTimeoutMs: number;
  readonly logger: Logger;
}

/** Resolves when this member has left (or it should not, or the time is up); never throws. */
export async function leaveIfScaledAway(options: LeaveOptions): Promise<'left' | 'stayed' | 'timedOut'> {
  const { node, verdict, logger } = options;
  switch (verdict.kind) {
    case 'unknown':
      logger.warn(`cannot tell a scale-down from a restart (${verdict.reason}): staying a member of the configuration`);
      return 'stayed';
    case 'staying':
      logger.info(`ordinal ${verdict.ordinal} < ${verdict.desired.replicas} desired replicas of ${verdict.desired.statefulSet}: a restart; staying a member`);
      return 'stayed';
    case 'scaledAway':
      break;
    default: {
      const never: never = verdict;
      return never;
    }
  }
  const { desired } = verdict;
  if (desired.replicas === 0) {
    logger.info(`${desired.statefulSet} is scaled to 0: every member stops and none leaves, so the cluster resumes from its volumes when scaled up again`);
    return 'stayed';
  }
  const graceMs = verdict.graceMs ?? DEFAULT_GRACE_MS;
  const deadline = options.startedAt + Math.max(POLL_MS, graceMs - Math.min(RESERVE_MS, graceMs / 4));
  logger.info(
    { deadlineInMs: deadline - steadyNow() },
    `ordinal ${verdict.ordinal} >= ${desired.replicas} desired replicas of ${desired.statefulSet}: scaled away; leaving the configuration before exiting`,
  );
  const self = node.id;
  /** The removal seen in the leader's log: done once that leader has committed up to there. */
  let removal: { leader: NodeId; term: number; index: number } | null = null;
  let lastWait = '';
  const waiting = (why: string): void => {
    if (why !== lastWait) logger.info(`leaving: ${why}`);
    lastWait = why;
  };
  while (steadyNow() < deadline) {
    const status = node.status();
    if (status.role === 'leader') {
      const to = stayingTarget(node, desired);
      if (to === null && !status.members.some((m) => m.voter && m.id !== self && !isScaledAway(m.id, desired))) {
        logger.warn('leaving: no voter that stays is left to take over; staying a member');
        return 'stayed';
      }
      waiting(`handing leadership to ${to ?? 'a member that stays'} first`);
      // A transfer already under way (the reconciler's) is refused at once: wait a little rather
      // than ask again in a loop that never yields to the timers and sockets the transfer needs.
      await node.transferLeadership(to, Math.min(deadline, steadyNow() + options.electionTimeoutMs * 2)).catch(() => pause(POLL_MS));
      continue;
    }
    const theirs = await askLeader(options.peers, node, Math.min(deadline, steadyNow() + 1000));
    if (typeof theirs === 'string') {
      waiting(theirs);
      await pause(POLL_MS);
      continue;
    }
    if (theirs.members.some((m) => m.id === self)) {
      removal = null;
      waiting(`waiting for the leader ${theirs.id} to remove this member (one change at a time, highest ordinal first)`);
      await pause(POLL_MS);
      continue;
    }
    // The leader's configuration (its newest, maybe uncommitted) no longer holds us: the removal
    // is at or below its last index. Once it has committed that far, the removal is final.
    if (removal === null || removal.leader !== theirs.id || removal.term !== theirs.term) {
      removal = { leader: theirs.id, term: theirs.term, index: theirs.lastLogIndex };
    }
    if (theirs.commitIndex >= removal.index) {
      logger.info({ leader: theirs.id, term: theirs.term, index: removal.index }, 'left the configuration: the removal is committed');
      return 'left';
    }
    waiting(`the leader ${theirs.id} has removed this member; waiting for the commit of index ${removal.index}`);
    await pause(POLL_MS);
  }
  logger.warn('did not leave the configuration within the termination grace period; the leader removes this member once it sees the scale-down');
  return 'timedOut';
}

/**
 * The leader's own status. A member already removed hears from no leader any more (it never gets
 * the entry that removes it), so when it knows none it asks the members of its configuration.
 */
async function askLeader(peers: LeaderAsker, node: LeavingNode, deadlineMs: number): Promise<NodeStatus | string> {
  const known = node.leader();
  const urls = known !== null && known.id !== node.id ? [known.url] : node.members().filter((m) => m.id !== node.id).map((m) => m.url);
  const answers = await Promise.all(urls.map((url) => peers.status(url, deadlineMs).catch((err: unknown) => (err instanceof Error ? err.message : String(err)))));
  const leader = answers.find((a): a is NodeStatus => typeof a !== 'string' && a.role === 'leader');
  if (leader !== undefined) return leader;
  const problems = answers.filter((a): a is string => typeof a === 'string');
  return problems.length > 0 ? `cannot reach the leader: ${problems.join('; ')}` : 'waiting for a leader';
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
