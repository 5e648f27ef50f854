// Fuzzing the client API (SPEC §4) of a running node with requests that are wrong by
// construction: bad keys, bad conditions, bad query parameters, oversized values, wrong methods
// and routes, malformed transfer bodies, broken framing. Each must get a 4xx with a JSON error
// (never a 5xx), and none may change the node's state (term, leader, log, data).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { Cluster } from '../support/cluster.ts';
import { assertUnchanged, rawRequest, startTarget, stateOf, type NodeState } from './target.ts';

const MAX_VALUE_BYTES = 1024;
const RUNS = 150;

interface Bad {
  readonly what: string;
  readonly method: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
}

const word = fc.stringMatching(/^[a-z0-9_.-]{0,8}$/);

/** Percent-encoded pieces no key may contain. */
const badKeyPiece = fc.constantFrom(
  '%00', '%01', '%09', '%0A', '%0D', '%1F', '%7F', '%C2%85', '%C2%9F', // control characters
  '%', '%z', '%zz', '%C3', '%E2%82', '%C0%AF', '%ED%A0%80', '%FF', '%80', // not percent-encoded UTF-8
);

const badKeyPath: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(word, badKeyPiece, word).map(([a, bad, b]) => `${a}${bad}${b}`),
  fc.integer({ min: 513, max: 2000 }).map((n) => 'k'.repeat(n)),
  fc.integer({ min: 257, max: 400 }).map((n) => '%C3%A9'.repeat(n)), // é is 2 bytes
);

function isValidIfMatch(text: string): boolean {
  const m = /^"([0-9]{1,16})"$/.exec(text.trim());
  return m !== null && Number(m[1]) >= 1 && Number.isSafeInteger(Number(m[1]));
}

const badIfMatch = fc.oneof(
  fc.constantFrom('', 'abc', '5', '"-1"', '"0"', '"00"', '"1.5"', '"12345678901234567"', 'W/"5"', '"5", "6"', '*', '"5"x', '"', '""', '" 5"', '"0x10"'),
  fc.stringMatching(/^[\x20-\x7e]{0,24}$/).filter((t) => !isValidIfMatch(t)),
);

const existingOrNewKey = fc.constantFrom('beta', 'gamma', 'alpha', 'fresh-key');

