// Recovery after crashes and damage: a torn write at the tail is cut off with a warning, anything
// else is refused with StorageCorruptError naming the file and the byte offset. The tests about
// torn tails and damage run on both segment layouts: preallocated segments (what raftlet writes now,
// where a crash leaves zeros after the torn bytes) and appended ones (format 1 directories, where a
// crash leaves a shorter file).
import assert from 'node:assert/strict';
import { cp, open, readFile, rename, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { crc32 } from 'node:zlib';
import { openStore, StorageCorruptError } from '../../src/storage/index.ts';
import {
  LAYOUTS, command, commands, crashAt, logEnd, recorder, segmentFiles, snapshotAt, snapshotFiles, toAppendedFormat, withTempDir, writeAt,
  type Layout,
} from './helpers.ts';

/**
 * Writes entries 1..count, one save (so one frame) each, in the given layout; returns where the log
 * ended in the last segment after each frame.
 */
async function writeFrames(dir: string, count: number, layout: Layout, segmentBytes?: number): Promise<number[]> {
  const { store } = await openStore(dir, recorder().options(segmentBytes ? { segmentBytes } : {}));
  const ends: number[] = [];
  for (let index = 1; index <= count; index++) {
    await store.save({ entries: [command(index, 1)], hardState: { term: 1, votedFor: null, commitIndex: index } });
    const files = await segmentFiles(dir);
    ends.push(await logEnd(join(dir, files.at(-1)!)));
  }
  await store.close();
  if (layout !== 'preallocated') await toAppendedFormat(dir);
  return ends;
}

/** What recovery must make of a crash that kept the bytes before `cut` of the original segment. */
interface CrashExpectation {
  /** Frames that are whole on disk. */
  readonly whole: number;
  /** Where the last whole frame ends: the log is cut back to there. */
  readonly frameStart: number;
  /** Whether torn bytes are visible, so a warning is due. */
  readonly warns: boolean;
}

/**
 * In a preallocated segment the bytes after a crash are zeros, so bytes of the original that were
 * zero anyway count as landed: a write missing only its trailing zeros is whole, and one that landed
 * only zeros (e.g. the first byte of a frame length) cannot be told from one that never started.
 */
function expectAfterCrash(original: Buffer, ends: readonly number[], cut: number, layout: Layout): CrashExpectation {
  let landed = cut;
  if (layout === 'preallocated') while (landed < original.length && original[landed] === 0) landed++;
  const wholeEnds = ends.filter((end) => end <= landed);
  const frameStart = Math.max(16, ...wholeEnds);
  const warns = landed > frameStart && wholeEnds.length < ends.length &&
    (layout !== 'preallocated' || original.subarray(frameStart, landed).some((b) => b !== 0));
  return { whole: wholeEnds.length, frameStart, warns };
}

/** The file after a torn write was cut at `end`: shorter (appended), or zeros from `end` on (preallocated). */
async function assertCutAt(path: string, end: number, layout: Layout, sizeBefore: number): Promise<void> {
  if (layout === 'preallocated') {
    assert.equal((await stat(path)).size, sizeBefore, 'a preallocated segment keeps its size');
    assert.equal(await logEnd(path), end, 'the log ends at the last whole frame');
    assert.ok((await readFile(path)).subarray(end).every((b) => b === 0), 'the torn bytes were overwritten with zeros');
  } else {
    assert.equal((await stat(path)).size, end, 'the file is truncated to the last whole frame');
  }
}

async function flipByte(path: string, offset: number): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    const one = Buffer.alloc(1);
    await handle.read(one, 0, 1, offset);
    one[0] = one[0]! ^ 0x40;
    await handle.write(one, 0, 1, offset);
  } finally {
    await handle.close();
  }
}

function isCorrupt(file: string, offset: number) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof StorageCorruptError, `expected StorageCorruptError, got ${String(error)}`);
    assert.equal(error.code, 'corrupt');
    assert.equal(error.file, file);
    assert.equal(error.offset, offset);
    assert.ok(error.message.includes(file) && error.message.includes(`offset ${offset}`), error.message);
    return true;
  };
}

