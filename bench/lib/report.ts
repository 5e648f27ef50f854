// The benchmark's result document (also written as JSON), the issue's targets judged against it,
// and the printed table.
import type { SystemName } from './cluster.ts';
import { GIVE_UP_MS, MAX_IN_FLIGHT_PER_SURVIVOR, POLL_MS, WRITE_EVERY_MS, type FailoverRun } from './failover.ts';
import type { LoadResult } from './load.ts';
import type { Memory } from './procs.ts';
import type { ProfileSummary } from './profile.ts';
import { median } from './stats.ts';

export interface WriteRow extends LoadResult {
  readonly system: SystemName;
  /** 'leader' or 'follower': which member the clients talk to. */
  readonly via: 'leader' | 'follower';
  readonly clients: number;
}

export interface MemoryRow extends Memory {
  /** floor: bench/floor-process.mjs, Node and the design's libraries alone (bench/lib/floor.ts). */
  readonly system: SystemName | 'floor';
  readonly member: string;
  /** idle: started, settled, no load yet; after writes: right after the last write run. */
  readonly phase: 'idle' | 'after writes';
}

export interface FailoverSeries {
  readonly system: SystemName;
  readonly signal: NodeJS.Signals;
  readonly runs: readonly FailoverRun[];
  readonly medianLeaderKnownMs: number;
  readonly medianFirstWriteMs: number;
  readonly medianReadyMs: number;
  readonly failedRuns: number;
}

/** One row of the side-by-side table: a figure the issue judges, both systems, the ratio, the goal. */
export interface Target {
  readonly name: string;
  readonly raftlet: string;
  readonly etcd: string;
  /** raftlet / etcd (or, for the follower row, follower path / leader path); null when not measured. */
  readonly ratio: number | null;
  readonly goal: string;
  /** null when it could not be judged (e.g. etcd was skipped). */
  readonly met: boolean | null;
}

export interface BenchReport {
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly environment: {
    readonly node: string;
    readonly raftletRuns: string;
    readonly etcd: string | null;
    readonly cores: number;
    readonly loadAverageAtStart: readonly number[];
    readonly tempDir: string;
  };
  readonly settings: {
    readonly seconds: number;
    readonly warmupSeconds: number;
    readonly clients: readonly number[];
    readonly valueBytes: number;
    readonly keys: number;
    readonly writeTimings: { readonly heartbeatMs: number; readonly electionTimeoutMs: number };
    readonly failoverTimings: { readonly heartbeatMs: number; readonly electionTimeoutMs: number };
    readonly failoverRuns: number;
    readonly idleSeconds: number;
    readonly profiled: boolean;
  };
  readonly writes: readonly WriteRow[];
  readonly memory: readonly MemoryRow[];
  readonly failover: readonly FailoverSeries[];
  readonly targets: readonly Target[];
  readonly profile: ProfileSummary | null;
  readonly errors: readonly string[];
}

export function failoverSeries(system: SystemName, signal: NodeJS.Signals, runs: readonly FailoverRun[]): FailoverSeries {
  const ms = (v: number | null): number => (v === null ? Number.NaN : v);
  const failed = runs.filter((r) => r.readyMs === null).length;
  // A failed run counts as infinitely slow, so failures cannot improve the median.
  const ready = runs.map((r) => (r.readyMs === null ? Number.POSITIVE_INFINITY : r.readyMs));
  return {
    system,
    signal,
    runs,
    medianLeaderKnownMs: median(runs.map((r) => ms(r.leaderKnownMs))),
    medianFirstWriteMs: median(runs.map((r) => ms(r.firstWriteMs))),
    medianReadyMs: median(ready),
    failedRuns: failed,
  };
}

