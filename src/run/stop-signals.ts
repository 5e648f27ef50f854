// SIGTERM and SIGINT for `raftlet run`, caught from the first moments of the process on.
//
// Kubernetes sends SIGTERM whenever a pod goes, also while it is still starting (a rollout over a
// pod that crash-loops, a drain, the chaos of a failover drill). Node's default for the signal ends
// the process at once (exit 143), so the bin listens before it loads the rest of the program: a
// signal that comes during the start is kept, and the node stops the usual way (exit 0, SPEC §2)
// as soon as its start is done. Only the first signal is caught: a second one finds Node's default
// again and ends the process at once, the way out of a stop that hangs.
//
// One instance per process (`stopSignals`): the bin and the node runtime import this module from
// the same URL, so they share it.

export type StopSignal = 'SIGTERM' | 'SIGINT';

const SIGNALS: readonly StopSignal[] = ['SIGTERM', 'SIGINT'];

/** The part of `process` this needs (a test stands in an EventEmitter). */
export interface SignalSource {
  on(signal: StopSignal, listener: (signal: StopSignal) => void): unknown;
  removeListener(signal: StopSignal, listener: (signal: StopSignal) => void): unknown;
}

export class StopSignals {
  private first: StopSignal | null = null;
  private listening = false;
  private handler: ((signal: StopSignal) => void) | null = null;
  private readonly source: SignalSource;

  constructor(source: SignalSource = process) {
    this.source = source;
  }

  /**
   * Starts catching the signals; once is enough (later calls, and calls after a signal, do nothing).
   * `already`: a signal caught before this module was loaded (the bin's first catch); then none is
   * caught any more, as after any first signal.
   */
  listen(already: StopSignal | null = null): void {
    if (this.first === null) this.first = already;
    if (this.listening || this.first !== null) return;
    this.listening = true;
    for (const signal of SIGNALS) this.source.on(signal, this.onSignal);
  }

  /** The first signal caught, or null. */
  get received(): StopSignal | null {
    return this.first;
  }

  /** handler gets the first signal: at once if it has come already, else when it comes. */
  onStop(handler: (signal: StopSignal) => void): void {
    this.handler = handler;
    if (this.first !== null) handler(this.first);
  }

  /** Stops catching: from now on a signal has Node's default effect (the process ends). */
  close(): void {
    this.handler = null;
    if (!this.listening) return;
    this.listening = false;
    for (const signal of SIGNALS) this.source.removeListener(signal, this.onSignal);
  }

  private readonly onSignal = (signal: StopSignal): void => {
    if (this.first !== null) return;
    this.first = signal;
    const handler = this.handler;
    this.close();
    handler?.(signal);
  };
}

export const stopSignals = new StopSignals();
