// The framing inside a peer stream (POST /raft/v1/stream): one long-lived HTTP/1.1 request per
// direction of a peer pair whose body, and whose response body, are sequences of frames
//   <length u32 big-endian> <type u8> <payload: length - 1 bytes>
// The length comes first so a reader can refuse an oversized frame before buffering it.
//   client -> server: messages (a Raft messages frame of codec.ts), call, ping, fence-ack
//   server -> client: reply, pong, error (fatal: the server closes the stream after it), fence
// Calls are forwarded client requests (propose, read index, transfer, status) with the JSON bodies
// of forwarding.ts, tagged with an id the reply carries back, so many travel in one write and
// their answers come back in any order. A call payload is
//   <id u32> <kind u8> <body>
// with kind 1 propose, 2 read index, 3 transfer, 4 status (body: JSON text), or 5 propose-bytes:
//   <timeoutMs u32> <the command as the key-value codec encodes it in a log entry (src/kv/codec.ts)>
// a write without JSON or base64 on either side. A member sends kind 5 only on a stream whose
// server announced `propose-bytes` in the Raftlet-Features response header (protocol.ts), so a
// member of an older release, which would refuse the kind and close the stream, never sees it
// (rolling upgrades). Replies are <id u32> <HTTP status u16> <JSON text> for every kind.
//
// A fence lets a leader that hands off leadership say which forwarded writes it will never append,
// before their replies arrive (sent only to a client that announced `call-fence`, protocol.ts):
//   fence      <fence number u32> <calls handled, f64>: the server has handled that many call
//              frames of this stream (every one of them proposed or refused by now), and refuses
//              every propose call it handles from here on (503 no_leader) until the fence-ack of
//              this number. Frames of a stream are handled in order, so each propose the client
//              wrote after that many calls, and before its fence-ack, is certain not to be appended
//              here: the client may send those writes elsewhere at once.
//   fence-ack  <fence number u32>: written after every call the client had written when the fence
//              arrived; propose calls after it run as usual again.
import { Buffer } from 'node:buffer';
import { WireError } from './wire.ts';

export const FRAME = { messages: 1, call: 2, reply: 3, ping: 4, pong: 5, error: 6, fence: 7, fenceAck: 8 } as const;
export type FrameType = (typeof FRAME)[keyof typeof FRAME];

export const CALL_KIND = { propose: 1, readIndex: 2, transfer: 3, status: 4 } as const;
export type CallKind = keyof typeof CALL_KIND;
const CALL_KIND_BY_TAG = new Map<number, CallKind>(Object.entries(CALL_KIND).map(([k, v]) => [v, k as CallKind]));
/** The wire tag of a propose call whose body is the encoded command (see above). */
export const PROPOSE_BYTES_TAG = 5;

const HEADER_BYTES = 5;
/** Call ids wrap below 2^32 (4 bytes on the wire). */
export const MAX_CALL_ID = 0xffff_ffff;

export interface Frame {
  readonly type: number;
  readonly payload: Buffer;
}

/** A frame too large for its type: the reader refuses it from its header alone. */
export class FrameTooLarge extends WireError {
  readonly type: number;
  readonly bytes: number;
  readonly limit: number;
  constructor(type: number, bytes: number, limit: number) {
    super('stream.frame', `a frame of type ${type} declares ${bytes} bytes, more than the limit of ${limit}`);
    this.type = type;
    this.bytes = bytes;
    this.limit = limit;
  }
}

export function encodeFrame(type: FrameType, payload: Uint8Array | null): Buffer {
  const length = 1 + (payload?.byteLength ?? 0);
  const out = Buffer.allocUnsafe(4 + length);
  out.writeUInt32BE(length, 0);
  out[4] = type;
  if (payload !== null) out.set(payload, HEADER_BYTES);
  return out;
}

export function encodeCall(id: number, kind: CallKind, json: string): Buffer {
  const body = Buffer.from(json, 'utf8');
  const out = Buffer.allocUnsafe(HEADER_BYTES + 5 + body.byteLength);
  out.writeUInt32BE(1 + 5 + body.byteLength, 0);
  out[4] = FRAME.call;
  out.writeUInt32BE(id, 5);
  out[9] = CALL_KIND[kind];
  out.set(body, 10);
  return out;
}

/** A propose call carrying the encoded command; timeoutMs is the caller's wait, as in JSON. */
export function encodeProposeBytesCall(id: number, timeoutMs: number, command: Uint8Array): Buffer {
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 0xffff_ffff) throw new WireError('call.timeoutMs', `expected 1 to ${0xffff_ffff}, got ${timeoutMs}`);
  if (command.byteLength < 1) throw new WireError('call.command', 'empty');
  const out = Buffer.allocUnsafe(HEADER_BYTES + 9 + command.byteLength);
  out.writeUInt32BE(1 + 9 + command.byteLength, 0);
  out[4] = FRAME.call;
  out.writeUInt32BE(id, 5);
  out[9] = PROPOSE_BYTES_TAG;
  out.writeUInt32BE(timeoutMs, 10);
  out.set(command, 14);
  return out;
}

export type DecodedCall =
  | { readonly id: number; readonly kind: CallKind; readonly json: string }
  | { readonly id: number; readonly kind: 'proposeBytes'; readonly timeoutMs: number; readonly command: Uint8Array };

