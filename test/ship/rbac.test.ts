// The Role grants exactly what the code calls (src/kubernetes/rbac.ts requiredRbacRules), no more
// and no less, in the chart with and without a Lease and in k8s/.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { requiredRbacRules } from '../../src/kubernetes/rbac.ts';
import { kustomizePlainManifests, renderChart } from './render.ts';
import type { KubeObject } from './k8s-schema.ts';

interface Rule {
  readonly apiGroups?: readonly string[];
  readonly resources?: readonly string[];
  readonly verbs?: readonly string[];
  readonly resourceNames?: readonly string[];
}

// One "group resource verb" line per permission, so differently grouped rules compare equal.
function permissions(rules: readonly Rule[]): string[] {
  const out = new Set<string>();
  for (const rule of rules) {
    for (const group of rule.apiGroups ?? []) {
      for (const resource of rule.resources ?? []) {
        for (const verb of rule.verbs ?? []) out.add(`${group || 'core'} ${resource} ${verb}`);
      }
    }
  }
  return [...out].sort();
}

function roleRules(objects: readonly KubeObject[]): Rule[] {
  const roles = objects.filter((o) => o.kind === 'Role' || o.kind === 'ClusterRole');
  assert.deepEqual(roles.map((r) => r.kind), ['Role'], 'one namespaced Role, no ClusterRole');
  return roles[0].rules as Rule[];
}

describe('RBAC matches the code', () => {
  it('the code needs pods and events, and leases only with a Lease', () => {
    assert.deepEqual(permissions(requiredRbacRules(false)), [
      'core events create', 'core pods get', 'core pods list', 'core pods patch', 'core pods watch',
    ]);
    assert.deepEqual(
      permissions(requiredRbacRules(true)).filter((p) => p.startsWith('coordination.k8s.io')),
      ['coordination.k8s.io leases create', 'coordination.k8s.io leases get', 'coordination.k8s.io leases update'],
    );
  });

  it('the chart\'s Role without a Lease', async () => {
    const rules = roleRules((await renderChart()).map((o) => o.object));
    assert.deepEqual(permissions(rules), permissions(requiredRbacRules(false)));
    assert.ok(rules.every((r) => r.resourceNames === undefined));
  });

  it('the chart\'s Role with a Lease, get and update limited to that Lease', async () => {
    const rules = roleRules((await renderChart({ set: { 'lease.name': 'raftlet-leader' } })).map((o) => o.object));
    assert.deepEqual(permissions(rules), permissions(requiredRbacRules(true)));
    for (const rule of rules.filter((r) => r.resources?.includes('leases'))) {
      // create cannot be limited by name (the name is not known when the request is authorised).
      if (rule.verbs?.includes('create')) assert.equal(rule.resourceNames, undefined);
      else assert.deepEqual(rule.resourceNames, ['raftlet-leader']);
    }
  });

  it('the Role of k8s/', async () => {
    assert.deepEqual(permissions(roleRules(await kustomizePlainManifests())), permissions(requiredRbacRules(false)));
  });
});
