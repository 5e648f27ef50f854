// The Dockerfile's structure (build and runtime stages on ARG BASE_IMAGE, a final stage from scratch
// with only the Node runtime and the build output, non-root, exec-form ENTRYPOINT), checked without a
// container engine, and its build
// context taken from a clean copy of the repository through .dockerignore. The real build is
// tools/image/build.sh, run by image.test.ts when RAFTLET_IMAGE_TEST=1.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { repoRoot } from './render.ts';

interface Instruction {
  readonly keyword: string;
  readonly args: string;
  readonly line: number;
}

interface Stage {
  readonly from: string;
  readonly name: string | null;
  readonly instructions: readonly Instruction[];
}

/** Splits a Dockerfile into instructions: comments dropped, `\` continuations joined. */
export function parseDockerfile(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  let pending = '';
  let startLine = 0;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) return;
    if (pending !== '' && line.startsWith('#')) return;
    if (pending === '') startLine = index + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    const full = (pending + line).trim();
    pending = '';
    const [keyword] = full.split(/\s+/);
    instructions.push({ keyword: keyword.toUpperCase(), args: full.slice(keyword.length).trim(), line: startLine });
  });
  return instructions;
}

function stagesOf(instructions: readonly Instruction[]): { globalArgs: Instruction[]; stages: Stage[] } {
  const globalArgs: Instruction[] = [];
  const stages: Array<{ from: string; name: string | null; instructions: Instruction[] }> = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const match = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args);
      assert.ok(match, `FROM at line ${instruction.line} is not understood: ${instruction.args}`);
      stages.push({ from: match[1], name: match[2] ?? null, instructions: [] });
    } else if (stages.length === 0) {
      globalArgs.push(instruction);
    } else {
      stages[stages.length - 1].instructions.push(instruction);
    }
  }
  return { globalArgs, stages };
}

const of = (stage: Stage, keyword: string): Instruction[] => stage.instructions.filter((i) => i.keyword === keyword);

/** A .dockerignore pattern as moby's patternmatcher reads it (`*` within a segment, `**` across). */
function dockerignorePatterns(text: string): Array<{ negated: boolean; regexp: RegExp }> {
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#')).map((line) => {
    const negated = line.startsWith('!');
    const pattern = (negated ? line.slice(1) : line).replace(/^\/+/, '').replace(/\/+$/, '');
    let source = '';
    for (let i = 0; i < pattern.length; i++) {
      const ch = pattern[i];
      if (ch === '*' && pattern[i + 1] === '*') {
        source += '.*';
        i++;
        if (pattern[i + 1] === '/') i++;
      } else if (ch === '*') source += '[^/]*';
      else if (ch === '?') source += '[^/]';
      else source += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
    return { negated, regexp: new RegExp(`^${source}$`) };
  });
}

/** Whether the build context leaves a file out: the last pattern matching it or a parent wins. */
function ignored(path: string, patterns: ReturnType<typeof dockerignorePatterns>): boolean {
  const parts = path.split('/');
  let result = false;
  for (const { negated, regexp } of patterns) {
    for (let i = 1; i <= parts.length; i++) {
      if (regexp.test(parts.slice(0, i).join('/'))) {
        result = !negated;
        break;
      }
    }
  }
  return result;
}

