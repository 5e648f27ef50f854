// Hosts of their own for the chaos harness: one network namespace per node, each with one veth
// into a bridge in the root namespace and one address from 10.99.0.0/24, a range used only for
// these test hosts. Traffic stays inside the namespaces and the bridge made here.
//
// The /24 is cut into 16 slots of a /28 so that runs at the same time (a CI test and a manual run)
// do not meet: slot s has the bridge at 10.99.0.(16s+1) (the clients' address, in the root
// namespace) and node i at 10.99.0.(16s+1+i). A slot is owned through a lock file naming the
// owner's pid; a run that finds a slot whose owner is dead removes what it left behind.
//
// Faults live in two iptables chains in each node's namespace, hooked into INPUT, so each can be
// flushed on its own: RLC-PART (partitions: drop what comes from the other side) and RLC-LOSS
// (random loss). Only packets from other nodes' addresses are matched, never the clients' or
// loopback, so a partitioned node still answers its clients, as a real one would.
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { processAlive } from '../support/ports.ts';

export const SUBNET_PREFIX = '10.99.0';
export const SLOTS = 16;
const SLOT_SIZE = 16;
export const PARTITION_CHAIN = 'RLC-PART';
export const LOSS_CHAIN = 'RLC-LOSS';
const LOCK_DIR = path.join(tmpdir(), 'raftlet-chaos-slots');

export interface HostNet {
  /** 1-based. */
  readonly index: number;
  readonly ns: string;
  /** The root-namespace end of the veth (the other end is eth0 in the namespace). */
  readonly veth: string;
  readonly addr: string;
}

export interface NetPlan {
  readonly slot: number;
  readonly bridge: string;
  /** The bridge's address: what the clients and the harness use in the root namespace. */
  readonly hostAddr: string;
  readonly prefixLength: 28;
  readonly hosts: readonly HostNet[];
}

function names(slot: number): { ns: (i: number) => string; veth: (i: number) => string; bridge: string; prefix: string } {
  return {
    prefix: `rlc${slot}`,
    bridge: `rlc${slot}br`,
    ns: (i) => `rlc${slot}n${i}`,
    veth: (i) => `rlc${slot}v${i}`,
  };
}

export function planNet(slot: number, count: number): NetPlan {
  if (!Number.isSafeInteger(slot) || slot < 0 || slot >= SLOTS) throw new Error(`slot must be 0..${SLOTS - 1}, got ${slot}`);
  if (!Number.isSafeInteger(count) || count < 1 || count > SLOT_SIZE - 3) throw new Error(`1..${SLOT_SIZE - 3} hosts per slot, got ${count}`);
  const n = names(slot);
  const base = slot * SLOT_SIZE;
  return {
    slot,
    bridge: n.bridge,
    hostAddr: `${SUBNET_PREFIX}.${base + 1}`,
    prefixLength: 28,
    hosts: Array.from({ length: count }, (_, k) => ({ index: k + 1, ns: n.ns(k + 1), veth: n.veth(k + 1), addr: `${SUBNET_PREFIX}.${base + 2 + k}` })),
  };
}

// ---- commands -------------------------------------------------------------------------------------

export class CommandError extends Error {
  readonly stderr: string;
  constructor(command: string, stderr: string) {
    super(`${command} failed: ${stderr.trim() || 'no message'}`);
    this.stderr = stderr;
  }
}

export function run(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: 20_000 }, (error, stdout, stderr) => {
      if (error) reject(new CommandError(`${command} ${args.join(' ')}`, `${String(stderr)}${stderr ? '' : error.message}`));
      else resolve(String(stdout));
    });
  });
}

function runQuietly(command: string, args: readonly string[]): Promise<void> {
  return run(command, args).then(
    () => undefined,
    () => undefined,
  );
}

/** iptables inside a namespace; -w waits for the xtables lock instead of failing. */
export function iptables(ns: string, args: readonly string[]): Promise<string> {
  return run('ip', ['netns', 'exec', ns, 'iptables', '-w', ...args]);
}

// ---- environment ----------------------------------------------------------------------------------

/** Why this machine cannot run the harness, or null. */
export function environmentProblem(): string | null {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    return 'the chaos harness needs root (network namespaces, veth links, a bridge and iptables); run it as root, e.g. in CI';
  }
  for (const [tool, flag] of [['ip', '-V'], ['iptables', '--version']] as const) {
    try {
      execFileSync(tool, [flag], { stdio: 'ignore' });
    } catch {
      return `${tool} is missing; install iproute2 and iptables (apt-get install -y iproute2 iptables)`;
    }
  }
  return null;
}

// ---- slots ----------------------------------------------------------------------------------------

function lockFile(slot: number): string {
  return path.join(LOCK_DIR, `slot-${slot}`);
}