const badRequest: fc.Arbitrary<Bad> = fc.oneof(
  // Keys the rules refuse, with every method that takes a key.
  fc.tuple(fc.constantFrom('GET', 'HEAD', 'PUT', 'DELETE'), badKeyPath).map(([method, key]) => ({
    what: `${method} a bad key`,
    method,
    path: `/v1/kv/${key}`,
    ...(method === 'PUT' ? { body: 'value' } : {}),
  })),
  // An empty key (GET /v1/kv/ is the list, a route of its own).
  fc.constantFrom('PUT', 'DELETE').map((method) => ({ what: `${method} an empty key`, method, path: '/v1/kv/', ...(method === 'PUT' ? { body: 'value' } : {}) })),
  // Conditions that are not one quoted modIndex / not *.
  fc.tuple(fc.constantFrom('PUT', 'DELETE'), existingOrNewKey, badIfMatch).map(([method, key, ifMatch]) => ({
    what: `${method} If-Match ${JSON.stringify(ifMatch)}`,
    method,
    path: `/v1/kv/${key}`,
    headers: { 'if-match': ifMatch },
    ...(method === 'PUT' ? { body: 'value' } : {}),
  })),
  fc.tuple(existingOrNewKey, fc.constantFrom('"5"', 'W/"1"', '**', '', 'none', '*, "5"')).map(([key, ifNoneMatch]) => ({
    what: `PUT If-None-Match ${JSON.stringify(ifNoneMatch)}`,
    method: 'PUT',
    path: `/v1/kv/${key}`,
    headers: { 'if-none-match': ifNoneMatch },
    body: 'value',
  })),
  existingOrNewKey.map((key) => ({ what: 'DELETE If-None-Match *', method: 'DELETE', path: `/v1/kv/${key}`, headers: { 'if-none-match': '*' } })),
  existingOrNewKey.map((key) => ({ what: 'PUT with both conditions', method: 'PUT', path: `/v1/kv/${key}`, headers: { 'if-match': '"4"', 'if-none-match': '*' }, body: 'v' })),
  // Values over RAFTLET_MAX_VALUE_BYTES.
  fc.tuple(existingOrNewKey, fc.integer({ min: MAX_VALUE_BYTES + 1, max: MAX_VALUE_BYTES * 8 })).map(([key, size]) => ({
    what: `PUT a ${size}-byte value`,
    method: 'PUT',
    path: `/v1/kv/${key}`,
    body: Buffer.alloc(size, 0x61),
  })),
  // Query parameters out of range or of the wrong shape.
  fc.tuple(existingOrNewKey, fc.constantFrom('consistency=', 'consistency=strong', 'consistency=STALE', 'consistency=stale&consistency=stale')).map(([key, q]) => ({
    what: `GET ?${q}`,
    method: 'GET',
    path: `/v1/kv/${key}?${q}`,
  })),
  fc.constantFrom(
    'limit=-1', 'limit=0', 'limit=1001', 'limit=abc', 'limit=1.5', 'limit=1e3', 'limit=99999999999999999', 'limit=',
    'prefix=%00', 'prefix=a%7Fb', 'prefix=a&prefix=b', 'encoding=hex', 'encoding=', 'consistency=bogus',
  ).map((q) => ({ what: `GET /v1/kv?${q}`, method: 'GET', path: `/v1/kv?${q}` })),
  fc.constantFrom('wait=-1', 'wait=x', 'wait=1e3', 'wait=1.5', 'wait=99999999999999999', 'term=-1', 'term=abc', 'wait=10&wait=20', 'wait=10&term=1.5')
    .map((q) => ({ what: `GET /v1/leader?${q}`, method: 'GET', path: `/v1/leader?${q}` })),
  // Methods a route does not serve, and routes that do not exist.
  fc.tuple(fc.constantFrom('POST', 'PATCH', 'OPTIONS'), existingOrNewKey).map(([method, key]) => ({ what: `${method} a key`, method, path: `/v1/kv/${key}`, body: 'x' })),
  fc.constantFrom<[string, string]>(['PUT', '/v1/status'], ['DELETE', '/v1/kv'], ['POST', '/v1/kv'], ['GET', '/v1/leader/transfer'], ['PUT', '/v1/leader'], ['DELETE', '/v1/status'])
    .map(([method, path]) => ({ what: `${method} ${path}`, method, path })),
  fc.tuple(fc.constantFrom('GET', 'PUT', 'POST', 'DELETE'), fc.constantFrom('/', '/v1', '/v1/', '/v2/kv/x', '/v1/kvx', '/v1/statuses', '/raft/v1/messages', '/v1/leader/transfer/now'))
    .map(([method, path]) => ({ what: `${method} ${path}`, method, path })),
  // Transfer bodies that are not {"to": "<id>"} or nothing.
  fc.oneof(
    fc.constantFrom('{', '[]', '5', '"node-1"', 'null', '{"to":5}', '{"to":""}', '{"x":1}', '{"to":"node-1","x":2}', '{"to":[]}', '{"to":{}}', 'true'),
    fc.string({ minLength: 1, maxLength: 40 }).filter((s) => {
      try {
        JSON.parse(s);
        return false;
      } catch {
        return s.trim() !== '';
      }
    }),
  ).map((body) => ({ what: `transfer body ${JSON.stringify(body)}`, method: 'POST', path: '/v1/leader/transfer', headers: { 'content-type': 'application/json' }, body })),
  fc.constant({ what: 'a 65 KiB transfer body', method: 'POST', path: '/v1/leader/transfer', headers: { 'content-type': 'application/json' }, body: `{"to":"${'x'.repeat(65 * 1024)}"}` }),
);

