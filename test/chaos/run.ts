// One chaos run from start to end: hosts, processes, clients, faults, recovery, final reads, checks.
// Everything made is undone in `finally`, and also from a signal handler or the 'exit' hook if the
// run is interrupted (see cli.ts).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { checkIndexes, checkLeaderSamples, checkLinearizability, checkLogs, checkLostWrites, type KeyCheckSummary } from './checks.ts';
import type { KvOp } from './kv-model.ts';
import { watchReads } from './linearizability-watch.ts';
import { StatusMonitor } from './monitor.ts';
import { Nemesis, type FaultKind } from './nemesis.ts';
import { acquireSlot, cleanAbandonedSlots, createNet, destroySlot, destroySlotSync, planNet, releaseSlot, type NetPlan } from './netns.ts';
import { allChildren, chaosCluster, ChaosNode, ChaosRelay, snapshotCode, type ExitRecord } from './processes.ts';
import { printAnomaly, type Anomaly } from './report.ts';
import { Rng } from './rng.ts';
import { acknowledgedBy, awaitWatchersCaughtUp, describeWatcher, summarizeWatcher, watchAnomalies, type WatcherSummary } from './watch-report.ts';
import { plantWatchFault, Watcher, type PlantedWatchFault } from './watcher.ts';
import { History, KvClient, perform, runClient, type Target } from './workload.ts';

export interface ChaosOptions {
  readonly seconds: number;
  readonly nodes: number;
  readonly seed: number;
  readonly faults: readonly FaultKind[];
  readonly clients: number;
  readonly keys: number;
  readonly heartbeatMs: number;
  readonly electionTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly snapshotEntries: number;
  /** How the workload reads; 'stale' is a control run that must find anomalies. */
  readonly readConsistency: 'linearizable' | 'stale';
  /** Bound on the cluster's recovery once every fault is healed. */
  readonly recoverySeconds: number;
  /** SSE watchers (GET /v1/watch) recording every change for the watch checks; 0 for none. */
  readonly watchers: number;
  /** RAFTLET_WATCH_HISTORY of the nodes; null for raftlet's default. */
  readonly watchHistory: number | null;
  /** A control: tamper with what the watchers recorded; the checks must report it. */
  readonly plantWatchFault: PlantedWatchFault;
  /** Keep the run directory (logs, data, history) even when the run passes. */
  readonly keep: boolean;
  readonly out: (line: string) => void;
}

export interface ChaosResult {
  readonly ops: number;
  readonly faults: number;
  readonly faultsByKind: ReadonlyMap<FaultKind, number>;
  readonly outcomes: Readonly<Record<'ok' | 'failed' | 'unknown', number>>;
  readonly anomalies: readonly Anomaly[];
  readonly elections: number;
  readonly snapshotsInstalled: number;
  readonly recoveryMs: number | null;
  readonly runDir: string;
  readonly keySummaries: readonly KeyCheckSummary[];
  readonly watchers: readonly WatcherSummary[];
}

/** Undoes what a run made; called from finally, from signal handlers and from the exit hook. */
interface Teardown {
  async(): Promise<void>;
  sync(): void;
}
let current: Teardown | null = null;

/** For cli.ts's signal handlers: undo the current run, if any. */
export async function abortCurrentRun(): Promise<void> {
  const teardown = current;
  current = null;
  await teardown?.async();
}

process.once('exit', () => {
  const teardown = current;
  current = null;
  teardown?.sync();
});

