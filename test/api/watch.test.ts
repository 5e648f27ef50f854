// Watches on the client API (SPEC §4): blocking queries on a key and on a prefix, and the
// server-sent event stream (order, ids, resume, resync when the history is gone or the client is
// too slow, limits, shutdown, metrics hooks). Driven through FakeOps, whose KvStore is real.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { request } from 'undici';
import type { ApiOptions } from '../../src/api/app.ts';
import type { WatchDropReason, WatchKind } from '../../src/api/watch.ts';
import { encodeKvCommand } from '../../src/kv/codec.ts';
import { KvStore } from '../../src/kv/store.ts';
import type { ChangeHistoryOptions } from '../../src/kv/history.ts';
import { FakeOps } from './fake-ops.ts';
import { startApi, waitFor, type Harness } from './harness.ts';

interface Seen {
  readonly watchers: Map<WatchKind, number>;
  sent: number;
  readonly dropped: WatchDropReason[];
}

async function withApi(
  body: (api: Harness, ops: FakeOps, seen: Seen, shutdown: AbortController) => Promise<void>,
  options: { history?: ChangeHistoryOptions; api?: Partial<ApiOptions> } = {},
): Promise<void> {
  const ops = new FakeOps(options.history === undefined ? {} : { history: options.history });
  const seen: Seen = { watchers: new Map(), sent: 0, dropped: [] };
  const shutdown = new AbortController();
  const api = await startApi(ops, {
    shutdown: shutdown.signal,
    watchHooks: {
      onWatchers: (kind, count) => seen.watchers.set(kind, count),
      onEventsSent: (count) => (seen.sent += count),
      onDropped: (reason) => seen.dropped.push(reason),
    },
    ...options.api,
  });
  try {
    await body(api, ops, seen, shutdown);
  } finally {
    shutdown.abort();
    ops.close();
    await api.close();
  }
}

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

/** Applies a put straight to the store (as the runtime applies a committed entry). */
function put(ops: FakeOps, key: string, value: string | Uint8Array, term = 3): number {
  const index = ops.store.appliedIndex + 1;
  ops.store.apply(index, term, encodeKvCommand({ op: 'put', key, value: typeof value === 'string' ? bytes(value) : value }));
  return index;
}

function del(ops: FakeOps, key: string): number {
  const index = ops.store.appliedIndex + 1;
  ops.store.apply(index, 3, encodeKvCommand({ op: 'del', key }));
  return index;
}

// ---- blocking queries ------------------------------------------------------------------------------

test('GET /v1/kv/<key>?index=N waits for a change of that key after N, then answers it', () =>
  withApi(async (api, ops, seen) => {
    const first = put(ops, 'cfg', 'v1');
    const now = await api.call('GET', `/v1/kv/cfg?index=0&wait=60000`);
    assert.equal(now.body.toString(), 'v1', 'changed after 0 already: at once');
    assert.equal(now.headers['x-raftlet-index'], String(first));
    const started = Date.now();
    const pending = api.call('GET', `/v1/kv/cfg?index=${first}&wait=60000`);
    await waitFor(() => seen.watchers.get('blocking') === 1, 'the query to block');
    put(ops, 'cfg-other', 'x'); // another key, even one the key is a prefix of: still waiting
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(seen.watchers.get('blocking'), 1);
    const second = put(ops, 'cfg', 'v2');
    const answer = await pending;
    assert.equal(answer.status, 200);
    assert.equal(answer.body.toString(), 'v2');
    assert.equal(answer.headers.etag, `"${second}"`);
    assert.equal(answer.headers['x-raftlet-index'], String(second));
    assert.ok(Date.now() - started < 30_000);
    assert.equal(seen.watchers.get('blocking'), 0, 'the slot is given back');
    assert.ok(ops.readBarriers.length >= 2, 'a read barrier before waiting, as for any linearizable read');
  }));

