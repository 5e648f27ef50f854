// A background worker for the Kubernetes adapters: one round at a time, woken by kick() or by its
// own timer, so the Raft runtime hands over state and returns at once, and the API's latency,
// outages and throttling stay on this side.

export interface RoundResult {
  /** When to run again unprompted; null = only when kicked. */
  readonly nextInMs: number | null;
  /** Everything the current state asks for is done (used by flush()). */
  readonly settled: boolean;
}

export class BackgroundLoop {
  private readonly round: (signal: AbortSignal) => Promise<RoundResult>;
  private readonly onCrash: (err: unknown) => void;
  private readonly abort = new AbortController();
  private wakeUp: (() => void) | null = null;
  private kicked = false;
  private settled = true;
  private running: Promise<void> | null = null;
  private readonly settledWaiters = new Set<() => void>();

  constructor(round: (signal: AbortSignal) => Promise<RoundResult>, onCrash: (err: unknown) => void) {
    this.round = round;
    this.onCrash = onCrash;
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  start(): void {
    this.running ??= this.run();
  }

  /** Run a round as soon as the current one (if any) ends. */
  kick(): void {
    this.kicked = true;
    this.settled = false;
    this.wakeUp?.();
  }

  /** Aborts in-flight calls and waits for the loop to end. */
  async stop(): Promise<void> {
    this.abort.abort();
    this.wakeUp?.();
    await this.running;
    for (const resolve of this.settledWaiters) resolve();
  }

  /** Resolves true once the work asked for so far is done, false after timeoutMs. */
  whenSettled(timeoutMs: number): Promise<boolean> {
    if (this.settled && !this.kicked) return Promise.resolve(true);
    return new Promise((resolve) => {
      const finish = (ok: boolean): void => {
        clearTimeout(timer);
        this.settledWaiters.delete(onSettled);
        resolve(ok);
      };
      const onSettled = (): void => finish(true);
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.settledWaiters.add(onSettled);
    });
  }

  private async run(): Promise<void> {
    let nextInMs: number | null = null;
    while (!this.abort.signal.aborted) {
      if (!this.kicked) await this.wait(nextInMs);
      if (this.abort.signal.aborted) break;
      this.kicked = false;
      let result: RoundResult;
      try {
        result = await this.round(this.abort.signal);
      } catch (err) {
        this.onCrash(err);
        result = { nextInMs: 1000, settled: false };
      }
      nextInMs = result.nextInMs;
      this.settled = result.settled && !this.kicked;
      if (this.settled) for (const resolve of [...this.settledWaiters]) resolve();
    }
  }

  private wait(ms: number | null): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        if (timer !== null) clearTimeout(timer);
        this.wakeUp = null;
        resolve();
      };
      const timer = ms === null ? null : setTimeout(done, ms);
      // Only the runtime decides when the process ends; a pending retry does not hold it open.
      timer?.unref();
      this.wakeUp = done;
    });
  }
}
