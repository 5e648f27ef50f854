// One full garbage collection at the end of start-up, before the member takes part in the cluster.
//
// Starting fills about 14 MB of V8's old generation (the modules' code and objects, the WAL
// replayed), of which 2 to 3 MB are garbage. With V8's small first limit, that growth starts a full
// collection 1 to 1.5 s after the process started (--trace-gc: 14.3 -> 12.0 MB, a 4-10 ms pause of
// the main thread plus ~25 ms of marking alongside it). By then the member is voting and catching up:
// after a rolling restart or a crash, the member just restarted is the other voter of the next
// election and the one whose acknowledgement commits the new leader's first entry, and on the
// 3-member bench that collection landed inside SIGTERM hand-offs. Run here instead, while nobody
// waits on this member yet, it costs the same pause once and V8 sizes the next limit from what it
// kept (30% above it: v8-sizing.ts), which the rest of start-up does not reach.
//
// `gc` exists when V8 exposes it (--expose-gc, which bin/raftlet.js adds for `raftlet run`); run in
// any other way, nothing happens.
import { getHeapStatistics } from 'node:v8';

export interface StartupCollection {
  /** Bytes used in V8's heap before and after. */
  readonly usedBefore: number;
  readonly usedAfter: number;
  readonly pauseMs: number;
}

/** Runs `gc` once and says what it freed; null when there is no `gc` to run. */
export function collectStartupGarbage(gc: (() => void) | undefined = globalThis.gc): StartupCollection | null {
  if (typeof gc !== 'function') return null;
  const usedBefore = getHeapStatistics().used_heap_size;
  const started = performance.now();
  gc();
  const pauseMs = performance.now() - started;
  return { usedBefore, usedAfter: getHeapStatistics().used_heap_size, pauseMs };
}
