// The chart's default application container: what it shows, and that SIGTERM stops it with exit 0.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { parseDemoAppArgs, startDemoApp } from '../../src/cli/demo-app.ts';
import type { DemoAppOptions } from '../../src/cli/demo-app.ts';

describe('demo-app arguments', () => {
  it('defaults to 0.0.0.0:8080 and the local raftlet API', () => {
    const options = parseDemoAppArgs([], { POD_NAME: 'raftlet-1' });
    assert.equal(options.port, 8080);
    assert.equal(options.host, '0.0.0.0');
    assert.equal(options.raftletApiUrl, 'http://127.0.0.1:7071');
    assert.equal(options.podName, 'raftlet-1');
  });

  it('takes the port from --port, then DEMO_PORT', () => {
    assert.equal(parseDemoAppArgs(['--port', '9000'], { DEMO_PORT: '9100' }).port, 9000);
    assert.equal(parseDemoAppArgs(['--port=9001'], {}).port, 9001);
    assert.equal(parseDemoAppArgs([], { DEMO_PORT: '9100' }).port, 9100);
  });

  it('takes the API from RAFTLET_API_URL and drops a trailing slash', () => {
    assert.equal(parseDemoAppArgs([], { RAFTLET_API_URL: 'http://10.0.0.1:7071/' }).raftletApiUrl, 'http://10.0.0.1:7071');
  });

  it('rejects a bad port and unknown flags with a message naming them', () => {
    assert.throws(() => parseDemoAppArgs(['--port', 'http'], {}), /--port \/ DEMO_PORT must be a port number/);
    assert.throws(() => parseDemoAppArgs(['--port', '70000'], {}), /--port/);
    assert.throws(() => parseDemoAppArgs(['--verbose'], {}), /unknown argument "--verbose"/);
    assert.throws(() => parseDemoAppArgs(['--port'], {}), /--port needs a value/);
  });
});

describe('demo-app server', () => {
  // A stand-in for the sidecar's client API; its answer can be changed per test.
  let statusCode = 200;
  let statusBody: unknown = { id: 'raftlet-0', role: 'leader', term: 7, leader: 'raftlet-0', commitIndex: 3 };
  const fakeRaftlet = createServer((req, res) => {
    assert.equal(req.url, '/v1/status');
    res.writeHead(statusCode, { 'content-type': 'application/json' });
    res.end(JSON.stringify(statusBody));
  });
  const closers: Array<() => Promise<void>> = [];
  after(async () => {
    for (const close of closers) await close();
    fakeRaftlet.close();
  });

  async function start(apiUrl?: string): Promise<string> {
    if (!fakeRaftlet.listening) {
      fakeRaftlet.listen(0, '127.0.0.1');
      await once(fakeRaftlet, 'listening');
    }
    const apiPort = (fakeRaftlet.address() as AddressInfo).port;
    const options: DemoAppOptions = {
      host: '127.0.0.1',
      port: 0,
      raftletApiUrl: apiUrl ?? `http://127.0.0.1:${apiPort}`,
      podName: 'raftlet-0',
      statusTimeoutMs: 2000,
    };
    const app = await startDemoApp(options);
    closers.push(() => app.close());
    return `http://127.0.0.1:${app.port}`;
  }

  it('answers GET / with pod, role, term and leader from the sidecar', async () => {
    statusCode = 200;
    statusBody = { id: 'raftlet-0', role: 'leader', term: 7, leader: 'raftlet-0', commitIndex: 3 };
    const base = await start();
    const response = await fetch(`${base}/`);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { pod: 'raftlet-0', role: 'leader', term: 7, leader: 'raftlet-0' });

    const text = await fetch(`${base}/`, { headers: { accept: 'text/plain' } });
    assert.equal(await text.text(), 'raftlet-0 is leader in term 7; leader: raftlet-0\n');
  });

  it('reports a follower without a known leader as leader null', async () => {
    statusBody = { id: 'raftlet-0', role: 'candidate', term: 8, leader: null };
    const base = await start();
    assert.deepEqual(await (await fetch(`${base}/`)).json(), { pod: 'raftlet-0', role: 'candidate', term: 8, leader: null });
  });

  it('answers 503 with a message when the sidecar is down or answers an error', async () => {
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const deadPort = (closed.address() as AddressInfo).port;
    closed.close();
    const base = await start(`http://127.0.0.1:${deadPort}`);
    const response = await fetch(`${base}/`);
    assert.equal(response.status, 503);
    const body = (await response.json()) as { pod: string; error: { code: string; message: string } };
    assert.equal(body.error.code, 'raftlet_unavailable');
    assert.match(body.error.message, new RegExp(`127\\.0\\.0\\.1:${deadPort}/v1/status`));

    statusCode = 500;
    statusBody = { error: { code: 'internal', message: 'boom' } };
    const base2 = await start();
    assert.equal((await fetch(`${base2}/`)).status, 503);
  });

  it('serves /healthz without asking the sidecar, and 404 / 405 otherwise', async () => {
    const base = await start('http://127.0.0.1:1');
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/nope`)).status, 404);
    assert.equal((await fetch(`${base}/`, { method: 'POST' })).status, 405);
  });
});

describe('demo-app process', () => {
  it('exits 0 on SIGTERM', async () => {
    const entry = new URL('../../src/cli/demo-app.ts', import.meta.url).href;
    const child = spawn(process.execPath, [
      '--input-type=module',
      '-e',
      `const { runDemoApp } = await import(${JSON.stringify(entry)}); process.exitCode = await runDemoApp(process.argv.slice(1));`,
      '--', '--port', '0', '--host', '127.0.0.1',
    ], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, POD_NAME: 'raftlet-2' } });
    try {
      let output = '';
      child.stdout.setEncoding('utf8');
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (chunk: string) => { output += chunk; });
      const port = await new Promise<number>((resolve, reject) => {
        child.stdout.on('data', (chunk: string) => {
          output += chunk;
          const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(output);
          if (match) resolve(Number(match[1]));
        });
        child.once('exit', (code) => reject(new Error(`demo-app exited early with ${code}: ${output}`)));
      });
      assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
      assert.equal(signal, null, 'demo-app must handle SIGTERM itself, not die of it');
      assert.equal(code, 0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
