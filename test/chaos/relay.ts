// A TCP relay that holds bytes for a while: network delay without tc netem (which this kernel
// lacks). It runs inside a node's namespace in front of the node's peer port, so peers reach the
// node through it and each connection's remote address says which peer it is; the delay for that
// peer applies to both directions of its connections, to bytes already in flight as well as new
// ones, and it can change while connections are open. Order is kept: a chunk never overtakes an
// earlier one, even when the delay shrinks.
import { createConnection, createServer, type Server, type Socket } from 'node:net';

/** Past this many bytes held for one direction, stop reading from the sender (TCP back-pressure). */
const HIGH_WATER_BYTES = 8 * 1024 * 1024;

export interface RelayOptions {
  readonly listenHost: string;
  readonly listenPort: number;
  readonly targetHost: string;
  readonly targetPort: number;
}

interface Held {
  readonly at: number;
  /** null = the sender ended its side. */
  readonly chunk: Buffer | null;
}

/** One direction of one connection. */
class DelayedPipe {
  private readonly held: Held[] = [];
  private heldBytes = 0;
  private lastAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly from: Socket;
  private readonly to: Socket;
  private readonly delayMs: () => number;

  constructor(from: Socket, to: Socket, delayMs: () => number) {
    this.from = from;
    this.to = to;
    this.delayMs = delayMs;
    from.on('data', (chunk: Buffer) => this.hold(chunk));
    from.on('end', () => this.hold(null));
    to.on('drain', () => this.maybeResume());
  }

  private hold(chunk: Buffer | null): void {
    const at = Math.max(performance.now() + Math.max(0, this.delayMs()), this.lastAt);
    this.lastAt = at;
    this.held.push({ at, chunk });
    if (chunk !== null) this.heldBytes += chunk.byteLength;
    if (this.heldBytes > HIGH_WATER_BYTES) this.from.pause();
    this.release();
  }

  private release(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const now = performance.now();
    while (this.held.length > 0 && this.held[0].at <= now) {
      const { chunk } = this.held.shift() as Held;
      if (this.to.destroyed) return;
      if (chunk === null) {
        this.to.end();
      } else {
        this.heldBytes -= chunk.byteLength;
        if (!this.to.write(chunk)) this.from.pause();
      }
    }
    this.maybeResume();
    if (this.held.length > 0) this.timer = setTimeout(() => this.release(), Math.max(1, Math.ceil(this.held[0].at - now)));
  }

  private maybeResume(): void {
    if (this.heldBytes <= HIGH_WATER_BYTES && !this.to.writableNeedDrain && this.from.isPaused()) this.from.resume();
  }

  get bytesHeld(): number {
    return this.heldBytes;
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.held.length = 0;
  }
}

export class DelayRelay {
  private readonly options: RelayOptions;
  private readonly server: Server;
  private readonly delays = new Map<string, number>();
  private readonly sockets = new Set<Socket>();
  private readonly pipes = new Set<DelayedPipe>();

  constructor(options: RelayOptions) {
    this.options = options;
    this.server = createServer({ allowHalfOpen: true }, (client) => this.accept(client));
  }

  async start(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.listenPort, this.options.listenHost, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const address = this.server.address();
    return typeof address === 'object' && address !== null ? address.port : this.options.listenPort;
  }

  /** Delay in ms per remote address; addresses not named get none. Applies at once. */
  setDelays(delays: Readonly<Record<string, number>>): void {
    this.delays.clear();
    for (const [addr, ms] of Object.entries(delays)) if (ms > 0) this.delays.set(normalise(addr), ms);
  }

  /** Bytes received and not yet passed on, over every connection. */
  get bytesHeld(): number {
    let total = 0;
    for (const pipe of this.pipes) total += pipe.bytesHeld;
    return total;
  }

  private delayFor(addr: string | undefined): number {
    return addr === undefined ? 0 : this.delays.get(normalise(addr)) ?? 0;
  }

  private accept(client: Socket): void {
    const remote = client.remoteAddress;
    const upstream = createConnection({ host: this.options.targetHost, port: this.options.targetPort, allowHalfOpen: true });
    this.sockets.add(client);
    this.sockets.add(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const delay = (): number => this.delayFor(remote);
    const pipes = [new DelayedPipe(client, upstream, delay), new DelayedPipe(upstream, client, delay)];
    for (const pipe of pipes) this.pipes.add(pipe);
    const teardown = (): void => {
      for (const pipe of pipes) {
        pipe.stop();
        this.pipes.delete(pipe);
      }
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    // An error (a reset, a refused connect) ends both sides at once, like a broken link. A clean
    // close of one side does not: bytes it sent may still be held for the other, followed by its
    // end, which closes the other side in turn.
    let closed = 0;
    for (const socket of [client, upstream]) {
      socket.on('error', teardown);
      socket.on('close', () => {
        if (++closed === 2) teardown();
      });
    }
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }
}

function normalise(addr: string): string {
  return addr.startsWith('::ffff:') ? addr.slice(7) : addr;
}
