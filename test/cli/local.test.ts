import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { nodeEnv, planLocal, renderIntro, runLocal } from '../../src/cli/local.ts';
import { reservePortRun } from '../support/ports.ts';
import { Capture, portFree, waitFor } from './helpers.ts';

const BIN = fileURLToPath(new URL('../../bin/raftlet.js', import.meta.url));
const FAKE_NODE = fileURLToPath(new URL('./fixtures/fake-node.ts', import.meta.url));
const LOCAL_WITH_FAKES = fileURLToPath(new URL('./fixtures/local-with-fake-nodes.ts', import.meta.url));

const scratch = mkdtempSync(path.join(tmpdir(), 'raftlet-cli-local-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('raftlet local: the plan', () => {
  it('gives node-i the ports P+3(i-1) .. +2, one token, static peers and Kubernetes off', () => {
    const plan = planLocal(['--nodes', '2', '--base-port=8000', '--data-dir', 'd', '--log-level', 'debug'], '/w', 'tok');
    assert.equal(plan.dataDir, '/w/d');
    assert.deepEqual(plan.runFlags, ['--log-level=debug']);
    assert.deepEqual(plan.nodes.map((n) => [n.id, n.peerPort, n.apiPort, n.metricsPort, n.apiUrl, n.dataDir, n.logFile]), [
      ['node-1', 8000, 8001, 8002, 'http://127.0.0.1:8001', '/w/d/node-1', '/w/d/node-1.log'],
      ['node-2', 8003, 8004, 8005, 'http://127.0.0.1:8004', '/w/d/node-2', '/w/d/node-2.log'],
    ]);
    assert.deepEqual(plan.nodes[1].env, {
      RAFTLET_NODE_ID: 'node-2',
      RAFTLET_PEER_LISTEN: '127.0.0.1:8003',
      RAFTLET_API_LISTEN: '127.0.0.1:8004',
      RAFTLET_METRICS_LISTEN: '127.0.0.1:8005',
      RAFTLET_PEERS: 'node-1=http://127.0.0.1:8000,node-2=http://127.0.0.1:8003',
      RAFTLET_DATA_DIR: '/w/d/node-2',
      RAFTLET_CLUSTER_TOKEN: 'tok',
      RAFTLET_KUBERNETES: '0',
    });
  });

  it('defaults to 3 nodes from port 7070 under ./raftlet-data/local', () => {
    const plan = planLocal([], '/w', 'tok');
    assert.deepEqual(plan.nodes.map((n) => n.peerPort), [7070, 7073, 7076]);
    assert.equal(plan.dataDir, '/w/raftlet-data/local');
  });

  it('keeps only the forwarded RAFTLET_ variables of its own environment', () => {
    const [node] = planLocal(['--nodes=1'], '/w', 'tok').nodes;
    const env = nodeEnv({ PATH: '/bin', RAFTLET_HEARTBEAT_MS: '20', RAFTLET_PEERS: 'x=http://x:1', RAFTLET_CLUSTER_TOKEN_FILE: '/t',
      RAFTLET_INSECURE: '1', RAFTLET_USE_DIST: '1' }, node);
    assert.equal(env.PATH, '/bin');
    assert.equal(env.RAFTLET_HEARTBEAT_MS, '20');
    assert.equal(env.RAFTLET_USE_DIST, '1');
    assert.equal(env.RAFTLET_PEERS, 'node-1=http://127.0.0.1:7070');
    assert.equal(env.RAFTLET_CLUSTER_TOKEN_FILE, undefined);
    assert.equal(env.RAFTLET_INSECURE, undefined);
  });

  it('tells how to try the cluster', () => {
    const intro = renderIntro(planLocal([], '/w', 'tok'), '/w', '/w/bin/raftlet.js').join('\n');
    assert.match(intro, /curl -X PUT 127\.0\.0\.1:7071\/v1\/kv\/hello -d world/);
    assert.match(intro, /curl 127\.0\.0\.1:7074\/v1\/kv\/hello/);
    assert.match(intro, /\n  npx raftlet get hello --api http:\/\/127\.0\.0\.1:7074\n/);
    const elsewhere = renderIntro(planLocal([], '/w', 'tok'), '/tmp', '/w/bin/raftlet.js').join('\n');
    assert.match(elsewhere, /\n  cd \/w && npx raftlet get hello --api http:\/\/127\.0\.0\.1:7074\n/);
    assert.match(intro, /Ctrl-C stops all nodes/);
  });
});

