// The server's half of a peer stream (POST /raft/v1/stream, already authenticated): frames in,
// Raft messages to the runtime in order, forwarded calls run concurrently and answered with reply
// frames. Replies that settle in the same turn of the event loop leave in one write.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NodeId } from '../raft/types.ts';
import { encodeError } from './forwarding.ts';
import type { ErrorCode } from './protocol.ts';
import { Deadlines } from '../util/deadlines.ts';
import { FEATURE_CALL_FENCE, FEATURE_PROPOSE_BYTES, FEATURES_HEADER, parseFeatures, STREAM_CONTENT_TYPE } from './protocol.ts';
import { foreignMessage } from './sender.ts';
import { errorAnswer, errorText, prepareCall, prepareProposeBytes, receivedMessages, type CallAnswer, type OverrunTimer, type PeerHandlers, type PreparedCall } from './server-calls.ts';
import { decodeCall, decodeFenceAck, encodeFence, encodeFrame, encodeReply, FENCE_ACK_BYTES, FRAME, FrameReader, FrameTooLarge, MAX_CALL_ID, type Frame } from './stream-frames.ts';
import { writeUncorked } from './uncorked.ts';

export interface StreamContext {
  readonly handlers: PeerHandlers;
  readonly nodeId: NodeId | undefined;
  /** The member the stream's opener named (checked by sender.ts); every message must be from it. */
  readonly sender: NodeId | null;
  readonly messagesLimitBytes: number;
  readonly requestLimitBytes: number;
  readonly maxTimeoutMs: number;
  /** Whether the token the stream was opened with is still accepted. */
  readonly stillAuthorized: () => boolean;
  /** A refusal that ends the stream, for the (rate-limited) log. */
  readonly refuse: (code: ErrorCode, message: string) => void;
}

// Replies the peer does not read are not buffered without bound.
const MAX_UNSENT_REPLY_BYTES = 16 * 1024 * 1024;
const FATAL_LINGER_MS = 1000;

