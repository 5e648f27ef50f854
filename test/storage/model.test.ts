// Property: whatever sequence of appends, suffix overwrites, hard states, received snapshots,
// compactions and reopens the store goes through (with small segments, so rolls and deletions
// happen all the time), reopening it gives exactly what a plain in-memory model of the log says.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Entry, HardState, Snapshot } from '../../src/raft/types.ts';
import { openStore, type WalStore } from '../../src/storage/index.ts';
import { commands, recorder, snapshotAt, snapshotFiles, withTempDir } from './helpers.ts';

type Op =
  | { readonly kind: 'append'; readonly back: number; readonly count: number; readonly termBump: number; readonly size: number; readonly concurrent: boolean; readonly commit: boolean }
  | { readonly kind: 'hardState'; readonly termBump: number; readonly vote: string | null; readonly concurrent: boolean }
  | { readonly kind: 'install'; readonly ahead: number; readonly withEntries: number }
  | { readonly kind: 'compact'; readonly at: number }
  | { readonly kind: 'reopen' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('append' as const),
      back: fc.oneof(fc.constant(0), fc.nat(12)),
      count: fc.integer({ min: 1, max: 8 }),
      termBump: fc.oneof(fc.constant(0), fc.constant(1)),
      size: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 300 })),
      concurrent: fc.boolean(),
      commit: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('hardState' as const), termBump: fc.nat(2), vote: fc.option(fc.constantFrom('n1', 'n2', 'raftlet-2')), concurrent: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('install' as const), ahead: fc.nat(30), withEntries: fc.nat(3) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('compact' as const), at: fc.nat(100) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const) }) },
);

interface Model {
  snapshot: Snapshot | null;
  entries: Entry[];
  hardState: HardState;
  term: number;
}

function lastIndex(model: Model): number {
  return model.entries.at(-1)?.index ?? model.snapshot?.meta.index ?? 0;
}

async function check(store: WalStore, dir: string, model: Model, options: ReturnType<ReturnType<typeof recorder>['options']>): Promise<WalStore> {
  await store.close();
  const { store: reopened, restored } = await openStore(dir, options);
  assert.deepEqual(restored.hardState, model.hardState);
  assert.deepEqual(restored.snapshot, model.snapshot);
  assert.deepEqual(restored.entries, model.entries);
  assert.equal(reopened.lastIndex, lastIndex(model));
  return reopened;
}

async function run(ops: readonly Op[], segmentBytes: number, keepSnapshots: number): Promise<void> {
  await withTempDir(async (dir) => {
    const rec = recorder();
    const options = rec.options({ segmentBytes, keepSnapshots });
    let { store } = await openStore(dir, options);
    const model: Model = { snapshot: null, entries: [], hardState: { term: 0, votedFor: null, commitIndex: 0 }, term: 1 };
    let inFlight: Promise<void>[] = [];
    const settle = async (): Promise<void> => {
      await Promise.all(inFlight);
      inFlight = [];
    };
    const submit = async (save: Promise<void>, concurrent: boolean): Promise<void> => {
      inFlight.push(save);
      if (!concurrent) await settle();
    };
    try {
      for (const op of ops) {
        switch (op.kind) {
          case 'append': {
            const base = model.snapshot?.meta.index ?? 0;
            const start = Math.max(base + 1, lastIndex(model) + 1 - op.back);
            model.term += op.termBump;
            const entries = commands(start, start + op.count - 1, model.term, op.size);
            model.entries = [...model.entries.filter((entry) => entry.index < start), ...entries];
            let hardState: HardState | null = null;
            if (op.commit) {
              hardState = { ...model.hardState, term: model.term, commitIndex: start - 1 };
              model.hardState = hardState;
            }
            await submit(store.save({ entries, hardState }), op.concurrent);
            break;
          }
          case 'hardState': {
            model.term += op.termBump;
            model.hardState = { term: model.term, votedFor: op.vote, commitIndex: model.hardState.commitIndex };
            await submit(store.save({ hardState: model.hardState }), op.concurrent);
            break;
          }
          case 'install': {
            const index = (model.snapshot?.meta.index ?? 0) + 1 + op.ahead;
            model.term += 1;
            const snapshot = snapshotAt(index, model.term, 16 + op.ahead);
            const entries = commands(index + 1, index + op.withEntries, model.term, 20);
            model.snapshot = snapshot;
            model.entries = entries;
            await submit(store.save({ snapshot, entries }), false);
            break;
          }
          case 'compact': {
            await settle();
            if (model.entries.length === 0) break;
            const target = model.entries[Math.floor((op.at / 101) * model.entries.length)]!;
            const snapshot = snapshotAt(target.index, target.term, 8 + (op.at % 50));
            await store.saveSnapshot(snapshot);
            model.snapshot = snapshot;
            model.entries = model.entries.filter((entry) => entry.index > target.index);
            break;
          }
          case 'reopen':
            await settle();
            store = await check(store, dir, model, options);
            break;
          default: {
            const never: never = op;
            throw new Error(`unknown op ${String(never)}`);
          }
        }
      }
      await settle();
      store = await check(store, dir, model, options);
      assert.ok((await snapshotFiles(dir)).length <= keepSnapshots);
      assert.deepEqual(rec.warnings, [], 'a clean history never needs a torn-tail cut');
    } finally {
      await Promise.allSettled(inFlight);
      await store.close();
    }
  });
}

describe('storage against an in-memory model', () => {
  it('reopening always restores exactly the modelled log, snapshot and hard state', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40 }), fc.constantFrom(256, 1024, 8192), fc.constantFrom(1, 2), run),
      { numRuns: Number(process.env.RAFTLET_FC_RUNS ?? 60) },
    );
  });
});
