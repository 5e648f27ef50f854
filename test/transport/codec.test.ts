import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { Message } from '../../src/raft/types.ts';
import { decodeMessage, decodeMessages, encodeMessage, encodeMessages, frameEncoded, WIRE_LIMITS, WIRE_VERSION } from '../../src/transport/codec.ts';
import { WireError } from '../../src/transport/wire.ts';
import { message } from './arbitraries.ts';

/** Decodes, and checks the promise of the decoder: a fully valid batch or a WireError, nothing else. */
function decodeOrWireError(bytes: Uint8Array): Message[] | WireError {
  try {
    const messages = decodeMessages(bytes);
    // Valid means the encoder (which validates every field) accepts it, and it is stable.
    const again = encodeMessages(messages);
    assert.deepEqual(decodeMessages(again), messages);
    return messages;
  } catch (error) {
    if (error instanceof WireError) return error;
    throw error;
  }
}

function expectWireError(fn: () => unknown, field: string, problem?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof WireError, `expected a WireError, got ${String(error)}`);
    assert.equal(error.field, field);
    if (problem !== undefined) assert.match(error.message, problem);
    return true;
  });
}

const heartbeat: Message = { kind: 'heartbeat', from: 'a', to: 'b', term: 3, commit: 7, seq: 1 };

describe('wire codec: round trip', () => {
  test('a batch of arbitrary valid messages decodes to the same messages', () => {
    fc.assert(
      fc.property(fc.array(message(), { maxLength: 6 }), (messages) => {
        assert.deepEqual(decodeMessages(encodeMessages(messages)), messages);
      }),
      { numRuns: 400 },
    );
  });

  test('a single message decodes to the same message, and a frame of pre-encoded ones matches encodeMessages', () => {
    fc.assert(
      fc.property(fc.array(message(), { minLength: 1, maxLength: 4 }), (messages) => {
        for (const m of messages) assert.deepEqual(decodeMessage(encodeMessage(m)), m);
        assert.deepEqual(frameEncoded(messages.map(encodeMessage)), encodeMessages(messages));
      }),
    );
  });

  test('a frame of 300 messages (a two-byte count) round-trips', () => {
    const many = Array.from({ length: 300 }, (_, seq): Message => ({ ...heartbeat, seq }));
    const bytes = encodeMessages(many);
    assert.deepEqual([...bytes.subarray(3, 5)], [0xac, 0x02]);
    assert.deepEqual(decodeMessages(bytes), many);
    assert.deepEqual(frameEncoded(many.map(encodeMessage)), bytes);
  });

  test('command data comes back as a private copy, not a view of the input', () => {
    const m: Message = {
      kind: 'append', from: 'a', to: 'b', term: 2, prevLogIndex: 4, prevLogTerm: 1, leaderCommit: 4,
      entries: [{ kind: 'command', term: 2, index: 5, data: new Uint8Array([1, 2, 3]) }],
    };
    const bytes = encodeMessages([m]);
    const [decoded] = decodeMessages(bytes);
    bytes.fill(0);
    assert.deepEqual(decoded, m);
  });

  test('the frame starts with "RL" and the wire version', () => {
    const bytes = encodeMessages([heartbeat]);
    assert.deepEqual([...bytes.subarray(0, 3)], [0x52, 0x4c, WIRE_VERSION]);
  });
});

