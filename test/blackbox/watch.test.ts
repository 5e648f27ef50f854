// Watches on real processes (SPEC §4): two watchers (the client library's watch(), server-sent
// events) on two nodes see every change under a prefix, in log order, with no gaps and nothing twice,
// across a hand-off, kill -9 of the leader, kill -9 and restart of a watcher's own node (it
// reconnects and resumes) and SIGSTOP of the leader. The whole history, writes and watch events as
// reads, goes through the chaos suite's linearizability checker. Watch latency (write acknowledged
// -> event delivered) is measured and printed, not asserted.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RaftletClient, type WatchEvent } from '../../src/client/index.ts';
import type { KvOp } from '../chaos/kv-model.ts';
import { checkWithWatches, type WatchEventRecord, type WatchLog } from '../chaos/linearizability-watch.ts';
import { clusterHooks, waitUntil, type Cluster } from '../support/cluster.ts';

const PREFIX = 'w/';
const WRITES = 100;

interface Watcher {
  readonly name: string;
  readonly events: (WatchEventRecord & { readonly at: number })[];
  readonly done: Promise<void>;
  stop(): void;
}

function startWatcher(name: string, url: string, clock: () => number): Watcher {
  const controller = new AbortController();
  const client = new RaftletClient({ url, timeoutMs: 5000 });
  const events: WatchEventRecord[] = [];
  const done = (async () => {
    for await (const event of client.watch(PREFIX, { index: 0, signal: controller.signal, reconnectMs: 100 })) {
      events.push(record(event, clock()));
    }
  })();
  return { name, events, done, stop: () => controller.abort() };
}

