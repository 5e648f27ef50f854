import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { ClientError } from '../../src/api/ops.ts';
import type { Message } from '../../src/raft/types.ts';
import { PeerClient } from '../../src/transport/client.ts';
import type { PeerClientOptions } from '../../src/transport/client.ts';
import type { DropReason, RpcKind } from '../../src/transport/peer-link.ts';
import { MisdirectedError, PeerAuthError, ProtocolMismatchError } from '../../src/transport/protocol.ts';
import { startPeerServer } from '../../src/transport/server.ts';
import type { RunningPeerServer } from '../../src/transport/server.ts';
import { WireError } from '../../src/transport/wire.ts';
import { deadPort, heartbeat, recorder, sampleStatus, TOKEN, waitFor } from './helpers.ts';
import type { Recorder } from './helpers.ts';

/** A server that accepts connections and requests and never answers. */
async function startSilentServer(): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
  let requests = 0;
  const server: Server = createServer(() => {
    requests++;
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: () => requests,
    close: async () => {
      const closed = once(server, 'close');
      server.close();
      server.closeAllConnections();
      await closed;
    },
  };
}

interface Observed {
  drops: { peer: string; reason: DropReason; error?: Error }[];
  rpcs: { kind: RpcKind; ok: boolean }[];
  reachability: { peer: string; reachable: boolean; error: Error | null }[];
}

function observedClient(options: Partial<PeerClientOptions> = {}): { client: PeerClient; seen: Observed } {
  const seen: Observed = { drops: [], rpcs: [], reachability: [] };
  const client = new PeerClient({
    token: TOKEN,
    random: () => 0.5,
    ...options,
    hooks: {
      onDrop: (peer, reason, error) => seen.drops.push({ peer, reason, error }),
      onRpc: (kind, _seconds, ok) => seen.rpcs.push({ kind, ok }),
      onPeerReachable: (peer, reachable, error) => seen.reachability.push({ peer, reachable, error }),
    },
  });
  return { client, seen };
}

function stats(client: PeerClient, id: string) {
  const found = client.stats().find((s) => s.id === id);
  assert.ok(found, `no stats for ${id}`);
  return found;
}

const received = (r: Recorder): Message[] => r.batches.flat();

