import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { encodeKvCommand } from '../../src/kv/codec.ts';
import { KvSnapshotError } from '../../src/kv/snapshot.ts';
import { KvApplyOrderError, KvStore } from '../../src/kv/store.ts';
import type { KvChange, KvCommand, KvItem, KvResult } from '../../src/kv/types.ts';
import { smallKeyPool, value } from './arbitraries.ts';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const put = (key: string, text: string, extra: { ifMatch?: number; ifNoneMatch?: true } = {}): Uint8Array =>
  encodeKvCommand({ op: 'put', key, value: bytes(text), ...extra });
const del = (key: string, ifMatch?: number): Uint8Array => encodeKvCommand({ op: 'del', key, ...(ifMatch === undefined ? {} : { ifMatch }) });

test('put creates and changes a key; modIndex is the index of the last change', () => {
  const store = new KvStore();
  assert.deepEqual(store.apply(1, 1, put('k', 'one')), { ok: true, index: 1, term: 1 });
  assert.deepEqual(store.get('k'), { key: 'k', value: bytes('one'), modIndex: 1 });
  store.advance(2);
  assert.deepEqual(store.apply(3, 2, put('k', 'one')), { ok: true, index: 3, term: 2 });
  assert.equal(store.get('k')?.modIndex, 3, 'rewriting the same value is still a change');
  assert.equal(store.appliedIndex, 3);
});

test('delete removes the key and its modIndex; deleting an absent key is ok with deleted:false', () => {
  const store = new KvStore();
  store.apply(1, 1, put('k', 'v'));
  assert.deepEqual(store.apply(2, 1, del('k')), { ok: true, index: 2, term: 1, deleted: true });
  assert.equal(store.get('k'), undefined);
  assert.deepEqual(store.apply(3, 1, del('k')), { ok: true, index: 3, term: 1, deleted: false });
  store.apply(4, 1, put('k', 'again'));
  assert.equal(store.get('k')?.modIndex, 4, 'a re-created key never gets an old index back');
});

test('If-Match and If-None-Match are decided at apply time', () => {
  const store = new KvStore();
  const failed = (result: KvResult, pattern: RegExp): void => {
    assert.equal(result.ok, false);
    assert.ok(!result.ok && result.code === 'precondition_failed' && pattern.test(result.message), JSON.stringify(result));
  };
  failed(store.apply(1, 1, put('k', 'v', { ifMatch: 1 })), /If-Match 1 failed: the key does not exist/);
  failed(store.apply(2, 1, del('k', 1)), /If-Match 1 failed: the key does not exist/);
  assert.equal(store.get('k'), undefined);
  assert.deepEqual(store.apply(3, 1, put('k', 'v', { ifNoneMatch: true })), { ok: true, index: 3, term: 1 });
  failed(store.apply(4, 1, put('k', 'w', { ifNoneMatch: true })), /If-None-Match \* failed: the key exists with modIndex 3/);
  failed(store.apply(5, 1, put('k', 'w', { ifMatch: 2 })), /If-Match 2 failed: its modIndex is 3/);
  assert.deepEqual(store.apply(6, 2, put('k', 'w', { ifMatch: 3 })), { ok: true, index: 6, term: 2 });
  failed(store.apply(7, 2, del('k', 3)), /its modIndex is 6/);
  assert.deepEqual(store.apply(8, 2, del('k', 6)), { ok: true, index: 8, term: 2, deleted: true });
  assert.equal(store.appliedIndex, 8, 'failed conditions still use up their index');
  assert.equal(store.size, 0);
});

test('an undecodable command is skipped alike on every replica and counted', () => {
  const replicas = [new KvStore(), new KvStore()];
  for (const store of replicas) {
    store.apply(1, 1, put('k', 'v'));
    const result = store.apply(2, 1, Uint8Array.from([0xff, 1, 2]));
    assert.equal(result.ok, false);
    assert.match(!result.ok ? result.message : '', /log entry 2 is not a valid key-value command and was skipped, changing nothing: unknown command version 255/);
    assert.equal(store.appliedIndex, 2);
    assert.equal(store.skippedCommands, 1);
    store.apply(3, 1, put('j', 'w'));
  }
  assert.deepEqual(replicas[0].snapshot(), replicas[1].snapshot());
});

test('entries must be applied once each, in order', () => {
  const store = new KvStore();
  assert.throws(() => store.apply(2, 1, put('k', 'v')), KvApplyOrderError);
  store.apply(1, 1, put('k', 'v'));
  assert.throws(() => store.apply(1, 1, put('k', 'v')), /entry 1 applied after entry 1/);
  assert.throws(() => store.advance(3), KvApplyOrderError);
  assert.equal(store.applyEntry({ kind: 'noop', index: 2, term: 2 }), null);
  assert.equal(store.applyEntry({ kind: 'config', index: 3, term: 2, members: [] }), null);
  assert.deepEqual(store.applyEntry({ kind: 'command', index: 4, term: 2, data: del('k') }), { ok: true, index: 4, term: 2, deleted: true });
  assert.equal(store.appliedIndex, 4);
});

