// The run checks on planted anomalies, and the pieces of the harness that need no root: how an
// answer is classified, fault-list parsing, the address plan.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkIndexes, checkLeaderSamples, checkLinearizability, checkLogs, checkLostWrites } from './checks.ts';
import { HistoryBuilder } from './history-builder.ts';
import type { StatusSample } from './monitor.ts';
import { FAULT_KINDS, parseFaultKinds } from './nemesis.ts';
import { planNet } from './netns.ts';
import { classify } from './workload.ts';

function sample(at: number, node: string, role: string, term: number, leader: string | null): StatusSample {
  return { at, node, role, term, leader, commitIndex: 1, appliedIndex: 1 };
}

describe('run checks', () => {
  it('linearizability: a clean key passes, a stale read is reported with the history around it', () => {
    const h = new HistoryBuilder('k0');
    h.put('a', 0, 10, 2);
    h.put('b', 20, 30, 3);
    h.get(40, 50, ['b', 3]);
    const bad = new HistoryBuilder('k1');
    bad.put('x', 0, 10, 4);
    bad.put('y', 20, 30, 5);
    bad.get(40, 50, ['x', 4]);
    const { anomalies, summaries } = checkLinearizability([...h.ops, ...bad.ops.map((op) => ({ ...op, id: op.id + 10 }))]);
    assert.deepEqual(summaries.map((s) => [s.key, s.verdict]), [['k0', 'ok'], ['k1', 'illegal']]);
    assert.equal(anomalies.length, 1);
    assert.match(anomalies[0].summary, /key "k1" is not linearizable/);
    assert.ok(anomalies[0].details.some((line) => line.startsWith('>> #12')), anomalies[0].details.join('\n'));
    assert.ok(anomalies[0].details.some((line) => line.includes('"y" (modIndex 5, written by #11)')), anomalies[0].details.join('\n'));
  });

  it('indexes: two acknowledged writes with one index, and an index lower than an earlier write', () => {
    const h = new HistoryBuilder('k');
    h.put('a', 0, 10, 7);
    h.put('b', 20, 30, 7);
    h.put('c', 40, 50, 5);
    const kinds = checkIndexes(h.ops).map((a) => a.kind).sort();
    assert.deepEqual(kinds, ['index-order', 'index-reused']);
    const fine = new HistoryBuilder('k');
    fine.put('a', 0, 10, 7);
    fine.put('b', 5, 30, 6); // concurrent: either order
    fine.del(40, 50, { deleted: true, index: 9 });
    assert.deepEqual(checkIndexes(fine.ops), []);
  });

  it('lost writes: a final value older than an acknowledged write, or a key gone without a delete', () => {
    const h = new HistoryBuilder('k');
    h.put('a', 0, 10, 4);
    h.put('b', 20, 30, 6);
    const finalOld = h.get(100, 110, ['a', 4], 'final');
    assert.equal(checkLostWrites(h.ops, [finalOld]).length, 1);
    const gone = new HistoryBuilder('k');
    gone.put('a', 0, 10, 4);
    const finalAbsent = gone.get(100, 110, null, 'final');
    assert.equal(checkLostWrites(gone.ops, [finalAbsent]).length, 1);
    const deleted = new HistoryBuilder('k');
    deleted.put('a', 0, 10, 4);
    deleted.del(20, 30, { deleted: true, index: 5 });
    const finalDeleted = deleted.get(100, 110, null, 'final');
    assert.deepEqual(checkLostWrites(deleted.ops, [finalDeleted]), []);
    const current = new HistoryBuilder('k');
    current.put('a', 0, 10, 4);
    assert.deepEqual(checkLostWrites(current.ops, [current.get(100, 110, ['a', 4], 'final')]), []);
  });

  it('leaders from status samples: two nodes leading, or naming different leaders, in one term', () => {
    const clean = [sample(0, 'n1', 'leader', 2, 'n1'), sample(1, 'n2', 'follower', 2, 'n1'), sample(2, 'n2', 'leader', 3, 'n2'), sample(3, 'n1', 'follower', 3, 'n2')];
    assert.deepEqual(checkLeaderSamples(clean), []);
    const two = [...clean, sample(4, 'n3', 'leader', 3, 'n3')];
    const kinds = checkLeaderSamples(two).map((a) => a.summary);
    assert.equal(kinds.length, 2, kinds.join('\n'));
    assert.match(kinds[0], /term 3: n2 and n3 each reported role leader/);
  });

  it('leaders from logs: two winners of one term, error lines; counts elections and snapshot installs', () => {
    const line = (fields: Record<string, unknown>): string => JSON.stringify({ level: 30, time: 1, ...fields });
    const logs = [
      { node: 'n1', text: [line({ term: 2, msg: 'won the election' }), line({ term: 2, leader: 'n1', msg: 'leader is n1' })].join('\n') },
      { node: 'n2', text: [line({ term: 2, leader: 'n1', msg: 'leader is n1' }), line({ index: 9, term: 2, msg: 'installed snapshot from leader' }), 'not json'].join('\n') },
    ];
    const clean = checkLogs(logs);
    assert.deepEqual(clean.anomalies, []);
    assert.equal(clean.elections, 1);
    assert.equal(clean.snapshotsInstalled, 1);
    const bad = checkLogs([...logs, { node: 'n3', text: [line({ term: 2, msg: 'won the election' }), JSON.stringify({ level: 50, msg: 'boom' })].join('\n') }]);
    assert.deepEqual(bad.anomalies.map((a) => a.kind).sort(), ['error-logged', 'two-leaders']);
  });
});

