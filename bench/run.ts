// `npm run bench`: a 3-node raftlet cluster and, when /usr/bin/etcd exists, a 3-member etcd 3.4 on
// 127.0.0.1, measured in the same run: write throughput, latency and CPU per write at 1, 8 and 64
// clients, writes through a follower, idle memory (beside the floor that Node and the design's
// libraries take alone: lib/floor.ts) and memory after the writes, failover after kill -9 and SIGTERM
// of the leader. The raftlet members run compiled JavaScript through bin/raftlet.js, as
// the image does (V8 sizing included). Prints the tables and a side-by-side summary of the rows issue
// 12 judges, writes bench/results/<timestamp>.json, and judges the targets without ever failing on
// them: the exit code is non-zero only when the benchmark itself could not run.
//   node bench/run.ts [--seconds N] [--warmup N] [--idle N] [--skip-etcd] [--only writes|failover]
//                     [--runs N] [--clients 1,8,64] [--no-follower] [--source] [--node-flags=FLAGS]
//                     [--profile DIR] [--dir PARENT] [--out FILE]
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { waitStable, type BenchCluster } from './lib/cluster.ts';
import { EtcdCluster, ETCD_BIN, etcdAvailable } from './lib/etcd-cluster.ts';
import { measureFailover, type FailoverRun } from './lib/failover.ts';
import { runLoad } from './lib/load.ts';
import { flagsOption, numberOption, UsageError } from './lib/options.ts';
import { killEverything, memoryOf, runningChildren } from './lib/procs.ts';
import { summarizeProfile, type ProfileSummary } from './lib/profile.ts';
import { RaftletCluster, RAFTLET_BIN } from './lib/raftlet-cluster.ts';
import { compiledLauncher } from './lib/compiled.ts';
import { MemoryFloor } from './lib/floor.ts';
import { CLUSTER_SIZE, KEYS, VALUE_BYTES, WRITE_TIMINGS } from './lib/workload.ts';
import {
  failoverSeries, judgeTargets, renderReport,
  type BenchReport, type FailoverSeries, type MemoryRow, type WriteRow,
} from './lib/report.ts';

const USAGE = `Usage: node bench/run.ts [options]   (npm run bench -- [options])
  --seconds N        measured seconds per write run (default 10)
  --warmup N         unmeasured seconds before each write run (default 2)
  --idle N           seconds both clusters sit idle after starting before their idle memory is read
                     (default 5)
  --clients LIST     concurrent clients per run, comma-separated (default 1,8,64)
  --runs N           failover runs per signal and system (default 7)
  --only WHAT        writes or failover (default both)
  --skip-etcd        do not run the etcd reference cluster
  --no-follower      skip the extra runs that write through a follower (raftlet's, and etcd's for reference)
  --source           run the nodes from src/ through Node's type stripping instead of a compiled copy
                     (tsc into a temp dir, as the image runs it; the default), for comparison
  --node-flags=FLAGS extra Node flags for every raftlet node, e.g. --node-flags="--max-semi-space-size=2"
  --profile DIR      run the raftlet nodes of the write runs under --cpu-prof, keep the profiles in DIR
                     and print the leader's top functions over the write runs (start-up left out); for
                     one load alone: --only writes --clients 64 --skip-etcd --no-follower --profile DIR
  --dir PARENT       where the temp data dirs go (default ${tmpdir()}; must be a real disk for fsync to count)
  --out FILE         the JSON result (default bench/results/<timestamp>.json)
`;

/** Timings of the failover runs, as the issue sets them. */
const FAILOVER_TIMINGS = { heartbeatMs: 50, electionTimeoutMs: 300 } as const;

interface Options {
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly clients: readonly number[];
  readonly runs: number;
  readonly writes: boolean;
  readonly failover: boolean;
  readonly etcd: boolean;
  readonly follower: boolean;
  readonly profileDir: string | null;
  readonly source: boolean;
  readonly idleSeconds: number;
  readonly nodeFlags: readonly string[];
  readonly parentDir: string;
  readonly out: string;
}

