// Peer port limits (issue 14): a declared oversized body is refused before it is read, slow
// headers and idle connections are closed, connections are capped overall and per address (junk
// makes room for junk, never for an authenticated peer's stream), request bodies in flight share a
// byte budget, and refusals are logged at a bounded rate.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { afterEach, describe, test } from 'node:test';
import { PeerClient } from '../../src/transport/client.ts';
import { PROTOCOL_HEADER, PROTOCOL_VERSION, ROUTES } from '../../src/transport/protocol.ts';
import { createThrowawayCa } from '../../src/transport/throwaway-ca.ts';
import { staticTls } from '../../src/transport/tls.ts';
import { startPeerServer, type PeerRefusal, type PeerServerOptions, type RunningPeerServer } from '../../src/transport/server.ts';
import { heartbeat, recorder, TOKEN, waitFor } from './helpers.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function server(options: Partial<PeerServerOptions> = {}): Promise<{ server: RunningPeerServer; refusals: PeerRefusal[]; received: () => number }> {
  const r = recorder();
  const refusals: PeerRefusal[] = [];
  const s = await startPeerServer('127.0.0.1', 0, { token: TOKEN, nodeId: 'b', handlers: r.handlers, onRefused: (x) => refusals.push(x), refusalLogBurst: 1000, ...options });
  cleanups.push(() => s.close());
  return { server: s, refusals, received: () => r.batches.flat().length };
}

/** A raw connection; resolves with everything it received once the server closed it. */
function raw(port: number, localAddress = '127.0.0.1'): { socket: Socket; closed: Promise<string> } {
  const socket = connect({ host: '127.0.0.1', port, localAddress });
  let text = '';
  socket.on('data', (chunk) => (text += chunk.toString('latin1')));
  socket.on('error', () => undefined);
  cleanups.push(() => {
    socket.destroy();
  });
  return { socket, closed: once(socket, 'close').then(() => text) };
}

const head = (path: string, length: number, token = TOKEN): string =>
  `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n${PROTOCOL_HEADER}: ${PROTOCOL_VERSION}\r\n` +
  `Content-Type: application/octet-stream\r\nContent-Length: ${length}\r\n\r\n`;

