// The container image runs the compiled dist/, not src/ through type stripping, and the two differ
// in start-up time and memory. This builds a compiled copy in a temp dir (never in the checkout,
// where a dist/ would change what everyone's tests run) laid out like the image: bin/raftlet.js
// beside dist/, so the same launcher picks the compiled code.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir } from './procs.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Returns the path of the compiled copy's bin/raftlet.js; the copy is removed with the other temp dirs. */
export function compiledLauncher(parentDir: string): string {
  return buildCompiledCopy(makeTempDir('raftlet-bench-build-', parentDir));
}

/**
 * Compiles src/ into dir/dist and lays out bin/, package.json and node_modules beside it, as in the
 * image; returns dir/bin/raftlet.js. The caller removes dir. (Also used by tests that must measure
 * what production runs.)
 */
export function buildCompiledCopy(dir: string): string {
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const build = spawnSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(dir, 'dist')], { encoding: 'utf8' });
  // tsc emits JavaScript even when types do not check (work in progress elsewhere in the checkout);
  // what matters here is that it emitted, and the nodes' start-up will tell if the code is broken.
  if (!existsSync(join(dir, 'dist', 'cli', 'main.js'))) {
    throw new Error(`tsc produced no dist/cli/main.js (exit ${build.status}): ${(build.stdout + build.stderr).trim().slice(0, 2000)}`);
  }
  if (build.status !== 0) {
    process.stderr.write(`bench: tsc reported type errors but emitted JavaScript; running it anyway:\n${build.stdout}${build.stderr}`);
  }
  mkdirSync(join(dir, 'bin'));
  copyFileSync(join(ROOT, 'bin', 'raftlet.js'), join(dir, 'bin', 'raftlet.js'));
  copyFileSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return join(dir, 'bin', 'raftlet.js');
}