test('a blocking query wakes on a delete (404 with the index) and answers the unchanged state when the wait ends', () =>
  withApi(async (api, ops, seen) => {
    const index = put(ops, 'k', 'v');
    const expired = await api.call('GET', `/v1/kv/k?index=${index}&wait=30`);
    assert.equal(expired.status, 200);
    assert.equal(expired.body.toString(), 'v');
    const pending = api.call('GET', `/v1/kv/k?index=${index}&wait=60000`);
    await waitFor(() => seen.watchers.get('blocking') === 1, 'the query to block');
    const deleted = del(ops, 'k');
    const answer = await pending;
    assert.equal(answer.status, 404);
    assert.equal(answer.headers['x-raftlet-index'], String(deleted));
  }));

test('GET /v1/kv?prefix=P&index=N waits for any change under the prefix', () =>
  withApi(async (api, ops, seen) => {
    const index = put(ops, 'app/a', '1');
    const pending = api.call('GET', `/v1/kv?prefix=app/&index=${index}&wait=60000`);
    await waitFor(() => seen.watchers.get('blocking') === 1, 'the query to block');
    put(ops, 'other', 'x');
    const changed = put(ops, 'app/b', '2');
    const answer = await pending;
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.json(), {
      items: [
        { key: 'app/a', value: '1', modIndex: index },
        { key: 'app/b', value: '2', modIndex: changed },
      ],
      index: changed,
    });
    assert.equal(answer.headers['x-raftlet-index'], String(changed));
  }));

test('a blocking query whose index is older than the history answers at once (the caller re-reads)', () =>
  withApi(
    async (api, ops) => {
      for (let i = 0; i < 5; i++) put(ops, `k${i}`, 'x');
      assert.ok(ops.store.changes.floor > 1);
      const answer = await api.call('GET', '/v1/kv/k9?index=1&wait=60000');
      assert.equal(answer.status, 404, 'no change of k9 is known, but changes after 1 may be gone');
    },
    { history: { maxChanges: 2, maxBytes: 1 << 20 } },
  ));

test('a blocking query ends when the client leaves, and wait without index is 400', () =>
  withApi(async (api, ops, seen) => {
    const index = put(ops, 'k', 'v');
    const controller = new AbortController();
    const pending = request(`${api.base}/v1/kv/k?index=${index}&wait=60000`, { signal: controller.signal, dispatcher: api.agent }).catch(() => null);
    await waitFor(() => seen.watchers.get('blocking') === 1, 'the query to block');
    controller.abort();
    await pending;
    await waitFor(() => seen.watchers.get('blocking') === 0, 'the slot to be given back');
    const bad = await api.call('GET', '/v1/kv/k?wait=10');
    assert.equal(bad.status, 400);
    assert.match((bad.json() as { error: { message: string } }).error.message, /wait needs index/);
  }));

// ---- server-sent events ----------------------------------------------------------------------------

interface Event {
  readonly id: string | null;
  readonly event: string;
  readonly data: Record<string, unknown>;
}

/** A raw SSE reader: the test parses the stream itself rather than trusting the client library. */
async function openStream(api: Harness, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; next(): Promise<Event>; close(): void; body: string }> {
  const controller = new AbortController();
  const response = await request(`${api.base}${path}`, { headers, signal: controller.signal, dispatcher: api.agent });
  let buffer = '';
  const queue: Event[] = [];
  let waiting: ((event: Event) => void) | null = null;
  let failed: ((error: Error) => void) | null = null;
  let ended = false;
  const state = { body: '' };
  response.body.setEncoding('utf8');
  response.body.on('data', (chunk: string) => {
    state.body += chunk;
    buffer += chunk;
    for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let id: string | null = null;
      let event = 'message';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('id: ')) id = line.slice(4);
        else if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      const parsed: Event = { id, event, data: data === '' ? {} : (JSON.parse(data) as Record<string, unknown>) };
      if (waiting) {
        const deliver = waiting;
        waiting = null;
        deliver(parsed);
      } else queue.push(parsed);
    }
  });
  response.body.on('end', () => {
    ended = true;
    failed?.(new Error('stream ended'));
  });
  response.body.on('error', () => undefined);
  return {
    status: response.statusCode,
    headers: response.headers,
    get body() {
      return state.body;
    },
    next(): Promise<Event> {
      const ready = queue.shift();
      if (ready) return Promise.resolve(ready);
      if (ended) return Promise.reject(new Error('stream ended'));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no event within 10 s')), 10_000);
        waiting = (event) => {
          clearTimeout(timer);
          resolve(event);
        };
        failed = (error) => {
          clearTimeout(timer);
          reject(error);
        };
      });
    },
    close(): void {
      controller.abort();
    },
  };
}