describe('peer client: Raft messages', () => {
  let b: RunningPeerServer;
  let c: RunningPeerServer;
  let rb: Recorder;
  let rc: Recorder;
  let client: PeerClient;
  let seen: Observed;

  before(async () => {
    rb = recorder();
    rc = recorder();
    b = await startPeerServer('127.0.0.1', 0, { token: TOKEN, nodeId: 'b', handlers: { ...rb.handlers, onMessages: (m) => rb.handlers.onMessages(m) } });
    c = await startPeerServer('127.0.0.1', 0, { token: TOKEN, nodeId: 'c', handlers: { ...rc.handlers, onMessages: (m) => rc.handlers.onMessages(m) } });
  });
  after(async () => {
    await b.close();
    await c.close();
  });
  beforeEach(() => {
    rb.batches.length = 0;
    rc.batches.length = 0;
    rb.messages = () => undefined;
    ({ client, seen } = observedClient());
    client.setPeers({ a: 'http://127.0.0.1:1', b: b.url, c: `${c.url}/` });
  });
  afterEach(async () => {
    await client.close();
  });

  test('messages handed over in one turn leave together on one stream, in order per peer', async () => {
    for (let seq = 1; seq <= 3000; seq++) {
      client.send('b', [heartbeat(seq, 'b')]);
      client.sendAll([heartbeat(seq, 'c')]);
    }
    await waitFor(() => received(rb).length === 3000 && received(rc).length === 3000, 'all 6000 messages received');
    const expected = (to: string) => Array.from({ length: 3000 }, (_, i) => heartbeat(i + 1, to));
    assert.deepEqual(received(rb), expected('b'));
    assert.deepEqual(received(rc), expected('c'));
    // One turn's messages went in one write, cut into frames of at most maxBatchMessages (1024).
    assert.deepEqual(rb.batches.map((batch) => batch.length), [1024, 1024, 952]);
    assert.equal(stats(client, 'b').requests, 1, 'one stream connection');
    assert.equal(stats(client, 'b').delivered, 3000);
    // A later turn's message leaves at once on the open stream, alone.
    client.send('b', [heartbeat(3001, 'b')]);
    await waitFor(() => received(rb).length === 3001, 'the next message');
    assert.deepEqual(rb.batches.at(-1), [heartbeat(3001, 'b')]);
    assert.equal(stats(client, 'b').requests, 1, 'still one stream connection');
    assert.deepEqual(seen.drops, []);
    assert.deepEqual(seen.reachability.map((e) => [e.peer, e.reachable]).sort(), [['b', true], ['c', true]]);
    assert.ok(seen.rpcs.every((rpc) => rpc.kind === 'messages' && rpc.ok));
  });

  test('forwarded calls held by the peer do not hold back Raft messages', async () => {
    // Found by the benchmark: forwarded writes (each held until commit) used to share the message
    // lane's pool, so more of them than connections queued heartbeats and acknowledgements behind
    // them, and the leader lost its quorum.
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    rb.propose = async () => {
      await held;
      return { ok: true, index: 7, term: 2 };
    };
    const deadline = Date.now() + 20_000;
    const calls = Array.from({ length: 40 }, () => client.propose(b.url, { op: 'del', key: 'k' }, deadline));
    try {
      // Calls share the stream with messages: all 40 reach the leader, none holds a connection.
      await waitFor(() => rb.proposals.length === 40, 'every forwarded call held by the peer');
      client.send('b', [heartbeat(1, 'b')]);
      await waitFor(() => received(rb).length === 1, 'a heartbeat delivered while forwarded calls are held');
      assert.equal(stats(client, 'b').requests, 1, 'calls and messages on one stream');
    } finally {
      release();
      rb.propose = async () => ({ ok: true, index: 7, term: 2 });
      await Promise.allSettled(calls);
    }
  });

  test('a batch stops at maxBatchBytes', async () => {
    await client.close();
    ({ client, seen } = observedClient({ maxBatchBytes: 1000 }));
    client.setPeers({ b: b.url });
    const append = (i: number): Message => ({
      kind: 'append', from: 'a', to: 'b', term: 1, prevLogIndex: i, prevLogTerm: 1, leaderCommit: 0,
      entries: [{ kind: 'command', term: 1, index: i + 1, data: new Uint8Array(300) }],
    });
    for (let i = 0; i < 20; i++) client.send('b', [append(i)]);
    await waitFor(() => received(rb).length === 20, '20 appends');
    assert.deepEqual(received(rb), Array.from({ length: 20 }, (_, i) => append(i)));
    // About 315 bytes each: 3 fit in 1000 bytes, 4 do not. All 20 were handed over in one turn.
    assert.deepEqual(rb.batches.map((batch) => batch.length), [3, 3, 3, 3, 3, 3, 2]);
  });

  test('a snapshot in flight does not hold back other messages', async () => {
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    rb.messages = (messages) => (messages.some((m) => m.kind === 'snapshot') ? gate : undefined);
    const snapshot: Message = {
      kind: 'snapshot', from: 'a', to: 'b', term: 2,
      snapshot: { meta: { index: 10, term: 2, members: [{ id: 'a', url: 'http://a', voter: true }] }, data: new Uint8Array(100_000).fill(7) },
    };
    client.send('b', [snapshot]);
    await waitFor(() => received(rb).some((m) => m.kind === 'snapshot'), 'the snapshot to reach the handler');
    client.send('b', [heartbeat(1), heartbeat(2)]);
    await waitFor(() => received(rb).length === 3, 'heartbeats delivered while the snapshot is held');
    assert.deepEqual(received(rb).slice(1), [heartbeat(1), heartbeat(2)]);
    assert.equal(stats(client, 'b').inFlightRequests, 1, 'the snapshot request is still in flight');
    release();
    await waitFor(() => stats(client, 'b').inFlightRequests === 0, 'the snapshot request to finish');
    assert.deepEqual(received(rb)[0], snapshot);
  });

  test('invalid messages, unknown peers and a closed client drop with a reason', async () => {
    client.send('b', [{ ...heartbeat(1), term: -1 }]);
    client.send('b', [heartbeat(1, 'c')]);
    client.send('nobody', [heartbeat(1, 'nobody'), heartbeat(2, 'nobody')]);
    client.setPeers({ b: b.url, d: 'ftp://example' });
    client.send('d', [heartbeat(1, 'd')]);
    assert.deepEqual(
      seen.drops.map((d) => [d.peer, d.reason]),
      [['b', 'invalid'], ['b', 'invalid'], ['nobody', 'unknown_peer'], ['nobody', 'unknown_peer'], ['d', 'bad_url']],
    );
    assert.ok(seen.drops[0].error instanceof WireError);
    assert.match(seen.drops[0].error.message, /message\.term/);
    assert.match(String(seen.drops[1].error?.message), /message\.to: "c" does not match the peer it was sent to, "b"/);
    assert.ok(seen.reachability.some((e) => e.peer === 'd' && !e.reachable && /http:\/\/ or https:\/\//.test(String(e.error?.message))));
    await client.close();
    client.send('b', [heartbeat(3)]);
    assert.equal(client.droppedWithoutLink().closed, 1);
    await assert.rejects(client.status(b.url), (e: unknown) => e instanceof ClientError && e.code === 'unavailable');
  });

  test('messages to the wrong node are refused and reported as misdirected', async () => {
    client.setPeers({ c: b.url });
    client.send('c', [heartbeat(1, 'c')]);
    // The stream names the member it is for, so b refuses it before any message is sent.
    await waitFor(() => seen.reachability.length > 0, 'a reachability report');
    assert.equal(seen.reachability[0].reachable, false);
    assert.ok(seen.reachability[0].error instanceof MisdirectedError, String(seen.reachability[0].error));
    assert.deepEqual(received(rb), []);
  });
});

describe('peer client: unreachable and slow peers', () => {
  let silent: Awaited<ReturnType<typeof startSilentServer>>;
  let client: PeerClient;
  let seen: Observed;

  before(async () => {
    silent = await startSilentServer();
  });
  after(async () => {
    await silent.close();
  });
  afterEach(async () => {
    await client.close();
  });

  test('a peer that never answers does not make the queue grow: the oldest are dropped and counted', async () => {
    ({ client, seen } = observedClient({ maxQueuedMessages: 100, requestTimeoutMs: 300 }));
    client.setPeers({ b: silent.url });
    for (let seq = 1; seq <= 10_000; seq++) client.send('b', [heartbeat(seq)]);
    const s = stats(client, 'b');
    assert.equal(s.inFlightRequests, 1, 'the stream is connecting');
    assert.equal(s.connected, false);
    assert.equal(s.queued, 100);
    assert.equal(s.dropped.queue_full, 10_000 - 100);
    assert.equal(seen.drops.filter((d) => d.reason === 'queue_full').length, 9900);
    // Then the stream is not accepted in time: the queue waiting for it fails, backoff begins.
    await waitFor(() => stats(client, 'b').failedRequests === 1, 'the connection attempt to time out');
    const later = stats(client, 'b');
    assert.equal(later.queued, 0);
    assert.equal(later.dropped.failed, 100);
    assert.equal(later.reachable, false);
    assert.equal(later.backingOff, true);
    client.send('b', [heartbeat(10_001)]);
    assert.equal(stats(client, 'b').dropped.backoff, 1, 'nothing queues while backing off');
    assert.deepEqual(seen.rpcs, [{ kind: 'messages', ok: false }]);
  });

  test('the byte bound holds too', async () => {
    ({ client, seen } = observedClient({ maxQueuedBytes: 10_000, requestTimeoutMs: 5000 }));
    client.setPeers({ b: silent.url });
    const big = (i: number): Message => ({
      kind: 'append', from: 'a', to: 'b', term: 1, prevLogIndex: i, prevLogTerm: 1, leaderCommit: 0,
      entries: [{ kind: 'command', term: 1, index: i + 1, data: new Uint8Array(1000) }],
    });
    for (let i = 0; i < 500; i++) client.send('b', [big(i)]);
    const s = stats(client, 'b');
    assert.ok(s.queuedBytes <= 10_000, `queued ${s.queuedBytes} bytes`);
    assert.equal(s.queued, 9);
    assert.equal(s.dropped.queue_full, 500 - 9);
  });

  test('a dead port: exponential backoff with jitter, messages dropped meanwhile, one unreachable report', async () => {
    let now = 1000;
    ({ client, seen } = observedClient({ backoffInitialMs: 100, backoffMaxMs: 400, random: () => 0.5, now: () => now }));
    client.setPeers({ b: await deadPort() });
    let sent = 0;
    const attempt = async (): Promise<void> => {
      const before = stats(client, 'b').requests;
      client.send('b', [heartbeat(++sent)]);
      assert.equal(stats(client, 'b').requests, before + 1, 'the message starts a request');
      await waitFor(() => stats(client, 'b').inFlightRequests === 0, 'the attempt to fail');
    };
    await attempt();
    // Equal jitter with random 0.5: three quarters of min(400, 100 * 2^failures).
    for (const delay of [75, 150, 300, 300]) {
      now += delay - 1;
      for (let i = 0; i < 3; i++) {
        const before = stats(client, 'b');
        client.send('b', [heartbeat(++sent)]);
        const after = stats(client, 'b');
        assert.equal(after.requests, before.requests, `no attempt ${delay - 1} ms into a ${delay} ms backoff`);
        assert.equal(after.dropped.backoff, before.dropped.backoff + 1);
      }
      now += 1;
      await attempt();
    }
    const s = stats(client, 'b');
    assert.equal(s.requests, 5);
    assert.equal(s.failedRequests, 5);
    assert.equal(s.consecutiveFailures, 5);
    assert.equal(s.delivered, 0);
    assert.deepEqual([s.dropped.failed, s.dropped.backoff, s.queued], [5, 12, 0]);
    assert.equal(sent, 17);
    assert.deepEqual(seen.rpcs, Array.from({ length: 5 }, () => ({ kind: 'messages', ok: false })));
    assert.equal(seen.reachability.length, 1);
    assert.equal(seen.reachability[0].reachable, false);
    assert.match(String(seen.reachability[0].error?.message), /ECONNREFUSED/);
  });

  test('a peer that recovers is reached again and reported reachable', async () => {
    const r = recorder();
    let failuresLeft = 3;
    r.messages = () => {
      if (failuresLeft-- > 0) throw new Error('not ready yet');
    };
    const server = await startPeerServer('127.0.0.1', 0, { token: TOKEN, handlers: r.handlers });
    try {
      ({ client, seen } = observedClient({ backoffInitialMs: 10, backoffMaxMs: 40 }));
      client.setPeers({ b: server.url });
      let seq = 0;
      const started = Date.now();
      // A handler failure ends the stream (the peer cannot take messages): the link backs off and
      // opens a new stream later.
      while (r.batches.length <= 3) {
        assert.ok(Date.now() - started < 10_000, 'delivery within 10 s');
        client.send('b', [heartbeat(++seq)]);
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      await waitFor(() => stats(client, 'b').connected, 'the stream open again');
      assert.equal(stats(client, 'b').failedRequests, 3);
      assert.equal(stats(client, 'b').consecutiveFailures, 0);
      assert.equal(seen.reachability.at(-1)?.reachable, true);
      const down = seen.reachability.filter((e) => !e.reachable);
      assert.ok(down.length >= 1);
      assert.match(String(down[0].error?.message), /not ready yet/);
    } finally {
      await server.close();
    }
  });

  test('removing a peer drops what is queued for it and closes its link', async () => {
    ({ client, seen } = observedClient({ requestTimeoutMs: 5000 }));
    client.setPeers({ b: silent.url });
    for (let seq = 1; seq <= 5; seq++) client.send('b', [heartbeat(seq)]);
    client.setPeers({});
    assert.deepEqual(client.stats(), []);
    assert.equal(seen.drops.filter((d) => d.reason === 'closed').length, 5, 'all five were waiting for the stream');
    client.send('b', [heartbeat(6)]);
    assert.equal(seen.drops.at(-1)?.reason, 'unknown_peer');
  });
});

describe('peer client: streams kept open', () => {
  let client: PeerClient | null = null;
  afterEach(async () => {
    await client?.close();
    client = null;
  });

  test('keepOpen opens the streams to the named peers before anything is sent, and only to them', async () => {
    const rb = recorder();
    const rc = recorder();
    const b = await startPeerServer('127.0.0.1', 0, { token: TOKEN, nodeId: 'b', handlers: rb.handlers });
    const c = await startPeerServer('127.0.0.1', 0, { token: TOKEN, nodeId: 'c', handlers: rc.handlers });
    try {
      const observed = observedClient();
      client = observed.client;
      const kept = observed.client;
      kept.setPeers({ b: b.url, c: c.url });
      kept.keepOpen(['b']);
      await waitFor(() => stats(kept, 'b').connected, 'the stream to b open with nothing sent');
      assert.equal(stats(kept, 'c').requests, 0, 'no stream to c, which was not named');
      // The first message to b leaves on the stream already open: no new connection.
      kept.send('b', [heartbeat(1, 'b')]);
      await waitFor(() => rb.batches.length === 1, 'the message to b');
      assert.equal(stats(kept, 'b').requests, 1);
      assert.deepEqual(observed.seen.drops, []);
    } finally {
      await b.close();
      await c.close();
    }
  });

  test('a stream that only carries our messages stays open: the silent peer is pinged however much we send', async () => {
    // A follower's stream to its leader carries its answers; the leader writes nothing back on it.
    const r = recorder();
    const b = await startPeerServer('127.0.0.1', 0, { token: TOKEN, nodeId: 'b', handlers: r.handlers });
    try {
      const observed = observedClient({ pingIntervalMs: 20, idleTimeoutMs: 150 });
      client = observed.client;
      const sender = observed.client;
      sender.setPeers({ b: b.url });
      let seq = 0;
      const started = Date.now();
      // Four idle timeouts of steady sending, a message every few ms.
      while (Date.now() - started < 600) {
        sender.send('b', [heartbeat(++seq, 'b')]);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await waitFor(() => received(r).length === seq, 'every message delivered');
      assert.equal(stats(sender, 'b').requests, 1, 'one stream all along, never closed as idle');
      assert.deepEqual(observed.seen.drops, []);
    } finally {
      await b.close();
    }
  });

  /** A client keeping its stream to `server` (as b) open; once it is open, the server goes away. */
  async function keptOpenTo(server: RunningPeerServer, options: Partial<PeerClientOptions>): Promise<PeerClient> {
    const kept = observedClient(options).client;
    client = kept;
    kept.setPeers({ b: server.url });
    kept.keepOpen(['b']);
    await waitFor(() => stats(kept, 'b').connected, 'the stream open');
    await server.close();
    return kept;
  }

  test('a kept-open stream whose peer went away is reopened by itself once the peer is back', async () => {
    const r = recorder();
    const first = await startPeerServer('127.0.0.1', 0, { token: TOKEN, nodeId: 'b', handlers: r.handlers });
    const port = Number(new URL(first.url).port);
    let second: RunningPeerServer | null = null;
    try {
      const kept = await keptOpenTo(first, { backoffInitialMs: 10, backoffMaxMs: 40, pingIntervalMs: 20 });
      await waitFor(() => !stats(kept, 'b').connected && stats(kept, 'b').failedRequests > 0, 'the reconnect refused while the peer is gone');
      second = await startPeerServer('127.0.0.1', port, { token: TOKEN, nodeId: 'b', handlers: r.handlers });
      // Nothing is sent: the link reopens the stream after its backoff on its own.
      await waitFor(() => stats(kept, 'b').connected, 'the stream open again without a message');
      assert.equal(r.batches.length, 0);
      assert.equal(stats(kept, 'b').consecutiveFailures, 0);
    } finally {
      await first.close().catch(() => undefined);
      await second?.close();
    }
  });
  test('a kept-open link reconnects as soon as the restarted peer is heard from, not after its backoff', async () => {
    const r = recorder();
    const first = await startPeerServer('127.0.0.1', 0, { token: TOKEN, nodeId: 'b', handlers: r.handlers });
    const port = Number(new URL(first.url).port);
    let second: RunningPeerServer | null = null;
    try {
      // A backoff far longer than the test may take: only heardFrom can reopen the stream in time.
      const kept = await keptOpenTo(first, { backoffInitialMs: 60_000, backoffMaxMs: 60_000 });
      await waitFor(() => stats(kept, 'b').backingOff, 'the reconnect refused, the link backing off');
      second = await startPeerServer('127.0.0.1', port, { token: TOKEN, nodeId: 'b', handlers: r.handlers });
      kept.heardFrom('b');
      await waitFor(() => stats(kept, 'b').connected, 'the stream open again right after a message from b', 20_000);
    } finally {
      await first.close().catch(() => undefined);
      await second?.close();
    }
  });
  test('a restarted peer opening its stream to us makes our kept-open link to it reconnect at once, whatever our last attempt met', async () => {
    // c's server tells c's client of every stream a member opens, as the node wires it; a is the
    // restarted member, which sends c no Raft message (both are followers) but opens its stream.
    const rc = recorder();
    const opened: string[] = [];
    let cClient: PeerClient | null = null;
    const c = await startPeerServer('127.0.0.1', 0, {
      token: TOKEN,
      nodeId: 'c',
      handlers: { ...rc.handlers, onPeerStream: (sender) => (opened.push(sender), cClient?.streamFrom(sender)) },
    });
    const first = await startPeerServer('127.0.0.1', 0, { token: TOKEN, nodeId: 'a', handlers: recorder().handlers });
    const port = Number(new URL(first.url).port);
    // While a starts (or stops), something answers on its port without serving streams: c's last
    // attempt meets a 503, not a refused connection.
    const starting = createServer((_req, res) => res.writeHead(503).end());
    let second: RunningPeerServer | null = null;
    const aClient = observedClient({ selfId: 'a' }).client;
    try {
      cClient = observedClient({ selfId: 'c', backoffInitialMs: 60_000, backoffMaxMs: 60_000 }).client;
      client = cClient;
      cClient.setPeers({ a: first.url });
      cClient.keepOpen(['a']);
      await waitFor(() => stats(cClient as PeerClient, 'a').connected, "c's stream to a open");
      await first.close();
      starting.listen(port, '127.0.0.1');
      await once(starting, 'listening');
      await waitFor(() => stats(cClient as PeerClient, 'a').backingOff, "c's reconnect answered 503, its link backing off");
      starting.close();
      await once(starting, 'close');
      cClient.heardFrom('a');
      assert.equal(stats(cClient as PeerClient, 'a').inFlightRequests, 0, 'a message alone redials only after a refused connection');
      second = await startPeerServer('127.0.0.1', port, { token: TOKEN, nodeId: 'a', handlers: recorder().handlers });
      aClient.setPeers({ c: c.url });
      aClient.keepOpen(['c']);
      await waitFor(() => stats(cClient as PeerClient, 'a').connected, "c's stream to a open again once a's stream reached c", 20_000);
      assert.deepEqual(opened, ['a'], 'one stream opened, named by its sender');
      assert.equal(rc.batches.length, 0, 'no Raft message was needed');
    } finally {
      await aClient.close();
      await first.close().catch(() => undefined);
      if (starting.listening) starting.close();
      await second?.close();
      await c.close();
    }
  });
});

describe('peer client: forwarding calls', () => {
  let server: RunningPeerServer;
  let r: Recorder = recorder();
  let client: PeerClient;
  let seen: Observed;

  before(async () => {
    server = await startPeerServer('127.0.0.1', 0, {
      token: TOKEN,
      handlers: {
        onMessages: (m) => r.handlers.onMessages(m),
        onPropose: (cmd, d) => r.handlers.onPropose(cmd, d),
        onReadIndex: (d) => r.handlers.onReadIndex(d),
        onTransfer: (to, d) => r.handlers.onTransfer(to, d),
        onStatus: () => r.handlers.onStatus(),
      },
    });
  });
  after(async () => {
    await server.close();
  });
  beforeEach(() => {
    r = recorder();
    ({ client, seen } = observedClient());
    client.setPeers({ a: server.url });
  });
  afterEach(async () => {
    await client.close();
  });

  const soon = (ms = 2000): number => Date.now() + ms;
  const put = { op: 'put', key: 'k', value: new Uint8Array([0, 255, 1]), ifMatch: 3 } as const;

  test('propose round-trips the command and the KvResult', async () => {
    assert.deepEqual(await client.propose(server.url, put, soon()), { ok: true, index: 7, term: 2 });
    assert.deepEqual(r.proposals[0].cmd, put);
    r.propose = async () => ({ ok: false, code: 'precondition_failed', index: 9, term: 2, message: 'modIndex is 4, not 3' });
    assert.deepEqual(await client.propose(server.url, put, soon()), { ok: false, code: 'precondition_failed', index: 9, term: 2, message: 'modIndex is 4, not 3' });
    r.propose = async () => ({ ok: true, index: 10, term: 2, deleted: false });
    assert.deepEqual(await client.propose(server.url, { op: 'del', key: 'gone' }, soon()), { ok: true, index: 10, term: 2, deleted: false });
    // The calls went on the peer's stream (one 'messages' connection).
    assert.deepEqual(seen.rpcs, [{ kind: 'messages', ok: true }, { kind: 'propose', ok: true }, { kind: 'propose', ok: true }, { kind: 'propose', ok: true }]);
  });

  test('the peer gets a deadline a little before ours', async () => {
    const deadline = soon(3000);
    await client.propose(server.url, put, deadline);
    assert.ok(r.proposals[0].deadlineMs < deadline && r.proposals[0].deadlineMs > deadline - 1000, `${r.proposals[0].deadlineMs} vs ${deadline}`);
  });

  test('every ClientError code comes back as the same ClientError', async () => {
    const codes: ClientError['code'][] = ['bad_request', 'no_leader', 'timeout', 'precondition_failed', 'not_found', 'payload_too_large', 'unavailable'];
    for (const code of codes) {
      r.propose = async () => {
        throw new ClientError(code, `the leader says ${code}`);
      };
      await assert.rejects(client.propose(server.url, put, soon()), (error: unknown) => {
        assert.ok(error instanceof ClientError);
        assert.equal(error.code, code);
        assert.equal(error.message, `the leader says ${code}`);
        return true;
      });
    }
  });

  test('read index, transfer and status round-trip', async () => {
    assert.deepEqual(await client.readIndex(server.url, soon()), { index: 42, term: 3 });
    assert.deepEqual(await client.transfer(server.url, null, soon()), { leader: 'c', term: 5 });
    assert.deepEqual(await client.transfer(server.url, 'b', soon()), { leader: 'b', term: 5 });
    await assert.rejects(client.transfer(server.url, 'nobody', soon()), { code: 'bad_request', message: 'nobody is not a member' });
    assert.deepEqual(await client.status(server.url), sampleStatus);
    assert.deepEqual(r.calls, ['readIndex', 'transfer', 'transfer', 'transfer', 'status']);
  });

  test('a URL that is not a current peer works through a one-off connection', async () => {
    client.setPeers({});
    assert.deepEqual(await client.readIndex(`${server.url}/`, soon()), { index: 42, term: 3 });
  });

  test('a refused connection means certainly not proposed: no_leader', async () => {
    const url = await deadPort();
    await assert.rejects(client.propose(url, put, soon()), (error: unknown) => {
      assert.ok(error instanceof ClientError);
      assert.equal(error.code, 'no_leader');
      assert.match(error.message, /ECONNREFUSED.*the write was not sent/);
      return true;
    });
    await assert.rejects(client.readIndex(url, soon()), { code: 'no_leader' });
    await assert.rejects(client.status(url), { code: 'unavailable' });
  });

  test('a deadline already past sends nothing: no_leader', async () => {
    await assert.rejects(client.propose(server.url, put, Date.now() - 1), { code: 'no_leader' });
    assert.deepEqual(r.calls, []);
  });

  test('an invalid command is refused before sending: bad_request', async () => {
    await assert.rejects(client.propose(server.url, { op: 'put', key: '', value: new Uint8Array() }, soon()), (error: unknown) => {
      assert.ok(error instanceof ClientError);
      assert.equal(error.code, 'bad_request');
      assert.match(error.message, /key/);
      return true;
    });
    assert.deepEqual(r.calls, []);
  });

  test('no answer after sending means the outcome is unknown: timeout', async () => {
    const silent = await startSilentServer();
    try {
      await assert.rejects(client.propose(silent.url, put, soon(200)), (error: unknown) => {
        assert.ok(error instanceof ClientError);
        assert.equal(error.code, 'timeout');
        assert.match(error.message, /outcome is unknown/);
        return true;
      });
      assert.equal(silent.requests(), 1);
      assert.deepEqual(seen.rpcs, [{ kind: 'propose', ok: false }]);
    } finally {
      await silent.close();
    }
  });

  test('calls in flight are bounded', async () => {
    await client.close();
    ({ client, seen } = observedClient({ maxConcurrentCalls: 2 }));
    const silent = await startSilentServer();
    try {
      const pending = [client.readIndex(silent.url, soon(5000)), client.readIndex(silent.url, soon(5000))];
      const outcomes = Promise.allSettled(pending);
      await assert.rejects(client.readIndex(silent.url, soon(5000)), (error: unknown) => {
        assert.ok(error instanceof ClientError);
        assert.equal(error.code, 'unavailable');
        assert.match(error.message, /too many requests forwarded at once \(limit 2\)/);
        return true;
      });
      await client.close();
      for (const outcome of await outcomes) assert.equal(outcome.status, 'rejected');
    } finally {
      await silent.close();
    }
  });

  test('a wrong token surfaces as PeerAuthError, on calls and on the message lane', async () => {
    await client.close();
    ({ client, seen } = observedClient({ token: 'other-token' }));
    client.setPeers({ a: server.url });
    await assert.rejects(client.status(server.url), (error: unknown) => {
      assert.ok(error instanceof PeerAuthError);
      assert.equal(error.code, 'unavailable');
      assert.match(error.message, /refused our cluster token \(wrong cluster token\); give every member the same RAFTLET_CLUSTER_TOKEN/);
      return true;
    });
    client.send('a', [heartbeat(1, 'a')]);
    await waitFor(() => seen.reachability.length > 0, 'a reachability report');
    assert.ok(seen.reachability[0].error instanceof PeerAuthError);
    assert.deepEqual(r.calls, []);
  });
});

describe('peer client: protocol version mismatch', () => {
  test('a peer speaking another version surfaces as ProtocolMismatchError', async () => {
    // Plays a node of protocol 2 refusing our protocol 1.
    const server = createServer((req, res) => {
      req.resume();
      res.writeHead(426, { 'content-type': 'application/json', 'raftlet-protocol': '2' });
      res.end(JSON.stringify({ error: { code: 'protocol_mismatch', message: 'peer speaks raftlet protocol 1, this node speaks 2' } }));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const { client, seen } = observedClient();
    try {
      await assert.rejects(client.propose(url, { op: 'del', key: 'k' }, Date.now() + 2000), (error: unknown) => {
        assert.ok(error instanceof ProtocolMismatchError);
        assert.equal(error.code, 'unavailable');
        assert.equal(error.peerVersion, 2);
        assert.equal(error.localVersion, 1);
        assert.match(error.message, /it speaks 2\): peer speaks raftlet protocol 1, this node speaks 2; run one raftlet version/);
        return true;
      });
      client.setPeers({ z: url });
      client.send('z', [heartbeat(1, 'z')]);
      await waitFor(() => seen.reachability.length > 0, 'a reachability report');
      assert.ok(seen.reachability[0].error instanceof ProtocolMismatchError);
    } finally {
      await client.close();
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    }
  });
});
