import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Entry, HardState } from '../../src/raft/types.ts';
import { openStore, StorageError } from '../../src/storage/index.ts';
import { command, commands, members, recorder, segmentFiles, snapshotAt, snapshotFiles, withTempDir } from './helpers.ts';

describe('storage round trips', () => {
  it('starts empty and creates its metadata and first segment', () =>
    withTempDir(async (dir) => {
      const { store, restored } = await openStore(join(dir, 'data'), recorder().options());
      await store.close();
      assert.deepEqual(restored, { hardState: { term: 0, votedFor: null, commitIndex: 0 }, snapshot: null, entries: [] });
      assert.deepEqual(await segmentFiles(join(dir, 'data')), ['wal-0000000000000001.log']);
    }));

  it('restores every entry kind, the hard state and a received snapshot exactly', () =>
    withTempDir(async (dir) => {
      const rec = recorder();
      const entries: Entry[] = [
        { kind: 'noop', term: 3, index: 11 },
        { kind: 'config', term: 3, index: 12, members },
        { kind: 'command', term: 3, index: 13, data: new Uint8Array([0, 1, 2, 255]) },
        { kind: 'command', term: 4, index: 14, data: new Uint8Array(0) },
        { kind: 'config', term: 4, index: 15, members: [] },
      ];
      const hardState: HardState = { term: 4, votedFor: 'n2 with ünïcode', commitIndex: 13 };
      const snapshot = snapshotAt(10, 2);
      let { store } = await openStore(dir, rec.options());
      await store.save({ snapshot, entries, hardState });
      await store.close();
      const reopened = await openStore(dir, rec.options());
      await reopened.store.close();
      assert.deepEqual(reopened.restored, { hardState, snapshot, entries });
      assert.deepEqual(rec.warnings, []);
      ({ store } = reopened);
    }));

  it('an entry at or below the last persisted index replaces it and everything after', () =>
    withTempDir(async (dir) => {
      const rec = recorder();
      const { store } = await openStore(dir, rec.options());
      await store.save({ entries: commands(1, 10, 1) });
      await store.save({ entries: commands(6, 7, 2) });
      assert.equal(store.lastIndex, 7);
      await store.save({ entries: [command(8, 3)], hardState: { term: 3, votedFor: null, commitIndex: 5 } });
      await store.close();
      const { store: again, restored } = await openStore(dir, rec.options());
      await again.close();
      assert.deepEqual(restored.entries, [...commands(1, 5, 1), ...commands(6, 7, 2), command(8, 3)]);
      assert.deepEqual(restored.hardState, { term: 3, votedFor: null, commitIndex: 5 });
    }));

  it('a received snapshot replaces the whole log, even entries beyond it', () =>
    withTempDir(async (dir) => {
      const { store } = await openStore(dir, recorder().options());
      await store.save({ entries: commands(1, 30, 1) });
      await store.save({ snapshot: snapshotAt(20, 2), entries: commands(21, 22, 2) });
      await store.close();
      const { store: again, restored } = await openStore(dir, recorder().options());
      await again.close();
      assert.deepEqual(restored.snapshot, snapshotAt(20, 2));
      assert.deepEqual(restored.entries, commands(21, 22, 2));
    }));

  it('compaction keeps the entries after the snapshot', () =>
    withTempDir(async (dir) => {
      const { store } = await openStore(dir, recorder().options());
      await store.save({ entries: commands(1, 30, 1) });
      await store.saveSnapshot(snapshotAt(12, 1));
      assert.equal(store.snapshotBase, 12);
      await store.save({ entries: commands(31, 32, 1) });
      await store.close();
      const { store: again, restored } = await openStore(dir, recorder().options());
      await again.close();
      assert.deepEqual(restored.snapshot, snapshotAt(12, 1));
      assert.deepEqual(restored.entries, commands(13, 32, 1));
    }));

  it('appends after a reopen continue the same log', () =>
    withTempDir(async (dir) => {
      const rec = recorder();
      let opened = await openStore(dir, rec.options());
      await opened.store.save({ entries: commands(1, 5, 1), hardState: { term: 1, votedFor: 'n1', commitIndex: 2 } });
      await opened.store.close();
      opened = await openStore(dir, rec.options());
      await opened.store.save({ entries: commands(6, 8, 2) });
      await opened.store.close();
      opened = await openStore(dir, rec.options());
      await opened.store.close();
      assert.deepEqual(opened.restored.entries, [...commands(1, 5, 1), ...commands(6, 8, 2)]);
      assert.deepEqual(opened.restored.hardState, { term: 1, votedFor: 'n1', commitIndex: 2 });
    }));
});