/** Throws WireError for a payload that is no call; the body itself is checked by whoever runs it. */
export function decodeCall(payload: Buffer): DecodedCall {
  if (payload.byteLength < 5) throw new WireError('call', 'truncated');
  const id = payload.readUInt32BE(0);
  if (payload[4] === PROPOSE_BYTES_TAG) {
    if (payload.byteLength < 10) throw new WireError('call', `a propose-bytes call of ${payload.byteLength} bytes is truncated`);
    // A plain view, not a Buffer: what is decoded from it (the value) is a Uint8Array, as from JSON.
    const command = new Uint8Array(payload.buffer, payload.byteOffset + 9, payload.byteLength - 9);
    return { id, kind: 'proposeBytes', timeoutMs: payload.readUInt32BE(5), command };
  }
  const kind = CALL_KIND_BY_TAG.get(payload[4]);
  if (kind === undefined) throw new WireError('call.kind', `unknown call kind ${payload[4]}`);
  return { id, kind, json: payload.toString('utf8', 5) };
}

/** Payload sizes of the fence frames. */
export const FENCE_BYTES = 12;
export const FENCE_ACK_BYTES = 4;

export interface Fence {
  readonly fence: number;
  readonly callsHandled: number;
}

export function encodeFence(fence: number, callsHandled: number): Buffer {
  if (!Number.isSafeInteger(callsHandled) || callsHandled < 0) throw new WireError('fence.callsHandled', `expected a whole number >= 0, got ${callsHandled}`);
  const out = encodeFrame(FRAME.fence, Buffer.alloc(FENCE_BYTES));
  out.writeUInt32BE(fence, HEADER_BYTES);
  out.writeDoubleBE(callsHandled, HEADER_BYTES + 4);
  return out;
}

export function decodeFence(payload: Buffer): Fence {
  if (payload.byteLength !== FENCE_BYTES) throw new WireError('fence', `expected ${FENCE_BYTES} bytes, got ${payload.byteLength}`);
  const callsHandled = payload.readDoubleBE(4);
  if (!Number.isSafeInteger(callsHandled) || callsHandled < 0) throw new WireError('fence.callsHandled', `expected a whole number >= 0, got ${callsHandled}`);
  return { fence: payload.readUInt32BE(0), callsHandled };
}

export function encodeFenceAck(fence: number): Buffer {
  const out = encodeFrame(FRAME.fenceAck, Buffer.alloc(FENCE_ACK_BYTES));
  out.writeUInt32BE(fence, HEADER_BYTES);
  return out;
}

export function decodeFenceAck(payload: Buffer): number {
  if (payload.byteLength !== FENCE_ACK_BYTES) throw new WireError('fenceAck', `expected ${FENCE_ACK_BYTES} bytes, got ${payload.byteLength}`);
  return payload.readUInt32BE(0);
}

export function encodeReply(id: number, status: number, json: string): Buffer {
  const body = Buffer.from(json, 'utf8');
  const out = Buffer.allocUnsafe(HEADER_BYTES + 6 + body.byteLength);
  out.writeUInt32BE(1 + 6 + body.byteLength, 0);
  out[4] = FRAME.reply;
  out.writeUInt32BE(id, 5);
  out.writeUInt16BE(status, 9);
  out.set(body, 11);
  return out;
}

export function decodeReply(payload: Buffer): { id: number; status: number; json: string } {
  if (payload.byteLength < 6) throw new WireError('reply', 'truncated');
  return { id: payload.readUInt32BE(0), status: payload.readUInt16BE(4), json: payload.toString('utf8', 6) };
}

/** Splits a byte stream into frames. Chunks are kept as they came and joined once per frame, so
 * a large frame arriving in many chunks is copied once. */
export class FrameReader {
  private readonly limitOf: (type: number) => number;
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** limitOf(type): the largest payload accepted for that type; a negative limit refuses the type. */
  constructor(limitOf: (type: number) => number) {
    this.limitOf = limitOf;
  }

  /** Bytes held for a frame not yet complete. */
  get pendingBytes(): number {
    return this.buffered;
  }

  /** Adds a chunk and returns every frame it completes. Throws FrameTooLarge or WireError. */
  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.byteLength;
    const frames: Frame[] = [];
    for (;;) {
      if (this.buffered < HEADER_BYTES) return frames;
      const head = this.peek(HEADER_BYTES);
      const length = head.readUInt32BE(0);
      const type = head[4];
      if (length < 1) throw new WireError('stream.frame', 'a frame of length 0');
      const limit = this.limitOf(type);
      if (limit < 0) throw new WireError('stream.frame', `unexpected frame type ${type}`);
      if (length - 1 > limit) throw new FrameTooLarge(type, length - 1, limit);
      if (this.buffered < 4 + length) return frames;
      const whole = this.take(4 + length);
      frames.push({ type, payload: whole.subarray(HEADER_BYTES) });
    }
  }

  private peek(bytes: number): Buffer {
    if (this.chunks[0].byteLength >= bytes) return this.chunks[0];
    this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0];
  }

  private take(bytes: number): Buffer {
    const first = this.chunks[0];
    let out: Buffer;
    if (first.byteLength >= bytes) {
      out = first.subarray(0, bytes);
      if (first.byteLength === bytes) this.chunks.shift();
      else this.chunks[0] = first.subarray(bytes);
    } else {
      const all = Buffer.concat(this.chunks);
      out = all.subarray(0, bytes);
      this.chunks = all.byteLength > bytes ? [all.subarray(bytes)] : [];
    }
    this.buffered -= bytes;
    return out;
  }
}