for (const layout of LAYOUTS) describe(`torn tail of the last segment (${layout})`, () => {
  it('is cut at every kind of offset inside the last frame, keeping all frames before it', () =>
    withTempDir(async (root) => {
      const original = join(root, 'original');
      const ends = await writeFrames(original, 10, layout);
      const segment = (await segmentFiles(original))[0]!;
      const lastStart = ends[8]!;
      const lastEnd = ends[9]!;
      const bytes = await readFile(join(original, segment));
      const cuts = [lastStart + 1, lastStart + 5, lastStart + 11, lastStart + 12, lastStart + 13, Math.floor((lastStart + lastEnd) / 2), lastEnd - 1];
      for (const cut of cuts) {
        const dir = join(root, `cut-${cut}`);
        await cp(original, dir, { recursive: true });
        const sizeBefore = (await stat(join(dir, segment))).size;
        await crashAt(join(dir, segment), cut);
        const rec = recorder();
        const expected = expectAfterCrash(bytes, ends, cut, layout);
        assert.ok(expected.whole >= 9);
        const { store, restored } = await openStore(dir, rec.options());
        try {
          assert.deepEqual(restored.entries, commands(1, expected.whole, 1), `cut at ${cut}`);
          assert.equal(restored.hardState.commitIndex, expected.whole);
          assert.equal(rec.warnings.length, expected.warns ? 1 : 0, `cut at ${cut}: ${rec.warnings.join('; ')}`);
          if (expected.warns) {
            assert.match(rec.warnings[0]!, /torn write/);
            await assertCutAt(join(dir, segment), lastStart, layout, sizeBefore);
          }
          // The log goes on from there, and survives another reopen.
          await store.save({ entries: [command(expected.whole + 1, 2)] });
        } finally {
          await store.close();
        }
        const again = await openStore(dir, recorder().options());
        await again.store.close();
        assert.deepEqual(again.restored.entries, [...commands(1, expected.whole, 1), command(expected.whole + 1, 2)]);
      }
    }));

  it('is cut when the last frame has a bad checksum or zeros follow the last good frame', () =>
    withTempDir(async (root) => {
      const original = join(root, 'original');
      const ends = await writeFrames(original, 5, layout);
      const segment = (await segmentFiles(original))[0]!;

      const flipped = join(root, 'flipped');
      await cp(original, flipped, { recursive: true });
      await flipByte(join(flipped, segment), ends[4]! - 3);
      let rec = recorder();
      let opened = await openStore(flipped, rec.options());
      await opened.store.close();
      assert.deepEqual(opened.restored.entries, commands(1, 4, 1));
      assert.match(rec.warnings.join('\n'), /frame checksum mismatch/);

      const zeroed = join(root, 'zeroed');
      await cp(original, zeroed, { recursive: true });
      const handle = await open(join(zeroed, segment), 'a');
      await handle.write(Buffer.alloc(4096));
      await handle.close();
      const zeroedSize = (await stat(join(zeroed, segment))).size;
      rec = recorder();
      opened = await openStore(zeroed, rec.options());
      await opened.store.close();
      assert.deepEqual(opened.restored.entries, commands(1, 5, 1));
      if (layout === 'preallocated') {
        // Zeros after the last frame are the preallocated space, not a torn write: nothing to cut.
        assert.deepEqual(rec.warnings, []);
        assert.equal((await stat(join(zeroed, segment))).size, zeroedSize);
        assert.equal(await logEnd(join(zeroed, segment)), ends[4]);
      } else {
        assert.equal(rec.warnings.length, 1);
        assert.equal((await stat(join(zeroed, segment))).size, ends[4]);
      }
    }));

  it('removes a last segment whose header was never completely written', () =>
    withTempDir(async (dir) => {
      await writeFrames(dir, 3, layout);
      await writeFile(join(dir, 'wal-0000000000000002.log'), Buffer.from('RAFT'));
      const rec = recorder();
      const { store, restored } = await openStore(dir, rec.options());
      assert.deepEqual(await segmentFiles(dir), ['wal-0000000000000001.log']);
      await store.save({ entries: [command(4, 1)] });
      await store.close();
      assert.deepEqual(restored.entries, commands(1, 3, 1));
      assert.match(rec.warnings.join('\n'), /creation was interrupted/);
      // A format 1 segment is not appended to: the first write starts a preallocated one.
      assert.deepEqual(await segmentFiles(dir), layout === 'preallocated' ? ['wal-0000000000000001.log'] : ['wal-0000000000000001.log', 'wal-0000000000000002.log']);
      const again = await openStore(dir, recorder().options());
      await again.store.close();
      assert.deepEqual(again.restored.entries, commands(1, 4, 1));
    }));
});

