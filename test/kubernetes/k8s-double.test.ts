// The Kubernetes API test double itself: it must refuse what kube-apiserver refuses, with the same
// statuses and messages, or the adapter tests that run against it prove nothing.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { requiredRbacRules } from '../../src/kubernetes/rbac.ts';
import { specRole, startK8sDouble, type K8sDouble } from '../support/k8s-double/index.ts';

const run = promisify(execFile);

/** Reads a nested field of a decoded JSON body (undefined where the path does not exist). */
function dig(value: unknown, ...path: string[]): unknown {
  let node = value;
  for (const key of path) node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[key] : undefined;
  return node;
}
const names = (list: unknown): unknown[] => (dig(list, 'items') as unknown[]).map((item) => dig(item, 'metadata', 'name'));

describe('k8s double', () => {
  let api: K8sDouble;

  before(async () => {
    api = await startK8sDouble({ namespace: 'ns1' });
    api.pods.add({ name: 'raftlet-0', labels: { team: 'a' }, annotations: { 'example.com/keep': 'yes' } });
    api.pods.add({ name: 'raftlet-1', labels: { 'raftlet.io/role': 'leader' } });
    api.pods.add({ name: 'raftlet-2', labels: { 'raftlet.io/role': 'follower' } });
  });
  after(async () => {
    await api.stop();
  });

  async function call(method: string, path: string, body?: unknown, contentType = 'application/json', token: string | null = api.token) {
    const headers: Record<string, string> = { 'Content-Type': contentType };
    if (token !== null) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(`${api.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, headers: res.headers, body: (await res.json()) as unknown };
  }
  const podPath = (name: string): string => `/api/v1/namespaces/ns1/pods/${name}`;

  it('serves pods as real Kubernetes JSON', async () => {
    const { status, body } = await call('GET', podPath('raftlet-0'));
    assert.equal(status, 200);
    assert.equal(dig(body, 'kind'), 'Pod');
    assert.equal(dig(body, 'apiVersion'), 'v1');
    assert.equal(dig(body, 'metadata', 'name'), 'raftlet-0');
    assert.equal(dig(body, 'metadata', 'namespace'), 'ns1');
    assert.match(String(dig(body, 'metadata', 'uid')), /^[0-9a-f-]{36}$/);
    assert.match(String(dig(body, 'metadata', 'resourceVersion')), /^\d+$/);
    assert.match(String(dig(body, 'metadata', 'creationTimestamp')), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.deepEqual(dig(body, 'metadata', 'labels'), { 'app.kubernetes.io/name': 'raftlet', team: 'a' });
    assert.equal(dig(body, 'status', 'phase'), 'Running');
  });

  it('answers 404 NotFound with a Status for an unknown pod', async () => {
    const { status, body } = await call('GET', podPath('nope'));
    assert.equal(status, 404);
    assert.deepEqual(body, {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'pods "nope" not found',
      reason: 'NotFound',
      details: { name: 'nope', kind: 'pods' },
      code: 404,
    });
  });

  it('merges labels with a merge patch, keeps the others, and moves resourceVersion', async () => {
    const before = api.pods.get('raftlet-0');
    const rv = Number((before?.metadata as Record<string, string>).resourceVersion);
    const { status, body } = await call('PATCH', podPath('raftlet-0'), { metadata: { labels: { 'raftlet.io/role': 'leader' } } }, 'application/merge-patch+json');
    assert.equal(status, 200);
    assert.deepEqual(dig(body, 'metadata', 'labels'), { 'app.kubernetes.io/name': 'raftlet', team: 'a', 'raftlet.io/role': 'leader' });
    assert.deepEqual(dig(body, 'metadata', 'annotations'), { 'example.com/keep': 'yes' });
    assert.ok(Number(dig(body, 'metadata', 'resourceVersion')) > rv);
    // The same patch again changes nothing, so the version stays.
    const again = await call('PATCH', podPath('raftlet-0'), { metadata: { labels: { 'raftlet.io/role': 'leader' } } }, 'application/merge-patch+json');
    assert.equal(dig(again.body, 'metadata', 'resourceVersion'), dig(body, 'metadata', 'resourceVersion'));
  });

  it('merges maps with a strategic merge patch and deletes with null', async () => {
    const { status, body } = await call('PATCH', podPath('raftlet-0'), { metadata: { labels: { team: null, tier: 'db' } } }, 'application/strategic-merge-patch+json');
    assert.equal(status, 200);
    assert.equal(dig(body, 'metadata', 'labels', 'team'), undefined);
    assert.equal(dig(body, 'metadata', 'labels', 'tier'), 'db');
    assert.equal(dig(body, 'metadata', 'labels', 'raftlet.io/role'), 'leader');
  });

  it('applies a JSON patch, and reads an object body sent as JSON patch as malformed', async () => {
    const ok = await call('PATCH', podPath('raftlet-2'), [{ op: 'add', path: '/metadata/labels/zone', value: 'a' }], 'application/json-patch+json');
    assert.equal(ok.status, 200);
    assert.equal(dig(ok.body, 'metadata', 'labels', 'zone'), 'a');
    // What client-node sends if the content type is not set explicitly.
    const wrong = await call('PATCH', podPath('raftlet-2'), { metadata: { labels: { zone: 'b' } } }, 'application/json-patch+json');
    assert.equal(wrong.status, 400);
    assert.equal(api.pods.labels('raftlet-2').zone, 'a');
  });

  it('refuses a patch with any other content type: 415 with a Status', async () => {
    const { status, body } = await call('PATCH', podPath('raftlet-0'), { metadata: { labels: { x: 'y' } } }, 'application/json');
    assert.equal(status, 415);
    assert.equal(dig(body, 'kind'), 'Status');
    assert.equal(dig(body, 'reason'), 'UnsupportedMediaType');
    assert.match(String(dig(body, 'message')), /application\/merge-patch\+json/);
    assert.equal(api.pods.labels('raftlet-0').x, undefined);
  });

  it('refuses a patch carrying a stale resourceVersion: 409 Conflict', async () => {
    const stale = (api.pods.get('raftlet-1')?.metadata as Record<string, string>).resourceVersion;
    api.pods.update('raftlet-1', (pod) => {
      ((pod.metadata as Record<string, unknown>).labels as Record<string, string>).other = 'controller';
    });
    const { status, body } = await call(
      'PATCH',
      podPath('raftlet-1'),
      { metadata: { resourceVersion: stale, labels: { 'raftlet.io/role': 'follower' } } },
      'application/merge-patch+json',
    );
    assert.equal(status, 409);
    assert.equal(dig(body, 'reason'), 'Conflict');
    assert.equal(dig(body, 'message'), 'Operation cannot be fulfilled on pods "raftlet-1": the object has been modified; please apply your changes to the latest version and try again');
    assert.equal(api.pods.labels('raftlet-1')['raftlet.io/role'], 'leader');
    // With the current version it goes through.
    const current = (api.pods.get('raftlet-1')?.metadata as Record<string, string>).resourceVersion;
    const ok = await call('PATCH', podPath('raftlet-1'), { metadata: { resourceVersion: current, labels: { 'raftlet.io/role': 'follower' } } }, 'application/merge-patch+json');
    assert.equal(ok.status, 200);
  });

  it('refuses invalid label values (422) and non-string annotations (400)', async () => {
    const label = await call('PATCH', podPath('raftlet-0'), { metadata: { labels: { role: 'not valid!' } } }, 'application/merge-patch+json');
    assert.equal(label.status, 422);
    assert.equal(dig(label.body, 'reason'), 'Invalid');
    const annotation = await call('PATCH', podPath('raftlet-0'), { metadata: { annotations: { 'raftlet.io/term': 7 } } }, 'application/merge-patch+json');
    assert.equal(annotation.status, 400);
    assert.match(String(dig(annotation.body, 'message')), /cannot unmarshal number .* of type string/);
  });

  it('answers 403 with the API server\'s message for anything outside the Role', async () => {
    const put = await call('PUT', podPath('raftlet-0'), api.pods.get('raftlet-0'));
    assert.equal(put.status, 403);
    assert.equal(dig(put.body, 'reason'), 'Forbidden');
    assert.equal(
      dig(put.body, 'message'),
      `pods "raftlet-0" is forbidden: User "system:serviceaccount:ns1:raftlet" cannot update resource "pods" in API group "" in the namespace "ns1"`,
    );
    const del = await call('DELETE', podPath('raftlet-0'));
    assert.equal(del.status, 403);
    const secrets = await call('GET', '/api/v1/namespaces/ns1/pods?watch=1');
    assert.equal(secrets.status, 400, 'watch is allowed by the Role but not modelled');
    const cluster = await call('GET', '/api/v1/pods');
    assert.equal(cluster.status, 403);
    assert.match(String(dig(cluster.body, 'message')), /cannot list resource "pods" in API group "" at the cluster scope/);
    const elsewhere = await call('GET', '/api/v1/namespaces/ns2/pods/raftlet-0');
    assert.equal(elsewhere.status, 403);
    assert.match(String(dig(elsewhere.body, 'message')), /in the namespace "ns2"/);
    const events = await call('GET', '/api/v1/namespaces/ns1/events');
    assert.equal(dig(events.body, 'message'), `events is forbidden: User "system:serviceaccount:ns1:raftlet" cannot list resource "events" in API group "" in the namespace "ns1"`);
  });

  it('authenticates: a wrong token is 401, no token is the anonymous user', async () => {
    const wrong = await call('GET', podPath('raftlet-0'), undefined, 'application/json', 'nope');
    assert.equal(wrong.status, 401);
    assert.equal(dig(wrong.body, 'reason'), 'Unauthorized');
    const anonymous = await call('GET', podPath('raftlet-0'), undefined, 'application/json', null);
    assert.equal(anonymous.status, 403);
    assert.match(String(dig(anonymous.body, 'message')), /User "system:anonymous" cannot get resource "pods"/);
    const discovery = await call('GET', '/api', undefined, 'application/json', null);
    assert.equal(discovery.status, 200);
    assert.equal(dig(discovery.body, 'kind'), 'APIVersions');
  });

  it('lists pods with a label selector', async () => {
    const list = await call('GET', '/api/v1/namespaces/ns1/pods?labelSelector=raftlet.io%2Frole%3Dleader');
    assert.equal(dig(list.body, 'kind'), 'PodList');
    assert.deepEqual(names(list.body), ['raftlet-0']);
    const set = await call('GET', '/api/v1/namespaces/ns1/pods?labelSelector=raftlet.io%2Frole%20in%20(leader,follower),!zone');
    assert.deepEqual(names(set.body), ['raftlet-0', 'raftlet-1']);
  });

  it('creates events with generateName and checks involvedObject', async () => {
    const event = {
      metadata: { generateName: 'raftlet-0.' },
      involvedObject: { kind: 'Pod', name: 'raftlet-0', namespace: 'ns1' },
      reason: 'LeaderElected',
      message: 'm',
      type: 'Normal',
    };
    const created = await call('POST', '/api/v1/namespaces/ns1/events', event);
    assert.equal(created.status, 201);
    assert.match(String(dig(created.body, 'metadata', 'name')), /^raftlet-0\.[a-z0-9]{5}$/);
    const mismatched = await call('POST', '/api/v1/namespaces/ns1/events', { ...event, involvedObject: { ...event.involvedObject, namespace: 'other' } });
    assert.equal(mismatched.status, 422);
  });

  it('handles leases: create, conflicting update, update without version, MicroTime format', async () => {
    const base = '/apis/coordination.k8s.io/v1/namespaces/ns1/leases';
    const micro = '2026-01-01T00:00:00.000000Z';
    const created = await call('POST', base, { metadata: { name: 'l1' }, spec: { holderIdentity: 'a', leaseDurationSeconds: 15, renewTime: micro } });
    assert.equal(created.status, 201);
    assert.equal(dig(created.body, 'kind'), 'Lease');
    assert.equal(dig(created.body, 'apiVersion'), 'coordination.k8s.io/v1');
    const again = await call('POST', base, { metadata: { name: 'l1' }, spec: {} });
    assert.equal(again.status, 409);
    assert.equal(dig(again.body, 'reason'), 'AlreadyExists');
    assert.equal(dig(again.body, 'message'), 'leases.coordination.k8s.io "l1" already exists');
    type Obj = Record<string, unknown>;
    const lease = created.body as Obj;
    const withSpec = (obj: Obj, change: Obj): Obj => ({ ...obj, spec: { ...(obj.spec as Obj), ...change } });
    const updated = await call('PUT', `${base}/l1`, withSpec(lease, { holderIdentity: 'b' }));
    assert.equal(updated.status, 200);
    const stale = await call('PUT', `${base}/l1`, withSpec(lease, { holderIdentity: 'c' }));
    assert.equal(stale.status, 409);
    assert.equal(dig(stale.body, 'reason'), 'Conflict');
    const noVersion = await call('PUT', `${base}/l1`, { ...lease, metadata: { name: 'l1' } });
    assert.equal(noVersion.status, 422);
    const millis = await call('PUT', `${base}/l1`, withSpec(updated.body as Obj, { renewTime: '2026-01-01T00:00:00.000Z' }));
    assert.equal(millis.status, 400);
    assert.match(String(dig(millis.body, 'message')), /2006-01-02T15:04:05\.000000Z07:00/);
    assert.equal(dig(api.leases.get('l1'), 'spec', 'holderIdentity'), 'b');
  });

  it('injects 429 with Retry-After, 500, delays, and records requests', async () => {
    api.faults.throttle(1, 3, { verb: 'get', name: 'raftlet-2' });
    api.faults.failNext(1, 500, { match: { verb: 'get', name: 'raftlet-2' } });
    const throttled = await call('GET', podPath('raftlet-2'));
    assert.equal(throttled.status, 429);
    assert.equal(throttled.headers.get('retry-after'), '3');
    assert.equal(dig(throttled.body, 'details', 'retryAfterSeconds'), 3);
    const failed = await call('GET', podPath('raftlet-2'));
    assert.equal(failed.status, 500);
    assert.equal(dig(failed.body, 'reason'), 'InternalError');
    assert.equal((await call('GET', podPath('raftlet-2'))).status, 200);
    const statuses = api.requests.filter((r) => r.name === 'raftlet-2' && r.verb === 'get').map((r) => r.status);
    assert.deepEqual(statuses.slice(-3), [429, 500, 200]);
  });

  it('goes down (connection refused) and comes back on the same port', async () => {
    await api.faults.down('refuse');
    try {
      // A pooled keep-alive connection may fail first with "other side closed"; a new one is refused.
      let code: string | undefined;
      for (let attempt = 0; attempt < 5 && code !== 'ECONNREFUSED'; attempt++) {
        const err = await fetch(`${api.url}/api`).then(
          () => assert.fail('the double answered while down'),
          (e: Error & { cause?: { code?: string } }) => e,
        );
        code = err.cause?.code;
      }
      assert.equal(code, 'ECONNREFUSED');
    } finally {
      await api.faults.up();
    }
    assert.equal((await call('GET', '/api')).status, 200);
    await api.faults.down('reset');
    try {
      await assert.rejects(fetch(`${api.url}/api`));
    } finally {
      await api.faults.up();
    }
    assert.equal((await call('GET', '/api')).status, 200);
  });

  it('holds requests when hung, until released', async () => {
    api.faults.hang({ name: 'raftlet-0' });
    const pending = fetch(`${api.url}${podPath('raftlet-0')}`, { headers: { Authorization: `Bearer ${api.token}` }, signal: AbortSignal.timeout(200) });
    await assert.rejects(pending, (err: Error) => err.name === 'TimeoutError');
    await api.faults.up();
    assert.equal((await call('GET', podPath('raftlet-0'))).status, 200);
  });
});

describe('RBAC rules', () => {
  it('the code declares exactly the rules of SPEC §7 (with and without a Lease)', () => {
    assert.deepEqual(requiredRbacRules(true), specRole(true));
    assert.deepEqual(requiredRbacRules(false), specRole(false));
  });
});

describe('kubectl against the double', () => {
  it('kubectl get pods -L raftlet.io/role shows the role column, and -l selects the leader', async () => {
    // client-go never sends a bearer token over plain HTTP: grant the anonymous user view access.
    const api = await startK8sDouble({ namespace: 'ns1', anonymousRules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }] });
    const cache = await mkdtemp(join(tmpdir(), 'kubectl-cache-'));
    try {
      api.pods.add({ name: 'raftlet-0', labels: { 'raftlet.io/role': 'follower' } });
      api.pods.add({ name: 'raftlet-1', labels: { 'raftlet.io/role': 'leader' } });
      api.pods.add({ name: 'raftlet-2' });
      const kubectl = (...args: string[]) => run('kubectl', ['--kubeconfig', api.kubeconfigPath, '--cache-dir', cache, ...args], { timeout: 30_000 });
      const all = await kubectl('get', 'pods', '-L', 'raftlet.io/role');
      const rows = all.stdout.trim().split('\n').map((line) => line.split(/\s+/));
      assert.deepEqual(rows[0], ['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE', 'ROLE']);
      assert.deepEqual(rows.slice(1).map((r) => [r[0], r[5]]), [['raftlet-0', 'follower'], ['raftlet-1', 'leader'], ['raftlet-2', undefined]]);
      const leader = await kubectl('get', 'pods', '-l', 'raftlet.io/role=leader', '-L', 'raftlet.io/role', '--no-headers');
      assert.match(leader.stdout, /^raftlet-1\s+1\/1\s+Running\s+0\s+\S+\s+leader\s*$/);
      assert.ok(api.requests.some((r) => r.verb === 'list' && r.accept.includes('as=Table')), 'kubectl asked for a Table');
    } finally {
      await api.stop();
      await rm(cache, { recursive: true, force: true });
    }
  });
});
