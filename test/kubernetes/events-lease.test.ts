// The LeaderElected Event and the optional Lease mirror, through client-node against the double.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { KubeClient, loadKubeConfig } from '../../src/kubernetes/client.ts';
import { EventRecorder, type EventResult } from '../../src/kubernetes/events.ts';
import { KubernetesAdapters, type LabelResult } from '../../src/kubernetes/index.ts';
import { LeaseMirror, type LeaseResult } from '../../src/kubernetes/lease.ts';
import { specRole, startK8sDouble, type JsonObject, type K8sDouble } from '../support/k8s-double/index.ts';
import { recordingLogger, waitFor } from './helpers.ts';

const MEMBERS = ['raftlet-0', 'raftlet-1', 'raftlet-2'];
const leader = (id: string, term: number) => ({ term, isLeader: true, leaderId: id, memberIds: MEMBERS });

let api: K8sDouble;
const cleanup: (() => Promise<void>)[] = [];

beforeEach(async () => {
  api = await startK8sDouble({ namespace: 'ns1' });
  for (const name of MEMBERS) api.pods.add({ name });
});
afterEach(async () => {
  for (const stop of cleanup.splice(0)) await stop();
  await api.stop();
});

const client = (): KubeClient => new KubeClient(loadKubeConfig(api.kubeconfigPath), { timeoutMs: 2000 });

describe('EventRecorder', () => {
  function recorder(podName: string) {
    const logger = recordingLogger();
    const results: EventResult[] = [];
    const events = new EventRecorder({ client: client(), namespace: 'ns1', podName, logger, onResult: (r) => results.push(r), attempts: 3 });
    cleanup.push(() => events.stop());
    return { events, logger, results };
  }

  it('records LeaderElected on the leader\'s pod with a fresh name, once per term', async () => {
    const { events, results } = recorder('raftlet-1');
    events.leaderElected('raftlet-1', 4);
    events.leaderElected('raftlet-1', 4);
    await events.flush();
    events.leaderElected('raftlet-1', 6);
    await events.flush();
    assert.deepEqual(results, ['ok', 'ok']);
    const recorded = api.events.list();
    assert.equal(recorded.length, 2);
    const names = new Set(recorded.map((e) => (e.metadata as JsonObject).name));
    assert.equal(names.size, 2);
    const pod = api.pods.get('raftlet-1') as JsonObject;
    for (const event of recorded) {
      assert.match(String((event.metadata as JsonObject).name), /^raftlet-1\.[a-z0-9]{5}$/);
      assert.equal(event.reason, 'LeaderElected');
      assert.equal(event.type, 'Normal');
      const involved = event.involvedObject as JsonObject;
      assert.equal(involved.kind, 'Pod');
      assert.equal(involved.name, 'raftlet-1');
      assert.equal(involved.uid, (pod.metadata as JsonObject).uid);
    }
    assert.deepEqual(recorded.map((e) => e.message).sort(), ['raftlet-1 became the Raft leader in term 4', 'raftlet-1 became the Raft leader in term 6']);
  });

  it('retries a failed create, and returns at once while doing so', async () => {
    api.faults.failNext(1, 500, { match: { verb: 'create', resource: 'events' } });
    const { events, results } = recorder('raftlet-0');
    events.leaderElected('raftlet-0', 1);
    assert.deepEqual(results, [], 'leaderElected does not wait for the API');
    await events.flush();
    assert.deepEqual(results, ['ok']);
    assert.deepEqual(
      api.requests.filter((r) => r.resource === 'events').map((r) => r.status),
      [500, 201],
    );
  });

  it('logs the missing RBAC rule when events create is not granted', async () => {
    api.rbac.set(specRole(true).filter((rule) => !rule.resources.includes('events')));
    const { events, logger, results } = recorder('raftlet-0');
    events.leaderElected('raftlet-0', 1);
    await events.flush();
    assert.deepEqual(results, ['forbidden']);
    assert.match(logger.text('error'), /missing the rule "events create in namespace ns1"/);
  });
});

