// Watch results in the linearizability check (SPEC §4 watches). A watch event says "after the entry
// at index i, key k held value v" (or was absent, for a delete): it is a read of k. Its interval
// runs from the invocation of the write that produced it to the event's delivery: the write takes
// effect somewhere in its own interval, the state right after it is exactly what the event shows,
// and the watcher's node applied it before delivering. So each event joins the key's history as a
// GET answered with (v, i) over [write invoked, event delivered], and the ordinary checker
// (kv-model.ts) decides.
//
// Most events need no search. An event that matches an acknowledged write (same key, value and
// index) and was delivered after that write's answer adds nothing: in any linearization of the
// other operations the write sits inside its own interval, so before the delivery, and the read
// can go right after it. Only the rest join the search: events of writes whose answer was lost
// (they prove the write happened), events delivered before their write was answered (they bound
// where it happened), and events no write explains (which the checker then refuses). Feeding every
// event in would be exact too, but a lagging watcher's events span seconds each, and the search is
// exponential in how many operations overlap (linearizability.ts): a chaos run's check ran out of
// memory that way. A delete whose answer was lost gets the earliest invocation of the deletes of
// its key that could have made it.
//
// Index checks need no search: each watcher's events rise strictly, every acknowledged change under
// its prefix within what it covered is there (no gaps, across leader changes and reconnects), as is
// every change another watcher saw (a write whose answer was lost has no acknowledgement, but if one
// watcher saw it, every watcher that covered it must have), and watchers and write answers agree on
// what each index holds. A blocking query (?index=&wait=) is a plain GET over its own interval and
// needs nothing special.
import { checkKey, type KeyVerdict, type KvOp, type KvOutput } from './kv-model.ts';
import type { CheckOptions } from './linearizability.ts';

/** One event as a watcher received it. Times are ms on the history's clock. */
export interface WatchEventRecord {
  readonly key: string;
  readonly index: number;
  readonly term: number;
  readonly op: 'put' | 'del';
  /** The value of a put (as text); null for a delete. */
  readonly value: string | null;
  /** When the watcher received it. */
  readonly at: number;
  /** The node whose stream delivered it, when known. */
  readonly node?: string;
}

/** What one watcher saw: every change under `prefix` after index `after`, up to index `upTo`. */
export interface WatchLog {
  readonly watcher: string;
  readonly prefix: string;
  readonly after: number;
  /** The highest index the watcher is known to have covered (its last event or progress id). */
  readonly upTo: number;
  readonly events: readonly WatchEventRecord[];
}

export interface WatchAnomaly {
  readonly kind: 'watch-order' | 'watch-gap' | 'watch-disagree' | 'watch-phantom' | 'watch-early';
  readonly summary: string;
}

function describeEvent(e: WatchEventRecord): string {
  return `${e.op} ${JSON.stringify(e.key)}${e.value === null ? '' : `=${JSON.stringify(e.value)}`} at index ${e.index} (term ${e.term}, delivered t=${e.at})`;
}

/** The acknowledged changes of a history by index: puts answered 'written', deletes that deleted. */
export function acknowledgedChanges(ops: readonly KvOp[]): Map<number, { key: string; value: string | null; op: KvOp }> {
  const byIndex = new Map<number, { key: string; value: string | null; op: KvOp }>();
  for (const op of ops) {
    if (op.output?.kind === 'written' && op.input.kind === 'put') byIndex.set(op.output.index, { key: op.key, value: op.input.value, op });
    if (op.output?.kind === 'deleted' && op.output.deleted) byIndex.set(op.output.index, { key: op.key, value: null, op });
  }
  return byIndex;
}