test('list returns keys in UTF-8 byte order under a prefix, at most limit', () => {
  const store = new KvStore();
  const keys = ['b', '\u{10000}', 'a/2', '\uffff', 'a/1', 'a', 'ab'];
  keys.forEach((key, position) => store.apply(position + 1, 1, put(key, key)));
  assert.deepEqual(store.list('', 100).map((item) => item.key), ['a', 'a/1', 'a/2', 'ab', 'b', '\uffff', '\u{10000}']);
  assert.deepEqual(store.list('a/', 100).map((item) => item.key), ['a/1', 'a/2']);
  assert.deepEqual(store.list('a', 2).map((item) => item.key), ['a', 'a/1']);
  assert.deepEqual(store.list('c', 100), []);
  assert.deepEqual(store.list('', 0), []);
});

test('restore refuses damaged snapshots and keeps the current state', () => {
  const source = new KvStore();
  source.apply(1, 1, put('x', 'xx'));
  source.apply(2, 1, put('y', 'yy'));
  const good = source.snapshot();
  const target = new KvStore();
  target.apply(1, 1, put('mine', 'kept'));
  const refuses = (data: Uint8Array, index: number, pattern: RegExp): void => {
    assert.throws(() => target.restore(data, index), (error: unknown) => error instanceof KvSnapshotError && pattern.test(error.message));
    assert.deepEqual(target.list('', 10).map((item) => item.key), ['mine']);
    assert.equal(target.appliedIndex, 1);
  };
  refuses(good, 3, /taken at log index 2, but is being installed as index 3/);
  refuses(good.subarray(0, 10), 2, /less than an empty snapshot/);
  refuses(good.subarray(0, good.byteLength - 1), 2, /checksum mismatch/);
  refuses(Uint8Array.from([...good, 0]), 2, /checksum mismatch/);
  refuses(Uint8Array.from([0x50, ...good.subarray(1)]), 2, /bad magic bytes/);
  refuses(Uint8Array.from([...good.subarray(0, 4), 9, ...good.subarray(5)]), 2, /unknown snapshot version 9/);
  target.restore(good, 2);
  assert.deepEqual(target.list('', 10).map((item) => item.key), ['x', 'y']);
});

test('any single damaged byte in a snapshot is detected', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom(...smallKeyPool), value), { maxLength: 8 }), fc.nat(), fc.integer({ min: 1, max: 255 }), (writes, at, xor) => {
      const store = new KvStore();
      writes.forEach(([key, data], position) => store.applyCommand(position + 1, 1, { op: 'put', key, value: data }));
      const snapshot = store.snapshot().slice();
      snapshot[at % snapshot.byteLength] ^= xor;
      assert.throws(() => new KvStore().restore(snapshot, store.appliedIndex), KvSnapshotError);
    }),
    { numRuns: 500 },
  );
});

test('restore of arbitrary bytes throws KvSnapshotError and nothing else', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat({ max: 5 }), (data, index) => {
      assert.throws(() => new KvStore().restore(data, index), KvSnapshotError);
    }),
    { numRuns: 1000 },
  );
});

// ---- the model: random command sequences against a plain Map -----------------------------------

type IfMatch = 'none' | 'current' | number;
/** If-Term: none, the term the entry will have, or a given term (mostly another one). */
type IfTerm = 'none' | 'current' | number;
type Action =
  | { readonly kind: 'put'; readonly key: string; readonly value: Uint8Array; readonly ifMatch: IfMatch; readonly ifNoneMatch: boolean; readonly ifTerm: IfTerm }
  | { readonly kind: 'del'; readonly key: string; readonly ifMatch: IfMatch; readonly ifTerm: IfTerm }
  | { readonly kind: 'noop' }
  | { readonly kind: 'corrupt'; readonly data: Uint8Array }
  | { readonly kind: 'snapshot' };

const key = fc.constantFrom(...smallKeyPool);
// 'current' resolves to the key's modIndex when the action runs, so conditions succeed often.
const ifMatch: fc.Arbitrary<IfMatch> = fc.oneof(fc.constant('none' as const), fc.constant('current' as const), fc.integer({ min: 1, max: 40 }));
const ifTerm: fc.Arbitrary<IfTerm> = fc.oneof(fc.constant('none' as const), fc.constant('current' as const), fc.integer({ min: 1, max: 8 }));
const action: fc.Arbitrary<Action> = fc.oneof(
  // If-None-Match only without If-Match: the encoder refuses the two together.
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('put' as const), key, value, ifMatch, ifNoneMatch: fc.boolean(), ifTerm }).map((p) => (p.ifMatch === 'none' ? p : { ...p, ifNoneMatch: false })) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('del' as const), key, ifMatch, ifTerm }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'noop' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('corrupt' as const), data: fc.uint8Array({ maxLength: 6 }).map((data) => Uint8Array.from([9, ...data])) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'snapshot' as const }) },
);

interface ModelValue {
  readonly value: Uint8Array;
  readonly modIndex: number;
}

