// Client calls waiting until this node's state machine has applied an index: a write this follower
// forwarded to the leader (read-your-writes here, SPEC §4), or a read barrier. Under load a
// follower has one such wait per write in flight, so they are kept in index order and woken from
// the front as apply advances (no predicate per waiter to re-run on every change of state), and
// their deadlines share one timer (no timer per write).
import { Deadlines, type DeadlineTimer } from '../util/deadlines.ts';

/** What waits: it words the error when the deadline passes first. */
export type AppliedWaitKind = 'write' | 'read';

interface AppliedWait {
  readonly index: number;
  readonly kind: AppliedWaitKind;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

export class AppliedWaiters {
  /** Ascending by index. Waits nearly always come in index order, so most go at the end. */
  private readonly waits: AppliedWait[] = [];
  private readonly deadlines: Deadlines<AppliedWait>;
  private readonly timeoutError: (index: number, kind: AppliedWaitKind) => Error;

  /** timer: the node's clock (deadlines are on its now()); timeoutError: the rejection at a deadline. */
  constructor(timer: DeadlineTimer, timeoutError: (index: number, kind: AppliedWaitKind) => Error) {
    this.deadlines = new Deadlines<AppliedWait>((wait) => this.expire(wait), timer);
    this.timeoutError = timeoutError;
  }

  get size(): number {
    return this.waits.length;
  }

  /** Resolves once reached(i) is called with i >= index; rejects at deadlineMs. The caller has
   * checked that index is not applied yet. */
  wait(index: number, deadlineMs: number, kind: AppliedWaitKind): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const wait: AppliedWait = { index, kind, resolve, reject };
      let at = this.waits.length;
      while (at > 0 && this.waits[at - 1].index > index) at--;
      this.waits.splice(at, 0, wait);
      this.deadlines.add(wait, deadlineMs);
    });
  }

  /** The state machine has applied up to appliedIndex: wakes every wait at or below it. */
  reached(appliedIndex: number): void {
    let done = 0;
    while (done < this.waits.length && this.waits[done].index <= appliedIndex) done++;
    if (done === 0) return;
    for (const wait of this.waits.splice(0, done)) {
      this.deadlines.delete(wait);
      wait.resolve();
    }
  }

  rejectAll(err: Error): void {
    this.deadlines.clear();
    for (const wait of this.waits.splice(0)) wait.reject(err);
  }

  private expire(wait: AppliedWait): void {
    const at = this.waits.indexOf(wait);
    if (at < 0) return;
    this.waits.splice(at, 1);
    wait.reject(this.timeoutError(wait.index, wait.kind));
  }
}
