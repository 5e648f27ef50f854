// The chart's ValidatingAdmissionPolicy, evaluated for real: its CEL (matchConditions, variables,
// validations) runs in a CEL evaluator (@marcbachmann/cel-js) the way the API server runs it for a
// pod UPDATE (a PATCH is admitted as an UPDATE of the patched object), on raftlet's own patches
// and on patches it must not be able to make.
//
// Where this evaluator and the API server differ: the API server type-checks against the Pod's
// OpenAPI schema and compares lists marked listType=map/set without regard to order, estimates and
// limits CEL cost, and offers Kubernetes' extension libraries; the policy uses none of those
// extensions, and an order-insensitive comparison only allows what an order-sensitive one allows
// and more reorderings, never another change of labels, annotations or spec.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Environment } from '@marcbachmann/cel-js';
import { renderChart } from './render.ts';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = { [key: string]: Json };

interface Policy {
  readonly spec: {
    readonly matchConstraints: { readonly resourceRules: readonly { operations: string[]; resources: string[]; apiGroups: string[] }[] };
    readonly matchConditions: readonly { name: string; expression: string }[];
    readonly variables: readonly { name: string; expression: string }[];
    readonly validations: readonly { expression: string; message: string; reason: string }[];
    readonly failurePolicy: string;
  };
}

const RELEASE = 'orders';
const NAMESPACE = 'shop';
const RAFTLET = `system:serviceaccount:${NAMESPACE}:orders-raftlet`;
const ROLE = 'raftlet.io/role';
const TERM = 'raftlet.io/term';

let policy: Policy;
let binding: Obj;
const env = new Environment()
  .registerVariable('object', 'map')
  .registerVariable('oldObject', 'map')
  .registerVariable('request', 'map')
  .registerVariable('variables', 'map');

before(async () => {
  const objects = (await renderChart({ releaseName: RELEASE, namespace: NAMESPACE })).map((o) => o.object);
  policy = objects.find((o) => o.kind === 'ValidatingAdmissionPolicy') as unknown as Policy;
  binding = objects.find((o) => o.kind === 'ValidatingAdmissionPolicyBinding') as unknown as Obj;
  assert.ok(policy && binding, 'the chart renders the policy and its binding');
});

type Verdict = { readonly allowed: true; readonly matched: boolean } | { readonly allowed: false; readonly message: string };

/** Admission of an UPDATE of oldPod to newPod by user, as the API server evaluates the policy. */
function admit(oldPod: Obj, newPod: Obj, user: string): Verdict {
  const request = { operation: 'UPDATE', userInfo: { username: user, groups: ['system:serviceaccounts'] }, namespace: NAMESPACE };
  const context: Record<string, unknown> = { object: newPod, oldObject: oldPod, request };
  for (const condition of policy.spec.matchConditions) {
    if (env.evaluate(condition.expression, context) !== true) return { allowed: true, matched: false };
  }
  const variables: Record<string, unknown> = {};
  context.variables = variables;
  for (const variable of policy.spec.variables) variables[variable.name] = env.evaluate(variable.expression, context);
  for (const validation of policy.spec.validations) {
    const result: unknown = env.evaluate(validation.expression, context);
    assert.equal(typeof result, 'boolean', `${validation.expression} must give a bool`);
    if (result !== true) return { allowed: false, message: validation.message };
  }
  return { allowed: true, matched: true };
}

function memberPod(overrides: { labels?: Record<string, string>; annotations?: Record<string, string> } = {}): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'orders-raftlet-1',
      namespace: NAMESPACE,
      labels: {
        'app.kubernetes.io/name': 'raftlet',
        'app.kubernetes.io/instance': RELEASE,
        'controller-revision-hash': 'orders-raftlet-7d9c',
        'statefulset.kubernetes.io/pod-name': 'orders-raftlet-1',
        [ROLE]: 'follower',
        ...overrides.labels,
      },
      annotations: { 'kubectl.kubernetes.io/default-container': 'raftlet', [TERM]: '4', 'example.com/owner': 'team-a', ...overrides.annotations },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'orders-raftlet', uid: 'u-1', controller: true }],
      resourceVersion: '1001',
    },
    spec: {
      serviceAccountName: 'orders-raftlet',
      containers: [{ name: 'raftlet', image: 'ghcr.io/raftlet/raftlet:0.1.0', ports: [{ name: 'raft', containerPort: 7070 }] }],
      nodeName: 'node-1',
    },
    status: { phase: 'Running' },
  };
}

