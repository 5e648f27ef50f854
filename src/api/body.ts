// Reads a request body into memory up to a limit. Past the limit it stops keeping bytes at once and
// rejects with 413; the answer then closes the connection, so the rest of an oversized upload is
// never buffered and need not even be received.
import type { IncomingMessage } from 'node:http';
import { ApiError } from './errors.ts';

export class ClientGoneError extends Error {
  constructor() {
    super('the client closed the connection before sending the whole body');
    this.name = 'ClientGoneError';
  }
}

function tooLarge(limit: number, what: string, declared?: number): ApiError {
  const size = declared === undefined ? 'more than that' : `${declared} bytes`;
  return new ApiError(413, 'payload_too_large', `${what} may be at most ${limit} bytes; this one is ${size}`, { Connection: 'close' });
}

export function readBody(req: IncomingMessage, limit: number, what: string): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined) {
    const length = Number(declared);
    // Node has already refused a malformed Content-Length; the number check is belt and braces.
    if (Number.isSafeInteger(length) && length > limit) return Promise.reject(tooLarge(limit, what, length));
  }
  if (req.readableEnded) return Promise.resolve(Buffer.alloc(0));
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onGone);
    };
    const onData = (chunk: Buffer): void => {
      received += chunk.byteLength;
      if (received > limit) {
        cleanup();
        chunks.length = 0;
        reject(tooLarge(limit, what));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, received));
    };
    const onGone = (): void => {
      cleanup();
      reject(new ClientGoneError());
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onGone);
    req.on('close', onGone);
  });
}
