#!/usr/bin/env node
// The raftlet command. Sources are TypeScript run directly by Node's type stripping (Node >= 22.18);
// the container image runs the compiled dist/ instead (see Dockerfile).
import { existsSync } from 'node:fs';
const compiled = new URL('../dist/cli/main.js', import.meta.url);
const entry = existsSync(compiled) && !process.env.RAFTLET_FROM_SOURCE ? compiled : new URL('../src/cli/main.ts', import.meta.url);
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
