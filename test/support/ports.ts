// Loopback ports for test clusters and servers.
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

// Ports come from below the kernel's ephemeral range, so neither another test's bind(0) nor an
// outgoing connection's source port can take a node's port while it is down for a restart. A
// reservation file per port (O_EXCL) keeps test files that run in parallel apart; the file names
// the owning process, so reservations of a crashed run are taken over.
const PORT_DIR = path.join(tmpdir(), 'raftlet-test-ports');
const PORT_FLOOR = 20_000;

function ephemeralLow(): number {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return Number.isSafeInteger(low) && low > PORT_FLOOR + 1000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/** Whether a process with this pid exists (a reservation's or a lock's owner). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function tryReserve(port: number): boolean {
  const file = path.join(PORT_DIR, String(port));
  try {
    writeFileSync(file, String(process.pid), { flag: 'wx' });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  let owner = Number.NaN;
  try {
    owner = Number(readFileSync(file, 'utf8'));
  } catch {
    return false;
  }
  if (Number.isSafeInteger(owner) && processAlive(owner)) return false;
  try {
    unlinkSync(file); // a crashed run's reservation
  } catch {
    return false;
  }
  return tryReserve(port);
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Reserves `count` distinct free ports on 127.0.0.1; release them with releasePorts. */
export async function reservePorts(count: number): Promise<number[]> {
  mkdirSync(PORT_DIR, { recursive: true });
  const high = ephemeralLow();
  const ports: number[] = [];
  for (let attempt = 0; ports.length < count; attempt++) {
    if (attempt > count * 200) {
      releasePorts(ports);
      throw new Error(`could not find ${count} free ports in ${PORT_FLOOR}..${high - 1} on 127.0.0.1`);
    }
    const port = PORT_FLOOR + Math.floor(Math.random() * (high - PORT_FLOOR));
    if (ports.includes(port) || !tryReserve(port)) continue;
    if (await canBind(port)) ports.push(port);
    else releasePorts([port]);
  }
  return ports;
}

/** Reserves `count` consecutive free ports on 127.0.0.1 (for `raftlet local`, which numbers its
 * nodes' ports from one base) and returns the first; release them with releasePorts. */
export async function reservePortRun(count: number): Promise<number> {
  mkdirSync(PORT_DIR, { recursive: true });
  const high = ephemeralLow();
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = PORT_FLOOR + Math.floor(Math.random() * (high - PORT_FLOOR - count));
    const run: number[] = [];
    for (let port = base; port < base + count && tryReserve(port); port++) run.push(port);
    let free = run.length === count;
    for (let i = 0; free && i < run.length; i++) free = await canBind(run[i]);
    if (free) return base;
    releasePorts(run);
  }
  throw new Error(`could not find ${count} consecutive free ports in ${PORT_FLOOR}..${high - 1} on 127.0.0.1`);
}

export function releasePorts(ports: readonly number[]): void {
  for (const port of ports) {
    try {
      unlinkSync(path.join(PORT_DIR, String(port)));
    } catch {
      // already gone
    }
  }
}
