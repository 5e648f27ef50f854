import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { request } from 'undici';
import { MAX_LEADER_WAIT_MS, type ApiOptions } from '../../src/api/app.ts';
import { ClientError } from '../../src/api/ops.ts';
import { waitFor, withFakeApi as withApi, type Answer } from './harness.ts';


function assertError(answer: Answer, status: number, code: string, message?: RegExp): void {
  assert.equal(answer.status, status, answer.body.toString());
  assert.match(String(answer.headers['content-type']), /^application\/json/);
  const body = answer.json() as { error: { code: string; message: string } };
  assert.deepEqual(Object.keys(body), ['error']);
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message']);
  assert.equal(body.error.code, code);
  assert.equal(typeof body.error.message, 'string');
  if (message !== undefined) assert.match(body.error.message, message);
}

const text = (value: string): Buffer => Buffer.from(value, 'utf8');

// ---- status and leader ---------------------------------------------------------------------------

test('GET /v1/status answers exactly the fields of SPEC §4', () =>
  withApi(async (api, ops) => {
    const answer = await api.call('GET', '/v1/status');
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.json(), {
      id: 'n1',
      role: 'leader',
      term: 3,
      leader: 'n1',
      commitIndex: 0,
      appliedIndex: 0,
      lastLogIndex: 0,
      members: [
        { id: 'n1', url: 'http://127.0.0.1:17001', voter: true },
        { id: 'n2', url: 'http://127.0.0.1:17002', voter: true },
        { id: 'n3', url: 'http://127.0.0.1:17003', voter: false },
      ],
    });
    ops.setLeader(null, 4);
    assert.deepEqual((await api.call('GET', '/v1/status')).json(), { ...(answer.json() as object), role: 'follower', term: 4, leader: null });
  }));

test('GET /v1/leader answers the leader, or 503 no_leader', () =>
  withApi(async (api, ops) => {
    const answer = await api.call('GET', '/v1/leader');
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.json(), { id: 'n1', url: 'http://127.0.0.1:17001', term: 3 });
    ops.setLeader(null, 4);
    assertError(await api.call('GET', '/v1/leader'), 503, 'no_leader');
    assert.equal(ops.waits.length, 0, 'without ?wait there is no long poll');
  }));

test('GET /v1/leader?wait holds until the leader changes', () =>
  withApi(async (api, ops) => {
    const pending = api.call('GET', '/v1/leader?wait=60000&term=3');
    await waitFor(() => ops.pendingWaits === 1, 'the long poll to reach the runtime');
    assert.deepEqual(ops.waits, [{ seenLeader: 'n1', seenTerm: 3, waitMs: 60000 }]);
    ops.setLeader('n2', 4);
    const answer = await pending;
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.json(), { id: 'n2', url: 'http://127.0.0.1:17002', term: 4 });
  }));

test('GET /v1/leader?wait answers the unchanged leader once the wait expires', () =>
  withApi(async (api, ops) => {
    const answer = await api.call('GET', '/v1/leader?wait=30&term=3');
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.json(), { id: 'n1', url: 'http://127.0.0.1:17001', term: 3 });
    assert.deepEqual(ops.waits, [{ seenLeader: 'n1', seenTerm: 3, waitMs: 30 }]);
  }));

test('GET /v1/leader?wait: a stale term answers at once; no leader after the wait is 503', () =>
  withApi(async (api, ops) => {
    const stale = await api.call('GET', '/v1/leader?wait=60000&term=2');
    assert.deepEqual(stale.json(), { id: 'n1', url: 'http://127.0.0.1:17001', term: 3 });
    ops.setLeader(null, 4);
    const pending = api.call('GET', '/v1/leader?wait=60000&term=4');
    await waitFor(() => ops.pendingWaits === 1, 'the long poll to reach the runtime');
    assert.deepEqual(ops.waits.at(-1), { seenLeader: null, seenTerm: 4, waitMs: 60000 });
    ops.setLeader(null, 5);
    assertError(await pending, 503, 'no_leader');
  }));