function record(event: WatchEvent, at: number): WatchEventRecord {
  return event.type === 'put'
    ? { key: event.key, index: event.index, term: event.term, op: 'put', value: event.text(), at }
    : { key: event.key, index: event.index, term: event.term, op: 'del', value: null, at };
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** One PUT as the checker records it: ok with the index, failed (certainly not done), or unknown. */
async function write(c: Cluster, node: number, id: number, key: string, value: string, clock: () => number): Promise<KvOp> {
  const call = clock();
  let answer;
  try {
    answer = await c.put(node, key, value, { timeoutMs: 15_000 });
  } catch (error) {
    const refused = /ECONNREFUSED/.test(String((error as { cause?: unknown }).cause ?? error));
    return { id, key, client: 'writer', node: `node-${node}`, input: { kind: 'put', value }, call, ret: Infinity, outcome: refused ? 'failed' : 'unknown', output: null, note: String(error) };
  }
  const ret = clock();
  if (answer.status === 200) {
    return { id, key, client: 'writer', node: `node-${node}`, input: { kind: 'put', value }, call, ret, outcome: 'ok', output: { kind: 'written', index: answer.json<{ index: number }>().index } };
  }
  const failed = answer.status === 503 && answer.errorCode === 'no_leader';
  return { id, key, client: 'writer', node: `node-${node}`, input: { kind: 'put', value }, call, ret: Infinity, outcome: failed ? 'failed' : 'unknown', output: null, note: `${answer.status} ${answer.text}` };
}

describe('watches across leader changes and reconnects (black box)', () => {
  const clusters = clusterHooks();

  it('two watchers see every change in order, with no gaps, and the history is linearizable', async () => {
    const c = await clusters.start({ nodes: 3, name: 'watch', electionTimeoutMs: 1000, heartbeatMs: 100 });
    await c.waitForLeader();
    const started = performance.now();
    const clock = (): number => performance.now() - started;
    const watchers = [startWatcher('w-node-1', c.spec(1).apiUrl, clock), startWatcher('w-node-2', c.spec(2).apiUrl, clock)];
    const ops: KvOp[] = [];
    const faults: string[] = [];
    try {
      for (let i = 0; i < WRITES; i++) {
        // Faults at fixed points of the workload, each on whoever leads then.
        if (i === 20 || i === 40 || i === 60 || i === 80) {
          const leader = await c.waitForLeader();
          if (i === 20) {
            const moved = await c.request(leader.node, 'POST', '/v1/leader/transfer', { body: '' });
            faults.push(`transfer from node-${leader.node}: ${moved.status}`);
          } else if (i === 40) {
            await c.kill9(leader.node);
            faults.push(`kill -9 leader node-${leader.node}`);
            await c.waitForLeader();
            await c.restart(leader.node);
          } else if (i === 60) {
            await c.kill9(1);
            faults.push('kill -9 node-1 (a watcher\'s node)');
            await c.restart(1);
          } else {
            c.sigstop(leader.node);
            faults.push(`SIGSTOP leader node-${leader.node}`);
            await c.waitForLeader({ among: c.ordinals.filter((n) => n !== leader.node) });
            c.sigcont(leader.node);
          }
        }
        const live = c.live();
        const node = live[i % live.length] as number;
        ops.push(await write(c, node, i, `${PREFIX}${i % 5}`, `v${i}`, clock));
      }
      // A last write every watcher must see: then each has covered everything up to it.
      const leader = await c.waitForLeader();
      const last = await write(c, leader.node, WRITES, `${PREFIX}end`, 'end', clock);
      ops.push(last);
      assert.equal(last.outcome, 'ok', last.note);
      const lastIndex = (last.output as { index: number }).index;
      for (const w of watchers) await waitUntil(`${w.name} to see index ${lastIndex}`, () => w.events.some((e) => e.index === lastIndex), { timeoutMs: 60_000 });
    } finally {
      for (const w of watchers) w.stop();
      await Promise.allSettled(watchers.map((w) => w.done));
    }

    const logs: WatchLog[] = watchers.map((w) => ({ watcher: w.name, prefix: PREFIX, after: 0, upTo: Math.max(...w.events.map((e) => e.index)), events: w.events }));
    const { verdicts, anomalies } = checkWithWatches(ops, logs);
    assert.deepEqual(anomalies, [], anomalies.map((a) => a.summary).join('\n'));
    for (const [key, v] of verdicts) assert.equal(v.verdict, 'ok', `${key}: ${JSON.stringify(v)}`);
    const acked = ops.filter((op) => op.outcome === 'ok').map((op) => (op.output as { index: number }).index).sort((a, b) => a - b);
    for (const w of watchers) {
      const indexes = w.events.map((e) => e.index);
      assert.deepEqual(indexes, [...indexes].sort((a, b) => a - b), `${w.name} in log order`);
      for (const index of acked) assert.ok(indexes.includes(index), `${w.name} saw the acknowledged write at index ${index}`);
    }
    assert.ok(acked.length >= WRITES / 2, `only ${acked.length} of ${WRITES} writes were acknowledged`);

    // Watch latency: write acknowledged -> event delivered (negative: delivered before the answer).
    const ackedAt = new Map(ops.filter((op) => op.outcome === 'ok').map((op) => [(op.output as { index: number }).index, op.ret]));
    // The first 20 writes ran before any fault: the steady state.
    const quietUntil = Math.max(...ops.slice(0, 20).filter((op) => op.outcome === 'ok').map((op) => (op.output as { index: number }).index));
    for (const w of watchers) {
      for (const [phase, events] of [['before any fault', w.events.filter((e) => e.index <= quietUntil)], ['whole run', w.events]] as const) {
        const latencies = events.filter((e) => ackedAt.has(e.index)).map((e) => e.at - (ackedAt.get(e.index) as number)).sort((a, b) => a - b);
        process.stdout.write(`# watch latency ${w.name}, ${phase} (write acknowledged -> event delivered, ms, ${latencies.length} events): ` +
          `p50 ${percentile(latencies, 50).toFixed(1)}, p90 ${percentile(latencies, 90).toFixed(1)}, p99 ${percentile(latencies, 99).toFixed(1)}, ` +
          `max ${latencies.at(-1)?.toFixed(1)}, min ${latencies[0]?.toFixed(1)}\n`);
      }
    }
    process.stdout.write(`# watch test: ${acked.length}/${ops.length} writes acknowledged; faults: ${faults.join('; ')}\n`);
  });
});
