// The commands `npm start` prints (src/cli/local.ts renderIntro) and the README shows must work as
// printed in a plain shell: there the machine's own node comes first on PATH (Debian 12 ships 20,
// too old for raftlet), not the project's Node 24 that npm scripts see. `npx raftlet ...` in the
// project directory puts node_modules/.bin (and with it the `node` dev dependency) first on PATH
// and runs the project's own bin, so it works; this test runs it the way a user's shell would.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** PATH and environment of a login shell: no npm script additions, no node_modules/.bin. */
function shellEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value === undefined || name.startsWith('npm_') || name === 'NODE_OPTIONS' || name === 'INIT_CWD') continue;
    env[name] = value;
  }
  env.PATH = (process.env.PATH ?? '')
    .split(path.delimiter)
    .filter((dir) => dir !== '' && !dir.split(path.sep).includes('node_modules'))
    .join(path.delimiter);
  return env;
}

function onPath(command: string, env: Record<string, string>): string | null {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, command);
    if (existsSync(candidate)) return candidate;
  }
  return null;
}

function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('npx', args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('`npx raftlet` as printed by npm start, from a plain shell', () => {
  const env = shellEnv();
  const npx = onPath('npx', env);
  const systemNode = onPath('node', env);
  let api: Server;
  let apiUrl = '';

  before(async () => {
    api = createServer((req, res) => {
      if (req.method === 'GET' && req.url?.startsWith('/v1/kv/hello')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', etag: '"3"' });
        res.end('world');
        return;
      }
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'not_found', message: 'no such key' } }));
    });
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
    apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => api.close(() => resolve())));

  it('runs on the project\'s Node 24 whatever node the shell has', { skip: npx === null ? 'npx is not on PATH' : false }, async (t) => {
    const version = systemNode === null ? 'none' : spawnSync(systemNode, ['--version'], { encoding: 'utf8' }).stdout.trim();
    t.diagnostic(`the shell's own node: ${version}`);
    const got = await run(['raftlet', '--version'], env);
    assert.equal(got.code, 0, got.stderr);
    assert.match(got.stdout, /^raftlet \d+\.\d+\.\d+\n$/);
  });

  it('`npx raftlet get hello --api URL` prints the value', { skip: npx === null ? 'npx is not on PATH' : false }, async () => {
    const got = await run(['raftlet', 'get', 'hello', '--api', apiUrl], env);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout.trim(), 'world');
  });
});
