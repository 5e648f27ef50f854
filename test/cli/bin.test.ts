// bin/raftlet.js on its own: which code it runs (dist/ when not older than src/, forced by
// RAFTLET_USE_DIST), and the one re-exec of `raftlet run` with V8 heap flags, which must keep the pid
// (PID 1 in a container) and deliver SIGTERM to the new image. Runs the real bin in a temp layout
// whose main() reports what it sees.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { stripTypeScriptTypes } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { HEAP_GROWING_PERCENT, MALLOC_ARENAS, SEMI_SPACE_MB } from '../../src/cli/v8-sizing.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/**
 * A main() that prints what it was started with; `run wait` waits for SIGTERM and exits 0. The
 * handler is installed before the report is printed: a SIGTERM sent on seeing the report must find it.
 */
const fakeMain = (code: string): string => `
export async function main(args) {
  const report = { code: '${code}', args, execArgv: process.execArgv, pid: process.pid, marker: process.env.RAFTLET_V8_SIZED ?? null, arenas: process.env.MALLOC_ARENA_MAX ?? null };
  if (args[1] !== 'wait') {
    process.stdout.write(JSON.stringify(report) + '\\n');
    return 0;
  }
  return await new Promise((resolve) => {
    const keepAlive = setInterval(() => {}, 1000);
    process.once('SIGTERM', () => { clearInterval(keepAlive); process.stdout.write('SIGTERM\\n'); resolve(0); });
    process.stdout.write(JSON.stringify(report) + '\\n');
  });
}
`;

interface Report {
  readonly code: 'src' | 'dist';
  readonly args: string[];
  readonly execArgv: string[];
  readonly pid: number;
  readonly marker: string | null;
  readonly arenas: string | null;
}

