// Connection limits of the peer port (issue 14), so that a flood of junk cannot starve Raft traffic:
// a cap on connections overall and per remote address, a deadline for a request's headers (also
// the TLS handshake), and an idle timeout. At the overall cap, the oldest connection that has not
// yet carried an authenticated request makes room for the new one: peers' long-lived streams are
// authenticated, so junk can only push out junk.
import type { Socket } from 'node:net';

export interface GuardLimits {
  readonly maxConnections: number;
  readonly maxConnectionsPerAddress: number;
  /** From accepting a connection (or finishing the previous response) to a request's headers. */
  readonly headersTimeoutMs: number;
}

export type GuardRefusal = 'too_many_connections' | 'too_many_connections_from_address' | 'headers_timeout' | 'evicted';

interface Entry {
  readonly socket: Socket;
  readonly address: string;
  trusted: boolean;
  /** A stream: its headers came long ago and it must never get a header deadline again. */
  streaming: boolean;
  headersTimer: NodeJS.Timeout | null;
}

const keyOf = (socket: Socket): string => `${socket.remoteAddress ?? '?'}|${socket.remotePort ?? '?'}`;

export class ConnectionGuard {
  private readonly limits: GuardLimits;
  private readonly onRefusal: (reason: GuardRefusal, remoteAddress: string) => void;
  /** Insertion order = age: the first untrusted entry is the oldest. */
  private readonly entries = new Map<string, Entry>();
  private readonly perAddress = new Map<string, number>();

  constructor(limits: GuardLimits, onRefusal: (reason: GuardRefusal, remoteAddress: string) => void) {
    this.limits = limits;
    this.onRefusal = onRefusal;
  }

  get connections(): number {
    return this.entries.size;
  }

  /** Takes a new TCP connection into account (before any TLS handshake or HTTP parsing), or
   * refuses it: then the socket is destroyed and false returned. */
  admit(socket: Socket): boolean {
    const address = socket.remoteAddress ?? '?';
    if ((this.perAddress.get(address) ?? 0) >= this.limits.maxConnectionsPerAddress) {
      this.onRefusal('too_many_connections_from_address', address);
      socket.destroy();
      return false;
    }
    if (this.entries.size >= this.limits.maxConnections && !this.evictOne()) {
      this.onRefusal('too_many_connections', address);
      socket.destroy();
      return false;
    }
    const entry: Entry = { socket, address, trusted: false, streaming: false, headersTimer: null };
    const key = keyOf(socket);
    this.entries.set(key, entry);
    this.perAddress.set(address, (this.perAddress.get(address) ?? 0) + 1);
    this.armHeaders(entry);
    socket.once('close', () => {
      this.clearHeaders(entry);
      if (this.entries.get(key) === entry) this.entries.delete(key);
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left <= 0) this.perAddress.delete(address);
      else this.perAddress.set(address, left);
    });
    return true;
  }

  private evictOne(): boolean {
    for (const entry of this.entries.values()) {
      if (entry.trusted) continue;
      this.onRefusal('evicted', entry.address);
      this.entries.delete(keyOf(entry.socket));
      entry.socket.destroy();
      return true;
    }
    return false;
  }

  private armHeaders(entry: Entry): void {
    this.clearHeaders(entry);
    entry.headersTimer = setTimeout(() => {
      entry.headersTimer = null;
      this.onRefusal('headers_timeout', entry.address);
      entry.socket.destroy();
    }, this.limits.headersTimeoutMs);
    entry.headersTimer.unref();
  }

  private clearHeaders(entry: Entry): void {
    if (entry.headersTimer !== null) clearTimeout(entry.headersTimer);
    entry.headersTimer = null;
  }

  /** A request's headers arrived on this socket. */
  gotHeaders(socket: Socket): void {
    const entry = this.entries.get(keyOf(socket));
    if (entry) this.clearHeaders(entry);
  }

  /** The socket carried an authenticated request: it is never evicted for junk. */
  trust(socket: Socket, streaming = false): void {
    const entry = this.entries.get(keyOf(socket));
    if (!entry) return;
    entry.trusted = true;
    entry.streaming = entry.streaming || streaming;
  }

  /** A response finished: the next request's headers are due within the deadline again. */
  awaitHeaders(socket: Socket): void {
    const entry = this.entries.get(keyOf(socket));
    if (entry && !entry.streaming && !socket.destroyed) this.armHeaders(entry);
  }

  destroyAll(): void {
    for (const entry of this.entries.values()) entry.socket.destroy();
  }

  close(): void {
    for (const entry of this.entries.values()) this.clearHeaders(entry);
  }
}

/** Counts refusals and lets through at most `burst` reports per interval; the first report after a
 * quiet spell says how many were suppressed before it. */
export class RateLimiter {
  private readonly burst: number;
  private readonly intervalMs: number;
  private windowStart = 0;
  private inWindow = 0;
  private suppressed = 0;

  constructor(burst: number, intervalMs: number) {
    this.burst = burst;
    this.intervalMs = intervalMs;
  }

  /** null = do not report; else how many were suppressed since the last report. */
  admit(nowMs: number): number | null {
    if (nowMs - this.windowStart >= this.intervalMs) {
      this.windowStart = nowMs;
      this.inWindow = 0;
    }
    if (this.inWindow >= this.burst) {
      this.suppressed++;
      return null;
    }
    this.inWindow++;
    const before = this.suppressed;
    this.suppressed = 0;
    return before;
  }
}

/** Bytes of request bodies being read at once, across connections: beyond the budget a new body
 * is refused (503) before it is read. */
export class BodyBudget {
  private readonly maxBytes: number;
  private used = 0;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  get inUse(): number {
    return this.used;
  }

  reserve(bytes: number): boolean {
    if (this.used + bytes > this.maxBytes) return false;
    this.used += bytes;
    return true;
  }

  release(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }
}
