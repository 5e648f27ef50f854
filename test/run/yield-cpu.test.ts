// yieldCpu (src/run/yield-cpu.ts): every thread of the process drops to the lowest priority, and
// threads started afterwards inherit it. Run in a child process: the test runner keeps its own.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const MODULE = fileURLToPath(new URL('../../src/run/yield-cpu.ts', import.meta.url));

// Field 19 of /proc/<pid>/task/<tid>/stat is the nice value (after the parenthesised name).
const CHILD = `
import { readdirSync, readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
const { yieldCpu } = await import(${JSON.stringify(MODULE)});
const nices = () => readdirSync('/proc/self/task').map((tid) => Number(readFileSync('/proc/self/task/' + tid + '/stat', 'utf8').split(') ')[1].split(' ')[16]));
const before = nices();
yieldCpu();
const after = nices();
const worker = new Worker('setTimeout(() => {}, 200)', { eval: true });
await new Promise((resolve) => worker.once('online', resolve));
const withWorker = nices();
await worker.terminate();
console.log(JSON.stringify({ before, after, withWorker }));
`;

test('yieldCpu puts every thread of the process at nice 19, and threads started later too', { skip: process.platform !== 'linux' && 'per-thread nice is read from /proc' }, () => {
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const { before, after, withWorker } = JSON.parse(run.stdout) as { before: number[]; after: number[]; withWorker: number[] };
  assert.ok(before.length > 1 && before.every((n) => n === before[0] && n < 19), `threads at the usual priority first: ${before}`);
  assert.deepEqual(after, after.map(() => 19));
  assert.ok(withWorker.length > after.length, 'the worker added threads');
  assert.deepEqual(withWorker, withWorker.map(() => 19));
});