test('GET /v1/leader?wait without term waits from the current term; ?leader= names what the caller saw', () =>
  withApi(async (api, ops) => {
    await api.call('GET', '/v1/leader?wait=1');
    assert.deepEqual(ops.waits.at(-1), { seenLeader: 'n1', seenTerm: 3, waitMs: 1 });
    await api.call('GET', '/v1/leader?wait=1&term=3&leader=');
    assert.deepEqual(ops.waits.at(-1), { seenLeader: null, seenTerm: 3, waitMs: 0 + 1 });
    await api.call('GET', '/v1/leader?wait=1&term=3&leader=n2');
    assert.deepEqual(ops.waits.at(-1), { seenLeader: 'n2', seenTerm: 3, waitMs: 1 });
  }));

test('GET /v1/leader?wait is capped, and bad wait or term values are 400', () =>
  withApi(async (api, ops) => {
    const pending = api.call('GET', `/v1/leader?wait=${MAX_LEADER_WAIT_MS * 10}&term=3`);
    await waitFor(() => ops.pendingWaits === 1, 'the long poll to reach the runtime');
    assert.equal(ops.waits[0].waitMs, MAX_LEADER_WAIT_MS);
    ops.setLeader('n2', 4);
    assert.equal((await pending).status, 200);
    for (const query of ['wait=-1', 'wait=abc', 'wait=1.5', 'wait=', 'wait=1&wait=2', 'wait=10&term=x', 'wait=10&term=-3']) {
      assertError(await api.call('GET', `/v1/leader?${query}`), 400, 'bad_request', /query parameter (wait|term)/);
    }
    assert.equal(ops.waits.length, 1);
  }));

// ---- key-value writes and reads ------------------------------------------------------------------

test('PUT then GET: raw bytes of any content type, index/term answer, ETag = modIndex', () =>
  withApi(async (api, ops) => {
    const put = await api.call('PUT', '/v1/kv/greeting', { body: 'hello', headers: { 'content-type': 'text/plain' } });
    assert.equal(put.status, 200);
    assert.deepEqual(put.json(), { index: 1, term: 3 });
    assert.equal(put.headers.etag, '"1"');
    const get = await api.call('GET', '/v1/kv/greeting');
    assert.equal(get.status, 200);
    assert.deepEqual(get.body, text('hello'));
    assert.equal(get.headers.etag, '"1"');
    assert.equal(get.headers['content-type'], 'application/octet-stream');

    // A JSON-looking body is stored as bytes, not parsed.
    await api.call('PUT', '/v1/kv/json', { body: '{"not": parsed', headers: { 'content-type': 'application/json' } });
    assert.deepEqual((await api.call('GET', '/v1/kv/json')).body, text('{"not": parsed'));

    const binary = Uint8Array.from({ length: 256 }, (_, position) => position);
    ops.term = 4;
    assert.deepEqual((await api.call('PUT', '/v1/kv/binary', { body: binary })).json(), { index: 3, term: 4 });
    assert.deepEqual(new Uint8Array((await api.call('GET', '/v1/kv/binary')).body), binary);

    assert.equal((await api.call('PUT', '/v1/kv/empty', { body: '' })).status, 200);
    const empty = await api.call('GET', '/v1/kv/empty');
    assert.equal(empty.status, 200);
    assert.equal(empty.body.byteLength, 0);
    assert.equal(empty.headers.etag, '"4"');
  }));

