// npm run chaos -- --seconds S --nodes 3|5 [--seed N] [--faults LIST] [--clients C] [--keys K] [--watchers W] [--keep]
// Exit 0: no anomaly (the last line is `chaos: N ops, M faults, 0 anomalies`); 1: anomalies (each
// printed with the history around it) or the harness failed; 2: bad arguments or this machine
// cannot run it (not root, no network namespaces).
import { environmentProblem } from './netns.ts';
import { FAULT_KINDS, parseFaultKinds } from './nemesis.ts';
import { abortCurrentRun, EnvironmentError, printResult, runChaos, type ChaosOptions } from './run.ts';
import type { PlantedWatchFault } from './watcher.ts';

const USAGE = `usage: npm run chaos -- --seconds S --nodes 3|5 [--seed N] [--faults LIST] [--clients C] [--keys K]
         [--election-timeout-ms MS] [--heartbeat-ms MS] [--request-timeout-ms MS] [--snapshot-entries N]
         [--recovery-seconds S] [--read-consistency linearizable|stale] [--watchers W]
         [--watch-history N] [--plant-watch-fault none|drop|swap] [--keep]
  --faults: comma list of ${FAULT_KINDS.join(', ')};
            kill, pause and partition stand for their families; default all
  --read-consistency stale: a control run whose reads are not linearizable; it must report anomalies
  --watchers: SSE watchers (GET /v1/watch) whose events are checked too; default 2, 0 for none
  --watch-history: the nodes' RAFTLET_WATCH_HISTORY (default raftlet's); small, watchers resync
  --plant-watch-fault drop|swap: a control that drops or reorders one recorded watch event; it must
            report a watch anomaly`;

function parseArgs(argv: readonly string[]): ChaosOptions {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--keep') {
      values.set('keep', '1');
      continue;
    }
    if (arg === '--help' || arg === '-h') throw new UsageError('');
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (match === null) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`);
    const value = match[2] ?? argv[++i];
    if (value === undefined) throw new UsageError(`--${match[1]} needs a value`);
    values.set(match[1], value);
  }
  const known = new Set(['seconds', 'nodes', 'seed', 'faults', 'clients', 'keys', 'election-timeout-ms', 'heartbeat-ms', 'request-timeout-ms', 'snapshot-entries', 'recovery-seconds', 'read-consistency', 'watchers', 'watch-history', 'plant-watch-fault', 'keep']);
  for (const name of values.keys()) if (!known.has(name)) throw new UsageError(`unknown flag --${name}`);
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const text = values.get(name);
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}`);
    return n;
  };
  const nodes = int('nodes', 3, 3, 5);
  if (nodes !== 3 && nodes !== 5) throw new UsageError(`--nodes must be 3 or 5, got ${nodes}`);
  let faults;
  try {
    faults = parseFaultKinds(values.get('faults') ?? 'all');
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  return {
    seconds: int('seconds', 60, 1, 24 * 3600),
    nodes,
    seed: int('seed', Math.floor(Math.random() * 2 ** 31), 0, 2 ** 32 - 1),
    faults,
    clients: int('clients', 2 * nodes, 1, 64),
    keys: int('keys', 3, 1, 100),
    heartbeatMs: int('heartbeat-ms', 100, 1, 60_000),
    electionTimeoutMs: int('election-timeout-ms', 1000, 2, 600_000),
    requestTimeoutMs: int('request-timeout-ms', 3000, 1, 600_000),
    snapshotEntries: int('snapshot-entries', 200, 1, 10_000_000),
    readConsistency: readConsistency(values.get('read-consistency') ?? 'linearizable'),
    recoverySeconds: int('recovery-seconds', 30, 1, 3600),
    watchers: int('watchers', 2, 0, 16),
    watchHistory: values.has('watch-history') ? int('watch-history', 0, 1, 10_000_000) : null,
    plantWatchFault: plantedWatchFault(values.get('plant-watch-fault') ?? 'none'),
    keep: values.has('keep'),
    out: (line) => process.stdout.write(`${line}\n`),
  };
}

class UsageError extends Error {}

function readConsistency(text: string): 'linearizable' | 'stale' {
  if (text === 'linearizable' || text === 'stale') return text;
  throw new UsageError(`--read-consistency must be linearizable or stale, got ${JSON.stringify(text)}`);
}

function plantedWatchFault(text: string): PlantedWatchFault {
  if (text === 'none' || text === 'drop' || text === 'swap') return text;
  throw new UsageError(`--plant-watch-fault must be none, drop or swap, got ${JSON.stringify(text)}`);
}

async function main(): Promise<number> {
  let options: ChaosOptions;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    if (error.message !== '') process.stderr.write(`chaos: ${error.message}\n`);
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const problem = environmentProblem();
  if (problem !== null) {
    process.stderr.write(`chaos: ${problem}\n`);
    return 2;
  }
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`chaos: ${signal}: stopping every process and removing the namespaces\n`);
    void abortCurrentRun().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  try {
    const result = await runChaos(options);
    printResult(result, options.out);
    return result.anomalies.length === 0 ? 0 : 1;
  } catch (error) {
    if (error instanceof EnvironmentError) {
      process.stderr.write(`chaos: ${error.message}\n`);
      return 2;
    }
    process.stderr.write(`chaos: the harness failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return 1;
  }
}

process.exitCode = await main();
