// Layers that point one way (issue 13): the folder-level import graph of src/ has no cycle, the
// consensus core imports nothing outside itself, and each folder imports only the folders listed
// for it below. The same table is drawn in the README ("How it fits together").
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/** The folders each folder may import (besides itself). Anything else is a layering defect. */
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  util: [],
  raft: [],
  config: [],
  storage: ['raft', 'util'],
  kv: ['raft'],
  api: ['kv', 'raft', 'util'],
  node: ['api', 'kv', 'raft', 'util'],
  transport: ['api', 'config', 'kv', 'raft', 'util'],
  metrics: ['raft', 'util'],
  kubernetes: ['raft', 'util'],
  client: [],
  run: ['api', 'config', 'kubernetes', 'kv', 'metrics', 'node', 'raft', 'storage', 'transport', 'util'],
  cli: ['api', 'client', 'config', 'kv', 'run', 'raft', 'storage', 'transport'],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.join(e.parentPath, e.name));
}

/** folder -> folders it imports, from every static and dynamic relative import in src/. */
export function folderGraph(): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const file of sourceFiles(SRC)) {
    const rel = path.relative(SRC, file);
    const from = rel.includes(path.sep) ? rel.split(path.sep)[0] : '.';
    const deps = graph.get(from) ?? new Set<string>();
    graph.set(from, deps);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import\()\s*'(\.{1,2}\/[^']+)'/g)) {
      const target = path.relative(SRC, path.resolve(path.dirname(file), m[1]));
      const to = target.includes(path.sep) ? target.split(path.sep)[0] : '.';
      if (to !== from) deps.add(to);
    }
  }
  return graph;
}

function findCycle(graph: Map<string, Set<string>>): string[] | null {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): string[] | null => {
    if (state.get(node) === 'done') return null;
    if (state.get(node) === 'visiting') return [...stack.slice(stack.indexOf(node)), node];
    state.set(node, 'visiting');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(node, 'done');
    return null;
  };
  for (const node of graph.keys()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return null;
}

test('src/ has no folder-level import cycle', () => {
  const cycle = findCycle(folderGraph());
  assert.equal(cycle, null, `import cycle between folders: ${cycle?.join(' -> ')}`);
});

test('every folder imports only the layers below it', () => {
  for (const [from, deps] of folderGraph()) {
    if (from === '.') continue;
    const allowed = ALLOWED[from];
    assert.ok(allowed, `src/${from} is a new folder: give it a place in ALLOWED (and the README's graph)`);
    for (const to of deps) assert.ok(allowed.includes(to), `src/${from} imports src/${to}, which is not below it`);
  }
});

test('the cycle finder finds a planted cycle', () => {
  const graph = new Map([
    ['a', new Set(['b'])],
    ['b', new Set(['c'])],
    ['c', new Set(['a'])],
  ]);
  assert.deepEqual(findCycle(graph), ['a', 'b', 'c', 'a']);
});
