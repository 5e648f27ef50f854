// `npm run bench:abuse`: does junk on the leader's peer port slow a writer down? (issue 14: "the
// writer's p99 stays within 2x its unabused value"). A 3-node raftlet cluster (compiled, as the image
// runs it) on 127.0.0.1, over plain HTTP and over peer mutual TLS; one writer (sequential PUTs of
// 100-byte values to the leader's client API, from this process) runs throughout, while windows
// without and with abuse alternate several times in one run, so slow drifts of a shared machine fall
// on both sides alike. The abuser (test/transport/fixtures/abuser.ts: thousands of unauthenticated,
// oversized, slow and idle connections, and over TLS handshakes without a certificate plus junk in
// sessions with a valid certificate and no token) runs as a process of its own at the lowest CPU
// priority (nice 19): an attacker's CPU is not the cluster's in real life, and on a 2-core machine
// an abuser at normal priority measures the scheduler, not the peer port.
//
// Each pair of windows gets a third, the control: the same abuse aimed at a decoy peer port (the
// same server code in a process of its own, no Raft behind it). The machine carries the same junk,
// but none of it lands in the leader; abused/decoy then says what the leader's own handling of the
// junk costs the writer, and decoy/unabused what the shared machine costs it.
//
// Per window: the writer's writes, p50, p99 and failures; the leader's CPU (ms per second, from
// /proc) and its highest VmRSS; the abuser's counts and CPU. Then per transport: the median over
// window pairs of abused p99 / unabused p99 (and of p50), the pooled p99s, the leader's CPU with and
// without abuse, and whether the term stayed the same (no election). Nothing here fails on the
// figures: the exit code is non-zero only when the benchmark could not run.
//   node bench/abuse.ts [--pairs N] [--seconds N] [--transport http,tls] [--profile DIR] [--source]
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool, request } from 'undici';
import { createThrowawayCa } from '../src/transport/throwaway-ca.ts';
import { compiledLauncher } from './lib/compiled.ts';
import { cpuSecondsOf, killEverything, makeTempDir, memoryOf } from './lib/procs.ts';
import { summarizeProfile } from './lib/profile.ts';
import { RaftletCluster } from './lib/raftlet-cluster.ts';
import { median, percentile } from './lib/stats.ts';

const ABUSER = fileURLToPath(new URL('../test/transport/fixtures/abuser.ts', import.meta.url));
const DECOY = fileURLToPath(new URL('./lib/decoy-peer.ts', import.meta.url));
const VALUE = Buffer.alloc(100, 'v');
const KEYS = 500;

const USAGE = `Usage: node bench/abuse.ts [options]   (npm run bench:abuse -- [options])
  --pairs N          rounds of unabused, abused and decoy windows per transport (default 4)
  --seconds N        seconds per window (default 8)
  --transport LIST   http, tls or both, comma-separated (default http,tls)
  --profile DIR      run the nodes under --cpu-prof and print the leader's top functions
  --source           run the nodes from src/ (type stripping) instead of a compiled copy
`;

type Transport = 'http' | 'tls';

interface Options {
  readonly pairs: number;
  readonly seconds: number;
  readonly transports: readonly Transport[];
  readonly profileDir: string | null;
  readonly source: boolean;
}

type Target = 'none' | 'leader' | 'decoy';

interface Window {
  readonly target: Target;
  readonly writes: number;
  readonly failures: number;
  readonly firstFailure: string | null;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly latencies: readonly number[];
  readonly leaderCpuMsPerS: number;
  readonly leaderRssMaxMb: number;
  /** The leader's event-loop delay over the window (prom-client's monitorEventLoopDelay, reset
   * by each scrape): how long its own work kept it from answering. */
  readonly leaderLoopP99Ms: number;
  readonly leaderLoopMaxMs: number;
  readonly abuser: Record<string, number> | null;
}

