// The node the fuzz tests aim at: one real `raftlet run` process on loopback (a one-member
// cluster, so it leads at once), its observable state, and raw HTTP for what a well-behaved client
// library refuses to send (wrong lengths, bodies cut short).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { createThrowawayCa } from '../../src/transport/throwaway-ca.ts';
import { startCluster, waitUntil, type Cluster, type ClusterOptions } from '../support/cluster.ts';

/** RAFTLET_FUZZ_TLS=1: the target node serves its peer port with mutual TLS, and every fuzz request
 * comes with a certificate of its CA (so the fuzzing reaches HTTP, as a compromised peer's would). */
const FUZZ_TLS = process.env.RAFTLET_FUZZ_TLS === '1';
let clientTls: { ca: Buffer; cert: Buffer; key: Buffer } | null = null;

function tlsOptions(): Partial<ClusterOptions> {
  if (!FUZZ_TLS) return {};
  const ca = createThrowawayCa(mkdtempSync(path.join(tmpdir(), 'raftlet-fuzz-tls-')), 'raftlet-fuzz-ca');
  const node = ca.issue('node-1');
  const client = ca.issue('fuzzer');
  clientTls = { ca: readFileSync(ca.caFile), cert: readFileSync(client.certFile), key: readFileSync(client.keyFile) };
  return {
    peerScheme: 'https',
    peerClientTls: clientTls,
    nodeEnv: () => ({ RAFTLET_PEER_TLS_CERT_FILE: node.certFile, RAFTLET_PEER_TLS_KEY_FILE: node.keyFile, RAFTLET_PEER_TLS_CA_FILE: node.caFile }),
  };
}

export interface NodeState {
  readonly term: number;
  readonly role: string;
  readonly leader: string | null;
  readonly commitIndex: number;
  readonly lastLogIndex: number;
  /** Every key with its value and modIndex. */
  readonly data: string;
}

export async function startTarget(name: string, env: Readonly<Record<string, string>> = {}): Promise<Cluster> {
  const cluster = await startCluster({ nodes: 1, name: FUZZ_TLS ? `${name}-tls` : name, env, ...tlsOptions() });
  await cluster.waitForLeader();
  // Some data, so that "unchanged" covers values and modIndexes too.
  await cluster.putOk(1, 'alpha', 'one');
  await cluster.putOk(1, 'beta', 'two');
  await cluster.del(1, 'alpha');
  await cluster.putOk(1, 'gamma', new Uint8Array([0, 255, 1]));
  return cluster;
}

export async function stateOf(cluster: Cluster): Promise<NodeState> {
  const status = await cluster.status(1, 5_000);
  const list = await cluster.list(1, '', { consistency: 'stale' });
  return {
    term: status.term,
    role: status.role,
    leader: status.leader,
    commitIndex: status.commitIndex,
    lastLogIndex: status.lastLogIndex,
    data: JSON.stringify([...list]),
  };
}

/** The node is still running, answers, and its state is what it was. */
export async function assertUnchanged(cluster: Cluster, before: NodeState, what: string): Promise<void> {
  assert.ok(cluster.isLive(1), `the node died after ${what}:\n${cluster.logTail(1, 30)}`);
  const after = await stateOf(cluster);
  assert.deepEqual(after, before, `the node's state changed after ${what}`);
}

/** Sends raw bytes on a fresh connection; resolves with the status line's code, or null if the
 * server closed without answering. `half` keeps the sending side open (a body cut short), then
 * closes the socket after the answer or after `waitMs`. */
export function rawRequest(port: number, head: string, body: Buffer, options: { half?: boolean; waitMs?: number } = {}): Promise<number | null> {
  return new Promise((resolve) => {
    const socket: Socket = clientTls === null
      ? connect({ host: '127.0.0.1', port })
      : tlsConnect({ host: '127.0.0.1', port, ca: clientTls.ca, cert: clientTls.cert, key: clientTls.key, checkServerIdentity: () => undefined });
    let received = '';
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(received);
      resolve(match === null ? null : Number(match[1]));
    };
    const timer = setTimeout(finish, options.waitMs ?? 2_000);
    socket.on(clientTls === null ? 'connect' : 'secureConnect', () => {
      socket.write(head);
      socket.write(body);
      if (options.half !== true) socket.end();
    });
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      if (/\r\n\r\n/.test(received)) finish();
    });
    socket.on('error', finish);
    socket.on('close', finish);
  });
}

/** Waits until the node leads again (after a control test made it step down). */
export async function waitLeading(cluster: Cluster): Promise<void> {
  await waitUntil('the node to lead again', async () => (await cluster.status(1, 2_000)).role === 'leader');
}
