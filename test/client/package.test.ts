// `import { RaftletClient } from 'raftlet/client'` works: package.json's exports map names what
// tsconfig.build.json emits for src/client (JavaScript and declarations), and the client imports
// nothing but Node built-ins, so that one file is all it needs.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLIENT_DIR = path.join(ROOT, 'src', 'client');

interface PackageJson {
  readonly name: string;
  readonly exports: Record<string, string | Record<string, string>>;
}

test('src/client imports only Node built-ins and its own files', () => {
  for (const file of readdirSync(CLIENT_DIR).filter((name) => name.endsWith('.ts'))) {
    const text = readFileSync(path.join(CLIENT_DIR, file), 'utf8');
    for (const match of text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)/g)) {
      const specifier = match[1] ?? match[2];
      const ok = specifier.startsWith('node:') || (specifier.startsWith('./') && !specifier.includes('..'));
      assert.ok(ok, `${file} imports ${specifier}: the client may use node: built-ins and ./ files only`);
    }
  }
});

test('the exports map points at what the build emits, and raftlet/client resolves and runs', () => {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as PackageJson;
  const build = JSON.parse(readFileSync(path.join(ROOT, 'tsconfig.build.json'), 'utf8')) as { compilerOptions: { outDir: string; rootDir: string; declaration: boolean }; include: string[] };
  assert.equal(pkg.name, 'raftlet');
  assert.deepEqual(pkg.exports['./client'], { types: './dist/client/index.d.ts', default: './dist/client/index.js' });
  assert.equal(build.compilerOptions.declaration, true, 'declarations are emitted for the types entry');
  assert.equal(build.compilerOptions.rootDir, 'src');
  assert.equal(build.compilerOptions.outDir, 'dist');
  assert.ok(build.include.includes('src'));

  // Build src/client with tsconfig.build.json's own options (the whole tree takes long on a busy
  // machine; the client stands alone) into a scratch copy of the package.
  const scratch = mkdtempSync(path.join(tmpdir(), 'raftlet-client-pkg-'));
  try {
    const config = path.join(scratch, 'tsconfig.client.json');
    writeFileSync(config, JSON.stringify({
      extends: path.join(ROOT, 'tsconfig.build.json'),
      compilerOptions: { rootDir: path.join(ROOT, 'src'), outDir: path.join(scratch, 'dist'), types: ['node'], typeRoots: [path.join(ROOT, 'node_modules', '@types')] },
      include: [path.join(CLIENT_DIR, '*.ts')],
    }));
    execFileSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', config], { stdio: 'pipe' });
    for (const target of ['./dist/client/index.js', './dist/client/index.d.ts']) assert.ok(existsSync(path.join(scratch, target)), `${target} was emitted`);
    copyFileSync(path.join(ROOT, 'package.json'), path.join(scratch, 'package.json'));
    // A module inside the package imports it by name (a package may import itself through its
    // exports map), as an application with raftlet in node_modules would.
    writeFileSync(path.join(scratch, 'probe.mjs'), [
      "import { RaftletClient, PreconditionFailed } from 'raftlet/client';",
      "const client = new RaftletClient({ url: 'http://127.0.0.1:1' });",
      "console.log(JSON.stringify({ url: client.url, runAsLeader: typeof client.runAsLeader, watch: typeof client.watch, error: new PreconditionFailed('x').status }));",
    ].join('\n'));
    const out = execFileSync(process.execPath, [path.join(scratch, 'probe.mjs')], { cwd: scratch, encoding: 'utf8' });
    assert.deepEqual(JSON.parse(out), { url: 'http://127.0.0.1:1', runAsLeader: 'function', watch: 'function', error: 412 });
    const types = readFileSync(path.join(scratch, 'dist', 'client', 'index.d.ts'), 'utf8');
    assert.match(types, /export declare class RaftletClient/);
    assert.match(types, /runAsLeader\(fn: \(signal: AbortSignal, context: LeaderContext\)/);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});
