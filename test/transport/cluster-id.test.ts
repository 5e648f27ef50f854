// Cluster identity (issue 11): the header check of the peer port, and the id file beside the data.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { CLUSTER_ID_FILE, ClusterIdFileError, FileClusterIdentity, newClusterId, readClusterId } from '../../src/run/cluster-id.ts';
import { PeerClient } from '../../src/transport/client.ts';
import { checkCluster, CLUSTER_HEADER, clusterHeader, type ClusterIdentity } from '../../src/transport/cluster-id.ts';
import { startPeerServer } from '../../src/transport/server.ts';
import { heartbeat, recorder, TOKEN, waitFor } from './helpers.ts';

class MemoryIdentity implements ClusterIdentity {
  adopted: string[] = [];
  id: string | null;
  failAdopt = false;
  constructor(id: string | null) {
    this.id = id;
  }
  current(): string | null {
    return this.id;
  }
  adopt(id: string): void {
    if (this.failAdopt) throw new Error('disk full');
    this.adopted.push(id);
    this.id = id;
  }
}

const A = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const B = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';

describe('checkCluster', () => {
  it('lets the same cluster through and refuses another one, changing nothing', () => {
    const mine = new MemoryIdentity(A);
    assert.deepEqual(checkCluster(mine, A, true), { ok: true });
    const refused = checkCluster(mine, B, true);
    assert.equal(refused.ok, false);
    assert.equal(refused.ok ? '' : refused.code, 'misdirected');
    assert.match(refused.ok ? '' : refused.message, new RegExp(`this node belongs to cluster ${A}, the request comes from a member of cluster ${B}`));
    assert.equal(mine.current(), A);
    assert.deepEqual(mine.adopted, []);
  });

  it('lets requests without the header through (pristine senders, data older than ids)', () => {
    assert.deepEqual(checkCluster(new MemoryIdentity(A), undefined, true), { ok: true });
    assert.deepEqual(checkCluster(undefined, B, true), { ok: true });
  });

  it('a node without an id adopts the first one that comes with Raft traffic, and only with Raft traffic', () => {
    const fresh = new MemoryIdentity(null);
    assert.deepEqual(checkCluster(fresh, A, false), { ok: true });
    assert.equal(fresh.current(), null, 'a status probe or forwarded call does not make a node adopt');
    assert.deepEqual(checkCluster(fresh, A, true), { ok: true });
    assert.deepEqual(fresh.adopted, [A]);
    assert.equal(checkCluster(fresh, B, true).ok, false, 'and from then on refuses other clusters');
  });

  it('refuses a malformed header, and a request it cannot record the id of', () => {
    const fresh = new MemoryIdentity(null);
    for (const bad of ['', 'UPPER-case-id-000', 'short', 'x'.repeat(65), [A, A]]) {
      const result = checkCluster(fresh, bad, true);
      assert.equal(result.ok ? '' : result.code, 'bad_request', JSON.stringify(bad));
    }
    fresh.failAdopt = true;
    const result = checkCluster(fresh, A, true);
    assert.equal(result.ok ? '' : result.code, 'internal');
    assert.equal(fresh.current(), null);
  });

  it('sends the header only once there is an id', () => {
    assert.deepEqual(clusterHeader(new MemoryIdentity(null)), {});
    assert.deepEqual(clusterHeader(new MemoryIdentity(A)), { [CLUSTER_HEADER]: A });
    assert.deepEqual(clusterHeader(undefined), {});
  });
});

describe('the cluster id file', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'raftlet-cluster-id-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('is made once, kept, read back, and survives as a whole file', () => {
    const sub = path.join(dir, 'made');
    rmSync(sub, { recursive: true, force: true });
    mkdirSync(sub);
    assert.equal(readClusterId(sub), null);
    const identity = new FileClusterIdentity(sub, null);
    const id = identity.create();
    assert.equal(identity.create(), id, 'a node that has an id keeps it');
    assert.equal(readClusterId(sub), id);
    assert.equal(readFileSync(path.join(sub, CLUSTER_ID_FILE), 'utf8'), `${id}\n`);
    assert.deepEqual(readdirSync(sub), [CLUSTER_ID_FILE], 'no temp file left behind');
    assert.throws(() => identity.adopt(B), /already belongs to cluster/);
  });

  it('new ids differ (128 random bits each)', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => newClusterId()));
    assert.equal(ids.size, 1000);
  });

  it('a damaged file is an error, not a missing id', () => {
    writeFileSync(path.join(dir, CLUSTER_ID_FILE), 'not an id!\n');
    assert.throws(() => readClusterId(dir), ClusterIdFileError);
  });

  it('adopting records the id and tells the runtime', () => {
    const sub = path.join(dir, 'adopt');
    mkdirSync(sub);
    const told: string[] = [];
    const identity = new FileClusterIdentity(sub, null, (id) => told.push(id));
    identity.adopt(A);
    identity.adopt(A);
    assert.deepEqual(told, [A]);
    assert.equal(readClusterId(sub), A);
  });
});

describe('the cluster id over a stream', () => {
  it('a stream opened before this node had an id is reopened once it has one, so the peer adopts it', async () => {
    const theirs = new MemoryIdentity(null);
    const r = recorder();
    const server = await startPeerServer('127.0.0.1', 0, { token: TOKEN, nodeId: 'b', handlers: r.handlers, identity: theirs });
    const mine = new MemoryIdentity(null);
    const client = new PeerClient({ token: TOKEN, random: () => 0.5, identity: mine });
    try {
      client.setPeers({ b: server.url });
      // Opened while bootstrapping: no id to announce yet.
      client.send('b', [heartbeat(1)]);
      await waitFor(() => r.batches.length >= 1, 'the first message over the stream');
      assert.equal(theirs.current(), null);
      mine.id = A; // the bootstrap made the cluster's id
      client.send('b', [heartbeat(2)]);
      await waitFor(() => theirs.current() === A, 'the peer to adopt the id from the reopened stream');
      await waitFor(() => r.batches.flat().length >= 2, 'the second message delivered too');
      assert.deepEqual(theirs.adopted, [A]);
    } finally {
      await client.close();
      await server.close();
    }
  });
});