/** Share of etcd's writes/s raftlet must reach at N clients (the issue: 1.0x at 1 and 8, 1.5x at 64). */
export function writesGoal(clients: number): number {
  return clients >= 64 ? 1.5 : 1.0;
}
/** Event-loop use of the generator above which it may itself have limited a run. */
const GENERATOR_BUSY = 0.8;
/** Idle RSS per raftlet member, at most (the issue's absolute goal). */
export const IDLE_RSS_LIMIT_BYTES = 60e6;
/** Writes through a follower at the highest concurrency, as a share of the leader path, at least. */
export const FOLLOWER_SHARE_GOAL = 0.8;
/** Failover medians as a share of etcd's, at most. */
export const FAILOVER_GOAL: Readonly<Record<string, number>> = { SIGKILL: 0.5, SIGTERM: 1.0 };

/** The figures the issue judges, raftlet against etcd in the same run, each with its goal. */
export function judgeTargets(report: Omit<BenchReport, 'targets'>): Target[] {
  const targets: Target[] = [];
  const leaderRun = (system: SystemName, clients: number): WriteRow | undefined =>
    report.writes.find((w) => w.system === system && w.via === 'leader' && w.clients === clients);
  const both = (name: string, r: number | undefined, e: number | undefined, text: (v: number) => string,
    goal: string, pass: (ratio: number) => boolean): void => {
    const ratio = r === undefined || e === undefined || !Number.isFinite(r) || !Number.isFinite(e) || e === 0 ? null : r / e;
    targets.push({
      name, raftlet: r === undefined ? 'n/a' : text(r), etcd: e === undefined ? 'n/a' : text(e), ratio, goal,
      met: ratio === null ? null : pass(ratio),
    });
  };
  const clients = report.settings.clients;
  for (const n of clients) {
    const goal = writesGoal(n);
    both(`writes/s, ${n} client${n === 1 ? '' : 's'}`, leaderRun('raftlet', n)?.writesPerSecond, leaderRun('etcd', n)?.writesPerSecond,
      (v) => v.toFixed(0), `>= ${goal.toFixed(1)}x etcd`, (ratio) => ratio >= goal);
  }
  const lowest = Math.min(...clients);
  both(`p50 latency, ${lowest} client${lowest === 1 ? '' : 's'} (ms)`, leaderRun('raftlet', lowest)?.p50Ms, leaderRun('etcd', lowest)?.p50Ms,
    fmtMs, '<= 1.0x etcd', (ratio) => ratio <= 1.0);
  for (const n of clients) {
    const r = leaderRun('raftlet', n);
    const e = leaderRun('etcd', n);
    both(`CPU ms per write, ${n} client${n === 1 ? '' : 's'}`, r && cpuMsPerWrite(r), e && cpuMsPerWrite(e),
      (v) => v.toFixed(2), '<= 1.0x etcd', (ratio) => ratio <= 1.0);
  }
  const highest = Math.max(...clients);
  // Each system's follower path as a share of its own leader path; etcd's is shown for reference.
  const followerPath = (system: SystemName): { text: string; share: number | null } => {
    const follower = report.writes.find((w) => w.system === system && w.via === 'follower' && w.clients === highest);
    const leaderPath = leaderRun(system, highest);
    const share = follower && leaderPath && leaderPath.writesPerSecond > 0 ? follower.writesPerSecond / leaderPath.writesPerSecond : null;
    if (follower === undefined) return { text: system === 'etcd' ? '-' : 'n/a', share };
    return { text: `${follower.writesPerSecond.toFixed(0)} (${share === null ? 'n/a' : `${share.toFixed(2)}x`} of ${leaderPath?.writesPerSecond.toFixed(0) ?? 'n/a'})`, share };
  };
  const raftletFollower = followerPath('raftlet');
  targets.push({
    name: `writes/s, ${highest} clients through a follower`,
    raftlet: raftletFollower.text, etcd: followerPath('etcd').text,
    ratio: raftletFollower.share, goal: `>= ${FOLLOWER_SHARE_GOAL}x the leader path`,
    met: raftletFollower.share === null ? null : raftletFollower.share >= FOLLOWER_SHARE_GOAL,
  });
  const largest = (system: MemoryRow['system'], phase: MemoryRow['phase']): number | undefined => {
    const rows = report.memory.filter((m) => m.system === system && m.phase === phase);
    return rows.length === 0 ? undefined : Math.max(...rows.map((m) => m.rssBytes));
  };
  const mb = (v: number): string => `${(v / 1e6).toFixed(1)} MB`;
  both('VmRSS per member after the writes (largest)', largest('raftlet', 'after writes'), largest('etcd', 'after writes'), mb,
    '<= 1.0x etcd', (ratio) => ratio <= 1.0);
  const idle = largest('raftlet', 'idle');
  const idleEtcd = largest('etcd', 'idle');
  const floor = largest('floor', 'idle');
  targets.push({
    name: 'VmRSS per member idle (largest)',
    raftlet: idle === undefined ? 'n/a' : `${mb(idle)}${floor === undefined ? '' : ` (floor ${mb(floor)})`}`,
    etcd: idleEtcd === undefined ? 'n/a' : mb(idleEtcd),
    ratio: idle === undefined || idleEtcd === undefined ? null : idle / idleEtcd,
    goal: `<= ${IDLE_RSS_LIMIT_BYTES / 1e6} MB`, met: idle === undefined ? null : idle <= IDLE_RSS_LIMIT_BYTES,
  });
  const et = report.settings.failoverTimings.electionTimeoutMs;
  for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
    const r = report.failover.find((f) => f.system === 'raftlet' && f.signal === signal);
    const e = report.failover.find((f) => f.system === 'etcd' && f.signal === signal);
    const goal = FAILOVER_GOAL[signal]!;
    both(`failover after ${signal === 'SIGKILL' ? 'kill -9' : 'SIGTERM'}, T = ${et} ms (median ready, ms)`, r?.medianReadyMs, e?.medianReadyMs,
      fmtMs, `<= ${goal.toFixed(1)}x etcd`, (ratio) => ratio <= goal);
  }
  return targets;
}

