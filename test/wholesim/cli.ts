// The simulators' command line (npm run sim): USAGE below says what it takes; --core hands the rest
// to the core simulator (test/sim/cli.ts).
import { spawn } from 'node:child_process';
import { intArg as int, parseCli } from '../sim/args.ts';

const USAGE = `npm run sim -- --seeds N [--start K] [--nodes 3|5|mixed] [--ms D] [--workers W] [--quiet]
    whole nodes (default: mixed, odd seeds 3 nodes, even seeds 5); --workers W splits the seeds over
    W processes, and the first violation stops all
npm run sim -- --seed X [--nodes N] [--ms D] --trace      replay one seed event by event
npm run sim -- --core ...                                 the core simulator (npm run sim -- --core --help)`;

if (process.argv.includes('--core')) {
  process.argv.splice(process.argv.indexOf('--core'), 1);
  await import('../sim/cli.ts');
} else {
  await main();
}

async function main(): Promise<void> {
  const { runWholeSimulation, DEFAULT_DURATION_MS } = await import('./simulation.ts');
  const { values } = parseCli({
    options: {
      seeds: { type: 'string', default: '100' },
      seed: { type: 'string' },
      start: { type: 'string', default: '1' },
      nodes: { type: 'string', default: 'mixed' },
      ms: { type: 'string', default: String(DEFAULT_DURATION_MS) },
      trace: { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
      workers: { type: 'string', default: '1' },
    },
  }, USAGE);
  const workers = int('workers', values.workers);
  if (workers > 1 && values.seed === undefined) {
    await parallel(workers, int('start', values.start), int('seeds', values.seeds), values.nodes, values.ms);
    return;
  }
  if (values.nodes !== 'mixed' && values.nodes !== '3' && values.nodes !== '5') {
    console.error(`--nodes must be 3, 5 or mixed (got ${values.nodes})`);
    process.exit(2);
  }
  const nodesFor = (seed: number): number => (values.nodes === 'mixed' ? (seed % 2 === 0 ? 5 : 3) : Number(values.nodes));
  const durationMs = int('ms', values.ms);
  const first = values.seed !== undefined ? int('seed', values.seed) : int('start', values.start);
  const count = values.seed !== undefined ? 1 : int('seeds', values.seeds);
  const started = performance.now();
  const time = { 3: 0, 5: 0 } as Record<number, number>;
  const runs = { 3: 0, 5: 0 } as Record<number, number>;
  let violations = 0;
  let ran = 0;
  let slowest = 0;
  let slowestSeed = 0;
  const totals = { committed: 0, writesOk: 0, readsOk: 0, crashes: 0, aimedCrashes: 0, writeErrors: 0, tornTailsCut: 0, overloaded: 0, elections: 0 };
  for (let seed = first; seed < first + count; seed++) {
    const nodes = nodesFor(seed);
    const t0 = performance.now();
    const result = await runWholeSimulation({ seed, nodes, durationMs, trace: values.trace ? (line) => console.log(line) : undefined });
    time[nodes] += performance.now() - t0;
    runs[nodes]++;
    ran++;
    for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += result.stats[k];
    if (result.stats.livenessMs > slowest) {
      slowest = result.stats.livenessMs;
      slowestSeed = seed;
    }
    if (values.trace) console.log(JSON.stringify(result.stats));
    if (result.violation !== null) {
      violations++;
      console.log(`seed ${seed} (${nodes} nodes): VIOLATION ${result.violation}`);
      console.log(`replay: npm run sim -- --seed ${seed} --nodes ${nodes} --ms ${durationMs} --trace`);
      break;
    }
    const done = seed - first + 1;
    if (!values.quiet && count >= 500 && done % 500 === 0) {
      const minutes = (performance.now() - started) / 60000;
      console.error(`.. ${done} seeds, ${Math.round(done / minutes)} seeds/min`);
    }
  }
  const minutes = (performance.now() - started) / 60000;
  const rate = (n: number): string => (runs[n] > 0 ? `${n} nodes ${Math.round(runs[n] / (time[n] / 60000))} seeds/min` : '');
  console.log(
    `whole nodes, ${durationMs} ms of faults per seed: ${Math.round(ran / minutes)} seeds/min (${[rate(3), rate(5)].filter(Boolean).join(', ')}), ` +
      `slowest recovery ${slowest} ms (seed ${slowestSeed}); ${JSON.stringify(totals)}`,
  );
  console.log(`${ran} seeds, ${violations} violations`);
  process.exitCode = violations > 0 ? 1 : 0;
}

/** Runs the seeds in `workers` child processes and sums what they report. */
async function parallel(workers: number, first: number, count: number, nodes: string, ms: string): Promise<void> {
  const started = performance.now();
  const per = Math.ceil(count / workers);
  const children: ReturnType<typeof spawn>[] = [];
  let violations = 0;
  let seeds = 0;
  let stopping = false;
  const runs: Promise<void>[] = [];
  for (let w = 0; w < workers; w++) {
    const start = first + w * per;
    const n = Math.min(per, first + count - start);
    if (n <= 0) break;
    const child = spawn(process.execPath, [import.meta.filename, '--start', String(start), '--seeds', String(n), '--nodes', nodes, '--ms', ms], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    runs.push(
      new Promise<void>((resolve) => {
        let out = '';
        child.stdout?.on('data', (chunk: Buffer) => {
          out += chunk.toString();
        });
        child.on('close', () => {
          process.stdout.write(out.split('\n').filter((line) => line !== '' && !/^\d+ seeds, \d+ violations$/.test(line)).map((line) => `[worker ${w + 1}] ${line}\n`).join(''));
          const summary = /^(\d+) seeds, (\d+) violations$/m.exec(out);
          if (summary === null && !stopping) violations++;
          if (summary !== null && Number(summary[2]) > 0) {
            violations += Number(summary[2]);
            stopping = true;
            for (const other of children) if (other !== child) other.kill();
          }
          if (summary !== null) seeds += Number(summary[1]);
          resolve();
        });
      }),
    );
  }
  await Promise.all(runs);
  const minutes = (performance.now() - started) / 60000;
  console.log(`${workers} workers: ${Math.round(seeds / minutes)} seeds/min in all`);
  console.log(`${seeds} seeds, ${violations} violations`);
  process.exitCode = violations > 0 || (seeds !== count && !stopping) ? 1 : 0;
}
