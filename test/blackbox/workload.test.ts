// The durability verdict of Workload.check must be able to fail: fed a history and a final state
// by hand, it accepts what SPEC §4 allows and names what it does not.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Cluster } from '../support/cluster.ts';
import { Workload, type Attempt } from './workload.ts';

function history(...attempts: [seq: number, key: string, outcome: Attempt['outcome']][]): Workload {
  const load = new Workload({} as Cluster, { prefix: 't' });
  for (const [seq, key, outcome] of attempts) {
    load.attempts.push({ writer: 0, seq, key, value: `t0-s${seq}`, node: 1, outcome, detail: outcome });
  }
  return load;
}

const state = (entries: Record<string, string>): Map<string, { value: string }> =>
  new Map(Object.entries(entries).map(([key, value]) => [key, { value }]));

describe('Workload.check', () => {
  const load = history([1, 't0-k1', 'ok'], [2, 't0-k1', 'ok'], [3, 't0-k1', 'unknown'], [4, 't0-k1', 'refused'], [5, 't0-k2', 'unknown']);

  test('accepts the last acknowledged value, or a later one whose outcome is unknown', () => {
    assert.deepEqual(load.check(state({ 't0-k1': 't0-s2' })), []);
    assert.deepEqual(load.check(state({ 't0-k1': 't0-s3', 't0-k2': 't0-s5' })), []);
  });

  test('names a lost acknowledged write', () => {
    assert.match(load.check(state({ 't0-k1': 't0-s1' })).join('\n'), /t0-k1 holds t0-s1 .* older than the acknowledged t0-s2/);
    assert.match(load.check(state({})).join('\n'), /t0-k1 is missing/);
  });

  test('names a refused write that was applied, a value nobody wrote and a key nobody wrote', () => {
    assert.match(load.check(state({ 't0-k1': 't0-s4' })).join('\n'), /503 no_leader was applied/);
    assert.match(load.check(state({ 't0-k1': 'garbage' })).join('\n'), /which no writer wrote/);
    assert.match(load.check(state({ 't0-k1': 't0-s2', 't0-k9': 'x' })).join('\n'), /t0-k9 exists but was never written/);
  });
});
