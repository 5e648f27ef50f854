// Deadlines of many requests in flight under one timer. A timer per request costs a timer-list
// insert and removal per write, and under load almost none of them fires: one timer, armed for the
// earliest deadline, sweeps whatever has expired when it fires and re-arms for the next. Used for
// forwarded calls and their handlers (transport) and for client writes waiting in a node.

/** The clock a Deadlines runs on: the node's Clock fits, so the simulators drive it too. */
export interface DeadlineTimer {
  now(): number;
  /** Runs fn after ms; the returned function cancels it. */
  after(ms: number, fn: () => void): () => void;
}

/** performance.now() and a plain (ref'd) setTimeout. */
const monotonicTimer: DeadlineTimer = {
  now: () => performance.now(),
  after(ms, fn) {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
};

export class Deadlines<T> {
  private readonly items = new Map<T, number>();
  private readonly onExpired: (item: T) => void;
  private readonly timer: DeadlineTimer;
  private cancelTimer: (() => void) | null = null;
  private armedFor = Number.POSITIVE_INFINITY;

  /** Deadlines are on timer.now()'s clock (performance.now by default). */
  constructor(onExpired: (item: T) => void, timer: DeadlineTimer = monotonicTimer) {
    this.onExpired = onExpired;
    this.timer = timer;
  }

  get size(): number {
    return this.items.size;
  }

  /** onExpired(item) runs once atMs has passed, unless delete(item) comes first. */
  add(item: T, atMs: number): void {
    this.items.set(item, atMs);
    if (atMs < this.armedFor) this.arm(atMs);
  }

  delete(item: T): void {
    if (!this.items.delete(item)) return;
    if (this.items.size === 0) this.disarm();
  }

  /** Forgets every deadline without running any. */
  clear(): void {
    this.items.clear();
    this.disarm();
  }

  private arm(atMs: number): void {
    this.cancelTimer?.();
    this.armedFor = atMs;
    this.cancelTimer = this.timer.after(Math.max(0, Math.ceil(atMs - this.timer.now())), () => this.sweep());
  }

  private disarm(): void {
    this.cancelTimer?.();
    this.cancelTimer = null;
    this.armedFor = Number.POSITIVE_INFINITY;
  }

  private sweep(): void {
    this.cancelTimer = null;
    this.armedFor = Number.POSITIVE_INFINITY;
    const now = this.timer.now();
    const expired: Array<[T, number]> = [];
    let next = Number.POSITIVE_INFINITY;
    for (const entry of this.items) {
      if (entry[1] <= now) expired.push(entry);
      else if (entry[1] < next) next = entry[1];
    }
    for (const [item] of expired) this.items.delete(item);
    // Earliest deadline first, whatever the order of adding. Callbacks may add deadlines (add arms
    // for them); the earliest of the rest is armed after.
    expired.sort((a, b) => a[1] - b[1]);
    for (const [item] of expired) this.onExpired(item);
    if (next < this.armedFor && this.items.size > 0) this.arm(next);
  }
}