/** Order, gaps, agreement, phantom and early events: everything that needs no search. */
export function checkWatchIndexes(logs: readonly WatchLog[], ops: readonly KvOp[]): WatchAnomaly[] {
  const anomalies: WatchAnomaly[] = [];
  const acked = acknowledgedChanges(ops);
  const writers = new Map<string, KvOp>();
  for (const op of ops) if (op.input.kind === 'put') writers.set(`${op.key}\u0000${op.input.value}`, op);
  const seenAt = new Map<number, { watcher: string; event: WatchEventRecord }>();
  const indexesOf = new Map<WatchLog, Set<number>>();
  for (const log of logs) {
    let last = log.after;
    const indexes = new Set<number>();
    indexesOf.set(log, indexes);
    for (const event of log.events) {
      if (event.index <= last) {
        anomalies.push({ kind: 'watch-order', summary: `${log.watcher}: ${describeEvent(event)} came after index ${last} (events must rise strictly, each once)` });
      }
      if (!event.key.startsWith(log.prefix)) anomalies.push({ kind: 'watch-order', summary: `${log.watcher}: ${describeEvent(event)} is outside its prefix ${JSON.stringify(log.prefix)}` });
      last = Math.max(last, event.index);
      indexes.add(event.index);
      const other = seenAt.get(event.index);
      if (other === undefined) seenAt.set(event.index, { watcher: log.watcher, event });
      else if (other.event.key !== event.key || other.event.value !== event.value || other.event.op !== event.op || other.event.term !== event.term) {
        anomalies.push({ kind: 'watch-disagree', summary: `index ${event.index}: ${log.watcher} saw ${describeEvent(event)}, ${other.watcher} saw ${describeEvent(other.event)}` });
      }
      const ack = acked.get(event.index);
      if (ack !== undefined && (ack.key !== event.key || ack.value !== event.value)) {
        anomalies.push({ kind: 'watch-disagree', summary: `${log.watcher}: ${describeEvent(event)}, but the write answered with index ${event.index} was ${ack.value === null ? 'a delete' : `put ${JSON.stringify(ack.value)}`} of ${JSON.stringify(ack.key)}` });
      }
      if (event.op === 'put' && event.value !== null) {
        const writer = writers.get(`${event.key}\u0000${event.value}`);
        if (writer === undefined) anomalies.push({ kind: 'watch-phantom', summary: `${log.watcher}: ${describeEvent(event)}: no operation wrote that value` });
        else if (writer.outcome === 'failed') anomalies.push({ kind: 'watch-phantom', summary: `${log.watcher}: ${describeEvent(event)}: its write was answered as certainly not done (${writer.note ?? ''})` });
        else if (event.at < writer.call) anomalies.push({ kind: 'watch-early', summary: `${log.watcher}: ${describeEvent(event)} was delivered before its write was invoked (t=${writer.call})` });
      }
      if (event.op === 'del' && ack === undefined && !ops.some((op) => op.key === event.key && op.input.kind === 'del' && op.outcome === 'unknown' && op.call <= event.at)) {
        anomalies.push({ kind: 'watch-phantom', summary: `${log.watcher}: ${describeEvent(event)}: no delete of that key answered with that index, and none whose answer was lost began before it` });
      }
    }
    for (const [index, ack] of acked) {
      if (index > log.after && index <= log.upTo && ack.key.startsWith(log.prefix) && !indexes.has(index)) {
        anomalies.push({ kind: 'watch-gap', summary: `${log.watcher} (prefix ${JSON.stringify(log.prefix)}, after ${log.after}, up to ${log.upTo}) missed the acknowledged ${ack.value === null ? 'delete' : `put ${JSON.stringify(ack.value)}`} of ${JSON.stringify(ack.key)} at index ${index}` });
      }
    }
  }
  // Changes without an acknowledgement that some watcher saw (acknowledged ones are done above).
  for (const log of logs) {
    const indexes = indexesOf.get(log) as Set<number>;
    for (const [index, other] of seenAt) {
      if (acked.has(index) || index <= log.after || index > log.upTo || !other.event.key.startsWith(log.prefix) || indexes.has(index)) continue;
      anomalies.push({ kind: 'watch-gap', summary: `${log.watcher} (prefix ${JSON.stringify(log.prefix)}, after ${log.after}, up to ${log.upTo}) missed ${describeEvent(other.event)}, which ${other.watcher} saw` });
    }
  }
  return anomalies;
}