describe('peer port limits', () => {
  test('a declared Content-Length over the limit is answered 413 before any of the body is sent', async () => {
    const { server: s, refusals } = await server({ messagesLimitBytes: 1000 });
    const { socket } = raw(s.port);
    await once(socket, 'connect');
    socket.write(head(ROUTES.messages, 64 * 1024 * 1024));
    let text = '';
    socket.on('data', (chunk) => (text += chunk.toString('latin1')));
    await waitFor(() => /\r\n\r\n.*payload_too_large/s.test(text), 'a 413 answer without a body sent');
    assert.match(text, /^HTTP\/1\.1 413 /);
    assert.equal(refusals[0].code, 'payload_too_large');
  });

  // A refused body is not read, but the client may already be sending it: closing with its bytes
  // unread would reset the connection, and the client's next write could fail before it reads the
  // answer. The server half-closes and discards the rest (up to the declared length, at most twice
  // the limit), so a client that writes its whole body before reading still gets the 413.
  for (const scheme of ['http', 'https'] as const) {
    test(`a client that writes all of a refused body before reading gets the 413, not a reset (${scheme})`, async () => {
      const limit = 4 * 1024 * 1024;
      let tls: { ca: Buffer; cert: Buffer; key: Buffer } | null = null;
      const options: Partial<PeerServerOptions> = { messagesLimitBytes: limit };
      if (scheme === 'https') {
        const dir = mkdtempSync(path.join(tmpdir(), 'raftlet-limits-'));
        cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
        const ca = createThrowawayCa(dir, 'raftlet-limits-ca');
        const member = ca.issue('b');
        const client = ca.issue('a');
        const caPem = readFileSync(ca.caFile);
        tls = { ca: caPem, cert: readFileSync(client.certFile), key: readFileSync(client.keyFile) };
        Object.assign(options, { tls: staticTls({ ca: caPem, cert: readFileSync(member.certFile), key: readFileSync(member.keyFile) }) });
      }
      const { server: s, refusals } = await server(options);
      // allowHalfOpen: the server's FIN (after its answer) must not end our side while we write.
      // (tls.connect passes allowHalfOpen on to its socket; its option type does not list it.)
      const tlsOptions: ConnectionOptions & { allowHalfOpen: boolean } = { host: '127.0.0.1', port: s.port, ...tls, allowHalfOpen: true, checkServerIdentity: () => undefined };
      const socket: Socket = tls === null ? connect({ host: '127.0.0.1', port: s.port, allowHalfOpen: true }) : tlsConnect(tlsOptions);
      cleanups.push(() => {
        socket.destroy();
      });
      const errors: string[] = [];
      socket.on('error', (error: NodeJS.ErrnoException) => errors.push(error.code ?? error.message));
      await once(socket, tls === null ? 'connect' : 'secureConnect');
      const body = Buffer.alloc(2 * limit, 0x41);
      socket.write(head(ROUTES.messages, body.byteLength));
      const piece = 64 * 1024;
      for (let at = 0; at < body.byteLength && errors.length === 0; at += piece) {
        await new Promise<void>((resolve) => socket.write(body.subarray(at, at + piece), () => resolve()));
      }
      assert.deepEqual(errors, [], 'the client\'s writes of its body failed');
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
      socket.end();
      await once(socket, 'close');
      assert.deepEqual(errors, [], 'the connection was reset');
      assert.match(text, /^HTTP\/1\.1 413 /);
      assert.match(text, /connection: close/i);
      assert.equal(refusals[0].code, 'payload_too_large');
    });
  }

  test('headers that do not arrive in time close the connection; so does an idle one', async () => {
    const { server: s, refusals } = await server({ headersTimeoutMs: 200, idleTimeoutMs: 400 });
    const slow = raw(s.port);
    await once(slow.socket, 'connect');
    slow.socket.write('POST /raft/v1/messages HTTP/1.1\r\nHost: x\r\n');
    const idle = raw(s.port);
    await slow.closed;
    await idle.closed;
    assert.ok(refusals.some((r) => r.code === 'headers_timeout'));
    // An authenticated keep-alive connection that goes quiet after a request is closed too.
    const quiet = raw(s.port);
    await once(quiet.socket, 'connect');
    quiet.socket.write(`GET ${ROUTES.status} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n${PROTOCOL_HEADER}: 1\r\n\r\n`);
    assert.match(await quiet.closed, /^HTTP\/1\.1 200 /);
  });

  test('connections per address are capped; at the overall cap junk is evicted, never a peer stream', async () => {
    const { server: s, refusals, received } = await server({ maxConnections: 6, maxConnectionsPerAddress: 4, headersTimeoutMs: 60_000 });
    // A peer's stream, from 127.0.0.1.
    const client = new PeerClient({ token: TOKEN });
    cleanups.push(() => client.close());
    client.setPeers({ b: s.url });
    client.send('b', [heartbeat(1)]);
    await waitFor(() => received() === 1, 'the stream open');
    // Junk from another address: 4 allowed, the 5th refused at once.
    const junk = Array.from({ length: 5 }, () => raw(s.port, '127.0.0.2'));
    await waitFor(() => refusals.some((r) => r.code === 'too_many_connections_from_address'), 'the 5th refused');
    await junk[4].closed;
    // Junk from a third address fills the overall cap: the oldest junk makes room, the stream stays.
    const more = Array.from({ length: 3 }, () => raw(s.port, '127.0.0.3'));
    await Promise.all(more.map((m) => once(m.socket, 'connect')));
    await waitFor(() => refusals.filter((r) => r.code === 'evicted').length >= 2, 'junk evicted');
    await junk[0].closed;
    assert.ok(s.connections() <= 6, `${s.connections()} connections`);
    client.send('b', [heartbeat(2)]);
    await waitFor(() => received() === 2, 'the peer stream still delivers');
  });

  test('new connections from one address beyond the burst wait their turn, unread; another address goes at once', async () => {
    const { server: s } = await server({ admissionBurst: 2, admissionPerSecond: 0.2, headersTimeoutMs: 60_000 });
    // Unauthenticated: an address holding an authenticated connection is not paced.
    const request = `GET ${ROUTES.status} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer not-the-token-at-all\r\n${PROTOCOL_HEADER}: ${PROTOCOL_VERSION}\r\n\r\n`;
    const flood = Array.from({ length: 3 }, () => raw(s.port, '127.0.0.2'));
    await Promise.all(flood.map((f) => once(f.socket, 'connect')));
    await waitFor(() => s.connections() === 3, 'three connections accepted');
    assert.equal(s.waitingConnections(), 1, 'the third connection of the address waits');
    const answers = flood.map(() => '');
    flood.forEach((f, i) => {
      f.socket.on('data', (chunk: Buffer) => (answers[i] += chunk.toString('latin1')));
      f.socket.write(request);
    });
    const other = raw(s.port, '127.0.0.3');
    let otherAnswer = '';
    other.socket.on('data', (chunk: Buffer) => (otherAnswer += chunk.toString('latin1')));
    await once(other.socket, 'connect');
    other.socket.write(request);
    await waitFor(() => /^HTTP\/1\.1 401 /.test(otherAnswer) && /^HTTP\/1\.1 401 /.test(answers[0]) && /^HTTP\/1\.1 401 /.test(answers[1]), 'the burst and the other address answered');
    // The waiting one is served when the address earns a token (one per 5 s here).
    if (s.waitingConnections() === 1) assert.equal(answers[2], '', 'the waiting connection was read before its turn');
    await waitFor(() => /^HTTP\/1\.1 401 /.test(answers[2]), 'the waiting connection answered in its turn', 30_000);
    assert.equal(s.waitingConnections(), 0);
  });

  test('request bodies in flight share a byte budget: beyond it, 503 before reading', async () => {
    const { server: s, refusals } = await server({ maxBodyBytesInFlight: 1500, messagesLimitBytes: 1000 });
    const first = raw(s.port);
    await once(first.socket, 'connect');
    first.socket.write(head(ROUTES.messages, 1000));
    first.socket.write('x'); // the body is in flight, 999 bytes still to come
    await new Promise((resolve) => setTimeout(resolve, 50));
    const second = raw(s.port);
    await once(second.socket, 'connect');
    second.socket.write(head(ROUTES.messages, 1000));
    let text = '';
    second.socket.on('data', (chunk) => (text += chunk.toString('latin1')));
    await waitFor(() => /\r\n\r\n/.test(text), 'an answer');
    assert.match(text, /^HTTP\/1\.1 503 /);
    assert.match(text, /too many request bodies in flight/);
    assert.ok(refusals.some((r) => r.status === 503));
  });

  test('a body that does not arrive in time is answered 408', async () => {
    const { server: s } = await server({ bodyTimeoutMs: 200 });
    const slow = raw(s.port);
    await once(slow.socket, 'connect');
    slow.socket.write(head(ROUTES.messages, 100));
    slow.socket.write('RL');
    assert.match(await slow.closed, /^HTTP\/1\.1 408 /);
  });

  test('refusals are reported at most refusalLogBurst times per interval, then with a suppressed count', async () => {
    const { server: s, refusals } = await server({ refusalLogBurst: 3 });
    for (let i = 0; i < 10; i++) {
      const response = await fetch(`${s.url}${ROUTES.status}`, { headers: { authorization: 'Bearer wrong-wrong-wrong-wrong' } });
      assert.equal(response.status, 401);
      await response.body?.cancel();
    }
    assert.equal(refusals.length, 3);
    assert.deepEqual(refusals.map((r) => r.suppressed), [0, 0, 0]);
  });
});

describe('refusal log rate limiter', () => {
  test('lets a burst through per interval and tells how many were suppressed', async () => {
    const { RateLimiter } = await import('../../src/transport/guard.ts');
    const limiter = new RateLimiter(2, 1000);
    assert.deepEqual([limiter.admit(0), limiter.admit(1), limiter.admit(2), limiter.admit(3), limiter.admit(999)], [0, 0, null, null, null]);
    assert.equal(limiter.admit(1000), 3);
    assert.equal(limiter.admit(1001), 0);
  });
});
