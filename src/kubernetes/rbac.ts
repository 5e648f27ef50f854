// The exact Kubernetes permissions the adapters in this directory use, as data, so the Helm chart
// and the plain manifests can be checked against the code instead of against someone's memory.

export interface PolicyRule {
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  readonly verbs: readonly string[];
  /** Limits the rule to these object names (RBAC cannot do this for create or list). */
  readonly resourceNames?: readonly string[];
}

/**
 * SPEC §7 least privilege, in the pod's own namespace (a Role, not a ClusterRole):
 * - pods get/list/watch/patch: the labeler reads and patches member pods, and lists pods still
 *   labelled leader; watch is granted for operators' tooling and future informers.
 * - events create: the LeaderElected event (core/v1).
 * - statefulsets get, on its own StatefulSet only: the desired replicas, which tell a member being
 *   scaled away (ordinal >= replicas) from one that only restarts (SPEC §7 Scaling).
 * - leases get/create/update: only when RAFTLET_LEASE_NAME is set.
 *
 * statefulSetName (the pods' StatefulSet) narrows the statefulsets rule by resourceNames, as the
 * Helm chart and k8s/ do; without it the rule names no object.
 */
export function requiredRbacRules(leaseEnabled: boolean, statefulSetName?: string): PolicyRule[] {
  const rules: PolicyRule[] = [
    { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'patch'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create'] },
    statefulSetName === undefined
      ? { apiGroups: ['apps'], resources: ['statefulsets'], verbs: ['get'] }
      : { apiGroups: ['apps'], resources: ['statefulsets'], verbs: ['get'], resourceNames: [statefulSetName] },
  ];
  if (leaseEnabled) {
    rules.push({ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] });
  }
  return rules;
}

/** The rule a 403 on (verb, resource) points at, in the words an operator greps a Role for. */
export function describeRule(verb: string, resource: string, namespace: string): string {
  return `${resource} ${verb} in namespace ${namespace}`;
}
