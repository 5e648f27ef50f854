// The start-up rehearsal (src/run/rehearsal.ts): it really drives a cluster through writes, reads and
// transfers, it ends within its budget, and it leaves nothing open behind, done or cut short.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rehearse } from '../../src/run/rehearsal.ts';

/** Sockets, servers and timers open now, by kind. */
function openHandles(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return counts;
}

/** Waits (bounded) until the handles of the listed kinds are back to what they were. */
async function assertBackTo(before: Map<string, number>, kinds: readonly string[]): Promise<void> {
  const differs = (): string[] => kinds.filter((k) => (openHandles().get(k) ?? 0) !== (before.get(k) ?? 0));
  for (let waited = 0; differs().length > 0 && waited < 5000; waited += 20) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(differs(), [], `left open: ${JSON.stringify([...openHandles()])}, before ${JSON.stringify([...before])}`);
}

const NETWORK = ['TCPServerWrap', 'TCPSocketWrap', 'TCPWRAP'];

describe('rehearse', () => {
  it('runs every round: writes on each member, reads, and one transfer per round', async () => {
    const before = openHandles();
    const report = await rehearse({ budgetMs: 20_000, rounds: 4, writesPerMember: 6 });
    assert.equal(report.error, undefined);
    assert.equal(report.completed, true);
    assert.equal(report.rounds, 4);
    assert.equal(report.transfers, 4);
    // Per round: 6 writes on each of the 3 members, and one during the transfer on each.
    assert.equal(report.writes, 4 * (3 * 6 + 3));
    assert.equal(report.reads, 4 * 3);
    assert.ok(report.elapsedMs > 0 && report.elapsedMs < 20_000);
    await assertBackTo(before, NETWORK);
  });

  it('out of time, it stops where it is, says so, and still closes everything', async () => {
    const before = openHandles();
    const started = performance.now();
    const report = await rehearse({ budgetMs: 15, rounds: 50 });
    assert.equal(report.completed, false);
    assert.equal(report.error, 'out of time');
    assert.ok(report.rounds < 50);
    // The budget bounds the work; tearing down a cluster mid-request is allowed a little beyond it.
    assert.ok(performance.now() - started < 5_000, `took ${performance.now() - started} ms`);
    await assertBackTo(before, NETWORK);
  });
});
