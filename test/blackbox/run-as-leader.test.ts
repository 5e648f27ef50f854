// The judged test of runAsLeader (issue 15): three raftlet processes, each in its own network
// namespace (test/chaos's netns helpers and relays), and beside each an application process built
// on runAsLeader (singleton-app.ts) that, while it leads, appends fenced writes to a log in raftlet.
// Faults on the leader, twice over: kill -9, SIGSTOP longer than the election timeout, a network
// partition that cuts the leader off. Checked from the log raftlet kept (read back as a watch from
// index 0, so each write comes with the term of the entry that holds it):
// - every accepted write carries the term of the leader that wrote it (entry term = its If-Term),
//   so no write with a stale term was ever accepted;
// - terms never go backwards in log order, and each term's writes come from one application;
// - the applications' own start/stop times never overlap (they never ran their work at once);
// - each 200 answer is in the log, each 412 answer is not.
// Needs root for the namespaces; skipped otherwise.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readEvents } from '../../src/client/index.ts';
import { acquireSlot, cleanAbandonedSlots, createNet, destroySlot, environmentProblem, iptables, PARTITION_CHAIN, planNet, releaseSlot } from '../chaos/netns.ts';
import { allChildren, chaosCluster, ChaosNode, ChaosRelay } from '../chaos/processes.ts';
import { RAFTLET_BIN, REPO_ROOT, waitUntil } from '../support/cluster.ts';

const APP = fileURLToPath(new URL('./singleton-app.ts', import.meta.url));
const ELECTION_MS = 1000;
const problem = environmentProblem();

interface AppLine {
  readonly app: string;
  readonly t: number;
  readonly ev: 'start' | 'stop' | 'stopped' | 'write' | 'exit';
  readonly term?: number;
  readonly seq?: number;
  readonly status?: number;
  readonly index?: number;
  readonly entryTerm?: number;
  readonly reason?: string;
  readonly error?: string;
}

class AppProcess {
  readonly name: string;
  readonly lines: AppLine[] = [];
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  stderr = '';

