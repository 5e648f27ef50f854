// Backup and restore (issue 11), with real processes: `raftlet snapshot save` from a running
// cluster while a writer runs (through the client API and through the peer port), then `raftlet
// snapshot restore` into fresh data directories and a start of the new cluster on the same
// addresses: every key written up to the snapshot's index is there with its value and modIndex,
// nothing after it is; the new cluster has a new id, and a member of the old cluster that comes
// back with its old data is refused by it (and changes nothing), while the new cluster goes on.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { CLUSTER_ID_FILE } from '../../src/run/cluster-id.ts';
import { baseEnv, clusterHooks, runRaftlet, waitUntil, type Cluster } from '../support/cluster.ts';

interface Acked {
  readonly value: string;
  readonly index: number;
  /** Date.now() when the write was acknowledged. */
  readonly at: number;
}

class Writer {
  readonly acked = new Map<string, Acked>();
  private running = true;
  private readonly done: Promise<void>;

  constructor(c: Cluster) {
    this.done = (async () => {
      for (let n = 0; this.running; n++) {
        const node = c.ordinals[n % c.ordinals.length] ?? 1;
        const key = `k-${String(n).padStart(6, '0')}`;
        const value = `v${n}-${'x'.repeat(n % 50)}`;
        try {
          const answer = await c.put(node, key, value, { timeoutMs: 5_000 });
          if (answer.status === 200) this.acked.set(key, { value, index: answer.json<{ index: number }>().index, at: Date.now() });
        } catch {
          // not acknowledged: its outcome does not matter here
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

interface SavedHeader {
  readonly index: number;
  readonly term: number;
  readonly keys: number;
  readonly sha256: string;
  readonly clusterId: string | null;
}

function header(file: string): SavedHeader {
  const bytes = readFileSync(file);
  return JSON.parse(bytes.subarray(0, bytes.indexOf(0x0a)).toString('utf8')) as SavedHeader;
}

const clusterIdOf = (c: Cluster, node: number): string | null => {
  const file = path.join(c.spec(node).dataDir, CLUSTER_ID_FILE);
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : null;
};

describe('raftlet snapshot save / restore with real processes', () => {
  const clusters = clusterHooks();

  it('saves under writes, restores a new cluster with every key up to the snapshot index, and refuses a member of the old cluster', async (t) => {
    const c = await clusters.start({ nodes: 3, name: 'backup', env: { RAFTLET_SNAPSHOT_ENTRIES: '200' } });
    await c.waitForLeader();
    const oldId = await waitUntil('every member to hold the old cluster id', () => {
      const ids = c.ordinals.map((n) => clusterIdOf(c, n));
      if (ids[0] === null || !ids.every((id) => id === ids[0])) throw new Error(`ids: ${ids.join(', ')}`);
      return ids[0];
    });

    const writer = new Writer(c);
    let viaApi: SavedHeader;
    let viaPeer: SavedHeader;
    let startedAt: number;
    const apiFile = path.join(c.dir, 'via-api.snap');
    const peerFile = path.join(c.dir, 'via-peer.snap');
    try {
      await waitUntil('the writer to get going', () => writer.acked.size >= 300);
      startedAt = Date.now();
      const saved = await runRaftlet(['snapshot', 'save', apiFile, '--api', c.spec(2).apiUrl]);
      assert.equal(saved.code, 0, saved.stderr);
      assert.match(saved.stdout, /^saved .*via-api\.snap: index \d+, term \d+, \d+ keys, \d+ bytes, sha256 [0-9a-f]{64}, from node-2 of cluster [0-9a-f]{32}\n$/);
      viaApi = header(apiFile);
      const peer = await runRaftlet(['snapshot', 'save', peerFile, '--peer', c.spec(3).peerUrl], { env: { ...baseEnv(), RAFTLET_CLUSTER_TOKEN: c.token } });
      assert.equal(peer.code, 0, peer.stderr);
      viaPeer = header(peerFile);
      const refused = await runRaftlet(['snapshot', 'save', path.join(c.dir, 'no.snap'), '--peer', c.spec(3).peerUrl], {
        env: { ...baseEnv(), RAFTLET_CLUSTER_TOKEN: 'a-wrong-token-of-32-characters-xx' },
      });
      assert.equal(refused.code, 1, 'the peer port wants the cluster token');
      assert.match(refused.stderr, /answered 401/);
      assert.equal(existsSync(path.join(c.dir, 'no.snap')), false);
      // More writes after the snapshots: none of them may appear in the restored cluster.
      const after = writer.acked.size;
      await waitUntil('more writes after the snapshots', () => writer.acked.size >= after + 100);
    } finally {
      await writer.stop();
    }
    assert.equal(viaApi.clusterId, oldId);
    assert.ok(viaPeer.index >= viaApi.index, 'the later snapshot is not older');
    const inSnapshot = [...writer.acked].filter(([, w]) => w.index <= viaApi.index);
    const notInSnapshot = [...writer.acked].filter(([, w]) => w.index > viaApi.index);
    assert.ok(inSnapshot.length >= 300 && notInSnapshot.length >= 100, `${inSnapshot.length} writes before, ${notInSnapshot.length} after`);
    // Linearizable: every write acknowledged before the save started is in it.
    for (const [key, w] of writer.acked) if (w.at < startedAt) assert.ok(w.index <= viaApi.index, `${key} (index ${w.index}) acknowledged before the save`);
    const inspected = await runRaftlet(['snapshot', 'inspect', apiFile]);
    assert.equal(inspected.code, 0, inspected.stderr);
    assert.match(inspected.stdout, /checksum ok/);

    // The old cluster stops; its data directories are kept aside.
    for (const n of c.ordinals) await c.kill9(n);
    const oldDirs = c.ordinals.map((n) => {
      const old = `${c.spec(n).dataDir}.old`;
      renameSync(c.spec(n).dataDir, old);
      return old;
    });

    // node-1 and node-2 restored from the file with one shared new cluster id; node-3 starts empty
    // and is caught up by the new leader.
    const peers = c.ordinals.map((n) => `${c.spec(n).id}=${c.spec(n).peerUrl}`).join(',');
    const first = await runRaftlet(['snapshot', 'restore', apiFile, '--data-dir', c.spec(1).dataDir, '--node-id', 'node-1', '--peers', peers]);
    assert.equal(first.code, 0, first.stderr);
    const newId = /a new cluster, id ([0-9a-f]{32})/.exec(first.stdout)?.[1];
    assert.ok(newId !== undefined, first.stdout);
    assert.notEqual(newId, oldId);
    const second = await runRaftlet(['snapshot', 'restore', apiFile, '--data-dir', c.spec(2).dataDir, '--node-id', 'node-2', '--peers', peers, '--cluster-id', newId]);
    assert.equal(second.code, 0, second.stderr);
    const again = await runRaftlet(['snapshot', 'restore', apiFile, '--data-dir', c.spec(1).dataDir, '--node-id', 'node-1', '--peers', peers]);
    assert.equal(again.code, 2, 'never over existing data');
    assert.match(again.stderr, /is not empty/);

    for (const n of c.ordinals) await c.restart(n);
    const leader = await c.waitForLeader();
    t.diagnostic(`restored: index ${viaApi.index}, term ${viaApi.term}, ${viaApi.keys} keys; new leader ${leader.id} in term ${leader.term}`);
    for (const n of c.ordinals) {
      await c.waitForApplied(n, viaApi.index);
      const got = new Map<string, { value: string; modIndex: number }>();
      // Keys are k-NNNNNN: a prefix per thousand keeps every list under its limit of 1000.
      for (const prefix of new Set([...writer.acked.keys()].map((k) => k.slice(0, 5)))) {
        for (const [k, v] of await c.list(n, prefix, { limit: 1000 })) got.set(k, v);
      }
      for (const [key, w] of inSnapshot) {
        assert.deepEqual(got.get(key), { value: w.value, modIndex: w.index }, `${key} on node-${n}`);
      }
      for (const [key] of notInSnapshot) assert.equal(got.has(key), false, `${key} was written after the snapshot`);
      assert.equal(clusterIdOf(c, n), newId, `node-${n} holds the new cluster id`);
    }
    const written = await c.putOk(leader.node, 'after-restore', 'yes');
    assert.ok(written.index > viaApi.index, 'new writes get indices after the snapshot');

    // A member of the old cluster comes back with its old data in node-3's place.
    const before = await c.status(leader.node);
    await c.kill9(3);
    const restoredDir = `${c.spec(3).dataDir}.new`;
    renameSync(c.spec(3).dataDir, restoredDir);
    renameSync(oldDirs[2] ?? '', c.spec(3).dataDir);
    await c.restart(3);
    await waitUntil('the new cluster to refuse the old member', () => {
      const refusals = [1, 2].map((n) => c.logText(n).split('\n').filter((l) => l.includes('refused a peer request') && l.includes(`comes from a member of cluster ${oldId}`)).length);
      if (refusals.every((r) => r === 0)) throw new Error('no refusal logged yet');
      return true;
    });
    const probe = await c.peerRequest(1, 'GET', '/raft/v1/status', {
      headers: { authorization: `Bearer ${c.token}`, 'raftlet-protocol': '1', 'raftlet-cluster': oldId },
    });
    assert.equal(probe.status, 421);
    assert.match(probe.text, new RegExp(`this node belongs to cluster ${newId}, the request comes from a member of cluster ${oldId}`));
    // The old member changes nothing: same members, the writes go on, and it never leads the new cluster.
    await delay(1500);
    for (const n of [1, 2]) {
      const s = await c.status(n);
      assert.deepEqual(s.members.map((m) => m.id), before.members.map((m) => m.id));
      assert.notEqual(s.leader, 'node-3');
    }
    await c.putOk(1, 'while-old-member-is-back', 'fine');
    assert.equal(clusterIdOf(c, 3), oldId, 'the old member keeps its own id');

    // The restored node-3 returns and catches up.
    await c.kill9(3);
    renameSync(c.spec(3).dataDir, oldDirs[2] ?? '');
    renameSync(restoredDir, c.spec(3).dataDir);
    await c.restart(3);
    const last = await c.status(1);
    await c.waitForApplied(3, last.commitIndex);
    assert.equal(await c.getText(3, 'while-old-member-is-back'), 'fine');
  });
});
