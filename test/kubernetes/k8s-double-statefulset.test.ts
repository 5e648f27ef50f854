// The double's apps/v1 StatefulSets and their scale subresource (issue 11), driven through the real
// clients: @kubernetes/client-node (what raftlet calls: GET statefulset, under a Role limited by
// resourceNames) and kubectl 1.32 (`kubectl scale`: PATCH of the scale, or GET and PUT back with
// the resourceVersion it read), with the statuses and messages kube-apiserver answers.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { KubeClient, loadKubeConfig, classifyKubeError } from '../../src/kubernetes/client.ts';
import { ScaleReader } from '../../src/kubernetes/scale.ts';
import { specRole, startK8sDouble, type K8sDouble, type JsonObject } from '../support/k8s-double/index.ts';

const run = promisify(execFile);

function dig(value: unknown, ...path: string[]): unknown {
  let node = value;
  for (const key of path) node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[key] : undefined;
  return node;
}

describe('k8s double: statefulsets and the scale subresource', () => {
  let api: K8sDouble;
  const changes: JsonObject[] = [];

  before(async () => {
    api = await startK8sDouble({
      namespace: 'ns1',
      // The chart's Role: get on its own StatefulSet only.
      rules: specRole(false, 'raftlet'),
    });
    api.statefulSets.add({ name: 'raftlet', replicas: 3, podManagementPolicy: 'Parallel' });
    api.statefulSets.add({ name: 'other', replicas: 1 });
    api.pods.add({ name: 'raftlet-2', ownerReferences: [api.statefulSets.ownerReference('raftlet')] });
    api.pods.add({ name: 'loose-0' });
    api.statefulSets.onChange((sts) => changes.push(sts));
  });
  after(async () => {
    await api.stop();
  });

  async function call(method: string, path: string, body?: unknown, contentType = 'application/json') {
    const res = await fetch(`${api.url}${path}`, {
      method,
      headers: { 'Content-Type': contentType, Authorization: `Bearer ${api.token}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as unknown };
  }

  it('raftlet reads its own StatefulSet through client-node; the Role refuses any other by name', async () => {
    const client = new KubeClient(loadKubeConfig(api.kubeconfigPath));
    const sts = await client.getStatefulSet('ns1', 'raftlet');
    assert.equal(sts.spec?.replicas, 3);
    assert.equal(sts.kind, 'StatefulSet');
    assert.equal(sts.apiVersion, 'apps/v1');
    const denied = await client.getStatefulSet('ns1', 'other').catch((err: unknown) => classifyKubeError(err));
    assert.deepEqual(denied, {
      kind: 'forbidden',
      status: 403,
      message: 'statefulsets.apps "other" is forbidden: User "system:serviceaccount:ns1:raftlet" cannot get resource "statefulsets" in API group "apps" in the namespace "ns1"',
    });
    const scale = await new ScaleReader({ client, namespace: 'ns1', podName: 'raftlet-2' }).verdict();
    assert.deepEqual({ kind: scale.kind, desired: scale.kind === 'unknown' ? null : scale.desired, graceMs: scale.graceMs }, {
      kind: 'staying',
      desired: { statefulSet: 'raftlet', replicas: 3 },
      graceMs: 30_000,
    });
    const loose = await new ScaleReader({ client, namespace: 'ns1', podName: 'loose-0' }).verdict();
    assert.deepEqual(loose, { kind: 'unknown', reason: 'pod loose-0 is not owned by a StatefulSet', graceMs: 30_000 });
  });

  it('serves the scale as autoscaling/v1 Scale with the StatefulSet\'s uid and resourceVersion', async () => {
    api.rbac.set([{ apiGroups: ['apps'], resources: ['statefulsets', 'statefulsets/scale'], verbs: ['get', 'update', 'patch'] }]);
    const sts = api.statefulSets.get('raftlet');
    const { status, body } = await call('GET', '/apis/apps/v1/namespaces/ns1/statefulsets/raftlet/scale');
    assert.equal(status, 200);
    assert.equal(dig(body, 'kind'), 'Scale');
    assert.equal(dig(body, 'apiVersion'), 'autoscaling/v1');
    assert.equal(dig(body, 'metadata', 'uid'), dig(sts, 'metadata', 'uid'));
    assert.equal(dig(body, 'metadata', 'resourceVersion'), dig(sts, 'metadata', 'resourceVersion'));
    assert.equal(dig(body, 'spec', 'replicas'), 3);
    assert.equal(dig(body, 'status', 'selector'), 'app.kubernetes.io/name=raftlet');
  });

  it('a scale write goes through to spec.replicas, bumps resourceVersion and generation, and is told to listeners', async () => {
    const before = api.statefulSets.get('raftlet');
    const seen = changes.length;
    const { status, body } = await call('PATCH', '/apis/apps/v1/namespaces/ns1/statefulsets/raftlet/scale', { spec: { replicas: 1 } }, 'application/merge-patch+json');
    assert.equal(status, 200);
    assert.equal(dig(body, 'spec', 'replicas'), 1);
    const after = api.statefulSets.get('raftlet');
    assert.equal(dig(after, 'spec', 'replicas'), 1);
    assert.notEqual(dig(after, 'metadata', 'resourceVersion'), dig(before, 'metadata', 'resourceVersion'));
    assert.equal(dig(after, 'metadata', 'generation'), Number(dig(before, 'metadata', 'generation')) + 1);
    assert.equal(changes.length, seen + 1);
    assert.equal(dig(changes.at(-1), 'spec', 'replicas'), 1);
  });

  it('a PUT of the scale with a stale resourceVersion is 409, a negative one 422, and neither changes anything', async () => {
    const stale = await call('GET', '/apis/apps/v1/namespaces/ns1/statefulsets/raftlet/scale');
    await call('PATCH', '/apis/apps/v1/namespaces/ns1/statefulsets/raftlet/scale', { spec: { replicas: 2 } }, 'application/merge-patch+json');
    const conflict = await call('PUT', '/apis/apps/v1/namespaces/ns1/statefulsets/raftlet/scale', { ...(stale.body as object), spec: { replicas: 5 } });
    assert.equal(conflict.status, 409);
    assert.equal(dig(conflict.body, 'reason'), 'Conflict');
    assert.equal(
      dig(conflict.body, 'message'),
      'Operation cannot be fulfilled on statefulsets.apps "raftlet": the object has been modified; please apply your changes to the latest version and try again',
    );
    const negative = await call('PATCH', '/apis/apps/v1/namespaces/ns1/statefulsets/raftlet/scale', { spec: { replicas: -1 } }, 'application/merge-patch+json');
    assert.equal(negative.status, 422);
    assert.match(String(dig(negative.body, 'message')), /spec.replicas: Invalid value: -1: must be greater than or equal to 0/);
    assert.equal(dig(api.statefulSets.get('raftlet'), 'spec', 'replicas'), 2);
    const missing = await call('GET', '/apis/apps/v1/namespaces/ns1/statefulsets/nope/scale');
    assert.equal(missing.status, 404);
    assert.equal(dig(missing.body, 'message'), 'statefulsets.apps "nope" not found');
  });

  it('authorises the subresource on its own: get on statefulsets does not grant patch on statefulsets/scale', async () => {
    api.rbac.set([{ apiGroups: ['apps'], resources: ['statefulsets'], verbs: ['get', 'patch'] }]);
    const denied = await call('PATCH', '/apis/apps/v1/namespaces/ns1/statefulsets/raftlet/scale', { spec: { replicas: 4 } }, 'application/merge-patch+json');
    assert.equal(denied.status, 403);
    assert.equal(
      dig(denied.body, 'message'),
      'statefulsets.apps "raftlet" is forbidden: User "system:serviceaccount:ns1:raftlet" cannot patch resource "statefulsets/scale" in API group "apps" in the namespace "ns1"',
    );
  });

  it('discovery lists statefulsets/scale as autoscaling/v1 Scale', async () => {
    const { body } = await call('GET', '/apis/apps/v1');
    const resources = dig(body, 'resources') as { name: string; group?: string; version?: string; kind: string; verbs: string[] }[];
    const scale = resources.find((r) => r.name === 'statefulsets/scale');
    assert.deepEqual({ group: scale?.group, version: scale?.version, kind: scale?.kind, verbs: scale?.verbs }, {
      group: 'autoscaling',
      version: 'v1',
      kind: 'Scale',
      verbs: ['get', 'patch', 'update'],
    });
    assert.ok(resources.some((r) => r.name === 'statefulsets' && r.kind === 'StatefulSet'));
  });
});

describe('kubectl scale against the double', () => {
  it('patches the scale, and with --current-replicas or --resource-version reads it and PUTs it back', async () => {
    // client-go never sends a bearer token over plain HTTP: grant the anonymous user what kubectl scale needs.
    const api = await startK8sDouble({
      namespace: 'ns1',
      anonymousRules: [{ apiGroups: ['apps'], resources: ['statefulsets', 'statefulsets/scale'], verbs: ['get', 'list', 'patch', 'update'] }],
    });
    const cache = await mkdtemp(join(tmpdir(), 'kubectl-cache-'));
    try {
      api.statefulSets.add({ name: 'raftlet', replicas: 3 });
      const kubectl = (...args: string[]) => run('kubectl', ['--kubeconfig', api.kubeconfigPath, '--cache-dir', cache, ...args], { timeout: 30_000 });
      const down = await kubectl('scale', 'statefulset', 'raftlet', '--replicas=1');
      assert.equal(down.stdout.trim(), 'statefulset.apps/raftlet scaled');
      assert.equal(dig(api.statefulSets.get('raftlet'), 'spec', 'replicas'), 1);
      const patch = api.requests.find((r) => r.method === 'PATCH');
      assert.deepEqual({ path: patch?.path, type: patch?.contentType, body: patch?.body }, {
        path: '/apis/apps/v1/namespaces/ns1/statefulsets/raftlet/scale',
        type: 'application/merge-patch+json',
        body: { spec: { replicas: 1 } },
      });
      await kubectl('scale', 'sts/raftlet', '--replicas=3', '--current-replicas=1');
      assert.equal(dig(api.statefulSets.get('raftlet'), 'spec', 'replicas'), 3);
      assert.ok(api.requests.some((r) => r.method === 'PUT' && r.status === 200), 'a precondition makes kubectl GET the scale and PUT it back');
      await assert.rejects(kubectl('scale', 'sts/raftlet', '--replicas=5', '--current-replicas=1'), /Expected replicas to be 1, was 3/);
      await assert.rejects(kubectl('scale', 'sts/raftlet', '--replicas=5', '--resource-version=1'), /Expected resource version to be 1, was \d+/);
      assert.equal(dig(api.statefulSets.get('raftlet'), 'spec', 'replicas'), 3);
    } finally {
      await api.stop();
      await rm(cache, { recursive: true, force: true });
    }
  });
});
