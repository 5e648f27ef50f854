// What /proc says of a process: its command line, which changes when the process replaces its
// program (as raftlet run does to size V8's heap). (Whether it catches a signal cannot be read
// there usefully: Node's boot installs a SIGTERM handler that ends the process the default way.)
import { readFileSync } from 'node:fs';

/** The process's arguments, its program first; null once it is gone. */
export function commandLine(pid: number): string[] | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((word) => word !== '');
  } catch {
    return null;
  }
}
