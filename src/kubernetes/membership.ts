// The leader's membership reconciliation: what DNS shows (the StatefulSet's pods) and the
// StatefulSet's desired replicas against the replicated configuration, turned into at most one
// single-server change at a time (thesis §4.1: one change at a time keeps every pair of majorities
// overlapping). New pods join as learners and are promoted once caught up (thesis §4.2.1), so a
// slow newcomer never stalls commits. Pods being scaled away (ordinal >= desired replicas) are
// removed at once, highest ordinal first; pods below that only restart and are never removed.
import type { ConfigChange, Membership, NodeId, PeerProgress } from '../raft/types.ts';
import type { Peer } from './discovery.ts';
import { compareMemberIds } from './ordinal.ts';
import { isScaledAway, isStatefulSetPod, type DesiredReplicas } from './scale-rules.ts';

export interface MembershipPolicy {
  /** A learner within this many entries of the leader's last index counts as caught up. */
  readonly catchUpEntries: number;
  /** A member missing from DNS this long is removed (pods vanish from DNS briefly on restart). */
  readonly removeGraceMs: number;
}

export const defaultMembershipPolicy: MembershipPolicy = { catchUpEntries: 100, removeGraceMs: 30_000 };

export interface ReconcileInput {
  /** The leader running the reconciliation. */
  readonly selfId: NodeId;
  /** The configuration in effect (the latest config entry in the leader's log). */
  readonly members: Membership;
  readonly lastLogIndex: number;
  /** The leader's replication progress per other member (RaftStatus.progress). */
  readonly progress: readonly Pick<PeerProgress, 'id' | 'matchIndex' | 'recentActive'>[];
  /** The latest successful discovery answer. */
  readonly discovered: readonly Peer[];
  /** How long each member has been missing from discovery (AbsenceTracker); missing key = present. */
  readonly absentForMs: ReadonlyMap<NodeId, number>;
  /** A configuration entry is not committed yet: no second change until it is (thesis §4.1). */
  readonly changeInProgress: boolean;
  /** The StatefulSet's desired replicas as last read from the API; null when unknown (no API,
   * or never read). Pods of the set below `replicas` only restart: never removed. Those at or
   * above are removed, but only on a `fresh` reading (a stale one does not guess a scale-down). */
  readonly desired?: (DesiredReplicas & { readonly fresh: boolean }) | null;
  readonly policy?: Partial<MembershipPolicy>;
}

export type MembershipDecision =
  | { readonly kind: 'none'; readonly reason: string }
  | { readonly kind: 'change'; readonly change: ConfigChange; readonly reason: string }
  /** The leader itself should leave: transfer leadership first (to `to`, or the most up-to-date
   * voter when null); the next leader removes it. */
  | { readonly kind: 'transferFirst'; readonly to: NodeId | null; readonly reason: string }
  /** A change is due but would leave too few voters alive to commit; log the reason and wait. */
  | { readonly kind: 'refused'; readonly change: ConfigChange; readonly reason: string };

/** The one configuration change to propose now, if any. */
export function planMembershipChange(input: ReconcileInput): MembershipDecision {
  const policy: MembershipPolicy = { ...defaultMembershipPolicy, ...input.policy };
  if (input.changeInProgress) {
    return { kind: 'none', reason: 'a configuration change is still uncommitted; one change at a time' };
  }
  const seen = new Set(input.discovered.map((peer) => peer.id));
  const progress = new Map(input.progress.map((p) => [p.id, p]));
  const members = [...input.members].sort((a, b) => compareMemberIds(a.id, b.id));
  const isMember = new Set(members.map((m) => m.id));
  const desired = input.desired ?? null;
  // A pod of the StatefulSet below the desired replicas is restarting (rolling update, eviction,
  // drain): however long it is gone from DNS, it comes back. Only other members age out of DNS.
  const restarting = (id: NodeId): boolean => desired !== null && isStatefulSetPod(id, desired) && !isScaledAway(id, desired);
  const overdue = (id: NodeId): boolean => !restarting(id) && (input.absentForMs.get(id) ?? 0) >= policy.removeGraceMs;
  const leavingNow = (id: NodeId): boolean => desired !== null && desired.fresh && desired.replicas >= 1 && isScaledAway(id, desired);
  const excluded = (id: NodeId): boolean => desired !== null && isScaledAway(id, desired);

  if (isMember.has(input.selfId) && (leavingNow(input.selfId) || overdue(input.selfId))) {
    const alive = aliveIds(input);
    const staying = members.filter((m) => m.voter && m.id !== input.selfId && !excluded(m.id) && alive.has(m.id));
    const best = staying.sort((a, b) => (progress.get(b.id)?.matchIndex ?? 0) - (progress.get(a.id)?.matchIndex ?? 0))[0];
    if (leavingNow(input.selfId)) {
      if (best === undefined) {
        return { kind: 'none', reason: `this leader (${input.selfId}) is scaled away, but no responding voter that stays could take over: it stays for now` };
      }
      return {
        kind: 'transferFirst',
        to: best.id,
        reason: `this leader (${input.selfId}) is scaled away (${desired?.statefulSet} wants ${desired?.replicas} replicas): transfer leadership to ${best.id} so it can remove this member`,
      };
    }
    return {
      kind: 'transferFirst',
      to: best?.id ?? null,
      reason: `this leader (${input.selfId}) has been missing from DNS for ${seconds(input.absentForMs.get(input.selfId))} s: transfer leadership so the next leader can remove it`,
    };
  }

  // Scaled away: learners first, then voters, highest ordinal first (the order a StatefulSet
  // deletes pods in, and the order every leader computes alike), one at a time.
  const scaledAway = members
    .filter((m) => m.id !== input.selfId && leavingNow(m.id))
    .sort((a, b) => (a.voter === b.voter ? compareMemberIds(b.id, a.id) : a.voter ? 1 : -1));
  for (const member of scaledAway) {
    const replicas = desired?.replicas ?? 0;
    return guarded(input, { kind: 'remove', id: member.id }, `${member.id} is scaled away (${desired?.statefulSet} wants ${replicas} replica${replicas === 1 ? '' : 's'})`, false);
  }

  const waiting: string[] = [];
  for (const learner of members.filter((m) => !m.voter)) {
    const p = progress.get(learner.id);
    if (!seen.has(learner.id) || p === undefined || excluded(learner.id)) continue;
    const behind = input.lastLogIndex - p.matchIndex;
    if (!p.recentActive || behind > policy.catchUpEntries) {
      waiting.push(`learner ${learner.id} is ${behind} entries behind${p.recentActive ? '' : ' and not responding'}`);
      continue;
    }
    return guarded(input, { kind: 'promote', id: learner.id }, `learner ${learner.id} caught up (${behind} entries behind, threshold ${policy.catchUpEntries})`);
  }

  const newcomer = [...input.discovered]
    .sort((a, b) => compareMemberIds(a.id, b.id))
    .find((peer) => !isMember.has(peer.id) && peer.id !== input.selfId && !excluded(peer.id));
  if (newcomer !== undefined) {
    return guarded(input, { kind: 'addLearner', id: newcomer.id, url: newcomer.url }, `${newcomer.id} appeared in DNS and is not a member`);
  }

  // Learners before voters, then the highest ordinal first: the pods a StatefulSet scale-down
  // deletes first, and the order every leader computes alike.
  const leaving = members
    .filter((m) => m.id !== input.selfId && !seen.has(m.id) && !restarting(m.id))
    .sort((a, b) => (a.voter === b.voter ? compareMemberIds(b.id, a.id) : a.voter ? 1 : -1));
  for (const member of leaving) {
    if (!overdue(member.id)) {
      waiting.push(`${member.id} missing from DNS for ${seconds(input.absentForMs.get(member.id))} s of ${seconds(policy.removeGraceMs)} s grace`);
      continue;
    }
    return guarded(input, { kind: 'remove', id: member.id }, `${member.id} has been missing from DNS for ${seconds(input.absentForMs.get(member.id))} s`);
  }

  return { kind: 'none', reason: waiting.length > 0 ? waiting.join('; ') : 'configuration matches DNS' };
}

