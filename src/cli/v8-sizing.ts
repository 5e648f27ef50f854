// V8 heap flags for a sidecar. Left alone, V8 sizes its heap for the machine it runs on (on a 24 GB
// node: a young generation of up to 3 x 16 MB and an old generation that may grow to gigabytes before
// a full collection has to run), while a sidecar lives under a container memory limit of a few
// hundred megabytes. bin/raftlet.js asks this module, before anything else is loaded, which flags
// `raftlet run` should have, and re-executes itself once with them (process.execve: same pid, so PID 1
// in a container stays PID 1 and still gets SIGTERM).
//
// - The young generation is kept small: raftlet's garbage is short-lived request and message
//   objects, so a small nursery costs a little scavenging time and saves its size in RSS.
// - The old generation gets a share of the container's memory limit (cgroup v2 memory.max, or v1
//   memory.limit_in_bytes), so V8 collects before the kernel's OOM killer has to act. Without a
//   limit its maximum is left to V8.
// - The old generation grows by a fixed 30% over what the last full collection kept (V8 adds at
//   least 8 MB), with a limit or without. V8 otherwise picks the factor from how fast the program
//   allocates against how fast it collects, up to 4x on a host with gigabytes to spare: under a
//   burst of writes the request objects that outlived a scavenge pile up in old space: on the
//   3-member bench (--trace-gc-verbose) V8 chose factors up to 4 and the leader's old space held
//   32-49 MB after the write runs, ~15 MB of it live. 1.3 is V8's own factor for a heap it must
//   keep small (and the most it chooses under a limit below ~256 MB); it costs more frequent full
//   collections, each of a live heap of ~15-20 MB.
// - V8 exposes `gc` (--expose-gc): raftlet runs one full collection at the end of start-up, before
//   it takes part in the cluster, instead of V8 running it a second or so later, when a member just
//   restarted may be voting in a hand-off (src/run/startup-gc.ts). Nothing else calls it.
// - Code is compiled when it is loaded (--no-lazy), not on its first call, and V8 keeps the
//   bytecode of functions that have not run for a while (--no-flush-bytecode). A follower that
//   becomes leader runs code it never ran as a follower (the campaign, replication, proposals, the
//   write path of the API), as does a leader handing over on SIGTERM; compiled on first call, that
//   took several ms of a 2-core machine's CPU in the middle of the hand-off: `npm run bench --
//   --only failover --runs 11 --skip-etcd`, five runs each way, gave SIGTERM medians of 34-44 ms
//   lazily and 24-29 ms eagerly. Flushing would undo it for a follower that has run for hours. The
//   cost is the bytecode of the code the node loads: about 4 MB of idle RSS. The Kubernetes client
//   library is loaded lazily all the same (src/run/lazy-import.ts): it is large, and a member runs
//   only a few of its functions.
// - glibc's malloc gets at most MALLOC_ARENA_MAX arenas: by default every thread that allocates
//   (V8's compiler and GC helpers, libuv's pool) may get its own, and each keeps the memory freed in
//   it; measured here, 2 arenas take 2 to 10 MB off raftlet's RSS.
// - Flags and variables the user set (on the command line, in NODE_OPTIONS, in the environment)
//   always win.
//
// Plain node: imports only: this runs before the choice of code to run is final.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Young generation: V8's semi-space, in MB (the young generation is three of them). */
export const SEMI_SPACE_MB = 2;
/** Share of the container memory limit given to V8's old generation. */
export const OLD_SPACE_SHARE = 0.55;
/** Never size the old generation below this (a tiny limit still needs a working heap). */
export const MIN_OLD_SPACE_MB = 32;
/** How much the old generation may grow past what the last full collection kept, in percent. */
export const HEAP_GROWING_PERCENT = 30;
/** glibc malloc arenas (glibc's default is 8 per core). */
export const MALLOC_ARENAS = 2;

const MB = 1024 * 1024;