function parseOptions(argv: readonly string[]): Options | null {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      pairs: { type: 'string', default: '4' },
      seconds: { type: 'string', default: '8' },
      transport: { type: 'string', default: 'http,tls' },
      profile: { type: 'string' },
      source: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return null;
  const whole = (name: string, text: string, min: number): number => {
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${name} must be a whole number >= ${min} (got ${text})`);
    return n;
  };
  const transports = values.transport.split(',').map((t) => t.trim());
  for (const t of transports) if (t !== 'http' && t !== 'tls') throw new Error(`--transport takes http and/or tls (got ${t})`);
  return {
    pairs: whole('pairs', values.pairs, 1),
    seconds: whole('seconds', values.seconds, 2),
    transports: transports as Transport[],
    profileDir: values.profile === undefined ? null : resolve(values.profile),
    source: values.source,
  };
}

/** The writer: one PUT at a time to the leader, latencies recorded into whichever window is open. */
class Writer {
  private readonly pool: Pool;
  private running = true;
  private i = 0;
  private sink: { latencies: number[]; failures: string[] } | null = null;
  private readonly done: Promise<void>;

  constructor(apiUrl: string) {
    this.pool = new Pool(apiUrl, { connections: 1, pipelining: 1 });
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const started = performance.now();
      const sink = this.sink;
      try {
        const res = await this.pool.request({ method: 'PUT', path: `/v1/kv/abuse-${this.i++ % KEYS}`, body: VALUE, headersTimeout: 15_000, bodyTimeout: 15_000 });
        const text = await res.body.text();
        if (res.statusCode === 200) sink?.latencies.push(performance.now() - started);
        else sink?.failures.push(`${res.statusCode} ${text.slice(0, 120)}`);
      } catch (error) {
        sink?.failures.push(error instanceof Error ? error.message : String(error));
        await sleep(50);
      }
    }
  }

  collect(): { latencies: number[]; failures: string[] } {
    const sink = { latencies: [] as number[], failures: [] as string[] };
    this.sink = sink;
    return sink;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
    await this.pool.close();
  }
}

interface Abuser {
  /** Resolves with the abuser's counts once it exits. */
  readonly finished: Promise<Record<string, number>>;
}

/** Starts the abuser at nice 19 and resolves once it says it started (its start-up is not measured). */
async function startAbuser(port: number, ms: number, tlsArgs: readonly string[]): Promise<Abuser> {
  const child = spawn('nice', ['-n', '19', process.execPath, ABUSER, String(port), String(ms), ...tlsArgs], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const started = new Promise<void>((resolveStarted, reject) => {
    child.once('message', () => resolveStarted());
    void exited.then(([code]) => reject(new Error(`the abuser exited (${code}) before it started: ${out}`)));
  });
  await started;
  const finished = exited.then(([code]) => {
    if (code !== 0) throw new Error(`the abuser failed (exit ${code}): ${out}`);
    return JSON.parse(out) as Record<string, number>;
  });
  return { finished };
}

async function termOf(apiUrl: string): Promise<{ term: number; leader: string | null }> {
  const res = await request(`${apiUrl}/v1/status`, { signal: AbortSignal.timeout(5000) });
  const status = (await res.body.json()) as { term: number; leader: string | null };
  return { term: status.term, leader: status.leader };
}

/** The leader's event-loop delay since the previous scrape (prom-client resets it on each). */
async function loopDelay(metricsUrl: string): Promise<{ p99Ms: number; maxMs: number }> {
  const res = await request(`${metricsUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
  const text = await res.body.text();
  const sample = (name: string): number => 1000 * Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { p99Ms: sample('nodejs_eventloop_lag_p99_seconds'), maxMs: sample('nodejs_eventloop_lag_max_seconds') };
}

async function measureWindow(target: Target, writer: Writer, leaderPid: number, metricsUrl: string, seconds: number, abuser: Abuser | null): Promise<Window> {
  await loopDelay(metricsUrl);
  const sink = writer.collect();
  const cpuBefore = cpuSecondsOf(leaderPid) ?? Number.NaN;
  const started = performance.now();
  let rssMax = memoryOf(leaderPid)?.rssBytes ?? 0;
  const sampler = setInterval(() => {
    rssMax = Math.max(rssMax, memoryOf(leaderPid)?.rssBytes ?? 0);
  }, 200);
  await sleep(seconds * 1000);
  clearInterval(sampler);
  const elapsedS = (performance.now() - started) / 1000;
  const cpuAfter = cpuSecondsOf(leaderPid) ?? Number.NaN;
  writer.collect();
  const loop = await loopDelay(metricsUrl);
  const counts = abuser === null ? null : await abuser.finished;
  const sorted = [...sink.latencies].sort((a, b) => a - b);
  return {
    target,
    writes: sorted.length,
    failures: sink.failures.length,
    firstFailure: sink.failures[0] ?? null,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    maxMs: sorted.at(-1) ?? Number.NaN,
    latencies: sorted,
    leaderCpuMsPerS: ((cpuAfter - cpuBefore) * 1000) / elapsedS,
    leaderRssMaxMb: rssMax / 2 ** 20,
    leaderLoopP99Ms: loop.p99Ms,
    leaderLoopMaxMs: loop.maxMs,
    abuser: counts,
  };
}

const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : '-');

async function runTransport(transport: Transport, options: Options, bin: string | undefined, workDir: string): Promise<Record<string, unknown>> {
  const env: Record<string, string> = {};
  let abuserTls: string[] = [];
  if (transport === 'tls') {
    // One certificate for every member (names localhost and 127.0.0.1, as every peer URL here), with
    // the name check on both ways, so its cost is in the figures too; the abuser holds a valid
    // certificate of the same CA (the worst case) but not the token.
    const ca = createThrowawayCa(join(workDir, 'ca'), 'raftlet-bench-ca');
    const member = ca.issue('bench-member');
    const visitor = ca.issue('visitor');
    Object.assign(env, {
      RAFTLET_PEER_TLS_CERT_FILE: member.certFile,
      RAFTLET_PEER_TLS_KEY_FILE: member.keyFile,
      RAFTLET_PEER_TLS_CA_FILE: ca.caFile,
      RAFTLET_PEER_TLS_VERIFY_NAME: '1',
    });
    abuserTls = [ca.caFile, visitor.certFile, visitor.keyFile];
  }
  const profileDir = options.profileDir === null ? null : join(options.profileDir, transport);
  if (profileDir !== null) mkdirSync(profileDir, { recursive: true });
  const cluster = new RaftletCluster({
    size: 3,
    heartbeatMs: 100,
    electionTimeoutMs: 1000,
    parentDir: workDir,
    bin,
    env,
    peerScheme: transport === 'tls' ? 'https' : 'http',
    nodeFlags: profileDir === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`],
  });
  const decoy = await startDecoy(abuserTls);
  await cluster.start();
  try {
    const leader = await leaderIndex(cluster);
    const leaderPid = cluster.pid(leader);
    if (leaderPid === null) throw new Error('the leader process is gone');
    const before = await termOf(cluster.apiUrl(leader));
    const writer = new Writer(cluster.apiUrl(leader));
    const windows: Window[] = [];
    try {
      await sleep(2000); // warm-up: connections, JIT
      for (let pair = 0; pair < options.pairs; pair++) {
        windows.push(await measureWindow('none', writer, leaderPid, cluster.metricsUrl(leader), options.seconds, null));
        for (const target of pair % 2 === 0 ? (['leader', 'decoy'] as const) : (['decoy', 'leader'] as const)) {
          const port = target === 'leader' ? cluster.peerPort(leader) : decoy.port;
          const abuser = await startAbuser(port, options.seconds * 1000 + 300, abuserTls);
          windows.push(await measureWindow(target, writer, leaderPid, cluster.metricsUrl(leader), options.seconds, abuser));
          // What the abuser left behind is dropped before the next window.
          await sleep(1000);
        }
      }
    } finally {
      await writer.stop();
    }
    const after = await termOf(cluster.apiUrl(leader));
    const refusalLines = readFileSync(cluster.logFile(leader), 'utf8').split('refused a peer request').length - 1;
    return report(transport, windows, before, after, refusalLines, options);
  } finally {
    decoy.stop();
    await cluster.stop();
    if (profileDir !== null) printProfile(profileDir, options);
  }
}

/** The decoy peer port (bench/lib/decoy-peer.ts), with the same TLS material as the members. */
async function startDecoy(tlsArgs: readonly string[]): Promise<{ port: number; stop: () => void }> {
  const child = spawn(process.execPath, [DECOY, ...tlsArgs], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [message] = (await once(child, 'message')) as [{ port: number }];
  child.disconnect();
  return { port: message.port, stop: () => child.kill('SIGTERM') };
}

async function leaderIndex(cluster: RaftletCluster): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const view = await cluster.view(0, 2000);
    const index = view?.leader === undefined || view.leader === null ? -1 : [0, 1, 2].findIndex((i) => cluster.memberId(i) === view.leader);
    if (index >= 0) return index;
    await sleep(100);
  }
  throw new Error('no leader');
}

function report(transport: Transport, windows: readonly Window[], before: { term: number }, after: { term: number }, refusalLines: number, options: Options): Record<string, unknown> {
  const out = process.stdout;
  out.write(`\n== ${transport === 'tls' ? 'peer mutual TLS (name check on)' : 'plain HTTP'}: ${options.pairs} pairs of ${options.seconds} s windows ==\n`);
  out.write('window      writes  fail   p50 ms   p99 ms   max ms  leader CPU ms/s  loop p99/max ms  leader RSS MB  abuser (connections opened, CPU ms)\n');
  windows.forEach((w, i) => {
    const abuser = w.abuser === null ? '' : `${Object.entries(w.abuser).filter(([k]) => k !== 'abuserCpuMs').reduce((a, [, v]) => a + v, 0)} conns, ${w.abuser.abuserCpuMs} ms`;
    out.write(`${`${Math.floor(i / 3) + 1} ${w.target === 'none' ? 'quiet' : w.target === 'leader' ? 'abused' : 'decoy'}`.padEnd(10)}  ${String(w.writes).padStart(6)}  ${String(w.failures).padStart(4)}  ${f1(w.p50Ms).padStart(7)}  ${f1(w.p99Ms).padStart(7)}  ${f1(w.maxMs).padStart(7)}  ${f1(w.leaderCpuMsPerS).padStart(15)}  ${`${f1(w.leaderLoopP99Ms)}/${f1(w.leaderLoopMaxMs)}`.padStart(15)}  ${f1(w.leaderRssMaxMb).padStart(13)}  ${abuser}\n`);
    if (w.firstFailure !== null) out.write(`            first failure: ${w.firstFailure}\n`);
  });
  const quiet = windows.filter((w) => w.target === 'none');
  const abused = windows.filter((w) => w.target === 'leader');
  const decoys = windows.filter((w) => w.target === 'decoy');
  const p99Ratios = abused.map((w, i) => w.p99Ms / quiet[i].p99Ms);
  const p50Ratios = abused.map((w, i) => w.p50Ms / quiet[i].p50Ms);
  const decoyRatios = decoys.map((w, i) => w.p99Ms / quiet[i].p99Ms);
  const leaderShare = abused.map((w, i) => w.p99Ms / decoys[i].p99Ms);
  const pooled = (ws: readonly Window[], q: number): number => percentile(ws.flatMap((w) => w.latencies).sort((a, b) => a - b), q);
  const summary = {
    transport,
    p99RatioMedian: median(p99Ratios),
    p99Ratios,
    p50RatioMedian: median(p50Ratios),
    decoyP99RatioMedian: median(decoyRatios),
    abusedOverDecoyP99Median: median(leaderShare),
    pooledP99DecoyMs: pooled(decoys, 0.99),
    pooledP99QuietMs: pooled(quiet, 0.99),
    pooledP99AbusedMs: pooled(abused, 0.99),
    leaderCpuQuietMsPerS: median(quiet.map((w) => w.leaderCpuMsPerS)),
    leaderCpuAbusedMsPerS: median(abused.map((w) => w.leaderCpuMsPerS)),
    leaderRssMaxMb: Math.max(...windows.map((w) => w.leaderRssMaxMb)),
    leaderLoopP99QuietMs: median(quiet.map((w) => w.leaderLoopP99Ms)),
    leaderLoopP99AbusedMs: median(abused.map((w) => w.leaderLoopP99Ms)),
    leaderCpuPerWriteQuietMs: median(quiet.map((w) => (w.leaderCpuMsPerS * options.seconds) / w.writes)),
    leaderCpuPerWriteAbusedMs: median(abused.map((w) => (w.leaderCpuMsPerS * options.seconds) / w.writes)),
    failures: windows.reduce((a, w) => a + w.failures, 0),
    termBefore: before.term,
    termAfter: after.term,
    refusalLogLines: refusalLines,
    windows: windows.map(({ latencies: _dropped, ...rest }) => rest),
  };
  out.write(
    `writer p99 abused/unabused, per pair: ${p99Ratios.map((r) => r.toFixed(2)).join(' ')}; median ${summary.p99RatioMedian.toFixed(2)}x (goal <= 2x)` +
      `; p50 median ${summary.p50RatioMedian.toFixed(2)}x\n` +
      `control, the same abuse on a decoy port: p99 decoy/unabused ${decoyRatios.map((r) => r.toFixed(2)).join(' ')}; median ${summary.decoyP99RatioMedian.toFixed(2)}x ` +
      `(the machine's share); abused/decoy median ${summary.abusedOverDecoyP99Median.toFixed(2)}x (the leader's own share)\n` +
      `pooled p99: ${f1(summary.pooledP99QuietMs)} ms unabused, ${f1(summary.pooledP99AbusedMs)} ms abused, ${f1(summary.pooledP99DecoyMs)} ms decoy\n` +
      `leader CPU (median of windows): ${f1(summary.leaderCpuQuietMsPerS)} ms/s unabused, ${f1(summary.leaderCpuAbusedMsPerS)} ms/s abused; ` +
      `leader RSS at most ${f1(summary.leaderRssMaxMb)} MB\n` +
      `leader event-loop delay p99 (median of windows): ${f1(summary.leaderLoopP99QuietMs)} ms unabused, ${f1(summary.leaderLoopP99AbusedMs)} ms abused\n` +
      `term ${before.term} -> ${after.term} (${after.term === before.term ? 'no election' : 'AN ELECTION HAPPENED'}); ` +
      `${summary.failures} failed writes; ${refusalLines} refusal log lines on the leader\n`,
  );
  return summary;
}

function printProfile(dir: string, options: Options): void {
  const windowMs = options.pairs * (3 * options.seconds + 2) * 1000;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const summary = summarizeProfile(join(dir, file), 15, windowMs);
    process.stdout.write(`\nprofile ${file}: busy ${f1(summary.busyMs)} of ${f1(summary.totalMs)} ms\n`);
    for (const line of summary.functions) process.stdout.write(`  ${f1(line.selfMs).padStart(8)} ms ${(100 * line.share).toFixed(1).padStart(5)}%  ${line.name}\n`);
  }
}

async function main(): Promise<number> {
  let options: Options | null;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
    return 2;
  }
  if (options === null) {
    process.stdout.write(USAGE);
    return 0;
  }
  const workDir = makeTempDir('raftlet-bench-abuse-');
  const bin = options.source ? undefined : compiledLauncher(workDir);
  process.stdout.write(
    `bench:abuse: load ${loadavg().map((l) => l.toFixed(2)).join(' ')} at start. The abuser runs at nice 19: an attacker's CPU is not ` +
      'the cluster\'s in real life, and on a shared machine an abuser at normal priority would measure the scheduler, not the peer port. ' +
      'The writer, the cluster and the abuser still share this machine\'s cores.\n',
  );
  const results: Record<string, unknown>[] = [];
  for (const transport of options.transports) results.push(await runTransport(transport, options, bin, workDir));
  process.stdout.write(`\nload ${loadavg().map((l) => l.toFixed(2)).join(' ')} at the end\n`);
  process.stdout.write(`${JSON.stringify({ results })}\n`);
  return 0;
}

process.on('SIGINT', () => {
  killEverything();
  process.exit(130);
});
try {
  process.exitCode = await main();
} catch (error) {
  process.stderr.write(`bench:abuse could not run: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
} finally {
  killEverything();
}