/** oldPod with `mutate` applied, as the patched object the API server validates. */
function patched(oldPod: Obj, mutate: (pod: { metadata: { labels: Record<string, string>; annotations: Record<string, string>; finalizers?: string[]; ownerReferences?: Json[] }; spec: { containers: { image: string }[] } }) => void): Obj {
  const copy = structuredClone(oldPod);
  mutate(copy as never);
  return copy;
}

describe('the admission policy', () => {
  it('applies to pod UPDATEs (PATCH included) by raftlet\'s ServiceAccount in the release\'s namespace, and denies on failure', () => {
    assert.deepEqual(policy.spec.matchConstraints.resourceRules, [{ apiGroups: [''], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['pods'] }]);
    assert.equal(policy.spec.failurePolicy, 'Fail');
    assert.deepEqual(binding.spec, {
      policyName: (policy as unknown as { metadata: { name: string } }).metadata.name,
      validationActions: ['Deny'],
      matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NAMESPACE } } },
    });
  });

  it('type-checks every expression', () => {
    const expressions = [...policy.spec.matchConditions, ...policy.spec.variables, ...policy.spec.validations].map((e) => e.expression);
    for (const expression of expressions) {
      const checked = env.check(expression) as { valid: boolean; error?: { message: string } };
      assert.ok(checked.valid, `${expression}: ${checked.error?.message ?? ''}`);
    }
  });

  it('allows what raftlet does: the role label and the term annotation, set, changed or first added', () => {
    const old = memberPod();
    const cases: Array<[string, Obj, Obj]> = [
      ['follower to leader in a new term', old, patched(old, (p) => { p.metadata.labels[ROLE] = 'leader'; p.metadata.annotations[TERM] = '5'; })],
      ['a no-op', old, old],
    ];
    const bare = memberPod();
    delete ((bare.metadata as Obj).labels as Obj)[ROLE];
    delete ((bare.metadata as Obj).annotations as Obj)[TERM];
    cases.push(['labels and annotations that did not exist', bare, patched(bare, (p) => { p.metadata.labels[ROLE] = 'follower'; p.metadata.annotations[TERM] = '12'; })]);
    const none = structuredClone(bare);
    delete (none.metadata as Obj).annotations;
    cases.push(['a pod with no annotations at all', none, patched(none, (p) => { p.metadata.annotations = { [TERM]: '1' }; })]);
    for (const [what, before, after] of cases) assert.deepEqual(admit(before, after, RAFTLET), { allowed: true, matched: true }, what);
  });

  it('denies every other change by raftlet\'s ServiceAccount, saying why', () => {
    const old = memberPod();
    const other = memberPod({ labels: { 'app.kubernetes.io/instance': 'billing' } });
    const testPod = memberPod({ labels: { 'app.kubernetes.io/name': 'raftlet-test' } });
    const cases: Array<[string, Obj, Obj, RegExp]> = [
      ['another label changed', old, patched(old, (p) => { p.metadata.labels['app.kubernetes.io/name'] = 'x'; }), /may change no label but raftlet\.io\/role/],
      ['a label added', old, patched(old, (p) => { p.metadata.labels.evil = 'yes'; }), /may change no label/],
      ['another controller\'s label removed', old, patched(old, (p) => { delete p.metadata.labels['controller-revision-hash']; }), /may change no label/],
      ['a role that is not leader or follower', old, patched(old, (p) => { p.metadata.labels[ROLE] = 'king'; }), /may only be leader or follower/],
      ['another annotation changed', old, patched(old, (p) => { p.metadata.annotations['example.com/owner'] = 'mallory'; }), /no annotation but raftlet\.io\/term/],
      ['an annotation added', old, patched(old, (p) => { p.metadata.annotations['x'] = '1'; }), /no annotation but/],
      ['an annotation removed', old, patched(old, (p) => { delete p.metadata.annotations['example.com/owner']; }), /no annotation but/],
      ['a term that is not a number', old, patched(old, (p) => { p.metadata.annotations[TERM] = '5; rm -rf'; }), /decimal term/],
      ['the spec (image)', old, patched(old, (p) => { p.spec.containers[0].image = 'evil:latest'; }), /may not change a pod's spec/],
      ['a finalizer added', old, patched(old, (p) => { p.metadata.finalizers = ['example.com/block']; }), /finalizers or owners/],
      ['the owner removed', old, patched(old, (p) => { p.metadata.ownerReferences = []; }), /finalizers or owners/],
      ['a pod of another release', other, patched(other, (p) => { p.metadata.labels[ROLE] = 'leader'; }), /only change member pods of release orders/],
      ['the helm test pod of its own release', testPod, patched(testPod, (p) => { p.metadata.labels[ROLE] = 'leader'; }), /only change member pods/],
    ];
    for (const [what, before, after, message] of cases) {
      const verdict = admit(before, after, RAFTLET);
      assert.equal(verdict.allowed, false, what);
      if (!verdict.allowed) assert.match(verdict.message, message, what);
    }
  });

  it('leaves everyone else alone: other users, and other ServiceAccounts with a similar name', () => {
    const old = memberPod();
    const image = patched(old, (p) => { p.spec.containers[0].image = 'new:1'; p.metadata.labels.team = 'x'; });
    for (const user of ['system:serviceaccount:kube-system:statefulset-controller', 'alice@example.com', `${RAFTLET}-test`, `system:serviceaccount:other:orders-raftlet`]) {
      assert.deepEqual(admit(old, image, user), { allowed: true, matched: false }, user);
    }
  });

  it('allows exactly the patches that touch nothing but the role label and a decimal term (property)', () => {
    const key = fc.constantFrom('a', 'b', 'example.com/c', ROLE, TERM);
    const value = fc.constantFrom('leader', 'follower', 'x', '7', '12', '');
    const map = fc.dictionary(key, value, { maxKeys: 4 });
    fc.assert(fc.property(map, map, map, map, (oldLabels, newLabels, oldAnnotations, newAnnotations) => {
      const base = memberPod();
      const meta = (pod: Obj): Obj => pod.metadata as Obj;
      const withMaps = (labels: Record<string, string>, annotations: Record<string, string>): Obj => {
        const pod = structuredClone(base);
        meta(pod).labels = { 'app.kubernetes.io/name': 'raftlet', 'app.kubernetes.io/instance': RELEASE, ...labels };
        meta(pod).annotations = annotations;
        return pod;
      };
      const before = withMaps(oldLabels, oldAnnotations);
      const after = withMaps(newLabels, newAnnotations);
      const sameExcept = (a: Record<string, string>, b: Record<string, string>, except: string): boolean =>
        [...new Set([...Object.keys(a), ...Object.keys(b)])].every((k) => k === except || a[k] === b[k]);
      const roleOk = !(ROLE in newLabels) || newLabels[ROLE] === 'leader' || newLabels[ROLE] === 'follower';
      const termOk = !(TERM in newAnnotations) || /^[0-9]+$/.test(newAnnotations[TERM]);
      const expected = sameExcept(oldLabels, newLabels, ROLE) && sameExcept(oldAnnotations, newAnnotations, TERM) && roleOk && termOk;
      assert.equal(admit(before, after, RAFTLET).allowed, expected, JSON.stringify({ oldLabels, newLabels, oldAnnotations, newAnnotations }));
    }), { numRuns: 300 });
  });

  it('follows a custom role label, and can be switched off', async () => {
    const objects = (await renderChart({ releaseName: RELEASE, namespace: NAMESPACE, set: { roleLabel: 'example.com/raft-role' } })).map((o) => o.object);
    const custom = objects.find((o) => o.kind === 'ValidatingAdmissionPolicy') as unknown as Policy;
    assert.ok(custom.spec.validations.some((v) => v.expression.includes('"example.com/raft-role"')));
    assert.ok(!custom.spec.validations.some((v) => v.expression.includes(ROLE)));
    const off = (await renderChart({ set: { 'admissionPolicy.enabled': false } })).map((o) => o.object.kind);
    assert.ok(!off.includes('ValidatingAdmissionPolicy') && !off.includes('ValidatingAdmissionPolicyBinding'));
  });
});
