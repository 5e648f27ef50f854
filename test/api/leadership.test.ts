// GET /v1/leadership (this node's own leadership and lease) and If-Term fencing on writes (SPEC §4).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_LEADER_WAIT_MS } from '../../src/api/app.ts';
import { waitFor, withFakeApi as withApi } from './harness.ts';

test('GET /v1/leadership answers leader, term and the lease; a follower has no lease', () =>
  withApi(async (api, ops) => {
    const answer = await api.call('GET', '/v1/leadership');
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.json(), { leader: true, term: 3, leaseRemainingMs: 800 });
    assert.equal(answer.headers['cache-control'], 'no-store');
    ops.setLeader('n2', 4);
    assert.deepEqual((await api.call('GET', '/v1/leadership')).json(), { leader: false, term: 4, leaseRemainingMs: 0 });
    assert.equal(ops.leadershipWaits.length, 0, 'no long poll without ?wait');
  }));

test('GET /v1/leadership?wait holds until the flag, the term or the lease changes', () =>
  withApi(async (api, ops) => {
    // Losing the lease while still leading (a transfer started) ends the wait.
    const lease = api.call('GET', '/v1/leadership?wait=60000&term=3&leader=true');
    await waitFor(() => ops.pendingLeadershipWaits === 1, 'the long poll to reach the runtime');
    assert.deepEqual(ops.leadershipWaits.at(-1), { seen: { leader: true, term: 3, leased: true }, waitMs: 60000 });
    ops.setLease(0);
    assert.deepEqual((await lease).json(), { leader: true, term: 3, leaseRemainingMs: 0 });

    const flag = api.call('GET', '/v1/leadership?wait=60000&term=3&leader=true&leased=false');
    await waitFor(() => ops.pendingLeadershipWaits === 1, 'the long poll to reach the runtime');
    ops.setLeader('n2', 3);
    assert.deepEqual((await flag).json(), { leader: false, term: 3, leaseRemainingMs: 0 });

    const term = api.call('GET', '/v1/leadership?wait=60000&term=3&leader=false');
    await waitFor(() => ops.pendingLeadershipWaits === 1, 'the long poll to reach the runtime');
    ops.setLease(700);
    ops.setLeader('n1', 5);
    assert.deepEqual((await term).json(), { leader: true, term: 5, leaseRemainingMs: 700 });
  }));

test('GET /v1/leadership?wait: what the caller saw defaults to now; a stale term answers at once; the wait expires', () =>
  withApi(async (api, ops) => {
    const expired = await api.call('GET', '/v1/leadership?wait=20');
    assert.deepEqual(expired.json(), { leader: true, term: 3, leaseRemainingMs: 800 });
    assert.deepEqual(ops.leadershipWaits.at(-1), { seen: { leader: true, term: 3, leased: true }, waitMs: 20 });
    const stale = await api.call('GET', '/v1/leadership?wait=60000&term=2&leader=true');
    assert.deepEqual(stale.json(), { leader: true, term: 3, leaseRemainingMs: 800 });
    const capped = api.call('GET', `/v1/leadership?wait=${MAX_LEADER_WAIT_MS * 2}`);
    await waitFor(() => ops.pendingLeadershipWaits === 1, 'the long poll to reach the runtime');
    assert.equal(ops.leadershipWaits.at(-1)?.waitMs, MAX_LEADER_WAIT_MS);
    ops.setLeader('n1', 4);
    assert.equal((await capped).status, 200);
    for (const query of ['wait=-1', 'wait=x', 'wait=10&term=-1', 'wait=10&leader=yes', 'wait=10&leased=2', 'leader=true&leader=false']) {
      const answer = await api.call('GET', `/v1/leadership?${query}`);
      assert.equal(answer.status, 400, query);
      assert.equal((answer.json() as { error: { code: string } }).error.code, 'bad_request');
    }
  }));

test('If-Term travels with PUT and DELETE into the command; the entry term decides (412 when it differs)', () =>
  withApi(async (api, ops) => {
    const ok = await api.call('PUT', '/v1/kv/lock', { body: 'mine', headers: { 'if-term': '3' } });
    assert.equal(ok.status, 200, ok.body.toString());
    assert.deepEqual(ops.proposals.at(-1)?.cmd, { op: 'put', key: 'lock', value: new Uint8Array(Buffer.from('mine')), ifTerm: 3 });
    ops.setLeader('n2', 4);
    const stale = await api.call('PUT', '/v1/kv/lock', { body: 'late', headers: { 'if-term': '3' } });
    assert.equal(stale.status, 412);
    const body = stale.json() as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'precondition_failed');
    assert.match(body.error.message, /If-Term 3 failed: the write was appended in term 4/);
    assert.equal((await api.call('GET', '/v1/kv/lock')).body.toString(), 'mine');
    const del = await api.call('DELETE', '/v1/kv/lock', { headers: { 'if-term': '3', 'if-match': '"1"' } });
    assert.equal(del.status, 412);
    assert.deepEqual(ops.proposals.at(-1)?.cmd, { op: 'del', key: 'lock', ifMatch: 1, ifTerm: 3 });
    const fresh = await api.call('DELETE', '/v1/kv/lock', { headers: { 'if-term': '4' } });
    assert.deepEqual(fresh.json(), { index: 4, term: 4, deleted: true });
  }));

test('a malformed If-Term is 400 and never proposed', () =>
  withApi(async (api, ops) => {
    for (const value of ['0', '-1', 'abc', '1.5', '"3"', '3, 4', '']) {
      const answer = await api.call('PUT', '/v1/kv/k', { body: 'v', headers: { 'if-term': value } });
      assert.equal(answer.status, 400, `If-Term ${JSON.stringify(value)}: ${answer.body.toString()}`);
      assert.match((answer.json() as { error: { message: string } }).error.message, /If-Term must be one term/);
    }
    assert.equal(ops.proposals.length, 0);
  }));
