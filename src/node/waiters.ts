// Conditions that client calls wait on (applied index reached, leader changed), re-checked whenever
// the node's state may have moved, each with a deadline so no caller waits forever.
import type { Cancel, Clock } from './ports.ts';

interface Waiter {
  readonly predicate: () => boolean;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
  readonly cancel: Cancel;
}

export class DeadlineError extends Error {}

export class Waiters {
  private waiting = new Set<Waiter>();
  private readonly clock: Clock;

  constructor(clock: Clock) {
    this.clock = clock;
  }

  /** Resolves once predicate() holds (checked now and on every check()), rejects at deadlineMs. */
  until(predicate: () => boolean, deadlineMs: number): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        predicate,
        resolve,
        reject,
        cancel: this.clock.after(deadlineMs - this.clock.now(), () => {
          this.waiting.delete(waiter);
          reject(new DeadlineError('deadline passed'));
        }),
      };
      this.waiting.add(waiter);
    });
  }

  /** Runs fn at deadlineMs (a timeout for work tracked elsewhere), unless cancelled first. */
  deadline(deadlineMs: number, fn: () => void): Cancel {
    return this.clock.after(deadlineMs - this.clock.now(), fn);
  }

  check(): void {
    for (const waiter of this.waiting) {
      if (!waiter.predicate()) continue;
      waiter.cancel();
      this.waiting.delete(waiter);
      waiter.resolve();
    }
  }

  rejectAll(err: Error): void {
    for (const waiter of this.waiting) {
      waiter.cancel();
      waiter.reject(err);
    }
    this.waiting.clear();
  }
}