test('keys are URL-decoded from the path: slashes, spaces and any script', () =>
  withApi(async (api, ops) => {
    await api.call('PUT', '/v1/kv/app/config', { body: 'a' });
    assert.equal(ops.proposals[0].cmd.key, 'app/config');
    assert.deepEqual((await api.call('GET', '/v1/kv/app%2Fconfig')).body, text('a'), '%2F and / name the same key');
    const key = 'ключ 🔑 +?#%';
    await api.call('PUT', `/v1/kv/${encodeURIComponent(key)}`, { body: 'b' });
    assert.equal(ops.proposals[1].cmd.key, key);
    assert.deepEqual((await api.call('GET', `/v1/kv/${encodeURIComponent(key)}`)).body, text('b'));
    const longest = 'é'.repeat(256);
    assert.equal((await api.call('PUT', `/v1/kv/${encodeURIComponent(longest)}`, { body: 'c' })).status, 200, '512 bytes is allowed');
  }));

test('GET of a missing key is 404 not_found without an ETag', () =>
  withApi(async (api) => {
    const answer = await api.call('GET', '/v1/kv/nothing');
    assertError(answer, 404, 'not_found', /"nothing" does not exist/);
    assert.equal(answer.headers.etag, undefined);
  }));

test('HEAD answers like GET without the body', () =>
  withApi(async (api) => {
    await api.call('PUT', '/v1/kv/k', { body: 'value' });
    const head = await api.call('HEAD', '/v1/kv/k');
    assert.equal(head.status, 200);
    assert.equal(head.headers.etag, '"1"');
    assert.equal(head.body.byteLength, 0);
    assert.equal((await api.call('HEAD', '/v1/kv/missing')).status, 404);
  }));

test('DELETE answers deleted true, then false; a deleted key has no ETag', () =>
  withApi(async (api) => {
    await api.call('PUT', '/v1/kv/k', { body: 'v' });
    const first = await api.call('DELETE', '/v1/kv/k');
    assert.equal(first.status, 200);
    assert.deepEqual(first.json(), { index: 2, term: 3, deleted: true });
    assertError(await api.call('GET', '/v1/kv/k'), 404, 'not_found');
    assert.deepEqual((await api.call('DELETE', '/v1/kv/k')).json(), { index: 3, term: 3, deleted: false });
    assert.deepEqual((await api.call('PUT', '/v1/kv/k', { body: 'w' })).json(), { index: 4, term: 3 }, 'a new index, never an old one');
  }));

test('If-Match makes compare-and-set, If-None-Match: * create-only; failures are 412', () =>
  withApi(async (api) => {
    assertError(await api.call('PUT', '/v1/kv/k', { body: 'v', headers: { 'if-match': '"1"' } }), 412, 'precondition_failed', /does not exist/);
    assertError(await api.call('DELETE', '/v1/kv/k', { headers: { 'if-match': '"1"' } }), 412, 'precondition_failed');
    assert.equal((await api.call('PUT', '/v1/kv/k', { body: 'v1', headers: { 'if-none-match': '*' } })).status, 200);
    assertError(await api.call('PUT', '/v1/kv/k', { body: 'v2', headers: { 'if-none-match': '*' } }), 412, 'precondition_failed', /exists/);
    const etag = String((await api.call('GET', '/v1/kv/k')).headers.etag);
    assert.equal(etag, '"3"');
    const swapped = await api.call('PUT', '/v1/kv/k', { body: 'v3', headers: { 'if-match': etag } });
    assert.deepEqual(swapped.json(), { index: 5, term: 3 });
    assertError(await api.call('PUT', '/v1/kv/k', { body: 'v4', headers: { 'if-match': etag } }), 412, 'precondition_failed', /modIndex is 5/);
    assertError(await api.call('DELETE', '/v1/kv/k', { headers: { 'if-match': etag } }), 412, 'precondition_failed');
    assert.deepEqual((await api.call('GET', '/v1/kv/k')).body, text('v3'));
    assert.deepEqual((await api.call('DELETE', '/v1/kv/k', { headers: { 'if-match': ' "5" ' } })).json(), { index: 8, term: 3, deleted: true });
  }));

