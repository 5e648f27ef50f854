// Where a raftlet member's memory is, on demand: a preload for measurements, never loaded by raftlet
// itself. Start a member with it and send SIGUSR2; it appends one JSON line to
// $MEMORY_PROBE_DIR/<pid>.jsonl (default the temp dir):
//   npm run bench -- --only writes --skip-etcd --node-flags="--import=$PWD/bench/memory-probe.mjs"
//   kill -USR2 <pid of a member>      (while the write runs are going, or right after)
// The line holds /proc/self/status (VmRSS, RssAnon, RssFile), V8's spaces (used and committed),
// external and ArrayBuffer memory, and the anonymous memory of /proc/self/smaps split into the brk
// heap (glibc's main malloc arena), mappings under 1 MiB (V8's 256 KiB pages, mostly) and larger
// ones (other malloc arenas, large objects): RssAnon minus V8's committed memory is, roughly, what
// malloc holds. Reading smaps takes a few milliseconds, so it is only done when asked.
import { appendFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import v8 from 'node:v8';

const dir = process.env.MEMORY_PROBE_DIR ?? tmpdir();

function statusBytes(status, field) {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return match === null ? null : Number(match[1]) * 1024;
}

/** Anonymous resident bytes of /proc/self/smaps by kind of mapping. */
function anonymousByMapping() {
  const kinds = { brk: 0, under1MiB: 0, larger: 0, stack: 0 };
  let mapping = null;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head !== null) {
      mapping = { bytes: parseInt(head[2], 16) - parseInt(head[1], 16), name: head[3] };
      continue;
    }
    const anonymous = /^Anonymous:\s+(\d+) kB/.exec(line);
    if (anonymous === null || mapping === null) continue;
    const bytes = Number(anonymous[1]) * 1024;
    if (mapping.name === '[heap]') kinds.brk += bytes;
    else if (mapping.name.startsWith('[stack')) kinds.stack += bytes;
    else if (mapping.bytes < 1024 * 1024) kinds.under1MiB += bytes;
    else kinds.larger += bytes;
  }
  return kinds;
}

process.on('SIGUSR2', () => {
  const status = readFileSync('/proc/self/status', 'utf8');
  const heap = v8.getHeapStatistics();
  const usage = process.memoryUsage();
  const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((space) => [space.space_name, { used: space.space_used_size, committed: space.physical_space_size }]));
  const line = {
    time: new Date().toISOString(),
    rss: statusBytes(status, 'VmRSS'),
    anon: statusBytes(status, 'RssAnon'),
    file: statusBytes(status, 'RssFile'),
    peak: statusBytes(status, 'VmHWM'),
    v8Used: heap.used_heap_size,
    v8Committed: heap.total_physical_size,
    v8Malloced: heap.malloced_memory,
    external: usage.external,
    arrayBuffers: usage.arrayBuffers,
    spaces,
    anonymousByMapping: anonymousByMapping(),
  };
  appendFileSync(`${dir}/${process.pid}.jsonl`, `${JSON.stringify(line)}\n`);
});
