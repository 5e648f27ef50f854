#!/usr/bin/env node
// The raftlet command. In a checkout it runs the TypeScript sources directly (Node's type stripping);
// the container image, which ships no sources, runs the compiled dist/. RAFTLET_USE_DIST=1 runs dist/
// in a checkout too (after npm run build), e.g. to measure memory without the type stripper loaded.
import { existsSync } from 'node:fs';

const [major, minor] = process.versions.node.split('.').map(Number);
const compiled = new URL('../dist/cli/main.js', import.meta.url);
const source = new URL('../src/cli/main.ts', import.meta.url);
const useCompiled = !existsSync(source) || process.env.RAFTLET_USE_DIST === '1';
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(
    `raftlet: Node.js ${process.versions.node} is too old; raftlet needs Node.js >= 22.19 (24 LTS recommended).\n` +
      `In a checkout, run it through npm (npm start, npm run ...) or node_modules/.bin/node, which is Node 24.\n`,
  );
  process.exit(2);
}
const entry = useCompiled ? compiled : source;
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