test('bad keys are 400 and never proposed', () =>
  withApi(async (api, ops) => {
    // GET /v1/kv/ is the list (as in Consul), so the empty key is checked on writes only.
    assertError(await api.call('PUT', '/v1/kv/', { body: 'v' }), 400, 'bad_request', /must not be empty/);
    assertError(await api.call('DELETE', '/v1/kv/'), 400, 'bad_request', /must not be empty/);
    assert.equal((await api.call('GET', '/v1/kv/')).status, 200);
    const badPaths = [
      `/v1/kv/${'x'.repeat(513)}`,
      `/v1/kv/${encodeURIComponent('é'.repeat(256))}x`,
      '/v1/kv/a%0Ab',
      '/v1/kv/%00',
      '/v1/kv/tab%09',
      '/v1/kv/del%7F',
      '/v1/kv/%C2%85',
      '/v1/kv/%ZZ',
      '/v1/kv/%C3',
      '/v1/kv/%ED%A0%80',
    ];
    for (const path of badPaths) {
      for (const method of ['PUT', 'GET', 'DELETE']) {
        assertError(await api.call(method, path, method === 'PUT' ? { body: 'v' } : {}), 400, 'bad_request');
      }
    }
    assertError(await api.call('PUT', '/v1/kv/a%0Ab', { body: 'v' }), 400, 'bad_request', /control characters \(found U\+000A/);
    assertError(await api.call('PUT', `/v1/kv/${'x'.repeat(513)}`, { body: 'v' }), 400, 'bad_request', /513 bytes/);
    assert.equal(ops.proposals.length, 0);
    assert.equal(ops.readBarriers.length, 1, 'only the list read got as far as a read barrier');
  }));

test('bad If-Match / If-None-Match values are 400 and never proposed', () =>
  withApi(async (api, ops) => {
    await ops.propose({ op: 'put', key: 'k', value: text('v') }, 0);
    ops.proposals.length = 0;
    const badPut: Array<Record<string, string>> = [
      { 'if-match': '1' },
      { 'if-match': '"0"' },
      { 'if-match': '"-1"' },
      { 'if-match': '"abc"' },
      { 'if-match': '"1.5"' },
      { 'if-match': 'W/"1"' },
      { 'if-match': '"1", "2"' },
      { 'if-match': '*' },
      { 'if-match': '""' },
      { 'if-match': '"99999999999999999"' },
      { 'if-none-match': '"1"' },
      { 'if-none-match': 'W/*' },
      { 'if-match': '"1"', 'if-none-match': '*' },
    ];
    for (const headers of badPut) {
      assertError(await api.call('PUT', '/v1/kv/k', { body: 'new', headers }), 400, 'bad_request', /If-Match|If-None-Match/);
    }
    for (const headers of [{ 'if-match': 'abc' }, { 'if-none-match': '*' }] as Array<Record<string, string>>) {
      assertError(await api.call('DELETE', '/v1/kv/k', { headers }), 400, 'bad_request');
    }
    assert.equal(ops.proposals.length, 0);
    assert.deepEqual((await api.call('GET', '/v1/kv/k')).body, text('v'));
  }));

test('a value over maxValueBytes is 413 and never proposed; exactly the limit is fine', () =>
  withApi(
    async (api, ops) => {
      assert.equal((await api.call('PUT', '/v1/kv/k', { body: 'x'.repeat(64) })).status, 200);
      const declared = await api.call('PUT', '/v1/kv/k', { body: 'x'.repeat(65) });
      assertError(declared, 413, 'payload_too_large', /at most 64 bytes; this one is 65 bytes/);
      assert.equal(declared.headers.connection, 'close');
      // Chunked, so the server only learns the size while reading.
      async function* chunks(): AsyncGenerator<Uint8Array> {
        for (let count = 0; count < 10; count++) yield new Uint8Array(16);
      }
      const response = await request(`${api.base}/v1/kv/k`, { method: 'PUT', body: Readable.from(chunks()), dispatcher: api.agent });
      const streamed = { status: response.statusCode, body: await response.body.json() };
      assert.equal(streamed.status, 413);
      assert.deepEqual((streamed.body as { error: { code: string } }).error.code, 'payload_too_large');
      assert.equal(ops.proposals.length, 1, 'only the good PUT was proposed');
      assert.equal(ops.store.get('k')?.value.byteLength, 64);
    },
    { maxValueBytes: 64 },
  ));

test('an oversized Content-Length is refused before the body arrives', () =>
  withApi(
    async (api, ops) => {
      const socket = connect(api.port, '127.0.0.1');
      try {
        const answer = await new Promise<string>((resolve, reject) => {
          let received = '';
          socket.on('data', (chunk: Buffer) => {
            received += chunk.toString('latin1');
          });
          socket.on('end', () => resolve(received));
          socket.on('error', reject);
          // Claims 10 GB and sends 5 bytes: the answer must come without waiting for the rest.
          socket.write('PUT /v1/kv/big HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10000000000\r\n\r\nxxxxx');
        });
        assert.match(answer, /^HTTP\/1\.1 413 /);
        assert.match(answer, /"code":"payload_too_large"/);
      } finally {
        socket.destroy();
      }
      assert.equal(ops.proposals.length, 0);
    },
    { maxValueBytes: 64 },
  ));

test('reads are linearizable by default and ?consistency=stale skips the read barrier', () =>
  withApi(async (api, ops) => {
    await api.call('PUT', '/v1/kv/k', { body: 'v' });
    assert.equal((await api.call('GET', '/v1/kv/k')).status, 200);
    assert.equal(ops.readBarriers.length, 1);
    assert.equal((await api.call('GET', '/v1/kv/k?consistency=linearizable')).status, 200);
    assert.equal(ops.readBarriers.length, 2);
    assert.deepEqual((await api.call('GET', '/v1/kv/k?consistency=stale')).body, text('v'));
    assert.equal(ops.readBarriers.length, 2);
    assert.equal((await api.call('GET', '/v1/kv?prefix=k')).status, 200);
    assert.equal(ops.readBarriers.length, 3);
    assert.equal((await api.call('GET', '/v1/kv?prefix=k&consistency=stale')).status, 200);
    assert.equal(ops.readBarriers.length, 3);
    assertError(await api.call('GET', '/v1/kv/k?consistency=eventual'), 400, 'bad_request', /linearizable, stale/);
    assertError(await api.call('GET', '/v1/kv?consistency=eventual'), 400, 'bad_request');
    assert.equal(ops.readBarriers.length, 3);
    assertError(await api.call('GET', '/v1/kv/missing'), 404, 'not_found');
    assert.equal(ops.readBarriers.length, 4, 'a 404 is linearizable too');
  }));

test('GET /v1/kv lists in UTF-8 byte order under a prefix, with the applied index', () =>
  withApi(async (api, ops) => {
    for (const key of ['b', '\u{10000}', 'a/2', '\uffff', 'a/1', 'a', 'ab']) {
      await ops.propose({ op: 'put', key, value: text(`v-${key}`) }, 0);
    }
    await ops.propose({ op: 'put', key: 'bin', value: Uint8Array.from([0xff, 0x00]) }, 0);
    const all = await api.call('GET', '/v1/kv');
    assert.equal(all.status, 200);
    assert.deepEqual(all.json(), {
      items: [
        { key: 'a', value: 'v-a', modIndex: 6 },
        { key: 'a/1', value: 'v-a/1', modIndex: 5 },
        { key: 'a/2', value: 'v-a/2', modIndex: 3 },
        { key: 'ab', value: 'v-ab', modIndex: 7 },
        { key: 'b', value: 'v-b', modIndex: 1 },
        { key: 'bin', value: '/wA=', encoding: 'base64', modIndex: 8 },
        { key: '\uffff', value: 'v-\uffff', modIndex: 4 },
        { key: '\u{10000}', value: 'v-\u{10000}', modIndex: 2 },
      ],
      index: 8,
    });
    assert.deepEqual((await api.call('GET', '/v1/kv?prefix=a%2F')).json(), {
      items: [
        { key: 'a/1', value: 'v-a/1', modIndex: 5 },
        { key: 'a/2', value: 'v-a/2', modIndex: 3 },
      ],
      index: 8,
    });
    assert.deepEqual((await api.call('GET', '/v1/kv?prefix=a&limit=2')).json(), {
      items: [
        { key: 'a', value: 'v-a', modIndex: 6 },
        { key: 'a/1', value: 'v-a/1', modIndex: 5 },
      ],
      index: 8,
    });
    assert.deepEqual((await api.call('GET', '/v1/kv?prefix=b&encoding=base64')).json(), {
      items: [
        { key: 'b', value: Buffer.from('v-b').toString('base64'), encoding: 'base64', modIndex: 1 },
        { key: 'bin', value: '/wA=', encoding: 'base64', modIndex: 8 },
      ],
      index: 8,
    });
    assert.deepEqual((await api.call('GET', '/v1/kv?prefix=zzz')).json(), { items: [], index: 8 });
  }));

test('GET /v1/kv answers 100 items by default, at most 1000, and refuses bad limits and prefixes', () =>
  withApi(async (api, ops) => {
    for (let number = 0; number < 1001; number++) {
      await ops.propose({ op: 'put', key: `k${String(number).padStart(4, '0')}`, value: new Uint8Array() }, 0);
    }
    const items = async (query: string): Promise<number> => ((await api.call('GET', `/v1/kv?${query}`)).json() as { items: unknown[] }).items.length;
    assert.equal(await items(''), 100);
    assert.equal(await items('limit=1000'), 1000);
    assert.equal(await items('limit=1'), 1);
    for (const query of ['limit=0', 'limit=1001', 'limit=-1', 'limit=abc', 'limit=1e3', 'limit=', 'limit=1&limit=2', 'prefix=a&prefix=b', 'encoding=hex']) {
      assertError(await api.call('GET', `/v1/kv?${query}`), 400, 'bad_request', /query parameter/);
    }
    assertError(await api.call('GET', '/v1/kv?prefix=a%0A'), 400, 'bad_request', /prefix must not contain control characters/);
    assertError(await api.call('GET', `/v1/kv?prefix=${'x'.repeat(513)}`), 400, 'bad_request', /prefix is 513 bytes/);
  }));

// ---- leadership transfer -------------------------------------------------------------------------

test('POST /v1/leader/transfer: empty body = any follower, {"to"} = that member', () =>
  withApi(async (api, ops) => {
    const any = await api.call('POST', '/v1/leader/transfer');
    assert.equal(any.status, 200);
    assert.deepEqual(any.json(), { leader: 'n2', term: 4 });
    const named = await api.call('POST', '/v1/leader/transfer', { body: '{"to":"n3"}', headers: { 'content-type': 'application/json' } });
    assert.deepEqual(named.json(), { leader: 'n3', term: 5 });
    await api.call('POST', '/v1/leader/transfer', { body: ' {"to": null} ' });
    await api.call('POST', '/v1/leader/transfer', { body: '{}' });
    assert.deepEqual(
      ops.transfers.map((transfer) => transfer.to),
      [null, 'n3', null, null],
    );
    assertError(await api.call('POST', '/v1/leader/transfer', { body: '{"to":"n9"}' }), 400, 'bad_request', /n9 is not a member/);
  }));

test('POST /v1/leader/transfer refuses malformed JSON and bad fields with 400', () =>
  withApi(async (api, ops) => {
    for (const body of ['{"to":', 'to=n2', '[]', 'null', '"n2"', '{"to":5}', '{"to":""}', '{"target":"n2"}']) {
      assertError(await api.call('POST', '/v1/leader/transfer', { body, headers: { 'content-type': 'application/json' } }), 400, 'bad_request');
    }
    assertError(await api.call('POST', '/v1/leader/transfer', { body: '{"to":' }), 400, 'bad_request', /not valid JSON/);
    assertError(await api.call('POST', '/v1/leader/transfer', { body: ' '.repeat(70_000) }), 413, 'payload_too_large');
    assert.equal(ops.transfers.length, 0);
  }));

// ---- errors from the runtime, routes and deadlines -----------------------------------------------

test('runtime errors map to their statuses; a write timeout says the outcome is unknown', () =>
  withApi(async (api, ops) => {
    ops.proposeError = new ClientError('no_leader', 'no leader within 5000 ms; the write was not proposed');
    assertError(await api.call('PUT', '/v1/kv/k', { body: 'v' }), 503, 'no_leader', /not proposed/);
    ops.proposeError = new ClientError('timeout', 'the write was not committed within 5000 ms');
    assertError(await api.call('DELETE', '/v1/kv/k'), 504, 'timeout', /committed within 5000 ms; the outcome of the write is unknown/);
    ops.proposeError = new ClientError('timeout', 'commit not seen in time: outcome unknown');
    assertError(await api.call('PUT', '/v1/kv/k', { body: 'v' }), 504, 'timeout', /^commit not seen in time: outcome unknown$/);
    ops.proposeError = new ClientError('unavailable', 'shutting down');
    assertError(await api.call('PUT', '/v1/kv/k', { body: 'v' }), 503, 'unavailable');
    ops.readBarrierError = new ClientError('timeout', 'read barrier not confirmed in time');
    assertError(await api.call('GET', '/v1/kv/k'), 504, 'timeout');
    ops.readBarrierError = new ClientError('no_leader', 'no leader');
    assertError(await api.call('GET', '/v1/kv'), 503, 'no_leader');
    ops.transferError = new ClientError('timeout', 'no new leader in time');
    assertError(await api.call('POST', '/v1/leader/transfer'), 504, 'timeout');
  }));

test('an unexpected runtime error is 500 internal_error and is logged', async () => {
  const logged: Array<{ details: object; message: string }> = [];
  const logger = { error: (details: object, message: string) => logged.push({ details, message }), warn: () => undefined };
  await withApi(
    async (api, ops) => {
      ops.proposeError = new TypeError('boom');
      assertError(await api.call('PUT', '/v1/kv/k', { body: 'v' }), 500, 'internal_error');
      assert.equal(logged.length, 1);
      assert.equal((logged[0].details as { err: unknown }).err, ops.proposeError);
    },
    { logger },
  );
});

test('unknown routes are 404 and wrong methods 405, in the same JSON shape', () =>
  withApi(async (api, ops) => {
    assertError(await api.call('GET', '/v2/kv/k'), 404, 'not_found', /no route GET \/v2\/kv\/k/);
    assertError(await api.call('GET', '/'), 404, 'not_found');
    assertError(await api.call('GET', '/v1/kvx'), 404, 'not_found');
    const cases: Array<[string, string, string]> = [
      ['POST', '/v1/status', 'GET, HEAD'],
      ['DELETE', '/v1/leader', 'GET, HEAD'],
      ['GET', '/v1/leader/transfer', 'POST'],
      ['PUT', '/v1/kv', 'GET, HEAD'],
      ['POST', '/v1/kv/k', 'GET, HEAD, PUT, DELETE'],
      ['PATCH', '/v1/kv/k', 'GET, HEAD, PUT, DELETE'],
    ];
    for (const [method, path, allowed] of cases) {
      const answer = await api.call(method, path, { body: method === 'GET' ? undefined : 'x' });
      assertError(answer, 405, 'method_not_allowed');
      assert.equal(answer.headers.allow, allowed);
    }
    assert.equal(ops.proposals.length, 0);
  }));

test('each request gets the deadline now + requestTimeoutMs on the given clock', () =>
  withApi(
    async (api, ops) => {
      await api.call('PUT', '/v1/kv/k', { body: 'v' });
      await api.call('DELETE', '/v1/kv/k');
      await api.call('GET', '/v1/kv/k');
      await api.call('GET', '/v1/kv');
      await api.call('POST', '/v1/leader/transfer');
      assert.deepEqual(ops.proposals.map((proposal) => proposal.deadlineMs), [1_000_250, 1_000_250]);
      assert.deepEqual(ops.readBarriers, [1_000_250, 1_000_250]);
      assert.deepEqual(ops.transfers.map((transfer) => transfer.deadlineMs), [1_000_250]);
    },
    { now: () => 1_000_000, requestTimeoutMs: 250 },
  ));

// ---- writes answered without Express -----------------------------------------------------------

/** Header names and values as sent, in order, without Date (which changes). */
function sentHeaders(raw: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() !== 'date') out.push(`${raw[i]}: ${raw[i + 1]}`);
  return out;
}

