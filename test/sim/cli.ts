// The core simulator's command line (npm run sim -- --core): CORE_USAGE below says what it takes.
import { intArg as int, parseCli } from './args.ts';
import type { PlantedBug } from './buggy.ts';
import { runSimulation } from './simulation.ts';

const CORE_USAGE = `npm run sim -- --core --seeds N [--nodes 3|5] [--steps S] [--start K] [--bug B] [--budget BYTES] [--keep-going] [--no-dead-signals]
npm run sim -- --core --seed X [--nodes N] [--steps S] --trace      replay one seed step by step
  --budget         the leader's uncommitted-bytes budget (0 = none)
  --keep-going     count every violating seed instead of stopping at the first
  --no-dead-signals  no connection-loss reports (true ones after crashes, and false ones)`;

const { values } = parseCli({
  options: {
    seeds: { type: 'string', default: '1000' },
    seed: { type: 'string' },
    start: { type: 'string', default: '1' },
    nodes: { type: 'string', default: '3' },
    steps: { type: 'string', default: '2000' },
    bug: { type: 'string' },
    trace: { type: 'boolean', default: false },
    'no-dead-signals': { type: 'boolean', default: false },
    budget: { type: 'string' },
    'keep-going': { type: 'boolean', default: false },
  },
}, CORE_USAGE);

const nodes = int('nodes', values.nodes);
const steps = int('steps', values.steps);
const bugs: readonly string[] = ['voteTwice', 'commitPreviousTerm', 'ackBeforePersist', 'countOwnVoteEarly', 'applyUncommitted'];
if (values.bug !== undefined && !bugs.includes(values.bug)) {
  console.error(`--bug must be one of ${bugs.join(', ')} (got ${values.bug})`);
  process.exit(2);
}
const bug = values.bug as PlantedBug | undefined;
const first = values.seed !== undefined ? int('seed', values.seed) : int('start', values.start);
const count = values.seed !== undefined ? 1 : int('seeds', values.seeds);

const started = performance.now();
let violations = 0;
let steps_ = 0;
let maxLiveness = 0;
let slowestSeed = 0;
let elections = 0;
let deadSignals = 0;
let falseDeadSignals = 0;
let aboutLeader = 0;
let aboutTransferee = 0;
const deadSignalsOn = !values['no-dead-signals'];
for (let seed = first; seed < first + count; seed++) {
  const maxUncommittedBytes = values.budget !== undefined ? int('budget', values.budget) : undefined;
  const result = runSimulation({ seed, nodes, steps, bug, maxUncommittedBytes, deadSignals: deadSignalsOn, trace: values.trace ? (line) => console.log(line) : undefined });
  steps_ += result.stats.steps;
  elections += result.stats.elections;
  deadSignals += result.stats.deadSignals;
  falseDeadSignals += result.stats.falseDeadSignals;
  aboutLeader += result.stats.deadSignalsAboutLeader;
  aboutTransferee += result.stats.deadSignalsAboutTransferee;
  if (result.stats.livenessTicks > maxLiveness) {
    maxLiveness = result.stats.livenessTicks;
    slowestSeed = seed;
  }
  if (values.trace) console.log(JSON.stringify(result.stats));
  if (result.violation !== null) {
    violations++;
    console.log(`seed ${seed}: VIOLATION ${result.violation}`);
    console.log(`replay: npm run sim -- --core --seed ${seed} --nodes ${nodes} --steps ${steps}${bug ? ` --bug ${bug}` : ''}${values.budget !== undefined ? ` --budget ${values.budget}` : ''}${deadSignalsOn ? '' : ' --no-dead-signals'} --trace`);
    if (!values['keep-going']) break;
  }
  if (count >= 1000 && (seed - first + 1) % 1000 === 0) {
    const minutes = (performance.now() - started) / 60000;
    console.error(`.. ${seed - first + 1} seeds, ${Math.round((seed - first + 1) / minutes)} seeds/min`);
  }
}
const minutes = (performance.now() - started) / 60000;
console.log(`${nodes} nodes, ${steps} steps per seed, ${steps_} steps, ${Math.round(count / minutes)} seeds/min, slowest recovery ${maxLiveness} ticks (seed ${slowestSeed})`);
console.log(`${elections} elections; dead-peer reports: ${deadSignals} (${falseDeadSignals} false), ${aboutLeader} of them to a follower of the reported peer, ${aboutTransferee} to a leader transferring to it`);
console.log(`${count} seeds, ${violations} violations`);
process.exitCode = violations > 0 ? 1 : 0;
