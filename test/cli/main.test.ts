import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/main.ts';
import type { CliIo } from '../../src/cli/main.ts';
import { SETTINGS, SETTING_KEYS } from '../../src/config/settings.ts';
import { Capture } from './helpers.ts';

const BIN = fileURLToPath(new URL('../../bin/raftlet.js', import.meta.url));
const TOKEN = 'a-test-token-of-32-characters-xx';

function io(env: Record<string, string> = {}): CliIo & { stdout: Capture; stderr: Capture } {
  return { stdout: new Capture(), stderr: new Capture(), env };
}

const scratch = mkdtempSync(path.join(tmpdir(), 'raftlet-cli-main-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('main: usage', () => {
  for (const argv of [[], ['help'], ['--help'], ['-h']]) {
    it(`prints the usage for ${JSON.stringify(argv)} and exits 0`, async () => {
      const out = io();
      assert.equal(await main(argv, out), 0);
      assert.equal(out.stderr.text, '');
      for (const command of ['run', 'local', 'status', 'get KEY', 'put KEY VALUE', 'del KEY', 'demo-app']) {
        assert.match(out.stdout.text, new RegExp(`raftlet ${command}`), command);
      }
      for (const key of SETTING_KEYS) assert.ok(out.stdout.text.includes(SETTINGS[key].env), SETTINGS[key].env);
    });
  }

  it('prints the version from package.json', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    const out = io();
    assert.equal(await main(['--version'], out), 0);
    assert.equal(out.stdout.text, `raftlet ${pkg.version}\n`);
  });

  it('refuses an unknown command with one line and exit code 2', async () => {
    const out = io();
    assert.equal(await main(['frobnicate'], out), 2);
    assert.equal(out.stdout.text, '');
    assert.match(out.stderr.text, /^raftlet: unknown command "frobnicate"; commands: run, local, .*\n$/);
  });

  it('answers run --help and local --help without starting anything', async () => {
    const run = io();
    assert.equal(await main(['run', '--help'], run), 0);
    assert.match(run.stdout.text, /--heartbeat-ms MS +RAFTLET_HEARTBEAT_MS/);
    const local = io();
    assert.equal(await main(['local', '--help'], local), 0);
    assert.match(local.stdout.text, /^Usage: raftlet local/);
  });
});

describe('main: run with a bad setting', () => {
  it('exits 2 with one line naming the setting, before touching the data directory', async () => {
    const dataDir = path.join(scratch, 'in-process');
    const out = io({ RAFTLET_CLUSTER_TOKEN: TOKEN, RAFTLET_DATA_DIR: dataDir, RAFTLET_HEARTBEAT_MS: '500', RAFTLET_ELECTION_TIMEOUT_MS: '300' });
    assert.equal(await main(['run'], out), 2);
    assert.equal(out.stderr.text, 'raftlet: RAFTLET_HEARTBEAT_MS must be below RAFTLET_ELECTION_TIMEOUT_MS (got 500 >= 300)\n');
    assert.equal(out.stdout.text, '');
    assert.equal(existsSync(dataDir), false);
  });

  it('does the same as a real process started from bin/raftlet.js', () => {
    const dataDir = path.join(scratch, 'process');
    const env: Record<string, string> = { PATH: process.env.PATH ?? '', RAFTLET_DATA_DIR: dataDir };
    const result = spawnSync(process.execPath, [BIN, 'run', '--insecure', '--api-listen', 'nowhere'], { env, encoding: 'utf8', timeout: 30_000 });
    assert.equal(result.status, 2, result.stderr);
    assert.equal(result.stderr, 'raftlet: --api-listen must be HOST:PORT such as 0.0.0.0:7070 or [::1]:7070 (got "nowhere")\n');
    assert.equal(result.stdout, '');
    assert.equal(existsSync(dataDir), false);
  });

  it('refuses a bad local flag the same way', async () => {
    const dataDir = path.join(scratch, 'local');
    const out = io();
    assert.equal(await main(['local', '--nodes', '0', '--data-dir', dataDir], out), 2);
    assert.equal(out.stderr.text, 'raftlet local: --nodes must be between 1 and 15 (got "0")\n');
    assert.equal(existsSync(dataDir), false);
    const forwarded = io({ RAFTLET_ELECTION_TIMEOUT_MS: '150' });
    assert.equal(await main(['local', '--heartbeat-ms=200', '--data-dir', dataDir], forwarded), 2);
    assert.equal(forwarded.stderr.text, 'raftlet local: --heartbeat-ms must be below RAFTLET_ELECTION_TIMEOUT_MS (got 200 >= 150)\n');
    const owned = io();
    assert.equal(await main(['local', '--peers', 'a=http://a:1'], owned), 2);
    assert.match(owned.stderr.text, /^raftlet local: unknown flag --peers for raftlet local/);
    assert.equal(existsSync(dataDir), false);
  });
});
