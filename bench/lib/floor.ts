// The idle-memory floor (bench/floor-process.mjs): started beside the clusters with the flags a
// raftlet member gets, so the report can say how much of a member's idle VmRSS Node and the
// design's libraries take before raftlet's own code and state.
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeOptionsWords, planSizing, readMemoryLimit } from '../../src/cli/v8-sizing.ts';
import { memoryOf, spawnLogged, stopProcess, type Memory, type Spawned } from './procs.ts';

const FLOOR_PROCESS = fileURLToPath(new URL('../floor-process.mjs', import.meta.url));

export class MemoryFloor {
  private readonly process: Spawned;
  private readonly logFile: string;

  /** Starts the floor process in dir (its log goes there), with the sizing a member with
   * `nodeFlags` would plan for itself. */
  constructor(dir: string, nodeFlags: readonly string[]) {
    const plan = planSizing({
      limitBytes: readMemoryLimit(),
      totalMemoryBytes: totalmem(),
      userFlags: [...nodeFlags, ...nodeOptionsWords(process.env.NODE_OPTIONS)],
      env: process.env,
    });
    this.logFile = join(dir, 'memory-floor.log');
    this.process = spawnLogged('memory floor', process.execPath, [...nodeFlags, ...plan.flags, FLOOR_PROCESS],
      { ...process.env, ...plan.env }, this.logFile);
  }

  /** Its memory now, or null when it is not up (it has not said it listens, or it exited). */
  read(): Memory | null {
    if (!this.process.alive() || !readFileSync(this.logFile, 'utf8').includes('"listening"')) return null;
    return memoryOf(this.process.pid);
  }

  /** The end of its log, for an error message (the log goes with the cluster's temp dir). */
  logTail(): string {
    return readFileSync(this.logFile, 'utf8').trim().split('\n').slice(-5).join(' | ') || '(empty log)';
  }

  stop(): Promise<void> {
    return stopProcess(this.process, 5000);
  }
}
