// Connection limits of the peer port (issue 14), so that a flood of junk cannot starve Raft traffic:
// a cap on connections overall and per remote address, a deadline for a request's headers (also
// the TLS handshake), and an idle timeout. At the overall cap, the oldest connection that has not
// yet carried an authenticated request makes room for the new one: peers' long-lived streams are
// authenticated, so junk can only push out junk.
//
// New connections from an address that holds no authenticated connection are also paced: a burst,
// then a steady rate per address. A connection over the pace waits, paused (nothing read, so no
// TLS handshake and no HTTP parsing), until its turn or its header deadline. Refusing it instead
// would invite an immediate reconnect, and every accepted-then-closed connection costs the event
// loop; a waiting one costs a file descriptor. Peers open a stream and the odd one-shot request,
// well within the burst.
import type { Socket } from 'node:net';

export interface GuardLimits {
  readonly maxConnections: number;
  readonly maxConnectionsPerAddress: number;
  /** From accepting a connection (or finishing the previous response) to a request's headers. */
  readonly headersTimeoutMs: number;
  /** New connections an address without an authenticated connection may start at once, and then
   * per second; the rest wait their turn. */
  readonly admissionBurst: number;
  readonly admissionPerSecond: number;
}

export type GuardRefusal = 'too_many_connections' | 'too_many_connections_from_address' | 'headers_timeout' | 'evicted';

interface Entry {
  readonly socket: Socket;
  readonly address: string;
  trusted: boolean;
  /** A stream: its headers came long ago and it must never get a header deadline again. */
  streaming: boolean;
  headersTimer: NodeJS.Timeout | null;
  /** Called when the connection may proceed to TLS / HTTP; null once called. */
  start: ((socket: Socket) => void) | null;
}

interface AddressState {
  connections: number;
  trusted: number;
  /** Admission tokens (pacing) and when they were last refilled (ms). */
  tokens: number;
  refilledAt: number;
  /** Connections waiting for a token, oldest first. */
  readonly waiting: Entry[];
}

const keyOf = (socket: Socket): string => `${socket.remoteAddress ?? '?'}|${socket.remotePort ?? '?'}`;
const PACING_TICK_MS = 50;
// A waiting socket has no reader yet; an error on it must not be an uncaught one.
const ignoreError = (): void => undefined;

export class ConnectionGuard {
  private readonly limits: GuardLimits;
  private readonly onRefusal: (reason: GuardRefusal, remoteAddress: string) => void;
  /** Insertion order = age: the first untrusted entry is the oldest. */
  private readonly entries = new Map<string, Entry>();
  private readonly addresses = new Map<string, AddressState>();
  private readonly now: () => number;
  private pacing: NodeJS.Timeout | null = null;

  constructor(limits: GuardLimits, onRefusal: (reason: GuardRefusal, remoteAddress: string) => void, now: () => number = () => performance.now()) {
    this.limits = limits;
    this.onRefusal = onRefusal;
    this.now = now;
  }

  get connections(): number {
    return this.entries.size;
  }

  /** Connections waiting for their turn (pacing). */
  get waiting(): number {
    let count = 0;
    for (const state of this.addresses.values()) count += state.waiting.length;
    return count;
  }

  /**
   * Takes a new TCP connection into account, before any TLS handshake or HTTP parsing. Refused:
   * the socket is destroyed and false returned. Admitted: `start` is called with it, at once or
   * when its turn comes (the socket should be paused until then).
   */
  admit(socket: Socket, start: (socket: Socket) => void): boolean {
    const address = socket.remoteAddress ?? '?';
    if ((this.addresses.get(address)?.connections ?? 0) >= this.limits.maxConnectionsPerAddress) {
      this.onRefusal('too_many_connections_from_address', address);
      socket.destroy();
      return false;
    }
    if (this.entries.size >= this.limits.maxConnections && !this.evictOne()) {
      this.onRefusal('too_many_connections', address);
      socket.destroy();
      return false;
    }
    const state = this.addressState(address);
    const entry: Entry = { socket, address, trusted: false, streaming: false, headersTimer: null, start };
    const key = keyOf(socket);
    this.entries.set(key, entry);
    state.connections++;
    this.armHeaders(entry);
    socket.once('close', () => {
      this.clearHeaders(entry);
      if (this.entries.get(key) === entry) this.entries.delete(key);
      const waitingAt = state.waiting.indexOf(entry);
      if (waitingAt !== -1) state.waiting.splice(waitingAt, 1);
      state.connections--;
      if (entry.trusted) state.trusted--;
      if (state.connections <= 0 && state.waiting.length === 0) this.addresses.delete(address);
    });
    if (state.trusted > 0 || this.takeToken(state)) this.begin(entry);
    else {
      socket.on('error', ignoreError);
      state.waiting.push(entry);
      this.schedulePacing();
    }
    return true;
  }

  private addressState(address: string): AddressState {
    let state = this.addresses.get(address);
    if (state === undefined) {
      state = { connections: 0, trusted: 0, tokens: this.limits.admissionBurst, refilledAt: this.now(), waiting: [] };
      this.addresses.set(address, state);
    }
    return state;
  }

  private takeToken(state: AddressState): boolean {
    const now = this.now();
    state.tokens = Math.min(this.limits.admissionBurst, state.tokens + ((now - state.refilledAt) / 1000) * this.limits.admissionPerSecond);
    state.refilledAt = now;
    if (state.tokens < 1) return false;
    state.tokens--;
    return true;
  }

  private begin(entry: Entry): void {
    const start = entry.start;
    entry.start = null;
    entry.socket.off('error', ignoreError);
    if (start !== null && !entry.socket.destroyed) start(entry.socket);
  }

  private schedulePacing(): void {
    if (this.pacing !== null) return;
    this.pacing = setInterval(() => this.releaseWaiting(), PACING_TICK_MS);
    this.pacing.unref();
  }

  /** Lets waiting connections go as their addresses' tokens allow (all of them once the address
   * holds an authenticated connection). */
  private releaseWaiting(): void {
    let left = 0;
    for (const state of this.addresses.values()) {
      while (state.waiting.length > 0 && (state.trusted > 0 || this.takeToken(state))) this.begin(state.waiting.shift() as Entry);
      left += state.waiting.length;
    }
    if (left === 0 && this.pacing !== null) {
      clearInterval(this.pacing);
      this.pacing = null;
    }
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
    if (!entry.trusted) {
      entry.trusted = true;
      const state = this.addresses.get(entry.address);
      if (state !== undefined) state.trusted++;
    }
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
    if (this.pacing !== null) clearInterval(this.pacing);
    this.pacing = null;
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
