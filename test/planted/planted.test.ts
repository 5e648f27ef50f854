// The planted-bug suite: every bug of bugs.ts, planted in a copy of the tree, must make its catching
// test fail there, and every catcher must pass on the tree as it is. Two mutants run at a time. The
// table (bug, catcher, seeds it took) is printed at the end.
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, describe, test } from 'node:test';
import { PLANTED_BUGS, type Catcher } from './bugs.ts';
import { describeCatcher, makeTree, runCatcher } from './mutate.ts';

const CATCHER_TIMEOUT_MS = 300_000;
const rows: string[] = [];

after(() => {
  if (rows.length === 0) return;
  console.log(`\nplanted bugs (${rows.length}):\n${rows.sort().join('\n')}`);
});

describe('planted bugs are caught', { concurrency: 2 }, () => {
  for (const bug of PLANTED_BUGS) {
    test(`${bug.id}: ${bug.what}`, async () => {
      const dir = await makeTree(bug);
      try {
        const run = await runCatcher(dir, bug.catcher, CATCHER_TIMEOUT_MS);
        const seeds = run.seeds === null ? '' : ` after ${run.seeds} seed(s)`;
        rows.push(`${bug.id.padEnd(34)} ${bug.file.padEnd(24)} caught by ${describeCatcher(bug.catcher)}${seeds}${run.violation ? `: ${run.violation.slice(0, 120)}` : ''}`);
        assert.ok(run.failed, `planted bug ${bug.id} (${bug.file}) went unnoticed by ${describeCatcher(bug.catcher)}:\n${run.output.slice(-2000)}`);
        if (bug.catcher.kind === 'wholesim') assert.ok(run.violation !== null, `the simulator failed without reporting a violation:\n${run.output.slice(-2000)}`);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});

describe('every catcher passes on the tree as it is', { concurrency: 2 }, () => {
  const catchers = new Map<string, Catcher>();
  for (const bug of PLANTED_BUGS) catchers.set(describeCatcher(bug.catcher), bug.catcher);
  for (const [name, catcher] of catchers) {
    test(name, async () => {
      const dir = await makeTree(null);
      try {
        const run = await runCatcher(dir, catcher, CATCHER_TIMEOUT_MS);
        assert.ok(!run.failed, `${name} fails without any planted bug:\n${run.output.slice(-2000)}`);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});
