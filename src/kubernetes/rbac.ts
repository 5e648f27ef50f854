// The exact Kubernetes permissions the adapters in this directory use, as data, so the Helm chart
// and the plain manifests can be checked against the code instead of against someone's memory.

export interface PolicyRule {
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  readonly verbs: readonly string[];
}

/**
 * SPEC §7 least privilege, in the pod's own namespace (a Role, not a ClusterRole):
 * - pods get/list/watch/patch: the labeler reads and patches member pods, and lists pods still
 *   labelled leader; watch is granted for operators' tooling and future informers.
 * - events create: the LeaderElected event (core/v1).
 * - leases get/create/update: only when RAFTLET_LEASE_NAME is set.
 */
export function requiredRbacRules(leaseEnabled: boolean): PolicyRule[] {
  const rules: PolicyRule[] = [
    { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'patch'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create'] },
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
