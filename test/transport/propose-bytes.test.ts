// Forwarded writes as the encoded command (propose-bytes): the frame, its strict checks (bad bytes are
// a 400 that proposes nothing), and the negotiation that keeps members of an older release, which do
// not announce the feature, on JSON calls.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { decodeKvCommand, encodeKvCommand } from '../../src/kv/codec.ts';
import type { KvCommand } from '../../src/kv/types.ts';
import { PeerClient } from '../../src/transport/client.ts';
import { FEATURE_PROPOSE_BYTES, FEATURES_HEADER, PROTOCOL_HEADER, PROTOCOL_VERSION, ROUTES, STREAM_CONTENT_TYPE } from '../../src/transport/protocol.ts';
import { prepareProposeBytes } from '../../src/transport/server-calls.ts';
import { startPeerServer } from '../../src/transport/server.ts';
import type { RunningPeerServer } from '../../src/transport/server.ts';
import { decodeCall, decodeReply, encodeProposeBytesCall, encodeReply, FRAME, FrameReader, PROPOSE_BYTES_TAG } from '../../src/transport/stream-frames.ts';
import { WireError } from '../../src/transport/wire.ts';
import { recorder, TOKEN, waitFor } from './helpers.ts';

const key = fc.stringMatching(/^[a-z0-9/_-]{1,40}$/);
const command: fc.Arbitrary<KvCommand> = fc.oneof(
  fc.record(
    { op: fc.constant('put' as const), key, value: fc.uint8Array({ maxLength: 200 }), ifMatch: fc.integer({ min: 1, max: 2 ** 40 }), ifTerm: fc.integer({ min: 1, max: 1000 }) },
    { requiredKeys: ['op', 'key', 'value'] },
  ),
  fc.record({ op: fc.constant('del' as const), key, ifMatch: fc.integer({ min: 1, max: 2 ** 40 }) }, { requiredKeys: ['op', 'key'] }),
);

describe('propose-bytes frames', () => {
  test('a call carries its id, timeout and command bytes unchanged, whatever the chunking', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), fc.integer({ min: 1, max: 60_000 }), command, fc.integer({ min: 1, max: 7 }), (id, timeoutMs, cmd, cut) => {
        const bytes = encodeKvCommand(cmd);
        const frame = encodeProposeBytesCall(id, timeoutMs, bytes);
        const reader = new FrameReader((t) => (t === FRAME.call ? 10_000 : -1));
        const frames = [];
        for (let at = 0; at < frame.byteLength; at += cut) frames.push(...reader.push(frame.subarray(at, at + cut)));
        assert.equal(frames.length, 1);
        const call = decodeCall(frames[0].payload);
        assert.equal(call.kind, 'proposeBytes');
        if (call.kind !== 'proposeBytes') return;
        assert.equal(call.id, id);
        assert.equal(call.timeoutMs, timeoutMs);
        assert.deepEqual(decodeKvCommand(call.command), decodeKvCommand(bytes));
      }),
    );
  });

  test('any payload decodes to a call or throws a WireError, nothing else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.boolean(), (bytes, tagged) => {
        const payload = Buffer.from(bytes);
        if (tagged && payload.byteLength > 4) payload[4] = PROPOSE_BYTES_TAG;
        try {
          const call = decodeCall(payload);
          if (call.kind === 'proposeBytes') assert.ok(call.command.byteLength >= 1);
        } catch (error) {
          assert.ok(error instanceof WireError, String(error));
        }
      }),
    );
    const truncated = Buffer.from([0, 0, 0, 1, PROPOSE_BYTES_TAG, 0, 0, 0, 9]);
    assert.throws(() => decodeCall(truncated), /truncated/);
  });

  test('the encoder refuses what it cannot send', () => {
    assert.throws(() => encodeProposeBytesCall(1, 0, new Uint8Array([1])), WireError);
    assert.throws(() => encodeProposeBytesCall(1, 1.5, new Uint8Array([1])), WireError);
    assert.throws(() => encodeProposeBytesCall(1, 10, new Uint8Array()), WireError);
  });
});

