// The watchers of a chaos run, judged and summed up: the watch checks of linearizability-watch.ts
// as anomalies, plus what those checks cannot see on their own: a watcher that saw nothing while
// writes under its prefix were acknowledged, one that never caught up after recovery (stalled), and
// answers SPEC §4 does not allow. And one line per watcher: events, reconnects, resyncs, how many
// acknowledged changes its segments covered, delivery latency.
import type { KvOp } from './kv-model.ts';
import { acknowledgedChanges, checkWatchIndexes, type WatchLog } from './linearizability-watch.ts';
import { describeOp, type Anomaly } from './report.ts';
import type { Watcher, WatcherStats } from './watcher.ts';

/** At most this many anomalies of one kind are listed; the rest are counted. */
const MAX_PER_KIND = 10;

export interface WatcherSummary extends WatcherStats {
  readonly name: string;
  readonly prefix: string;
  readonly segments: number;
  /** Acknowledged changes under the prefix, and how many fell inside a segment's range. */
  readonly acknowledged: number;
  readonly covered: number;
  /** Write invoked to event delivered, ms, over events of known writes (null without any). */
  readonly latencyP50: number | null;
  readonly latencyP99: number | null;
}

/** The acknowledged changes of a history, by rising index. */
function acknowledgedInOrder(ops: readonly KvOp[]): { index: number; key: string; op: KvOp }[] {
  return [...acknowledgedChanges(ops)].map(([index, { key, op }]) => ({ index, key, op })).sort((a, b) => a.index - b.index);
}

/**
 * For a watcher's lag test while the run goes on: the highest index under `prefix` acknowledged at
 * or before a time. Reads only what was added to `ops` since the last call (operations are pushed
 * as they complete, so `ret` grows along the array, apart from unknown outcomes at Infinity).
 */
export function acknowledgedBy(ops: readonly KvOp[], prefix: string): (time: number) => number {
  const seen: { ret: number; highest: number }[] = [];
  let cursor = 0;
  return (time) => {
    for (; cursor < ops.length; cursor++) {
      const op = ops[cursor];
      if (!op.key.startsWith(prefix) || op.outcome !== 'ok') continue;
      const output = op.output;
      if (output?.kind !== 'written' && !(output?.kind === 'deleted' && output.deleted)) continue;
      seen.push({ ret: op.ret, highest: Math.max(output.index, seen.at(-1)?.highest ?? 0) });
    }
    for (let i = seen.length - 1; i >= 0; i--) if (seen[i].ret <= time) return seen[i].highest;
    return 0;
  };
}

function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

export function summarizeWatcher(watcher: Watcher, logs: readonly WatchLog[], ops: readonly KvOp[]): WatcherSummary {
  const acked = acknowledgedInOrder(ops).filter((c) => c.key.startsWith(watcher.prefix));
  const covered = acked.filter((c) => logs.some((l) => c.index > l.after && c.index <= l.upTo)).length;
  const writers = new Map<string, KvOp>();
  for (const op of ops) if (op.input.kind === 'put') writers.set(`${op.key}\u0000${op.input.value}`, op);
  const deletes = new Map(acked.filter((c) => c.op.input.kind === 'del').map((c) => [c.index, c.op]));
  const latencies: number[] = [];
  for (const log of logs) {
    for (const event of log.events) {
      const writer = event.op === 'put' ? writers.get(`${event.key}\u0000${event.value ?? ''}`) : deletes.get(event.index);
      if (writer !== undefined) latencies.push(event.at - writer.call);
    }
  }
  latencies.sort((a, b) => a - b);
  return {
    ...watcher.stats,
    name: watcher.name,
    prefix: watcher.prefix,
    segments: logs.length,
    acknowledged: acked.length,
    covered,
    latencyP50: percentile(latencies, 0.5),
    latencyP99: percentile(latencies, 0.99),
  };
}

export function describeWatcher(s: WatcherSummary): string {
  const latency = s.latencyP50 === null ? 'no latency' : `write invoked to delivery p50 ${s.latencyP50.toFixed(0)} ms, p99 ${(s.latencyP99 ?? 0).toFixed(0)} ms`;
  return `watch ${s.name} (prefix ${JSON.stringify(s.prefix)}): ${s.events} events, ${s.streams} streams ` +
    `(${s.resumed} resumed, ${s.resumedElsewhere} on another node; ${s.hops} hops, ${s.lagSwitches} left for lag, ${s.idleTimeouts} idle), ` +
    `${s.reconnects} reconnect attempts, ${s.refusals} refusals, ${s.resyncs} resyncs, ${s.segments} segments, ` +
    `covered ${s.covered} of ${s.acknowledged} acknowledged changes; ${latency}${s.truncated ? '; TRUNCATED at its event bound' : ''}`;
}