for (const layout of LAYOUTS) describe(`a crash at any byte of the last segment (${layout})`, () => {
  it('recovers the state after the last whole frame before the cut, and the log goes on', () =>
    withTempDir(async (root) => {
      const original = join(root, 'original');
      const ends = await writeFrames(original, 12, layout);
      const segment = (await segmentFiles(original))[0]!;
      const bytes = await readFile(join(original, segment));
      let run = 0;
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 16, max: ends.at(-1)! }), async (cut) => {
          const dir = join(root, `run-${run++}`);
          await cp(original, dir, { recursive: true });
          await crashAt(join(dir, segment), cut);
          const { whole, warns } = expectAfterCrash(bytes, ends, cut, layout);
          const rec = recorder();
          const { store, restored } = await openStore(dir, rec.options());
          try {
            assert.deepEqual(restored.entries, commands(1, whole, 1));
            assert.equal(restored.hardState.commitIndex, whole);
            assert.equal(rec.warnings.length, warns ? 1 : 0);
            await store.save({ entries: [command(whole + 1, 2)] });
          } finally {
            await store.close();
          }
          const again = await openStore(dir, recorder().options());
          await again.store.close();
          assert.deepEqual(again.restored.entries, [...commands(1, whole, 1), command(whole + 1, 2)]);
        }),
        { numRuns: 40 },
      );
    }));
});