describe('propose-bytes validation', () => {
  test('bytes the key-value codec refuses, or a timeout out of range, are malformed and propose nothing; accepted bytes are exactly a command', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 60 }), command.map((c) => encodeKvCommand(c))),
        fc.oneof(fc.integer({ min: 1, max: 5000 }), fc.constantFrom(0, 5001, 2 ** 32 - 1)),
        (bytes, timeoutMs) => {
          const r = recorder();
          const prepared = prepareProposeBytes(timeoutMs, bytes, r.handlers, 5000);
          if (timeoutMs < 1 || timeoutMs > 5000) assert.ok('malformed' in prepared && /timeoutMs/.test(prepared.malformed));
          let decoded: KvCommand | null = null;
          try {
            decoded = decodeKvCommand(bytes);
          } catch {
            assert.ok('malformed' in prepared, 'refused bytes are malformed');
          }
          // Strict: what is accepted re-encodes to the very bytes that came in.
          if (decoded !== null) assert.deepEqual(Buffer.from(encodeKvCommand(decoded)), Buffer.from(bytes));
          assert.equal(r.proposals.length, 0, 'preparing proposes nothing');
        },
      ),
    );
  });
});

test('a prepared call hands the handler the bytes it came in as, copied into a buffer of their own', async () => {
  const cmd: KvCommand = { op: 'put', key: 'k', value: new Uint8Array([5, 6, 7]), ifMatch: 3 };
  const bytes = encodeKvCommand(cmd);
  // As on the wire: the command is a view into a frame buffer that holds other frames too.
  const frame = new Uint8Array(bytes.byteLength + 20).fill(0xee);
  frame.set(bytes, 10);
  const view = frame.subarray(10, 10 + bytes.byteLength);
  const r = recorder();
  const prepared = prepareProposeBytes(1000, view, r.handlers, 5000);
  assert.ok('run' in prepared);
  const answer = await prepared.run();
  assert.equal(answer.status, 200);
  const [proposal] = r.proposals;
  assert.ok(proposal?.encoded !== undefined, 'the bytes are passed along');
  assert.deepEqual(Buffer.from(proposal.encoded), Buffer.from(bytes));
  assert.equal(proposal.encoded.byteOffset, 0);
  assert.equal(proposal.encoded.buffer.byteLength, bytes.byteLength, 'not a view into the frame buffer');
  assert.deepEqual(proposal.cmd, decodeKvCommand(bytes));
  frame.fill(0);
  assert.deepEqual(Buffer.from(proposal.encoded), Buffer.from(bytes), 'later frames reusing the buffer do not change it');
});

/** Opens a raw stream to a peer server and collects its reply frames. */
async function rawStream(url: string): Promise<{ headers: IncomingMessage['headers']; send: (frame: Buffer) => void; replies: { id: number; status: number; json: string }[]; close: () => void }> {
  const req = request(`${url}${ROUTES.stream}`, {
    method: 'POST',
    headers: { 'content-type': STREAM_CONTENT_TYPE, [PROTOCOL_HEADER]: String(PROTOCOL_VERSION), authorization: `Bearer ${TOKEN}` },
  });
  req.flushHeaders();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  assert.equal(res.statusCode, 200);
  const replies: { id: number; status: number; json: string }[] = [];
  const reader = new FrameReader((t) => (t === FRAME.reply || t === FRAME.error ? 1 << 20 : t === FRAME.pong ? 0 : -1));
  res.on('data', (chunk: Buffer) => {
    for (const frame of reader.push(chunk)) if (frame.type === FRAME.reply) replies.push(decodeReply(frame.payload));
  });
  return { headers: res.headers, send: (frame) => req.write(frame), replies, close: () => req.destroy() };
}

