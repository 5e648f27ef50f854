// node test/planted/cli.ts [--only ID] [--parallel N]: plants each bug of bugs.ts in a copy of the
// tree, runs its catcher and prints the table (bug, catcher, seeds to catch, the violation).
import { rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { PLANTED_BUGS } from './bugs.ts';
import { describeCatcher, makeTree, runCatcher } from './mutate.ts';

const { values } = parseArgs({ options: { only: { type: 'string' }, parallel: { type: 'string', default: '2' } } });
const bugs = PLANTED_BUGS.filter((bug) => values.only === undefined || values.only.split(',').includes(bug.id));
const queue = [...bugs];
let missed = 0;
async function worker(): Promise<void> {
  for (let bug = queue.shift(); bug !== undefined; bug = queue.shift()) {
    const dir = await makeTree(bug);
    const started = performance.now();
    try {
      const run = await runCatcher(dir, bug.catcher, 600_000);
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      if (!run.failed) missed++;
      const seeds = run.seeds === null ? '' : ` in ${run.seeds} seed(s)`;
      console.log(`${run.failed ? 'CAUGHT' : 'MISSED'} ${bug.id} by ${describeCatcher(bug.catcher)}${seeds}, ${seconds} s: ${(run.violation ?? run.output.split('\n').filter((l) => /not ok|fail|Error/.test(l)).slice(0, 2).join(' | ')).slice(0, 200)}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}
await Promise.all(Array.from({ length: Number(values.parallel) }, () => worker()));
console.log(`${bugs.length - missed} of ${bugs.length} planted bugs caught`);
process.exitCode = missed > 0 ? 1 : 0;
