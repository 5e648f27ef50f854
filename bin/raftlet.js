#!/usr/bin/env node
// The raftlet command.
//
// Which code runs: the compiled dist/ when it is there and not older than the sources (the image has
// no sources, so always dist/ there), else src/ through Node's type stripping. Compiled code starts
// faster and leaves the type stripper out of memory; a stale build must never run, so in a checkout
// dist/ is used only when its entry point is at least as new as every file under src/.
// RAFTLET_USE_DIST=1 or 0 forces one or the other.
//
// `raftlet run` is then re-executed once (process.execve: same pid, same stdio, so PID 1 in a
// container stays PID 1 and receives SIGTERM) with V8 heap flags sized for a sidecar: see
// src/cli/v8-sizing.ts. RAFTLET_V8_SIZED marks the second start; it is removed at once, so processes
// this one starts (raftlet local's nodes) size themselves.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(
    `raftlet: Node.js ${process.versions.node} is too old; raftlet needs Node.js >= 22.19 (24 LTS recommended).\n` +
      `In a checkout, run it through npm (npm start, npm run ...) or node_modules/.bin/node, which is Node 24.\n`,
  );
  process.exit(2);
}

// `raftlet run` catches SIGTERM and SIGINT from here on, so a pod deleted while it starts stops
// cleanly (exit 0) instead of Node's default way (exit 143). This first catch keeps the signal only
// until src/run/stop-signals.ts, which the node runtime shares, takes over below (loading a module
// through type stripping takes some 100 ms; only Node's own boot comes before this line).
const STOP_SIGNALS = ['SIGTERM', 'SIGINT'];
const running = process.argv[2] === 'run';
let earlySignal = null;
const keepEarly = (signal) => {
  earlySignal = signal;
  // As later on: a second signal ends the process the default way.
  for (const s of STOP_SIGNALS) process.removeListener(s, keepEarly);
};
if (running) for (const s of STOP_SIGNALS) process.on(s, keepEarly);

const SIZED = 'RAFTLET_V8_SIZED';
const sized = process.env[SIZED] === '1';
delete process.env[SIZED];

const compiled = { dir: new URL('../dist/', import.meta.url), ext: 'js' };
const sources = { dir: new URL('../src/', import.meta.url), ext: 'ts' };
const entryOf = (code) => new URL(`cli/main.${code.ext}`, code.dir);

/** Newest modification time of any file under dir (a few dozen stats in a checkout). */
function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** The code to run, or a message naming what is wrong. */
function chooseCode() {
  const hasCompiled = existsSync(entryOf(compiled));
  const hasSources = existsSync(entryOf(sources));
  const forced = process.env.RAFTLET_USE_DIST;
  if (forced === '1' || forced === 'true') {
    return hasCompiled ? compiled : 'RAFTLET_USE_DIST=1 but there is no dist/cli/main.js; run npm run build first';
  }
  if (forced === '0' || forced === 'false') {
    return hasSources ? sources : 'RAFTLET_USE_DIST=0 but there are no sources (src/cli/main.ts) beside this bin';
  }
  if (forced !== undefined && forced !== '') return `RAFTLET_USE_DIST must be 1 or 0 (true or false), got ${JSON.stringify(forced)}`;
  if (!hasSources) return hasCompiled ? compiled : 'neither dist/cli/main.js nor src/cli/main.ts exists beside this bin';
  if (!hasCompiled) return sources;
  return statSync(entryOf(compiled)).mtimeMs >= newestMtime(fileURLToPath(sources.dir)) ? compiled : sources;
}

const code = chooseCode();
if (typeof code === 'string') {
  process.stderr.write(`raftlet: ${code}\n`);
  process.exit(2);
}

const args = process.argv.slice(2);
const stopSignals = running ? (await import(new URL(`run/stop-signals.${code.ext}`, code.dir).href)).stopSignals : null;
if (stopSignals !== null) {
  // Its listeners first, then away with the early ones: never a moment with none.
  stopSignals.listen(earlySignal);
  for (const s of STOP_SIGNALS) process.removeListener(s, keepEarly);
}
if (running && !sized && typeof process.execve === 'function') {
  const { planSizing, readMemoryLimit, nodeOptionsWords } = await import(new URL(`cli/v8-sizing.${code.ext}`, code.dir).href);
  const plan = planSizing({
    limitBytes: readMemoryLimit(),
    totalMemoryBytes: totalmem(),
    userFlags: [...process.execArgv, ...nodeOptionsWords(process.env.NODE_OPTIONS)],
    env: process.env,
  });
  if (plan.flags.length > 0 || Object.keys(plan.env).length > 0) {
    // A signal caught now and not acted on would be lost with this program. One caught during the
    // synchronous steps above reaches JavaScript in a poll phase of the loop: two turns make sure
    // one has passed. Then the default comes back before the execve (Node's execve does some work
    // of its own first): a signal from here on ends the process, never goes missing.
    for (let turn = 0; turn < 2; turn++) await new Promise((resolve) => setImmediate(resolve));
    stopSignals.close();
    if (stopSignals.received !== null) {
      // Nothing has started yet: a clean stop.
      process.stderr.write(`raftlet: ${stopSignals.received} came before the node started: stopped\n`);
      process.exit(0);
    }
    process.execve(
      process.execPath,
      [process.execPath, ...process.execArgv, ...plan.flags, fileURLToPath(import.meta.url), ...args],
      { ...process.env, ...plan.env, [SIZED]: '1' },
    );
  }
}

const { main } = await import(entryOf(code).href);
const exitCode = await main(args);
process.exitCode = exitCode;
// The process ends by itself once nothing is left open. Should a socket or timer outlive the stop
// (a leak, or a peer that never closes), it must not keep a stopped member alive until the
// kubelet's SIGKILL at the end of the grace period: say what was left, and end anyway.
setTimeout(() => {
  process.stderr.write(`raftlet: still running 2 s after stopping (left open: ${process.getActiveResourcesInfo().join(', ')}); exiting with code ${exitCode}\n`);
  process.exit(exitCode);
}, 2000).unref();
