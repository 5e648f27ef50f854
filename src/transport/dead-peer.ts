// Telling a dead peer from a slow one: after a connection to a peer closed, one TCP connect says
// whether anything still listens there. Refused (ECONNREFUSED) means the process is gone (kill -9,
// OOM kill, crash: the kernel answers for it); a timeout or an open connection proves nothing and
// reports nothing, so a slow or cut-off peer is still waited out by Raft's election timeout.
import { connect, type LookupFunction } from 'node:net';

/** Resolves true only if a TCP connection to origin (http[s]://host:port) is refused. */
export function connectionRefused(origin: string, lookup: LookupFunction | undefined, timeoutMs: number): Promise<boolean> {
  const url = new URL(origin);
  const port = Number(url.port !== '' ? url.port : url.protocol === 'https:' ? 443 : 80);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: timeoutMs, ...(lookup ? { lookup } : {}) });
    const done = (refused: boolean): void => {
      socket.destroy();
      resolve(refused);
    };
    socket.once('connect', () => done(false));
    socket.once('timeout', () => done(false));
    socket.once('error', (error: NodeJS.ErrnoException) => done(error.code === 'ECONNREFUSED'));
  });
}
