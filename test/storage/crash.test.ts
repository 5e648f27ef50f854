// A real crash: a child process appends and prints each index once save() resolved; the parent
// kill -9s it mid-stream, reopens the directory and checks that every acknowledged index is there.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { openStore } from '../../src/storage/index.ts';
import { command, withTempDir } from './helpers.ts';

const writerScript = fileURLToPath(new URL('./fixtures/crash-writer.ts', import.meta.url));

interface Acks {
  readonly indices: number[];
  /** Compactions whose saveSnapshot() resolved. */
  readonly snapshots: number[];
  readonly stderr: string[];
}

async function runAndKill(dir: string, term: number, killAfter: number): Promise<Acks> {
  const acks: Acks = { indices: [], snapshots: [], stderr: [] };
  const child: ChildProcess = spawn(process.execPath, [writerScript, dir, String(term)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => acks.stderr.push(chunk));
    const lines = createInterface({ input: child.stdout! });
    const enough = new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error(`child acknowledged only ${acks.indices.length} saves in 60 s: ${acks.stderr.join('')}`)), 60_000);
      lines.on('line', (line) => {
        if (/^\d+$/.test(line)) acks.indices.push(Number(line));
        const snapshot = /^snapshot (\d+)$/.exec(line);
        if (snapshot) acks.snapshots.push(Number(snapshot[1]));
        if (acks.indices.length >= killAfter) {
          clearTimeout(deadline);
          // Kill at once, while the other writers are mid-save.
          child.kill('SIGKILL');
          resolve();
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(deadline);
        if (signal !== 'SIGKILL') reject(new Error(`child exited on its own (${code}): ${acks.stderr.join('')}`));
      });
    });
    await enough;
    await exited;
    return acks;
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  }
}

describe('kill -9 during appends', () => {
  it('every index acknowledged before the kill is recovered, across two crashes', () =>
    withTempDir(async (dir) => {
      const acknowledged = new Map<number, number>();
      const compactions: number[] = [];
      for (const [term, killAfter] of [[1, 400], [2, 700]] as const) {
        const acks = await runAndKill(dir, term, killAfter);
        for (const index of acks.indices) acknowledged.set(index, term);
        const warnings: string[] = [];
        const { store, restored } = await openStore(dir, { nodeId: 'crash-node', segmentBytes: 16 * 1024, logger: { warn: (m) => warnings.push(m) } });
        await store.close();
        const snapshotIndex = restored.snapshot?.meta.index ?? 0;
        compactions.push(...acks.snapshots);
        assert.ok(snapshotIndex >= Math.max(0, ...compactions), `snapshot ${snapshotIndex} covers every acknowledged compaction`);
        const byIndex = new Map(restored.entries.map((entry) => [entry.index, entry]));
        restored.entries.forEach((entry, n) => assert.equal(entry.index, snapshotIndex + 1 + n, 'entries are contiguous after the snapshot'));
        for (const [index, ackTerm] of acknowledged) {
          if (index <= snapshotIndex) continue;
          assert.deepEqual(byIndex.get(index), command(index, ackTerm), `acknowledged index ${index} (term ${ackTerm}) survived`);
        }
        const highest = Math.max(...acks.indices);
        assert.ok(restored.hardState.commitIndex >= highest, `hard state ${restored.hardState.commitIndex} covers the last acknowledged ${highest}`);
        assert.equal(restored.hardState.term, term);
      }
      assert.ok(acknowledged.size >= 1100);
      assert.ok(compactions.length > 0, 'the child compacted (and so deleted segments) while it was being killed');
    }));
});
