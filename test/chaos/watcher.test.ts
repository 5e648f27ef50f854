// The chaos watcher (watcher.ts) against small event-stream servers on loopback that follow SPEC §4
// (progress first, Last-Event-ID resume, 410 below the kept history), cut connections, go silent,
// or carry a planted bug. What the watcher records goes through the watch checks: a correct server
// with every kind of interruption gives no anomaly, and a server (or a pipeline) that drops or
// reorders one event is caught.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { HistoryBuilder } from './history-builder.ts';
import type { KvOp } from './kv-model.ts';
import { checkWatchIndexes, checkWithWatches } from './linearizability-watch.ts';
import { Rng } from './rng.ts';
import { EventStreamParser, plantWatchFault, Watcher, type StreamEvent, type WatcherOptions } from './watcher.ts';

const started = performance.now();
const clock = (): number => performance.now() - started;

interface Change {
  readonly key: string;
  readonly index: number;
  readonly term: number;
  readonly value: string | null;
  /** When the write was invoked and answered, on the watcher's clock. */
  readonly call: number;
  readonly ret: number;
}

/** The replicated change history every fake node serves from. */
class Feed {
  readonly changes: Change[] = [];
  floor = 0;
  private readonly listeners = new Set<() => void>();

  get lastIndex(): number {
    return this.changes.at(-1)?.index ?? this.floor;
  }

