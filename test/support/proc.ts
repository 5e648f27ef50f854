// What /proc says of a process: whether it has a handler for a signal yet, and its command line
// (which changes when the process replaces its program, as raftlet run does to size V8's heap).
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';

/** Whether the process has a handler for the signal now (its SigCgt mask); false once it is gone. */
export function catchesSignal(pid: number, signal: NodeJS.Signals): boolean {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return false;
  }
  const mask = /^SigCgt:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  if (mask === undefined) throw new Error(`/proc/${pid}/status has no SigCgt line`);
  return ((BigInt(`0x${mask}`) >> BigInt(constants.signals[signal] - 1)) & 1n) === 1n;
}

/** The process's arguments, its program first; null once it is gone. */
export function commandLine(pid: number): string[] | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((word) => word !== '');
  } catch {
    return null;
  }
}
