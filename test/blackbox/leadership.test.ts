// GET /v1/leadership and If-Term fencing on real processes (SPEC §4): one node leads with a lease
// no longer than what its followers guarantee, the long poll wakes on a hand-off, and a write
// fenced with an old term never lands, not even one a paused leader accepted in its old term.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clusterHooks, waitUntil, type Cluster } from '../support/cluster.ts';

interface LeadershipAnswer {
  readonly leader: boolean;
  readonly term: number;
  readonly leaseRemainingMs: number;
}

async function leadership(c: Cluster, node: number, query = '', timeoutMs = 5_000): Promise<LeadershipAnswer> {
  const answer = await c.request(node, 'GET', `/v1/leadership${query}`, { timeoutMs });
  assert.equal(answer.status, 200, answer.text);
  return answer.json<LeadershipAnswer>();
}

const ELECTION_MS = 1000;
const HEARTBEAT_MS = 100;
// What the node may promise (src/node/node.ts): 10 ms ticks, (ticks - 1) * 10 - 1 ms, less 10 %.
const MAX_LEASE_MS = ((ELECTION_MS / 10 - 1) * 10 - 1) * 0.9;

describe('leadership and fencing (black box)', () => {
  const clusters = clusterHooks();

  it('one node leads with a bounded lease, the others report none; the long poll wakes on a hand-off', async () => {
    const c = await clusters.start({ nodes: 3, name: 'leadership', electionTimeoutMs: ELECTION_MS, heartbeatMs: HEARTBEAT_MS });
    const leader = await c.waitForLeader();
    const own = await waitUntil('the leader to report a lease', async () => {
      const l = await leadership(c, leader.node);
      return l.leader && l.leaseRemainingMs > 0 ? l : null;
    });
    assert.equal(own.term, leader.term);
    assert.ok(own.leaseRemainingMs <= MAX_LEASE_MS, `lease ${own.leaseRemainingMs} ms > ${MAX_LEASE_MS} ms`);
    for (const node of c.ordinals.filter((n) => n !== leader.node)) {
      assert.deepEqual(await leadership(c, node), { leader: false, term: leader.term, leaseRemainingMs: 0 });
    }
    // A long poll on the leader, then a hand-off: it answers with the change.
    const poll = leadership(c, leader.node, `?wait=60000&term=${leader.term}&leader=true&leased=true`, 70_000);
    const transfer = await c.request(leader.node, 'POST', '/v1/leader/transfer', { body: '' });
    assert.equal(transfer.status, 200, transfer.text);
    const changed = await poll;
    assert.ok(!changed.leader || changed.leaseRemainingMs === 0 || changed.term !== leader.term, JSON.stringify(changed));
    const next = await c.waitForLeader({ not: leader.node });
    // A leader elected by a hand-off takes no lease for an election timeout: then it has one.
    await waitUntil('the new leader to report a lease', async () => {
      const l = await leadership(c, next.node);
      return l.leader && l.leaseRemainingMs > 0;
    });
  });

  it('If-Term: a write fenced with the current term lands, one with an older term is 412 on every node', async () => {
    const c = await clusters.start({ nodes: 3, name: 'fencing', electionTimeoutMs: ELECTION_MS, heartbeatMs: HEARTBEAT_MS });
    const first = await c.waitForLeader();
    for (const node of c.ordinals) {
      const ok = await c.put(node, `fenced-${node}`, 'v', { headers: { 'if-term': String(first.term) } });
      assert.equal(ok.status, 200, ok.text);
      assert.equal(ok.json<{ term: number }>().term, first.term);
    }
    const transfer = await c.request(first.node, 'POST', '/v1/leader/transfer', { body: '' });
    assert.equal(transfer.status, 200, transfer.text);
    const second = await c.waitForLeader({ minTerm: first.term + 1 });
    for (const node of c.ordinals) {
      const stale = await c.put(node, 'fenced-late', `from ${node}`, { headers: { 'if-term': String(first.term) } });
      assert.equal(stale.status, 412, stale.text);
      assert.equal(stale.errorCode, 'precondition_failed');
      const del = await c.del(node, 'fenced-1', { headers: { 'if-term': String(first.term) } });
      assert.equal(del.status, 412, del.text);
    }
    assert.equal((await c.get(second.node, 'fenced-late')).status, 404);
    assert.equal(await c.getText(second.node, 'fenced-1'), 'v');
    const fresh = await c.put(first.node, 'fenced-late', 'now', { headers: { 'if-term': String(second.term) } });
    assert.equal(fresh.status, 200, fresh.text);
  });

  it('a write a paused old leader takes in its old term never lands', async () => {
    const c = await clusters.start({ nodes: 3, name: 'late-write', electionTimeoutMs: ELECTION_MS, heartbeatMs: HEARTBEAT_MS });
    const old = await c.waitForLeader();
    await c.putOk(old.node, 'owner', 'old');
    c.sigstop(old.node);
    const others = c.ordinals.filter((n) => n !== old.node);
    const next = await c.waitForLeader({ among: others, minTerm: old.term + 1 });
    // Sent while the old leader sleeps: it reads the request when it wakes, still believing it
    // leads term old.term, and may append it in that term before it hears of the new one.
    const late = c.put(old.node, 'owner', 'late', { headers: { 'if-term': String(old.term) }, timeoutMs: 20_000 });
    c.sigcont(old.node);
    const answer = await late;
    assert.notEqual(answer.status, 200, `the late write was acknowledged: ${answer.text}`);
    await c.waitForLeader({ minTerm: next.term });
    for (const node of c.ordinals) assert.equal(await c.getText(node, 'owner'), 'old', `node ${node}`);
  });
});
