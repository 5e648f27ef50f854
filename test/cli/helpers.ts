// Shared by the CLI tests: output capture, condition polling and a port check.
// (Ports for `raftlet local` come from reservePortRun in test/support/ports.ts: below the ephemeral
// range, so an outgoing connection's source port cannot take one, as it once did in CI.)
import { createServer } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

export class Capture {
  text = '';
  readonly isTTY: boolean;
  readonly columns: number | undefined;
  constructor(tty = false, columns?: number) {
    this.isTTY = tty;
    this.columns = columns;
  }
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

/** Polls `condition` every 25 ms until it holds; fails with `what` after boundMs. */
export async function waitFor(condition: () => boolean | Promise<boolean>, boundMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + boundMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${boundMs} ms waiting for ${what()}`);
    await delay(25);
  }
}

export async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}
