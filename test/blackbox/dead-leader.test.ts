// Failure detection beyond the election timeout, with real processes: when the leader's process is
// gone (kill -9), its peers' connections to it close and a new one is refused; they campaign at
// once instead of waiting out a long election timeout. A leader that is frozen (SIGSTOP: alive,
// its sockets open) is not reported and is waited out as before. The times are diagnostics only.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { clusterHooks, type Cluster } from '../support/cluster.ts';

// A long election timeout, so that an election at once can only come from the report.
const TIMING = { heartbeatMs: 100, electionTimeoutMs: 4000 } as const;

const GONE = /leader (node-\d) is gone \(connection refused\): campaigning now/;

function reports(c: Cluster, node: number): string[] {
  return c
    .logText(node)
    .split('\n')
    .filter((line) => GONE.test(line));
}

describe('dead leader detection (connection refused)', () => {
  const clusters = clusterHooks();

  test('kill -9 of the leader: its peers are told its process is gone and elect a new leader without waiting out the timeout', async (t) => {
    const c = await clusters.start({ nodes: 3, name: 'dead-leader', ...TIMING });
    const first = await c.waitForLeader();
    await c.putOk(first.node, 'before', 'v1');
    const killedAt = Date.now();
    await c.kill9(first.node);
    const second = await c.waitForLeader({ minTerm: first.term + 1 });
    const electedMs = Date.now() - killedAt;
    assert.notEqual(second.node, first.node);
    const told = c.live().filter((n) => reports(c, n).some((line) => line.includes(`leader ${c.spec(first.node).id} is gone`)));
    assert.ok(told.length >= 1, `a survivor logged that ${c.spec(first.node).id} is gone:\n${c.live().map((n) => c.logTail(n, 15)).join('\n')}`);
    assert.equal(await c.getText(second.node, 'before'), 'v1');
    await c.putOk(second.node, 'after', 'v2');
    t.diagnostic(`kill -9 of ${c.spec(first.node).id} (term ${first.term}): ${c.spec(second.node).id} leads term ${second.term}, seen ${electedMs} ms after the kill; told: ${told.map((n) => c.spec(n).id).join(', ')}; election timeout ${TIMING.electionTimeoutMs} ms`);
    await c.stopAll();
  });

  test('SIGSTOP of the leader (alive, merely silent): nobody is told it is gone, and it is waited out for the election timeout', async (t) => {
    const c = await clusters.start({ nodes: 3, name: 'frozen-leader', ...TIMING });
    const first = await c.waitForLeader();
    const stoppedAt = Date.now();
    c.sigstop(first.node);
    const second = await c.waitForLeader({ minTerm: first.term + 1 });
    const electedMs = Date.now() - stoppedAt;
    for (const n of c.live()) assert.deepEqual(reports(c, n), [], `${c.spec(n).id} was not told a frozen leader is gone`);
    c.sigcont(first.node);
    await c.waitForLeader({ minTerm: second.term });
    t.diagnostic(`SIGSTOP of ${c.spec(first.node).id}: ${c.spec(second.node).id} leads term ${second.term}, seen ${electedMs} ms after the stop (election timeout ${TIMING.electionTimeoutMs} ms)`);
    await c.stopAll();
  });
});
