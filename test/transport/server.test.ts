import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { request } from 'undici';
import { ClientError } from '../../src/api/ops.ts';
import { encodeMessages, WIRE_VERSION } from '../../src/transport/codec.ts';
import { PROTOCOL_VERSION, ROUTES } from '../../src/transport/protocol.ts';
import { steadyNow } from '../../src/util/steady-clock.ts';
import { startPeerServer } from '../../src/transport/server.ts';
import type { PeerRefusal, RunningPeerServer } from '../../src/transport/server.ts';
import { heartbeat, recorder, TOKEN } from './helpers.ts';
import type { Recorder } from './helpers.ts';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json: () => { error: { code: string; message: string } };
}

async function call(
  server: RunningPeerServer,
  path: string,
  options: { method?: 'GET' | 'POST'; headers?: Record<string, string>; body?: string | Uint8Array; token?: string | null; version?: string | null } = {},
): Promise<Reply> {
  const headers: Record<string, string> = {};
  const token = options.token === undefined ? TOKEN : options.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const version = options.version === undefined ? String(PROTOCOL_VERSION) : options.version;
  if (version !== null) headers['raftlet-protocol'] = version;
  if (options.body !== undefined) headers['content-type'] = typeof options.body === 'string' ? 'application/json' : 'application/octet-stream';
  Object.assign(headers, options.headers);
  const response = await request(`${server.url}${path}`, {
    method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
    headers,
    body: options.body,
  });
  const body = await response.body.text();
  return {
    status: response.statusCode,
    headers: response.headers,
    body,
    json: () => JSON.parse(body) as { error: { code: string; message: string } },
  };
}

const propose = (timeoutMs = 1000): string => JSON.stringify({ command: { op: 'put', key: 'k', value: 'aGk=' }, timeoutMs });

