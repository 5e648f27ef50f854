// Abuse of a running cluster's peer port (issue 14), loopback only, bounded in count and time:
// while a writer runs, thousands of unauthenticated requests, oversized bodies (declared and
// actual), slow-header and idle connections hit the leader's peer port from other loopback
// addresses (127.0.0.2-9, as an attacker's would differ from the peers'). Asserted: the leader
// keeps its office (term unchanged: no election), the writer keeps succeeding, and the leader's
// RSS stays bounded. The writer's p50/p99 and the leader's CPU use with and without the abuse are
// printed, not asserted: speed is judged by `npm run bench:abuse` (alternating windows, the abuser
// at nice 19), never by a timed test.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { allChildren, clusterHooks, type Cluster } from '../support/cluster.ts';

const ABUSE_MS = 10_000;
const ABUSER = fileURLToPath(new URL('./fixtures/abuser.ts', import.meta.url));

function rssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match === null ? 0 : Number(match[1]) / 1024;
}

/** CPU time (user + system) the process has used so far, in ms. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
  // utime and stime are fields 14 and 15 of stat, in clock ticks (100 per second on Linux).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** One writer: sequential PUTs to the node for ms; latencies of the accepted ones, and failures. */
async function write(cluster: Cluster, node: number, ms: number): Promise<{ latencies: number[]; failures: string[] }> {
  const latencies: number[] = [];
  const failures: string[] = [];
  const until = performance.now() + ms;
  for (let i = 0; performance.now() < until; i++) {
    const started = performance.now();
    try {
      const answer = await cluster.put(node, `abuse-${i % 20}`, `v${i}`, { timeoutMs: 10_000 });
      if (answer.status === 200) latencies.push(performance.now() - started);
      else failures.push(`${answer.status} ${answer.text.slice(0, 120)}`);
    } catch (error) {
      failures.push(error instanceof Error ? error.message : String(error));
    }
  }
  return { latencies: latencies.sort((x, y) => x - y), failures };
}

/** Runs the abuser in a process of its own, so its work does not slow the writer's measurements. */
async function abuse(port: number, ms: number): Promise<Record<string, number>> {
  const child = spawn(process.execPath, [ABUSER, String(port), String(ms)], { stdio: ['ignore', 'pipe', 'inherit'] });
  allChildren.add(child);
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const [code] = (await once(child, 'exit')) as [number | null];
  allChildren.delete(child);
  assert.equal(code, 0, `the abuser failed: ${out}`);
  return JSON.parse(out) as Record<string, number>;
}

describe('peer port abuse', () => {
  const clusters = clusterHooks();

  it('junk on the leader\'s peer port: no election, the writer goes on, memory stays bounded', async () => {
    const cluster = await clusters.start({ nodes: 3, name: 'abuse' });
    const leader = await cluster.waitForLeader();
    const writerNode = cluster.ordinals.find((n) => n !== leader.node) as number;
    await cluster.putOk(writerNode, 'warm', 'up');
    const leaderPid = cluster.pid(leader.node);
    const quietCpuBefore = cpuMs(leaderPid);
    const quietStarted = performance.now();
    const quiet = await write(cluster, writerNode, 5_000);
    const quietCpu = (cpuMs(leaderPid) - quietCpuBefore) / (performance.now() - quietStarted);
    const abusedCpuBefore = cpuMs(leaderPid);
    const abusedStarted = performance.now();
    const rssBefore = rssMb(cluster.pid(leader.node));

    let rssMax = rssBefore;
    const sampler = setInterval(() => {
      rssMax = Math.max(rssMax, rssMb(cluster.pid(leader.node)));
    }, 200);
    let counts: Record<string, number>;
    let abused: Awaited<ReturnType<typeof write>>;
    try {
      [counts, abused] = await Promise.all([abuse(cluster.spec(leader.node).peerPort, ABUSE_MS), write(cluster, writerNode, ABUSE_MS)]);
    } finally {
      clearInterval(sampler);
    }
    const abusedCpu = (cpuMs(leaderPid) - abusedCpuBefore) / (performance.now() - abusedStarted);
    const after = await cluster.waitForLeader();
    const refusedLines = cluster.logText(leader.node).split('refused a peer request').length - 1;
    process.stderr.write(
      `peer port abuse for ${ABUSE_MS} ms: ${JSON.stringify(counts)}\n` +
      `  writer without abuse: ${quiet.latencies.length} writes, p50 ${quantile(quiet.latencies, 0.5).toFixed(1)} ms, p99 ${quantile(quiet.latencies, 0.99).toFixed(1)} ms\n` +
      `  writer with abuse:    ${abused.latencies.length} writes, p50 ${quantile(abused.latencies, 0.5).toFixed(1)} ms, p99 ${quantile(abused.latencies, 0.99).toFixed(1)} ms, ${abused.failures.length} failed\n` +
      `  leader CPU ${(quietCpu * 1000).toFixed(0)} ms/s without abuse, ${(abusedCpu * 1000).toFixed(0)} ms/s with it; machine load ${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]}\n` +
      `  leader RSS ${rssBefore.toFixed(0)} MB before, at most ${rssMax.toFixed(0)} MB during; ${refusedLines} refusal log lines\n`,
    );
    assert.equal(after.id, leader.id, 'the leader changed');
    assert.equal(after.term, leader.term, 'an election happened during the abuse');
    assert.deepEqual(abused.failures, [], 'writes failed during the abuse');
    assert.ok(abused.latencies.length > 0, 'no write succeeded during the abuse');
    assert.ok(rssMax < rssBefore + 256, `the leader's RSS grew from ${rssBefore.toFixed(0)} to ${rssMax.toFixed(0)} MB`);
    assert.ok(refusedLines < 1000, `${refusedLines} refusal log lines: logging is not rate-limited`);
  });
});
