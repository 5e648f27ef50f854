import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { collectStartupGarbage } from '../../src/run/startup-gc.ts';
import { clusterHooks } from '../support/cluster.ts';

const MODULE = fileURLToPath(new URL('../../src/run/startup-gc.ts', import.meta.url));

describe('collectStartupGarbage', () => {
  it('does nothing without an exposed gc', () => {
    assert.equal(collectStartupGarbage(undefined), null);
  });

  it('runs the collector once and reports the heap around it', () => {
    let calls = 0;
    const result = collectStartupGarbage(() => {
      calls++;
    });
    assert.equal(calls, 1);
    assert.ok(result !== null);
    assert.ok(result.usedBefore > 0 && result.usedAfter > 0);
    assert.ok(result.pauseMs >= 0);
  });

  it('with --expose-gc, frees garbage that is there', () => {
    // A child with V8's real collector: garbage made just before is gone after.
    const script = `
      import { collectStartupGarbage } from ${JSON.stringify(MODULE)};
      let junk = Array.from({ length: 200000 }, (_, i) => ({ i, text: 'x'.repeat(20) + i }));
      junk.length;
      junk = null;
      const r = collectStartupGarbage();
      process.stdout.write(JSON.stringify(r));`;
    const child = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    const r = JSON.parse(child.stdout) as { usedBefore: number; usedAfter: number };
    assert.ok(r.usedBefore - r.usedAfter > 5e6, `freed ${r.usedBefore - r.usedAfter} bytes`);
  });
});

describe('a member at start-up', () => {
  const clusters = clusterHooks();

  it('collects its garbage once, before it starts (src/run/startup-gc.ts)', async () => {
    const c = await clusters.start({ nodes: 1, name: 'startup-gc', nodeEnv: () => ({ RAFTLET_LOG_LEVEL: 'debug' }) });
    await c.waitForLeader();
    const lines = c.logText(1).split('\n').filter((line) => line.includes('collected start-up garbage'));
    assert.equal(lines.length, 1, 'exactly one start-up collection, logged');
    const { heapUsedMb } = JSON.parse(lines[0]!) as { heapUsedMb: [number, number] };
    assert.ok(heapUsedMb[0] > heapUsedMb[1], `the collection freed something: ${JSON.stringify(heapUsedMb)}`);
    const started = c.logText(1).indexOf('"msg":"raftlet node-1 started"');
    assert.ok(started > c.logText(1).indexOf('collected start-up garbage'), 'before the member starts');
  });
});
