// The server-side member name check (issue 14, RAFTLET_PEER_TLS_VERIFY_NAME): a 3-node TLS cluster
// whose members listen on 127.0.0.2/3/4 with certificates naming only their own address. A peer
// with a valid certificate of the cluster's CA that names another member is refused (403) when it
// claims to be a member it is not, when it names no member, and when it sends Raft messages from a
// member other than the one it named; none of it changes the cluster. The right certificate works:
// the cluster itself elects and replicates with the check on, both ways. In-process servers cover
// the rolling-upgrade rules: without the check, an opener that names no member (an older version)
// is served, and one that names itself is still held to its messages' `from`.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Message } from '../../src/raft/types.ts';
import { encodeMessages } from '../../src/transport/codec.ts';
import { PROTOCOL_HEADER, PROTOCOL_VERSION, ROUTES, SENDER_HEADER, STREAM_CONTENT_TYPE } from '../../src/transport/protocol.ts';
import { startPeerServer, type PeerRefusal } from '../../src/transport/server.ts';
import { encodeFrame, FRAME, FrameReader } from '../../src/transport/stream-frames.ts';
import { staticTls } from '../../src/transport/tls.ts';
import { createThrowawayCa, type ThrowawayCa } from '../../src/transport/throwaway-ca.ts';
import { clusterHooks, waitUntil, type Cluster } from '../support/cluster.ts';
import { recorder } from './helpers.ts';

interface Credentials {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
}

interface Target {
  readonly host: string;
  readonly port: number;
  readonly token: string;
  /** null: plain http. */
  readonly tls: Credentials | null;
}

const addressOf = (node: number): string => `127.0.0.${node + 1}`;

function heartbeat(from: string, to: string, term: number): Message {
  return { kind: 'heartbeat', from, to, term, commit: 0, seq: 1 };
}

function open(target: Target, path: string, headers: Record<string, string | number>): ReturnType<typeof httpRequest> {
  const options = {
    host: target.host,
    port: target.port,
    method: 'POST',
    path,
    headers: { authorization: `Bearer ${target.token}`, [PROTOCOL_HEADER]: String(PROTOCOL_VERSION), ...headers },
    timeout: 10_000,
  };
  return target.tls === null
    ? httpRequest(options)
    : httpsRequest({ ...options, ...target.tls, checkServerIdentity: () => undefined });
}

function errorCode(text: string): string {
  try {
    return (JSON.parse(text) as { error: { code: string } }).error.code;
  } catch {
    return `unreadable: ${text.slice(0, 80)}`;
  }
}

/**
 * Opens a stream naming `sender` (none: no header), sends one messages frame and a ping. Resolves
 * with "HTTP <status> <code>" when the opening is refused, "accepted" when the pong comes back (the
 * messages frame before it was handed to the node), "refused <code>" for an error frame instead.
 */
function streamMessages(target: Target, sender: string | null, messages: readonly Message[]): Promise<string> {
  const req = open(target, ROUTES.stream, { 'content-type': STREAM_CONTENT_TYPE, ...(sender === null ? {} : { [SENDER_HEADER]: sender }) });
  return new Promise((resolve) => {
    const done = (outcome: string): void => {
      resolve(outcome);
      req.destroy();
    };
    req.on('timeout', () => done('timeout'));
    req.on('error', (error) => done(`error ${(error as NodeJS.ErrnoException).code ?? error.message}`));
    req.on('response', (res: IncomingMessage) => {
      if (res.statusCode !== 200) {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => done(`HTTP ${res.statusCode} ${errorCode(Buffer.concat(chunks).toString('utf8'))}`));
        return;
      }
      const reader = new FrameReader(() => 64 * 1024);
      res.on('data', (chunk: Buffer) => {
        for (const frame of reader.push(chunk)) {
          if (frame.type === FRAME.pong) done('accepted');
          else if (frame.type === FRAME.error) done(`refused ${errorCode(frame.payload.toString('utf8'))}`);
        }
      });
      res.on('close', () => done('ended without an answer'));
    });
    req.flushHeaders();
    req.write(Buffer.concat([encodeFrame(FRAME.messages, encodeMessages(messages)), encodeFrame(FRAME.ping, null)]));
  });
}

