// Plants one bug in a temporary copy of the tree and runs the test that should catch it there.
import { spawn } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Catcher, PlantedBug } from './bugs.ts';

export const ROOT = resolve(import.meta.dirname, '../..');

/** A copy of src/ and test/ (node_modules linked) with the bug planted, or the tree as it is. */
export async function makeTree(bug: PlantedBug | null): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `raftlet-planted-${bug?.id ?? 'clean'}-`));
  await cp(join(ROOT, 'src'), join(dir, 'src'), { recursive: true });
  await cp(join(ROOT, 'test'), join(dir, 'test'), { recursive: true });
  await cp(join(ROOT, 'package.json'), join(dir, 'package.json'));
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  if (bug !== null) {
    const path = join(dir, bug.file);
    const text = await readFile(path, 'utf8');
    const at = text.indexOf(bug.find);
    if (at < 0 || text.indexOf(bug.find, at + 1) >= 0) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`planted bug ${bug.id}: the text to replace occurs ${at < 0 ? 'nowhere' : 'more than once'} in ${bug.file}; update test/planted/bugs.ts to the current source`);
    }
    await writeFile(path, text.slice(0, at) + bug.replace + text.slice(at + bug.find.length));
  }
  return dir;
}

export interface CatcherRun {
  /** The catcher failed (the bug was caught). */
  readonly failed: boolean;
  /** For the simulator: the seeds it ran up to and including the first violation. */
  readonly seeds: number | null;
  readonly violation: string | null;
  readonly output: string;
}

export function describeCatcher(catcher: Catcher): string {
  return catcher.kind === 'wholesim' ? `wholesim ${catcher.nodes} nodes, seeds ${catcher.start}..${catcher.start + catcher.seeds - 1}` : catcher.file;
}

/** Runs the catcher in `dir`; a catcher that runs past timeoutMs counts as not failing. */
export function runCatcher(dir: string, catcher: Catcher, timeoutMs: number): Promise<CatcherRun> {
  const args =
    catcher.kind === 'wholesim'
      ? ['test/wholesim/cli.ts', '--start', String(catcher.start), '--seeds', String(catcher.seeds), '--nodes', String(catcher.nodes), '--quiet']
      : ['--test', '--test-reporter=dot', catcher.file];
  return new Promise((done, fail) => {
    // Run from inside a test, the child must not think it is part of this test run.
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const child = spawn(process.execPath, args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      const hit = /^seed (\d+) \(\d+ nodes\): VIOLATION (.*)$/m.exec(output);
      const seeds = hit !== null && catcher.kind === 'wholesim' ? Number(hit[1]) - catcher.start + 1 : null;
      done({ failed: code !== 0 && code !== null, seeds, violation: hit?.[2] ?? null, output });
    });
  });
}
