// The nemesis harness end to end, as `npm run chaos` runs it: real raftlet processes in network
// namespaces, partitions, kills and pauses, then the checks. Needs root (CI runs as root); skipped
// with a note elsewhere. A second, shorter run reads with ?consistency=stale, which is not
// linearizable, and drops one event from what a watcher recorded: it must end with both kinds of
// anomaly, or the harness could not fail.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('./cli.ts', import.meta.url));
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const running = new Set<ChildProcess>();

interface Outcome {
  readonly code: number | null;
  readonly output: string;
}

function chaos(args: readonly string[], boundMs: number): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    // SIGTERM lets the harness remove its namespaces and processes before it exits.
    const timer = setTimeout(() => child.kill('SIGTERM'), boundMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      running.delete(child);
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, output });
    });
  });
}

function tail(output: string, lines = 150): string {
  return output.trimEnd().split('\n').slice(-lines).join('\n');
}

describe('chaos harness', { skip: isRoot ? false : 'needs root for network namespaces and iptables (CI runs as root)' }, () => {
  after(async () => {
    await Promise.all([...running].map((child) => new Promise<void>((resolve) => {
      child.once('close', () => resolve());
      child.kill('SIGTERM');
    })));
  });

  it('2 minutes on 3 nodes with partitions, kills and pauses: every history linearizable, no anomaly', async () => {
    const { code, output } = await chaos(['--seconds', '120', '--nodes', '3', '--faults', 'partition,kill,pause,loss,delay,terminate-leader,transfer'], 420_000);
    const last = output.trimEnd().split('\n').at(-1) ?? '';
    assert.equal(code, 0, `chaos exited ${code}:\n${tail(output)}`);
    const match = /^chaos: (\d+) ops, (\d+) faults, 0 anomalies$/.exec(last);
    assert.ok(match !== null, `unexpected last line ${JSON.stringify(last)}:\n${tail(output)}`);
    // A run that did next to nothing would prove nothing.
    assert.ok(Number(match[1]) >= 500, `only ${match[1]} operations:\n${tail(output)}`);
    assert.ok(Number(match[2]) >= 8, `only ${match[2]} faults:\n${tail(output)}`);
    assert.match(output, /^outcomes: ok \d+, failed \d+, unknown \d+$/m);
    assert.match(output, /^faults by kind: /m);
    // Two watchers (the default) streamed through it all, resumed on other nodes, and their
    // events were checked.
    const watched = [...output.matchAll(/^watch (w\d) \(prefix "[^"]*"\): (\d+) events, \d+ streams \(\d+ resumed, (\d+) on another node;.* covered (\d+) of (\d+) acknowledged changes/gm)];
    assert.deepEqual(watched.map((m) => m[1]), ['w1', 'w2'], tail(output));
    for (const [line, , events, , covered] of watched) {
      assert.ok(Number(events) >= 20 && Number(covered) >= 20, `a watcher that saw little proves little: ${line}`);
    }
    assert.ok(watched.reduce((sum, m) => sum + Number(m[3]), 0) >= 3, `streams seldom resumed on another node:\n${tail(output)}`);
  });

  it('control: stale reads under partitions, and a watch event dropped from the record, are caught (exit 1)', async () => {
    const { code, output } = await chaos(['--seconds', '25', '--nodes', '3', '--faults', 'partition', '--read-consistency', 'stale', '--plant-watch-fault', 'drop'], 240_000);
    assert.equal(code, 1, `the stale-read run exited ${code}:\n${tail(output)}`);
    assert.match(output, /^ANOMALY \[linearizability\] key "k\d" is not linearizable/m, tail(output));
    const planted = /^control: planted a watch fault: dropped the event of index (\d+) from (w\d+(?:\.\d+)?)$/m.exec(output);
    assert.ok(planted !== null, tail(output));
    assert.match(output, new RegExp(`^ANOMALY \\[watch-gap\\] ${planted[2].replace('.', '\\.')} .* missed the acknowledged .* at index ${planted[1]}$`, 'm'), tail(output));
    assert.match(output, /^chaos: \d+ ops, \d+ faults, [1-9]\d* anomalies$/m, tail(output));
  });
});