describe('raftlet local with stand-in nodes', () => {
  it('shows plain change lines off a terminal, keeps a failed node down, and stops the rest', { timeout: 60_000 }, async () => {
    const base = await reservePortRun(9);
    const dir = path.join(scratch, 'plain');
    const out = new Capture();
    const err = new Capture();
    let stop = (): void => {};
    const stopped = new Promise<void>((resolve) => { stop = resolve; });
    const running = runLocal(['--base-port', String(base), '--data-dir', dir, '--heartbeat-ms', '20'], {
      stdout: out, stderr: err, nodeCommand: [FAKE_NODE], stop: stopped, pollMs: 50,
      env: { PATH: process.env.PATH, FAKE_NODE_FAIL: 'node-3', RAFTLET_LOG_LEVEL: 'debug', RAFTLET_PEERS: 'junk', KUBECONFIG: '/nowhere' },
    });
    try {
      await waitFor(() => /node-1 leader term=1 leader=node-1/.test(out.text) && /node-2 follower term=1 leader=node-1/.test(out.text) &&
        /node-3 down \(exit code 3\)/.test(out.text), 30_000, () => `the table in:\n${out.text}`);
    } finally {
      stop();
    }
    assert.equal(await running, 0);
    assert.equal(err.text, '');
    assert.match(out.text, new RegExp(`curl -X PUT 127\\.0\\.0\\.1:${base + 1}/v1/kv/hello -d world`));
    assert.match(out.text, /node-1 stopped\n/);
    assert.match(out.text, /node-2 stopped\n/);
    assert.match(out.text, /raftlet local: all nodes stopped\n$/);
    assert.doesNotMatch(out.text, /\x1b\[/, 'no terminal control sequences in plain output');
    // Plain output prints a node's line only when it changes, not on every poll.
    assert.equal(out.text.match(/node-1 leader/g)?.length, 1);

    const log1 = JSON.parse(readFileSync(path.join(dir, 'node-1.log'), 'utf8').trim().split('\n')[0]) as Record<string, unknown>;
    assert.deepEqual(log1, {
      msg: 'listening', id: 'node-1', heartbeatMs: 20, logLevel: 'debug', authenticated: true, kubernetes: false,
      peers: ['node-1', 'node-2', 'node-3'],
    });
    assert.match(readFileSync(path.join(dir, 'node-3.log'), 'utf8'), /failing on purpose/);
    assert.ok(await portFree(base + 1), 'node-1 must be gone');
    assert.ok(await portFree(base + 4), 'node-2 must be gone');
  });

  it('redraws the table in place on a terminal, only when it changes', { timeout: 60_000 }, async () => {
    const base = await reservePortRun(6);
    const out = new Capture(true, 200);
    let stop = (): void => {};
    const stopped = new Promise<void>((resolve) => { stop = resolve; });
    const running = runLocal(['--nodes=2', `--base-port=${base}`, `--data-dir=${path.join(scratch, 'tty')}`], {
      stdout: out, stderr: new Capture(), nodeCommand: [FAKE_NODE], stop: stopped, pollMs: 20, env: { PATH: process.env.PATH },
    });
    try {
      await waitFor(() => /node-1 +leader +1 +node-1 +0 +http/.test(out.text) && /node-2 +follower +1 +node-1/.test(out.text),
        30_000, () => `the table in:\n${JSON.stringify(out.text)}`);
      // Let a few polls find nothing new: had they redrawn the table, two frames in a row would be equal.
      const polls = async (): Promise<number> => Number(await (await fetch(`http://127.0.0.1:${base + 1}/polls`)).text());
      const seen = await polls();
      await waitFor(async () => (await polls()) >= seen + 5, 30_000, () => 'five more polls of node-1');
    } finally {
      stop();
    }
    assert.equal(await running, 0);
    const frames = out.text.split('\x1b[3A');
    assert.ok(frames.length >= 2, 'later frames move the cursor up over the header and 2 rows');
    for (let i = 1; i < frames.length; i++) assert.notEqual(frames[i], frames[i - 1], 'an unchanged frame is not redrawn');
    assert.match(frames[frames.length - 1], /node-1 +stopped/);
  });

  it('kills a node that ignores SIGTERM once the grace period is over', { timeout: 60_000 }, async () => {
    const base = await reservePortRun(3);
    const out = new Capture();
    let stop = (): void => {};
    const stopped = new Promise<void>((resolve) => { stop = resolve; });
    const running = runLocal(['--nodes=1', `--base-port=${base}`, `--data-dir=${path.join(scratch, 'stubborn')}`], {
      stdout: out, stderr: new Capture(), nodeCommand: [FAKE_NODE], stop: stopped, pollMs: 20, stopGraceMs: 300,
      env: { PATH: process.env.PATH, FAKE_NODE_IGNORE_TERM: 'node-1' },
    });
    try {
      await waitFor(() => /node-1 leader/.test(out.text), 30_000, () => out.text);
    } finally {
      stop();
    }
    assert.equal(await running, 0);
    assert.match(out.text, /node-1 stopped/);
    assert.ok(await portFree(base + 1));
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`stops every node and exits 0 on ${signal}`, { timeout: 60_000 }, async () => {
      const base = await reservePortRun(6);
      const child = spawn(process.execPath, [LOCAL_WITH_FAKES, '--nodes=2', `--base-port=${base}`, `--data-dir=${path.join(scratch, signal)}`],
        { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => { out += chunk; });
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => { out += chunk; });
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      try {
        await waitFor(() => /node-2 follower/.test(out) && /node-1 leader/.test(out), 30_000, () => out);
      } finally {
        child.kill(signal);
      }
      assert.equal(await exited, 0, out);
      assert.match(out, /node-1 stopped\n/);
      assert.match(out, /raftlet local: all nodes stopped\n$/);
      assert.ok(await portFree(base + 1));
      assert.ok(await portFree(base + 4));
    });
  }

  it('refuses a port in use with exit code 2 and a line naming it, before starting anything', async () => {
    const base = await reservePortRun(6);
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(base + 4, '127.0.0.1', resolve));
    try {
      const dir = path.join(scratch, 'busy');
      const err = new Capture();
      const code = await runLocal(['--nodes=2', `--base-port=${base}`, `--data-dir=${dir}`], {
        stdout: new Capture(), stderr: err, nodeCommand: [FAKE_NODE], env: {},
      });
      assert.equal(code, 2);
      assert.equal(err.text,
        `raftlet local: port ${base + 4} (node-2 client API) is already in use on 127.0.0.1; stop what uses it or choose another --base-port\n`);
      assert.equal(existsSync(dir), false);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});

describe('raftlet local with real nodes', () => {
  it('elects one leader, replicates a write, and stops every node on SIGINT', { timeout: 120_000 }, async () => {
    const base = await reservePortRun(9);
    const dir = path.join(scratch, 'real');
    const child = spawn(process.execPath, [BIN, 'local', `--base-port=${base}`, `--data-dir=${dir}`, '--election-timeout-ms=300',
      '--heartbeat-ms=50'], { env: { ...process.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { out += chunk; });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { err += chunk; });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const latest = (id: string): string | undefined =>
        [...out.matchAll(new RegExp(`^\\S+ ${id} (.*)$`, 'gm'))].map((m) => m[1]).at(-1);
      let leader: string | undefined;
      await waitFor(() => {
        const lines = ['node-1', 'node-2', 'node-3'].map(latest);
        const leaders = lines.filter((l) => l?.startsWith('leader ')).length;
        const agreed = lines.map((l) => /leader=(node-\d)/.exec(l ?? '')?.[1]);
        leader = agreed[0];
        return leaders === 1 && leader !== undefined && agreed.every((a) => a === leader);
      }, 60_000, () => `one leader all agree on, in:\n${out}\n${err}`);

      const api = (i: number): string => `http://127.0.0.1:${base + 3 * i + 1}`;
      const put = await fetch(`${api(1)}/v1/kv/hello`, { method: 'PUT', body: 'world' });
      assert.equal(put.status, 200, await put.clone().text());
      const got = await fetch(`${api(2)}/v1/kv/hello`);
      assert.equal(got.status, 200);
      assert.equal(await got.text(), 'world');
    } finally {
      child.kill('SIGINT');
    }
    assert.equal(await exited, 0, err);
    assert.match(out, /raftlet local: all nodes stopped/);
    for (let i = 0; i < 9; i++) assert.ok(await portFree(base + i), `port ${base + i} must be free once local has exited`);
    for (const id of ['node-1', 'node-2', 'node-3']) {
      const firstLine = readFileSync(path.join(dir, `${id}.log`), 'utf8').split('\n')[0];
      assert.doesNotThrow(() => JSON.parse(firstLine), `${id}.log holds pino JSON lines`);
    }
  });
});
