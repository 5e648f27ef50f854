// What the load generator and the failover measurement need from a cluster, whichever system runs
// it, so raftlet and etcd are driven by the very same code.
import type { Dispatcher } from 'undici';
import type { Counters } from './scrape.ts';

export type SystemName = 'raftlet' | 'etcd';

/** One HTTP request, as undici's Dispatcher.request takes it (without the origin). */
export interface RequestSpec {
  readonly method: Dispatcher.HttpMethod;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: Buffer;
}

/** What one member says about leadership; null fields when it does not know or does not answer. */
export interface MemberView {
  /** The member's own id in its system's terms (raftlet node id, etcd member id). */
  readonly self: string;
  /** The leader it knows, or null. */
  readonly leader: string | null;
  /** How far its log is applied (raftlet appliedIndex, etcd raftAppliedIndex). */
  readonly appliedIndex: number;
}

export interface BenchCluster {
  readonly system: SystemName;
  readonly size: number;
  /** Starts every member and resolves once one leader is agreed on and a write succeeds. */
  start(): Promise<void>;
  /** SIGTERM everyone (SIGKILL after a grace period) and remove the data. */
  stop(): Promise<void>;
  /** Base URL of member i's client API (http://127.0.0.1:port). */
  apiUrl(i: number): string;
  pid(i: number): number | null;
  /** Member i's id as MemberView reports ids. */
  memberId(i: number): string;
  /** Asks member i (through dispatcher when given, else undici's global one); null when it does
   * not answer within timeoutMs. */
  view(i: number, timeoutMs: number, dispatcher?: Dispatcher): Promise<MemberView | null>;
  /** A write of value to key, to be sent to any member. */
  write(key: string, value: Buffer): RequestSpec;
  /** True when a response to write() means the write was accepted. */
  accepted(statusCode: number, body: string): boolean;
  signal(i: number, signal: NodeJS.Signals): void;
  /** Resolves once member i's process has exited. */
  exited(i: number): Promise<void>;
  /** Starts member i again on the same data directory and ports. */
  restart(i: number): Promise<void>;
  /** Where member i writes its log, for error messages. */
  logFile(i: number): string;
  /** Disk and peer counters summed over the members (from their /metrics); null if unavailable. */
  counters(): Promise<Counters | null>;
}

/** Waits until every running member names the same leader and has applied what that leader had; returns the leader's index. */
export async function waitStable(cluster: BenchCluster, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no member answered';
  while (Date.now() < deadline) {
    const views = await Promise.all(Array.from({ length: cluster.size }, (_, i) => cluster.view(i, 1000)));
    const leader = views[0]?.leader ?? null;
    const leaderIndex = leader === null ? -1 : Array.from({ length: cluster.size }, (_, i) => cluster.memberId(i)).indexOf(leader);
    const agreed = leader !== null && views.every((v) => v !== null && v.leader === leader);
    if (agreed && leaderIndex >= 0) {
      const leaderApplied = (views[leaderIndex] as MemberView).appliedIndex;
      if (views.every((v) => v !== null && v.appliedIndex >= leaderApplied)) return leaderIndex;
      last = `members still catching up to index ${leaderApplied}`;
    } else {
      last = `leaders seen: ${views.map((v, i) => `${cluster.memberId(i)}→${v === null ? 'no answer' : (v.leader ?? 'none')}`).join(', ')}`;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${cluster.system} cluster did not settle on one leader within ${timeoutMs} ms (${last}); ` +
    `see ${Array.from({ length: cluster.size }, (_, i) => cluster.logFile(i)).join(', ')}`);
}
