// Fences on a peer stream (stream-frames.ts): a leader handing off tells each member which of the
// writes it forwarded will never be appended there, and the member settles those at once instead of
// waiting for their refusals. The safety claim checked here: a write the member settles as released
// was never handed to the leader's onPropose, and every write onPropose took is answered, never
// released; calls in any interleaving with fences, stalled streams and slow proposals.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request } from 'node:http';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { ClientError } from '../../src/api/ops.ts';
import type { KvCommand, KvResult } from '../../src/kv/types.ts';
import { PeerClient } from '../../src/transport/client.ts';
import { FEATURE_CALL_FENCE, FEATURES_HEADER, PROTOCOL_HEADER, PROTOCOL_VERSION, ROUTES, STREAM_CONTENT_TYPE } from '../../src/transport/protocol.ts';
import { startPeerServer } from '../../src/transport/server.ts';
import type { RunningPeerServer } from '../../src/transport/server.ts';
import { steadyNow } from '../../src/util/steady-clock.ts';
import { decodeFence, decodeFenceAck, encodeFence, encodeFenceAck, FRAME, FrameReader } from '../../src/transport/stream-frames.ts';
import { WireError } from '../../src/transport/wire.ts';
import { heartbeat, recorder, TOKEN, waitFor, type Recorder } from './helpers.ts';

const put = (key: string): KvCommand => ({ op: 'put', key, value: new Uint8Array([1]) });
const OK: KvResult = { ok: true, index: 7, term: 2 };
/** What the member's own release says (peer-link.ts), as against the leader's refusal. */
const RELEASED = /not proposed: b is handing off leadership/;

describe('fence frames', () => {
  test('a fence and its ack carry their numbers unchanged, whatever the chunking', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 0xffff_ffff }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.integer({ min: 1, max: 9 }), (fence, handled, cut) => {
        const reader = new FrameReader((t) => (t === FRAME.fence ? 12 : t === FRAME.fenceAck ? 4 : -1));
        const bytes = Buffer.concat([encodeFence(fence, handled), encodeFenceAck(fence)]);
        const frames = [];
        for (let at = 0; at < bytes.byteLength; at += cut) frames.push(...reader.push(bytes.subarray(at, at + cut)));
        assert.deepEqual(frames.map((f) => f.type), [FRAME.fence, FRAME.fenceAck]);
        assert.deepEqual(decodeFence(frames[0].payload), { fence, callsHandled: handled });
        assert.equal(decodeFenceAck(frames[1].payload), fence);
      }),
    );
  });

  test('a payload of the wrong size, or a count that is no whole number, is a WireError', () => {
    assert.throws(() => decodeFence(Buffer.alloc(11)), WireError);
    assert.throws(() => decodeFenceAck(Buffer.alloc(5)), WireError);
    const bad = Buffer.alloc(12);
    bad.writeDoubleBE(1.5, 4);
    assert.throws(() => decodeFence(bad), /callsHandled/);
    bad.writeDoubleBE(-1, 4);
    assert.throws(() => decodeFence(bad), /callsHandled/);
    assert.throws(() => encodeFence(1, 2 ** 53), WireError);
  });
});

/** A leader's peer server whose proposals wait until answered, and whose member streams can be fenced. */
interface FencedServer {
  readonly server: RunningPeerServer;
  readonly r: Recorder;
  readonly fences: Set<() => void>;
  /** Answers every proposal held so far with OK. */
  answerAll(): void;
  /** Keys onPropose was called with, in order. */
  proposed(): string[];
  /** Makes onMessages stall the stream (frames behind it wait) until unblock(). */
  block(): void;
  unblock(): void;
  readonly held: (() => void)[];
  /** After a test: nothing stalled or held, the client closed, the records cleared. */
  reset(client: PeerClient): Promise<void>;
}

async function fencedServer(): Promise<FencedServer> {
  const r = recorder();
  const fences = new Set<() => void>();
  const held: (() => void)[] = [];
  r.propose = () => new Promise<KvResult>((resolve) => held.push(() => resolve(OK)));
  let release: (() => void) | null = null;
  const server = await startPeerServer('127.0.0.1', 0, {
    token: TOKEN,
    nodeId: 'b',
    handlers: {
      ...r.handlers,
      onCallStream: (fence) => {
        fences.add(fence);
        return () => fences.delete(fence);
      },
    },
  });
  const s: FencedServer = {
    server,
    r,
    fences,
    held,
    answerAll: () => {
      for (const answer of held.splice(0)) answer();
    },
    proposed: () => r.proposals.map((p) => p.cmd.key),
    block: () => {
      if (release !== null) return;
      const stalled = new Promise<void>((resolve) => (release = resolve));
      r.messages = () => stalled;
    },
    unblock: () => {
      r.messages = () => undefined;
      const go = release;
      release = null;
      go?.();
    },
    reset: async (client) => {
      s.unblock();
      s.answerAll();
      await client.close();
      r.proposals.length = 0;
      r.batches.length = 0;
    },
  };
  return s;
}

type Outcome = { kind: 'ok' } | { kind: 'released' } | { kind: 'other'; message: string };

function track(call: Promise<KvResult>): { outcome: Outcome | null; settled: Promise<void> } {
  const t: { outcome: Outcome | null; settled: Promise<void> } = { outcome: null, settled: Promise.resolve() };
  t.settled = call.then(
    () => void (t.outcome = { kind: 'ok' }),
    (error: unknown) => {
      t.outcome = error instanceof ClientError && error.code === 'no_leader' && RELEASED.test(error.message)
        ? { kind: 'released' }
        : { kind: 'other', message: String(error) };
    },
  );
  return t;
}