/**
 * The watch events the search needs, as reads (see the top of the file), one per (key, index): the
 * earliest delivery gives the tightest interval, and every watcher agrees on what an index holds
 * (checkWatchIndexes). Ids continue after the history's own.
 */
export function watchReads(logs: readonly WatchLog[], ops: readonly KvOp[]): KvOp[] {
  const earliest = new Map<string, WatchEventRecord & { watcher: string }>();
  for (const log of logs) {
    for (const event of log.events) {
      const id = `${event.key}\u0000${event.index}`;
      const known = earliest.get(id);
      if (known === undefined || event.at < known.at) earliest.set(id, { ...event, watcher: log.watcher });
    }
  }
  const writers = new Map<string, KvOp>();
  const deletesByIndex = new Map<number, KvOp>();
  const deletesOf = new Map<string, KvOp[]>();
  for (const op of ops) {
    if (op.input.kind === 'put') writers.set(`${op.key}\u0000${op.input.value}`, op);
    if (op.output?.kind === 'deleted') deletesByIndex.set(op.output.index, op);
    if (op.input.kind === 'del' && op.outcome !== 'failed') deletesOf.set(op.key, [...(deletesOf.get(op.key) ?? []), op]);
  }
  let nextId = ops.reduce((max, op) => Math.max(max, op.id), -1) + 1;
  const reads: KvOp[] = [];
  for (const event of [...earliest.values()].sort((a, b) => a.at - b.at)) {
    let writer = event.op === 'put' ? writers.get(`${event.key}\u0000${event.value ?? ''}`) : deletesByIndex.get(event.index);
    if (writer !== undefined && explainedByAnswer(event, writer)) continue;
    if (writer === undefined && event.op === 'del') {
      // A delete whose answer was lost: any delete of the key invoked before the delivery may be it.
      const candidates = (deletesOf.get(event.key) ?? []).filter((op) => op.outcome === 'unknown' && op.call <= event.at);
      writer = candidates.reduce<KvOp | undefined>((first, op) => (first === undefined || op.call < first.call ? op : first), undefined);
    }
    const output: KvOutput = event.op === 'put' ? { kind: 'found', value: event.value ?? '', modIndex: event.index } : { kind: 'absent' };
    reads.push({
      id: nextId++,
      key: event.key,
      client: `watch:${event.watcher}`,
      node: event.node ?? event.watcher,
      input: { kind: 'get' },
      // No write explains it: checkWatchIndexes reports it; a point interval keeps the search small.
      call: Math.min(writer?.call ?? event.at, event.at),
      ret: event.at,
      outcome: 'ok',
      output,
    });
  }
  return reads;
}

/** Whether an acknowledged write at the event's own index, answered before the delivery, explains
 * the event completely (see the top of the file). */
function explainedByAnswer(event: WatchEventRecord, writer: KvOp): boolean {
  if (writer.key !== event.key || writer.outcome !== 'ok' || event.at < writer.ret) return false;
  const output = writer.output;
  if (event.op === 'put') return output?.kind === 'written' && output.index === event.index;
  return output?.kind === 'deleted' && output.deleted && output.index === event.index;
}

/** Every key's operations with the watch events as reads, checked by the ordinary checker. */
export function checkWithWatches(ops: readonly KvOp[], logs: readonly WatchLog[], options: CheckOptions = {}): { verdicts: Map<string, KeyVerdict>; anomalies: WatchAnomaly[] } {
  const all = [...ops, ...watchReads(logs, ops)];
  const keys = new Map<string, KvOp[]>();
  for (const op of all) {
    const list = keys.get(op.key);
    if (list === undefined) keys.set(op.key, [op]);
    else list.push(op);
  }
  const verdicts = new Map<string, KeyVerdict>();
  for (const [key, keyOps] of keys) verdicts.set(key, checkKey(keyOps, options));
  return { verdicts, anomalies: checkWatchIndexes(logs, ops) };
}
