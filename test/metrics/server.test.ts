import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { RaftletMetrics } from '../../src/metrics/metrics.ts';
import { readinessOf, startMetricsServer } from '../../src/metrics/server.ts';
import type { MetricsServer, MetricsServerOptions, Readiness } from '../../src/metrics/server.ts';
import type { Membership } from '../../src/raft/types.ts';
import { sampleValue } from './exposition.ts';

const MEMBERS: Membership = [
  { id: 'raftlet-0', url: 'http://a:7070', voter: true },
  { id: 'raftlet-1', url: 'http://b:7070', voter: true },
];

async function withServer(overrides: Partial<MetricsServerOptions>, body: (base: string, server: MetricsServer) => Promise<void>): Promise<void> {
  const server = await startMetricsServer({
    host: '127.0.0.1',
    port: 0,
    metrics: new RaftletMetrics({ defaultMetrics: false }),
    healthy: () => true,
    ready: () => ({ ready: true, reason: 'test' }),
    ...overrides,
  });
  try {
    assert.ok(server.port > 0);
    await body(`http://127.0.0.1:${server.port}`, server);
  } finally {
    await server.close();
  }
}

describe('metrics server', () => {
  it('serves /metrics as Prometheus text with the registry content', async () => {
    const metrics = new RaftletMetrics({ defaultMetrics: false });
    metrics.onRaftEvent({ kind: 'roleChanged', role: 'leader', term: 4 });
    await withServer({ metrics }, async (base) => {
      const res = await fetch(`${base}/metrics`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
      const text = await res.text();
      assert.equal(sampleValue(text, 'raftlet_is_leader'), 1);
      assert.equal(sampleValue(text, 'raftlet_term'), 4);
    });
  });

  it('answers /healthz 200 while healthy and 503 when the check fails, throws or hangs', async () => {
    let healthy: () => boolean | Promise<boolean> = () => true;
    await withServer({ healthy: () => healthy(), healthTimeoutMs: 100 }, async (base) => {
      let res = await fetch(`${base}/healthz`);
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { status: string }).status, 'ok');

      healthy = async () => false;
      res = await fetch(`${base}/healthz`);
      assert.equal(res.status, 503);
      assert.equal(((await res.json()) as { status: string }).status, 'unhealthy');

      healthy = () => {
        throw new Error('disk gone');
      };
      res = await fetch(`${base}/healthz`);
      assert.equal(res.status, 503);
      assert.match(((await res.json()) as { reason: string }).reason, /disk gone/);

      healthy = () => new Promise<boolean>(() => undefined);
      res = await fetch(`${base}/healthz`);
      assert.equal(res.status, 503);
      assert.match(((await res.json()) as { reason: string }).reason, /did not answer within 100 ms/);
    });
  });

  it('answers /readyz from the readiness callback, with the reason in JSON', async () => {
    let readiness: Readiness = { ready: false, reason: 'no known leader in term 3' };
    await withServer({ ready: () => readiness }, async (base) => {
      let res = await fetch(`${base}/readyz`);
      assert.equal(res.status, 503);
      assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
      assert.deepEqual(await res.json(), { ready: false, reason: 'no known leader in term 3' });
      readiness = { ready: true, reason: 'leader raftlet-1 in term 3' };
      res = await fetch(`${base}/readyz`);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { ready: true, reason: 'leader raftlet-1 in term 3' });
    });
  });

  it('answers HEAD without a body, 404 for other paths and 405 for other methods', async () => {
    await withServer({}, async (base) => {
      const head = await fetch(`${base}/metrics`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(await head.text(), '');
      const missing = await fetch(`${base}/nope`);
      assert.equal(missing.status, 404);
      assert.match(((await missing.json()) as { error: { message: string } }).error.message, /\/metrics/);
      const post = await fetch(`${base}/metrics`, { method: 'POST' });
      assert.equal(post.status, 405);
      assert.equal(post.headers.get('allow'), 'GET, HEAD');
      await post.arrayBuffer();
      // Query strings do not change the route (probes sometimes add them).
      assert.equal((await fetch(`${base}/readyz?verbose=1`)).status, 200);
    });
  });

  it('closes while a request is still in flight (a hanging health check)', async () => {
    let called = false;
    const server = await startMetricsServer({
      host: '127.0.0.1',
      port: 0,
      metrics: new RaftletMetrics({ defaultMetrics: false }),
      healthy: () => {
        called = true;
        return new Promise<boolean>(() => undefined);
      },
      healthTimeoutMs: 600_000,
      ready: () => ({ ready: true, reason: '' }),
    });
    const inFlight = new Promise<string>((resolve) => {
      const req = request(`http://127.0.0.1:${server.port}/healthz`, (res) => {
        res.resume();
        res.on('end', () => resolve(`answered ${res.statusCode}`));
      });
      req.on('error', (err) => resolve(`aborted: ${err.message}`));
      req.end();
    });
    try {
      for (let i = 0; i < 500 && !called; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.ok(called, 'the health check was never called');
    } finally {
      await server.close();
    }
    assert.match(await inFlight, /^aborted/);
  });

  it('reports a port that is taken', async () => {
    await withServer({}, async (_base, server) => {
      await assert.rejects(
        startMetricsServer({ host: '127.0.0.1', port: server.port, metrics: new RaftletMetrics({ defaultMetrics: false }), healthy: () => true, ready: () => ({ ready: true, reason: '' }) }),
        /EADDRINUSE/,
      );
    });
  });
});

describe('readinessOf', () => {
  it('is ready only as a voter that knows a leader in its term', () => {
    assert.deepEqual(readinessOf({ id: 'raftlet-0', term: 2, leader: 'raftlet-1', members: MEMBERS }), { ready: true, reason: 'voter; leader raftlet-1 in term 2' });
    assert.deepEqual(readinessOf({ id: 'raftlet-0', term: 2, leader: null, members: MEMBERS }), { ready: false, reason: 'no known leader in term 2' });
    const stranger = readinessOf({ id: 'raftlet-9', term: 2, leader: 'raftlet-1', members: MEMBERS });
    assert.equal(stranger.ready, false);
    assert.match(stranger.reason, /raftlet-9 is not a member/);
    const learner = readinessOf({ id: 'raftlet-3', term: 2, leader: 'raftlet-1', members: [...MEMBERS, { id: 'raftlet-3', url: 'http://raftlet-3:7070', voter: false }] });
    assert.deepEqual(learner, { ready: false, reason: 'raftlet-3 is a learner catching up; ready once the leader promotes it to a voter' });
  });
});
