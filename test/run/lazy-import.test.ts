// `raftlet run` compiles eagerly (--no-lazy) but imports the Kubernetes client lazily compiled
// (src/run/lazy-import.ts). Checked against the V8 this project runs on, in a child process: the
// bytecode a module of a thousand uncalled functions adds at import, through importLazilyCompiled
// and directly, with and without --no-lazy. Should a V8 update freeze its flags after start-up or
// drop --no-lazy, this fails instead of quietly costing the memory or the failover time.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { compilesEagerly } from '../../src/run/lazy-import.ts';

const LAZY_IMPORT = pathToFileURL(path.join(import.meta.dirname, '..', '..', 'src', 'run', 'lazy-import.ts')).href;

interface Bytecode {
  /** Bytes of bytecode added by importing module a through importLazilyCompiled. */
  readonly wrapped: number;
  /** ... and by importing module b directly, after it. */
  readonly direct: number;
}

function importBytecode(flags: readonly string[]): Bytecode {
  const dir = mkdtempSync(path.join(tmpdir(), 'raftlet-lazy-import-'));
  try {
    const functions = Array.from({ length: 1000 }, (_, i) => `export function f${i}(a, b) { const x = a * b + ${i}; return x > 3 ? [x, a, b].map((y) => y + 1).join(',') : String(x); }`).join('\n');
    writeFileSync(path.join(dir, 'a.mjs'), functions);
    writeFileSync(path.join(dir, 'b.mjs'), functions);
    const script = [
      `import { getHeapCodeStatistics } from 'node:v8';`,
      `import { importLazilyCompiled } from ${JSON.stringify(LAZY_IMPORT)};`,
      `const size = () => getHeapCodeStatistics().bytecode_and_metadata_size;`,
      `let at = size();`,
      `await importLazilyCompiled(() => import(${JSON.stringify(pathToFileURL(path.join(dir, 'a.mjs')).href)}));`,
      `const wrapped = size() - at;`,
      `at = size();`,
      `await import(${JSON.stringify(pathToFileURL(path.join(dir, 'b.mjs')).href)});`,
      `console.log(JSON.stringify({ wrapped, direct: size() - at }));`,
    ].join('\n');
    const child = spawnSync(process.execPath, [...flags, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(child.status, 0, child.stderr);
    return JSON.parse(child.stdout) as Bytecode;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('importLazilyCompiled', () => {
  it('under --no-lazy, compiles the imported module lazily and restores eager compilation after it', () => {
    const { wrapped, direct } = importBytecode(['--no-lazy']);
    // Eagerly, a thousand functions take hundreds of KB of bytecode; lazily, only the module's top level.
    assert.ok(direct > 100_000, `a direct import under --no-lazy compiled eagerly (${direct} bytes of bytecode)`);
    assert.ok(wrapped < direct / 20, `the wrapped import compiled lazily (${wrapped} bytes against ${direct})`);
  });

  it('without --no-lazy, changes nothing: both imports are lazy', () => {
    const { wrapped, direct } = importBytecode([]);
    assert.ok(wrapped < 20_000 && direct < 20_000, `both lazy: ${wrapped} and ${direct} bytes of bytecode`);
  });

  it('reads the last of --lazy and --no-lazy', () => {
    assert.equal(compilesEagerly([]), false);
    assert.equal(compilesEagerly(['--no-lazy']), true);
    assert.equal(compilesEagerly(['--no-lazy', '--expose-gc', '--lazy']), false);
    assert.equal(compilesEagerly(['--lazy', '--no-lazy']), true);
  });
});
