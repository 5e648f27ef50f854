// The double's authorizer: a Role-like table of (apiGroups, resources, verbs) for the one service
// account, checked on every resource request the way RBAC does (discovery paths are always open).

export interface Rule {
  readonly apiGroups: readonly string[];
  /** Subresources as `statefulsets/scale`, as in a Role. */
  readonly resources: readonly string[];
  readonly verbs: readonly string[];
  /** Limits the rule to these object names (never matches a request without a name: list, create). */
  readonly resourceNames?: readonly string[];
}

/**
 * SPEC §7, written out here independently of src/kubernetes/rbac.ts so that a drift between the
 * code's declared rules and the contract shows up in tests instead of being copied along.
 */
export function specRole(leases: boolean, statefulSetName?: string): Rule[] {
  const rules: Rule[] = [
    { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'patch'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create'] },
    // SPEC §7 Scaling: the desired replicas of the member's own StatefulSet (by name, as the chart grants it).
    { apiGroups: ['apps'], resources: ['statefulsets'], verbs: ['get'], ...(statefulSetName === undefined ? {} : { resourceNames: [statefulSetName] }) },
  ];
  if (leases) rules.push({ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] });
  return rules;
}

export function allows(rules: readonly Rule[], group: string, resource: string, verb: string, name?: string): boolean {
  return rules.some(
    (rule) =>
      (rule.apiGroups.includes(group) || rule.apiGroups.includes('*')) &&
      (rule.resources.includes(resource) || rule.resources.includes('*')) &&
      (rule.verbs.includes(verb) || rule.verbs.includes('*')) &&
      (rule.resourceNames === undefined || rule.resourceNames.length === 0 || (name !== undefined && rule.resourceNames.includes(name))),
  );
}
