// Child processes, ports, temp dirs and /proc readings for the cluster benchmark. Everything the
// benchmark starts is registered here, so one call (also from a signal handler or on an error)
// stops every process and removes every directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Spawned {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves with how the process ended; never rejects. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive(): boolean;
}

const children = new Set<Spawned>();
const dirs = new Set<string>();

/** Starts `command args` with stdout and stderr appended to logFile. */
export function spawnLogged(name: string, command: string, args: readonly string[], env: NodeJS.ProcessEnv, logFile: string): Spawned {
  const log = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(command, args, { env, stdio: ['ignore', log, log] });
  } finally {
    closeSync(log); // the child holds its own descriptor
  }
  let running = true;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      running = false;
      resolve({ code, signal });
    });
    child.once('error', () => {
      running = false;
      resolve({ code: null, signal: null });
    });
  });
  if (child.pid === undefined) throw new Error(`cannot start ${name} (${command}); see ${logFile}`);
  const spawned: Spawned = { name, pid: child.pid, child, exited, alive: () => running };
  children.add(spawned);
  void exited.then(() => children.delete(spawned));
  return spawned;
}

/** SIGTERM, then SIGKILL after graceMs. */
export async function stopProcess(p: Spawned, graceMs: number): Promise<void> {
  if (!p.alive()) return;
  p.child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), graceMs)));
  const how = await Promise.race([p.exited.then(() => 'exited' as const), late]);
  clearTimeout(timer);
  if (how === 'late') {
    p.child.kill('SIGKILL');
    await p.exited;
  }
}

export function makeTempDir(prefix: string, parent: string = tmpdir()): string {
  const dir = mkdtempSync(join(parent, prefix));
  dirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  dirs.delete(dir);
}

/** Last resort (signal, error, exit): kill whatever is still running and remove every temp dir. Synchronous. */
export function killEverything(): void {
  for (const p of children) {
    try {
      p.child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs.clear();
}

export function runningChildren(): number {
  return children.size;
}

/**
 * `count` ports free on 127.0.0.1 right now, from below the kernel's ephemeral range: a killed node's
 * port must not be taken as the source port of one of the load generator's many connections before
 * the node is restarted on it.
 */
export async function freePorts(count: number): Promise<number[]> {
  const [ephemeralLow] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  const high = Math.min(ephemeralLow || 32768, 32768) - 1;
  const low = 20_000;
  const ports: number[] = [];
  for (let attempt = 0; ports.length < count && attempt < 2000; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (ports.includes(port)) continue;
    if (await canBind(port)) ports.push(port);
  }
  if (ports.length < count) throw new Error(`found only ${ports.length} of ${count} free ports in ${low}-${high} on 127.0.0.1`);
  return ports;
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

// ---- /proc ---------------------------------------------------------------------------------------

export interface Memory {
  /** VmRSS: what the target is judged on. */
  readonly rssBytes: number;
  /** VmHWM: the highest VmRSS so far. */
  readonly peakBytes: number;
  /** RssAnon: the process's own memory (heaps, stacks, buffers). */
  readonly anonBytes: number;
  /** RssFile: mapped files, mostly the executable's code, shared with every process running it. */
  readonly fileBytes: number;
}

/** Memory of a process in bytes from /proc/<pid>/status, or null once it is gone. */
export function memoryOf(pid: number): Memory | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  // The kernel's "kB" are KiB.
  const bytes = (field: string): number => 1024 * Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { rssBytes: bytes('VmRSS'), peakBytes: bytes('VmHWM'), anonBytes: bytes('RssAnon'), fileBytes: bytes('RssFile') };
}

const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ, 100 on every Linux this runs on (getconf CLK_TCK)

/** CPU seconds (user + system) a process has used, or null once it is gone. */
export function cpuSecondsOf(pid: number): number | null {
  return readStat(pid)?.seconds ?? null;
}

/** A process's name and CPU seconds from /proc/PID/stat, or null once it is gone. */
function readStat(pid: number): { comm: string; seconds: number } | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name may contain spaces and parentheses: the fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // After the name, field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
  const comm = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
  return { comm, seconds: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND };
}

/** Every process's name and CPU seconds, by pid: compare two readings to see who was busy. */
export function everyProcessCpu(): Map<number, { comm: string; seconds: number }> {
  const all = new Map<number, { comm: string; seconds: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat !== null) all.set(Number(entry), stat);
  }
  return all;
}

export interface BusyProcess {
  readonly pid: number;
  readonly comm: string;
  /** Share of one core over the interval. */
  readonly cores: number;
}

/** The process, other than those in `except`, that used the most CPU between two readings. */
export function busiestBetween(
  before: ReadonlyMap<number, { comm: string; seconds: number }>,
  after: ReadonlyMap<number, { comm: string; seconds: number }>,
  seconds: number,
  except: ReadonlySet<number>,
): BusyProcess | null {
  let busiest: BusyProcess | null = null;
  for (const [pid, now] of after) {
    if (except.has(pid)) continue;
    // A process started in between counts from zero.
    const used = now.seconds - (before.get(pid)?.seconds ?? 0);
    const cores = used / seconds;
    if (busiest === null || cores > busiest.cores) busiest = { pid, comm: now.comm, cores };
  }
  return busiest;
}

/** Busy and total CPU seconds of the whole machine (all cores) since boot. */
export function machineCpuSeconds(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest is already in user)
  const idle = v[3] + v[4];
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: (total - idle) / CLOCK_TICKS_PER_SECOND, total: total / CLOCK_TICKS_PER_SECOND };
}