describe('fences on a member stream', () => {
  let s: FencedServer;
  before(async () => {
    s = await fencedServer();
  });
  after(async () => {
    await s.server.close();
  });

  test('the writes not yet handled are released at once, the handled one still waits for its answer, and the stream runs proposals again after the ack', async () => {
    const client = new PeerClient({ token: TOKEN, random: () => 0.5 });
    try {
      client.setPeers({ b: s.server.url });
      const deadline = (): number => steadyNow() + 10_000;
      const a = track(client.propose(s.server.url, put('a'), deadline()));
      await waitFor(() => s.proposed().length === 1 && s.fences.size === 1, 'a proposed, and the stream fenceable');
      // Frames after this message wait behind it on the server: b and c are written, not handled.
      s.block();
      client.send('b', [heartbeat(1)]);
      const b = track(client.propose(s.server.url, put('b'), deadline()));
      const c = track(client.propose(s.server.url, put('c'), deadline()));
      // The message leaves at the end of this turn and b and c in its check phase (peer-link.ts), so
      // both are written before any timer of this wait fires: once it ends, they are on the stream.
      await waitFor(() => s.r.batches.length === 1, 'the message handled, stalling the stream');
      for (const fence of s.fences) fence();
      await waitFor(() => b.outcome !== null && c.outcome !== null, 'b and c settled');
      assert.deepEqual(b.outcome, { kind: 'released' });
      assert.deepEqual(c.outcome, { kind: 'released' });
      assert.equal(a.outcome, null, 'a was handled before the fence: it waits for its answer');
      s.unblock();
      // d follows b, c and the ack on the stream: once the server runs it, b and c were refused there.
      const d = track(client.propose(s.server.url, put('d'), deadline()));
      await waitFor(() => s.proposed().length === 2, 'd proposed');
      assert.deepEqual(s.proposed(), ['a', 'd'], 'b and c never reached onPropose');
      s.answerAll();
      await Promise.all([a.settled, d.settled]);
      assert.deepEqual(a.outcome, { kind: 'ok' });
      assert.deepEqual(d.outcome, { kind: 'ok' });
    } finally {
      await s.reset(client);
    }
  });

  test('a stream opened without the call-fence feature (an older member) is never fenced', async () => {
    await waitFor(() => s.fences.size === 0, 'the earlier test\'s stream unregistered');
    const open = async (features: Record<string, string>): Promise<ClientRequest> => {
      const req = request(`${s.server.url}${ROUTES.stream}`, {
        method: 'POST',
        headers: { 'content-type': STREAM_CONTENT_TYPE, [PROTOCOL_HEADER]: String(PROTOCOL_VERSION), authorization: `Bearer ${TOKEN}`, ...features },
      });
      req.flushHeaders();
      const [res] = (await once(req, 'response')) as [IncomingMessage];
      assert.equal(res.statusCode, 200);
      return req;
    };
    const older = await open({});
    assert.equal(s.fences.size, 0);
    older.destroy();
    // And one that announces it is.
    const fenceable = await open({ [FEATURES_HEADER]: FEATURE_CALL_FENCE });
    assert.equal(s.fences.size, 1);
    fenceable.destroy();
    await waitFor(() => s.fences.size === 0, 'the ended stream unregistered');
  });

  test('in any interleaving of writes, fences, stalls and answers, a released write was never proposed, and a proposed one is answered', async () => {
    type Op = 'propose' | 'block' | 'unblock' | 'fence' | 'answer' | 'pause';
    // Over all runs, both outcomes must occur, or the property would hold vacuously.
    let released = 0;
    let answered = 0;
    const op = fc.constantFrom<Op>('propose', 'propose', 'propose', 'block', 'unblock', 'fence', 'answer', 'pause');
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(op, fc.integer({ min: 0, max: 3 })), { minLength: 5, maxLength: 30 }), async (ops) => {
        const client = new PeerClient({ token: TOKEN, random: () => 0.5 });
        const writes = new Map<string, ReturnType<typeof track>>();
        try {
          client.setPeers({ b: s.server.url });
          let seq = 0;
          for (const [kind, n] of ops) {
            switch (kind) {
              case 'propose': {
                const key = `k${seq++}`;
                writes.set(key, track(client.propose(s.server.url, put(key), steadyNow() + 20_000)));
                break;
              }
              case 'block':
                s.block();
                client.send('b', [heartbeat(seq)]);
                break;
              case 'unblock':
                s.unblock();
                break;
              case 'fence':
                for (const fence of s.fences) fence();
                break;
              case 'answer':
                s.held.shift()?.();
                break;
              case 'pause':
                await delay(n);
                break;
              default: {
                const unreachable: never = kind;
                throw new Error(`unknown op ${String(unreachable)}`);
              }
            }
            if (n === 0) await delay(0);
          }
          s.unblock();
          await waitFor(() => {
            s.answerAll();
            return [...writes.values()].every((w) => w.outcome !== null);
          }, 'every write settled', 15_000);
          const proposed = new Set(s.proposed());
          for (const [key, w] of writes) {
            const outcome = w.outcome as Outcome;
            assert.notEqual(outcome.kind, 'other', `${key}: ${outcome.kind === 'other' ? outcome.message : ''}`);
            if (outcome.kind === 'released') {
              released++;
              assert.ok(!proposed.has(key), `${key} was released, yet proposed`);
            } else {
              answered++;
              assert.ok(proposed.has(key), `${key} was answered, yet never proposed`);
            }
          }
        } finally {
          await s.reset(client);
        }
      }),
      { numRuns: 25 },
    );
    assert.ok(released > 0 && answered > 0, `released ${released}, answered ${answered}`);
  });
});