export function serveStream(req: IncomingMessage, res: ServerResponse, ctx: StreamContext): void {
  // FEATURES_HEADER: what this server accepts beyond the base protocol; the client uses nothing else.
  res.writeHead(200, { 'content-type': STREAM_CONTENT_TYPE, 'cache-control': 'no-store', [FEATURES_HEADER]: FEATURE_PROPOSE_BYTES });
  res.flushHeaders();
  req.socket.setNoDelay(true);
  // The node hears of every member stream: a restarted follower opens its streams at start but
  // sends the other followers no Raft message, and without this their links to it would reconnect
  // only at their next retry (the first vote it asks for after a hand-off would wait for a
  // connection); and how long each member has been in contact orders the transfer targets.
  const streamEnded = ctx.sender === null ? undefined : ctx.handlers.onPeerStream?.(ctx.sender);
  // Fences (stream-frames.ts), for a client that accepts them: callsHandled counts every call frame
  // handled, in the order written; while the ack of the newest fence (lastFence) is awaited,
  // propose calls are refused, not run.
  const fenceable = parseFeatures(req.headers[FEATURES_HEADER]).has(FEATURE_CALL_FENCE) && ctx.handlers.onCallStream !== undefined;
  let callsHandled = 0;
  let lastFence = 0;
  let awaitingAck = false;
  const reader = new FrameReader((type) => {
    switch (type) {
      case FRAME.messages:
        return ctx.messagesLimitBytes;
      case FRAME.call:
        return ctx.requestLimitBytes;
      case FRAME.ping:
        return 0;
      case FRAME.fenceAck:
        return fenceable ? FENCE_ACK_BYTES : -1;
      default:
        return -1;
    }
  });
  let out: Buffer[] = [];
  let flushScheduled = false;
  let closed = false;
  let ended = false;
  let callsRunning = 0;
  /** Frames waiting behind an asynchronous onMessages, so messages reach the runtime in order. */
  const backlog: Frame[] = [];
  let busy = false;
  // One timer for the overrun deadlines of all calls running on this stream, not one per call.
  const overruns = new Deadlines<() => void>((fire) => fire());
  const overrun: OverrunTimer = (afterMs, fire) => {
    overruns.add(fire, performance.now() + afterMs);
    return () => overruns.delete(fire);
  };

  const flush = (): void => {
    flushScheduled = false;
    if (closed || out.length === 0) return;
    const bytes = out.length === 1 ? out[0] : Buffer.concat(out);
    out = [];
    writeUncorked(res, bytes);
    if (res.writableLength > MAX_UNSENT_REPLY_BYTES) {
      closed = true;
      res.destroy();
    }
  };
  const send = (frame: Buffer): void => {
    out.push(frame);
    if (!flushScheduled) {
      flushScheduled = true;
      // After every callback of this poll of the event loop: the replies to calls that settle on
      // different acknowledgements, read in one poll, leave in one write.
      setImmediate(flush);
    }
  };
  const finishIfDone = (): void => {
    if (ended && callsRunning === 0 && !busy && !closed) {
      flush();
      closed = true;
      res.end();
    }
  };
  const fatal = (code: ErrorCode, message: string): void => {
    if (closed) return;
    ctx.refuse(code, message);
    send(encodeFrame(FRAME.error, Buffer.from(encodeError(code, message), 'utf8')));
    flush();
    closed = true;
    backlog.length = 0;
    // The error frame must reach the peer before the connection goes: destroying at once can drop
    // it (over TLS it is still being encrypted and written). Destroyed once written, or soon.
    const timer = setTimeout(() => req.destroy(), FATAL_LINGER_MS);
    timer.unref();
    res.end(() => {
      clearTimeout(timer);
      req.destroy();
    });
  };
  const reply = (id: number, answer: CallAnswer): void => {
    callsRunning--;
    if (!closed) send(encodeReply(id, answer.status, answer.body));
    finishIfDone();
  };

  const onMessages = (payload: Buffer): void => {
    const received = receivedMessages(payload, ctx.nodeId);
    if (!received.ok) {
      fatal(received.code, received.message);
      return;
    }
    const messages = received.messages;
    const foreign = foreignMessage(messages, ctx.sender);
    if (foreign !== undefined) {
      fatal('forbidden', `a message from ${JSON.stringify(foreign.from)} arrived on a stream opened by ${JSON.stringify(ctx.sender)}`);
      return;
    }
    let result: void | Promise<void>;
    try {
      result = ctx.handlers.onMessages(messages);
    } catch (error) {
      fatal('internal', errorText(error));
      return;
    }
    if (result instanceof Promise) {
      busy = true;
      req.pause();
      result.then(
        () => {
          busy = false;
          if (closed) return;
          req.resume();
          drain();
        },
        (error: unknown) => {
          busy = false;
          fatal('internal', errorText(error));
        },
      );
    }
  };

  const onCall = (payload: Buffer): void => {
    let call: ReturnType<typeof decodeCall>;
    try {
      call = decodeCall(payload);
    } catch (error) {
      fatal('bad_request', `malformed call frame: ${errorText(error)}`);
      return;
    }
    callsRunning++;
    callsHandled++;
    if (awaitingAck && (call.kind === 'proposeBytes' || call.kind === 'propose')) {
      reply(call.id, errorAnswer('no_leader', 'not proposed: this member is handing off leadership'));
      return;
    }
    let prepared: PreparedCall;
    if (call.kind === 'proposeBytes') {
      prepared = prepareProposeBytes(call.timeoutMs, call.command, ctx.handlers, ctx.maxTimeoutMs);
    } else {
      let json: unknown;
      if (call.kind !== 'status') {
        try {
          json = JSON.parse(call.json) as unknown;
        } catch (error) {
          reply(call.id, { status: 400, body: encodeError('bad_request', `unreadable request body: ${errorText(error)}`) });
          return;
        }
      }
      prepared = prepareCall(call.kind, json, ctx.handlers, ctx.maxTimeoutMs);
    }
    if ('malformed' in prepared) {
      reply(call.id, { status: 400, body: encodeError('bad_request', prepared.malformed) });
      return;
    }
    prepared.run(overrun).then((answer) => reply(call.id, answer));
  };

  const handle = (frame: Frame): void => {
    switch (frame.type) {
      case FRAME.messages:
        onMessages(frame.payload);
        return;
      case FRAME.call:
        onCall(frame.payload);
        return;
      case FRAME.ping:
        send(encodeFrame(FRAME.pong, null));
        return;
      case FRAME.fenceAck: {
        let acked: number;
        try {
          acked = decodeFenceAck(frame.payload);
        } catch (error) {
          fatal('bad_request', `malformed fence-ack frame: ${errorText(error)}`);
          return;
        }
        // An older fence's ack changes nothing: the newest one's is still on its way.
        if (acked === lastFence) awaitingAck = false;
        return;
      }
      default:
        fatal('bad_request', `unexpected frame type ${frame.type}`);
    }
  };
  const drain = (): void => {
    while (!busy && !closed && backlog.length > 0) handle(backlog.shift() as Frame);
    finishIfDone();
  };

  req.on('data', (chunk: Buffer) => {
    if (closed) return;
    if (!ctx.stillAuthorized()) {
      fatal('unauthorized', 'the cluster token this stream was opened with is no longer accepted');
      return;
    }
    let frames: Frame[];
    try {
      frames = reader.push(chunk);
    } catch (error) {
      fatal(error instanceof FrameTooLarge ? 'payload_too_large' : 'bad_request', errorText(error));
      return;
    }
    for (const frame of frames) backlog.push(frame);
    drain();
  });
  req.on('end', () => {
    ended = true;
    finishIfDone();
  });
  // The node fences every member stream when it hands leadership off: each propose it has not
  // handled yet is refused, so the member may take it to the new leader without awaiting the reply.
  const fence = (): void => {
    if (closed) return;
    lastFence = lastFence >= MAX_CALL_ID ? 1 : lastFence + 1;
    awaitingAck = true;
    send(encodeFence(lastFence, callsHandled));
    flush();
  };
  const unfence = fenceable ? ctx.handlers.onCallStream?.(fence) : undefined;
  req.on('close', () => {
    closed = true;
    backlog.length = 0;
    streamEnded?.();
    unfence?.();
  });
}