for (const layout of LAYOUTS) describe(`damage anywhere else stops recovery (${layout})`, () => {
  it('a flipped byte in a frame in the middle names the file and the frame offset', () =>
    withTempDir(async (dir) => {
      const ends = await writeFrames(dir, 10, layout);
      const segment = join(dir, (await segmentFiles(dir))[0]!);
      const before = await readFile(segment);
      // One byte inside the fifth frame's body, then one inside the seventh frame's header.
      await flipByte(segment, ends[3]! + 40);
      await assert.rejects(openStore(dir, recorder().options()), isCorrupt(segment, ends[3]!));
      await flipByte(segment, ends[3]! + 40);
      await flipByte(segment, ends[5]! + 2);
      await assert.rejects(openStore(dir, recorder().options()), isCorrupt(segment, ends[5]!));
      assert.deepEqual(await readFile(segment), (() => { const copy = Buffer.from(before); copy[ends[5]! + 2] ^= 0x40; return copy; })(), 'nothing was repaired');
    }));

  it('a damaged frame at the end of a segment that is not the last is corruption, not a torn tail', () =>
    withTempDir(async (dir) => {
      await writeFrames(dir, 40, layout, 1024);
      const files = await segmentFiles(dir);
      assert.ok(files.length >= 3);
      const first = join(dir, files[0]!);
      const end = await logEnd(first);
      await flipByte(first, end - 2);
      await assert.rejects(openStore(dir, recorder().options()), (error: unknown) => {
        assert.ok(error instanceof StorageCorruptError);
        assert.equal(error.file, first);
        return true;
      });
      await flipByte(first, end - 2);
      await crashAt(first, end - 5);
      await assert.rejects(openStore(dir, recorder().options()), (error: unknown) => {
        assert.ok(error instanceof StorageCorruptError);
        assert.equal(error.file, first);
        assert.match(error.message, layout === 'preallocated' ? /in a segment that is not the last/ : /runs past the end of a segment that is not the last/);
        return true;
      });
    }));

  it('a bad checksum in the last frame followed by more data is corruption', () =>
    withTempDir(async (dir) => {
      const ends = await writeFrames(dir, 5, layout);
      const segment = join(dir, (await segmentFiles(dir))[0]!);
      await flipByte(segment, ends[4]! - 3);
      // Right after the log: appended to an appended segment, over the zeros of a preallocated one.
      await writeAt(segment, ends[4]!, Buffer.from('trailing garbage that is not zeros'));
      await assert.rejects(openStore(dir, recorder().options()), isCorrupt(segment, ends[3]!));
    }));

  it('a flipped byte in the newest snapshot names the snapshot file', () =>
    withTempDir(async (dir) => {
      const { store } = await openStore(dir, recorder().options());
      await store.save({ entries: commands(1, 20, 1) });
      await store.saveSnapshot(snapshotAt(15, 1, 1000));
      await store.close();
      const file = join(dir, (await snapshotFiles(dir))[0]!);
      await flipByte(file, 500);
      const size = (await stat(file)).size;
      await assert.rejects(openStore(dir, recorder().options()), isCorrupt(file, size - 4));
    }));

  it('bad magic and unknown versions are refused', () =>
    withTempDir(async (dir) => {
      await writeFrames(dir, 3, layout);
      const segment = join(dir, (await segmentFiles(dir))[0]!);
      await flipByte(segment, 0);
      await assert.rejects(openStore(dir, recorder().options()), (error: unknown) => {
        assert.ok(isCorrupt(segment, 0)(error));
        assert.match((error as Error).message, /bad magic/);
        return true;
      });
      await flipByte(segment, 0);
      await flipByte(segment, 13);
      await assert.rejects(openStore(dir, recorder().options()), isCorrupt(segment, 0), 'a damaged header checksum');
      await flipByte(segment, 13);
      // A header from a future format version, with a valid checksum.
      const handle = await open(segment, 'r+');
      const header = Buffer.alloc(16);
      await handle.read(header, 0, 16, 0);
      header.writeUInt32BE(3, 8);
      header.writeUInt32BE(crc32(header.subarray(0, 12)), 12);
      await handle.write(header, 0, 16, 0);
      await handle.close();
      await assert.rejects(openStore(dir, recorder().options()), (error: unknown) => {
        assert.ok(isCorrupt(segment, 0)(error));
        assert.match((error as Error).message, /version 3 is not supported/);
        return true;
      });
    }));

  it('a missing segment in the middle and a missing metadata file are refused', () =>
    withTempDir(async (root) => {
      const dir = join(root, 'a');
      await writeFrames(dir, 40, layout, 1024);
      const files = await segmentFiles(dir);
      await rename(join(dir, files[1]!), join(root, 'moved-away'));
      await assert.rejects(openStore(dir, recorder().options()), (error: unknown) => {
        assert.ok(error instanceof StorageCorruptError);
        assert.match(error.message, /segment is missing/);
        return true;
      });
      await rename(join(root, 'moved-away'), join(dir, files[1]!));
      await unlink(join(dir, 'raftlet-meta.json'));
      await assert.rejects(openStore(dir, recorder().options()), (error: unknown) => {
        assert.ok(error instanceof StorageCorruptError);
        assert.match(error.message, /raftlet-meta\.json/);
        return true;
      });
    }));

  it('segments removed without a snapshot that covers them are refused', () =>
    withTempDir(async (dir) => {
      await writeFrames(dir, 40, layout, 1024);
      const files = await segmentFiles(dir);
      await unlink(join(dir, files[0]!));
      await assert.rejects(openStore(dir, recorder().options()), /no snapshot file covers them/);
    }));
});

describe('crash between a snapshot file and its WAL record', () => {
  it('a received snapshot whose install record never landed still wins, and later appends survive', () =>
    withTempDir(async (root) => {
      const dir = join(root, 'node');
      const { store } = await openStore(dir, recorder().options());
      await store.save({ entries: commands(1, 30, 1) });
      await store.close();
      // Simulate: the snapshot file (another history at index 20) is durable, the WAL record is not.
      const donor = join(root, 'donor');
      const other = await openStore(donor, recorder().options());
      await other.store.save({ snapshot: snapshotAt(20, 5) });
      await other.store.close();
      const name = (await snapshotFiles(donor))[0]!;
      await cp(join(donor, name), join(dir, name));

      let opened = await openStore(dir, recorder().options());
      assert.deepEqual(opened.restored.snapshot, snapshotAt(20, 5));
      assert.deepEqual(opened.restored.entries, [], 'the old suffix followed another history');
      await opened.store.save({ entries: commands(21, 23, 5) });
      await opened.store.close();
      opened = await openStore(dir, recorder().options());
      await opened.store.close();
      assert.deepEqual(opened.restored.entries, commands(21, 23, 5));
    }));
});