describe('answers as the workload reads them', () => {
  const error = (code: string): string => JSON.stringify({ error: { code, message: 'm' } });

  it('maps each SPEC §4 answer to ok, failed or unknown', () => {
    const put = { kind: 'put', value: 'v' } as const;
    const cas = { kind: 'put', value: 'v', ifMatch: 5 } as const;
    assert.deepEqual(classify(put, { status: 200, etag: '"9"', text: '{"index":9,"term":2}' }), { outcome: 'ok', output: { kind: 'written', index: 9 } });
    assert.equal(classify(put, { status: 503, etag: undefined, text: error('no_leader') }).outcome, 'failed');
    assert.equal(classify(put, { status: 503, etag: undefined, text: error('unavailable') }).outcome, 'unknown');
    assert.equal(classify(put, { status: 504, etag: undefined, text: error('timeout') }).outcome, 'unknown');
    assert.deepEqual(classify(cas, { status: 412, etag: undefined, text: error('precondition_failed') }).output, { kind: 'precondition_failed' });
    assert.deepEqual(classify({ kind: 'get' }, { status: 200, etag: '"12"', text: 'hello' }).output, { kind: 'found', value: 'hello', modIndex: 12 });
    assert.deepEqual(classify({ kind: 'get' }, { status: 404, etag: undefined, text: error('not_found') }).output, { kind: 'absent' });
    assert.deepEqual(classify({ kind: 'del' }, { status: 200, etag: undefined, text: '{"index":3,"term":1,"deleted":false}' }).output, { kind: 'deleted', deleted: false, index: 3 });
  });

  it('flags answers SPEC §4 does not give: a 500, a 412 without a condition, a GET without an ETag', () => {
    const put = { kind: 'put', value: 'v' } as const;
    for (const [input, answer] of [
      [put, { status: 500, etag: undefined, text: error('internal_error') }],
      [put, { status: 412, etag: undefined, text: error('precondition_failed') }],
      [put, { status: 400, etag: undefined, text: error('bad_request') }],
      [{ kind: 'get' } as const, { status: 200, etag: undefined, text: 'v' }],
      [{ kind: 'del' } as const, { status: 200, etag: undefined, text: '{"index":3}' }],
    ] as const) {
      const result = classify(input, answer);
      assert.equal(result.outcome, 'unknown');
      assert.ok(result.unexpected !== undefined, JSON.stringify(answer));
    }
  });
});

describe('harness settings', () => {
  it('parses fault lists with families', () => {
    assert.deepEqual(parseFaultKinds('kill'), ['kill', 'kill-leader', 'kill-all']);
    assert.deepEqual(parseFaultKinds('partition-leader,loss'), ['partition-leader', 'loss']);
    assert.deepEqual(parseFaultKinds('all'), [...FAULT_KINDS]);
    assert.throws(() => parseFaultKinds('meteor'), /unknown fault "meteor"/);
  });

  it('plans addresses inside 10.99.0.0/24, a /28 per slot, none shared between slots', () => {
    const seen = new Set<string>();
    for (let slot = 0; slot < 16; slot++) {
      const plan = planNet(slot, 5);
      for (const addr of [plan.hostAddr, ...plan.hosts.map((h) => h.addr)]) {
        assert.match(addr, /^10\.99\.0\.\d+$/);
        assert.ok(!seen.has(addr), `${addr} used twice`);
        seen.add(addr);
      }
      assert.ok(plan.hosts.every((h) => h.ns.length <= 15 && h.veth.length + 1 <= 15), 'interface names fit IFNAMSIZ');
    }
    assert.throws(() => planNet(16, 3), /slot must be 0..15/);
  });
});