async function rawAnswer(url: string, method: string, agent: import('node:http').Agent, body?: string): Promise<{ status: number; headers: string[]; body: string }> {
  const { request: httpRequest } = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, agent }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: sentHeaders(res.rawHeaders), body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('PUT and DELETE answers (successes and errors) carry the very headers and bodies Express res.json sends', async () => {
  const express = (await import('express')).default;
  const { Agent, createServer } = await import('node:http');
  const agent = new Agent({ keepAlive: true });
  // What Express itself answers for the same status, headers and body.
  const reference = express();
  reference.disable('x-powered-by');
  reference.set('etag', false);
  let next: { status: number; headers: Record<string, string>; body: unknown } = { status: 200, headers: {}, body: null };
  reference.use((_req, res) => {
    res.status(next.status).set(next.headers).json(next.body);
  });
  const server = createServer(reference);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as { port: number }).port;
  try {
    await withApi(async (api, ops) => {
      const cases: Array<{ method: string; path: string; body?: string; setup?: () => void }> = [
        { method: 'PUT', path: '/v1/kv/a', body: 'v' },
        { method: 'PUT', path: '/v1/kv/a?ignored=1', body: 'v' },
        { method: 'DELETE', path: '/v1/kv/a' },
        { method: 'DELETE', path: '/v1/kv/missing' },
        { method: 'PUT', path: '/v1/kv/', body: 'v' },
        { method: 'PUT', path: '/v1/kv/%ff', body: 'v' },
        { method: 'PUT', path: '/v1/kv/a', body: 'x'.repeat(2000) },
        { method: 'PUT', path: '/v1/kv/b', body: 'v', setup: () => (ops.proposeError = new ClientError('no_leader', 'no leader right now')) },
        { method: 'DELETE', path: '/v1/kv/b', setup: () => (ops.proposeError = new ClientError('timeout', 'proposed; its outcome is unknown')) },
      ];
      for (const c of cases) {
        ops.proposeError = null;
        c.setup?.();
        const got = await rawAnswer(api.base + c.path, c.method, agent, c.body);
        const headers: Record<string, string> = {};
        for (const line of got.headers) {
          const [name, ...rest] = line.split(': ');
          const value = rest.join(': ');
          // What res.json adds itself, and what node:http adds to every keep-alive answer.
          if (/^(content-type|content-length|keep-alive)$/i.test(name) || (/^connection$/i.test(name) && value === 'keep-alive')) continue;
          headers[name] = value;
        }
        next = { status: got.status, headers, body: JSON.parse(got.body) };
        const want = await rawAnswer(`http://127.0.0.1:${port}/`, 'GET', agent);
        assert.deepEqual(got, want, `${c.method} ${c.path}`);
      }
    }, { maxValueBytes: 1024 });
  } finally {
    agent.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