function parseOptions(argv: readonly string[]): Options | null {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      seconds: { type: 'string' },
      warmup: { type: 'string' },
      clients: { type: 'string' },
      runs: { type: 'string' },
      only: { type: 'string' },
      'skip-etcd': { type: 'boolean' },
      'no-follower': { type: 'boolean' },
      profile: { type: 'string' },
      source: { type: 'boolean' },
      // Compiled is the default now; the old flag is still accepted.
      compiled: { type: 'boolean' },
      idle: { type: 'string' },
      'node-flags': { type: 'string' },
      dir: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return null;
  const only = values.only;
  if (only !== undefined && only !== 'writes' && only !== 'failover') {
    throw new UsageError(`--only must be writes or failover (got ${JSON.stringify(only)})`);
  }
  const clients = (values.clients ?? '1,8,64').split(',').map((c) => numberOption('clients', c.trim(), 1, 1));
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return {
    seconds: numberOption('seconds', values.seconds, 10, 0.1),
    warmupSeconds: numberOption('warmup', values.warmup, 2, 0),
    clients: clients.map(Math.round),
    runs: Math.round(numberOption('runs', values.runs, 7, 1)),
    idleSeconds: numberOption('idle', values.idle, 5, 0),
    writes: only !== 'failover',
    failover: only !== 'writes',
    etcd: !values['skip-etcd'] && etcdAvailable(),
    follower: !values['no-follower'],
    profileDir: values.profile === undefined ? null : resolve(values.profile),
    source: values.source === true,
    nodeFlags: flagsOption(values['node-flags']),
    parentDir: resolve(values.dir ?? tmpdir()),
    out: resolve(values.out ?? fileURLToPath(new URL(`results/${stamp}.json`, import.meta.url))),
  };
}

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

/** Runs fn with a started cluster and always stops it. */
async function withCluster<T>(cluster: BenchCluster & { stop(): Promise<void> }, fn: () => Promise<T>): Promise<T> {
  try {
    await cluster.start();
    return await fn();
  } finally {
    await cluster.stop();
  }
}

function memoryRows(cluster: BenchCluster, phase: MemoryRow['phase']): MemoryRow[] {
  const rows: MemoryRow[] = [];
  for (let i = 0; i < cluster.size; i++) {
    const pid = cluster.pid(i);
    const mem = pid === null ? null : memoryOf(pid);
    if (mem !== null) rows.push({ system: cluster.system, member: memberName(cluster, i), phase, ...mem });
  }
  return rows;
}

function memberName(cluster: BenchCluster, i: number): string {
  return cluster.system === 'raftlet' ? cluster.memberId(i) : `etcd-${i + 1}`;
}

/** Member environment that makes bin/raftlet.js run what the options ask for. */
function codeEnv(options: Options): Record<string, string> {
  return { RAFTLET_USE_DIST: options.source ? '0' : '1' };
}