  constructor(name: string, apiUrl: string) {
    this.name = name;
    this.child = spawn(process.execPath, [APP, '--api', apiUrl, '--name', name, '--interval-ms', '25'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    allChildren.add(this.child);
    createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on('line', (line) => this.lines.push(JSON.parse(line) as AppLine));
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => this.child.once('exit', () => {
      allChildren.delete(this.child);
      resolve();
    }));
  }

  /** Accepted writes in its current (last started) leadership. */
  writesInCurrentLeadership(): number {
    const start = this.lines.findLastIndex((l) => l.ev === 'start');
    const stop = this.lines.findLastIndex((l) => l.ev === 'stop');
    if (start < 0 || stop > start) return 0;
    return this.lines.slice(start).filter((l) => l.ev === 'write' && l.status === 200).length;
  }
}

interface Fenced {
  readonly key: string;
  readonly index: number;
  readonly entryTerm: number;
  readonly app: string;
  readonly term: number;
  readonly seq: number;
}

async function status(node: ChaosNode): Promise<{ role: string; term: number; leader: string | null } | null> {
  try {
    const response = await fetch(`${node.apiUrl}/v1/status`, { signal: AbortSignal.timeout(1500) });
    return response.ok ? ((await response.json()) as { role: string; term: number; leader: string | null }) : null;
  } catch {
    return null;
  }
}

/** The leader all the given nodes agree on (and that says so itself). */
async function agreedLeader(nodes: readonly ChaosNode[], minTerm = 0): Promise<{ node: ChaosNode; term: number }> {
  return waitUntil(`a leader agreed by ${nodes.map((n) => n.id).join(', ')} in a term >= ${minTerm}`, async () => {
    const statuses = await Promise.all(nodes.map(status));
    const first = statuses[0];
    if (!first?.leader || first.term < minTerm || !statuses.every((s) => s?.leader === first.leader && s.term === first.term)) return null;
    const node = nodes.find((n) => n.id === first.leader);
    return node !== undefined && statuses[nodes.indexOf(node)]?.role === 'leader' ? { node, term: first.term } : null;
  }, { timeoutMs: 60_000 });
}

/** Every change under fence/ from index 0, read as a watch stream from one node (entries' terms). */
async function readFencedLog(node: ChaosNode): Promise<Fenced[]> {
  const list = await fetch(`${node.apiUrl}/v1/kv?prefix=fence/&limit=1`);
  const target = ((await list.json()) as { index: number }).index;
  const controller = new AbortController();
  const bound = setTimeout(() => controller.abort(new Error(`the fenced log did not reach index ${target} within 60 s`)), 60_000);
  const response = await fetch(`${node.apiUrl}/v1/watch?prefix=fence/&index=0`, { signal: controller.signal });
  if (response.status !== 200) throw new Error(`GET /v1/watch on ${node.id} answered ${response.status}: ${await response.text()}`);
  const entries: Fenced[] = [];
  try {
    for await (const message of readEvents(response.body as ReadableStream<Uint8Array>)) {
      if (message.event === 'put') {
        const data = JSON.parse(message.data) as { key: string; value: string; index: number; term: number };
        const value = JSON.parse(data.value) as { app: string; term: number; seq: number };
        entries.push({ key: data.key, index: data.index, entryTerm: data.term, app: value.app, term: value.term, seq: value.seq });
      }
      if (message.event === 'resync') throw new Error(`the fenced log is no longer complete on ${node.id}: ${message.data}`);
      if (message.id !== null && Number(message.id) >= target) break;
    }
  } finally {
    clearTimeout(bound);
    controller.abort();
  }
  return entries;
}

describe('runAsLeader: never two at once (real processes, network namespaces)', { skip: problem ?? undefined }, () => {
  let cleanup: (() => Promise<void>) | null = null;
  after(async () => {
    await cleanup?.();
  });

  it('two applications never work at once across kill -9, SIGSTOP and a partition of the leader; no stale write lands', async () => {
    await cleanAbandonedSlots();
    const slot = await acquireSlot();
    const plan = planNet(slot, 3);
    const runDir = mkdtempSync(path.join(tmpdir(), 'raftlet-run-as-leader-'));
    const nodes: ChaosNode[] = [];
    const relays: ChaosRelay[] = [];
    const apps: AppProcess[] = [];
    let keep = false;
    cleanup = async () => {
      for (const app of apps) if (app.child.exitCode === null) app.child.kill('SIGKILL');
      for (const node of nodes) await node.kill9().catch(() => undefined);
      await Promise.allSettled(relays.map((r) => r.stop()));
      await destroySlot(slot);
      releaseSlot(slot);
      if (!keep) rmSync(runDir, { recursive: true, force: true });
    };
    const started = performance.now();
    const log = (line: string): void => void process.stdout.write(`# t=${((performance.now() - started) / 1000).toFixed(1)}s ${line}\n`);
    try {
      await createNet(plan);
      const token = randomBytes(24).toString('hex');
      const cluster = chaosCluster(plan.hosts, {
        runDir,
        bin: RAFTLET_BIN,
        clock: () => performance.now() - started,
        onUnexpectedExit: (node, exit) => log(`${node.id} exited by itself (code ${exit.code}, signal ${exit.signal})`),
        settings: { heartbeatMs: 100, electionTimeoutMs: ELECTION_MS, requestTimeoutMs: 3000, snapshotEntries: 1_000_000, token },
      });
      relays.push(...cluster.relays);
      nodes.push(...cluster.nodes);
      await Promise.all(relays.map((r) => r.start()));
      for (const node of nodes) node.start();
      let leader = await agreedLeader(nodes);
      for (const node of nodes) apps.push(new AppProcess(`app-${node.id}`, node.apiUrl));
      const appOf = (node: ChaosNode): AppProcess => apps[nodes.indexOf(node)] as AppProcess;
      const leaderWorks = async (what: string): Promise<void> => {
        await waitUntil(`the app beside ${leader.node.id} to make 5 fenced writes (${what})`, () => appOf(leader.node).writesInCurrentLeadership() >= 5, { timeoutMs: 60_000 });
      };
      await leaderWorks('at start');

      for (let round = 1; round <= 2; round++) {
        // kill -9 of the leader.
        let old = leader;
        log(`round ${round}: kill -9 ${old.node.id} (term ${old.term})`);
        await old.node.kill9();
        leader = await agreedLeader(nodes.filter((n) => n !== old.node), old.term + 1);
        await leaderWorks(`after kill -9 of ${old.node.id}`);
        old.node.start();
        await agreedLeader(nodes);

        // SIGSTOP of the leader, longer than the election timeout: a new leader is elected meanwhile.
        old = leader;
        log(`round ${round}: SIGSTOP ${old.node.id} (term ${old.term})`);
        const pausedAt = performance.now();
        old.node.pause();
        leader = await agreedLeader(nodes.filter((n) => n !== old.node), old.term + 1);
        await leaderWorks(`while ${old.node.id} is stopped`);
        assert.ok(performance.now() - pausedAt > ELECTION_MS, 'paused longer than the election timeout');
        old.node.resume();
        await agreedLeader(nodes);

        // A partition that cuts the leader off from the other two (its app still reaches it).
        old = leader;
        log(`round ${round}: partition ${old.node.id} (term ${old.term}) from the others`);
        const others = nodes.filter((n) => n !== old.node);
        for (const other of others) {
          await iptables(old.node.host.ns, ['-A', PARTITION_CHAIN, '-s', other.host.addr, '-j', 'DROP']);
          await iptables(other.host.ns, ['-A', PARTITION_CHAIN, '-s', old.node.host.addr, '-j', 'DROP']);
        }
        leader = await agreedLeader(others, old.term + 1);
        await leaderWorks(`while ${old.node.id} is cut off`);
        await waitUntil(`the app beside the cut-off ${old.node.id} to stop`, () => appOf(old.node).lines.findLastIndex((l) => l.ev === 'stop') > appOf(old.node).lines.findLastIndex((l) => l.ev === 'start'), { timeoutMs: 30_000 });
        for (const node of nodes) await iptables(node.host.ns, ['-F', PARTITION_CHAIN]);
        leader = await agreedLeader(nodes);
        await leaderWorks('after the partition healed');
      }

      log('stopping the applications');
      for (const app of apps) app.child.kill('SIGTERM');
      await Promise.all(apps.map((app) => app.exited));
      log('reading the fenced log back');
      const fenced = await readFencedLog(leader.node);
      log(`${fenced.length} fenced writes in the log, terms ${[...new Set(fenced.map((f) => f.entryTerm))].join(', ')}`);

      // 1. Every accepted write carries the term of the leader that wrote it.
      for (const f of fenced) assert.equal(f.entryTerm, f.term, `${f.key} (index ${f.index}) was accepted in term ${f.entryTerm} but fenced with term ${f.term}`);
      // 2. Terms never go backwards in log order; 3. one application per term.
      const appOfTerm = new Map<number, string>();
      for (let i = 1; i < fenced.length; i++) {
        const [prev, cur] = [fenced[i - 1] as Fenced, fenced[i] as Fenced];
        assert.ok(cur.index > prev.index && cur.entryTerm >= prev.entryTerm, `the log goes back from term ${prev.entryTerm} (index ${prev.index}) to ${cur.entryTerm} (index ${cur.index})`);
      }
      for (const f of fenced) {
        const owner = appOfTerm.get(f.term);
        assert.ok(owner === undefined || owner === f.app, `term ${f.term} has writes from ${owner} and ${f.app}`);
        appOfTerm.set(f.term, f.app);
      }
      assert.ok(appOfTerm.size >= 7, `only ${appOfTerm.size} leaderships wrote (a start and six faults)`);
      // 4. The applications' work never overlapped in time.
      const intervals: { app: string; term: number; from: number; to: number }[] = [];
      for (const app of apps) {
        let open: AppLine | null = null;
        for (const line of app.lines) {
          if (line.ev === 'start') open = line;
          if (line.ev === 'stop' && open !== null) {
            intervals.push({ app: app.name, term: open.term ?? 0, from: open.t, to: line.t });
            open = null;
          }
        }
        assert.equal(open, null, `${app.name} never stopped its leadership of term ${open?.term}`);
      }
      intervals.sort((a, b) => a.from - b.from);
      for (let i = 1; i < intervals.length; i++) {
        const [a, b] = [intervals[i - 1] as (typeof intervals)[number], intervals[i] as (typeof intervals)[number]];
        assert.ok(b.from >= a.to, `${a.app} worked in term ${a.term} until ${a.to.toFixed(1)}, ${b.app} started in term ${b.term} at ${b.from.toFixed(1)}: overlap of ${(a.to - b.from).toFixed(1)} ms`);
      }
      // How much room there was: from one app's stop to the next start of ANOTHER app.
      const gaps = intervals.slice(1).flatMap((b, i) => {
        const a = intervals[i] as (typeof intervals)[number];
        return a.app === b.app ? [] : [b.from - a.to];
      }).sort((x, y) => x - y);
      log(`${intervals.length} leaderships (${intervals.length - 1 - gaps.length} resumed by the same app after a lost lease); ` +
        `from one app's stop to another's start: min ${gaps[0]?.toFixed(0)} ms, median ${gaps[Math.floor(gaps.length / 2)]?.toFixed(0)} ms`);
      // 5. Answers agree with the log.
      const inLog = new Map(fenced.map((f) => [f.key, f]));
      let refused = 0;
      for (const app of apps) {
        for (const line of app.lines.filter((l) => l.ev === 'write')) {
          const key = `fence/${app.name}/${String(line.seq).padStart(6, '0')}`;
          if (line.status === 200) assert.equal(inLog.get(key)?.index, line.index, `${key} was acknowledged at index ${line.index}`);
          if (line.status === 412) {
            refused++;
            assert.equal(inLog.has(key), false, `${key} was refused (412) but is in the log`);
          }
        }
      }
      log(`${refused} late writes refused with 412 (If-Term)`);
    } catch (error) {
      keep = true;
      for (const node of nodes) process.stderr.write(`\n==== ${node.id} ${node.logFile}\n${node.logTail(30)}\n`);
      for (const app of apps) process.stderr.write(`\n==== ${app.name}: ${app.lines.filter((l) => l.ev !== 'write').map((l) => JSON.stringify(l)).join('\n')}\n${app.stderr}\n`);
      process.stderr.write(`run directory kept: ${runDir}\n`);
      throw error;
    }
  });
});
