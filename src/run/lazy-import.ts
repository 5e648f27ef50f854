// `raftlet run` compiles its code when it is loaded (--no-lazy, src/cli/v8-sizing.ts), so that a
// member taking over leadership does not first compile the code of a leader. The Kubernetes client
// library is the exception: compiled eagerly, its generated API code took 6.6 MB more bytecode and
// some 30 MB more RSS at import (node --no-lazy, @kubernetes/client-node 2.0), for a member that
// calls a handful of its functions. V8 reads the flag whenever it compiles, so it is turned off for
// the length of that import and on again after it: what else compiles meanwhile is compiled lazily,
// which is only slower on its first call.
import { setFlagsFromString } from 'node:v8';

/** Whether the process was started with --no-lazy on its command line, as the sizing plan puts it
 * (NODE_OPTIONS is not read): of --lazy and --no-lazy, the last one counts. */
export function compilesEagerly(execArgv: readonly string[]): boolean {
  return execArgv.filter((flag) => flag === '--lazy' || flag === '--no-lazy').at(-1) === '--no-lazy';
}

/** Runs load (a dynamic import) with lazy compilation, then restores eager compilation. */
export async function importLazilyCompiled<T>(load: () => Promise<T>, execArgv: readonly string[] = process.execArgv): Promise<T> {
  if (!compilesEagerly(execArgv)) return load();
  setFlagsFromString('--lazy');
  try {
    return await load();
  } finally {
    setFlagsFromString('--no-lazy');
  }
}
