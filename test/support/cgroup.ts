// A memory cgroup of our own for a test: created with a limit, entered by a process through a small
// shell prefix (so the process is born inside it and sizes itself from its limit), read for peaks
// and OOM kills, removed at the end. cgroup v2 where its memory controller is available, else the
// v1 memory controller (the project machines mount cgroups in hybrid mode: memory is a v1
// controller there). Needs root; `unavailable` says why when it cannot be done.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { cgroupMounts } from '../../src/cli/v8-sizing.ts';

export interface MemoryCgroup {
  readonly version: 1 | 2;
  readonly dir: string;
  readonly limitBytes: number;
  /**
   * Prepend to a command: a shell that moves itself into the cgroup, then execs the command, with
   * its first word replaced by `executable` when given (see privateCopy).
   */
  launchPrefix(executable?: string): string[];
  /** Highest memory use the cgroup saw (v2 memory.peak, v1 memory.max_usage_in_bytes), page cache included. */
  peakBytes(): number | null;
  /** Processes the kernel's OOM killer killed in this cgroup. */
  oomKills(): number;
  /** Whether pid is in this cgroup now. */
  holds(pid: number): boolean;
  /** Kills whatever is still inside (only processes the test put there) and removes the cgroup. */
  remove(): Promise<void>;
}

const read = (file: string): string => readFileSync(file, 'utf8');

function field(text: string, name: string): number {
  const match = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  return match ? Number(match[1]) : 0;
}

function mountsWithMemory(): { version: 1 | 2; mountPoint: string }[] {
  let mountinfo: string;
  try {
    mountinfo = read('/proc/self/mountinfo');
  } catch {
    return [];
  }
  const found: { version: 1 | 2; mountPoint: string }[] = [];
  for (const mount of cgroupMounts(mountinfo)) {
    if (mount.version === 1) {
      found.push({ version: 1, mountPoint: mount.mountPoint });
      continue;
    }
    const controllers = existsSync(path.join(mount.mountPoint, 'cgroup.controllers')) ? read(path.join(mount.mountPoint, 'cgroup.controllers')) : '';
    if (controllers.split(/\s+/).includes('memory')) found.unshift({ version: 2, mountPoint: mount.mountPoint });
  }
  return found;
}

/**
 * A copy of an executable whose pages are not in the page cache. A cgroup is charged for a file page
 * by whoever reads it first: a process running the shared Node binary, whose pages other processes
 * already loaded, would have ~50 MB of code that no limit counts. In a container the image's binary
 * is read by the container itself, so a test of a limit runs such a copy.
 */
export function privateCopy(executable: string, dir: string): string {
  const copy = path.join(dir, path.basename(executable));
  copyFileSync(executable, copy);
  chmodSync(copy, 0o755);
  // Written back to disk, then dropped from the cache (GNU dd: nocache with count=0 drops the file).
  const dropped = spawnSync('dd', [`if=${copy}`, 'iflag=nocache', 'count=0', 'status=none']);
  const synced = spawnSync('sync', [copy]);
  const droppedAgain = spawnSync('dd', [`if=${copy}`, 'iflag=nocache', 'count=0', 'status=none']);
  if (dropped.status !== 0 || synced.status !== 0 || droppedAgain.status !== 0) {
    throw new Error(`could not drop ${copy} from the page cache: ${String(droppedAgain.stderr)}`);
  }
  return copy;
}

/** Creates a memory cgroup named `name` with the given limit, or says why it cannot. */
export function createMemoryCgroup(name: string, limitBytes: number): MemoryCgroup | { readonly unavailable: string } {
  if (process.getuid?.() !== 0) return { unavailable: 'creating a memory cgroup needs root' };
  const mounts = mountsWithMemory();
  if (mounts.length === 0) return { unavailable: 'no cgroup v2 memory controller and no cgroup v1 memory mount in /proc/self/mountinfo' };
  const problems: string[] = [];
  for (const mount of mounts) {
    const dir = path.join(mount.mountPoint, name);
    try {
      if (mount.version === 2) {
        const subtree = path.join(mount.mountPoint, 'cgroup.subtree_control');
        if (!read(subtree).split(/\s+/).includes('memory')) writeFileSync(subtree, '+memory');
      }
      mkdirSync(dir);
      if (mount.version === 2) {
        writeFileSync(path.join(dir, 'memory.max'), String(limitBytes));
        if (existsSync(path.join(dir, 'memory.swap.max'))) writeFileSync(path.join(dir, 'memory.swap.max'), '0');
      } else {
        writeFileSync(path.join(dir, 'memory.limit_in_bytes'), String(limitBytes));
        // With swap accounting, memory + swap gets the same limit: no escape into swap.
        if (existsSync(path.join(dir, 'memory.memsw.limit_in_bytes'))) writeFileSync(path.join(dir, 'memory.memsw.limit_in_bytes'), String(limitBytes));
      }
      return handle(mount.version, dir, limitBytes);
    } catch (error) {
      problems.push(`cgroup v${mount.version} at ${mount.mountPoint}: ${error instanceof Error ? error.message : String(error)}`);
      try {
        if (existsSync(dir)) rmdirSync(dir);
      } catch {
        // left for the operator; named in the message
      }
    }
  }
  return { unavailable: `cannot create a memory cgroup: ${problems.join('; ')}` };
}

function handle(version: 1 | 2, dir: string, limitBytes: number): MemoryCgroup {
  const file = (name: string): string => path.join(dir, name);
  const pids = (): number[] => read(file('cgroup.procs')).split('\n').filter((l) => l !== '').map(Number);
  return {
    version,
    dir,
    limitBytes,
    launchPrefix: (executable) => executable === undefined
      ? ['/bin/sh', '-c', 'echo $$ > "$0" || exit 97; exec "$@"', file('cgroup.procs')]
      : ['/bin/sh', '-c', 'echo $$ > "$0" || exit 97; exe="$1"; shift 2; exec "$exe" "$@"', file('cgroup.procs'), executable],
    peakBytes: () => {
      const name = version === 2 ? 'memory.peak' : 'memory.max_usage_in_bytes';
      return existsSync(file(name)) ? Number(read(file(name)).trim()) : null;
    },
    oomKills: () => field(read(file(version === 2 ? 'memory.events' : 'memory.oom_control')), 'oom_kill'),
    holds: (pid) => pids().includes(pid),
    async remove() {
      for (const pid of pids()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      // The kernel lets go of a cgroup shortly after its last process is reaped.
      for (let attempt = 0; ; attempt++) {
        try {
          rmdirSync(dir);
          return;
        } catch (error) {
          if (attempt >= 100) throw error;
          await delay(100);
        }
      }
    },
  };
}
