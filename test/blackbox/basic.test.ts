// Three real nodes: one leader, writes through any node, linearizable reads everywhere, stale reads
// converge; and the `raftlet status/get/put/del --api URL` client against that cluster.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { clusterHooks, runRaftlet as raftlet, waitUntil, type ApiStatus, type Cluster } from '../support/cluster.ts';

describe('a 3-node cluster of real processes', () => {
  const clusters = clusterHooks();
  let c: Cluster;
  before(async () => {
    c = await clusters.start({ nodes: 3, name: 'basic' });
  });

  test('elects exactly one leader that every node agrees on', async () => {
    const leader = await c.waitForLeader();
    const statuses: ApiStatus[] = await Promise.all(c.ordinals.map((n) => c.status(n)));
    const leaders = statuses.filter((s) => s.role === 'leader');
    assert.equal(leaders.length, 1, `exactly one node says leader: ${JSON.stringify(statuses)}`);
    assert.equal(leaders[0].id, leader.id);
    for (const s of statuses) {
      assert.equal(s.leader, leader.id, `${s.id} knows the leader`);
      assert.equal(s.term, leader.term, `${s.id} is in the leader's term`);
      assert.deepEqual(s.members.map((m) => m.id).sort(), ['node-1', 'node-2', 'node-3']);
      assert.ok(s.members.every((m) => m.voter));
    }
    const answer = await c.request(leader.node === 1 ? 2 : 1, 'GET', '/v1/leader');
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.json(), { id: leader.id, url: c.spec(leader.node).peerUrl, term: leader.term });
  });

  test('every node accepts writes and every node serves them with linearizable reads', async () => {
    await c.waitForLeader();
    for (const writer of c.ordinals) {
      const key = `written-through-${writer}`;
      const value = `value from node ${writer} ${'é'.repeat(writer)}`;
      const { index } = await c.putOk(writer, key, value);
      assert.ok(index > 0);
      // Linearizable by default: every node must see the write the moment it was acknowledged.
      for (const reader of c.ordinals) {
        const answer = await c.get(reader, key);
        assert.equal(answer.status, 200, `GET ${key} on node ${reader}: ${answer.text}`);
        assert.equal(answer.text, value, `node ${reader} reads what node ${writer} wrote`);
        assert.equal(answer.headers.etag, `"${index}"`, 'the ETag is the modIndex the PUT answered');
      }
    }
  });

  test('an overwrite is visible at once to linearizable reads and eventually to stale reads', async () => {
    await c.waitForLeader();
    await c.putOk(1, 'counter', 'one');
    const { index } = await c.putOk(2, 'counter', 'two');
    for (const reader of c.ordinals) assert.equal(await c.getText(reader, 'counter'), 'two');
    for (const reader of c.ordinals) {
      await waitUntil(`node ${reader} to serve "two" from its local copy`, async () => {
        const answer = await c.get(reader, 'counter', { consistency: 'stale' });
        return answer.status === 200 && answer.text === 'two' && answer.headers.etag === `"${index}"`;
      });
    }
  });

  test('delete, compare-and-set and create-only behave the same through every node', async () => {
    await c.waitForLeader();
    const { index } = await c.putOk(3, 'cas', 'v1');
    assert.equal((await c.put(1, 'cas', 'v2', { ifMatch: index + 1000 })).status, 412);
    const second = await c.putOk(2, 'cas', 'v2', { ifMatch: index });
    assert.equal(await c.getText(3, 'cas'), 'v2');
    assert.equal((await c.put(3, 'cas', 'v3', { ifNoneMatch: true })).status, 412);
    const deleted = await c.del(1, 'cas', { ifMatch: second.index });
    assert.equal(deleted.status, 200, deleted.text);
    assert.equal(deleted.json<{ deleted: boolean }>().deleted, true);
    for (const reader of c.ordinals) {
      const answer = await c.get(reader, 'cas');
      assert.equal(answer.status, 404);
      assert.equal(answer.errorCode, 'not_found');
      assert.equal(answer.headers.etag, undefined, 'a deleted key has no ETag');
    }
    const again = await c.del(2, 'cas');
    assert.equal(again.status, 200);
    assert.equal(again.json<{ deleted: boolean }>().deleted, false);
  });

  test('raftlet status/get/put/del --api URL work against the cluster', async () => {
    const leader = await c.waitForLeader();
    const follower = c.ordinals.find((n) => n !== leader.node) ?? 1;
    const other = c.ordinals.find((n) => n !== leader.node && n !== follower) ?? 1;
    const api = (n: number): string => c.spec(n).apiUrl;

    const status = await raftlet(['status', '--api', api(follower)]);
    assert.equal(status.code, 0, status.stderr);
    const parsed = JSON.parse(status.stdout) as ApiStatus;
    assert.equal(parsed.id, c.spec(follower).id);
    assert.equal(parsed.leader, leader.id);

    const put = await raftlet(['put', 'cli-key', 'cli value', '--api', api(follower)]);
    assert.equal(put.code, 0, put.stderr);
    const { index } = JSON.parse(put.stdout) as { index: number };
    assert.ok(Number.isSafeInteger(index) && index > 0, put.stdout);

    // Three independent commands at once: each is a whole Node process start.
    const [get, stale, cas] = await Promise.all([
      raftlet(['get', 'cli-key', '--api', api(other)]),
      // read-your-writes on the node that took the write (SPEC §4), so a stale read there sees it
      raftlet(['get', 'cli-key', '--stale', '--api', api(follower)]),
      raftlet(['put', 'cli-key', 'newer', '--if-match', String(index + 1000), '--api', api(other)]),
    ]);
    assert.equal(get.code, 0, get.stderr);
    assert.equal(get.stdout, 'cli value', 'a pipe gets the exact bytes');
    assert.equal(stale.code, 0, stale.stderr);
    assert.equal(stale.stdout, 'cli value');
    assert.equal(cas.code, 1);
    assert.match(cas.stderr, /precondition_failed/);

    const del = await raftlet(['del', 'cli-key', '--api', api(other)]);
    assert.equal(del.code, 0, del.stderr);
    assert.equal((JSON.parse(del.stdout) as { deleted: boolean }).deleted, true);

    const gone = await raftlet(['get', 'cli-key', '--api', api(follower)]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /not_found/);
    assert.equal(gone.stdout, '');
  });
});