describe('storage refuses bad input before writing anything', () => {
  it('rejects holes, rewrites under the snapshot and malformed values, and stays usable', () =>
    withTempDir(async (dir) => {
      const { store } = await openStore(dir, recorder().options());
      await store.save({ entries: commands(1, 5, 1) });
      await assert.rejects(store.save({ entries: [command(7, 1)] }), /next entry must be in 1\.\.6/);
      await assert.rejects(store.save({ entries: [command(6, 1), command(8, 1)] }), /contiguous/);
      await assert.rejects(store.save({ hardState: { term: -1, votedFor: null, commitIndex: 0 } }), /safe non-negative/);
      await assert.rejects(store.save({ entries: [{ kind: 'command', term: 1, index: 6, data: 'x' as unknown as Uint8Array }] }), /Uint8Array/);
      await store.saveSnapshot(snapshotAt(3, 1));
      await assert.rejects(store.save({ entries: [command(3, 2)] }), /must be in 4\.\.6/);
      await assert.rejects(store.save({ snapshot: snapshotAt(2, 1) }), /already has a snapshot/);
      await assert.rejects(store.saveSnapshot(snapshotAt(5, 9)), /log has term 1/);
      await store.save({ entries: [command(6, 1)] });
      await store.close();
      const { store: again, restored } = await openStore(dir, recorder().options());
      await again.close();
      assert.deepEqual(restored.entries, commands(4, 6, 1));
    }));
});

describe('data directory checks', () => {
  it('refuses a directory that belongs to another node id', () =>
    withTempDir(async (dir) => {
      const { store } = await openStore(dir, recorder('raftlet-0').options());
      await store.close();
      await assert.rejects(openStore(dir, recorder('raftlet-1').options()), (error: unknown) => {
        assert.ok(error instanceof StorageError);
        assert.equal(error.code, 'wrong_node');
        assert.match(error.message, /belongs to node "raftlet-0", not "raftlet-1"/);
        return true;
      });
    }));

  it('reports a directory that cannot be created as unusable, naming it', () =>
    withTempDir(async (dir) => {
      const blocker = join(dir, 'a-file');
      await writeFile(blocker, 'not a directory');
      await assert.rejects(openStore(join(blocker, 'data'), recorder().options()), (error: unknown) => {
        assert.ok(error instanceof StorageError);
        assert.equal(error.code, 'unusable');
        assert.ok(error.message.includes(join(blocker, 'data')));
        assert.match(error.message, /RAFTLET_DATA_DIR/);
        return true;
      });
    }));
});

describe('segments and snapshots on disk', () => {
  it('rolls to a new segment at the size limit and deletes segments a snapshot covers', () =>
    withTempDir(async (dir) => {
      const rec = recorder();
      const { store } = await openStore(dir, rec.options({ segmentBytes: 2048 }));
      for (let index = 1; index <= 100; index++) {
        await store.save({ entries: [command(index, 1)], hardState: { term: 1, votedFor: 'n2', commitIndex: index } });
      }
      const before = await segmentFiles(dir);
      assert.ok(before.length >= 5, `expected several segments, got ${before.length}`);
      assert.equal(store.segmentCount, before.length);

      await store.saveSnapshot(snapshotAt(60, 1));
      const after = await segmentFiles(dir);
      assert.ok(after.length < before.length, 'covered segments are deleted');
      assert.equal(after.at(-1), before.at(-1), 'the active segment stays');
      assert.ok(after[0]! > before[0]!, 'deletion starts with the oldest');

      await store.saveSnapshot(snapshotAt(70, 1));
      await store.saveSnapshot(snapshotAt(80, 1));
      assert.deepEqual(await snapshotFiles(dir), [
        'snap-00000000000000000070-00000000000000000001.snap',
        'snap-00000000000000000080-00000000000000000001.snap',
      ]);
      await store.close();

      const { store: again, restored } = await openStore(dir, rec.options({ segmentBytes: 2048 }));
      await again.close();
      assert.deepEqual(restored.snapshot, snapshotAt(80, 1));
      assert.deepEqual(restored.entries, commands(81, 100, 1));
      assert.deepEqual(restored.hardState, { term: 1, votedFor: 'n2', commitIndex: 100 }, 'the hard state survives deleting the segment that first held it');
      assert.deepEqual(rec.warnings, []);
    }));

  it('after a received snapshot every older segment goes, whatever indices it held', () =>
    withTempDir(async (dir) => {
      const { store } = await openStore(dir, recorder().options({ segmentBytes: 1024 }));
      for (let index = 1; index <= 60; index++) await store.save({ entries: [command(index, 1)] });
      await store.save({ snapshot: snapshotAt(30, 2) });
      await store.save({ entries: [command(31, 2)] });
      assert.equal(store.segmentCount, 1);
      await store.close();
      const { store: again, restored } = await openStore(dir, recorder().options({ segmentBytes: 1024 }));
      await again.close();
      assert.deepEqual(restored.entries, [command(31, 2)]);
    }));
});

