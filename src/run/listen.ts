// Binding, draining and closing the node's HTTP servers, with a bind failure named by its setting
// (SPEC §2: a busy port is a configuration error, exit 2).
import type { Server } from 'node:http';
import { http } from '../util/http.ts';

export class ListenError extends Error {}

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export function listenError(err: unknown, setting: string, { host, port }: ListenAddress): Error {
  const code = (err as { code?: string } | null)?.code;
  if (code === 'EADDRINUSE') return new ListenError(`${setting} ${host}:${port} is already in use`);
  if (code === 'EADDRNOTAVAIL' || code === 'EACCES') return new ListenError(`${setting} ${host}:${port} cannot be bound (${code})`);
  return err instanceof Error ? err : new Error(String(err));
}

/** Binds and releases each address; the first that cannot be bound, as a ListenError. */
export async function firstUnbindable(addresses: readonly (readonly [string, ListenAddress])[]): Promise<ListenError | null> {
  for (const [setting, address] of addresses) {
    if (address.port === 0) continue;
    try {
      await closeServer(await listen(http.createServer(), address, setting));
    } catch (err) {
      if (err instanceof ListenError) return err;
      throw err;
    }
  }
  return null;
}

export function listen(server: Server, address: ListenAddress, setting: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(listenError(err, setting, address)));
    server.listen(address.port, address.host, () => resolve(server));
  });
}

/** Stops accepting connections, lets requests in flight finish for up to graceMs, then closes. */
export async function drainServer(server: Server | null, graceMs: number): Promise<void> {
  if (!server || !server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
  await Promise.race([closed, grace]);
  clearTimeout(timer);
  server.closeAllConnections();
}

export function closeServer(server: Server | null): Promise<void> {
  if (!server || !server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
