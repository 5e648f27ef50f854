// onPeerDead (issue 12, fast failover): called when an established stream to a peer closed and a
// new connection is refused, i.e. the peer's process is gone. A real process killed with SIGKILL
// must fire it; a SIGSTOPped process (connections accepted by the kernel, never answered) and a
// network that silently drops everything (a blackhole relay) must not, however long they last.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { after, afterEach, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PeerClient } from '../../src/transport/client.ts';
import { deadPort, heartbeat, TOKEN, waitFor } from './helpers.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/peer-server.ts', import.meta.url));
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

async function startPeerProcess(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [FIXTURE], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  return { child, url: line.trim() };
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGCONT');
  child.kill('SIGKILL');
  await exited;
}

/** A TCP relay that can turn into a blackhole: bytes in either direction, and new connections, are
 * swallowed without an answer, as a network that drops every packet would (no RST, no FIN). */
class BlackholeRelay {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private hung = false;
  private readonly targetPort: number;
  constructor(targetPort: number) {
    this.targetPort = targetPort;
  }

  async start(): Promise<number> {
    this.server = createServer((client) => {
      this.sockets.add(client);
      client.on('close', () => this.sockets.delete(client));
      client.on('error', () => undefined);
      if (this.hung) {
        client.resume();
        return;
      }
      const upstream = connect(this.targetPort, '127.0.0.1');
      this.sockets.add(upstream);
      upstream.on('close', () => this.sockets.delete(upstream));
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      client.on('data', (chunk) => {
        if (!this.hung) upstream.write(chunk);
      });
      upstream.on('data', (chunk) => {
        if (!this.hung) client.write(chunk);
      });
      client.on('close', () => {
        if (!this.hung) upstream.destroy();
      });
      upstream.on('close', () => {
        if (!this.hung) client.destroy();
      });
    });
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as AddressInfo).port;
  }

  hang(): void {
    this.hung = true;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    if (this.server === null) return;
    const closed = once(this.server, 'close');
    this.server.close();
    await closed;
  }
}

function deadWatcher(): { client: PeerClient; dead: string[]; failed: () => number } {
  const dead: string[] = [];
  const client = new PeerClient({
    token: TOKEN,
    requestTimeoutMs: 300,
    pingIntervalMs: 100,
    idleTimeoutMs: 600,
    backoffInitialMs: 50,
    backoffMaxMs: 200,
    hooks: { onPeerDead: (peer) => dead.push(peer) },
  });
  return { client, dead, failed: () => client.stats().find((s) => s.id === 'b')?.failedRequests ?? 0 };
}

/** Heartbeats every 20 ms, as a leader sends them, until stopped. */
function keepSending(client: PeerClient): () => void {
  let seq = 0;
  const timer = setInterval(() => client.send('b', [heartbeat(++seq)]), 20);
  return () => clearInterval(timer);
}

const connected = (client: PeerClient): boolean => client.stats().find((s) => s.id === 'b')?.connected === true;

describe('onPeerDead', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  after(async () => {
    for (const child of children) await stopProcess(child);
  });

  test('fires once when the peer process is killed with SIGKILL', async () => {
    const peer = await startPeerProcess();
    cleanups.push(() => stopProcess(peer.child));
    const { client, dead } = deadWatcher();
    cleanups.push(() => client.close());
    client.setPeers({ b: peer.url });
    const stop = keepSending(client);
    cleanups.push(stop);
    await waitFor(() => connected(client), 'the stream to open');
    assert.deepEqual(dead, []);
    const started = performance.now();
    await stopProcess(peer.child);
    await waitFor(() => dead.length > 0, 'onPeerDead after SIGKILL');
    const tookMs = performance.now() - started;
    assert.deepEqual(dead, ['b']);
    // Refused reconnects go on (backoff), but the loss is reported once.
    const failedNow = client.stats()[0].failedRequests;
    await waitFor(() => client.stats()[0].failedRequests >= failedNow + 3, 'more refused attempts');
    assert.deepEqual(dead, ['b'], 'reported once per lost connection');
    process.stderr.write(`onPeerDead ${tookMs.toFixed(1)} ms after SIGKILL was sent\n`);
  });

  test('does not fire for a SIGSTOPped peer, however long it stays stopped', async () => {
    const peer = await startPeerProcess();
    cleanups.push(() => stopProcess(peer.child));
    const { client, dead, failed } = deadWatcher();
    cleanups.push(() => client.close());
    client.setPeers({ b: peer.url });
    const stop = keepSending(client);
    cleanups.push(stop);
    await waitFor(() => connected(client), 'the stream to open');
    peer.child.kill('SIGSTOP');
    // The idle stream is given up and reconnects time out (the kernel accepts, nobody answers).
    await waitFor(() => failed() >= 3, 'three failed attempts while the peer is stopped', 20_000);
    assert.deepEqual(dead, []);
    peer.child.kill('SIGCONT');
    await waitFor(() => connected(client), 'the stream to open again after SIGCONT', 20_000);
    assert.deepEqual(dead, []);
  });

  test('does not fire when the network drops everything (blackhole relay)', async () => {
    const peer = await startPeerProcess();
    cleanups.push(() => stopProcess(peer.child));
    const relay = new BlackholeRelay(Number(new URL(peer.url).port));
    const relayPort = await relay.start();
    cleanups.push(() => relay.close());
    const { client, dead, failed } = deadWatcher();
    cleanups.push(() => client.close());
    client.setPeers({ b: `http://127.0.0.1:${relayPort}` });
    const stop = keepSending(client);
    cleanups.push(stop);
    await waitFor(() => connected(client), 'the stream to open through the relay');
    relay.hang();
    await waitFor(() => failed() >= 3, 'three failed attempts through the blackhole', 20_000);
    assert.deepEqual(dead, []);
  });

  test('does not fire for a peer that was never reached', async () => {
    const url = await deadPort();
    const { client, dead, failed } = deadWatcher();
    cleanups.push(() => client.close());
    client.setPeers({ b: url });
    const stop = keepSending(client);
    cleanups.push(stop);
    await waitFor(() => failed() >= 3, 'three refused attempts');
    assert.deepEqual(dead, []);
  });
});
