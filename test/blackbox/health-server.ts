// A stand-in for an application's health endpoint (RAFTLET_APP_HEALTH_URL), one per node, answering
// 200 or 503 as the test sets it and counting the probes, so tests can wait for probes instead of
// sleeping.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitUntil } from '../support/cluster.ts';

/** The application's health endpoint of one node, as the test sets it. */
export class HealthServer {
  healthy = true;
  probes = 0;
  private server: Server | null = null;
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((_req, res) => {
      this.probes++;
      res.writeHead(this.healthy ? 200 : 503, { 'content-type': 'text/plain' }).end(this.healthy ? 'ok' : 'not ready');
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', () => resolve()));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (server === null) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Resolves once `count` more probes arrived (the node has seen the current answer that often). */
  async probed(count: number, what: string): Promise<void> {
    const target = this.probes + count;
    await waitUntil(what, () => this.probes >= target);
  }
}
