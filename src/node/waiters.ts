// Conditions that client calls wait on (applied index reached, leader changed), re-checked whenever
// the node's state may have moved, each with a deadline so no caller waits forever.
interface Waiter {
  readonly predicate: () => boolean;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

export class DeadlineError extends Error {}

export class Waiters {
  private waiting = new Set<Waiter>();

  /** Resolves once predicate() holds (checked now and on every check()), rejects at deadlineMs. */
  until(predicate: () => boolean, deadlineMs: number): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        predicate,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiting.delete(waiter);
          reject(new DeadlineError('deadline passed'));
        }, Math.max(0, deadlineMs - Date.now())),
      };
      this.waiting.add(waiter);
    });
  }

  /** Runs fn at deadlineMs (a timeout for work tracked elsewhere). */
  deadline(deadlineMs: number, fn: () => void): void {
    setTimeout(fn, Math.max(0, deadlineMs - Date.now())).unref();
  }

  check(): void {
    for (const waiter of this.waiting) {
      if (!waiter.predicate()) continue;
      clearTimeout(waiter.timer);
      this.waiting.delete(waiter);
      waiter.resolve();
    }
  }

  rejectAll(err: Error): void {
    for (const waiter of this.waiting) {
      clearTimeout(waiter.timer);
      waiter.reject(err);
    }
    this.waiting.clear();
  }
}
