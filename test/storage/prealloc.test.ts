// Preallocated segments (src/storage/prealloc.ts, FORMAT.md): a segment is created at its full size
// filled with zeros, appends overwrite zeros, and the zero tail after the log is not damage. Crashes
// while the next segment is prepared, between its rename and its first frame, and in the middle of
// a frame written into the zeros are all recovered without losing anything acknowledged.
import assert from 'node:assert/strict';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import { openStore, StorageCorruptError } from '../../src/storage/index.ts';
import { command, commands, crashAt, logEnd, recorder, segmentFiles, segmentVersion, snapshotAt, toAppendedFormat, withTempDir, writeAt } from './helpers.ts';

const PREPARED = 'next-segment.tmp';

/** A frame as FORMAT.md describes it, with a body of `bodyLength` bytes of `fill`. */
function frameBytes(bodyLength: number, fill: number): Buffer {
  const body = Buffer.alloc(bodyLength, fill);
  const header = Buffer.alloc(12);
  header.writeUInt32BE(body.length, 0);
  header.writeUInt32BE(crc32(body), 4);
  header.writeUInt32BE(crc32(header.subarray(0, 8)), 8);
  return Buffer.concat([header, body]);
}

describe('preallocated segments', () => {
  it('a new segment has its full size from the start, and appends do not change it', () =>
    withTempDir(async (dir) => {
      const rec = recorder();
      const { store } = await openStore(dir, rec.options({ segmentBytes: 64 * 1024 }));
      const segment = join(dir, (await segmentFiles(dir))[0]!);
      assert.equal((await stat(segment)).size, 64 * 1024);
      assert.equal(await segmentVersion(segment), 2);
      for (let index = 1; index <= 20; index++) {
        await store.save({ entries: [command(index, 1)], hardState: { term: 1, votedFor: 'n1', commitIndex: index - 1 } });
      }
      assert.equal((await stat(segment)).size, 64 * 1024, 'appends overwrite zeros');
      const end = await logEnd(segment);
      assert.ok(end > 20 * 100 && end < 64 * 1024);
      assert.ok((await readFile(segment)).subarray(end).every((b) => b === 0));
      await store.close();

      // The zero tail is the preallocated space: no warning, nothing cut, on every reopen.
      for (let round = 0; round < 2; round++) {
        const again = await openStore(dir, rec.options({ segmentBytes: 64 * 1024 }));
        await again.store.close();
        assert.deepEqual(again.restored.entries, commands(1, 20, 1));
        assert.deepEqual(again.restored.hardState, { term: 1, votedFor: 'n1', commitIndex: 19 });
      }
      assert.deepEqual(rec.warnings, []);
      assert.equal((await stat(segment)).size, 64 * 1024);
    }));

  it('prepares the next segment in the background and rolls into that very file', () =>
    withTempDir(async (dir) => {
      const segmentBytes = 8 * 1024;
      const { store } = await openStore(dir, recorder().options({ segmentBytes }));
      let index = 0;
      // Past half of the first segment the next one is being prepared.
      while ((await logEnd(join(dir, (await segmentFiles(dir))[0]!))) < segmentBytes / 2) {
        index++;
        await store.save({ entries: [command(index, 1)] });
      }
      await store.save({});
      const deadline = Date.now() + 30_000;
      let prepared;
      for (;;) {
        prepared = await stat(join(dir, PREPARED)).catch(() => null);
        if (prepared !== null && prepared.size === segmentBytes) break;
        assert.ok(Date.now() < deadline, 'the next segment was prepared');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      while ((await segmentFiles(dir)).length < 2) {
        index++;
        await store.save({ entries: [command(index, 1)] });
      }
      const second = await stat(join(dir, (await segmentFiles(dir))[1]!));
      assert.equal(second.ino, prepared.ino, 'the prepared file became the next segment');
      assert.equal(second.size, segmentBytes);
      await store.close();
      assert.ok(!(await readdir(dir)).includes(PREPARED), 'close() removes a prepared segment it did not use');
      const again = await openStore(dir, recorder().options({ segmentBytes }));
      await again.store.close();
      assert.deepEqual(again.restored.entries, commands(1, index, 1));
    }));

  it('a frame larger than a segment gets a segment of its own, which grows to hold it', () =>
    withTempDir(async (dir) => {
      const { store } = await openStore(dir, recorder().options({ segmentBytes: 4096 }));
      await store.save({ entries: [command(1, 1)] });
      await store.save({ entries: [command(2, 1, 10_000)] });
      await store.save({ entries: [command(3, 1)] });
      await store.close();
      const files = await segmentFiles(dir);
      assert.equal(files.length, 3);
      assert.ok((await stat(join(dir, files[1]!))).size > 10_000);
      const again = await openStore(dir, recorder().options({ segmentBytes: 4096 }));
      await again.store.close();
      assert.deepEqual(again.restored.entries, [command(1, 1), command(2, 1, 10_000), command(3, 1)]);
    }));
});

describe('crashes around preallocation', () => {
  it('a crash in the middle of preparing the next segment leaves a temp file that recovery removes', () =>
    withTempDir(async (dir) => {
      const { store } = await openStore(dir, recorder().options({ segmentBytes: 4096 }));
      await store.save({ entries: commands(1, 5, 1), hardState: { term: 1, votedFor: 'n2', commitIndex: 5 } });
      await store.close();
      // Half a header and a few zeros, as a kill -9 during prepareSegment() leaves it.
      await writeFile(join(dir, PREPARED), Buffer.concat([Buffer.from('RAFTLW', 'latin1'), Buffer.alloc(1000)]));
      const rec = recorder();
      const { store: again, restored } = await openStore(dir, rec.options({ segmentBytes: 4096 }));
      assert.ok(!(await readdir(dir)).includes(PREPARED));
      assert.deepEqual(restored.entries, commands(1, 5, 1));
      assert.deepEqual(rec.warnings, []);
      // The next roll prepares a new one from scratch.
      for (let index = 6; index <= 60; index++) await again.save({ entries: [command(index, 1)] });
      await again.close();
      assert.ok((await segmentFiles(dir)).length >= 2);
      const last = await openStore(dir, recorder().options({ segmentBytes: 4096 }));
      await last.store.close();
      assert.deepEqual(last.restored.entries, commands(1, 60, 1));
      assert.deepEqual(last.restored.hardState, { term: 1, votedFor: 'n2', commitIndex: 5 });
    }));

  it('a crash between the rename of a new segment and its first frame loses neither the log nor the vote', () =>
    withTempDir(async (dir) => {
      const { store } = await openStore(dir, recorder().options({ segmentBytes: 4096 }));
      await store.save({ entries: commands(1, 10, 1), hardState: { term: 3, votedFor: 'n3', commitIndex: 8 } });
      await store.close();
      // What the roll leaves before its first frame: a whole preallocated segment with nothing in it.
      const header = (await readFile(join(dir, (await segmentFiles(dir))[0]!))).subarray(0, 16);
      await writeFile(join(dir, 'wal-0000000000000002.log'), Buffer.concat([header, Buffer.alloc(4096 - 16)]));

      const rec = recorder();
      const opened = await openStore(dir, rec.options({ segmentBytes: 4096 }));
      assert.deepEqual(opened.restored.entries, commands(1, 10, 1));
      assert.deepEqual(opened.restored.hardState, { term: 3, votedFor: 'n3', commitIndex: 8 });
      assert.deepEqual(rec.warnings, [], 'an empty preallocated segment is not damage');
      // The empty segment becomes the active one; a compaction then deletes segment 1, which was the
      // only one holding the hard state, so the first frame in segment 2 must carry it.
      await opened.store.save({ entries: [command(11, 3)] });
      await opened.store.saveSnapshot(snapshotAt(10, 1));
      await opened.store.close();
      assert.deepEqual(await segmentFiles(dir), ['wal-0000000000000002.log']);
      const again = await openStore(dir, recorder().options({ segmentBytes: 4096 }));
      await again.store.close();
      assert.deepEqual(again.restored.hardState, { term: 3, votedFor: 'n3', commitIndex: 8 });
      assert.deepEqual(again.restored.entries, [command(11, 3)]);
    }));

  it('a torn frame in the preallocated space is overwritten with zeros, so a shorter next frame leaves no leftovers', () =>
    withTempDir(async (dir) => {
      const { store } = await openStore(dir, recorder().options());
      await store.save({ entries: commands(1, 3, 1), hardState: { term: 1, votedFor: null, commitIndex: 3 } });
      await store.close();
      const segment = join(dir, (await segmentFiles(dir))[0]!);
      const end = await logEnd(segment);
      const size = (await stat(segment)).size;
      // A 3000-byte frame of which the first 2000 bytes landed before the crash.
      await writeAt(segment, end, frameBytes(3000, 0x5a).subarray(0, 2000));

      const rec = recorder();
      const opened = await openStore(dir, rec.options());
      assert.deepEqual(opened.restored.entries, commands(1, 3, 1));
      assert.equal(rec.warnings.length, 1);
      assert.match(rec.warnings[0]!, new RegExp(`torn write off the end of ${segment}.*kept bytes 0\\.\\.${end}`));
      assert.equal((await stat(segment)).size, size, 'the preallocation is kept');
      assert.ok((await readFile(segment)).subarray(end).every((b) => b === 0), 'the torn bytes are zeros again');
      // A short frame where the torn one was: without the zeroing, torn bytes would follow it.
      await opened.store.save({ entries: [command(4, 1)] });
      await opened.store.close();
      const again = await openStore(dir, rec.options());
      await again.store.close();
      assert.deepEqual(again.restored.entries, commands(1, 4, 1));
      assert.equal(rec.warnings.length, 1, 'no second warning');
    }));

  it('data in the zero tail after the end of the log is damage, named by file and offset', () =>
    withTempDir(async (dir) => {
      const { store } = await openStore(dir, recorder().options());
      await store.save({ entries: commands(1, 3, 1) });
      await store.close();
      const segment = join(dir, (await segmentFiles(dir))[0]!);
      const end = await logEnd(segment);
      // A whole, valid frame far after the end of the log: not where any write of ours could land.
      await writeAt(segment, end + 4096, frameBytes(100, 0x11));
      await assert.rejects(openStore(dir, recorder().options()), (error: unknown) => {
        assert.ok(error instanceof StorageCorruptError);
        assert.equal(error.file, segment);
        assert.equal(error.offset, end);
        assert.match(error.message, /data follows in the preallocated space/);
        return true;
      });
      // A partly written frame header followed by zeros, by contrast, is a torn write.
      await writeAt(segment, end + 4096, Buffer.alloc(112));
      await writeAt(segment, end, Buffer.from([0, 0, 0x0b]));
      const rec = recorder();
      const opened = await openStore(dir, rec.options());
      await opened.store.close();
      assert.deepEqual(opened.restored.entries, commands(1, 3, 1));
      assert.match(rec.warnings.join('\n'), /frame header checksum mismatch/);
    }));

  it('kill -9 at any byte of a frame written into the zeros is recovered like a torn tail', () =>
    withTempDir(async (dir) => {
      const { store } = await openStore(dir, recorder().options());
      await store.save({ entries: commands(1, 2, 1) });
      await store.save({ entries: [command(3, 1, 300)] });
      await store.close();
      const segment = join(dir, (await segmentFiles(dir))[0]!);
      const original = await readFile(segment);
      const end = await logEnd(segment);
      // The second frame starts where the first one (segment header, frame header, body) ends.
      const lastStart = 16 + 12 + original.readUInt32BE(16);
      for (let cut = lastStart; cut < end; cut += 37) {
        await writeFile(segment, original);
        await crashAt(segment, cut);
        const opened = await openStore(dir, recorder().options());
        await opened.store.close();
        assert.deepEqual(opened.restored.entries, commands(1, 2, 1), `cut at ${cut}`);
        assert.equal(await logEnd(segment), lastStart);
      }
    }));
});

describe('data directories of format 1 (appended segments)', () => {
  it('open, and the first write starts a preallocated segment', () =>
    withTempDir(async (dir) => {
      const { store } = await openStore(dir, recorder().options());
      await store.save({ entries: commands(1, 5, 1), hardState: { term: 2, votedFor: 'n1', commitIndex: 4 } });
      await store.close();
      await toAppendedFormat(dir);
      const old = join(dir, (await segmentFiles(dir))[0]!);
      assert.equal(await segmentVersion(old), 1);
      const oldBytes = await readFile(old);

      const rec = recorder();
      const opened = await openStore(dir, rec.options({ segmentBytes: 32 * 1024 }));
      assert.deepEqual(opened.restored.entries, commands(1, 5, 1));
      await opened.store.save({ entries: [command(6, 2)] });
      await opened.store.close();
      assert.deepEqual(rec.warnings, []);
      assert.deepEqual(await readFile(old), oldBytes, 'the format 1 segment is left as it was');
      const files = await segmentFiles(dir);
      assert.equal(files.length, 2);
      const next = join(dir, files[1]!);
      assert.equal(await segmentVersion(next), 2);
      assert.equal((await stat(next)).size, 32 * 1024);

      // Once a snapshot covers the old segment it goes, and the hard state lives on in the new one.
      const again = await openStore(dir, recorder().options({ segmentBytes: 32 * 1024 }));
      await again.store.saveSnapshot(snapshotAt(5, 1));
      await again.store.close();
      assert.deepEqual(await segmentFiles(dir), [files[1]]);
      const last = await openStore(dir, recorder().options({ segmentBytes: 32 * 1024 }));
      await last.store.close();
      assert.deepEqual(last.restored.entries, [command(6, 2)]);
      assert.deepEqual(last.restored.hardState, { term: 2, votedFor: 'n1', commitIndex: 4 });
    }));
});