test('GET /v1/watch streams puts and deletes under the prefix in order, id = index, from the starting point on', () =>
  withApi(async (api, ops, seen) => {
    const before = put(ops, 'app/x', 'old');
    const stream = await openStream(api, '/v1/watch?prefix=app/');
    assert.equal(stream.status, 200);
    assert.match(String(stream.headers['content-type']), /^text\/event-stream/);
    assert.deepEqual(await stream.next(), { id: String(before), event: 'progress', data: { index: before } });
    const a = put(ops, 'app/a', 'one', 4);
    put(ops, 'zzz', 'not watched');
    const gone = del(ops, 'app/x');
    const b = put(ops, 'app/b', new Uint8Array([0xff, 0xfe]));
    assert.deepEqual(await stream.next(), { id: String(a), event: 'put', data: { key: 'app/a', index: a, term: 4, value: 'one' } });
    assert.deepEqual(await stream.next(), { id: String(gone), event: 'delete', data: { key: 'app/x', index: gone, term: 3 } });
    assert.deepEqual(await stream.next(), { id: String(b), event: 'put', data: { key: 'app/b', index: b, term: 3, value: '//4=', encoding: 'base64' } });
    assert.equal(seen.watchers.get('stream'), 1);
    assert.equal(seen.sent, 3);
    stream.close();
    await waitFor(() => seen.watchers.get('stream') === 0, 'the stream slot to be given back');
  }));

test('a watch resumes from ?index= or Last-Event-ID with nothing missed and nothing twice', () =>
  withApi(async (api, ops) => {
    const indexes = ['a', 'b', 'c', 'd'].map((key) => put(ops, `p/${key}`, key));
    const fromQuery = await openStream(api, `/v1/watch?prefix=p/&index=${indexes[1]}`);
    assert.equal((await fromQuery.next()).event, 'progress');
    assert.deepEqual([(await fromQuery.next()).id, (await fromQuery.next()).id], [String(indexes[2]), String(indexes[3])]);
    fromQuery.close();
    // An EventSource reconnects with the original URL and the last id it got: the id wins.
    const resumed = await openStream(api, `/v1/watch?prefix=p/&index=0`, { 'last-event-id': String(indexes[2]) });
    assert.equal((await resumed.next()).id, String(indexes[2]));
    assert.equal((await resumed.next()).id, String(indexes[3]));
    resumed.close();
  }));

test('a watch from an index the history no longer reaches is 410 history_compacted, before any event', () =>
  withApi(
    async (api, ops) => {
      for (let i = 0; i < 6; i++) put(ops, `k/${i}`, 'x');
      const answer = await api.call('GET', '/v1/watch?prefix=k/&index=1');
      assert.equal(answer.status, 410);
      const body = answer.json() as { error: { code: string; message: string } };
      assert.equal(body.error.code, 'history_compacted');
      assert.match(body.error.message, /re-read with GET \/v1\/kv\?prefix=/);
      assert.equal(answer.headers['x-raftlet-index'], String(ops.store.appliedIndex));
    },
    { history: { maxChanges: 3, maxBytes: 1 << 20 } },
  ));

test('a stream whose history is wiped by a snapshot install gets a resync event and ends', () =>
  withApi(async (api, ops, seen) => {
    put(ops, 'k', 'v');
    const stream = await openStream(api, '/v1/watch?prefix=');
    await stream.next();
    const ahead = new KvStore();
    for (let index = 1; index <= 10; index++) ahead.apply(index, 5, encodeKvCommand({ op: 'put', key: 'k', value: bytes(`v${index}`) }));
    ops.store.restore(ahead.snapshot(), 10);
    const resync = await stream.next();
    assert.equal(resync.event, 'resync');
    assert.equal(resync.data.code, 'history_compacted');
    assert.equal(resync.data.index, 10);
    await assert.rejects(stream.next(), /stream ended/);
    assert.deepEqual(seen.dropped, ['compacted']);
  }));

