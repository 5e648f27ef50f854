// The Role grants exactly what the code calls (src/kubernetes/rbac.ts requiredRbacRules), no more
// and no less, in the chart with and without a Lease and in k8s/, with the same resourceNames.
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

// One "group resource verb [names]" line per permission, so differently grouped rules compare equal.
function permissions(rules: readonly Rule[]): string[] {
  const out = new Set<string>();
  for (const rule of rules) {
    const names = rule.resourceNames === undefined ? '' : ` [${[...rule.resourceNames].sort().join(',')}]`;
    for (const group of rule.apiGroups ?? []) {
      for (const resource of rule.resources ?? []) {
        for (const verb of rule.verbs ?? []) out.add(`${group || 'core'} ${resource} ${verb}${names}`);
      }
    }
  }
  return [...out].sort();
}

// The members' Role; the `helm test` hook has a Role of its own (checked in chart.test.ts).
function roleRules(objects: readonly KubeObject[]): Rule[] {
  const isHook = (o: KubeObject): boolean => (o.metadata?.annotations as Record<string, string> | undefined)?.['helm.sh/hook'] !== undefined;
  const roles = objects.filter((o) => (o.kind === 'Role' || o.kind === 'ClusterRole') && !isHook(o));
  assert.deepEqual(roles.map((r) => r.kind), ['Role'], 'one namespaced Role, no ClusterRole');
  return roles[0].rules as Rule[];
}

describe('RBAC matches the code', () => {
  it('the code needs pods, events and its own StatefulSet, and leases only with a Lease', () => {
    assert.deepEqual(permissions(requiredRbacRules(false)), [
      'apps statefulsets get', 'core events create', 'core pods get', 'core pods list', 'core pods patch', 'core pods watch',
    ]);
    assert.deepEqual(
      permissions(requiredRbacRules(false, 'orders-raft')).filter((p) => p.startsWith('apps')),
      ['apps statefulsets get [orders-raft]'],
    );
    assert.deepEqual(
      permissions(requiredRbacRules(true)).filter((p) => p.startsWith('coordination.k8s.io')),
      ['coordination.k8s.io leases create', 'coordination.k8s.io leases get', 'coordination.k8s.io leases update'],
    );
  });

  it('the chart\'s Role without a Lease: statefulsets get limited to the release\'s StatefulSet', async () => {
    const rules = roleRules((await renderChart()).map((o) => o.object));
    assert.deepEqual(permissions(rules), permissions(requiredRbacRules(false, 'raftlet')));
    const custom = roleRules((await renderChart({ releaseName: 'orders', set: { fullnameOverride: 'orders-raft' } })).map((o) => o.object));
    assert.deepEqual(permissions(custom), permissions(requiredRbacRules(false, 'orders-raft')));
  });

  it('the chart\'s Role with a Lease, get and update limited to that Lease', async () => {
    const rules = roleRules((await renderChart({ set: { 'lease.name': 'raftlet-leader' } })).map((o) => o.object));
    const leaseless = permissions(rules).filter((p) => !p.startsWith('coordination.k8s.io'));
    assert.deepEqual(leaseless, permissions(requiredRbacRules(false, 'raftlet')));
    // create cannot be limited by name (the name is not known when the request is authorised).
    assert.deepEqual(permissions(rules).filter((p) => p.startsWith('coordination.k8s.io')), [
      'coordination.k8s.io leases create', 'coordination.k8s.io leases get [raftlet-leader]', 'coordination.k8s.io leases update [raftlet-leader]',
    ]);
    const unnamed = permissions(rules).map((p) => p.replace(/ \[.*\]$/, ''));
    assert.deepEqual([...new Set(unnamed)].sort(), permissions(requiredRbacRules(true)));
  });

  it('the Role of k8s/', async () => {
    assert.deepEqual(permissions(roleRules(await kustomizePlainManifests())), permissions(requiredRbacRules(false, 'raftlet')));
  });
});
