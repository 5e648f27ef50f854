// V8 heap sizing for `raftlet run` (src/cli/v8-sizing.ts): the memory limit read from cgroup v1 or v2
// as a container or this machine lays them out, and the flags chosen from it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HEAP_GROWING_PERCENT, MALLOC_ARENAS, MIN_OLD_SPACE_MB, SEMI_SPACE_MB, nodeOptionsWords, planSizing, readMemoryLimit, type ReadText } from '../../src/cli/v8-sizing.ts';

const MB = 1024 * 1024;
const GB = 1024 * MB;

/** A file system of a few files; every other path is missing. */
function files(map: Record<string, string>): ReadText {
  return (path) => map[path] ?? null;
}

const V2_MOUNT = '30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n';
const V1_MEMORY_MOUNT = '35 30 0:30 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n';
const V1_CPU_MOUNT = '34 30 0:29 / /sys/fs/cgroup/cpu rw,relatime shared:8 - cgroup cgroup rw,cpu\n';

describe('readMemoryLimit', () => {
  it('cgroup v2 in a container (cgroup namespace: the process is at "/")', () => {
    const read = files({
      '/proc/self/mountinfo': V2_MOUNT,
      '/proc/self/cgroup': '0::/\n',
      '/sys/fs/cgroup/memory.max': '268435456\n',
    });
    assert.equal(readMemoryLimit(read), 256 * MB);
  });

  it('cgroup v2 on a host: the smallest limit of the cgroup and its ancestors', () => {
    const read = files({
      '/proc/self/mountinfo': V2_MOUNT,
      '/proc/self/cgroup': '0::/kubepods/burstable/pod1/ctr\n',
      '/sys/fs/cgroup/kubepods/burstable/pod1/ctr/memory.max': 'max\n',
      '/sys/fs/cgroup/kubepods/burstable/pod1/memory.max': '201326592\n',
      '/sys/fs/cgroup/kubepods/memory.max': String(8 * GB),
    });
    assert.equal(readMemoryLimit(read), 192 * MB);
  });

  it('"max" everywhere is no limit', () => {
    const read = files({
      '/proc/self/mountinfo': V2_MOUNT,
      '/proc/self/cgroup': '0::/a\n',
      '/sys/fs/cgroup/a/memory.max': 'max\n',
    });
    assert.equal(readMemoryLimit(read), null);
  });

  it('cgroup v1 (hybrid, as on the project machines): memory.limit_in_bytes of the memory controller', () => {
    const read = files({
      '/proc/self/mountinfo': V1_CPU_MOUNT + V1_MEMORY_MOUNT + '40 30 0:35 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n',
      '/proc/self/cgroup': '4:memory:/process_api/abc\n1:cpu:/\n0::/\n',
      '/sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes': '134217728\n',
      '/sys/fs/cgroup/memory/memory.limit_in_bytes': '9223372036854771712\n',
    });
    assert.equal(readMemoryLimit(read), 128 * MB);
  });

  it('cgroup v1 unlimited (2^63 rounded to a page) is no limit', () => {
    const read = files({
      '/proc/self/mountinfo': V1_MEMORY_MOUNT,
      '/proc/self/cgroup': '4:memory:/\n',
      '/sys/fs/cgroup/memory/memory.limit_in_bytes': '9223372036854771712\n',
    });
    assert.equal(readMemoryLimit(read), null);
  });

  it('a v1 container that mounts only its own cgroup (mount root is its path)', () => {
    const read = files({
      '/proc/self/mountinfo': '35 30 0:30 /docker/abc /sys/fs/cgroup/memory ro,relatime - cgroup cgroup rw,memory\n',
      '/proc/self/cgroup': '4:memory:/docker/abc\n',
      '/sys/fs/cgroup/memory/memory.limit_in_bytes': '536870912\n',
    });
    assert.equal(readMemoryLimit(read), 512 * MB);
  });

  it('no cgroup file system at all (not Linux, or /proc hidden) is no limit', () => {
    assert.equal(readMemoryLimit(files({})), null);
  });

  it('reads this machine without failing', () => {
    const limit = readMemoryLimit();
    assert.ok(limit === null || (Number.isSafeInteger(limit) && limit > 0));
  });
});

