// Scale-down or restart, the rule alone: a StatefulSet scaled to N keeps pods 0..N-1, so a pod whose
// ordinal is at or above the desired replicas is being scaled away (scale.ts reads the replicas from
// the API). Kept apart from scale.ts so that the node runtime and the membership rules can use it
// without loading the Kubernetes client (a member outside Kubernetes never loads it).
import type { NodeId } from '../raft/types.ts';
import { ordinalOf } from './ordinal.ts';

export interface DesiredReplicas {
  /** The StatefulSet's name: its pods are `<name>-<ordinal>`. */
  readonly statefulSet: string;
  /** spec.replicas (1 when absent, as the API server defaults it). */
  readonly replicas: number;
}

/** True when `id` is a pod of that StatefulSet (`<statefulSet>-<ordinal>`). */
export function isStatefulSetPod(id: NodeId, desired: Pick<DesiredReplicas, 'statefulSet'>): boolean {
  return ordinalOf(id)?.prefix === desired.statefulSet;
}

/** True when `id` is a pod of the StatefulSet at or above the desired replicas. */
export function isScaledAway(id: NodeId, desired: DesiredReplicas): boolean {
  const o = ordinalOf(id);
  return o !== null && o.prefix === desired.statefulSet && o.ordinal >= desired.replicas;
}

export type ScaleVerdict =
  /** Scaled away: leave the configuration before exiting (unless replicas is 0: see leave.ts). */
  | { readonly kind: 'scaledAway'; readonly desired: DesiredReplicas; readonly ordinal: number; readonly graceMs: number | null }
  /** Only restarting: stay a member. */
  | { readonly kind: 'staying'; readonly desired: DesiredReplicas; readonly ordinal: number; readonly graceMs: number | null }
  /** Cannot tell: stay a member (never guess a scale-down). */
  | { readonly kind: 'unknown'; readonly reason: string; readonly graceMs: number | null };
