// Deadlines of many calls in flight under one timer. A timer per call costs a timer-list insert and
// removal per write, and under load almost none of them fires: one timer, armed for the earliest
// deadline, sweeps whatever has expired when it fires and re-arms for the next.

export class Deadlines<T> {
  private readonly items = new Map<T, number>();
  private readonly onExpired: (item: T) => void;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  private armedFor = Number.POSITIVE_INFINITY;

  /** now: monotonic milliseconds (performance.now by default); deadlines are on that clock. */
  constructor(onExpired: (item: T) => void, now: () => number = () => performance.now()) {
    this.onExpired = onExpired;
    this.now = now;
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
    if (this.timer !== null) clearTimeout(this.timer);
    this.armedFor = atMs;
    this.timer = setTimeout(() => this.sweep(), Math.max(0, Math.ceil(atMs - this.now())));
  }

  private disarm(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.armedFor = Number.POSITIVE_INFINITY;
  }

  private sweep(): void {
    this.timer = null;
    this.armedFor = Number.POSITIVE_INFINITY;
    const now = this.now();
    const expired: T[] = [];
    let next = Number.POSITIVE_INFINITY;
    for (const [item, atMs] of this.items) {
      if (atMs <= now) expired.push(item);
      else if (atMs < next) next = atMs;
    }
    for (const item of expired) this.items.delete(item);
    // Callbacks may add deadlines (add arms for them); the earliest of the rest is armed after.
    for (const item of expired) this.onExpired(item);
    if (next < this.armedFor && this.items.size > 0) this.arm(next);
  }
}