describe('planSizing', () => {
  const total = 24 * GB;
  const growth = `--heap-growing-percent=${HEAP_GROWING_PERCENT}`;
  const gc = '--expose-gc';
  const eager = ['--no-lazy', '--no-flush-bytecode'];

  it('a memory limit: a small young generation and an old space of 55% of the limit', () => {
    const plan = planSizing({ limitBytes: 256 * MB, totalMemoryBytes: total, userFlags: [], env: {} });
    assert.deepEqual(plan.flags, [`--max-semi-space-size=${SEMI_SPACE_MB}`, '--max-old-space-size=140', growth, gc, ...eager]);
    assert.match(plan.reason, /55% of the 256 MB memory limit/);
  });

  it('no limit: the young generation and the old generation\'s growth, not its maximum', () => {
    const plan = planSizing({ limitBytes: null, totalMemoryBytes: total, userFlags: [], env: {} });
    assert.deepEqual(plan.flags, [`--max-semi-space-size=${SEMI_SPACE_MB}`, growth, gc, ...eager]);
    assert.match(plan.reason, /no memory limit/);
  });

  it('a limit at or above the machine\'s memory limits nothing', () => {
    assert.deepEqual(planSizing({ limitBytes: 32 * GB, totalMemoryBytes: total, userFlags: [], env: {} }).flags, [`--max-semi-space-size=${SEMI_SPACE_MB}`, growth, gc, ...eager]);
  });

  it('a tiny limit still leaves a working old space', () => {
    assert.ok(planSizing({ limitBytes: 16 * MB, totalMemoryBytes: total, userFlags: [], env: {} }).flags.includes(`--max-old-space-size=${MIN_OLD_SPACE_MB}`));
  });

  it('flags the user set win, in either spelling, from the command line or NODE_OPTIONS', () => {
    assert.deepEqual(planSizing({ limitBytes: null, totalMemoryBytes: total, userFlags: ['--max-semi-space-size=8'], env: {} }).flags, [growth, gc, ...eager]);
    assert.deepEqual(
      planSizing({ limitBytes: 256 * MB, totalMemoryBytes: total, userFlags: nodeOptionsWords(' --max_old_space_size=512  --enable-source-maps'), env: {} }).flags,
      [`--max-semi-space-size=${SEMI_SPACE_MB}`, growth, gc, ...eager],
    );
    assert.deepEqual(planSizing({ limitBytes: 256 * MB, totalMemoryBytes: total, userFlags: ['--max-old-space-size=100', '--max-semi-space-size=4'], env: {} }).flags, [growth, gc, ...eager]);
    assert.deepEqual(planSizing({ limitBytes: null, totalMemoryBytes: total, userFlags: ['--heap_growing_percent=50'], env: {} }).flags, [`--max-semi-space-size=${SEMI_SPACE_MB}`, gc, ...eager]);
    assert.deepEqual(planSizing({ limitBytes: 256 * MB, totalMemoryBytes: total, userFlags: ['--max-old-space-size=100', '--max-semi-space-size=4', '--heap-growing-percent=10', '--expose_gc', '--lazy', '--flush_bytecode'], env: {} }).flags, []);
    assert.deepEqual(planSizing({ limitBytes: 256 * MB, totalMemoryBytes: total, userFlags: ['--cpu-prof'], env: {} }).flags.length, 6);
    assert.deepEqual(planSizing({ limitBytes: null, totalMemoryBytes: total, userFlags: ['--no-lazy'], env: {} }).flags, [`--max-semi-space-size=${SEMI_SPACE_MB}`, growth, gc, '--no-flush-bytecode']);
  });

  it('compiles code when it is loaded and keeps its bytecode', () => {
    const plan = planSizing({ limitBytes: null, totalMemoryBytes: total, userFlags: [], env: {} });
    assert.deepEqual(plan.flags.slice(-2), eager);
    assert.match(plan.reason, /code compiled when loaded, bytecode kept/);
  });

  it('limits glibc malloc arenas unless the environment already does', () => {
    const plan = (env: Record<string, string>) => planSizing({ limitBytes: null, totalMemoryBytes: total, userFlags: [], env }).env;
    assert.deepEqual(plan({}), { MALLOC_ARENA_MAX: String(MALLOC_ARENAS) });
    assert.deepEqual(plan({ MALLOC_ARENA_MAX: '4' }), {});
    assert.deepEqual(plan({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=1' }), {});
  });
});