test('a client that does not read is cut off with a resync event once too many changes wait for it', () =>
  withApi(
    async (api, ops, seen) => {
      const controller = new AbortController();
      const response = await request(`${api.base}/v1/watch?prefix=big/`, { signal: controller.signal, dispatcher: api.agent });
      assert.equal(response.statusCode, 200);
      response.body.pause(); // reads nothing: the socket fills up
      const value = new Uint8Array(4 << 20);
      for (let i = 0; i < 12 && seen.dropped.length === 0; i++) {
        put(ops, `big/${i}`, value);
        await new Promise((resolve) => setImmediate(resolve));
      }
      await waitFor(() => seen.dropped.length > 0, 'the slow stream to be dropped');
      assert.deepEqual(seen.dropped, ['slow_consumer']);
      response.body.resume();
      const text = Buffer.from(await response.body.arrayBuffer()).toString('utf8');
      assert.match(text, /event: resync\ndata: \{"code":"too_far_behind"/);
      controller.abort();
    },
    { api: { watchLimits: { maxWatchers: 10, maxBuffered: 3, progressMs: 60_000 } } },
  ));

test('watchers are bounded (429 too_many_watchers), shutdown ends streams', () =>
  withApi(
    async (api, ops, seen, shutdown) => {
      const first = await openStream(api, '/v1/watch?prefix=');
      const blocking = api.call('GET', `/v1/kv/k?index=${ops.store.appliedIndex}&wait=60000`);
      await waitFor(() => seen.watchers.get('blocking') === 1, 'the query to block');
      const refused = await api.call('GET', '/v1/watch?prefix=');
      assert.equal(refused.status, 429);
      assert.equal((refused.json() as { error: { code: string } }).error.code, 'too_many_watchers');
      const refusedQuery = await api.call('GET', `/v1/kv/k?index=${ops.store.appliedIndex}&wait=60000`);
      assert.equal(refusedQuery.status, 429);
      shutdown.abort();
      assert.equal((await first.next()).event, 'progress');
      await assert.rejects(first.next(), /stream ended/);
      assert.equal((await blocking).status, 404, 'a blocking query answers at shutdown');
      assert.deepEqual(seen.dropped, ['shutdown']);
    },
    { api: { watchLimits: { maxWatchers: 2, maxBuffered: 2, progressMs: 60_000 } } },
  ));

test('a resume from far back streams the whole catch-up from the history, whatever the per-stream buffer', () =>
  withApi(
    async (api, ops, seen) => {
      const indexes: number[] = [];
      for (let i = 0; i < 20; i++) indexes.push(put(ops, `k/${i}`, 'x'));
      const stream = await openStream(api, '/v1/watch?prefix=k/&index=0');
      assert.equal(stream.status, 200);
      assert.equal((await stream.next()).event, 'progress');
      const got: string[] = [];
      for (let i = 0; i < 20; i++) got.push((await stream.next()).id ?? '');
      assert.deepEqual(got, indexes.map(String));
      assert.deepEqual(seen.dropped, [], 'a catch-up is not a slow consumer');
      stream.close();
    },
    { api: { watchLimits: { maxWatchers: 10, maxBuffered: 3, progressMs: 60_000 } }, history: { maxChanges: 100, maxBytes: 1 << 20 } },
  ));

test('an idle stream gets progress events carrying the applied index, so it resumes past other keys', () =>
  withApi(
    async (api, ops) => {
      const stream = await openStream(api, '/v1/watch?prefix=quiet/');
      await stream.next();
      const last = put(ops, 'busy', 'x');
      const progress = await stream.next();
      assert.deepEqual(progress, { id: String(last), event: 'progress', data: { index: last } });
      stream.close();
    },
    { api: { watchLimits: { maxWatchers: 10, maxBuffered: 10, progressMs: 50 } } },
  ));