export interface SizingInput {
  /** The process's memory limit in bytes, or null when there is none. */
  readonly limitBytes: number | null;
  /** The machine's memory (os.totalmem()): a limit at or above it limits nothing. */
  readonly totalMemoryBytes: number;
  /** Node flags already in effect: process.execArgv and the words of NODE_OPTIONS. */
  readonly userFlags: readonly string[];
  /** The environment, to leave the user's malloc settings alone. */
  readonly env: Readonly<Record<string, string | undefined>>;
}

export interface SizingPlan {
  /** Flags to add. */
  readonly flags: readonly string[];
  /** Environment variables to add. Both empty: nothing to do, no re-exec. */
  readonly env: Readonly<Record<string, string>>;
  /** One line for the log: what was decided and why. */
  readonly reason: string;
}

/** Whether one of the V8 flags `names` is set; V8 accepts `_` for `-` in flag names. */
const hasFlag = (flags: readonly string[], names: readonly string[]): boolean =>
  flags.some((flag) => names.includes(flag.split('=')[0]!.replaceAll('_', '-')));

const YOUNG_FLAGS = ['--max-semi-space-size', '--min-semi-space-size', '--max-young-generation-size', '--semi-space-growth-factor'];
const OLD_FLAGS = ['--max-old-space-size', '--max-heap-size', '--initial-heap-size', '--initial-old-space-size'];
const GROWTH_FLAGS = ['--heap-growing-percent'];
const GC_FLAGS = ['--expose-gc', '--expose-gc-as'];
const LAZY_FLAGS = ['--lazy', '--no-lazy'];
const FLUSH_FLAGS = ['--flush-bytecode', '--no-flush-bytecode'];

export function planSizing(input: SizingInput): SizingPlan {
  const flags: string[] = [];
  const reasons: string[] = [];
  if (hasFlag(input.userFlags, YOUNG_FLAGS)) {
    reasons.push('young generation as set by the user');
  } else {
    flags.push(`--max-semi-space-size=${SEMI_SPACE_MB}`);
    reasons.push(`semi-space ${SEMI_SPACE_MB} MB`);
  }
  if (hasFlag(input.userFlags, OLD_FLAGS)) {
    reasons.push('old space as set by the user');
  } else if (input.limitBytes === null) {
    reasons.push('no memory limit: old space left to V8');
  } else if (input.limitBytes >= input.totalMemoryBytes) {
    reasons.push(`the memory limit (${Math.round(input.limitBytes / MB)} MB) is not below the machine's memory: old space left to V8`);
  } else {
    const oldSpaceMb = Math.max(MIN_OLD_SPACE_MB, Math.floor((input.limitBytes * OLD_SPACE_SHARE) / MB));
    flags.push(`--max-old-space-size=${oldSpaceMb}`);
    reasons.push(`old space ${oldSpaceMb} MB (${Math.round(OLD_SPACE_SHARE * 100)}% of the ${Math.round(input.limitBytes / MB)} MB memory limit)`);
  }
  if (hasFlag(input.userFlags, GROWTH_FLAGS)) {
    reasons.push('old space growth as set by the user');
  } else {
    flags.push(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
    reasons.push(`old space grows ${HEAP_GROWING_PERCENT}% past the live heap`);
  }
  if (!hasFlag(input.userFlags, GC_FLAGS)) {
    flags.push('--expose-gc');
    reasons.push('start-up garbage collected before joining');
  }
  if (!hasFlag(input.userFlags, LAZY_FLAGS)) {
    flags.push('--no-lazy');
    reasons.push('code compiled when loaded');
  }
  if (!hasFlag(input.userFlags, FLUSH_FLAGS)) {
    flags.push('--no-flush-bytecode');
    reasons.push('bytecode kept');
  }
  const env: Record<string, string> = {};
  if (input.env.MALLOC_ARENA_MAX === undefined && !(input.env.GLIBC_TUNABLES ?? '').includes('arena_max')) {
    env.MALLOC_ARENA_MAX = String(MALLOC_ARENAS);
    reasons.push(`${MALLOC_ARENAS} malloc arenas`);
  }
  return { flags, env, reason: reasons.join(', ') };
}

/** Splits NODE_OPTIONS into words the way Node does for plain flags (quotes are rare in heap flags). */
export function nodeOptionsWords(nodeOptions: string | undefined): string[] {
  return (nodeOptions ?? '').split(/\s+/).filter((word) => word !== '');
}

/** Reads a file, or null when it is not there or not readable. */
export type ReadText = (path: string) => string | null;

const readText: ReadText = (path) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
};