describe('Dockerfile', () => {
  const instructions = parseDockerfile(readFileSync(join(repoRoot, 'Dockerfile'), 'utf8'));
  const { globalArgs, stages } = stagesOf(instructions);
  const final = stages[stages.length - 1];

  it('declares BASE_IMAGE (an official Node 24 image by default) before the first FROM', () => {
    const baseArg = globalArgs.find((a) => a.keyword === 'ARG' && a.args.startsWith('BASE_IMAGE'));
    assert.ok(baseArg, 'ARG BASE_IMAGE before the first FROM');
    assert.match(baseArg.args, /^BASE_IMAGE=(docker\.io\/library\/)?node:24[-.\w]*$/);
  });

  it('builds on BASE_IMAGE and ships a final stage from scratch', () => {
    assert.deepEqual(stages.map((stage) => [stage.name, stage.from]), [
      ['build', '${BASE_IMAGE}'],
      ['runtime', '${BASE_IMAGE}'],
      [null, 'scratch'],
    ]);
  });

  it('the runtime stage collects Node, the libraries ldd names and env, and checks that Node runs alone', () => {
    const runs = of(stages[1], 'RUN').map((r) => r.args).join('\n');
    assert.match(runs, /cp \/usr\/local\/bin\/node \/runtime\/usr\/local\/bin\/node/);
    assert.match(runs, /ldd \/usr\/local\/bin\/node/);
    assert.match(runs, /chroot \/runtime \/usr\/local\/bin\/node --version/);
  });

  it('builds with npm ci and tsc, then prunes to the runtime packages', () => {
    const runs = of(stages[0], 'RUN').map((r) => r.args).join('\n');
    assert.match(runs, /npm ci\b/);
    assert.match(runs, /tsc -p tsconfig\.build\.json/);
    assert.match(runs, /npm prune --omit=dev/);
  });

  it('the final stage takes only the runtime and the build output: no sources, no tests, no npm, no shell', () => {
    const copies = of(final, 'COPY').map((c) => c.args.split(/\s+/));
    assert.deepEqual(copies.filter(([from]) => from === '--from=runtime').map((c) => c.slice(1)), [['/runtime/', '/']]);
    const fromBuild = copies.filter(([from]) => from === '--from=build').map((c) => c[1]);
    assert.deepEqual(fromBuild.sort(), ['/src/bin', '/src/dist', '/src/node_modules', '/src/package.json']);
    assert.equal(copies.length, fromBuild.length + 1, 'every COPY comes from the runtime or the build stage');
    assert.equal(of(final, 'RUN').length, 0, 'nothing to run in it: it has no shell');
    assert.equal(of(final, 'ADD').length, 0);
  });

  it('runs as a numeric non-root user, in /app, production mode, data only in the volume', () => {
    const users = of(final, 'USER');
    assert.ok(users.length > 0, 'USER in the final stage');
    const user = users[users.length - 1].args;
    assert.match(user, /^\d+(:\d+)?$/, 'numeric, so runAsNonRoot can verify it');
    assert.notEqual(Number(user.split(':')[0]), 0);
    const lastUser = final.instructions.lastIndexOf(users[users.length - 1]);
    assert.ok(final.instructions.slice(lastUser).every((i) => i.keyword !== 'RUN'), 'nothing runs after USER as root');
    assert.deepEqual(of(final, 'WORKDIR').map((w) => w.args), ['/app']);
    assert.match(of(final, 'ENV').map((e) => e.args).join(' '), /NODE_ENV=production/);
    assert.deepEqual(of(final, 'VOLUME').map((v) => JSON.parse(v.args) as unknown), [['/var/lib/raftlet']]);
  });

  it('starts node directly with an exec-form ENTRYPOINT (SIGTERM reaches raftlet) and CMD run', () => {
    const entrypoints = of(final, 'ENTRYPOINT');
    assert.equal(entrypoints.length, 1);
    const entrypoint = JSON.parse(entrypoints[0].args) as unknown;
    assert.ok(Array.isArray(entrypoint), 'exec form (a JSON array), not shell form');
    assert.equal(entrypoint[0], 'node');
    assert.match(String(entrypoint[1]), /^\/app\/(bin\/raftlet\.js|dist\/cli\/main\.js)$/);
    assert.deepEqual(JSON.parse(of(final, 'CMD')[0].args), ['run']);
    const entry = String(entrypoint[1]).replace(/^\/app\//, '');
    const copiedTrees = of(final, 'COPY').filter((c) => c.args.startsWith('--from=build')).map((c) => c.args.split(/\s+/)[1].replace(/^\/src\//, ''));
    assert.ok(copiedTrees.some((tree) => entry === tree || entry.startsWith(`${tree}/`)), `${entry} is in the image`);
  });

  describe('build context from a clean copy of the repository', () => {
    let context = '';
    before(() => {
      // What a fresh checkout holds: tracked files plus new ones not ignored by git (no node_modules, dist).
      const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { cwd: repoRoot, encoding: 'utf8' })
        .split('\0').filter((f) => f !== '' && existsSync(join(repoRoot, f)) && statSync(join(repoRoot, f)).isFile());
      const patterns = dockerignorePatterns(readFileSync(join(repoRoot, '.dockerignore'), 'utf8'));
      context = mkdtempSync(join(tmpdir(), 'raftlet-docker-context-'));
      for (const file of files) {
        if (ignored(file, patterns)) continue;
        mkdirSync(dirname(join(context, file)), { recursive: true });
        copyFileSync(join(repoRoot, file), join(context, file));
      }
    });
    after(() => rmSync(context, { recursive: true, force: true }));

    it('holds every file the build stage copies', () => {
      for (const copy of of(stages[0], 'COPY')) {
        const sources = copy.args.split(/\s+/).filter((a) => !a.startsWith('--')).slice(0, -1);
        for (const source of sources) assert.ok(existsSync(join(context, source)), `COPY ${source} (line ${copy.line}) is not in the build context`);
      }
      assert.ok(existsSync(join(context, 'src', 'cli', 'main.ts')));
      assert.ok(existsSync(join(context, 'bin', 'raftlet.js')));
    });

    it('leaves out tests, charts, git metadata and local data', () => {
      for (const path of ['test', 'helm', 'k8s', '.git', 'node_modules', 'raftlet-data', 'Dockerfile', 'tools']) {
        assert.ok(!existsSync(join(context, path)), `${path} must not be in the build context`);
      }
    });

    it('the .dockerignore matcher used here behaves like Docker\'s', () => {
      const patterns = dockerignorePatterns('*\n!src\n**/*.test.ts\n!keep/**/x.md');
      assert.equal(ignored('README.md', patterns), true);
      assert.equal(ignored('src/cli/main.ts', patterns), false);
      assert.equal(ignored('src/a/b.test.ts', patterns), true);
      assert.equal(ignored('keep/deep/er/x.md', patterns), false);
      assert.equal(ignored('node_modules/x/index.js', patterns), true);
    });
  });
});