describe('wire codec: hostile input', () => {
  test('arbitrary bytes never crash the decoder', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        decodeOrWireError(bytes);
      }),
      { numRuns: 2000 },
    );
  });

  test('arbitrary bytes behind a valid frame header never crash the decoder', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (tail) => {
        decodeOrWireError(new Uint8Array([0x52, 0x4c, WIRE_VERSION, ...tail]));
      }),
      { numRuns: 3000 },
    );
  });

  test('mutated valid encodings decode to valid messages or fail with a WireError', () => {
    const edit = fc.oneof(
      fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ op: fc.constant('insert' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ op: fc.constant('delete' as const), at: fc.nat(), value: fc.constant(0) }),
      fc.record({ op: fc.constant('truncate' as const), at: fc.nat(), value: fc.constant(0) }),
    );
    let wireErrors = 0;
    let valid = 0;
    fc.assert(
      fc.property(fc.array(message(), { minLength: 1, maxLength: 3 }), fc.array(edit, { minLength: 1, maxLength: 4 }), (messages, edits) => {
        const bytes = [...encodeMessages(messages)];
        for (const { op, at, value } of edits) {
          const i = at % (bytes.length + 1);
          if (op === 'set' && i < bytes.length) bytes[i] = value;
          else if (op === 'insert') bytes.splice(i, 0, value);
          else if (op === 'delete') bytes.splice(i, 1);
          else if (op === 'truncate') bytes.length = i;
        }
        if (decodeOrWireError(new Uint8Array(bytes)) instanceof WireError) wireErrors++;
        else valid++;
      }),
      { numRuns: 2000 },
    );
    // Both outcomes occur, so the property is not vacuous.
    assert.ok(wireErrors > 0 && valid > 0, `wire errors ${wireErrors}, valid ${valid}`);
  });

  test('decoding something that is not bytes is a WireError', () => {
    expectWireError(() => decodeMessages('RL' as unknown as Uint8Array), 'frame');
  });
});

