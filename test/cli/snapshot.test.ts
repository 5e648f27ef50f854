// The snapshot file (src/run/backup.ts) and `raftlet snapshot restore | inspect` on it, without a
// cluster: the file is checked whole, a restore makes a data directory a node can open, each
// restore makes its own cluster id (so two restores of one file never form one cluster by
// mistake), and bad usage or a damaged file changes nothing.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { runSnapshotCommand } from '../../src/cli/snapshot.ts';
import { KvStore } from '../../src/kv/index.ts';
import type { Entry } from '../../src/raft/types.ts';
import { BackupError, decodeBackup, encodeBackup } from '../../src/run/backup.ts';
import { readClusterId } from '../../src/run/cluster-id.ts';
import { openStore } from '../../src/storage/index.ts';
import { encodeKvCommand } from '../../src/kv/index.ts';
import { Capture } from './helpers.ts';

const scratch = mkdtempSync(path.join(tmpdir(), 'raftlet-snapshot-cli-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A key-value state with `n` keys at index n + 2 (a config entry and a no-op before them). */
function state(n: number): { kv: Uint8Array; index: number } {
  const store = new KvStore();
  store.advance(1);
  store.advance(2);
  for (let i = 0; i < n; i++) {
    const entry: Entry = { kind: 'command', term: 2, index: i + 3, data: encodeKvCommand({ op: 'put', key: `key-${i}`, value: Buffer.from(`value ${i}`) }) };
    store.apply(entry.index, entry.term, entry.data);
  }
  return { kv: store.snapshot(), index: n + 2 };
}

function backupFile(name: string, n = 5): { file: string; bytes: Uint8Array; index: number } {
  const { kv, index } = state(n);
  const bytes = encodeBackup({ index, term: 2, keys: n, clusterId: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', members: [{ id: 'old-1', url: 'http://old:7070', voter: true }], node: 'old-1', kv });
  const file = path.join(scratch, name);
  writeFileSync(file, bytes);
  return { file, bytes, index };
}

async function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await runSnapshotCommand(args, { stdout, stderr, env, cwd: scratch });
  return { code, out: stdout.text, err: stderr.text };
}

describe('the snapshot file', () => {
  it('round-trips and names what it holds', () => {
    const { bytes, index } = backupFile('round.snap', 7);
    const { header, kv } = decodeBackup(bytes);
    assert.equal(header.index, index);
    assert.equal(header.keys, 7);
    assert.equal(header.clusterId, 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa');
    const store = new KvStore();
    store.restore(kv, index);
    assert.equal(Buffer.from(store.get('key-3')?.value ?? []).toString(), 'value 3');
  });

  it('property: any changed, cut or extended file is refused', () => {
    const { bytes } = backupFile('prop.snap', 4);
    fc.assert(
      fc.property(fc.nat({ max: bytes.byteLength - 1 }), fc.integer({ min: 1, max: 255 }), (at, flip) => {
        const damaged = Uint8Array.from(bytes);
        damaged[at] = (damaged[at] ?? 0) ^ flip;
        let decoded;
        try {
          decoded = decodeBackup(damaged);
        } catch (err) {
          assert.ok(err instanceof BackupError, String(err));
          return;
        }
        // A change inside the JSON that leaves every checked field as it was (say, in createdAt) is harmless.
        assert.equal(decoded.header.sha256, decodeBackup(bytes).header.sha256);
        assert.deepEqual(decoded.kv, decodeBackup(bytes).kv);
      }),
    );
    assert.throws(() => decodeBackup(bytes.subarray(0, bytes.byteLength - 1)), /truncated or appended to/);
    assert.throws(() => decodeBackup(Buffer.concat([bytes, Buffer.from('x')])), /truncated or appended to/);
    assert.throws(() => decodeBackup(Buffer.from('hello\n')), /not JSON/);
  });
});

describe('raftlet snapshot restore', () => {
  it('makes a data directory a node opens at the snapshot index, with the given members and a new cluster id', async () => {
    const { file, index } = backupFile('r1.snap');
    const dir = path.join(scratch, 'data-a');
    const got = await run(['restore', file, '--data-dir', dir, '--node-id', 'node-1', '--peers', 'node-1=http://127.0.0.1:7070,node-2=http://127.0.0.1:7073']);
    assert.equal(got.code, 0, got.err);
    const id = /a new cluster, id ([0-9a-f]{32})/.exec(got.out)?.[1];
    assert.ok(id !== undefined, got.out);
    assert.equal(readClusterId(dir), id);
    assert.match(got.out, /restore the other members from the same file with --cluster-id/);
    const { store, restored } = await openStore(dir, { nodeId: 'node-1' });
    await store.close();
    assert.equal(restored.snapshot?.meta.index, index);
    assert.deepEqual(restored.snapshot?.meta.members.map((m) => [m.id, m.voter]), [['node-1', true], ['node-2', true]]);
    assert.deepEqual(restored.hardState, { term: 2, votedFor: null, commitIndex: index });
    assert.equal(readdirSync(scratch).filter((n) => n.includes('restoring')).length, 0, 'no temp directory left behind');
  });

  it('restoring the same file twice makes two different clusters; --cluster-id joins a member to the first', async () => {
    const { file } = backupFile('twice.snap');
    const a = await run(['restore', file, '--data-dir', path.join(scratch, 'twice-a'), '--node-id', 'n1', '--advertise-url', 'http://127.0.0.1:7070']);
    const b = await run(['restore', file, '--data-dir', path.join(scratch, 'twice-b'), '--node-id', 'n1', '--advertise-url', 'http://127.0.0.1:7070']);
    assert.equal(a.code, 0, a.err);
    assert.equal(b.code, 0, b.err);
    const idA = readClusterId(path.join(scratch, 'twice-a'));
    const idB = readClusterId(path.join(scratch, 'twice-b'));
    assert.ok(idA !== null && idB !== null && idA !== idB, `${idA} vs ${idB}`);
    const c = await run(['restore', file, '--data-dir', path.join(scratch, 'twice-c'), '--node-id', 'n2', '--peers', 'n1=http://127.0.0.1:7070,n2=http://127.0.0.1:7073', '--cluster-id', idA]);
    assert.equal(c.code, 0, c.err);
    assert.equal(readClusterId(path.join(scratch, 'twice-c')), idA);
  });

  it('refuses bad usage and existing data with exit 2, and a damaged file with exit 3, leaving nothing behind', async () => {
    const { file, bytes } = backupFile('bad.snap');
    const occupied = path.join(scratch, 'occupied');
    mkdirSync(occupied);
    writeFileSync(path.join(occupied, 'something'), 'x');
    const cases: [string[], number, RegExp][] = [
      [['restore', file, '--data-dir', occupied, '--node-id', 'n1', '--advertise-url', 'http://h:1'], 2, /is not empty/],
      [['restore', file, '--data-dir', path.join(scratch, 'x1'), '--node-id', 'n1'], 2, /--peers id=url/],
      [['restore', file, '--data-dir', path.join(scratch, 'x2'), '--advertise-url', 'http://h:1'], 2, /--node-id \(or RAFTLET_NODE_ID\) is required/],
      [['restore', file, '--data-dir', path.join(scratch, 'x3'), '--node-id', 'n9', '--peers', 'n1=http://h:1'], 2, /do not include this node, n9/],
      [['restore', file, '--data-dir', path.join(scratch, 'x4'), '--node-id', 'N_1', '--advertise-url', 'http://h:1'], 2, /--node-id must be a DNS-1123 label/],
      [['restore', file, '--data-dir', path.join(scratch, 'x5'), '--node-id', 'n1', '--advertise-url', 'http://h:1', '--cluster-id', 'BAD'], 2, /--cluster-id must be/],
      [['restore', path.join(scratch, 'missing.snap'), '--node-id', 'n1', '--advertise-url', 'http://h:1'], 2, /cannot read/],
      [['restore'], 2, /FILE is missing/],
      [['frobnicate', file], 2, /unknown snapshot command/],
      [['save', 'x.snap', '--api', 'http://a:1', '--peer', 'http://b:2'], 2, /--api or --peer, not both/],
      [['save', 'x.snap', '--peer', 'http://b:2'], 2, /needs the cluster token/],
    ];
    for (const [args, code, message] of cases) {
      const got = await run(args);
      assert.equal(got.code, code, `${args.join(' ')}: ${got.err}`);
      assert.match(got.err, message, args.join(' '));
    }
    const damaged = Uint8Array.from(bytes);
    damaged[damaged.byteLength - 3] ^= 0xff;
    writeFileSync(path.join(scratch, 'damaged.snap'), damaged);
    const got = await run(['restore', 'damaged.snap', '--data-dir', path.join(scratch, 'x6'), '--node-id', 'n1', '--advertise-url', 'http://h:1']);
    assert.equal(got.code, 3);
    assert.match(got.err, /SHA-256 mismatch/);
    for (const n of ['x1', 'x2', 'x3', 'x4', 'x5', 'x6']) assert.equal(existsSync(path.join(scratch, n)), false, `${n} was not created`);
    assert.deepEqual(readdirSync(occupied), ['something']);
    assert.equal((await run(['inspect', 'damaged.snap'])).code, 3);
  });

  it('inspect prints the header of a good file', async () => {
    const { file } = backupFile('inspect.snap', 3);
    const got = await run(['inspect', file]);
    assert.equal(got.code, 0, got.err);
    assert.match(got.out, /index 5, term 2, 3 keys, \d+ bytes, sha256 [0-9a-f]{64}, from old-1 of cluster a{32}; checksum ok/);
    assert.equal(readFileSync(file).subarray(0, 1).toString(), '{');
  });
});
