// The write load generator: N clients, each a loop that sends one write and waits for its answer,
// over an undici Pool with one keep-alive connection per client. It runs in this process, so it
// also measures its own CPU and event-loop use: with 2 cores the generator and the cluster share
// the machine, and a busy generator would cap the figures it reports.
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import type { BenchCluster } from './cluster.ts';
import { busiestBetween, cpuSecondsOf, everyProcessCpu, machineCpuSeconds, type BusyProcess } from './procs.ts';
import type { Counters } from './scrape.ts';
import { percentile } from './stats.ts';

export interface LoadOptions {
  readonly clients: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly valueBytes: number;
  /** Writes cycle over this many keys. */
  readonly keys: number;
  /** Which member the writes go to. */
  readonly target: number;
  /** Called just before the cluster's counters are read as the measured window opens, and just after
   * they are read as it closes: a caller reading counters of its own gets the same window (and
   * LoadResult.acceptedBetweenReads to divide by). */
  readonly onWindowEdge?: (edge: 'open' | 'close') => Promise<void>;
}

export interface LoadResult {
  readonly writes: number;
  readonly errors: number;
  readonly firstError: string | null;
  readonly seconds: number;
  readonly writesPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
  readonly maxMs: number;
  readonly cpu: CpuShare;
  /** What each accepted write cost the cluster, from the members' metrics; null if not scraped. */
  readonly perWrite: PerWrite | null;
  /** Writes accepted between the counter reads that open and close the window (a write in flight
   * when recording stopped counts, as its cost is in the counters). */
  readonly acceptedBetweenReads: number;
}

export interface PerWrite {
  /** WAL fsyncs on all members together, per accepted write (3 would mean no batching at all). */
  readonly fsyncs: number;
  readonly fsyncMeanMs: number;
  /** Peer HTTP requests carrying Raft messages, all members together, per write (raftlet only). */
  readonly peerRequests: number | null;
  readonly peerRequestMeanMs: number | null;
}

/** Shares of one core (1.0 = one core busy all the time) over the measured window. */
export interface CpuShare {
  readonly generator: number;
  /** The generator's event-loop utilisation (0..1): near 1 means it could not send faster. */
  readonly generatorLoop: number;
  /** Each cluster member, in member order. */
  readonly members: readonly number[];
  /** The whole machine, all processes; at most the number of cores. */
  readonly machine: number;
  readonly cores: number;
  /** The busiest process that is neither a member nor the generator: who the other work was. */
  readonly busiestOther: BusyProcess | null;
}

export async function runLoad(cluster: BenchCluster, options: LoadOptions, cores: number): Promise<LoadResult> {
  const pool = new Pool(cluster.apiUrl(options.target), {
    connections: options.clients,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    keepAliveMaxTimeout: 600_000,
  });
  const value = Buffer.alloc(options.valueBytes, 0x61);
  // Requests are built before the clock starts, so building them costs nothing during the run.
  const requests = Array.from({ length: options.keys }, (_, k) => cluster.write(`bench/key-${k}`, value));
  let next = 0;
  let recording = false;
  let stopping = false;
  const latencies: number[] = [];
  let errors = 0;
  /** Every accepted write, warm-up included, to divide the counters' deltas by. */
  let acceptedTotal = 0;
  let firstError: string | null = null;

  const client = async (): Promise<void> => {
    while (!stopping) {
      const spec = requests[next++ % requests.length];
      const started = performance.now();
      let ok = false;
      let detail = '';
      try {
        const res = await pool.request({ path: spec.path, method: spec.method, headers: spec.headers, body: spec.body });
        const text = await res.body.text();
        ok = cluster.accepted(res.statusCode, text);
        if (ok) acceptedTotal++;
        if (!ok) detail = `HTTP ${res.statusCode} ${text.slice(0, 200)}`;
      } catch (err) {
        detail = err instanceof Error ? err.message : String(err);
      }
      if (!recording) continue;
      if (ok) latencies.push(performance.now() - started);
      else {
        errors++;
        firstError ??= detail;
      }
    }
  };

  const loops = Array.from({ length: options.clients }, () => client());
  await sleep(options.warmupSeconds * 1000);

  await options.onWindowEdge?.('open');
  const countersBefore = await cluster.counters();
  const acceptedBefore = acceptedTotal;
  const pids = Array.from({ length: cluster.size }, (_, i) => cluster.pid(i));
  const cpuBefore = pids.map((pid) => (pid === null ? null : cpuSecondsOf(pid)));
  const machineBefore = machineCpuSeconds();
  const everyBefore = everyProcessCpu();
  const selfBefore = process.cpuUsage();
  const loopBefore = performance.eventLoopUtilization();
  const started = performance.now();
  recording = true;
  await sleep(options.seconds * 1000);
  recording = false;
  const elapsed = (performance.now() - started) / 1000;
  const loopUse = performance.eventLoopUtilization(loopBefore).utilization;
  const self = process.cpuUsage(selfBefore);
  const machineAfter = machineCpuSeconds();
  const busiestOther = busiestBetween(everyBefore, everyProcessCpu(), elapsed, new Set([process.pid, ...pids.filter((pid) => pid !== null)]));
  const members = pids.map((pid, i) => {
    const before = cpuBefore[i];
    const after = pid === null ? null : cpuSecondsOf(pid);
    return before === null || after === null ? Number.NaN : (after - before) / elapsed;
  });
  stopping = true;
  await Promise.all(loops);
  await pool.close();
  const countersAfter = await cluster.counters();
  await options.onWindowEdge?.('close');
  const acceptedBetween = acceptedTotal - acceptedBefore;

  latencies.sort((a, b) => a - b);
  const sum = latencies.reduce((a, b) => a + b, 0);
  return {
    writes: latencies.length,
    errors,
    firstError,
    seconds: elapsed,
    writesPerSecond: latencies.length / elapsed,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    meanMs: latencies.length === 0 ? Number.NaN : sum / latencies.length,
    maxMs: latencies.length === 0 ? Number.NaN : latencies[latencies.length - 1],
    cpu: {
      generator: (self.user + self.system) / 1e6 / elapsed,
      generatorLoop: loopUse,
      members,
      machine: (machineAfter.busy - machineBefore.busy) / ((machineAfter.total - machineBefore.total) / cores),
      cores,
      busiestOther,
    },
    perWrite: perWrite(countersBefore, countersAfter, acceptedBetween),
    acceptedBetweenReads: acceptedBetween,
  };
}

/** Counter deltas per write accepted between the two scrapes. */
function perWrite(before: Counters | null, after: Counters | null, writes: number): PerWrite | null {
  if (before === null || after === null || writes === 0) return null;
  const fsyncs = after.fsyncs - before.fsyncs;
  const requests = after.peerRequests === null || before.peerRequests === null ? null : after.peerRequests - before.peerRequests;
  const requestSeconds = after.peerRequestSeconds === null || before.peerRequestSeconds === null
    ? null : after.peerRequestSeconds - before.peerRequestSeconds;
  return {
    fsyncs: fsyncs / writes,
    fsyncMeanMs: fsyncs === 0 ? Number.NaN : ((after.fsyncSeconds - before.fsyncSeconds) / fsyncs) * 1000,
    peerRequests: requests === null ? null : requests / writes,
    peerRequestMeanMs: requests === null || requestSeconds === null || requests === 0 ? null : (requestSeconds / requests) * 1000,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