describe('client API fuzzing', () => {
  let cluster: Cluster;
  let baseline: NodeState;

  before(async () => {
    cluster = await startTarget('fuzz-client', { RAFTLET_MAX_VALUE_BYTES: String(MAX_VALUE_BYTES) });
    baseline = await stateOf(cluster);
  });

  after(async () => {
    await cluster?.stopAll();
  });

  it('answers every malformed request with a 4xx JSON error, never a 5xx, and changes nothing', async () => {
    const seen = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(badRequest, async (bad) => {
        const answer = await cluster.request(1, bad.method, bad.path, {
          headers: { ...(bad.body !== undefined ? { 'content-type': 'application/octet-stream' } : {}), ...bad.headers },
          ...(bad.body === undefined ? {} : { body: bad.body }),
          timeoutMs: 15_000,
        });
        seen.set(answer.status, (seen.get(answer.status) ?? 0) + 1);
        assert.ok(answer.status >= 400 && answer.status < 500, `${bad.what} (${bad.method} ${bad.path.slice(0, 100)}): ${answer.status} ${answer.text.slice(0, 300)}`);
        if (bad.method !== 'HEAD') assert.equal(typeof answer.errorCode, 'string', `${bad.what}: not a JSON error: ${answer.text.slice(0, 200)}`);
        await assertUnchanged(cluster, baseline, `${bad.what} (${bad.method} ${bad.path.slice(0, 100)})`);
      }),
      { numRuns: RUNS, endOnFailure: true },
    );
    // The generator must reach the different refusals, or it tests less than it claims.
    for (const status of [400, 404, 405, 413]) assert.ok((seen.get(status) ?? 0) > 0, `no request was answered ${status}: ${JSON.stringify([...seen])}`);
  });

  it('refuses an oversized value sent without a Content-Length (chunked) with 413', async () => {
    // Raw, all at once: the node answers 413 and closes as soon as the limit is passed, and an
    // HTTP client still writing the body would see EPIPE instead of the answer.
    const chunk = 'b'.repeat(MAX_VALUE_BYTES / 2);
    const body = `${`${(MAX_VALUE_BYTES / 2).toString(16)}\r\n${chunk}\r\n`.repeat(8)}0\r\n\r\n`;
    const head = 'PUT /v1/kv/chunked HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n';
    const status = await rawRequest(cluster.spec(1).apiPort, head, Buffer.from(body));
    assert.equal(status, 413);
    await assertUnchanged(cluster, baseline, 'a chunked oversized PUT');
  });

  it('survives broken framing: a body cut short, a bad or doubled Content-Length, garbage', async () => {
    const port = cluster.spec(1).apiPort;
    const cases: { what: string; head: string; body: string; half?: boolean }[] = [
      { what: 'a PUT body cut short', head: 'PUT /v1/kv/cut HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n', body: 'only ten b', half: true },
      { what: 'a PUT body cut short, then closed', head: 'PUT /v1/kv/cut HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n', body: 'only ten b' },
      { what: 'a declared 2 GB value', head: 'PUT /v1/kv/cut HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000000\r\n\r\n', body: 'x', half: true },
      { what: 'Content-Length -1', head: 'PUT /v1/kv/cut HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n', body: 'x' },
      { what: 'Content-Length abc', head: 'PUT /v1/kv/cut HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n', body: 'x' },
      { what: 'two different Content-Lengths', head: 'PUT /v1/kv/cut HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', body: 'xy' },
      { what: 'a transfer body cut short', head: 'POST /v1/leader/transfer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n', body: '{"to":', half: true },
      { what: 'garbage instead of HTTP', head: '\x00\x01\x02 garbage\r\n\r\n', body: '' },
    ];
    for (const c of cases) {
      const status = await rawRequest(port, c.head, Buffer.from(c.body, 'latin1'), { half: c.half === true, waitMs: 500 });
      assert.ok(status === null || (status >= 400 && status < 500), `${c.what}: ${status}`);
      await assertUnchanged(cluster, baseline, c.what);
    }
  });

  it('control: a valid PUT does change the state the checks compare', async () => {
    await cluster.putOk(1, 'control', 'changed');
    assert.notDeepEqual(await stateOf(cluster), baseline);
  });
});
