// The chart's `helm test` script (helm/raftlet/files/helm-test-leader.mjs), run with node against a
// stand-in API server and leader Service on 127.0.0.1.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { chartDir } from './render.ts';

const script = join(chartDir, 'files', 'helm-test-leader.mjs');
const selector = 'app.kubernetes.io/name=raftlet,app.kubernetes.io/instance=raftlet';

interface Scenario {
  /** Role labels per pod, one list per successive pod listing (the last one repeats). */
  readonly listings: ReadonlyArray<Record<string, string | undefined>>;
  /** What the leader Service answers with. */
  readonly leaderView?: { pod: string; role: string; term: number };
}

const servers: Server[] = [];
after(() => {
  for (const server of servers) server.close();
});

async function listen(server: Server): Promise<number> {
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

async function runScript(scenario: Scenario): Promise<{ code: number | null; output: string }> {
  let listing = 0;
  const api = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://api.invalid');
    assert.equal(url.pathname, '/api/v1/namespaces/shop/pods');
    assert.equal(url.searchParams.get('labelSelector'), selector);
    const roles = scenario.listings[Math.min(listing++, scenario.listings.length - 1)];
    const items = Object.entries(roles).map(([name, role]) => ({
      metadata: { name, labels: role === undefined ? { 'app.kubernetes.io/name': 'raftlet' } : { 'raftlet.io/role': role } },
    }));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'PodList', items }));
  });
  const apiPort = await listen(api);
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    KUBERNETES_API: `http://127.0.0.1:${apiPort}`,
    NAMESPACE: 'shop',
    SELECTOR: selector,
    ROLE_LABEL: 'raftlet.io/role',
    MEMBERS: '3',
    TIMEOUT_MS: '1500',
    POLL_MS: '50',
  };
  if (scenario.leaderView !== undefined) {
    const view = scenario.leaderView;
    const leader = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(view));
    });
    env.LEADER_URL = `http://127.0.0.1:${await listen(leader)}/`;
  }
  const child = spawn(process.execPath, [script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  try {
    const [code] = (await once(child, 'close')) as [number | null];
    return { code, output };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

describe('helm test script', () => {
  it('passes with one leader, two followers and the leader Service on the leader', async () => {
    const { code, output } = await runScript({
      listings: [{ 'raftlet-0': 'follower', 'raftlet-1': 'leader', 'raftlet-2': 'follower' }],
      leaderView: { pod: 'raftlet-1', role: 'leader', term: 4 },
    });
    assert.equal(code, 0, output);
    assert.match(output, /raftlet-1 is the only pod labelled raftlet\.io\/role=leader/);
    assert.match(output, /the leader Service reached raftlet-1/);
  });

  it('waits for the labels to settle', async () => {
    const { code, output } = await runScript({
      listings: [
        { 'raftlet-0': undefined, 'raftlet-1': undefined, 'raftlet-2': undefined },
        { 'raftlet-0': 'follower', 'raftlet-1': 'leader', 'raftlet-2': 'follower' },
      ],
    });
    assert.equal(code, 0, output);
  });

  it('fails on two leaders, naming them', async () => {
    const { code, output } = await runScript({
      listings: [{ 'raftlet-0': 'leader', 'raftlet-1': 'leader', 'raftlet-2': 'follower' }],
    });
    assert.equal(code, 1);
    assert.match(output, /FAIL: exactly one pod labelled raftlet\.io\/role=leader: 2 leaders among \[raftlet-0=leader, raftlet-1=leader, raftlet-2=follower\]/);
  });

  it('fails when a member has no role label or a member is missing', async () => {
    const unlabelled = await runScript({ listings: [{ 'raftlet-0': 'leader', 'raftlet-1': undefined, 'raftlet-2': 'follower' }] });
    assert.equal(unlabelled.code, 1);
    assert.match(unlabelled.output, /not every other member is a follower/);
    const missing = await runScript({ listings: [{ 'raftlet-0': 'leader', 'raftlet-1': 'follower' }] });
    assert.equal(missing.code, 1);
    assert.match(missing.output, /2 of 3 member pods exist/);
  });

  it('fails when the leader Service answers from another pod', async () => {
    const { code, output } = await runScript({
      listings: [{ 'raftlet-0': 'follower', 'raftlet-1': 'leader', 'raftlet-2': 'follower' }],
      leaderView: { pod: 'raftlet-0', role: 'follower', term: 4 },
    });
    assert.equal(code, 1);
    assert.match(output, /FAIL: .* answers from raftlet-1/);
  });
});