function resolveIfMatch(wanted: IfMatch, current: ModelValue | undefined): number | undefined {
  if (wanted === 'none') return undefined;
  if (wanted === 'current') return current?.modIndex ?? 1;
  return wanted;
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function modelItems(model: Map<string, ModelValue>, prefix: string, limit: number): KvItem[] {
  return [...model.entries()]
    .filter(([candidate]) => candidate.startsWith(prefix))
    .sort(([a], [b]) => byteOrder(a, b))
    .slice(0, limit)
    .map(([candidate, stored]) => ({ key: candidate, value: stored.value, modIndex: stored.modIndex }));
}

test('random command sequences with snapshots behave like a Map, and the change history records each change', () => {
  fc.assert(
    fc.property(fc.array(action, { maxLength: 60 }), fc.constantFrom(...smallKeyPool, ''), fc.integer({ min: 0, max: 10 }), (actions, prefix, limit) => {
      let store = new KvStore();
      const model = new Map<string, ModelValue>();
      /** The changes since the last snapshot, as a watch must see them. */
      let changes: KvChange[] = [];
      let index = 0;
      for (const step of actions) {
        if (step.kind === 'snapshot') {
          const restored = new KvStore();
          restored.restore(store.snapshot(), store.appliedIndex);
          store = restored;
          changes = [];
          assert.equal(store.changes.floor, store.appliedIndex, 'no history before a snapshot');
          continue;
        }
        index++;
        const term = 1 + Math.floor(index / 10);
        if (step.kind === 'noop') {
          store.advance(index);
          continue;
        }
        if (step.kind === 'corrupt') {
          assert.equal(store.apply(index, term, step.data).ok, false);
          continue;
        }
        const current = model.get(step.key);
        const wanted = resolveIfMatch(step.ifMatch, current);
        const fence = step.ifTerm === 'none' ? {} : { ifTerm: step.ifTerm === 'current' ? term : step.ifTerm };
        const cmd: KvCommand =
          step.kind === 'put'
            ? { op: 'put', key: step.key, value: step.value, ...(wanted === undefined ? {} : { ifMatch: wanted }), ...(step.ifNoneMatch ? { ifNoneMatch: true } : {}), ...fence }
            : { op: 'del', key: step.key, ...(wanted === undefined ? {} : { ifMatch: wanted }), ...fence };
        const termHolds = fence.ifTerm === undefined || fence.ifTerm === term;
        const conditionHolds = termHolds && (wanted === undefined || current?.modIndex === wanted) && !(step.kind === 'put' && step.ifNoneMatch && current !== undefined);
        const result = store.apply(index, term, encodeKvCommand(cmd));
        assert.equal(result.ok, conditionHolds);
        assert.equal(result.index, index);
        assert.equal(result.term, term);
        if (!conditionHolds) continue;
        if (step.kind === 'put') {
          model.set(step.key, { value: step.value, modIndex: index });
          changes.push({ index, term, key: step.key, op: 'put', value: step.value });
        } else {
          assert.equal(result.ok && result.deleted, current !== undefined);
          if (current !== undefined) changes.push({ index, term, key: step.key, op: 'del', value: null });
          model.delete(step.key);
        }
      }
      assert.deepEqual(store.changes.since(store.changes.floor, '', Number.MAX_SAFE_INTEGER), changes);
      assert.deepEqual(store.changes.since(store.changes.floor, prefix, Number.MAX_SAFE_INTEGER), changes.filter((c) => c.key.startsWith(prefix)));
      assert.equal(store.changes.appliedIndex, index);
      assert.equal(store.appliedIndex, index);
      assert.deepEqual(store.list('', Number.MAX_SAFE_INTEGER), modelItems(model, '', Number.MAX_SAFE_INTEGER));
      assert.deepEqual(store.list(prefix, limit), modelItems(model, prefix, limit));
      for (const candidate of smallKeyPool) assert.deepEqual(store.get(candidate), modelItems(model, candidate, 1).find((item) => item.key === candidate));
      assert.equal(store.size, model.size);
      assert.equal(store.sizeBytes, store.snapshot().byteLength);
    }),
    { numRuns: 500 },
  );
});

test('If-Term is decided at apply time by the entry\'s own term', () => {
  const store = new KvStore();
  const fenced = (index: number, term: number, ifTerm: number): KvResult =>
    store.apply(index, term, encodeKvCommand({ op: 'put', key: 'k', value: bytes(`v${index}`), ifTerm }));
  assert.deepEqual(fenced(1, 4, 4), { ok: true, index: 1, term: 4 });
  const stale = fenced(2, 5, 4);
  assert.equal(stale.ok, false);
  assert.match(!stale.ok ? stale.message : '', /If-Term 4 failed: the write was appended in term 5/);
  assert.equal(store.get('k')?.modIndex, 1, 'a refused write changes nothing');
  assert.equal(store.appliedIndex, 2, 'but the entry is consumed');
  const del = store.apply(3, 5, encodeKvCommand({ op: 'del', key: 'k', ifTerm: 4 }));
  assert.equal(del.ok, false);
  assert.notEqual(store.get('k'), undefined);
});