describe('propose-bytes on a stream', () => {
  let server: RunningPeerServer;
  const r = recorder();
  before(async () => {
    server = await startPeerServer('127.0.0.1', 0, { token: TOKEN, handlers: r.handlers });
  });
  after(async () => {
    await server.close();
  });

  test('the server announces the feature, runs a good call and answers a bad one with 400, proposing nothing for it', async () => {
    const stream = await rawStream(server.url);
    try {
      assert.equal(stream.headers[FEATURES_HEADER], FEATURE_PROPOSE_BYTES);
      const good: KvCommand = { op: 'put', key: 'k', value: new Uint8Array([1, 2, 3]) };
      stream.send(encodeProposeBytesCall(1, 2000, encodeKvCommand(good)));
      stream.send(encodeProposeBytesCall(2, 2000, new Uint8Array([9, 9, 9])));
      stream.send(encodeProposeBytesCall(3, 999_999_999, encodeKvCommand(good)));
      await waitFor(() => stream.replies.length === 3, 'three replies');
      const byId = new Map(stream.replies.map((x) => [x.id, x]));
      assert.equal(byId.get(1)?.status, 200);
      assert.deepEqual(JSON.parse(byId.get(1)?.json ?? ''), { ok: true, index: 7, term: 2 });
      assert.equal(byId.get(2)?.status, 400);
      assert.match(byId.get(2)?.json ?? '', /bad_request.*command/);
      assert.equal(byId.get(3)?.status, 400);
      assert.match(byId.get(3)?.json ?? '', /timeoutMs/);
      assert.deepEqual(r.proposals.map((p) => p.cmd), [good], 'only the good call proposed');
    } finally {
      stream.close();
    }
  });
});

/** A peer that speaks the stream protocol by hand, as a member of an older release (no features) or a
 * newer one would: it records the kind tag of every call and answers each with a fixed result. */
async function handMadePeer(features: string | null): Promise<{ url: string; tags: number[]; commands: KvCommand[]; close: () => Promise<void> }> {
  const tags: number[] = [];
  const commands: KvCommand[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': STREAM_CONTENT_TYPE, ...(features === null ? {} : { [FEATURES_HEADER]: features }) });
    res.flushHeaders();
    const reader = new FrameReader((t) => (t === FRAME.call || t === FRAME.messages ? 1 << 20 : t === FRAME.ping ? 0 : -1));
    req.on('data', (chunk: Buffer) => {
      for (const frame of reader.push(chunk)) {
        if (frame.type !== FRAME.call) continue;
        const call = decodeCall(frame.payload);
        tags.push(frame.payload[4]);
        if (call.kind === 'proposeBytes') commands.push(decodeKvCommand(call.command));
        res.write(encodeReply(call.id, 200, '{"ok":true,"index":5,"term":1}'));
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    tags,
    commands,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

describe('propose-bytes negotiation (rolling upgrades)', () => {
  const put: KvCommand = { op: 'put', key: 'k', value: new Uint8Array([0, 255]), ifMatch: 2 };

  for (const [what, features, expectedTag] of [
    ['a peer that announces nothing (an older release) gets JSON calls', null, 1],
    ['a peer that announces only features this member does not know gets JSON calls', 'something-else', 1],
    ['a peer that announces propose-bytes gets the encoded command', `other, ${FEATURE_PROPOSE_BYTES}`, PROPOSE_BYTES_TAG],
  ] as const) {
    test(what, async () => {
      const peer = await handMadePeer(features);
      const client = new PeerClient({ token: TOKEN });
      try {
        client.setPeers({ a: peer.url });
        assert.deepEqual(await client.propose(peer.url, put, Date.now() + 5000), { ok: true, index: 5, term: 1 });
        assert.deepEqual(peer.tags, [expectedTag]);
        if (expectedTag === PROPOSE_BYTES_TAG) assert.deepEqual(peer.commands, [put]);
      } finally {
        await client.close();
        await peer.close();
      }
    });
  }
});
