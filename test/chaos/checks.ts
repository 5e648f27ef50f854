// What a chaos run's records must satisfy, each check returning the anomalies it found:
// linearizability per key, log indexes (unique, and in real-time order), no acknowledged write lost,
// one leader per term (from status samples and from the logs), answers SPEC §4 allows.
import { ABSENT, byKey, checkKey, writeFacts, type KvOp } from './kv-model.ts';
import type { CheckOptions } from './linearizability.ts';
import type { StatusSample } from './monitor.ts';
import { describeOp, historyAround, type Anomaly } from './report.ts';

export interface KeyCheckSummary {
  readonly key: string;
  readonly ops: number;
  readonly verdict: 'ok' | 'illegal' | 'undecided';
  readonly steps: number;
  readonly ms: number;
}

export function checkLinearizability(ops: readonly KvOp[], options: CheckOptions = {}): { anomalies: Anomaly[]; summaries: KeyCheckSummary[] } {
  const anomalies: Anomaly[] = [];
  const summaries: KeyCheckSummary[] = [];
  for (const [key, keyOps] of byKey(ops)) {
    const started = performance.now();
    const verdict = checkKey(keyOps, options);
    summaries.push({ key, ops: keyOps.length, verdict: verdict.verdict, steps: verdict.steps, ms: performance.now() - started });
    if (verdict.verdict === 'ok') continue;
    if (verdict.verdict === 'undecided') {
      anomalies.push({
        kind: 'undecided',
        summary: `key ${JSON.stringify(key)}: linearizability could not be decided (${verdict.reason}); not counted as passed`,
        details: [`${keyOps.length} operations, ${keyOps.filter((o) => o.outcome === 'unknown').length} with unknown outcome`],
      });
      continue;
    }
    const facts = writeFacts(keyOps);
    const state = verdict.state === ABSENT
      ? 'the key absent'
      : `${JSON.stringify(facts.valueOf(verdict.state))} (modIndex ${facts.indexOf(verdict.state)}, written by #${verdict.state})`;
    const stuck = verdict.stuck;
    const explanation: string[] = [];
    if (stuck.output?.kind === 'found') {
      const writer = keyOps.find((o) => o.input.kind === 'put' && o.input.value === (stuck.output as { value: string }).value);
      if (writer === undefined) explanation.push(`no operation in the history wrote ${JSON.stringify(stuck.output.value)}`);
      else if (writer.outcome === 'failed') explanation.push(`its value was written by #${writer.id}, whose answer said it was certainly not done: ${writer.note ?? ''}`);
    }
    anomalies.push({
      kind: 'linearizability',
      summary: `key ${JSON.stringify(key)} is not linearizable: no order of its ${keyOps.length} operations explains them all`,
      details: [
        `the longest explainable prefix covers ${verdict.depth} completed operations; it cannot get past:`,
        `   ${describeOp(stuck)}`,
        `   where the register held ${state}`,
        ...explanation,
        'last operations of that prefix, in linearization order:',
        ...verdict.tail.map((o) => `   ${describeOp(o)}`),
        `history of ${JSON.stringify(key)} around it (>> marks it):`,
        ...historyAround(keyOps, stuck),
      ],
    });
  }
  return { anomalies, summaries };
}

/** Writes acknowledged with an index (PUT and DELETE answers). */
function acknowledged(ops: readonly KvOp[]): (KvOp & { index: number })[] {
  const out: (KvOp & { index: number })[] = [];
  for (const op of ops) {
    if (op.outcome !== 'ok' || op.output === null) continue;
    if (op.output.kind === 'written' || op.output.kind === 'deleted') out.push({ ...op, index: op.output.index });
  }
  return out;
}

/** Every acknowledged write has its own log index, and a write that began after another finished
 * has a higher one (the log is one sequence, in real-time order). */
export function checkIndexes(ops: readonly KvOp[]): Anomaly[] {
  const anomalies: Anomaly[] = [];
  const acks = acknowledged(ops);
  const byIndex = new Map<number, KvOp[]>();
  for (const op of acks) byIndex.set(op.index, [...(byIndex.get(op.index) ?? []), op]);
  for (const [index, same] of byIndex) {
    if (same.length < 2) continue;
    anomalies.push({
      kind: 'index-reused',
      summary: `log index ${index} was acknowledged to ${same.length} different writes`,
      details: same.map(describeOp),
    });
  }
  const byRet = [...acks].sort((a, b) => a.ret - b.ret);
  const byCall = [...acks].sort((a, b) => a.call - b.call);
  let cursor = 0;
  let highest: (KvOp & { index: number }) | null = null;
  let reported = 0;
  for (const op of byCall) {
    while (cursor < byRet.length && byRet[cursor].ret < op.call) {
      if (highest === null || byRet[cursor].index > highest.index) highest = byRet[cursor];
      cursor++;
    }
    if (highest !== null && highest.index > op.index && reported < 5) {
      reported++;
      anomalies.push({
        kind: 'index-order',
        summary: `a write began after another was acknowledged but got a lower log index (${op.index} < ${highest.index})`,
        details: [describeOp(highest), describeOp(op)],
      });
    }
  }
  return anomalies;
}

/** After the faults: the final linearizable reads must show every acknowledged write or a later
 * one. A key's modIndex only grows, so a final modIndex below an acknowledged write's index means
 * that write was lost. */
