// A member that is stopping, its leadership handed over, has nothing left that anyone waits for
// (its in-flight client requests are answered once their entries apply, whoever leads). Where it
// shares CPUs with the members taking over (`raftlet local`, pods packed on one node), its
// shutdown work would compete with the new leader's election, first appends and fsyncs: it steps
// back to the lowest scheduling priority instead. Alone on its node this changes nothing.
import { readdirSync } from 'node:fs';
import { setPriority } from 'node:os';

/** The niceness of a process that should run only when nothing else wants the CPU. */
const LOWEST_PRIORITY = 19;

/** Lowers every thread of this process (on Linux, priority is per thread) to the lowest
 * priority; threads started later inherit it from their creator. Best effort, never throws. */
export function yieldCpu(): void {
  let threads: number[];
  try {
    threads = readdirSync('/proc/self/task').map(Number);
  } catch {
    threads = [0];
  }
  for (const tid of threads) {
    try {
      setPriority(tid, LOWEST_PRIORITY);
    } catch {
      // Gone already, or not allowed: the shutdown goes on at the priority it has.
    }
  }
}
