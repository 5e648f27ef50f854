#!/usr/bin/env node
// The raftlet command. Sources are TypeScript run directly by Node's type stripping (Node >= 22.18);
// the container image runs the compiled dist/ instead (see Dockerfile).
import { existsSync } from 'node:fs';

const [major, minor] = process.versions.node.split('.').map(Number);
const compiled = new URL('../dist/cli/main.js', import.meta.url);
const useCompiled = existsSync(compiled) && !process.env.RAFTLET_FROM_SOURCE;
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(
    `raftlet: Node.js ${process.versions.node} is too old; raftlet needs Node.js >= 22.19 (24 LTS recommended).\n` +
      `In a checkout, run it through npm (npm start, npm run ...) or node_modules/.bin/node, which is Node 24.\n`,
  );
  process.exit(2);
}
const entry = useCompiled ? compiled : new URL('../src/cli/main.ts', import.meta.url);
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
