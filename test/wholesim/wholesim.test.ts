// The whole-node simulator inside npm test: seeds of real RaftNodes under faults (3 and 5 nodes),
// exact replay, and runs without faults that must get every write through. Long runs: npm run sim.
// test/planted shows that this simulator catches realistic bugs planted in src/.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { runWholeSimulation } from './simulation.ts';

async function runSeeds(nodes: number, first: number, count: number): Promise<{ violations: string[]; committed: number; writes: number; crashes: number }> {
  const violations: string[] = [];
  let committed = 0;
  let writes = 0;
  let crashes = 0;
  for (let seed = first; seed < first + count; seed++) {
    const result = await runWholeSimulation({ seed, nodes });
    if (result.violation) violations.push(`seed ${seed}: ${result.violation} (replay: npm run sim -- --seed ${seed} --nodes ${nodes} --trace)`);
    committed += result.stats.committed;
    writes += result.stats.writesOk;
    crashes += result.stats.crashes;
  }
  return { violations, committed, writes, crashes };
}

async function digest(seed: number, nodes: number): Promise<string> {
  const hash = createHash('sha256');
  await runWholeSimulation({ seed, nodes, durationMs: 1500, trace: (line) => hash.update(line) });
  return hash.digest('hex');
}

describe('whole-node simulation with faults', () => {
  test('400 seeds on 3 nodes: every invariant holds, the history is linearizable, the cluster recovers', async () => {
    const { violations, committed, writes, crashes } = await runSeeds(3, 1001, 400);
    assert.deepEqual(violations, []);
    // The runs did real work under real faults.
    assert.ok(committed > 400 * 30, `only ${committed} entries committed`);
    assert.ok(writes > 400 * 25, `only ${writes} writes acknowledged`);
    assert.ok(crashes > 400, `only ${crashes} crashes`);
  });

  test('200 seeds on 5 nodes: every invariant holds, the history is linearizable, the cluster recovers', async () => {
    const { violations } = await runSeeds(5, 2001, 200);
    assert.deepEqual(violations, []);
  });

  test('without faults every write through any node succeeds', async () => {
    for (let seed = 1; seed <= 20; seed++) {
      const result = await runWholeSimulation({ seed, nodes: 3, faults: false, durationMs: 1500 });
      assert.equal(result.violation, null, `seed ${seed}`);
      const { writesOk, writesFailed, writesUnknown } = result.stats;
      assert.ok(writesOk >= 20, `seed ${seed}: only ${writesOk} writes`);
      // Refusals only while the first leader is elected, or when a small budget says "overloaded".
      assert.ok(writesUnknown + writesFailed <= writesOk * 0.15, `seed ${seed}: ${writesOk} ok, ${writesFailed} refused, ${writesUnknown} unknown`);
    }
  });

  test('a seed replays exactly, alone or after other seeds', async () => {
    const first = await digest(42, 3);
    assert.equal(await digest(42, 3), first);
    await digest(41, 5);
    assert.equal(await digest(42, 3), first, 'nothing of an earlier run leaks into the next');
    assert.notEqual(await digest(43, 3), first);
  });
});
