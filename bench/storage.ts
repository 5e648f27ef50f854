// Storage benchmark: appends/s, fsyncs/s and save() latency for 100-byte entries with 1 and 64
// concurrent writers. Every save carries one entry and a hard state (as a follower's Ready would),
// and resolves only after its fsync, so with one writer appends/s is bounded by fsync latency and
// with 64 the gain comes from group commit.
//   node bench/storage.ts [--seconds N] [--dir PATH]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openStore } from '../src/storage/index.ts';

export interface StorageBenchResult {
  readonly writers: number;
  readonly appendsPerSecond: number;
  readonly fsyncsPerSecond: number;
  readonly entriesPerFsync: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly fsyncP50Ms: number;
}

function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]!;
}

export async function benchWriters(parent: string, writers: number, seconds: number, entryBytes = 100): Promise<StorageBenchResult> {
  const dir = await mkdtemp(join(parent, `raftlet-bench-${writers}-`));
  try {
    const fsyncSeconds: number[] = [];
    const { store } = await openStore(dir, {
      nodeId: 'bench',
      onFsync: (elapsed, kind) => {
        if (kind === 'wal') fsyncSeconds.push(elapsed);
      },
    });
    fsyncSeconds.length = 0;
    const payload = new Uint8Array(entryBytes).fill(0x61);
    const latenciesMs: number[] = [];
    let next = 0;
    const started = process.hrtime.bigint();
    const stopAt = started + BigInt(Math.round(seconds * 1e9));
    const writer = async (): Promise<void> => {
      while (process.hrtime.bigint() < stopAt) {
        const index = ++next;
        const before = process.hrtime.bigint();
        await store.save({
          entries: [{ kind: 'command', term: 1, index, data: payload }],
          hardState: { term: 1, votedFor: 'bench', commitIndex: index - 1 },
        });
        latenciesMs.push(Number(process.hrtime.bigint() - before) / 1e6);
      }
    };
    await Promise.all(Array.from({ length: writers }, () => writer()));
    const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
    await store.close();
    latenciesMs.sort((a, b) => a - b);
    const fsyncMs = fsyncSeconds.map((value) => value * 1000).sort((a, b) => a - b);
    return {
      writers,
      appendsPerSecond: latenciesMs.length / elapsed,
      fsyncsPerSecond: fsyncSeconds.length / elapsed,
      entriesPerFsync: latenciesMs.length / Math.max(1, fsyncSeconds.length),
      p50Ms: percentile(latenciesMs, 0.5),
      p99Ms: percentile(latenciesMs, 0.99),
      fsyncP50Ms: percentile(fsyncMs, 0.5),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function formatResult(label: string, result: StorageBenchResult): string {
  return (
    `${label} writers=${String(result.writers).padEnd(3)} appends/s=${result.appendsPerSecond.toFixed(0).padStart(7)} ` +
    `fsyncs/s=${result.fsyncsPerSecond.toFixed(0).padStart(6)} entries/fsync=${result.entriesPerFsync.toFixed(1).padStart(6)} ` +
    `save p50=${result.p50Ms.toFixed(2)}ms p99=${result.p99Ms.toFixed(2)}ms fsync p50=${result.fsyncP50Ms.toFixed(2)}ms`
  );
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '3' }, dir: { type: 'string' } } });
  const seconds = Number(values.seconds);
  const parent = values.dir ?? tmpdir();
  console.log(`raftlet storage bench: 100-byte entries, ${seconds}s per run, in ${parent}`);
  for (const writers of [1, 64]) {
    console.log(formatResult('segments', await benchWriters(parent, writers, seconds)));
  }
}
