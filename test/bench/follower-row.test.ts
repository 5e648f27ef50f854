// The follower row judges raftlet's follower path against raftlet's own leader path; etcd's follower
// path is measured in the same run and shown beside it as its own share, never judged.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { judgeTargets, type BenchReport, type WriteRow } from '../../bench/lib/report.ts';

function write(system: WriteRow['system'], via: WriteRow['via'], writesPerSecond: number): WriteRow {
  return {
    system, via, clients: 64,
    writes: writesPerSecond * 10, errors: 0, firstError: null, seconds: 10, writesPerSecond, p50Ms: 1, p99Ms: 2, meanMs: 1, maxMs: 3,
    cpu: { generator: 0.2, generatorLoop: 0.3, members: [0.5, 0.2, 0.2], machine: 1.5, cores: 2, busiestOther: null },
    perWrite: null, acceptedBetweenReads: writesPerSecond * 10,
  };
}

function followerRow(writes: WriteRow[]) {
  const report = {
    settings: { clients: [64], failoverTimings: { heartbeatMs: 50, electionTimeoutMs: 300 } },
    writes, failover: [], memory: [],
  } as unknown as Omit<BenchReport, 'targets'>;
  const row = judgeTargets(report).find((t) => t.name === 'writes/s, 64 clients through a follower');
  assert.ok(row !== undefined, 'the follower row is there');
  return row;
}

describe('the follower row', () => {
  it('judges raftlet\'s share of its own leader path and shows etcd\'s share for reference', () => {
    const row = followerRow([
      write('raftlet', 'leader', 8000), write('etcd', 'leader', 4000),
      write('raftlet', 'follower', 6000), write('etcd', 'follower', 3800),
    ]);
    assert.equal(row.raftlet, '6000 (0.75x of 8000)');
    assert.equal(row.etcd, '3800 (0.95x of 4000)');
    assert.equal(row.ratio, 0.75);
    assert.equal(row.met, false, 'etcd\'s figures do not enter the judgement');
  });

  it('meets the goal at 0.8x, and reads without an etcd follower run', () => {
    const row = followerRow([write('raftlet', 'leader', 5000), write('raftlet', 'follower', 4000)]);
    assert.equal(row.etcd, '-');
    assert.equal(row.met, true);
  });

  it('is not judged when raftlet had no follower run', () => {
    const row = followerRow([write('raftlet', 'leader', 5000)]);
    assert.equal(row.raftlet, 'n/a');
    assert.equal(row.met, null);
  });
});