export function checkLostWrites(ops: readonly KvOp[], finalReads: readonly KvOp[]): Anomaly[] {
  const anomalies: Anomaly[] = [];
  for (const read of finalReads) {
    if (read.outcome !== 'ok' || read.output === null) continue;
    const keyOps = ops.filter((o) => o.key === read.key);
    const writes = keyOps.filter((o) => o.outcome === 'ok' && o.output?.kind === 'written' && o.ret < read.call);
    if (read.output.kind === 'found') {
      const modIndex = read.output.modIndex;
      const lost = writes.filter((o) => (o.output as { index: number }).index > modIndex);
      if (lost.length > 0) {
        anomalies.push({
          kind: 'lost-write',
          summary: `key ${JSON.stringify(read.key)}: ${lost.length} acknowledged write(s) newer than the final value are gone`,
          details: [`final read: ${describeOp(read)}`, ...lost.slice(-5).map((o) => `lost: ${describeOp(o)}`)],
        });
      }
    } else if (read.output.kind === 'absent' && writes.length > 0) {
      const newest = writes.reduce((a, b) => ((a.output as { index: number }).index > (b.output as { index: number }).index ? a : b));
      const newestIndex = (newest.output as { index: number }).index;
      const deletedAfter = keyOps.some((o) => o.input.kind === 'del' && (o.outcome === 'unknown' ||
        (o.output?.kind === 'deleted' && o.output.deleted && o.output.index > newestIndex)));
      if (!deletedAfter) {
        anomalies.push({
          kind: 'lost-write',
          summary: `key ${JSON.stringify(read.key)} is absent at the end, but its newest acknowledged write was never deleted`,
          details: [`final read: ${describeOp(read)}`, `lost: ${describeOp(newest)}`],
        });
      }
    }
  }
  return anomalies;
}

/** At most one node says it leads in any term, and nodes agree on who led each term. */
export function checkLeaderSamples(samples: readonly StatusSample[]): Anomaly[] {
  const leadersByTerm = new Map<number, Map<string, StatusSample>>();
  const namedByTerm = new Map<number, Map<string, StatusSample>>();
  for (const s of samples) {
    if (s.role === 'leader') {
      const m = leadersByTerm.get(s.term) ?? new Map<string, StatusSample>();
      if (!m.has(s.node)) m.set(s.node, s);
      leadersByTerm.set(s.term, m);
    }
    if (s.leader !== null) {
      const m = namedByTerm.get(s.term) ?? new Map<string, StatusSample>();
      if (!m.has(s.leader)) m.set(s.leader, s);
      namedByTerm.set(s.term, m);
    }
  }
  const anomalies: Anomaly[] = [];
  for (const [term, leaders] of leadersByTerm) {
    if (leaders.size < 2) continue;
    anomalies.push({
      kind: 'two-leaders',
      summary: `term ${term}: ${[...leaders.keys()].join(' and ')} each reported role leader in /v1/status`,
      details: [...leaders.values()].map((s) => `t=${(s.at / 1000).toFixed(3)}s ${s.node}: role ${s.role}, term ${s.term}, commitIndex ${s.commitIndex}`),
    });
  }
  for (const [term, named] of namedByTerm) {
    if (named.size < 2) continue;
    anomalies.push({
      kind: 'two-leaders',
      summary: `term ${term}: nodes named different leaders (${[...named.keys()].join(', ')}) in /v1/status`,
      details: [...named.values()].map((s) => `t=${(s.at / 1000).toFixed(3)}s ${s.node} said leader ${s.leader} in term ${s.term}`),
    });
  }
  return anomalies;
}

interface LogLine {
  readonly level?: number;
  readonly time?: number;
  readonly msg?: string;
  readonly term?: number;
  readonly leader?: string | null;
  readonly err?: unknown;
}

/** From the nodes' logs: one 'won the election' per term, one 'leader is X' per term, no error
 * or fatal lines. */
export function checkLogs(logs: readonly { node: string; text: string }[]): { anomalies: Anomaly[]; elections: number; snapshotsInstalled: number } {
  const winners = new Map<number, string[]>();
  const named = new Map<number, Set<string>>();
  const errors: string[] = [];
  let elections = 0;
  let snapshotsInstalled = 0;
  for (const { node, text } of logs) {
    for (const raw of text.split('\n')) {
      if (!raw.startsWith('{')) continue;
      let line: LogLine;
      try {
        line = JSON.parse(raw) as LogLine;
      } catch {
        continue;
      }
      if (line.msg === 'installed snapshot from leader') snapshotsInstalled++;
      if (line.msg === 'won the election' && typeof line.term === 'number') {
        elections++;
        winners.set(line.term, [...(winners.get(line.term) ?? []), node]);
      }
      const leaderIs = /^leader is (.+)$/.exec(line.msg ?? '');
      if (leaderIs !== null && typeof line.term === 'number') {
        const set = named.get(line.term) ?? new Set<string>();
        set.add(leaderIs[1]);
        named.set(line.term, set);
      }
      if (typeof line.level === 'number' && line.level >= 50) errors.push(`${node}: ${raw.slice(0, 600)}`);
    }
  }
  const anomalies: Anomaly[] = [];
  for (const [term, nodes] of winners) {
    if (new Set(nodes).size > 1) anomalies.push({ kind: 'two-leaders', summary: `term ${term}: the logs of ${nodes.join(' and ')} each say 'won the election'`, details: [] });
  }
  for (const [term, leaders] of named) {
    if (leaders.size > 1) anomalies.push({ kind: 'two-leaders', summary: `term ${term}: logs name different leaders: ${[...leaders].join(', ')}`, details: [] });
  }
  if (errors.length > 0) {
    anomalies.push({ kind: 'error-logged', summary: `${errors.length} error or fatal line(s) in the nodes' logs`, details: errors.slice(0, 10) });
  }
  return { anomalies, elections, snapshotsInstalled };
}
