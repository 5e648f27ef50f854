// The typed client (src/client) against the real client API app, with FakeOps (a real KvStore;
// leadership and lease set by the test) behind it: KV with conditions, watches that resume across
// dropped connections, and runAsLeader's start, stop, fencing and lease timer.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { createApiApp } from '../../src/api/app.ts';
import { LeadershipLost, PreconditionFailed, RaftletClient, RaftletError, WatchResyncNeeded, type LeaderContext, type WatchEvent } from '../../src/client/index.ts';
import { encodeKvCommand } from '../../src/kv/codec.ts';
import type { ChangeHistoryOptions } from '../../src/kv/history.ts';
import { FakeOps } from '../api/fake-ops.ts';
import { waitFor } from '../api/harness.ts';

interface Running {
  readonly ops: FakeOps;
  readonly client: RaftletClient;
  readonly server: Server;
  /** Drops every open connection (a restart of raftlet, as the client sees it). */
  dropConnections(): void;
  close(): Promise<void>;
}

async function start(options: { history?: ChangeHistoryOptions } = {}): Promise<Running> {
  const ops = new FakeOps(options.history === undefined ? {} : { history: options.history });
  const shutdown = new AbortController();
  const server = createServer(createApiApp(ops, { maxValueBytes: 1 << 20, requestTimeoutMs: 5000, shutdown: shutdown.signal }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let closed = false;
  return {
    ops,
    server,
    client: new RaftletClient({ url, timeoutMs: 5000 }),
    dropConnections: () => server.closeAllConnections(),
    async close() {
      if (closed) return;
      closed = true;
      shutdown.abort();
      ops.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function using(body: (r: Running) => Promise<void>, options: { history?: ChangeHistoryOptions } = {}): Promise<void> {
  const r = await start(options);
  try {
    await body(r);
  } finally {
    await r.close();
  }
}

// ---- key-value -------------------------------------------------------------------------------------

test('get, put, del and list, with If-Match, If-None-Match and If-Term', () =>
  using(async ({ client, ops }) => {
    assert.equal(await client.get('k'), null);
    const first = await client.put('k', 'v1');
    assert.deepEqual(first, { index: 1, term: 3 });
    const entry = await client.get('k');
    assert.equal(entry?.text(), 'v1');
    assert.equal(entry?.modIndex, 1);
    await assert.rejects(client.put('k', 'x', { ifNoneMatch: true }), PreconditionFailed);
    await assert.rejects(client.put('k', 'x', { ifMatch: 99 }), PreconditionFailed);
    const cas = await client.put('k', new Uint8Array([0, 255]), { ifMatch: 1 });
    assert.deepEqual([...((await client.get('k', { consistency: 'stale' }))?.value ?? [])], [0, 255]);
    await assert.rejects(client.put('k', 'x', { ifTerm: 2 }), (err: unknown) => err instanceof PreconditionFailed && /If-Term 2 failed/.test(err.message));
    assert.equal(ops.proposals.at(-1)?.cmd.ifTerm, 2);
    await client.put('app/a', 'A');
    const list = await client.list('app/');
    assert.deepEqual(list.items.map((item) => [item.key, item.text()]), [['app/a', 'A']]);
    assert.equal(list.index, ops.store.appliedIndex);
    assert.deepEqual(await client.del('k', { ifMatch: cas.index }), { index: ops.store.appliedIndex, term: 3, deleted: true });
    assert.deepEqual((await client.del('k')).deleted, false);
    await assert.rejects(client.put('', 'x'), RangeError);
  }));

test('a blocking get waits for the next change after the index it was given', () =>
  using(async ({ client }) => {
    await client.put('cfg', 'one');
    const { entry, index } = await client.getWithIndex('cfg');
    assert.equal(entry?.text(), 'one');
    const next = client.getWithIndex('cfg', { index, waitMs: 60_000 });
    await client.put('cfg-other', 'x');
    await client.put('cfg', 'two');
    const changed = await next;
    assert.equal(changed.entry?.text(), 'two');
    assert.ok(changed.index > index);
  }));

test('errors carry status and code; an unreachable raftlet is code unreachable', async () => {
  const r = await start();
  r.ops.proposeError = new (await import('../../src/api/ops.ts')).ClientError('no_leader', 'no leader is known');
  await assert.rejects(r.client.put('k', 'v'), (err: unknown) => err instanceof RaftletError && err.status === 503 && err.code === 'no_leader');
  const url = r.client.url;
  await r.close();
  await assert.rejects(new RaftletClient({ url }).get('k'), (err: unknown) => err instanceof RaftletError && err.code === 'unreachable' && err.status === 0);
});

// ---- watches ---------------------------------------------------------------------------------------

function putDirect(ops: FakeOps, key: string, value: string): number {
  const index = ops.store.appliedIndex + 1;
  ops.store.apply(index, 3, encodeKvCommand({ op: 'put', key, value: new TextEncoder().encode(value) }));
  return index;
}

test('watch() yields every change under the prefix in order and resumes after dropped connections', () =>
  using(async ({ client, ops, dropConnections }) => {
    const controller = new AbortController();
    const seen: WatchEvent[] = [];
    const consumer = (async () => {
      for await (const event of client.watch('jobs/', { index: ops.store.appliedIndex, signal: controller.signal, reconnectMs: 20 })) {
        seen.push(event);
        if (seen.length === 30) break;
      }
    })();
    const expected: number[] = [];
    for (let i = 0; i < 30; i++) {
      await waitFor(() => seen.length >= expected.length - 3, 'the watcher to keep up');
      expected.push(putDirect(ops, `jobs/${i % 4}`, `v${i}`));
      putDirect(ops, 'other', 'x');
      if (i % 7 === 3) dropConnections();
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await consumer;
    controller.abort();
    assert.deepEqual(seen.map((e) => e.index), expected, 'every change, once, in log order');
    assert.deepEqual(seen.map((e) => (e.type === 'put' ? e.text() : null)), expected.map((_, i) => `v${i}`));
  }));

test('watch() from an index raftlet no longer keeps throws WatchResyncNeeded with where to start again', () =>
  using(
    async ({ client, ops }) => {
      for (let i = 0; i < 5; i++) putDirect(ops, `k/${i}`, 'x');
      const iterator = client.watch('k/', { index: 1 });
      await assert.rejects(iterator.next(), (err: unknown) => err instanceof WatchResyncNeeded && err.code === 'history_compacted' && err.index === 5);
    },
    { history: { maxChanges: 2, maxBytes: 1 << 20 } },
  ));

// ---- runAsLeader -----------------------------------------------------------------------------------

test('runAsLeader runs fn while leading with a lease; its writes carry If-Term; losing leadership aborts at once', () =>
  using(async ({ client, ops }) => {
    const outer = new AbortController();
    const events: string[] = [];
    let runs = 0;
    let signalSeen: AbortSignal | null = null;
    ops.setLeader('n2', 3); // a follower at first
    const loop = client.runAsLeader(async (signal, context) => {
      runs++;
      signalSeen = signal;
      await client.put('singleton', `term ${context.term}`);
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      await assert.rejects(client.put('singleton', 'too late'), LeadershipLost);
    }, {
      signal: outer.signal,
      renewMs: 20,
      onStartedLeading: (c: LeaderContext) => events.push(`started ${c.term}`),
      onStoppedLeading: (c: LeaderContext, reason: string) => events.push(`stopped ${c.term}: ${reason}`),
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(runs, 0, 'not while following');
    ops.setLeader('n1', 4);
    await waitFor(() => ops.proposals.length === 1, 'fn to write');
    assert.equal(ops.proposals[0].cmd.ifTerm, 4, 'fenced with the leadership term');
    ops.setLeader('n2', 5);
    await waitFor(() => events.length === 2, 'fn to be stopped');
    assert.equal((signalSeen as AbortSignal | null)?.aborted, true);
    assert.deepEqual(events, ['started 4', 'stopped 4: no longer the leader']);
    assert.equal(ops.proposals.length, 1, 'the late write was never sent');
    outer.abort();
    await loop;
  }));

test('runAsLeader waits for a lease, stops when the lease goes (a hand-off), and starts again when it is back', () =>
  using(async ({ client, ops }) => {
    const outer = new AbortController();
    const events: string[] = [];
    ops.setLease(0);
    const loop = client.runAsLeader(async (signal) => {
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    }, {
      signal: outer.signal,
      renewMs: 20,
      onStartedLeading: (c) => events.push(`started ${c.term}`),
      onStoppedLeading: (c, reason) => events.push(`stopped ${c.term}: ${reason}`),
    });
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.deepEqual(events, [], 'leader without a lease: not yet');
    ops.setLease(500);
    await waitFor(() => events.length === 1, 'fn to start');
    ops.setLease(0);
    await waitFor(() => events.length === 2, 'fn to stop');
    assert.equal(events[1], 'stopped 3: the lease is gone (a hand-off started)');
    ops.setLease(500);
    await waitFor(() => events.length === 3, 'fn to start again');
    outer.abort();
    await loop;
    assert.deepEqual(events.slice(2), ['started 3', 'stopped 3: stopped by the caller']);
  }));

test('runAsLeader stops by the local timer when raftlet stops answering before the lease is renewed', async () => {
  const r = await start();
  const outer = new AbortController();
  const events: string[] = [];
  r.ops.setLease(300);
  const loop = r.client.runAsLeader(async (signal) => {
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
  }, {
    signal: outer.signal,
    renewMs: 20,
    onStartedLeading: () => events.push('started'),
    onStoppedLeading: (_c, reason) => events.push(reason),
  });
  try {
    await waitFor(() => events.length === 1, 'fn to start');
    await r.close(); // raftlet gone: no renewal, no long poll answer
    await waitFor(() => events.length === 2, 'fn to stop');
    assert.equal(events[1], 'the lease ran out before it was renewed');
  } finally {
    outer.abort();
    await loop;
    await r.close();
  }
});

test('runAsLeader: fn that returns is not run again in the same leadership; an error thrown by fn rejects', () =>
  using(async ({ client, ops }) => {
    const outer = new AbortController();
    let runs = 0;
    const loop = client.runAsLeader(() => {
      runs++;
    }, { signal: outer.signal, renewMs: 20 });
    await waitFor(() => runs === 1, 'fn to run');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(runs, 1);
    ops.setLeader('n2', 4);
    ops.setLeader('n1', 5);
    await waitFor(() => runs === 2, 'fn to run in the next leadership');
    outer.abort();
    await loop;
    await assert.rejects(client.runAsLeader(() => {
      throw new Error('boom');
    }), /boom/);
  }));