describe('LeaseMirror', () => {
  function mirror(selfId: string) {
    const logger = recordingLogger();
    const results: LeaseResult[] = [];
    const lease = new LeaseMirror({
      client: client(),
      namespace: 'ns1',
      leaseName: 'raftlet-leader',
      selfId,
      logger,
      leaseDurationSeconds: 10,
      renewIntervalMs: 50,
      onResult: (r) => results.push(r),
    });
    lease.start();
    cleanup.push(() => lease.stop());
    return { lease, logger, results };
  }
  const spec = (): JsonObject => (api.leases.get('raftlet-leader')?.spec ?? {}) as JsonObject;
  const termOf = (): string | undefined => ((api.leases.get('raftlet-leader')?.metadata as JsonObject | undefined)?.annotations as JsonObject | undefined)?.['raftlet.io/term'] as string | undefined;

  it('creates the Lease, renews it, and counts leader changes in leaseTransitions', async () => {
    const a = mirror('raftlet-0');
    a.lease.update(leader('raftlet-0', 1));
    await waitFor('lease created', () => spec().holderIdentity === 'raftlet-0');
    assert.equal(spec().leaseTransitions, 0);
    assert.equal(spec().leaseDurationSeconds, 10);
    assert.match(String(spec().renewTime), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    assert.equal(termOf(), '1');
    const firstRenew = spec().renewTime;
    await waitFor('renewed', () => spec().renewTime !== firstRenew);
    assert.equal(spec().leaseTransitions, 0);
    const acquired = spec().acquireTime;

    // raftlet-0 dies; raftlet-1 takes over in term 2.
    await a.lease.stop();
    const b = mirror('raftlet-1');
    b.lease.update(leader('raftlet-1', 2));
    await waitFor('taken over', () => spec().holderIdentity === 'raftlet-1');
    assert.equal(spec().leaseTransitions, 1);
    assert.equal(termOf(), '2');
    assert.notEqual(spec().acquireTime, acquired);
    // Every write went through get/create/update only.
    const verbs = new Set(api.requests.filter((r) => r.resource === 'leases').map((r) => r.verb));
    assert.deepEqual([...verbs].sort(), ['create', 'get', 'update']);
    assert.ok(api.requests.every((r) => r.status !== 403 && r.status !== 400 && r.status !== 422));
  });

  it('a stale leader (older term) does not take the Lease back', async () => {
    const b = mirror('raftlet-1');
    b.lease.update(leader('raftlet-1', 5));
    await waitFor('held by raftlet-1', () => spec().holderIdentity === 'raftlet-1');
    await b.lease.stop();
    const a = mirror('raftlet-0');
    a.lease.update(leader('raftlet-0', 3));
    await waitFor('fenced', () => a.results.includes('fenced'));
    assert.equal(spec().holderIdentity, 'raftlet-1');
    assert.equal(termOf(), '5');
    assert.ok(!a.results.includes('ok'));
  });

  it('reads again after a 409 and keeps the concurrent change', async () => {
    const a = mirror('raftlet-0');
    a.lease.update(leader('raftlet-0', 1));
    await waitFor('lease created', () => spec().holderIdentity === 'raftlet-0');
    await a.lease.stop();
    // Someone else edits the Lease between raftlet-1's read and its update.
    api.faults.afterResponse(1, { verb: 'get', resource: 'leases' }, () => {
      api.leases.update('raftlet-leader', (lease) => {
        (lease.metadata as JsonObject).labels = { edited: 'yes' };
      });
    });
    const b = mirror('raftlet-1');
    b.lease.update(leader('raftlet-1', 2));
    await waitFor('taken over', () => spec().holderIdentity === 'raftlet-1');
    assert.ok(b.results.includes('conflict'));
    assert.deepEqual((api.leases.get('raftlet-leader')?.metadata as JsonObject).labels, { edited: 'yes' });
    assert.equal(spec().leaseTransitions, 1);
  });

  it('logs the missing RBAC rule when leases are not granted', async () => {
    api.rbac.set(specRole(false));
    const a = mirror('raftlet-0');
    a.lease.update(leader('raftlet-0', 1));
    await waitFor('forbidden', () => a.results.includes('forbidden'));
    assert.match(a.logger.text('error'), /missing the rule "leases get in namespace ns1"/);
  });
});

describe('KubernetesAdapters', () => {
  it('labels, records the event and mirrors the Lease from one update()', async () => {
    const labels: LabelResult[] = [];
    const adapters = new KubernetesAdapters({
      kubeconfigPath: api.kubeconfigPath,
      namespace: 'ns1',
      podName: 'raftlet-2',
      selfId: 'raftlet-2',
      roleLabel: 'raftlet.io/role',
      leaseName: 'raftlet',
      logger: recordingLogger(),
      onLabelUpdate: (r) => labels.push(r),
      reconcileIntervalMs: 100,
    });
    cleanup.push(() => adapters.stop());
    adapters.update({ term: 3, isLeader: false, leaderId: null, memberIds: MEMBERS });
    adapters.update(leader('raftlet-2', 3));
    await waitFor('labels', () => MEMBERS.every((m) => api.pods.labels(m)['raftlet.io/role'] === (m === 'raftlet-2' ? 'leader' : 'follower')));
    assert.ok(await adapters.flush(5000));
    assert.equal(api.events.list().length, 1);
    assert.equal((api.leases.get('raftlet')?.spec as JsonObject).holderIdentity, 'raftlet-2');
    assert.deepEqual(labels, ['ok', 'ok', 'ok']);
  });

  it('on taking office the own label PATCH goes out first: the Lease and the LeaderElected event follow it', async () => {
    const adapters = new KubernetesAdapters({
      kubeconfigPath: api.kubeconfigPath,
      namespace: 'ns1',
      podName: 'raftlet-1',
      selfId: 'raftlet-1',
      roleLabel: 'raftlet.io/role',
      leaseName: 'raftlet',
      logger: recordingLogger(),
      reconcileIntervalMs: 60_000,
    });
    cleanup.push(() => adapters.stop());
    adapters.update({ term: 1, isLeader: false, leaderId: 'raftlet-0', memberIds: MEMBERS });
    adapters.update({ term: 2, isLeader: false, leaderId: null, memberIds: MEMBERS });
    // Two reads of the own pod come before the win: the client's warm-up at start and the read at
    // the start of the election. Waiting for either let the second arrive after the win is recorded.
    await waitFor('the warm-up and election-start reads', () => api.requests.filter((r) => r.method === 'GET' && r.name === 'raftlet-1' && r.status === 200).length >= 2);
    const won = api.requests.length;
    adapters.update(leader('raftlet-1', 2));
    await waitFor('the Lease and the event', () => api.events.list().length === 1 && api.leases.get('raftlet') !== undefined);
    const calls = api.requests.slice(won);
    const own = calls.findIndex((r) => r.method === 'PATCH' && r.name === 'raftlet-1');
    const others = calls.findIndex((r) => r.resource === 'leases' || r.resource === 'events');
    assert.equal(own, 0, `calls after the win: ${calls.map((r) => `${r.method} ${r.resource}/${r.name}`).join(', ')}`);
    assert.equal(calls[own]?.status, 200);
    assert.ok(others > own);
    assert.equal((api.leases.get('raftlet')?.spec as JsonObject).holderIdentity, 'raftlet-1');
  });
});