describe('peer server', () => {
  let server: RunningPeerServer;
  // A fresh recorder per test behind one server.
  let r: Recorder = recorder();
  const refusals: PeerRefusal[] = [];
  const handlers: Recorder['handlers'] = {
    onMessages: (m) => r.handlers.onMessages(m),
    onPropose: (c, d) => r.handlers.onPropose(c, d),
    onReadIndex: (d) => r.handlers.onReadIndex(d),
    onTransfer: (t, d) => r.handlers.onTransfer(t, d),
    onStatus: () => r.handlers.onStatus(),
  };

  before(async () => {
    server = await startPeerServer('127.0.0.1', 0, {
      token: TOKEN,
      handlers,
      nodeId: 'b',
      messagesLimitBytes: 4096,
      requestLimitBytes: 1024,
      onRefused: (refusal) => refusals.push(refusal),
    });
  });
  after(async () => {
    await server.close();
  });
  beforeEach(() => {
    r = recorder();
    refusals.length = 0;
  });

  describe('authentication', () => {
    test('the right token is accepted', async () => {
      const reply = await call(server, ROUTES.status);
      assert.equal(reply.status, 200);
      assert.deepEqual(r.calls, ['status']);
      assert.equal(reply.headers['raftlet-protocol'], '1');
    });

    test('a missing, wrong or malformed token gets 401 and reaches no handler', async () => {
      const frame = encodeMessages([heartbeat(1)]);
      const cases: { name: string; token: string | null; headers?: Record<string, string> }[] = [
        { name: 'missing', token: null },
        { name: 'wrong', token: 'not-the-token' },
        { name: 'prefix of the right one', token: TOKEN.slice(0, -1) },
        { name: 'right one plus more', token: `${TOKEN}x` },
        { name: 'other scheme', token: null, headers: { authorization: `Basic ${TOKEN}` } },
        { name: 'bare token', token: null, headers: { authorization: TOKEN } },
      ];
      for (const c of cases) {
        for (const [path, body] of [
          [ROUTES.messages, frame],
          [ROUTES.propose, propose()],
          [ROUTES.readIndex, JSON.stringify({ timeoutMs: 100 })],
          [ROUTES.transfer, JSON.stringify({ to: null, timeoutMs: 100 })],
          [ROUTES.status, undefined],
          ['/raft/v2/messages', frame],
          ['/elsewhere', undefined],
        ] as const) {
          const reply = await call(server, path, { token: c.token, headers: c.headers, body });
          assert.equal(reply.status, 401, `${c.name} token on ${path}`);
          assert.equal(reply.json().error.code, 'unauthorized');
          assert.match(String(reply.headers['www-authenticate']), /^Bearer/);
        }
      }
      assert.deepEqual(r.calls, [], 'no handler may run for an unauthenticated request');
      assert.ok(refusals.every((refusal) => refusal.status === 401));
    });
  });

  describe('protocol version', () => {
    test('a peer announcing another version is refused with a clear message', async () => {
      const reply = await call(server, ROUTES.messages, { version: '2', body: encodeMessages([heartbeat(1)]) });
      assert.equal(reply.status, 426);
      assert.equal(reply.json().error.code, 'protocol_mismatch');
      assert.equal(reply.json().error.message, 'peer speaks raftlet protocol 2, this node speaks 1');
      assert.deepEqual(r.calls, []);
    });

    test('a path of another version is refused the same way', async () => {
      const reply = await call(server, '/raft/v2/propose', { body: propose() });
      assert.equal(reply.status, 426);
      assert.equal(reply.json().error.message, 'peer speaks raftlet protocol 2, this node speaks 1');
      assert.deepEqual(r.calls, []);
    });

    test('a request without the version header is refused', async () => {
      const reply = await call(server, ROUTES.status, { version: null });
      assert.equal(reply.status, 426);
      assert.match(reply.json().error.message, /no Raftlet-Protocol header; this node speaks raftlet protocol 1/);
      assert.deepEqual(r.calls, []);
    });
  });

  describe('malformed and oversized bodies', () => {
    test('bad JSON, bad fields, wrong content type: 400 naming the problem, no handler', async () => {
      const cases: [string, string | Uint8Array, RegExp, Record<string, string>?][] = [
        [ROUTES.propose, '{"command":', /unreadable request body/],
        [ROUTES.propose, '[]', /propose: expected an object/],
        [ROUTES.propose, JSON.stringify({ command: { op: 'put', key: 'k', value: 'aGk=' }, timeoutMs: -5 }), /propose\.timeoutMs/],
        [ROUTES.propose, JSON.stringify({ command: { op: 'put', key: 'k', value: '***' }, timeoutMs: 5 }), /propose\.command\.value: is not valid base64/],
        [ROUTES.propose, JSON.stringify({ command: { op: 'put', key: 'k', value: 'aGk=' }, timeoutMs: 999_999 }), /propose\.timeoutMs: expected 1 to 60000/],
        [ROUTES.readIndex, JSON.stringify({ timeoutMs: 10, extra: true }), /readIndex\.extra: unknown field/],
        [ROUTES.transfer, JSON.stringify({ to: 7, timeoutMs: 10 }), /transfer\.to: expected a string/],
        [ROUTES.propose, propose(), /expected Content-Type application\/json/, { 'content-type': 'text/plain' }],
        [ROUTES.messages, new Uint8Array([1, 2, 3]), /malformed Raft messages: frame\.magic/],
        [ROUTES.messages, new Uint8Array([0x52, 0x4c, WIRE_VERSION, 1, 5, 1, 0x61, 1, 0x62, 3, 7]), /malformed Raft messages: messages\[0\]\.seq: truncated/],
        [ROUTES.messages, encodeMessages([heartbeat(1)]), /expected Content-Type application\/octet-stream/, { 'content-type': 'application/json' }],
        [ROUTES.messages, new Uint8Array(), /malformed Raft messages/],
      ];
      for (const [path, body, message, headers] of cases) {
        const reply = await call(server, path, { body, headers });
        assert.equal(reply.status, 400, `${path} ${String(message)}: ${reply.body}`);
        assert.equal(reply.json().error.code, 'bad_request');
        assert.match(reply.json().error.message, message);
      }
      assert.deepEqual(r.calls, []);
    });

    test('bodies over the route limit get 413; the messages route allows more than the others', async () => {
      const big = JSON.stringify({ command: { op: 'put', key: 'k', value: Buffer.alloc(1500).toString('base64') }, timeoutMs: 100 });
      const tooBig = await call(server, ROUTES.propose, { body: big });
      assert.equal(tooBig.status, 413);
      assert.equal(tooBig.json().error.code, 'payload_too_large');

      const snapshot = (bytes: number) =>
        encodeMessages([{ kind: 'snapshot', from: 'a', to: 'b', term: 1, snapshot: { meta: { index: 1, term: 1, members: [] }, data: new Uint8Array(bytes) } }]);
      const fits = await call(server, ROUTES.messages, { body: snapshot(3000) });
      assert.equal(fits.status, 204, 'a 3000-byte snapshot fits the messages route');
      assert.deepEqual(r.calls, ['messages']);
      const over = await call(server, ROUTES.messages, { body: snapshot(5000) });
      assert.equal(over.status, 413);
      assert.equal(over.json().error.code, 'payload_too_large');
      assert.deepEqual(r.calls, ['messages'], 'the oversized request reached no handler');
    });

    test('messages for another node are refused with 421', async () => {
      const reply = await call(server, ROUTES.messages, { body: encodeMessages([heartbeat(1, 'b'), heartbeat(2, 'c')]) });
      assert.equal(reply.status, 421);
      assert.equal(reply.json().error.code, 'misdirected');
      assert.match(reply.json().error.message, /message for "c" reached node "b"/);
      assert.deepEqual(r.calls, [], 'not even the message addressed to b is delivered');
    });

    test('unknown routes get a JSON 404', async () => {
      const reply = await call(server, '/raft/v1/gossip', { body: '{}' });
      assert.equal(reply.status, 404);
      assert.equal(reply.json().error.code, 'no_route');
    });
  });

  describe('handlers', () => {
    test('Raft messages reach onMessages decoded and in order', async () => {
      const reply = await call(server, ROUTES.messages, { body: encodeMessages([heartbeat(1), heartbeat(2), heartbeat(3)]) });
      assert.equal(reply.status, 204);
      assert.deepEqual(r.batches, [[heartbeat(1), heartbeat(2), heartbeat(3)]]);
    });

    test('a propose gets the handler result and a deadline from the requested timeout', async () => {
      // Deadlines are on the steady clock (src/util/steady-clock.ts), which need not agree with
      // Date.now() to the millisecond once the wall clock has been adjusted.
      const before = steadyNow();
      const reply = await call(server, ROUTES.propose, { body: propose(3000) });
      assert.equal(reply.status, 200);
      assert.deepEqual(JSON.parse(reply.body), { ok: true, index: 7, term: 2 });
      assert.deepEqual(r.proposals[0].cmd, { op: 'put', key: 'k', value: new Uint8Array(Buffer.from('hi')) });
      const deadlineMs = r.proposals[0].deadlineMs;
      assert.ok(deadlineMs >= before + 3000 && deadlineMs <= steadyNow() + 3000, `deadline ${deadlineMs - before} ms after the call began`);
    });

    test('a ClientError from a handler becomes a JSON error with its code and the matching status', async () => {
      const expected: [ClientError['code'], number][] = [
        ['no_leader', 503],
        ['timeout', 504],
        ['bad_request', 400],
        ['unavailable', 503],
        ['payload_too_large', 413],
      ];
      for (const [code, status] of expected) {
        r.propose = async () => {
          throw new ClientError(code, `because ${code}`);
        };
        const reply = await call(server, ROUTES.propose, { body: propose() });
        assert.equal(reply.status, status);
        assert.deepEqual(reply.json(), { error: { code, message: `because ${code}` } });
      }
    });

    test('another exception from a handler is a 500 internal error', async () => {
      r.propose = async () => {
        throw new TypeError('boom');
      };
      const reply = await call(server, ROUTES.propose, { body: propose() });
      assert.equal(reply.status, 500);
      assert.deepEqual(reply.json(), { error: { code: 'internal', message: 'boom' } });
    });

    test('a handler that overruns its deadline is answered with a timeout', async () => {
      r.propose = () => new Promise<never>(() => undefined);
      const reply = await call(server, ROUTES.propose, { body: propose(20) });
      assert.equal(reply.status, 504);
      assert.equal(reply.json().error.code, 'timeout');
      assert.match(reply.json().error.message, /outcome is unknown/);
    });
  });
});

describe('peer server in insecure mode', () => {
  test('accepts requests without a token', async () => {
    const r = recorder();
    const server = await startPeerServer('127.0.0.1', 0, { token: null, handlers: r.handlers });
    try {
      const reply = await call(server, ROUTES.status, { token: null });
      assert.equal(reply.status, 200);
      assert.deepEqual(r.calls, ['status']);
    } finally {
      await server.close();
    }
  });

  test('an empty token is a configuration error, not an open door', async () => {
    await assert.rejects(startPeerServer('127.0.0.1', 0, { token: '', handlers: recorder().handlers }), /cluster token is empty/);
  });
});