async function writePhase(options: Options, bin: string, cores: number, errors: string[]): Promise<{
  writes: WriteRow[]; memory: MemoryRow[]; profile: ProfileSummary | null;
}> {
  const writes: WriteRow[] = [];
  const memory: MemoryRow[] = [];
  let profile: ProfileSummary | null = null;
  const nodeFlags = [...options.nodeFlags, ...(options.profileDir === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${options.profileDir}`])];
  if (options.profileDir !== null) mkdirSync(options.profileDir, { recursive: true });
  const raftlet = new RaftletCluster({ size: CLUSTER_SIZE, ...WRITE_TIMINGS, parentDir: options.parentDir, nodeFlags, bin, env: codeEnv(options) });
  let etcd = options.etcd ? new EtcdCluster({ size: CLUSTER_SIZE, ...WRITE_TIMINGS, parentDir: options.parentDir }) : null;
  let profiledPid: number | null = null;
  let loadStarted = 0;
  // Started first, so that it has idled at least as long as the members when all are read.
  const floor = new MemoryFloor(raftlet.dir, nodeFlags);
  try {
    log('starting the raftlet cluster for the write runs');
    await raftlet.start();
    if (etcd !== null) {
      log('starting the etcd cluster for the write runs');
      try {
        await etcd.start();
      } catch (err) {
        // The raftlet figures are still worth having; the ratios will say n/a.
        errors.push(`etcd did not start for the write runs: ${err instanceof Error ? err.message : String(err)}`);
        await etcd.stop();
        etcd = null;
      }
    }
    // Idle memory: both clusters started and settled, then left alone for a while.
    await Promise.all([raftlet, ...(etcd === null ? [] : [etcd])].map((c) => waitStable(c, 30_000)));
    log(`idle for ${options.idleSeconds} s, then reading each member's memory`);
    await sleep(options.idleSeconds * 1000);
    memory.push(...memoryRows(raftlet, 'idle'));
    if (etcd !== null) memory.push(...memoryRows(etcd, 'idle'));
    const floorMemory = floor.read();
    if (floorMemory === null) errors.push(`the memory floor process was not up when the idle memory was read: ${floor.logTail()}`);
    else memory.push({ system: 'floor', member: 'node + express, pino, prom-client', phase: 'idle', ...floorMemory });
    await floor.stop();
    loadStarted = performance.now();
    // raftlet and etcd take turns at each concurrency, so a change in the machine's other load
    // during the run hits both rather than one.
    for (const clients of options.clients) {
      for (const cluster of etcd === null ? [raftlet] : [raftlet, etcd]) {
        const leader = await waitStable(cluster, 30_000);
        log(`${cluster.system}: ${clients} client${clients === 1 ? '' : 's'} to the leader (${memberName(cluster, leader)}) for ${options.seconds} s`);
        const result = await runLoad(cluster, {
          clients, seconds: options.seconds, warmupSeconds: options.warmupSeconds, valueBytes: VALUE_BYTES, keys: KEYS, target: leader,
        }, cores);
        writes.push({ system: cluster.system, via: 'leader', clients, ...result });
      }
    }
    if (options.follower) {
      // etcd's own follower path is measured too, for reference: the row judges raftlet's follower
      // path against raftlet's leader path, and etcd's ratio says what forwarding costs a system
      // that does it inside Raft (MsgProp). Both clusters then have taken the same runs when their
      // memory is read.
      const clients = Math.max(...options.clients);
      for (const cluster of etcd === null ? [raftlet] : [raftlet, etcd]) {
        const leader = await waitStable(cluster, 30_000);
        const follower = (leader + 1) % CLUSTER_SIZE;
        log(`${cluster.system}: ${clients} clients through a follower (${memberName(cluster, follower)}) for ${options.seconds} s`);
        const result = await runLoad(cluster, {
          clients, seconds: options.seconds, warmupSeconds: options.warmupSeconds, valueBytes: VALUE_BYTES, keys: KEYS, target: follower,
        }, cores);
        writes.push({ system: cluster.system, via: 'follower', clients, ...result });
      }
    }
    memory.push(...memoryRows(raftlet, 'after writes'));
    if (etcd !== null) memory.push(...memoryRows(etcd, 'after writes'));
    if (options.profileDir !== null) profiledPid = raftlet.pid(await waitStable(raftlet, 30_000));
  } catch (err) {
    errors.push(`write runs: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    await Promise.allSettled([floor.stop(), raftlet.stop(), etcd?.stop()]);
  }
  const profileWindowMs = performance.now() - loadStarted;
  if (options.profileDir !== null && profiledPid !== null) {
    // Node names profiles CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile and writes them at exit.
    const file = readdirSync(options.profileDir).find((f) => f.endsWith('.cpuprofile') && f.split('.')[3] === String(profiledPid));
    if (file === undefined) errors.push(`no CPU profile of pid ${profiledPid} in ${options.profileDir} (did the node exit cleanly?)`);
    else profile = summarizeProfile(join(options.profileDir, file), 25, profileWindowMs);
  }
  return { writes, memory, profile };
}

async function failoverPhase(options: Options, bin: string, errors: string[]): Promise<FailoverSeries[]> {
  const series: FailoverSeries[] = [];
  const clusters: (() => BenchCluster & { stop(): Promise<void> })[] = [
    () => new RaftletCluster({ size: CLUSTER_SIZE, ...FAILOVER_TIMINGS, parentDir: options.parentDir, nodeFlags: options.nodeFlags, bin, env: codeEnv(options) }),
  ];
  if (options.etcd) clusters.push(() => new EtcdCluster({ size: CLUSTER_SIZE, ...FAILOVER_TIMINGS, parentDir: options.parentDir }));
  for (const make of clusters) {
    const cluster = make();
    try {
      log(`starting the ${cluster.system} cluster for the failover runs`);
      await withCluster(cluster, async () => {
        for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
          const runs: FailoverRun[] = [];
          for (let run = 1; run <= options.runs; run++) {
            const result = await measureFailover(cluster, signal, run);
            log(`${cluster.system} ${signal} run ${run}: leader ${result.oldLeader} → ${result.newLeader ?? 'none'}, ` +
              `known ${result.leaderKnownMs?.toFixed(0) ?? '-'} ms, write ${result.firstWriteMs?.toFixed(0) ?? '-'} ms, ` +
              `exit ${result.exitedMs?.toFixed(0) ?? '-'} ms, ${result.attempts} write attempts` +
              (result.readyMs === null ? ` (outcomes: ${JSON.stringify(result.outcomes)})` : ''));
            runs.push(result);
          }
          series.push(failoverSeries(cluster.system, signal, runs));
        }
      });
    } catch (err) {
      errors.push(`${cluster.system} failover: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return series;
}

function etcdVersion(): string | null {
  if (!existsSync(ETCD_BIN)) return null;
  try {
    return execFileSync(ETCD_BIN, ['--version'], { encoding: 'utf8' }).split('\n')[0].replace('etcd Version: ', 'etcd ');
  } catch {
    return 'etcd (version unknown)';
  }
}

async function main(): Promise<number> {
  let options: Options | null;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
    return 2;
  }
  if (options === null) {
    process.stdout.write(USAGE);
    return 0;
  }
  // Ctrl-C, a kill or a crash must not leave clusters running or data behind.
  const abort = (signal: string): void => {
    log(`${signal}: stopping every process the benchmark started`);
    killEverything();
    process.exit(130);
  };
  process.once('SIGINT', abort);
  process.once('SIGTERM', abort);
  process.once('exit', killEverything);

  const startedAt = new Date().toISOString();
  const cores = availableParallelism();
  const loadAtStart = loadavg();
  if (!options.etcd) log(existsSync(ETCD_BIN) ? 'etcd skipped (--skip-etcd)' : `${ETCD_BIN} not found: etcd is not run, ratios cannot be computed`);
  const errors: string[] = [];
  let bin = RAFTLET_BIN;
  if (!options.source) {
    log('compiling src/ into a temp dir (tsc -p tsconfig.build.json), as the image runs it');
    try {
      bin = compiledLauncher(options.parentDir);
    } catch (err) {
      process.stderr.write(`bench: cannot compile raftlet: ${err instanceof Error ? err.message : String(err)}\n`);
      return 1;
    }
  }
  const empty = { writes: [] as WriteRow[], memory: [] as MemoryRow[], profile: null };
  const { writes, memory, profile } = options.writes ? await writePhase(options, bin, cores, errors) : empty;
  const failover = options.failover ? await failoverPhase(options, bin, errors) : [];

  const partial: Omit<BenchReport, 'targets'> = {
    startedAt,
    finishedAt: new Date().toISOString(),
    environment: {
      node: process.version,
      raftletRuns: (options.source ? 'src/ through type stripping' : `compiled JavaScript (${resolve(bin, '../../dist')})`) +
        (options.nodeFlags.length > 0 ? ` with ${options.nodeFlags.join(' ')}` : ''),
      etcd: options.etcd ? etcdVersion() : null,
      cores,
      loadAverageAtStart: loadAtStart,
      tempDir: options.parentDir,
    },
    settings: {
      seconds: options.seconds,
      warmupSeconds: options.warmupSeconds,
      clients: options.clients,
      valueBytes: VALUE_BYTES,
      keys: KEYS,
      writeTimings: WRITE_TIMINGS,
      failoverTimings: FAILOVER_TIMINGS,
      failoverRuns: options.runs,
      idleSeconds: options.idleSeconds,
      profiled: options.profileDir !== null,
    },
    writes,
    memory,
    failover,
    profile,
    errors,
  };
  const report: BenchReport = { ...partial, targets: judgeTargets(partial) };
  process.stdout.write(renderReport(report));
  mkdirSync(resolve(options.out, '..'), { recursive: true });
  writeFileSync(options.out, `${JSON.stringify(report, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`);
  process.stdout.write(`\nJSON: ${options.out}\n`);
  if (runningChildren() > 0) log(`${runningChildren()} child processes still running: killing them`);
  return errors.length === 0 ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    killEverything();
    process.exitCode = 1;
  },
);