async function waitFor<T>(what: string, boundMs: number, probe: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + boundMs;
  for (;;) {
    const value = await probe();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${boundMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const out = options.out;
  const started = performance.now();
  const clock = (): number => performance.now() - started;
  const rng = new Rng(options.seed);
  const anomalies: Anomaly[] = [];

  await cleanAbandonedSlots();
  const slot = await acquireSlot();
  const plan: NetPlan = planNet(slot, options.nodes);
  const runDir = mkdtempSync(path.join(tmpdir(), `raftlet-chaos-${options.seed}-`));
  const nodes: ChaosNode[] = [];
  const relays: ChaosRelay[] = [];
  const watchers: Watcher[] = [];
  let tearingDown = false;
  const killAll = (): void => {
    tearingDown = true;
    for (const child of allChildren) {
      try {
        child.kill('SIGKILL');
      } catch {
        // gone
      }
    }
  };
  current = {
    async: async () => {
      killAll();
      await destroySlot(slot);
      releaseSlot(slot);
    },
    sync: () => {
      killAll();
      destroySlotSync(slot);
      releaseSlot(slot);
    },
  };
  let passed = false;
  const stopWatchers = (): Promise<unknown> => Promise.all(watchers.map((w) => w.stop()));
  try {
    out(`chaos: seed ${options.seed}, ${options.nodes} nodes on ${plan.hosts.map((h) => h.addr).join(' ')} (slot ${slot}), ${options.seconds} s, faults ${options.faults.join(',')}`);
    out(`chaos: run directory ${runDir}`);
    try {
      await createNet(plan);
    } catch (error) {
      throw new EnvironmentError(`cannot create network namespaces: ${error instanceof Error ? error.message : String(error)}`);
    }

    const code = snapshotCode(path.join(runDir, 'code'));
    out(`chaos: testing raftlet at ${code.describe} (a copy in ${path.join(runDir, 'code')})`);
    const token = randomBytes(24).toString('hex');
    const onUnexpectedExit = (node: ChaosNode, exit: ExitRecord): void => {
      if (tearingDown) return;
      const anomaly: Anomaly = {
        kind: 'crash',
        summary: `${node.id} exited by itself at t=${(exit.at / 1000).toFixed(1)}s (code ${exit.code}, signal ${exit.signal})`,
        details: node.logTail(25).split('\n'),
      };
      anomalies.push(anomaly);
      out(`t=${(exit.at / 1000).toFixed(1)}s ${anomaly.summary}`);
    };
    const cluster = chaosCluster(plan.hosts, {
      runDir,
      bin: code.bin,
      clock,
      onUnexpectedExit,
      settings: {
        heartbeatMs: options.heartbeatMs,
        electionTimeoutMs: options.electionTimeoutMs,
        requestTimeoutMs: options.requestTimeoutMs,
        snapshotEntries: options.snapshotEntries,
        ...(options.watchHistory === null ? {} : { watchHistory: options.watchHistory }),
        token,
      },
    });
    relays.push(...cluster.relays);
    nodes.push(...cluster.nodes);
    await Promise.all(relays.map((r) => r.start()));
    for (const node of nodes) node.start();
    const targets: Target[] = nodes.map((n) => ({ id: n.id, apiUrl: n.apiUrl }));
    const monitor = new StatusMonitor(targets, clock);
    const leaderAgreed = async (): Promise<string | null> => {
      const statuses = await Promise.all(targets.map((t) => monitor.status(t, 2_000)));
      const first = statuses[0];
      if (first === null || first.leader === null) return null;
      if (!statuses.every((s) => s !== null && s.leader === first.leader && s.term === first.term)) return null;
      const own = statuses.find((s) => s?.node === first.leader);
      return own?.role === 'leader' ? first.leader : null;
    };
    const initialLeader = await waitFor('a leader all nodes agree on, at start', 60_000, leaderAgreed);
    out(`t=${(clock() / 1000).toFixed(1)}s cluster up, leader ${initialLeader}`);

    // ---- the run ----
    const history = new History();
    const keys = Array.from({ length: options.keys }, (_, i) => `k${i}`);
    const clientTimeoutMs = options.requestTimeoutMs + 3_000;
    monitor.start();
    const probeClient = new KvClient(clientTimeoutMs);
    const probes: Promise<unknown>[] = [];
    const nemesis = new Nemesis({
      nodes,
      relays,
      rng: rng.fork(),
      kinds: options.faults,
      clock,
      leader: () => monitor.currentLeader(),
      log: out,
      anomaly: (summary, details) => anomalies.push({ kind: 'shutdown', summary, details }),
      afterResume: (node) => {
        // Reads aimed at a node the moment it wakes, while it may still believe it leads.
        const target = targets.find((t) => t.id === node.id) as Target;
        const query = options.readConsistency === 'stale' ? '?consistency=stale' : '';
        probes.push(...keys.map((key) => perform(history, probeClient, 'probe', target, key, { kind: 'get' }, clock, query)));
      },
      holdMs: [1_000, 8_000],
      gapMs: [500, 4_000],
    });
    let clientsStopped = false;
    const clientRngs = Array.from({ length: options.clients }, () => rng.fork());
    const workload = { keys, targets, history, clock, thinkMs: 30, timeoutMs: clientTimeoutMs, readConsistency: options.readConsistency };
    // Watchers stream from index 0, so they see every change from the first write on. Even ones
    // watch every workload key, odd ones a single key's prefix.
    const watchRng = rng.fork();
    for (let i = 0; i < options.watchers; i++) {
      const prefix = i % 2 === 0 ? 'k' : watchRng.pick(keys);
      watchers.push(new Watcher({
        name: `w${i + 1}`,
        prefix,
        targets,
        rng: watchRng.fork(),
        clock,
        after: 0,
        idleMs: 15_000,
        lagMs: 5_000,
        hopMs: [1_000, 8_000],
        awayMs: [500, 5_000],
        acknowledgedBy: acknowledgedBy(history.ops, prefix),
        resyncAfterMs: 10_000,
        maxEvents: 200_000,
      }));
    }
    for (const watcher of watchers) watcher.start();
    const clients = clientRngs.map((clientRng, i) => runClient(`c${i + 1}`, clientRng, workload, () => clientsStopped));
    const progress = setInterval(() => {
      const ops = history.ops;
      const unknown = ops.filter((o) => o.outcome === 'unknown').length;
      const watched = watchers.map((w) => `${w.name} ${w.stats.events}/${w.stats.resumed}/${w.stats.resyncs}`).join(' ');
      out(`t=${(clock() / 1000).toFixed(0)}s ${ops.length} ops (${unknown} unknown), ${nemesis.total} faults, leader ${monitor.currentLeader() ?? 'none'}${watched === '' ? '' : `, watch events/resumed/resyncs ${watched}`}`);
    }, 15_000);
    try {
      await nemesis.run(clock() + options.seconds * 1000);
    } finally {
      clientsStopped = true;
      await Promise.all([...clients, ...probes]);
      await probeClient.close();
      clearInterval(progress);
    }
    out(`t=${(clock() / 1000).toFixed(1)}s faults over and healed; clients stopped after ${history.ops.length} ops`);

    // ---- recovery ----
    for (const relay of relays) if (relay.failure !== null) anomalies.push({ kind: 'harness', summary: relay.failure, details: [] });
    for (const node of nodes) if (!node.running) node.start(); // a node that crashed (already reported)
    // Recovery is timed from the last heal; the cluster may well have recovered while the clients
    // were finishing.
    const healedAt = nemesis.lastHealAt ?? clock();
    const recoveryLeft = (): number => Math.max(1_000, healedAt + options.recoverySeconds * 1000 - clock());
    let recoveryMs: number | null = null;
    const recoveryClient = new KvClient(clientTimeoutMs);
    try {
      const recoveryLeader = await waitFor(`recovery within ${options.recoverySeconds} s of the last heal: one leader agreed by all nodes`, recoveryLeft(), leaderAgreed);
      const leaderTarget = targets.find((t) => t.id === recoveryLeader) as Target;
      const write = await waitFor(`recovery within ${options.recoverySeconds} s of the last heal: a write that commits`, recoveryLeft(), async () => {
        try {
          const answer = await recoveryClient.send('PUT', `${leaderTarget.apiUrl}/v1/kv/chaos-recovery`, { 'content-type': 'application/octet-stream' }, 'ok');
          return answer.status === 200 ? (JSON.parse(answer.text) as { index: number }) : null;
        } catch {
          return null;
        }
      });
      recoveryMs = clock() - healedAt;
      out(`t=${(clock() / 1000).toFixed(1)}s recovered within ${(recoveryMs / 1000).toFixed(1)} s of the last heal: leader ${recoveryLeader}, a write committed at index ${write.index}`);

      // ---- final reads, part of the history: every acknowledged write must still be there ----
      const finalReads: KvOp[] = [];
      for (const key of keys) {
        for (const target of targets) {
          for (let attempt = 0; attempt < 5; attempt++) {
            const op = await perform(history, recoveryClient, 'final', target, key, { kind: 'get' }, clock);
            if (op.outcome === 'ok') {
              finalReads.push(op);
              break;
            }
          }
        }
      }
      anomalies.push(...checkLostWrites(history.ops, finalReads));

      // ---- watchers catch up: every acknowledged change under their prefix delivered or passed ----
      anomalies.push(...await awaitWatchersCaughtUp(watchers, history.ops, 30_000));

      // ---- replicas converge ----
      const converged = await waitFor('every node to apply the recovery write', 30_000, async () => {
        const statuses = await Promise.all(targets.map((t) => monitor.status(t, 2_000)));
        return statuses.every((s) => s !== null && s.appliedIndex >= write.index) ? statuses : null;
      }).catch(() => null);
      if (converged === null) {
        anomalies.push({ kind: 'convergence', summary: `not every node applied index ${write.index} within 30 s after recovery`, details: [] });
      } else {
        const lists = await Promise.all(targets.map(async (t) => {
          const answer = await recoveryClient.send('GET', `${t.apiUrl}/v1/kv?prefix=&limit=1000&consistency=stale`, {});
          return { node: t.id, text: JSON.stringify((JSON.parse(answer.text) as { items: unknown }).items) };
        }));
        const differing = lists.filter((l) => l.text !== lists[0].text);
        if (differing.length > 0) {
          anomalies.push({ kind: 'convergence', summary: 'replicas differ after recovery', details: lists.map((l) => `${l.node}: ${l.text.slice(0, 400)}`) });
        }
      }
    } catch (error) {
      anomalies.push({
        kind: 'recovery',
        summary: error instanceof Error ? error.message : String(error),
        details: nodes.map((n) => `${n.id} (${n.running ? `pid ${n.pid}` : 'down'}): ${n.logTail(3).replaceAll('\n', ' | ').slice(0, 500)}`),
      });
    } finally {
      await recoveryClient.close();
      await stopWatchers();
    }
    await monitor.stop();

    // ---- stop ----
    for (const node of nodes) {
      const how = (await node.terminate(15_000)) ?? 'it was not running';
      if (how !== 'exit 0') anomalies.push({ kind: 'shutdown', summary: `${node.id} did not exit 0 on SIGTERM (${how})`, details: node.logTail(10).split('\n') });
    }
    await Promise.all(relays.map((r) => r.stop()));

    // ---- checks ----
    out(`t=${(clock() / 1000).toFixed(1)}s checking ${history.ops.length} operations`);
    writeFileSync(path.join(runDir, 'history.jsonl'), history.ops.map((o) => JSON.stringify(o, (_k, v: unknown) => (v === Infinity ? null : v))).join('\n'));
    let watchLogs = watchers.flatMap((w) => w.logs());
    writeFileSync(path.join(runDir, 'watch.jsonl'), watchLogs.map((l) => JSON.stringify(l)).join('\n'));
    writeFileSync(path.join(runDir, 'watch-journal.txt'), watchers.flatMap((w) => w.journal.map((j) => `${w.name} t=${(j.at / 1000).toFixed(3)}s ${j.line}`)).join('\n'));
    if (options.plantWatchFault !== 'none') {
      const planted = plantWatchFault(watchLogs, history.ops, options.plantWatchFault);
      if (planted === null) {
        anomalies.push({ kind: 'harness', summary: `could not plant a ${options.plantWatchFault} fault: no watcher saw an acknowledged change`, details: [] });
      } else {
        watchLogs = planted.logs;
        out(`control: planted a watch fault: ${planted.planted}`);
      }
    }
    // Watch events join each key's history as reads (linearizability-watch.ts).
    const linearizability = checkLinearizability([...history.ops, ...watchReads(watchLogs, history.ops)]);
    for (const s of linearizability.summaries) out(`  key ${s.key}: ${s.ops} ops, ${s.verdict}, ${s.steps} search steps, ${(s.ms / 1000).toFixed(1)} s`);
    anomalies.push(...linearizability.anomalies);
    anomalies.push(...watchAnomalies(watchers, watchLogs, history.ops));
    anomalies.push(...checkIndexes(history.ops));
    anomalies.push(...checkLeaderSamples(monitor.samples));
    const logs = checkLogs(nodes.map((n) => ({ node: n.id, text: n.logText() })));
    anomalies.push(...logs.anomalies);
    for (const u of history.unexpected.slice(0, 20)) {
      anomalies.push({ kind: 'unexpected-answer', summary: `an answer SPEC §4 does not allow: ${u.detail}`, details: [] });
    }

    const outcomes = { ok: 0, failed: 0, unknown: 0 };
    for (const op of history.ops) outcomes[op.outcome]++;
    passed = anomalies.length === 0;
    return {
      ops: history.ops.length,
      faults: nemesis.total,
      faultsByKind: nemesis.counts,
      outcomes,
      anomalies,
      elections: logs.elections,
      snapshotsInstalled: logs.snapshotsInstalled,
      recoveryMs,
      runDir,
      keySummaries: linearizability.summaries,
      watchers: watchers.map((w) => summarizeWatcher(w, watchLogs.filter((l) => l.watcher === w.name || l.watcher.startsWith(`${w.name}.`)), history.ops)),
    };
  } finally {
    await stopWatchers();
    const teardown = current;
    current = null;
    await teardown?.async();
    if (passed && !options.keep) rmSync(runDir, { recursive: true, force: true });
  }
}

/** This machine cannot run the harness (exit 2). */
export class EnvironmentError extends Error {}

export function printResult(result: ChaosResult, out: (line: string) => void): void {
  for (const anomaly of result.anomalies) printAnomaly(anomaly, out);
  const kinds = [...result.faultsByKind].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ');
  out(`faults by kind: ${kinds || 'none'}`);
  for (const watcher of result.watchers) out(describeWatcher(watcher));
  out(`outcomes: ok ${result.outcomes.ok}, failed ${result.outcomes.failed}, unknown ${result.outcomes.unknown}`);
  out(`elections won: ${result.elections}; snapshots installed from a leader: ${result.snapshotsInstalled}; recovered within ${result.recoveryMs === null ? '(no recovery)' : `${(result.recoveryMs / 1000).toFixed(1)} s of the last heal`}`);
  if (result.anomalies.length > 0) out(`run directory kept: ${result.runDir}`);
  out(`chaos: ${result.ops} ops, ${result.faults} faults, ${result.anomalies.length} anomalies`);
}
