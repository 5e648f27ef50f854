// Term-fenced role labels through the real @kubernetes/client-node against the API double.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { KubeClient, loadKubeConfig } from '../../src/kubernetes/client.ts';
import { RoleLabeler, type LabelResult, type RoleState } from '../../src/kubernetes/labeler.ts';
import { specRole, startK8sDouble, type K8sDouble, type RequestRecord } from '../support/k8s-double/index.ts';
import { recordingLogger, waitFor } from './helpers.ts';

const ROLE = 'raftlet.io/role';
const TERM = 'raftlet.io/term';
const MEMBERS = ['raftlet-0', 'raftlet-1', 'raftlet-2'];

describe('RoleLabeler', () => {
  let api: K8sDouble;
  let running: RoleLabeler[];

  beforeEach(async () => {
    api = await startK8sDouble({ namespace: 'ns1' });
    for (const name of MEMBERS) {
      api.pods.add({ name, labels: { 'app.kubernetes.io/instance': 'prod', [`${name}/own`]: 'x' }, annotations: { 'example.com/owner': 'another-controller' } });
    }
    running = [];
  });
  afterEach(async () => {
    await Promise.all(running.map((l) => l.stop()));
    await api.stop();
  });

  /** One node's labeler, with its own client (as a separate process would have). */
  function node(selfId: string, timeoutMs = 2000) {
    const logger = recordingLogger();
    const results: LabelResult[] = [];
    const labeler = new RoleLabeler({
      client: new KubeClient(loadKubeConfig(api.kubeconfigPath), { timeoutMs }),
      namespace: 'ns1',
      selfId,
      podName: selfId,
      labelKey: ROLE,
      logger,
      onLabelUpdate: (r) => results.push(r),
      reconcileIntervalMs: 100,
      backoffBaseMs: 20,
      backoffMaxMs: 200,
    });
    labeler.start();
    running.push(labeler);
    return { labeler, logger, results };
  }

  const leader = (id: string, term: number, memberIds = MEMBERS): RoleState => ({ term, isLeader: true, leaderId: id, memberIds });
  const follower = (leaderId: string | null, term: number, memberIds = MEMBERS): RoleState => ({ term, isLeader: false, leaderId, memberIds });
  const roles = (names = MEMBERS): (string | undefined)[] => names.map((n) => api.pods.labels(n)[ROLE]);
  const terms = (names = MEMBERS): (string | undefined)[] => names.map((n) => api.pods.annotations(n)[TERM]);
  async function waitForRequest(from: number, match: (r: RequestRecord) => boolean): Promise<RequestRecord> {
    let found: RequestRecord | undefined;
    await waitFor('the request', () => (found = api.requests.slice(from).find(match)) !== undefined);
    if (found === undefined) throw new Error('unreachable');
    return found;
  }
  const converged = (leaderId: string, term: number) => (): boolean =>
    roles().every((role, i) => role === (MEMBERS[i] === leaderId ? 'leader' : 'follower')) && terms().every((t) => t === String(term));

  it('converges to exactly one leader label, and moves it when the old leader dies without a word', async () => {
    const a = node('raftlet-0');
    const b = node('raftlet-1');
    const c = node('raftlet-2');
    a.labeler.update(leader('raftlet-0', 1));
    b.labeler.update(follower('raftlet-0', 1));
    c.labeler.update(follower('raftlet-0', 1));
    await waitFor('raftlet-0 labelled leader, the others follower, term 1', converged('raftlet-0', 1));
    assert.ok(await a.labeler.flush(5000));

    // raftlet-0 dies: its labeler never runs again. raftlet-1 wins term 2.
    await a.labeler.stop();
    b.labeler.update(leader('raftlet-1', 2));
    c.labeler.update(follower('raftlet-1', 2));
    await waitFor('raftlet-1 labelled leader, the others follower, term 2', converged('raftlet-1', 2));
    assert.equal(roles().filter((r) => r === 'leader').length, 1);

    // Labels and annotations of other controllers survive.
    for (const name of MEMBERS) {
      assert.equal(api.pods.labels(name)['app.kubernetes.io/instance'], 'prod');
      assert.equal(api.pods.labels(name)[`${name}/own`], 'x');
      assert.equal(api.pods.annotations(name)['example.com/owner'], 'another-controller');
    }
    // Only merge patches carrying the resourceVersion that was read; never a PUT.
    const writes = api.requests.filter((r) => r.resource === 'pods' && r.method !== 'GET');
    assert.ok(writes.length >= 6);
    for (const write of writes) {
      assert.equal(write.method, 'PATCH');
      assert.equal(write.contentType, 'application/merge-patch+json');
      const body = write.body as { metadata: Record<string, unknown> };
      assert.match(String(body.metadata.resourceVersion), /^\d+$/);
      assert.deepEqual(Object.keys(body.metadata).sort(), ['annotations', 'labels', 'resourceVersion']);
      assert.deepEqual(Object.keys(body.metadata.labels as object), [ROLE]);
      assert.deepEqual(Object.keys(body.metadata.annotations as object), [TERM]);
    }
    assert.ok(api.requests.every((r) => r.status !== 403), 'every call is within SPEC §7 Role');
    // Followers never write.
    assert.deepEqual(c.results, []);
  });

  it('a stale leader (older term) cannot overwrite the labels of a newer term', async () => {
    const b = node('raftlet-1');
    b.labeler.update(leader('raftlet-1', 5));
    await waitFor('term 5 labels', converged('raftlet-1', 5));
    const patchesBefore = api.requests.filter((r) => r.method === 'PATCH').length;

    // raftlet-0 still believes it leads term 3 (say it was partitioned).
    const a = node('raftlet-0');
    a.labeler.update(leader('raftlet-0', 3));
    await waitFor('the stale leader tried every pod', () => a.results.filter((r) => r === 'fenced').length >= 3);
    assert.ok(!a.results.includes('ok'), `stale leader wrote: ${a.results.join(',')}`);
    assert.equal(api.requests.filter((r) => r.method === 'PATCH').length, patchesBefore);
    assert.ok(converged('raftlet-1', 5)());
    assert.match(a.logger.text('info'), /carries raftlet\.io\/term=5, newer than our term 3/);
  });

  it('a leader that steps down relabels itself follower', async () => {
    const a = node('raftlet-0');
    a.labeler.update(leader('raftlet-0', 1));
    await waitFor('term 1 labels', converged('raftlet-0', 1));
    a.labeler.update(follower(null, 2));
    await waitFor('raftlet-0 relabelled follower in term 2', () => roles()[0] === 'follower' && terms()[0] === '2');
    assert.ok(await a.labeler.flush(5000));
    assert.equal(roles().filter((r) => r === 'leader').length, 0);
  });

  it('retries 409 conflicts by reading again, keeping the concurrent writer\'s change', async () => {
    let writes = 0;
    // Another controller changes raftlet-0 right after each of raftlet's first two reads of it.
    api.faults.afterResponse(2, { verb: 'get', name: 'raftlet-0' }, () => {
      api.pods.update('raftlet-0', (pod) => {
        ((pod.metadata as Record<string, unknown>).labels as Record<string, string>).concurrent = String(++writes);
      });
    });
    const a = node('raftlet-0');
    a.labeler.update(leader('raftlet-0', 1));
    await waitFor('converged despite conflicts', converged('raftlet-0', 1));
    const patches = api.requests.filter((r) => r.method === 'PATCH' && r.name === 'raftlet-0').map((r) => r.status);
    assert.deepEqual(patches, [409, 409, 200]);
    assert.equal(a.results.filter((r) => r === 'conflict').length, 2);
    assert.equal(api.pods.labels('raftlet-0').concurrent, '2');
  });

  it('logs a 403 with the missing RBAC rule, counts it, and converges once the rule is granted', async () => {
    api.rbac.set(specRole(true).map((rule) => (rule.resources.includes('pods') ? { ...rule, verbs: ['get', 'list', 'watch'] } : rule)));
    const a = node('raftlet-0');
    a.labeler.update(leader('raftlet-0', 1));
    await waitFor('a forbidden write', () => a.results.includes('forbidden'));
    assert.match(a.logger.text('error'), /missing the rule "pods patch in namespace ns1"/);
    const logged = a.logger.lines.find((l) => l.level === 'error');
    assert.equal(logged?.obj.rule, 'pods patch in namespace ns1');
    api.rbac.set(specRole(true));
    await waitFor('converged after the Role was fixed', converged('raftlet-0', 1));
  });

  it('honours Retry-After on 429 before calling the API again', async () => {
    api.faults.throttle(1, 1, { verb: 'get' });
    const a = node('raftlet-0');
    a.labeler.update(leader('raftlet-0', 1));
    await waitFor('converged after throttling', converged('raftlet-0', 1));
    assert.ok(a.results.includes('throttled'));
    const index = api.requests.findIndex((r) => r.status === 429);
    const throttledAt = api.requests[index]?.at ?? 0;
    const next = api.requests[index + 1];
    assert.ok(next !== undefined);
    // Retry-After: 1 means no request for a second (timers may round down by a millisecond).
    assert.ok(next.at - throttledAt >= 990, `next call ${next.at - throttledAt} ms after the 429`);
    assert.match(a.logger.text('warn'), /429.*Retry-After/);
  });

  it('keeps trying while the API is down, and converges once it is back', async () => {
    await api.faults.down('refuse');
    const a = node('raftlet-0');
    a.labeler.update(leader('raftlet-0', 1));
    await waitFor('several failed attempts', () => a.results.filter((r) => r === 'error').length >= 2);
    assert.match(a.logger.text('warn'), /failed \(unreachable/);
    await api.faults.up();
    await waitFor('converged after the outage', converged('raftlet-0', 1));
  });

  it('times out calls to an API that hangs, and converges once it answers', async () => {
    api.faults.hang();
    const a = node('raftlet-0', 300);
    a.labeler.update(leader('raftlet-0', 1));
    await waitFor('a timed-out attempt', () => a.results.includes('error'));
    assert.match(a.logger.text('warn'), /timeout/);
    await api.faults.up();
    await waitFor('converged after the hang', converged('raftlet-0', 1));
  });

  it('demotes a stale leader label on a pod of its StatefulSet outside the membership, and leaves other clusters alone', async () => {
    api.pods.add({ name: 'raftlet-3', labels: { [ROLE]: 'leader' }, annotations: { [TERM]: '1' } });
    api.pods.add({ name: 'other-0', labels: { [ROLE]: 'leader' }, annotations: { [TERM]: '9' } });
    const a = node('raftlet-0');
    a.labeler.update(leader('raftlet-0', 2));
    await waitFor('members labelled', converged('raftlet-0', 2));
    await waitFor('raftlet-3 demoted', () => api.pods.labels('raftlet-3')[ROLE] === 'follower');
    assert.equal(api.pods.annotations('raftlet-3')[TERM], '2');
    assert.equal(api.pods.labels('other-0')[ROLE], 'leader');
    assert.equal(api.pods.annotations('other-0')[TERM], '9');
  });

  it('counts a missing member pod as not_found and still labels the others', async () => {
    const a = node('raftlet-0');
    a.labeler.update(leader('raftlet-0', 1, [...MEMBERS, 'raftlet-7']));
    await waitFor('members labelled', converged('raftlet-0', 1));
    await waitFor('not_found counted', () => a.results.includes('not_found'));
  });

  it('does not write again once the labels are right', async () => {
    const a = node('raftlet-0');
    a.labeler.update(leader('raftlet-0', 1));
    await waitFor('converged', converged('raftlet-0', 1));
    const patches = api.requests.filter((r) => r.method === 'PATCH').length;
    const gets = api.requests.filter((r) => r.verb === 'get').length;
    // Several more reconcile rounds (every 100 ms) read the pods...
    await waitFor('two more rounds of reads', () => api.requests.filter((r) => r.verb === 'get').length >= gets + 6);
    // ...and find nothing to change.
    assert.equal(api.requests.filter((r) => r.method === 'PATCH').length, patches);
    assert.deepEqual(a.results, ['ok', 'ok', 'ok']);
  });

  it('update() returns at once even while the API hangs', async () => {
    api.faults.hang();
    const a = node('raftlet-0', 60_000);
    a.labeler.update(leader('raftlet-0', 1));
    // The call above has returned although the first request cannot have been answered.
    await waitFor('a request is in flight', () => api.requests.some((r) => r.status === 0));
    assert.equal(await a.labeler.flush(50), false);
    await api.faults.up();
  });

  /** raftlet-1, a follower of raftlet-0 in term 1, begins an election in term 2 (no leader known) and
   * reads its own pod: the node and that read. */
  async function campaigningInTerm2(): Promise<{ b: ReturnType<typeof node>; read: RequestRecord }> {
    const b = node('raftlet-1');
    b.labeler.update(follower('raftlet-0', 1));
    const from = api.requests.length;
    b.labeler.update(follower(null, 2));
    const read = await waitForRequest(from, (r) => r.method === 'GET' && r.name === 'raftlet-1' && r.status === 200);
    return { b, read };
  }

  it('a node reads its pod when an election begins, and on winning PATCHes with that read at once (no read after the win)', async () => {
    // raftlet-0 is gone; raftlet-1 campaigns in term 2 (term rose, no leader known).
    const { b, read } = await campaigningInTerm2();
    const readVersion = String((api.pods.get('raftlet-1')?.metadata as { resourceVersion: string }).resourceVersion);
    const won = api.requests.length;
    b.labeler.update(leader('raftlet-1', 2));
    await waitFor('term 2 labelled', converged('raftlet-1', 2));
    const after = api.requests.slice(won);
    assert.equal(`${after[0]?.method} ${after[0]?.name}`, 'PATCH raftlet-1', `calls after the win: ${after.map((r) => `${r.method} ${r.name}`).join(', ')}`);
    assert.equal(after[0]?.status, 200);
    assert.equal((after[0]?.body as { metadata: { resourceVersion: string } }).metadata.resourceVersion, readVersion);
    assert.ok(read.at <= (after[0]?.at ?? 0));
    const own = b.logger.lines.find((l) => l.msg.startsWith('labelled pod raftlet-1 raftlet.io/role=leader'));
    assert.equal(own?.obj.read, 'at election start');
    assert.equal(typeof own?.obj.msSinceElected, 'number');
  });

  it('a pod changed after the election-start read: the PATCH gets 409, and the pod is read again and labelled', async () => {
    const { b } = await campaigningInTerm2();
    api.pods.update('raftlet-1', (pod) => {
      ((pod.metadata as Record<string, unknown>).labels as Record<string, string>).concurrent = 'yes';
    });
    const won = api.requests.length;
    b.labeler.update(leader('raftlet-1', 2));
    await waitFor('term 2 labelled', converged('raftlet-1', 2));
    const own = api.requests.slice(won).filter((r) => r.name === 'raftlet-1').map((r) => `${r.method} ${r.status}`);
    assert.deepEqual(own.slice(0, 3), ['PATCH 409', 'GET 200', 'PATCH 200']);
    assert.equal(api.pods.labels('raftlet-1').concurrent, 'yes');
  });

  it('a newer term written after the election-start read is not overwritten (fenced after the 409)', async () => {
    const { b } = await campaigningInTerm2();
    // A leader of term 7 labelled the pod meanwhile; raftlet-1 wins its (older) term 2 nonetheless.
    api.pods.update('raftlet-1', (pod) => {
      const meta = pod.metadata as { labels: Record<string, string>; annotations: Record<string, string> };
      meta.labels[ROLE] = 'follower';
      meta.annotations[TERM] = '7';
    });
    const won = api.requests.length;
    b.labeler.update(leader('raftlet-1', 2));
    await waitFor('fenced', () => b.results.includes('fenced'));
    assert.deepEqual(
      api.requests.slice(won).filter((r) => r.method === 'PATCH' && r.name === 'raftlet-1' && r.status === 200),
      [],
    );
    assert.equal(api.pods.annotations('raftlet-1')[TERM], '7');
    assert.equal(api.pods.labels('raftlet-1')[ROLE], 'follower');
  });

  it('a new leader writes its own label before any other call of its pass (the old leader\'s demotion, followers)', async () => {
    const a = node('raftlet-0');
    a.labeler.update(leader('raftlet-0', 1));
    await waitFor('term 1 labelled', converged('raftlet-0', 1));
    await a.labeler.stop(); // raftlet-0 dies still labelled leader
    const from = api.requests.length;
    const b = node('raftlet-1');
    b.labeler.update(leader('raftlet-1', 2));
    await waitFor('term 2 labelled', converged('raftlet-1', 2));
    const calls = api.requests.slice(from).map((r) => `${r.method} ${r.name || r.resource}`);
    assert.deepEqual(calls.slice(0, 2), ['GET raftlet-1', 'PATCH raftlet-1'], `calls in order: ${calls.join(', ')}`);
    assert.ok(calls.indexOf('PATCH raftlet-0') > 1, 'the old leader is demoted after');
  });
});
