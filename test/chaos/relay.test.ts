// The delay relay on loopback, in front of an echo server.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { DelayRelay } from './relay.ts';

const DELAY_MS = 80;
// Timers may fire up to a millisecond early after rounding; the relay must still hold bytes for
// about the delay it was given, in each direction.
const SLACK_MS = 3;

function connect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port, allowHalfOpen: true }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Reads until `bytes` bytes arrived; resolves with them. */
function readBytes(socket: Socket, bytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      got += chunk.byteLength;
      if (got >= bytes) {
        socket.off('data', onData);
        resolve(Buffer.concat(chunks));
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

describe('delay relay', () => {
  let echo: Server;
  let relay: DelayRelay;
  let relayPort: number;
  const open: Socket[] = [];

  before(async () => {
    echo = createServer({ allowHalfOpen: true }, (socket) => {
      open.push(socket);
      socket.pipe(socket);
    });
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    relay = new DelayRelay({ listenHost: '127.0.0.1', listenPort: 0, targetHost: '127.0.0.1', targetPort: (echo.address() as AddressInfo).port });
    relayPort = await relay.start();
  });

  after(async () => {
    for (const socket of open) socket.destroy();
    await relay.close();
    await new Promise<void>((resolve) => echo.close(() => resolve()));
  });

  it('passes bytes straight through when no delay is set', { timeout: 30_000 }, async () => {
    relay.setDelays({});
    const socket = await connect(relayPort);
    open.push(socket);
    socket.write('hello');
    assert.equal((await readBytes(socket, 5)).toString(), 'hello');
    socket.destroy();
  });

  it('holds bytes for the delay in each direction, for the named address only', { timeout: 30_000 }, async () => {
    relay.setDelays({ '127.0.0.2': 5000 });
    const socket = await connect(relayPort);
    open.push(socket);
    relay.setDelays({ '127.0.0.1': DELAY_MS });
    const started = performance.now();
    socket.write('ping');
    assert.equal((await readBytes(socket, 4)).toString(), 'ping');
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 2 * DELAY_MS - SLACK_MS, `a round trip took ${elapsed.toFixed(1)} ms, less than twice the ${DELAY_MS} ms delay`);
    socket.destroy();
  });

  it('keeps order when the delay shrinks while bytes are held', { timeout: 30_000 }, async () => {
    relay.setDelays({ '127.0.0.1': 200 });
    const socket = await connect(relayPort);
    open.push(socket);
    socket.write('first,');
    for (let i = 0; i < 1000 && relay.bytesHeld === 0; i++) await new Promise((resolve) => setTimeout(resolve, 2));
    assert.ok(relay.bytesHeld > 0, 'the relay should be holding the first chunk');
    relay.setDelays({});
    socket.write('second');
    assert.equal((await readBytes(socket, 12)).toString(), 'first,second');
    socket.destroy();
  });

  it('delivers what it holds after the target closed its side', { timeout: 30_000 }, async () => {
    relay.setDelays({ '127.0.0.1': 100 });
    const socket = await connect(relayPort);
    open.push(socket);
    const received = readBytes(socket, 5);
    const ended = once(socket, 'end');
    // The echo server ends its side as soon as ours ends: its last bytes are still in the relay.
    socket.end('bytes');
    assert.equal((await received).toString(), 'bytes');
    await ended;
    socket.destroy();
  });

  it('carries a large transfer intact under back-pressure, and passes on the end', { timeout: 30_000 }, async () => {
    relay.setDelays({ '127.0.0.1': 5 });
    const payload = randomBytes(24 * 1024 * 1024);
    const socket = await connect(relayPort);
    open.push(socket);
    const received = readBytes(socket, payload.byteLength);
    const ended = once(socket, 'end');
    socket.end(payload);
    const echoed = await received;
    assert.equal(createHash('sha256').update(echoed).digest('hex'), createHash('sha256').update(payload).digest('hex'));
    await ended;
    socket.destroy();
  });

  it('closes the client side when the target refuses', { timeout: 30_000 }, async () => {
    const dead = new DelayRelay({ listenHost: '127.0.0.1', listenPort: 0, targetHost: '127.0.0.1', targetPort: 1 });
    const port = await dead.start();
    try {
      const socket = await connect(port);
      open.push(socket);
      socket.on('error', () => undefined);
      socket.resume();
      await once(socket, 'end');
      socket.destroy();
    } finally {
      await dead.close();
    }
  });
});
