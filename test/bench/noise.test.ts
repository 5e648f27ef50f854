// The bench calls a write run noisy when something outside the cluster and the load generator took
// CPU during it, and names that process, so a reader of one run's table can tell (issue 12: the
// rows are judged on one run).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { busiestBetween } from '../../bench/lib/procs.ts';
import { noisyRunNotes, OTHER_WORK_NOISY, type WriteRow } from '../../bench/lib/report.ts';

function run(machine: number, generator: number, members: number[], busiestOther: WriteRow['cpu']['busiestOther'] = null): WriteRow {
  return {
    system: 'raftlet', via: 'follower', clients: 64,
    writes: 1000, errors: 0, firstError: null, seconds: 10, writesPerSecond: 100, p50Ms: 1, p99Ms: 2, meanMs: 1, maxMs: 3,
    cpu: { generator, generatorLoop: 0.3, members, machine, cores: 2, busiestOther },
    perWrite: null, acceptedBetweenReads: 1000,
  };
}

describe('noisy write runs', () => {
  it('a run whose CPU is all the generator\'s and the members\' (plus the kernel\'s usual share) gets no note', () => {
    assert.deepEqual(noisyRunNotes([run(1.2, 0.3, [0.4, 0.2, 0.2])]), []);
    assert.deepEqual(noisyRunNotes([run(1.0 + OTHER_WORK_NOISY - 0.01, 0.2, [0.4, 0.2, 0.2])]), []);
  });

  it('other work past the bound is called out, with the busiest other process', () => {
    const notes = noisyRunNotes([run(1.92, 0.16, [0.44, 0.11, 0.21], { pid: 4242, comm: 'etcd', cores: 0.93 })]);
    assert.deepEqual(notes, [
      'NOTE: other work on the machine took 100% of a core during raftlet via follower, 64 clients (busiest other process: etcd, pid 4242, 93% of a core): that run is noisy.',
    ]);
  });

  it('a result file from before the busiest process was recorded still reads', () => {
    const old = run(1.92, 0.16, [0.44, 0.11, 0.21]);
    delete (old.cpu as { busiestOther?: unknown }).busiestOther;
    assert.match(noisyRunNotes([old])[0]!, /took 100% of a core during raftlet via follower, 64 clients: that run is noisy/);
  });
});

describe('busiestBetween', () => {
  it('ranks the processes by CPU used between two readings, leaving out the ones named', () => {
    const before = new Map([[1, { comm: 'init', seconds: 10 }], [2, { comm: 'etcd', seconds: 5 }], [3, { comm: 'node', seconds: 1 }]]);
    const after = new Map([[1, { comm: 'init', seconds: 10.1 }], [2, { comm: 'etcd', seconds: 9 }], [3, { comm: 'node', seconds: 9 }], [4, { comm: 'new', seconds: 2 }]]);
    assert.deepEqual(busiestBetween(before, after, 10, new Set([3])), { pid: 2, comm: 'etcd', cores: 0.4 });
    assert.deepEqual(busiestBetween(before, after, 10, new Set([2, 3])), { pid: 4, comm: 'new', cores: 0.2 }, 'a process started in between counts from zero');
    assert.equal(busiestBetween(before, new Map(), 10, new Set()), null);
  });
});
