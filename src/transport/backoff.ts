// Exponential backoff with jitter for an unreachable peer. No timers: the link asks whether it is
// still backing off when the next message arrives, and heartbeats arrive often enough to retry.

export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
  /** A number in [0, 1): jitter spreads the retries of several leaders' links apart. */
  readonly random: () => number;
}

export class Backoff {
  private readonly options: BackoffOptions;
  private failures = 0;
  private retryAtMs = 0;

  constructor(options: BackoffOptions) {
    if (!(options.initialMs > 0) || !(options.maxMs >= options.initialMs)) {
      throw new RangeError(`backoff needs 0 < initialMs <= maxMs (got ${options.initialMs} and ${options.maxMs})`);
    }
    this.options = options;
  }

  get consecutiveFailures(): number {
    return this.failures;
  }

  isBackingOff(nowMs: number): boolean {
    return nowMs < this.retryAtMs;
  }

  /** Records a failure; returns how long to wait before the next attempt. The delay doubles per
   * consecutive failure up to maxMs, and is drawn from [half, all] of that ("equal jitter"). */
  fail(nowMs: number): number {
    const ceiling = Math.min(this.options.maxMs, this.options.initialMs * 2 ** Math.min(this.failures, 40));
    this.failures++;
    const delay = ceiling / 2 + (this.options.random() * ceiling) / 2;
    this.retryAtMs = nowMs + delay;
    return delay;
  }

  succeed(): void {
    this.failures = 0;
    this.retryAtMs = 0;
  }
}