  append(key: string, value: string | null): Change {
    const call = clock();
    const change = { key, index: this.lastIndex + 1, term: 2, value, call, ret: call + 0.001 };
    this.changes.push(change);
    for (const listener of this.listeners) listener();
    return change;
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

interface Behaviour {
  /** End the connection after this many change events: a clean end, or a reset (as kill -9). */
  readonly cutAfter?: number;
  readonly reset?: boolean;
  /** Planted bug: a resumed stream skips the first change after Last-Event-ID. */
  readonly skipOnResume?: boolean;
  /** Planted bug: the first two changes sent on a connection go out swapped. */
  readonly swapFirstTwo?: boolean;
  /** Answers, sends its starting point, then nothing (a paused or cut-off node's open stream). */
  readonly silent?: boolean;
  /** Sends only progress events, never the changes (a node cut off from the cluster). */
  readonly frozenAt?: number;
}

interface FakeNode {
  readonly id: string;
  readonly apiUrl: string;
  readonly requests: { lastEventId: string | undefined }[];
  close(): Promise<void>;
}

const servers = new Set<Server>();
after(async () => {
  for (const server of servers) server.closeAllConnections();
  await Promise.all([...servers].map((s) => new Promise((resolve) => s.close(resolve))));
});

async function fakeNode(id: string, feed: Feed, behaviour: Behaviour = {}): Promise<FakeNode> {
  const requests: { lastEventId: string | undefined }[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const prefix = url.searchParams.get('prefix') ?? '';
    const lastEventId = req.headers['last-event-id'] as string | undefined;
    requests.push({ lastEventId });
    const fromQuery = url.searchParams.get('index');
    const head = behaviour.frozenAt ?? feed.lastIndex;
    let cursor = lastEventId !== undefined ? Number(lastEventId) : fromQuery !== null ? Number(fromQuery) : head;
    if (cursor < feed.floor) {
      res.writeHead(410, { 'content-type': 'application/json', 'x-raftlet-index': String(head) });
      res.end(JSON.stringify({ error: { code: 'history_compacted', message: `kept: after ${feed.floor}` } }));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
    res.write(`retry: 1000\nid: ${cursor}\nevent: progress\ndata: ${JSON.stringify({ index: cursor })}\n\n`);
    if (behaviour.silent === true) return;
    if (behaviour.frozenAt !== undefined) {
      const timer = setInterval(() => res.write(`id: ${cursor}\nevent: progress\ndata: ${JSON.stringify({ index: cursor })}\n\n`), 50);
      res.on('close', () => clearInterval(timer));
      return;
    }
    if (lastEventId !== undefined && behaviour.skipOnResume === true) {
      const skipped = feed.changes.find((c) => c.index > cursor && c.key.startsWith(prefix));
      if (skipped !== undefined) cursor = skipped.index;
    }
    let sent = 0;
    const pump = (): void => {
      const pending = feed.changes.filter((c) => c.index > cursor && c.key.startsWith(prefix));
      if (behaviour.swapFirstTwo === true && sent === 0 && pending.length >= 2) [pending[0], pending[1]] = [pending[1], pending[0]];
      for (const change of pending) {
        if (behaviour.cutAfter !== undefined && sent >= behaviour.cutAfter) {
          // A reset right away may discard what was written (fine: the watcher resumes from what
          // it got), but a node that always did would never let it get anywhere.
          if (behaviour.reset === true) setTimeout(() => res.destroy(), 30);
          else res.end();
          return;
        }
        const data = { key: change.key, index: change.index, term: change.term, ...(change.value === null ? {} : { value: change.value }) };
        res.write(`id: ${change.index}\nevent: ${change.value === null ? 'delete' : 'put'}\ndata: ${JSON.stringify(data)}\n\n`);
        cursor = Math.max(cursor, change.index);
        sent++;
      }
    };
    const unsubscribe = feed.subscribe(() => setImmediate(pump));
    res.on('close', unsubscribe);
    pump();
  });
  servers.add(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    id,
    apiUrl: `http://127.0.0.1:${port}`,
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      servers.delete(server);
    },
  };
}

/** The history the changes came from: each an acknowledged put or delete, one after another. */
function historyOf(feed: Feed): KvOp[] {
  const ops: KvOp[] = [];
  const builders = new Map<string, HistoryBuilder>();
  for (const change of feed.changes) {
    const builder = builders.get(change.key) ?? new HistoryBuilder(change.key);
    builders.set(change.key, builder);
    if (change.value === null) builder.del(change.call, change.ret, { deleted: true, index: change.index });
    else builder.put(change.value, change.call, change.ret, change.index);
  }
  let id = 0;
  for (const builder of builders.values()) for (const op of builder.ops) ops.push({ ...op, id: id++ });
  return ops;
}

function watcher(targets: readonly FakeNode[], overrides: Partial<WatcherOptions> = {}): Watcher {
  return new Watcher({
    name: 'w1',
    prefix: 'k/',
    targets,
    rng: new Rng(7),
    clock,
    after: 0,
    idleMs: 2_000,
    lagMs: 500,
    resyncAfterMs: 2_000,
    maxEvents: 10_000,
    ...overrides,
  });
}

async function until(what: string, condition: () => boolean, w?: Watcher, boundMs = 20_000): Promise<void> {
  const deadline = Date.now() + boundMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${w === undefined ? '' : `; ${JSON.stringify(w.stats)}, journal:\n${w.journal.map((j) => j.line).join('\n')}`}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function lastUnderPrefix(feed: Feed): number {
  return feed.changes.filter((c) => c.key.startsWith('k/')).at(-1)?.index ?? 0;
}

function fill(feed: Feed, n: number): void {
  for (let i = 0; i < n; i++) {
    if (i % 7 === 6) feed.append(`k/${i % 3}`, null);
    else feed.append(i % 5 === 4 ? `other/${i}` : `k/${i % 3}`, `v${feed.lastIndex + 1}`);
  }
}

describe('chaos watcher: a correct stream under interruptions gives no anomaly', () => {
  it('connections cut every few events: resumes with Last-Event-ID, on another node, no gap', async () => {
    const feed = new Feed();
    fill(feed, 40);
    const nodes = [await fakeNode('n1', feed, { cutAfter: 3 }), await fakeNode('n2', feed, { cutAfter: 4, reset: true })];
    const w = watcher(nodes);
    w.start();
    try {
      await until('the first 40 changes', () => (w.upTo ?? 0) >= lastUnderPrefix(feed), w);
      fill(feed, 20); // live changes, while streams are open
      await until('every change', () => (w.upTo ?? 0) >= lastUnderPrefix(feed), w);
    } finally {
      await w.stop();
    }
    const ops = historyOf(feed);
    assert.deepEqual(checkWatchIndexes(w.logs(), ops), []);
    const { verdicts, anomalies } = checkWithWatches(ops, w.logs());
    assert.deepEqual(anomalies, []);
    for (const [key, v] of verdicts) assert.equal(v.verdict, 'ok', key);
    const under = feed.changes.filter((c) => c.key.startsWith('k/')).length;
    assert.equal(w.stats.events, under, 'each change under the prefix once, none outside it');
    assert.ok(w.stats.reconnects >= 5, `only ${w.stats.reconnects} reconnects`);
    const resumed = [...nodes[0].requests, ...nodes[1].requests].filter((r) => r.lastEventId !== undefined && r.lastEventId !== '0');
    assert.ok(resumed.length >= 5, 'reconnects resume with Last-Event-ID');
    assert.ok(nodes.every((n) => n.requests.length > 0), 'both nodes served');
    assert.ok(w.stats.resumedElsewhere >= 1 && w.stats.resumed >= w.stats.resumedElsewhere, JSON.stringify(w.stats));
    assert.equal(w.stats.resyncs, 0);
    assert.deepEqual(w.problems, []);
  });

  it('hops between healthy nodes on purpose, sometimes staying away a while, resuming each time without a gap', async () => {
    const feed = new Feed();
    const nodes = [await fakeNode('n1', feed), await fakeNode('n2', feed), await fakeNode('n3', feed)];
    const w = watcher(nodes, { hopMs: [30, 80], awayMs: [20, 60] });
    w.start();
    try {
      for (let round = 0; round < 15; round++) {
        fill(feed, 3);
        await until('the round delivered', () => (w.upTo ?? 0) >= lastUnderPrefix(feed), w);
        await new Promise((resolve) => setTimeout(resolve, 40));
      }
    } finally {
      await w.stop();
    }
    assert.deepEqual(checkWatchIndexes(w.logs(), historyOf(feed)), []);
    assert.ok(w.stats.hops >= 3, `only ${w.stats.hops} hops`);
    assert.equal(w.stats.hops, w.stats.reconnects, 'every reconnect was a hop');
    assert.equal(w.stats.events, feed.changes.filter((c) => c.key.startsWith('k/')).length);
  });

  it('a node that went silent (paused) or serves only progress (cut off) is left for one that has the changes', async () => {
    const feed = new Feed();
    fill(feed, 10);
    const acknowledged: { index: number; at: number }[] = feed.changes.filter((c) => c.key.startsWith('k/')).map((c) => ({ index: c.index, at: clock() }));
    const silent = await fakeNode('silent', feed, { silent: true });
    const frozen = await fakeNode('frozen', feed, { frozenAt: 0 });
    const good = await fakeNode('good', feed);
    const w = watcher([silent, frozen, good], {
      idleMs: 400,
      lagMs: 300,
      acknowledgedBy: (time) => Math.max(0, ...acknowledged.filter((a) => a.at <= time).map((a) => a.index)),
    });
    w.start();
    try {
      await until('every change', () => (w.upTo ?? 0) >= lastUnderPrefix(feed), w);
    } finally {
      await w.stop();
    }
    assert.deepEqual(checkWatchIndexes(w.logs(), historyOf(feed)), []);
    // The seed's choices reach the good node at the latest after both others were tried; whichever
    // was tried first must have been left for the reason it deserved.
    if (silent.requests.length > 0) assert.ok(w.stats.idleTimeouts >= 1, w.journal.map((j) => j.line).join('\n'));
    if (frozen.requests.length > 0) assert.ok(w.stats.lagSwitches >= 1, w.journal.map((j) => j.line).join('\n'));
    assert.ok(silent.requests.length + frozen.requests.length > 0, 'seed 7 tries a bad node first');
  });

  it('410 from every node: a resync starts a new segment from a fresh index, not an anomaly', async () => {
    const feed = new Feed();
    fill(feed, 12);
    const nodes = [await fakeNode('n1', feed, { cutAfter: 2 }), await fakeNode('n2', feed, { cutAfter: 2 })];
    const w = watcher(nodes);
    w.start();
    try {
      await until('a few events', () => w.stats.events >= 2, w);
      // The history is compacted past anything the watcher could resume from.
      fill(feed, 30);
      feed.floor = feed.lastIndex - 3;
      await until('a resync', () => w.stats.resyncs >= 1, w);
      fill(feed, 10);
      await until('every later change', () => (w.upTo ?? 0) >= lastUnderPrefix(feed), w);
    } finally {
      await w.stop();
    }
    const logs = w.logs();
    assert.ok(logs.length >= 2, 'a second segment');
    assert.equal(logs[1].watcher, 'w1.2');
    assert.ok(logs[1].after >= feed.floor, `the fresh segment starts at or past the floor (${logs[1].after} < ${feed.floor})`);
    assert.deepEqual(checkWatchIndexes(logs, historyOf(feed)), []);
    assert.ok(w.stats.refusals >= 2);
  });
});

describe('chaos watcher: a dropped or reordered event is caught', () => {
  it('a server that skips the first change after Last-Event-ID: a watch-gap', async () => {
    const feed = new Feed();
    fill(feed, 30);
    const nodes = [await fakeNode('n1', feed, { cutAfter: 5, skipOnResume: true })];
    const w = watcher(nodes);
    w.start();
    try {
      await until('the end of the stream', () => (w.upTo ?? 0) >= lastUnderPrefix(feed), w);
    } finally {
      await w.stop();
    }
    const anomalies = checkWatchIndexes(w.logs(), historyOf(feed));
    assert.ok(anomalies.length > 0 && anomalies.every((a) => a.kind === 'watch-gap'), JSON.stringify(anomalies));
  });

  it('a server that sends two changes out of order: a watch-order anomaly', async () => {
    const feed = new Feed();
    fill(feed, 10);
    const w = watcher([await fakeNode('n1', feed, { swapFirstTwo: true })]);
    w.start();
    try {
      await until('the end of the stream', () => w.stats.events >= 6, w);
    } finally {
      await w.stop();
    }
    const anomalies = checkWatchIndexes(w.logs(), historyOf(feed));
    assert.ok(anomalies.some((a) => a.kind === 'watch-order'), JSON.stringify(anomalies));
  });

  it('plantWatchFault (the chaos control) drops or swaps a recorded event, and the checks see it', async () => {
    const feed = new Feed();
    fill(feed, 20);
    const w = watcher([await fakeNode('n1', feed)]);
    w.start();
    try {
      await until('every change', () => (w.upTo ?? 0) >= lastUnderPrefix(feed), w);
    } finally {
      await w.stop();
    }
    const ops = historyOf(feed);
    assert.deepEqual(checkWatchIndexes(w.logs(), ops), []);
    const dropped = plantWatchFault(w.logs(), ops, 'drop');
    assert.ok(dropped !== null);
    assert.deepEqual(checkWatchIndexes(dropped.logs, ops).map((a) => a.kind), ['watch-gap'], dropped.planted);
    const swapped = plantWatchFault(w.logs(), ops, 'swap');
    assert.ok(swapped !== null);
    assert.ok(checkWatchIndexes(swapped.logs, ops).some((a) => a.kind === 'watch-order'), swapped.planted);
    assert.equal(plantWatchFault(w.logs(), [], 'drop'), null, 'nothing acknowledged: nothing to plant');
  });
});

describe('event stream parser', () => {
  it('splits events across chunk borders, CRLF and CR line ends, ignores comments and retry', () => {
    const events: StreamEvent[] = [];
    const parser = new EventStreamParser((e) => events.push(e));
    const text = ': hello\r\nretry: 1000\r\nid: 3\r\nevent: put\r\ndata: {"a":\r\ndata: 1}\r\n\r\nid: 4\revent: progress\rdata: {"index":4}\r\rdata:x\n\n';
    for (let i = 0; i < text.length; i += 5) assert.equal(parser.push(text.slice(i, i + 5)), null);
    assert.deepEqual(events, [
      { type: 'put', data: '{"a":\n1}', id: '3' },
      { type: 'progress', data: '{"index":4}', id: '4' },
      { type: 'message', data: 'x', id: null },
    ]);
  });

  it('refuses a line without end past its bound', () => {
    const parser = new EventStreamParser(() => undefined);
    assert.match(parser.push(`data: ${'x'.repeat((1 << 20) + 1)}`) ?? '', /more than/);
  });
});