/**
 * Refuses a change that could not commit or would leave the new configuration without a live
 * majority, and a removal decided while DNS shows less than a majority of the voters (a DNS
 * outage must not look like a scale-down to zero).
 */
function guarded(input: ReconcileInput, change: ConfigChange, why: string, dnsGuard = true): MembershipDecision {
  const alive = aliveIds(input);
  const voters = input.members.filter((m) => m.voter).map((m) => m.id);
  const nextVoters = votersAfter(input.members, change);
  const aliveNow = voters.filter((id) => alive.has(id)).length;
  const aliveNext = nextVoters.filter((id) => alive.has(id)).length;
  const describe = `${change.kind} ${change.id}`;
  if (aliveNow < majority(voters.length)) {
    return { kind: 'refused', change, reason: `${describe} refused: only ${aliveNow} of ${voters.length} voters are responding, a change could not commit` };
  }
  if (aliveNext < majority(nextVoters.length)) {
    return { kind: 'refused', change, reason: `${describe} refused: it would leave ${aliveNext} responding voters of ${nextVoters.length}, fewer than a majority` };
  }
  if (change.kind === 'remove' && dnsGuard) {
    const seen = new Set(input.discovered.map((peer) => peer.id));
    const seenVoters = voters.filter((id) => seen.has(id)).length;
    if (seenVoters < majority(voters.length)) {
      return { kind: 'refused', change, reason: `${describe} refused: DNS shows only ${seenVoters} of ${voters.length} voters; not removing members while discovery looks broken` };
    }
  }
  return { kind: 'change', change, reason: why };
}

function aliveIds(input: ReconcileInput): Set<NodeId> {
  const alive = new Set<NodeId>([input.selfId]);
  for (const p of input.progress) if (p.recentActive) alive.add(p.id);
  return alive;
}

function votersAfter(members: Membership, change: ConfigChange): NodeId[] {
  const voters = members.filter((m) => m.voter).map((m) => m.id);
  switch (change.kind) {
    case 'addLearner':
      return voters;
    case 'promote':
      return voters.includes(change.id) ? voters : [...voters, change.id];
    case 'remove':
      return voters.filter((id) => id !== change.id);
    default: {
      const never: never = change;
      return never;
    }
  }
}

function majority(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

function seconds(ms: number | undefined): string {
  return ((ms ?? 0) / 1000).toFixed(0);
}

/**
 * Remembers since when each member has been missing from discovery. Feed it only successful
 * lookups, so a DNS error never counts as absence. Time comes in as a number (pure, testable).
 */
export class AbsenceTracker {
  private readonly missingSince = new Map<NodeId, number>();

  observe(memberIds: readonly NodeId[], discoveredIds: readonly NodeId[], nowMs: number): void {
    const seen = new Set(discoveredIds);
    const members = new Set(memberIds);
    for (const id of this.missingSince.keys()) {
      if (seen.has(id) || !members.has(id)) this.missingSince.delete(id);
    }
    for (const id of memberIds) {
      if (!seen.has(id) && !this.missingSince.has(id)) this.missingSince.set(id, nowMs);
    }
  }

  absentForMs(nowMs: number): Map<NodeId, number> {
    const result = new Map<NodeId, number>();
    for (const [id, since] of this.missingSince) result.set(id, nowMs - since);
    return result;
  }
}
