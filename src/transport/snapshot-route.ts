// GET /raft/v1/snapshot: a consistent snapshot of the cluster's state over the peer port, for
// `raftlet snapshot save --peer` (a backup job needs the cluster token, not the client API, which
// listens on localhost only). The same handler serves GET /v1/snapshot on the client API. Framework-
// free (node:http types), so any server can mount it; the bytes come from the runtime.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ClientError, clientErrorStatus } from '../api/ops.ts';
import { ROUTE_PREFIX } from './protocol.ts';
import { steadyNow } from '../util/steady-clock.ts';

export const SNAPSHOT_ROUTE = `${ROUTE_PREFIX}/snapshot`;

/** A route a server mounts after authentication and the cluster check. */
export interface PeerRoute {
  readonly method: 'GET';
  readonly path: string;
  handle(req: IncomingMessage, res: ServerResponse): void;
}

export interface SnapshotSource {
  /** The snapshot file's bytes; rejects with ClientError (no_leader, timeout, ...). */
  take(deadlineMs: number): Promise<Uint8Array>;
  readonly contentType: string;
  /** How long a request may wait for the read barrier (RAFTLET_REQUEST_TIMEOUT_MS). */
  readonly timeoutMs: number;
}

export function serveSnapshot(res: ServerResponse, source: SnapshotSource): void {
  source.take(steadyNow() + source.timeoutMs).then(
    (bytes) => {
      if (res.headersSent) return;
      res.writeHead(200, {
        'content-type': source.contentType,
        'content-length': String(bytes.byteLength),
        'content-disposition': 'attachment; filename="raftlet.snap"',
        'cache-control': 'no-store',
      });
      res.end(bytes);
    },
    (err: unknown) => {
      if (res.headersSent) return;
      const known = err instanceof ClientError;
      const code = known ? err.code : 'internal';
      const status = known ? clientErrorStatus(err.code) : 500;
      const message = err instanceof Error ? err.message : String(err);
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify({ error: { code, message } }));
    },
  );
}

export function snapshotPeerRoute(source: SnapshotSource): PeerRoute {
  return { method: 'GET', path: SNAPSHOT_ROUTE, handle: (_req, res) => serveSnapshot(res, source) };
}
