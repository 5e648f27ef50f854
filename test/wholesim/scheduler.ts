// One seeded event queue for the whole simulated cluster: every timer, deadline, soon(), fsync,
// message and client step is a job on it, run in (virtual time, insertion) order, so a seed replays
// exactly. Each node sees time through its own SimClock, which may run fast or slow, and whose jobs
// stop while the node is paused (they run late, in order, when it resumes) or crashed (they vanish).
import type { Cancel, Clock } from '../../src/node/ports.ts';
import { EventHeap } from '../sim/heap.ts';

/** One node as the scheduler sees it, across restarts. */
export interface NodeSlot {
  readonly id: string;
  /** Bumped on every crash: jobs of an earlier incarnation never run. */
  incarnation: number;
  up: boolean;
  /** Virtual time until which the node's jobs wait (a SIGSTOP'd process). */
  pausedUntil: number;
}

interface Job {
  readonly time: number;
  readonly seq: number;
  readonly fn: () => void;
  readonly slot: NodeSlot | null;
  /** The incarnation the job belongs to, or -1 for "whichever incarnation is up when it runs". */
  readonly incarnation: number;
  /** A soon(): part of the turn that queued it, not an event of its own. */
  readonly follow: boolean;
  cancelled: boolean;
}

export class Scheduler {
  private readonly heap = new EventHeap<Job>();
  private seq = 0;
  /** Virtual milliseconds: the one true time the checker uses. */
  now = 0;
  /** The node the last job ran for (null: a job of the simulation itself, e.g. a client's). */
  lastSlot: NodeSlot | null = null;
  /** Whether the last job was a soon() continuation. */
  lastFollow = false;

  get pending(): number {
    return this.heap.size;
  }

  /** Runs fn at virtual time `time`. With a slot, only while that node (that incarnation, unless -1)
   * is up, and not before it is resumed. */
  at(time: number, fn: () => void, slot: NodeSlot | null = null, incarnation = -1, follow = false): Cancel {
    const job: Job = { time: Math.max(time, this.now), seq: this.seq++, fn, slot, incarnation, follow, cancelled: false };
    this.heap.push(job);
    return () => {
      job.cancelled = true;
    };
  }

  /** Pops and runs the next job; false if there is none before `until`. */
  runNext(until: number): boolean {
    for (;;) {
      const job = this.heap.pop();
      if (job === undefined) return false;
      if (job.time > until) {
        this.heap.push(job);
        this.now = until;
        return false;
      }
      this.now = job.time;
      if (job.cancelled) continue;
      const slot = job.slot;
      if (slot !== null) {
        if (!slot.up || (job.incarnation !== -1 && job.incarnation !== slot.incarnation)) continue;
        if (slot.pausedUntil > this.now) {
          // Paused: the job keeps its place in line behind the others held for this node.
          this.heap.push({ ...job, time: slot.pausedUntil, seq: this.seq++ });
          continue;
        }
      }
      this.lastSlot = slot;
      this.lastFollow = job.follow;
      job.fn();
      return true;
    }
  }
}

/** Clock.every() built from after(): the next run is scheduled before fn runs, so fn may cancel it. */
export function repeatEvery(clock: Pick<Clock, 'after'>, ms: number, fn: () => void): Cancel {
  let cancel: Cancel = () => undefined;
  let stopped = false;
  const fire = (): void => {
    if (stopped) return;
    cancel = clock.after(ms, fire);
    fn();
  };
  cancel = clock.after(ms, fire);
  return () => {
    stopped = true;
    cancel();
  };
}

/** A node's clock: virtual time scaled by `rate` (a clock that runs fast fires its timers early). */
export class SimClock implements Clock {
  private readonly scheduler: Scheduler;
  private readonly slot: NodeSlot;
  private readonly incarnation: number;
  private readonly rate: number;
  private readonly offset: number;

  constructor(scheduler: Scheduler, slot: NodeSlot, rate: number, offset: number) {
    this.scheduler = scheduler;
    this.slot = slot;
    this.incarnation = slot.incarnation;
    this.rate = rate;
    this.offset = offset;
  }

  now(): number {
    return this.offset + this.scheduler.now * this.rate;
  }

  /** Virtual time at which this clock will read `clockMs`. */
  virtualAt(clockMs: number): number {
    return (clockMs - this.offset) / this.rate;
  }

  after(ms: number, fn: () => void): Cancel {
    return this.scheduler.at(this.scheduler.now + Math.max(0, ms) / this.rate, fn, this.slot, this.incarnation);
  }

  every(ms: number, fn: () => void): Cancel {
    return repeatEvery(this, ms, fn);
  }

  soon(fn: () => void): void {
    // Behind everything already due now (group commit: work queued meanwhile shares the next batch).
    this.scheduler.at(this.scheduler.now, fn, this.slot, this.incarnation, true);
  }
}
