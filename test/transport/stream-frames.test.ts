// The stream framing: frames split across and joined within chunks come out whole; oversized and
// unexpected frames are refused from their header alone.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { decodeCall, decodeReply, encodeCall, encodeFrame, encodeReply, FRAME, FrameReader, FrameTooLarge } from '../../src/transport/stream-frames.ts';

const limits = (type: number): number => (type === FRAME.messages ? 1000 : type === FRAME.ping ? 0 : type === FRAME.call ? 100 : -1);

describe('stream frames', () => {
  test('any chunking of a frame sequence yields the same frames, in order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.uint8Array({ maxLength: 1000 }).map((p) => ({ type: FRAME.messages, p })), fc.constant({ type: FRAME.ping, p: new Uint8Array() })), { maxLength: 20 }),
        fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 50 }),
        (frames, cuts) => {
          const bytes = Buffer.concat(frames.map((f) => encodeFrame(f.type as typeof FRAME.messages, f.p.byteLength === 0 ? null : f.p)));
          const reader = new FrameReader(limits);
          const out: { type: number; p: Buffer }[] = [];
          let at = 0;
          for (let i = 0; at < bytes.byteLength; i++) {
            const size = cuts[i % cuts.length];
            for (const f of reader.push(bytes.subarray(at, at + size))) out.push({ type: f.type, p: Buffer.from(f.payload) });
            at += size;
          }
          assert.deepEqual(out.map((f) => [f.type, f.p.toString('hex')]), frames.map((f) => [f.type, Buffer.from(f.p).toString('hex')]));
          assert.equal(reader.pendingBytes, 0);
        },
      ),
    );
  });

  test('a frame over its type limit is refused from its header; an unexpected type too', () => {
    const huge = Buffer.alloc(5);
    huge.writeUInt32BE(2_000_000_000, 0);
    huge[4] = FRAME.messages;
    assert.throws(() => new FrameReader(limits).push(huge), (e: unknown) => e instanceof FrameTooLarge && e.bytes === 2_000_000_000 - 1);
    assert.throws(() => new FrameReader(limits).push(encodeFrame(FRAME.reply, null)), /unexpected frame type 3/);
    assert.deepEqual(new FrameReader(limits).push(encodeFrame(FRAME.ping, null)).map((f) => f.type), [FRAME.ping], 'a ping carries no payload and is fine');
  });

  test('calls and replies carry their id, kind, status and JSON', () => {
    const reader = new FrameReader((t) => (t === FRAME.call || t === FRAME.reply ? 1000 : -1));
    const [call, reply] = reader.push(Buffer.concat([encodeCall(0xfffffffe, 'transfer', '{"to":null}'), encodeReply(7, 504, '{"x":"é"}')]));
    assert.deepEqual(decodeCall(call.payload), { id: 0xfffffffe, kind: 'transfer', json: '{"to":null}' });
    assert.deepEqual(decodeReply(reply.payload), { id: 7, status: 504, json: '{"x":"é"}' });
  });
});
