// The bench reads an idle-memory floor beside the members (bench/lib/floor.ts): Node with the
// design's libraries and nothing of raftlet's, so the idle row says how much is raftlet's own.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { MemoryFloor } from '../../bench/lib/floor.ts';
import { judgeTargets, type BenchReport, type MemoryRow } from '../../bench/lib/report.ts';
import { waitFor } from '../cli/helpers.ts';

describe('the idle-memory floor', () => {
  it('starts with a member\'s V8 flags, serves, is read, and stops', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'raftlet-floor-'));
    const floor = new MemoryFloor(dir, []);
    try {
      await waitFor(() => floor.read() !== null, 30_000, () => 'the floor process to listen');
      const memory = floor.read()!;
      // A Node process with an HTTP server is tens of MB; the anon and file parts make up VmRSS.
      assert.ok(memory.rssBytes > 20e6, `VmRSS ${memory.rssBytes}`);
      assert.ok(memory.anonBytes > 0 && memory.fileBytes > 0);
    } finally {
      await floor.stop();
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(floor.read(), null, 'a stopped floor reads as not up');
  });

  it('the idle row names the floor beside the members\' largest figure', () => {
    const row = (system: MemoryRow['system'], rssBytes: number): MemoryRow => ({
      system, member: system, phase: 'idle', rssBytes, peakBytes: rssBytes, anonBytes: rssBytes / 2, fileBytes: rssBytes / 2,
    });
    const report = {
      settings: { clients: [1], failoverTimings: { heartbeatMs: 50, electionTimeoutMs: 300 } },
      writes: [], failover: [],
      memory: [row('raftlet', 88e6), row('raftlet', 90e6), row('etcd', 39e6), row('floor', 76.5e6)],
    } as unknown as Omit<BenchReport, 'targets'>;
    const idle = judgeTargets(report).find((t) => t.name.startsWith('VmRSS per member idle'));
    assert.equal(idle?.raftlet, '90.0 MB (floor 76.5 MB)');
    assert.equal(idle?.met, false);
  });
});
