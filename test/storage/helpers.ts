// Shared bits for the storage tests: throwaway data directories, entry makers, a recording logger.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Entry, Membership, Snapshot } from '../../src/raft/types.ts';
import type { FsyncKind, StoreOptions } from '../../src/storage/index.ts';

export async function withTempDir<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'raftlet-storage-'));
  try {
    return await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface Recorder {
  readonly warnings: string[];
  readonly fsyncs: FsyncKind[];
  options(extra?: Partial<StoreOptions>): StoreOptions;
}

export function recorder(nodeId = 'n1'): Recorder {
  const warnings: string[] = [];
  const fsyncs: FsyncKind[] = [];
  return {
    warnings,
    fsyncs,
    options: (extra = {}) => ({
      nodeId,
      logger: { warn: (message: string) => warnings.push(message) },
      onFsync: (_seconds: number, kind: FsyncKind) => fsyncs.push(kind),
      ...extra,
    }),
  };
}

export const members: Membership = [
  { id: 'n1', url: 'http://127.0.0.1:7070', voter: true },
  { id: 'n2', url: 'http://127.0.0.1:7080', voter: true },
  { id: 'n3', url: 'http://127.0.0.1:7090', voter: false },
];

/** A command entry whose payload says which index and term it was made for. */
export function command(index: number, term: number, size = 100): Entry {
  const data = new Uint8Array(size);
  for (let n = 0; n < size; n++) data[n] = (index * 31 + term * 7 + n) & 0xff;
  return { kind: 'command', term, index, data };
}

export function commands(from: number, to: number, term: number, size = 100): Entry[] {
  const out: Entry[] = [];
  for (let index = from; index <= to; index++) out.push(command(index, term, size));
  return out;
}

export function snapshotAt(index: number, term: number, size = 64): Snapshot {
  const data = new Uint8Array(size);
  for (let n = 0; n < size; n++) data[n] = (index + n) & 0xff;
  return { meta: { index, term, members }, data };
}

export async function segmentFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.startsWith('wal-')).sort();
}

export async function snapshotFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.startsWith('snap-')).sort();
}