describe('wire codec: strict validation names the field', () => {
  const frame = (...body: number[]): Uint8Array => new Uint8Array([0x52, 0x4c, WIRE_VERSION, ...body]);
  // heartbeat from "a" to "b", term 3, commit 7, seq 1
  const heartbeatBody = [5, 1, 0x61, 1, 0x62, 3, 7, 1];

  test('the reference encoding of a heartbeat decodes as expected', () => {
    assert.deepEqual(decodeMessages(frame(1, ...heartbeatBody)), [heartbeat]);
    assert.deepEqual(encodeMessages([heartbeat]), frame(1, ...heartbeatBody));
  });

  test('bad magic, other wire version, trailing bytes', () => {
    expectWireError(() => decodeMessages(new Uint8Array([0x50, 0x4b, 3, 4])), 'frame.magic');
    const other = WIRE_VERSION + 1;
    expectWireError(() => decodeMessages(new Uint8Array([0x52, 0x4c, other, 0])), 'frame.version', new RegExp(`peer speaks raftlet wire version ${other}, this node speaks ${WIRE_VERSION}`));
    expectWireError(() => decodeMessages(frame(1, ...heartbeatBody, 0)), 'messages', /trailing/);
  });

  test('an unknown kind, a truncated field, a bad boolean', () => {
    expectWireError(() => decodeMessages(frame(1, 9, 1, 0x61, 1, 0x62, 3)), 'messages[0].kind', /unknown message kind tag 9/);
    expectWireError(() => decodeMessages(frame(1, 5, 1, 0x61, 1, 0x62, 3, 7)), 'messages[0].seq', /truncated/);
    expectWireError(() => decodeMessages(frame(1, 2, 1, 0x61, 1, 0x62, 3, 1, 2)), 'messages[0].granted', /boolean/);
  });

  test('integers: above 2^53 - 1 and non-canonical encodings are refused', () => {
    const max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]; // 2^53 - 1
    const over = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]; // 2^53
    assert.equal(decodeMessages(frame(1, 8, 1, 0x61, 1, 0x62, ...max))[0].term, Number.MAX_SAFE_INTEGER);
    expectWireError(() => decodeMessages(frame(1, 8, 1, 0x61, 1, 0x62, ...over)), 'messages[0].term', /above 2\^53/);
    expectWireError(() => decodeMessages(frame(1, 8, 1, 0x61, 1, 0x62, 0x83, 0x00)), 'messages[0].term', /non-canonical/);
  });

  test('ids: empty, too long, or not UTF-8', () => {
    expectWireError(() => decodeMessages(frame(1, 8, 0, 1, 0x62, 3, 0)), 'messages[0].from', /shorter than 1/);
    const long = WIRE_LIMITS.idBytes + 1;
    expectWireError(() => decodeMessages(frame(1, 8, 0x81, 0x02, ...new Array<number>(long).fill(0x61), 1, 0x62, 3)), 'messages[0].from', /limit of 256/);
    expectWireError(() => decodeMessages(frame(1, 8, 1, 0x61, 2, 0xc3, 0x28, 3)), 'messages[0].to', /UTF-8/);
  });

  test('a count larger than the bytes that follow fails before allocating', () => {
    expectWireError(() => decodeMessages(frame(0xff, 0xff, 0x03)), 'frame.count', /cannot fit/);
  });

  test('append entries must follow prevLogIndex without gaps and keep terms in order', () => {
    const base = { kind: 'append', from: 'a', to: 'b', term: 5, prevLogIndex: 10, prevLogTerm: 2, leaderCommit: 9 } as const;
    const gap: Message = { ...base, entries: [{ kind: 'noop', term: 5, index: 12 }] };
    expectWireError(() => encodeMessages([gap]), 'message.entries[0].index', /expected 11/);
    const backwards: Message = { ...base, entries: [{ kind: 'noop', term: 4, index: 11 }, { kind: 'noop', term: 3, index: 12 }] };
    expectWireError(() => encodeMessages([backwards]), 'message.entries[1].term', /below the term 4/);
    const future: Message = { ...base, entries: [{ kind: 'noop', term: 6, index: 11 }] };
    expectWireError(() => encodeMessages([future]), 'message.entries[0].term', /above the message term 5/);
    // The decoder applies the same rules to bytes from a peer.
    const ok: Message = { ...base, entries: [{ kind: 'noop', term: 5, index: 11 }] };
    const bytes = encodeMessages([ok]);
    const indexAt = bytes.length - 2; // ... <index 11> <leaderCommit 9>
    assert.equal(bytes[indexAt], 11);
    bytes[indexAt] = 12;
    expectWireError(() => decodeMessages(bytes), 'messages[0].entries[0].index', /expected 11/);
  });

  test('the encoder refuses what a peer would refuse, naming the field', () => {
    expectWireError(() => encodeMessages([{ ...heartbeat, term: -1 }]), 'message.term', /non-negative safe integer/);
    expectWireError(() => encodeMessages([{ ...heartbeat, commit: 1.5 }]), 'message.commit');
    expectWireError(() => encodeMessages([{ ...heartbeat, seq: 2 ** 53 }]), 'message.seq');
    expectWireError(() => encodeMessages([{ ...heartbeat, from: '' }]), 'message.from', /shorter than 1/);
    expectWireError(() => encodeMessages([{ ...heartbeat, to: 'x'.repeat(300) }]), 'message.to', /longer than 256/);
    expectWireError(() => encodeMessages([{ ...heartbeat, to: 'bad\ud800' }]), 'message.to', /lone surrogate/);
    expectWireError(() => encodeMessages([{ ...heartbeat, kind: 'gossip' } as unknown as Message]), 'message.kind', /unknown message kind "gossip"/);
    const vote = { kind: 'vote', from: 'a', to: 'b', term: 1, preVote: 'yes', lastLogIndex: 0, lastLogTerm: 0, transfer: false };
    expectWireError(() => encodeMessages([vote as unknown as Message]), 'message.preVote', /boolean/);
    const config: Message = {
      kind: 'append', from: 'a', to: 'b', term: 1, prevLogIndex: 0, prevLogTerm: 0, leaderCommit: 0,
      entries: [{ kind: 'config', term: 1, index: 1, members: [{ id: 'a', url: 'u', voter: true }, { id: 'a', url: 'v', voter: false }] }],
    };
    expectWireError(() => encodeMessages([config]), 'message.entries[0].members[1].id', /duplicate member id "a"/);
    const snapshot: Message = {
      kind: 'snapshot', from: 'a', to: 'b', term: 2,
      snapshot: { meta: { index: 5, term: 3, members: [] }, data: new Uint8Array() },
    };
    expectWireError(() => encodeMessages([snapshot]), 'message.snapshot.meta.term', /above the message term 2/);
    const command = { kind: 'command', term: 1, index: 1, data: [1, 2] };
    expectWireError(
      () => encodeMessages([{ ...config, entries: [command] } as unknown as Message]),
      'message.entries[0].data',
      /expected a Uint8Array, got an array/,
    );
  });
});
