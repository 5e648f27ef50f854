// SIGTERM while `raftlet run` is still starting (SPEC §2, §7). Kubernetes sends it whenever a pod
// goes, a pod that has just started included; it must end in a clean stop (exit 0), not in Node's
// default for the signal (exit 143). `run` is two programs in one process: the bin first, which
// re-executes itself with V8 heap flags (bin/raftlet.js), then the node. Each catches the signal
// from its first lines on; only Node's own boot before them is left, where no program can catch
// anything (and /proc cannot tell: Node's boot installs a handler that ends the process the
// default way). So the test aims at each program and asks the log which part of the start the
// signal reached: the node's at its first log line, the bin's while a module hook holds it at a
// known step (the stretch is too short to aim at from outside). With the signal caught only once
// the node runs (as before), neither of the two messages can appear.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { clusterHooks, describeExit, GiveUp, waitUntil, type Cluster, type ExitInfo } from '../support/cluster.ts';
import { commandLine } from '../support/proc.ts';

/** The bin's line when the signal came before it re-executed itself. */
const BEFORE_THE_NODE = /^raftlet: SIGTERM came before the node started: stopped$/m;
/** The node's first line, and its line when the signal came while it started. */
const STARTING = /"msg":"raftlet node-\d starting"/;
const DURING_THE_START = /"signal":"SIGTERM".*"msg":"the stop signal came during the start: stopping now that the start is done"/;
const ATTEMPTS = 8;
const HOLD_HOOK = pathToFileURL(path.join(import.meta.dirname, '..', 'support', 'hold-import.ts')).href;
/** How long the hook holds the bin: far longer than the test needs to see the marker and signal. */
const HOLD_MS = 5_000;

interface Attempt {
  readonly exit: ExitInfo;
  /** The log of this process only. */
  readonly log: string;
  /** The bin had re-executed itself before the signal. */
  readonly reExecuted: boolean;
}

function latestLog(c: Cluster, node: number): string {
  const text = c.logText(node);
  return text.slice(text.indexOf('\n', text.lastIndexOf('---- harness: starting')) + 1);
}

/** Starts the node, sends SIGTERM once `due` says so of its log (polled every millisecond or two), and waits
 * for the exit. */
async function signalDuringStart(c: Cluster, node: number, due: (log: string) => boolean): Promise<Attempt> {
  await c.start(node, { wait: 'none' });
  const pid = c.pid(node);
  const spawnedAt = Date.now();
  const first = commandLine(pid)?.join(' ');
  let reExecuted = false;
  for (;;) {
    const elapsed = Date.now() - spawnedAt;
    assert.ok(elapsed < 30_000, `no moment to signal within 30 s:\n${latestLog(c, node)}`);
    const now = commandLine(pid)?.join(' ');
    assert.ok(now !== undefined && c.isLive(node), `the process ended while starting:\n${latestLog(c, node)}`);
    if (now !== first) reExecuted = true;
    if (due(latestLog(c, node))) break;
    await delay(1);
  }
  process.kill(pid, 'SIGTERM');
  const exit = await c.waitExit(node);
  return { exit, log: latestLog(c, node), reExecuted };
}

/** Starts the member with the hold hook on its bin's import of run/stop-signals, sends SIGTERM once
 * the hook says the bin is there, and waits for the exit. */
async function signalWhileTheBinHolds(c: Cluster, node: number): Promise<{ exit: ExitInfo; output: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'raftlet-hold-'));
  const marker = path.join(dir, 'held');
  try {
    const own = c.spec(node).env.NODE_OPTIONS;
    await c.start(node, {
      wait: 'none',
      env: {
        NODE_OPTIONS: [own, `--import=${HOLD_HOOK}`].filter((o) => o !== undefined && o !== '').join(' '),
        RAFTLET_TEST_HOLD_MODULE: 'run/stop-signals',
        RAFTLET_TEST_HOLD_MARKER: marker,
        RAFTLET_TEST_HOLD_MS: String(HOLD_MS),
      },
    });
    await waitUntil('the bin to load run/stop-signals', () => {
      if (!c.isLive(node)) throw new GiveUp(`the process ended before the bin loaded run/stop-signals:\n${latestLog(c, node)}`);
      return existsSync(marker);
    }, { timeoutMs: 30_000, intervalMs: 2 });
    process.kill(c.pid(node), 'SIGTERM');
    const exit = await c.waitExit(node, 20_000);
    return { exit, output: latestLog(c, node) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('SIGTERM while raftlet run starts', () => {
  const clusters = clusterHooks();

  test('stops with exit 0 in either program of the start, and the member rejoins with its data', async () => {
    const c = await clusters.start({ nodes: 3, name: 'sigterm-start' });
    const leader = await c.waitForLeader();
    await c.putOk(leader.node, 'before', 'kept');
    const member = c.ordinals.find((n) => n !== leader.node);
    assert.ok(member !== undefined);
    assert.equal(await c.sigterm(member), 0);

    // The node program: signalled as soon as it logs its first line, long before it has started.
    let reExecuted = false;
    let during = false;
    for (let attempt = 1; attempt <= ATTEMPTS && !during; attempt++) {
      const a = await signalDuringStart(c, member, (log) => STARTING.test(log));
      assert.equal(a.exit.code, 0, `attempt ${attempt}, signalled at the node's first line: ${describeExit(a.exit)}, not exit 0:\n${a.log}`);
      assert.match(a.log, /"msg":"stopped"/, 'the usual stop');
      reExecuted ||= a.reExecuted;
      during = DURING_THE_START.test(a.log);
    }
    assert.ok(during, `in ${ATTEMPTS} attempts the node never said the signal came during its start`);
    assert.ok(reExecuted, 'the bin never re-executed itself with V8 heap flags');

    // The bin before it re-executes itself: about a hundred milliseconds, whose start moves with
    // the machine's load, so signals timed from outside missed it (8 attempts at shares of the
    // measured re-execution time all missed once in CI). A module hook (test/support/hold-import.ts)
    // holds the bin's import of run/stop-signals, the first module it loads once it catches the
    // signal, and says when: the signal then lands in the bin every time.
    const held = await signalWhileTheBinHolds(c, member);
    assert.equal(held.exit.code, 0, `signalled while the bin held: ${describeExit(held.exit)}, not exit 0:\n${held.output}`);
    assert.match(held.output, BEFORE_THE_NODE, `the bin's own stop, not the node's:\n${held.output}`);
    assert.doesNotMatch(held.output, STARTING, 'the node never started');

    // Nothing was lost or damaged: the member starts again and serves what the cluster holds.
    await c.start(member);
    const written = await c.putOk(leader.node, 'after', 'yes');
    await c.waitForApplied(member, written.index);
    assert.equal(await c.getText(member, 'before', { consistency: 'stale' }), 'kept');
    await c.stopAll();
  });
});