/** POST /raft/v1/messages naming `sender`; resolves with "HTTP <status>[ <code>]". */
function postMessages(target: Target, sender: string | null, messages: readonly Message[]): Promise<string> {
  const body = encodeMessages(messages);
  const req = open(target, ROUTES.messages, {
    'content-type': 'application/octet-stream',
    'content-length': body.byteLength,
    ...(sender === null ? {} : { [SENDER_HEADER]: sender }),
  });
  return new Promise((resolve) => {
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (error) => resolve(`error ${(error as NodeJS.ErrnoException).code ?? error.message}`));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve(`HTTP ${res.statusCode}${text === '' ? '' : ` ${errorCode(text)}`}`);
      });
    });
    req.end(body);
  });
}

describe('peer TLS: the server checks that a client certificate names the member it speaks for', () => {
  const clusters = clusterHooks();
  let dir: string;
  let ca: ThrowawayCa;
  let cluster: Cluster;
  const credentials = (id: string): Credentials => ({
    ca: readFileSync(ca.caFile),
    cert: readFileSync(path.join(ca.dir, `${id}.pem`)),
    key: readFileSync(path.join(ca.dir, `${id}.key`)),
  });
  const target = (node: number, as: string): Target => ({ host: addressOf(node), port: cluster.spec(node).peerPort, token: cluster.token, tls: credentials(as) });

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'raftlet-tls-names-'));
    ca = createThrowawayCa(path.join(dir, 'ca'), 'raftlet-names-ca');
    // Each member's certificate names its own address only: no localhost, no 127.0.0.1, no id.
    for (const node of [1, 2, 3]) ca.issue(`node-${node}`, [addressOf(node)], { only: true });
    cluster = await clusters.start({
      nodes: 3,
      name: 'tls-names',
      peerScheme: 'https',
      peerHost: addressOf,
      env: { RAFTLET_PEER_TLS_VERIFY_NAME: '1', RAFTLET_PEER_TLS_CA_FILE: ca.caFile },
      nodeEnv: (node) => ({
        RAFTLET_PEER_TLS_CERT_FILE: path.join(ca.dir, `node-${node}.pem`),
        RAFTLET_PEER_TLS_KEY_FILE: path.join(ca.dir, `node-${node}.key`),
      }),
    });
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('elects and replicates with the check on both ways', async () => {
    const leader = await cluster.waitForLeader();
    const follower = cluster.ordinals.find((n) => n !== leader.node) as number;
    const { index } = await cluster.putOk(follower, 'named', 'yes');
    for (const node of cluster.ordinals) await cluster.waitForApplied(node, index);
    assert.equal(await cluster.getText(3, 'named'), 'yes');
    for (const node of cluster.ordinals) assert.doesNotMatch(cluster.logText(node), /forbidden/, `node-${node} refused a genuine member`);
  });

  it('refuses a valid certificate that names another member, and changes nothing', async () => {
    const leader = await cluster.waitForLeader();
    const before = await cluster.stateText();
    const victim = cluster.ordinals.find((n) => n !== leader.node) as number;
    // The impostor holds a genuine certificate of the CA: the one naming `holder`'s address.
    const holder = cluster.ordinals.find((n) => n !== leader.node && n !== victim) as number;
    const as = `node-${holder}`;
    const claim = `node-${victim}`;
    const bump = (to: number): Message[] => [heartbeat(claim, `node-${to}`, leader.term + 1000)];
    for (const node of cluster.ordinals.filter((n) => n !== holder)) {
      assert.equal(await streamMessages(target(node, as), claim, bump(node)), 'HTTP 403 forbidden', `a stream claiming ${claim} with ${as}'s certificate reached node-${node}`);
      assert.equal(await postMessages(target(node, as), claim, bump(node)), 'HTTP 403 forbidden', `a request claiming ${claim} with ${as}'s certificate reached node-${node}`);
      // Naming no member at all: refused with the check on (an older member must be upgraded first).
      assert.equal(await streamMessages(target(node, as), null, bump(node)), 'HTTP 403 forbidden');
      assert.equal(await postMessages(target(node, as), null, bump(node)), 'HTTP 403 forbidden');
      // Naming itself truthfully but carrying another member's messages: the stream ends.
      assert.equal(await streamMessages(target(node, as), as, bump(node)), 'refused forbidden', `${as} sent messages from ${claim} on its own stream to node-${node}`);
      assert.equal(await postMessages(target(node, as), as, bump(node)), 'HTTP 403 forbidden');
    }
    assert.equal(await cluster.stateText(), before, 'a refused impostor changed the cluster');
    const after = await cluster.waitForLeader();
    assert.equal(after.term, leader.term);
    // The refusals were logged, naming what is wrong (and rate-limited like every peer refusal).
    await waitUntil('the leader to log the refusal', () => /does not name member/.test(cluster.logText(leader.node)));
    assert.match(cluster.logText(leader.node), new RegExp(`the client certificate does not name member \\\\"${claim}\\\\"'s host ${addressOf(victim).replaceAll('.', '\\.')}`));
  });

  it('serves the member whose certificate names it (a stale-term message changes nothing)', async () => {
    const leader = await cluster.waitForLeader();
    const before = await cluster.stateText();
    const holder = cluster.ordinals.find((n) => n !== leader.node) as number;
    const as = `node-${holder}`;
    const stale = [heartbeat(as, leader.id, 0)];
    assert.equal(await streamMessages(target(leader.node, as), as, stale), 'accepted');
    assert.equal(await postMessages(target(leader.node, as), as, stale), 'HTTP 204');
    assert.equal(await cluster.stateText(), before);
  });
});