describe('group commit', () => {
  it('saves issued together share one fsync', () =>
    withTempDir(async (dir) => {
      const rec = recorder();
      const { store } = await openStore(dir, rec.options());
      rec.fsyncs.length = 0;
      await Promise.all(Array.from({ length: 200 }, (_, n) => store.save({ entries: [command(n + 1, 1)] })));
      assert.deepEqual(rec.fsyncs, ['wal']);
      await store.close();
      const { store: again, restored } = await openStore(dir, rec.options());
      await again.close();
      assert.deepEqual(restored.entries, commands(1, 200, 1));
    }));

  it('saves made while an fsync runs are coalesced into the next one, and none resolves early', () =>
    withTempDir(async (dir) => {
      const rec = recorder();
      const { store } = await openStore(dir, rec.options());
      rec.fsyncs.length = 0;
      const walFsyncs = (): number => rec.fsyncs.filter((kind) => kind === 'wal').length;
      const early: number[] = [];
      const saves: Promise<void>[] = [];
      const issue = (index: number): void => {
        const issuedAfter = walFsyncs();
        saves.push(
          store.save({ entries: [command(index, 1)] }).then(() => {
            if (walFsyncs() <= issuedAfter) early.push(index);
          }),
        );
      };
      issue(1);
      // The first flush starts at the end of this turn (a nextTick queued before this one); after
      // it, the others arrive one microtask apart while its fsync runs.
      await new Promise<void>((resolve) => process.nextTick(resolve));
      for (let index = 2; index <= 100; index++) {
        await Promise.resolve();
        issue(index);
      }
      await Promise.all(saves);
      assert.deepEqual(early, [], 'a save resolved before any fsync after it');
      assert.ok(walFsyncs() <= 2, `100 saves took ${walFsyncs()} fsyncs`);
      await store.close();
    }));

  it('a term or vote alone is fsynced after the messages handed over before it, and is durable', () =>
    withTempDir(async (dir) => {
      const rec = recorder();
      const { store } = await openStore(dir, rec.options());
      const vote = async (term: number, from: string): Promise<void> => {
        rec.fsyncs.length = 0;
        const sent: number[] = [];
        // What the transport does with a message handed to it (peer-link.ts): it leaves at the end
        // of this turn. A vote request must not wait for the candidate's fsync of its term.
        process.nextTick(() => sent.push(rec.fsyncs.length));
        await store.save({ hardState: { term, votedFor: 'n2', commitIndex: 0 } });
        assert.deepEqual(sent, [0], `saved from ${from}: the message left after the fsync`);
        assert.deepEqual(rec.fsyncs, ['wal'], `saved from ${from}`);
      };
      // This test body runs in a promise callback, as the node's drain may after an fsync; the
      // node's drain also runs in I/O callbacks and timers.
      await vote(2, 'a promise callback');
      await new Promise<void>((resolve, reject) => setImmediate(() => vote(3, 'a macrotask').then(resolve, reject)));
      await store.close();
      const { store: again, restored } = await openStore(dir, rec.options());
      await again.close();
      assert.deepEqual(restored.hardState, { term: 3, votedFor: 'n2', commitIndex: 0 });
    }));

  it('an empty save waits for the saves before it', () =>
    withTempDir(async (dir) => {
      const rec = recorder();
      const { store } = await openStore(dir, rec.options());
      rec.fsyncs.length = 0;
      const order: string[] = [];
      const first = store.save({ entries: [command(1, 1)] }).then(() => order.push('entry'));
      const barrier = store.save({}).then(() => order.push('barrier'));
      await Promise.all([first, barrier]);
      assert.deepEqual(order, ['entry', 'barrier']);
      await store.save({});
      assert.deepEqual(rec.fsyncs, ['wal']);
      await store.close();
    }));
});

describe('failures and shutdown', () => {
  it('a failed write stops the store: that save and every later one reject, and error says why', () =>
    withTempDir(async (dir) => {
      const rec = recorder();
      const { store } = await openStore(dir, rec.options());
      await store.save({ entries: [command(1, 1)] });
      // Pull the segment's file handle out from under the store to make the next write fail.
      await (store as unknown as { handle: { close(): Promise<void> } }).handle.close();
      await assert.rejects(store.save({ entries: [command(2, 1)] }), (error: unknown) => {
        assert.ok(error instanceof StorageError);
        assert.equal(error.code, 'failed');
        assert.match(error.message, /must stop/);
        return true;
      });
      assert.equal(store.error?.code, 'failed');
      await assert.rejects(store.save({ entries: [command(2, 1)] }), /must stop/);
      await assert.rejects(store.saveSnapshot(snapshotAt(1, 1)), /must stop/);
      assert.equal(rec.warnings.length, 1);
      const { store: again, restored } = await openStore(dir, rec.options());
      await again.close();
      assert.deepEqual(restored.entries, [command(1, 1)]);
    }));

  it('close() lets saves and a compaction that are under way finish', () =>
    withTempDir(async (dir) => {
      const { store } = await openStore(dir, recorder().options());
      const saving = store.save({ entries: commands(1, 10, 1) });
      const compacting = store.saveSnapshot(snapshotAt(5, 1));
      await store.close();
      await saving;
      await compacting;
      await assert.rejects(store.save({ entries: [command(11, 1)] }), /closed/);
      const { store: again, restored } = await openStore(dir, recorder().options());
      await again.close();
      assert.deepEqual(restored.snapshot, snapshotAt(5, 1));
      assert.deepEqual(restored.entries, commands(6, 10, 1));
    }));
});