// ---- printing ------------------------------------------------------------------------------------

function fmtMs(v: number | null): string {
  if (v === null || Number.isNaN(v)) return '-';
  if (!Number.isFinite(v)) return 'failed';
  return v < 10 ? v.toFixed(2) : v.toFixed(0);
}

function table(header: readonly string[], rows: readonly (readonly string[])[], rightAligned: ReadonlySet<number>): string[] {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: readonly string[]): string =>
    cells.map((cell, c) => (rightAligned.has(c) ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

/** CPU the members used per accepted write, in ms (shares of a core × seconds / writes). */
export function cpuMsPerWrite(w: WriteRow): number {
  const cores = w.cpu.members.reduce((a, b) => a + b, 0);
  return w.writesPerSecond === 0 ? Number.NaN : (cores / w.writesPerSecond) * 1000;
}

const pct = (share: number): string => (Number.isNaN(share) ? '-' : `${Math.round(share * 100)}%`);

/** Above this much of one core taken by other work (machine - generator - members), a write run is
 * called noisy. Loopback networking and disk I/O in the kernel come to 0.1-0.23 of a core in quiet
 * runs; in one run of 2026-12-04 something outside the bench took a whole core during the follower
 * run, and that run's ratio (0.39x) said nothing about raftlet. */
export const OTHER_WORK_NOISY = 0.35;

/** CPU (in cores) that neither the generator nor a member used during a write run; NaN if unknown. */
function otherWork(w: WriteRow): number {
  return w.cpu.machine - w.cpu.generator - w.cpu.members.reduce((a, b) => a + b, 0);
}

/** One line for each write run that other work made noisy, naming the busiest other process. */
export function noisyRunNotes(writes: readonly WriteRow[]): string[] {
  const notes: string[] = [];
  for (const w of writes) {
    const other = otherWork(w);
    if (!(other > OTHER_WORK_NOISY)) continue;
    const who = w.cpu.busiestOther ?? null;
    const named = who === null ? '' : ` (busiest other process: ${who.comm}, pid ${who.pid}, ${pct(who.cores)} of a core)`;
    notes.push(`NOTE: other work on the machine took ${pct(other)} of a core during ${w.system} via ${w.via}, ${w.clients} clients${named}: that run is noisy.`);
  }
  return notes;
}

export function renderReport(r: BenchReport): string {
  const out: string[] = [];
  const e = r.environment;
  const s = r.settings;
  out.push(`raftlet cluster benchmark, ${r.startedAt}`);
  out.push(`  node ${e.node} (raftlet runs ${e.raftletRuns}), ${e.etcd ?? 'etcd not run'}, ${e.cores} cores, ` +
    `load average at start ${e.loadAverageAtStart.map((l) => l.toFixed(2)).join(' ')}`);
  out.push(`  3 members each on 127.0.0.1, data in ${e.tempDir} (fsync on), ${s.valueBytes}-byte values over ${s.keys} keys, ` +
    `${s.seconds} s per run after ${s.warmupSeconds} s warm-up`);
  out.push('  Load generator: this process, undici Pool, one keep-alive connection per client, each client one write at a time.');
  out.push(`  The cluster, the generator and anything else running share these ${e.cores} cores: "gen" is the generator's CPU`);
  out.push('  (100% = one core) and event-loop use; near 100% loop use would mean it capped the figures. "machine" is');
  out.push('  all processes; what it shows beyond gen + members is other work on the machine.');
  if (e.etcd !== null) {
    out.push('  etcd is driven through its v3 gRPC-gateway (POST /v3/kv/put, base64 JSON): HTTP+JSON like raftlet\'s API,');
    out.push('  so both pay a comparable parsing cost and the ratio compares the replication paths fairly.');
  }
  if (e.loadAverageAtStart[0] > 0.5) out.push(`  NOTE: the machine was busy when this started (load ${e.loadAverageAtStart[0].toFixed(2)}): figures may be noisy.`);
  if (s.profiled) out.push('  NOTE: raftlet nodes ran under --cpu-prof, which slows them a little.');
  out.push('');

  if (r.writes.length > 0) {
    out.push(`Writes (timings: heartbeat ${s.writeTimings.heartbeatMs} ms, election timeout ${s.writeTimings.electionTimeoutMs} ms for both systems)`);
    out.push(...table(
      ['system', 'via', 'clients', 'writes/s', 'p50 ms', 'p99 ms', 'mean ms', 'errors', 'gen cpu', 'gen loop', 'members cpu', 'machine'],
      r.writes.map((w) => [
        w.system, w.via, String(w.clients), w.writesPerSecond.toFixed(0), fmtMs(w.p50Ms), fmtMs(w.p99Ms), fmtMs(w.meanMs),
        String(w.errors), pct(w.cpu.generator), pct(w.cpu.generatorLoop), w.cpu.members.map(pct).join('/'),
        `${pct(w.cpu.machine / w.cpu.cores)} of ${w.cpu.cores}`,
      ]),
      new Set([2, 3, 4, 5, 6, 7, 8, 9, 11]),
    ));
    const costed = r.writes.filter((w) => w.perWrite !== null);
    if (costed.length > 0) {
      out.push('');
      out.push('  Cost per accepted write, all members together: CPU time (from /proc), WAL fsyncs and their mean time');
      out.push('  (from /metrics); raftlet also: peer HTTP requests carrying Raft messages and their mean round trip');
      out.push('  (etcd streams its peer messages instead)');
      out.push(...table(
        ['system', 'via', 'clients', 'CPU ms/write', 'fsyncs/write', 'fsync ms', 'peer req/write', 'peer req ms'],
        costed.map((w) => {
          const c = w.perWrite as NonNullable<WriteRow['perWrite']>;
          return [w.system, w.via, String(w.clients), fmtMs(cpuMsPerWrite(w)), c.fsyncs.toFixed(2), fmtMs(c.fsyncMeanMs),
            c.peerRequests === null ? '-' : c.peerRequests.toFixed(2), fmtMs(c.peerRequestMeanMs)];
        }),
        new Set([2, 3, 4, 5, 6, 7]),
      ).map((l) => `  ${l}`));
    }
    const busiest = Math.max(...r.writes.map((w) => w.cpu.generatorLoop));
    out.push(busiest > GENERATOR_BUSY
      ? `  WARNING: the load generator's event loop was ${pct(busiest)} busy in one run: it may have capped that run.`
      : `  The load generator's event loop was at most ${pct(busiest)} busy: it did not cap the figures.`);
    for (const note of noisyRunNotes(r.writes)) out.push(`  ${note}`);
    for (const w of r.writes) if (w.firstError !== null) out.push(`  ${w.system} ${w.clients} clients: first error: ${w.firstError}`);
    out.push('');
  }

  if (r.memory.length > 0) {
    out.push(`Memory (MB = 10^6 bytes; VmRSS = anon + file; file is mostly the executable's code, shared by every process`);
    out.push(`running the same binary). idle = started, settled and ${s.idleSeconds} s without load; after writes = right after the`);
    out.push('last write run');
    const mb = (b: number): string => (b / 1e6).toFixed(1);
    out.push(...table(['system', 'member', 'when', 'VmRSS MB', 'anon MB', 'file MB', 'peak VmHWM MB'],
      r.memory.map((m) => [m.system, m.member, m.phase, mb(m.rssBytes), mb(m.anonBytes), mb(m.fileBytes), mb(m.peakBytes)]), new Set([3, 4, 5, 6])));
    out.push('');
  }

  if (r.failover.length > 0) {
    out.push(`Failover (heartbeat ${s.failoverTimings.heartbeatMs} ms, election timeout ${s.failoverTimings.electionTimeoutMs} ms; ms from the signal to the leader)`);
    out.push(`  known = a survivor names a new leader (each asked every ${POLL_MS} ms); write = first write accepted (a new`);
    out.push(`  attempt to each survivor every ${WRITE_EVERY_MS} ms, at most ${MAX_IN_FLIGHT_PER_SURVIVOR} in flight per survivor, and back to back to the new`);
    out.push(`  leader once named); ready = the later of the two; exit = the old leader's process has exited; a failed`);
    out.push(`  run (no write within ${GIVE_UP_MS / 1000} s) counts as slowest`);
    out.push(...table(
      ['system', 'signal', 'median known', 'median write', 'median ready', 'failed', 'runs (ready / exit)'],
      r.failover.map((f) => [
        f.system, f.signal, fmtMs(f.medianLeaderKnownMs), fmtMs(f.medianFirstWriteMs), fmtMs(f.medianReadyMs), String(f.failedRuns),
        f.runs.map((run) => `${fmtMs(run.readyMs)}/${fmtMs(run.exitedMs)}`).join(' '),
      ]),
      new Set([2, 3, 4, 5]),
    ));
    out.push('');
  }

  if (r.profile !== null) {
    const p = r.profile;
    out.push(`CPU profile of the leader over the write runs (${p.file}, last ${(p.windowMs / 1000).toFixed(1)} s): ` +
      `busy ${(p.busyMs / 1000).toFixed(1)} s of ${(p.totalMs / 1000).toFixed(1)} s; self time, share of busy time`);
    out.push(...table(['self %', 'self ms', 'function'], p.functions.map((l) => [pct(l.share), l.selfMs.toFixed(0), l.name]), new Set([0, 1])));
    out.push('');
    out.push(...table(['self %', 'self ms', 'file'], p.files.map((l) => [pct(l.share), l.selfMs.toFixed(0), l.name]), new Set([0, 1])));
    out.push('');
  }

  out.push('raftlet vs etcd, side by side: the rows issue 12 judges (ratio = raftlet / etcd; for the follower row,');
  out.push('raftlet\'s follower path / its leader path, with etcd\'s own share beside it for reference)');
  out.push(...table(['row', 'raftlet', 'etcd', 'ratio', 'goal', 'result'],
    r.targets.map((t) => [t.name, t.raftlet, t.etcd, t.ratio === null ? '-' : `${t.ratio.toFixed(2)}x`, t.goal,
      t.met === null ? 'not measured' : t.met ? 'met' : 'MISSED']), new Set([1, 2, 3])));
  for (const err of r.errors) out.push(`ERROR: ${err}`);
  return `${out.join('\n')}\n`;
}