describe('peer sender id without the name check (rolling upgrades)', () => {
  it('serves an opener that names no member, and holds one that names itself to its messages', async (t) => {
    const r = recorder();
    const refusals: PeerRefusal[] = [];
    const server = await startPeerServer('127.0.0.1', 0, { token: 'test-token', nodeId: 'b', handlers: r.handlers, onRefused: (x) => refusals.push(x) });
    t.after(() => server.close());
    const plain: Target = { host: '127.0.0.1', port: server.port, token: 'test-token', tls: null };
    // An older member: no Raftlet-From header; its messages are served as before.
    assert.equal(await streamMessages(plain, null, [heartbeat('a', 'b', 1)]), 'accepted');
    assert.equal(await postMessages(plain, null, [heartbeat('a', 'b', 1)]), 'HTTP 204');
    const received = (): Message[] => r.batches.flat();
    const served = received().length;
    assert.equal(served, 2);
    // A member that names itself is held to it even without certificates.
    assert.equal(await streamMessages(plain, 'c', [heartbeat('a', 'b', 7)]), 'refused forbidden');
    assert.equal(await postMessages(plain, 'c', [heartbeat('a', 'b', 7)]), 'HTTP 403 forbidden');
    assert.equal(await streamMessages(plain, 'a', [heartbeat('a', 'b', 2)]), 'accepted');
    assert.deepEqual(received().slice(served).map((m) => [m.from, m.term]), [['a', 2]], 'a refused message reached the node');
    assert.ok(refusals.some((x) => x.code === 'forbidden' && /arrived on a stream opened by "c"/.test(x.message)), JSON.stringify(refusals));
  });

  it('a server told to check senders\' certificates needs to know the members\' URLs', async () => {
    const tls = staticTls({ ca: Buffer.from('unused'), cert: Buffer.from('unused'), key: Buffer.from('unused') }, true);
    await assert.rejects(startPeerServer('127.0.0.1', 0, { token: 'test-token', handlers: recorder().handlers, tls }), /needs memberUrl/);
  });
});