function ownerOf(slot: number): number | null {
  try {
    const pid = Number(readFileSync(lockFile(slot), 'utf8').trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** Takes a free slot (cleaning up after a dead owner first). Throws if all are in use. */
export async function acquireSlot(): Promise<number> {
  mkdirSync(LOCK_DIR, { recursive: true });
  for (let slot = 0; slot < SLOTS; slot++) {
    const owner = ownerOf(slot);
    if (owner !== null && owner !== process.pid && processAlive(owner)) continue;
    if (owner !== null) {
      try {
        unlinkSync(lockFile(slot));
      } catch {
        continue;
      }
    }
    try {
      writeFileSync(lockFile(slot), String(process.pid), { flag: 'wx' });
    } catch {
      continue; // someone else took it meanwhile
    }
    await destroySlot(slot);
    return slot;
  }
  throw new Error(`all ${SLOTS} chaos slots in ${LOCK_DIR} are held by running processes`);
}

export function releaseSlot(slot: number): void {
  if (ownerOf(slot) !== process.pid) return;
  try {
    unlinkSync(lockFile(slot));
  } catch {
    // already gone
  }
}

/** Removes leftovers of slots whose owner is gone (a run killed with -9). */
export async function cleanAbandonedSlots(): Promise<void> {
  const existing = await run('ip', ['netns', 'list']).catch(() => '');
  for (let slot = 0; slot < SLOTS; slot++) {
    const owner = ownerOf(slot);
    if (owner !== null && processAlive(owner)) continue;
    if (!existing.split('\n').some((line) => line.startsWith(`rlc${slot}n`))) continue;
    await destroySlot(slot);
  }
}

// ---- create and destroy ----------------------------------------------------------------------------

export async function createNet(plan: NetPlan): Promise<void> {
  const { bridge, hostAddr, prefixLength } = plan;
  await run('ip', ['link', 'add', bridge, 'type', 'bridge']);
  await run('ip', ['addr', 'add', `${hostAddr}/${prefixLength}`, 'dev', bridge]);
  await run('ip', ['link', 'set', bridge, 'up']);
  for (const host of plan.hosts) {
    const inner = `${host.veth}p`;
    await run('ip', ['netns', 'add', host.ns]);
    await run('ip', ['link', 'add', host.veth, 'type', 'veth', 'peer', 'name', inner]);
    await run('ip', ['link', 'set', inner, 'netns', host.ns]);
    await run('ip', ['link', 'set', host.veth, 'master', bridge, 'up']);
    await run('ip', ['-n', host.ns, 'link', 'set', inner, 'name', 'eth0']);
    await run('ip', ['-n', host.ns, 'addr', 'add', `${host.addr}/${prefixLength}`, 'dev', 'eth0']);
    await run('ip', ['-n', host.ns, 'link', 'set', 'eth0', 'up']);
    await run('ip', ['-n', host.ns, 'link', 'set', 'lo', 'up']);
    for (const chain of [PARTITION_CHAIN, LOSS_CHAIN]) {
      await iptables(host.ns, ['-N', chain]);
      await iptables(host.ns, ['-A', 'INPUT', '-j', chain]);
    }
  }
}

function slotNamespaces(listing: string, slot: number): string[] {
  const pattern = new RegExp(`^rlc${slot}n\\d+$`);
  return listing.split('\n').map((line) => line.split(' ')[0]).filter((ns) => pattern.test(ns));
}

/** Kills every process left in the slot's namespaces, deletes them, the veths and the bridge.
 * Idempotent; missing pieces are fine. */
export async function destroySlot(slot: number): Promise<void> {
  const n = names(slot);
  const listing = await run('ip', ['netns', 'list']).catch(() => '');
  for (const ns of slotNamespaces(listing, slot)) {
    const pids = await run('ip', ['netns', 'pids', ns]).catch(() => '');
    for (const pid of pids.split(/\s+/).filter(Boolean).map(Number)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await runQuietly('ip', ['netns', 'del', ns]);
  }
  const links = await run('ip', ['-o', 'link', 'show']).catch(() => '');
  for (const line of links.split('\n')) {
    const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1];
    if (name !== undefined && (name === n.bridge || new RegExp(`^${n.prefix}v\\d+p?$`).test(name))) {
      await runQuietly('ip', ['link', 'del', name]);
    }
  }
}

/** The same, synchronously, for a process 'exit' hook (no event loop left there). */
export function destroySlotSync(slot: number): void {
  const n = names(slot);
  const quiet = (args: string[]): string => {
    try {
      return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    } catch {
      return '';
    }
  };
  for (const ns of slotNamespaces(quiet(['netns', 'list']), slot)) {
    for (const pid of quiet(['netns', 'pids', ns]).split(/\s+/).filter(Boolean).map(Number)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    quiet(['netns', 'del', ns]);
  }
  quiet(['link', 'del', n.bridge]);
}
