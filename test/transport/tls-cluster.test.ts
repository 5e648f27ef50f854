// Peer mutual TLS with real processes (issue 14): a 3-node cluster whose peers talk https with
// certificates from one CA elects and replicates; a peer with a certificate from another CA, with
// no certificate, or speaking plain HTTP is refused and changes nothing (term, log); certificates
// rewritten on disk are picked up without a restart and without an election.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { encodeMessages } from '../../src/transport/codec.ts';
import { PROTOCOL_HEADER, PROTOCOL_VERSION, ROUTES } from '../../src/transport/protocol.ts';
import { createThrowawayCa, type ThrowawayCa } from '../../src/transport/throwaway-ca.ts';
import { clusterHooks, waitUntil, type Cluster } from '../support/cluster.ts';

interface Attempt {
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly ca: Buffer;
  readonly plain?: boolean;
}

/** POSTs a heartbeat with a far-future term (accepted, it would move the term) to the node's peer
 * port; resolves with the HTTP status, or the error that ended the attempt. */
function intrude(cluster: Cluster, node: number, attempt: Attempt, term: number): Promise<string> {
  const body = encodeMessages([{ kind: 'heartbeat', from: 'intruder', to: cluster.spec(node).id, term, commit: 0, seq: 1 }]);
  const options = {
    host: '127.0.0.1',
    port: cluster.spec(node).peerPort,
    method: 'POST',
    path: ROUTES.messages,
    headers: { authorization: `Bearer ${cluster.token}`, [PROTOCOL_HEADER]: String(PROTOCOL_VERSION), 'content-type': 'application/octet-stream', 'content-length': body.byteLength },
    timeout: 5000,
  };
  return new Promise((resolve) => {
    const req = attempt.plain === true
      ? httpRequest(options)
      : httpsRequest({ ...options, ca: attempt.ca, cert: attempt.cert, key: attempt.key, checkServerIdentity: () => undefined });
    req.on('response', (res) => {
      res.resume();
      resolve(`HTTP ${res.statusCode}`);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (error) => resolve(`error ${(error as NodeJS.ErrnoException).code ?? error.message}`));
    req.end(body);
  });
}

function serverCertificate(cluster: Cluster, node: number, ca: Buffer, cert: Buffer, key: Buffer): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: cluster.spec(node).peerPort, ca, cert, key, checkServerIdentity: () => undefined }, () => {
      const certificate = socket.getPeerCertificate();
      socket.destroy();
      resolve(certificate);
    });
    socket.on('error', reject);
  });
}

describe('peer TLS cluster', () => {
  const clusters = clusterHooks();
  let dir: string;
  let ca: ThrowawayCa;
  let other: ThrowawayCa;
  let cluster: Cluster;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'raftlet-tls-'));
    ca = createThrowawayCa(path.join(dir, 'ca'), 'raftlet-test-ca');
    other = createThrowawayCa(path.join(dir, 'other'), 'some-other-ca');
    other.issue('node-9');
    for (const id of ['node-1', 'node-2', 'node-3', 'visitor']) ca.issue(id);
    cluster = await clusters.start({
      nodes: 3,
      name: 'tls',
      peerScheme: 'https',
      nodeEnv: (node) => ({
        RAFTLET_PEER_TLS_CERT_FILE: path.join(ca.dir, `node-${node}.pem`),
        RAFTLET_PEER_TLS_KEY_FILE: path.join(ca.dir, `node-${node}.key`),
        RAFTLET_PEER_TLS_CA_FILE: ca.caFile,
      }),
    });
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('elects a leader and replicates over mutual TLS', async () => {
    const leader = await cluster.waitForLeader();
    const follower = cluster.ordinals.find((n) => n !== leader.node) as number;
    const { index } = await cluster.putOk(follower, 'over-tls', 'yes');
    for (const node of cluster.ordinals) await cluster.waitForApplied(node, index);
    assert.equal(await cluster.getText(3, 'over-tls'), 'yes');
    assert.match(cluster.logText(1), /"advertise":"https:\/\/127\.0\.0\.1:/);
  });

  it('refuses a certificate from another CA, no certificate, and plain HTTP, and changes nothing', async () => {
    const leader = await cluster.waitForLeader();
    const before = await cluster.stateText();
    const caPem = readFileSync(ca.caFile);
    const attempts: [string, Attempt][] = [
      ['a certificate from another CA', { ca: caPem, cert: readFileSync(path.join(other.dir, 'node-9.pem')), key: readFileSync(path.join(other.dir, 'node-9.key')) }],
      ['no client certificate', { ca: caPem }],
      ['plain HTTP', { ca: caPem, plain: true }],
    ];
    for (const [what, attempt] of attempts) {
      for (const node of cluster.ordinals) {
        const outcome = await intrude(cluster, node, attempt, leader.term + 1000);
        assert.doesNotMatch(outcome, /^HTTP 2/, `${what} on node-${node} was accepted: ${outcome}`);
        assert.match(outcome, /^error /, `${what} on node-${node} got an HTTP answer: ${outcome}`);
      }
    }
    // Control: the same request with a certificate of the right CA does get through the TLS layer.
    const visitor = await intrude(cluster, leader.node, { ca: caPem, cert: readFileSync(path.join(ca.dir, 'visitor.pem')), key: readFileSync(path.join(ca.dir, 'visitor.key')) }, 0);
    assert.match(visitor, /^HTTP /, `a certificate from the cluster's CA did not reach HTTP: ${visitor}`);
    assert.equal(await cluster.stateText(), before, 'a refused peer changed the cluster');
  });

  it('picks up rewritten certificates without a restart and without an election', async () => {
    const leader = await cluster.waitForLeader();
    const caPem = readFileSync(ca.caFile);
    const visitorCert = readFileSync(path.join(ca.dir, 'visitor.pem'));
    const visitorKey = readFileSync(path.join(ca.dir, 'visitor.key'));
    const serials = new Map<number, string>();
    for (const node of cluster.ordinals) serials.set(node, (await serverCertificate(cluster, node, caPem, visitorCert, visitorKey)).serialNumber);
    const rereads = (node: number): number => cluster.logText(node).split('peer TLS certificates re-read').length - 1;
    for (const node of cluster.ordinals) {
      const before = rereads(node);
      ca.issue(`node-${node}`);
      await waitUntil(`node-${node} to re-read its certificate`, () => rereads(node) > before, { timeoutMs: 15_000 });
    }
    for (const node of cluster.ordinals) {
      const now = (await serverCertificate(cluster, node, caPem, visitorCert, visitorKey)).serialNumber;
      assert.notEqual(now, serials.get(node), `node-${node} still serves its old certificate`);
    }
    const { index } = await cluster.putOk(leader.node, 'after-rotation', 'yes');
    for (const node of cluster.ordinals) await cluster.waitForApplied(node, index);
    const after = await cluster.waitForLeader();
    assert.equal(after.term, leader.term, 'the certificate rotation caused an election');
    assert.equal(after.id, leader.id);
  });
});
