// A peer stream's bytes go to the kernel when written (src/transport/uncorked.ts): Node's http
// write alone leaves them corked until a later process.nextTick callback, behind whatever was
// queued before it (the WAL's synchronous fsync of a vote).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request, type ClientRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { writeUncorked } from '../../src/transport/uncorked.ts';
import { waitFor } from './helpers.ts';

async function openStream(): Promise<{ server: Server; req: ClientRequest; received: () => number; close: () => Promise<void> }> {
  let bytes = 0;
  const server = createServer((inbound: IncomingMessage, res) => {
    inbound.on('data', (chunk: Buffer) => (bytes += chunk.byteLength));
    res.writeHead(200);
    res.flushHeaders();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const req = request({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, method: 'POST' });
  req.flushHeaders();
  await once(req, 'response');
  return {
    server, req, received: () => bytes,
    close: async () => {
      req.destroy();
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

test('plain write leaves the socket corked until a later tick; writeUncorked hands the bytes over at once', async () => {
  const s = await openStream();
  try {
    const seen: { corked: number; pending: number }[] = [];
    await new Promise<void>((resolve) => {
      process.nextTick(() => {
        s.req.write(Buffer.alloc(64, 1));
        seen.push({ corked: s.req.socket!.writableCorked, pending: s.req.socket!.writableLength });
        writeUncorked(s.req, Buffer.alloc(64, 2));
        seen.push({ corked: s.req.socket!.writableCorked, pending: s.req.socket!.writableLength });
        resolve();
      });
    });
    // The first (Node's own behaviour, which the helper exists for): corked, bytes held in Node.
    assert.equal(seen[0]!.corked, 1);
    assert.ok(seen[0]!.pending > 0);
    // After writeUncorked both writes have left Node: nothing corked, nothing buffered.
    assert.deepEqual(seen[1], { corked: 0, pending: 0 });
    await waitFor(() => s.received() >= 128, 'both writes to arrive');
    assert.equal(s.received(), 128, 'both writes arrive, in one piece or two');
  } finally {
    await s.close();
  }
});
