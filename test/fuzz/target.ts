// The node the fuzz tests aim at: one real `raftlet run` process on loopback (a one-member
// cluster, so it leads at once), its observable state, and raw HTTP for what a well-behaved client
// library refuses to send (wrong lengths, bodies cut short).
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startCluster, waitUntil, type Cluster } from '../support/cluster.ts';

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
  const cluster = await startCluster({ nodes: 1, name, env });
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
    const socket = connect({ host: '127.0.0.1', port });
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
    socket.on('connect', () => {
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