/** The journal lines of a watcher within a window, for an anomaly's details. */
function journalAround(watcher: Watcher, from: number, to: number): string[] {
  return watcher.journal.filter((j) => j.at >= from && j.at <= to + 10_000).slice(0, 15).map((j) => `journal t=${(j.at / 1000).toFixed(3)}s ${j.line}`);
}

/** The watch anomalies of a run (see the top of the file). `logs` may carry a planted fault. */
export function watchAnomalies(watchers: readonly Watcher[], logs: readonly WatchLog[], ops: readonly KvOp[]): Anomaly[] {
  const anomalies: Anomaly[] = [];
  const acked = acknowledgedInOrder(ops);
  const byIndex = new Map(acked.map((c) => [c.index, c]));
  const counts = new Map<string, number>();
  for (const found of checkWatchIndexes(logs, ops)) {
    const n = (counts.get(found.kind) ?? 0) + 1;
    counts.set(found.kind, n);
    if (n > MAX_PER_KIND) continue;
    const index = Number(/index (\d+)/.exec(found.summary)?.[1] ?? Number.NaN);
    const change = byIndex.get(index);
    const named = /^([^\s:]+)/.exec(found.summary)?.[1]?.split('.')[0];
    const watcher = watchers.find((w) => w.name === named);
    const details = change === undefined ? [] : [`the write: ${describeOp(change.op)}`];
    if (watcher !== undefined && change !== undefined) details.push(...journalAround(watcher, change.op.call - 10_000, change.op.ret));
    anomalies.push({ kind: found.kind, summary: found.summary, details });
  }
  for (const [kind, n] of counts) {
    if (n > MAX_PER_KIND) anomalies.push({ kind, summary: `${n - MAX_PER_KIND} more ${kind} anomalies not listed`, details: [] });
  }
  for (const watcher of watchers) {
    const under = acked.filter((c) => c.key.startsWith(watcher.prefix));
    if (under.length > 0 && watcher.stats.events === 0) {
      anomalies.push({
        kind: 'watch-silent',
        summary: `${watcher.name} (prefix ${JSON.stringify(watcher.prefix)}) received no event, yet ${under.length} changes under its prefix were acknowledged`,
        details: watcher.journal.slice(-15).map((j) => `journal t=${(j.at / 1000).toFixed(3)}s ${j.line}`),
      });
    }
    for (const problem of watcher.problems) {
      anomalies.push({ kind: 'watch-protocol', summary: `${watcher.name}: an answer or stream SPEC §4 does not allow, from ${problem.node} at t=${(problem.at / 1000).toFixed(3)}s: ${problem.detail}`, details: [] });
    }
  }
  return anomalies;
}

/**
 * After recovery every watcher must reach the newest acknowledged change under its prefix: a
 * stream that stopped delivering (and never noticed) fails here rather than passing with a short
 * covered range. Resolves with the anomalies of those that did not within boundMs.
 */
export async function awaitWatchersCaughtUp(watchers: readonly Watcher[], ops: readonly KvOp[], boundMs: number): Promise<Anomaly[]> {
  const acked = acknowledgedInOrder(ops);
  const targets = watchers.map((w) => acked.filter((c) => c.key.startsWith(w.prefix)).at(-1)?.index ?? 0);
  const deadline = Date.now() + boundMs;
  const behind = (): Watcher[] => watchers.filter((w, i) => !w.stats.truncated && (w.upTo ?? -1) < targets[i]);
  while (behind().length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  return behind().map((w) => ({
    kind: 'watch-stalled',
    summary: `${w.name} (prefix ${JSON.stringify(w.prefix)}) covered only up to index ${w.upTo ?? '(none: between segments)'} ${(boundMs / 1000).toFixed(0)} s after recovery, but index ${targets[watchers.indexOf(w)]} under its prefix was acknowledged`,
    details: w.journal.slice(-15).map((j) => `journal t=${(j.at / 1000).toFixed(3)}s ${j.line}`),
  }));
}