const scratch = mkdtempSync(path.join(tmpdir(), 'raftlet-bin-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let layouts = 0;

/** bin/, src/cli and dist/cli as in a checkout (or only dist/, as in the image). */
function layout(options: { sources?: boolean; compiled?: boolean } = {}): string {
  const root = path.join(scratch, `layout-${layouts++}`);
  mkdirSync(path.join(root, 'bin'), { recursive: true });
  copyFileSync(path.join(REPO, 'bin', 'raftlet.js'), path.join(root, 'bin', 'raftlet.js'));
  // The real modules the bin itself loads; main() is the stand-in.
  const ownModules = ['cli/v8-sizing', 'run/stop-signals'].map((name) => ({ name, text: readFileSync(path.join(REPO, 'src', `${name}.ts`), 'utf8') }));
  for (const [code, ext] of [['src', 'ts'], ['dist', 'js']] as const) {
    if (options[code === 'src' ? 'sources' : 'compiled'] === false) continue;
    mkdirSync(path.join(root, code, 'cli'), { recursive: true });
    mkdirSync(path.join(root, code, 'run'), { recursive: true });
    writeFileSync(path.join(root, code, 'cli', `main.${ext}`), fakeMain(code));
    for (const m of ownModules) writeFileSync(path.join(root, code, `${m.name}.${ext}`), ext === 'ts' ? m.text : stripTypeScriptTypes(m.text));
  }
  return root;
}

function setMtime(file: string, secondsAgo: number): void {
  const when = new Date(Date.now() - secondsAgo * 1000);
  utimesSync(file, when, when);
}

function runBin(root: string, args: readonly string[], env: Record<string, string> = {}, nodeFlags: readonly string[] = []): { status: number | null; stderr: string; report: Report | null } {
  const result = spawnSync(process.execPath, [...nodeFlags, path.join(root, 'bin', 'raftlet.js'), ...args], {
    env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8', timeout: 60_000,
  });
  const line = result.stdout.split('\n').find((l) => l.startsWith('{'));
  return { status: result.status, stderr: result.stderr, report: line === undefined ? null : (JSON.parse(line) as Report) };
}

describe('bin/raftlet.js: which code runs', () => {
  it('dist/ when it is at least as new as every source file', () => {
    const root = layout();
    setMtime(path.join(root, 'src', 'cli', 'main.ts'), 60);
    setMtime(path.join(root, 'src', 'cli', 'v8-sizing.ts'), 60);
    assert.equal(runBin(root, ['status']).report?.code, 'dist');
  });

  it('src/ when any source file is newer than the build (a stale dist/ never runs)', () => {
    const root = layout();
    setMtime(path.join(root, 'dist', 'cli', 'main.js'), 60);
    setMtime(path.join(root, 'src', 'cli', 'main.ts'), 120);
    // Only one file, deep in the tree, was edited after the build.
    assert.equal(runBin(root, ['status']).report?.code, 'src');
  });

  it('dist/ where there are no sources (the image), src/ where there is no build', () => {
    assert.equal(runBin(layout({ sources: false }), ['status']).report?.code, 'dist');
    assert.equal(runBin(layout({ compiled: false }), ['status']).report?.code, 'src');
  });

  it('RAFTLET_USE_DIST=1 / 0 forces one; a missing one or a bad value is exit 2 with one line', () => {
    const root = layout();
    setMtime(path.join(root, 'dist', 'cli', 'main.js'), 60);
    assert.equal(runBin(root, ['status'], { RAFTLET_USE_DIST: '1' }).report?.code, 'dist');
    assert.equal(runBin(root, ['status'], { RAFTLET_USE_DIST: '0' }).report?.code, 'src');
    const missing = runBin(layout({ compiled: false }), ['status'], { RAFTLET_USE_DIST: '1' });
    assert.equal(missing.status, 2);
    assert.equal(missing.stderr, 'raftlet: RAFTLET_USE_DIST=1 but there is no dist/cli/main.js; run npm run build first\n');
    const bad = runBin(root, ['status'], { RAFTLET_USE_DIST: 'yes' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^raftlet: RAFTLET_USE_DIST must be 1 or 0 \(true or false\), got "yes"\n$/);
  });
});

describe('bin/raftlet.js: V8 sizing of raftlet run', () => {
  it('re-executes run once with the heap flags, in the same process, and removes its marker', () => {
    const root = layout({ compiled: false });
    const { status, report } = runBin(root, ['run', '--heartbeat-ms', '50']);
    assert.equal(status, 0);
    assert.ok(report !== null);
    assert.ok(report.execArgv.includes(`--max-semi-space-size=${SEMI_SPACE_MB}`), JSON.stringify(report.execArgv));
    assert.ok(report.execArgv.includes(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`), JSON.stringify(report.execArgv));
    assert.ok(report.execArgv.includes('--expose-gc'), JSON.stringify(report.execArgv));
    for (const flag of ['--no-lazy', '--no-flush-bytecode']) assert.ok(report.execArgv.includes(flag), JSON.stringify(report.execArgv));
    assert.deepEqual(report.args, ['run', '--heartbeat-ms', '50']);
    assert.equal(report.arenas, String(MALLOC_ARENAS));
    assert.equal(report.marker, null, 'the marker does not leak into processes it starts');
  });

  it('leaves other commands and flags the user set alone', () => {
    const root = layout({ compiled: false });
    const status = runBin(root, ['status']).report;
    assert.deepEqual(status?.execArgv, []);
    assert.equal(status?.arenas, null);
    const own = runBin(root, ['run'], { NODE_OPTIONS: '--max-semi-space-size=4' }).report;
    assert.ok(own !== null);
    assert.ok(!own.execArgv.some((flag) => flag.startsWith('--max-semi-space-size')), 'NODE_OPTIONS already sizes the young generation');
    assert.equal(own.arenas, String(MALLOC_ARENAS), 'what the user did not set is still tuned');
    // Node refuses --heap-growing-percent in NODE_OPTIONS: it can only come from the command line.
    const userFlags = ['--heap-growing-percent=50', '--expose-gc', '--lazy', '--flush-bytecode'];
    const all = runBin(root, ['run'], { NODE_OPTIONS: '--max-semi-space-size=4', MALLOC_ARENA_MAX: '8' }, userFlags).report;
    assert.deepEqual(all?.execArgv, userFlags, 'nothing left to tune: no re-exec');
    assert.equal(all?.arenas, '8');
  });

  it('keeps the pid, so SIGTERM sent to the process started reaches raftlet', async () => {
    const root = layout({ compiled: false });
    const child = spawn(process.execPath, [path.join(root, 'bin', 'raftlet.js'), 'run', 'wait'], {
      env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    try {
      const lines = createInterface({ input: child.stdout! });
      let stderr = '';
      child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const first = await Promise.race([
        new Promise<string>((resolve) => lines.once('line', resolve)),
        exited.then((end) => assert.fail(`the bin ended (${JSON.stringify(end)}) before main() reported:\n${stderr}`)),
      ]);
      const report = JSON.parse(first) as Report;
      assert.equal(report.pid, child.pid, 'process.execve replaced the image in place');
      assert.ok(report.execArgv.includes(`--max-semi-space-size=${SEMI_SPACE_MB}`));
      const got = new Promise<string>((resolve) => lines.once('line', resolve));
      child.kill('SIGTERM');
      assert.equal(await got, 'SIGTERM');
      assert.deepEqual(await exited, { code: 0, signal: null });
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    }
  });
});