export interface CgroupMount {
  readonly version: 1 | 2;
  /** Where the hierarchy is mounted. */
  readonly mountPoint: string;
  /** Which part of the hierarchy the mount shows (not "/" inside some containers). */
  readonly root: string;
}

/** The cgroup v2 mount and the v1 memory controller mount, from the text of /proc/self/mountinfo. */
export function cgroupMounts(mountinfo: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    // id parent major:minor root mount-point options [optional fields] - fstype source super-options
    const [before, after] = line.split(' - ');
    if (before === undefined || after === undefined) continue;
    const fields = before.split(' ');
    const [fsType, , superOptions = ''] = after.split(' ');
    const root = unescapeMount(fields[3] ?? '/');
    const mountPoint = unescapeMount(fields[4] ?? '');
    if (fsType === 'cgroup2') mounts.push({ version: 2, mountPoint, root });
    else if (fsType === 'cgroup' && superOptions.split(',').includes('memory')) mounts.push({ version: 1, mountPoint, root });
  }
  return mounts;
}

const unescapeMount = (text: string): string => text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));

/** The process's path in a hierarchy, from /proc/self/cgroup ("0::/path" for v2, "N:memory:/path" for v1). */
function cgroupPath(procCgroup: string, version: 1 | 2): string | null {
  for (const line of procCgroup.split('\n')) {
    const [id, controllers, ...rest] = line.split(':');
    if (id === undefined || controllers === undefined || rest.length === 0) continue;
    const path = rest.join(':');
    if (version === 2 && id === '0' && controllers === '') return path;
    if (version === 1 && controllers.split(',').includes('memory')) return path;
  }
  return null;
}

/** A limit file's value in bytes; null for "max", the v1 "unlimited" value or anything unreadable. */
function parseLimit(text: string | null): number | null {
  if (text === null) return null;
  const value = text.trim();
  if (value === 'max' || !/^\d+$/.test(value)) return null;
  const bytes = Number(value);
  // cgroup v1 reports "no limit" as a huge page-aligned number near 2^63.
  return bytes >= 2 ** 60 ? null : bytes;
}

/**
 * The memory limit that applies to this process: the smallest limit on its cgroup and the cgroups
 * above it that are visible, in cgroup v2 or the v1 memory controller; null when there is none.
 * `procRoot` and `read` are for tests.
 */
export function readMemoryLimit(read: ReadText = readText, procRoot = '/proc/self'): number | null {
  const mountinfo = read(join(procRoot, 'mountinfo'));
  const procCgroup = read(join(procRoot, 'cgroup'));
  if (mountinfo === null || procCgroup === null) return null;
  let smallest: number | null = null;
  for (const mount of cgroupMounts(mountinfo)) {
    const path = cgroupPath(procCgroup, mount.version);
    if (path === null) continue;
    // Inside a container the mount often shows only the container's own cgroup: the process path,
    // relative to the mount's root, may then be "/" (or not start with the root at all).
    const relative = path.startsWith(mount.root) ? path.slice(mount.root.length) : '';
    const file = mount.version === 2 ? 'memory.max' : 'memory.limit_in_bytes';
    const parts = relative.split('/').filter((part) => part !== '');
    for (let depth = parts.length; depth >= 0; depth--) {
      const limit = parseLimit(read(join(mount.mountPoint, ...parts.slice(0, depth), file)));
      if (limit !== null && (smallest === null || limit < smallest)) smallest = limit;
    }
  }
  return smallest;
}
