// Concurrent writers for durability checks: each writer overwrites its own small set of keys with
// values that name the writer and a sequence number, one request at a time, through whichever
// nodes are live. Every attempt and its answer is recorded, so the final state can be judged:
// - a key holds the value of its last acknowledged (200) write, or of a later attempted one whose
//   outcome is unknown (a 504, a connection cut by kill -9, a client timeout);
// - a write answered 503 no_leader was certainly not proposed (SPEC §4), so its value never shows.
import { setTimeout as delay } from 'node:timers/promises';
import type { Cluster } from '../support/cluster.ts';

export interface Attempt {
  readonly writer: number;
  readonly seq: number;
  readonly key: string;
  readonly value: string;
  readonly node: number;
  /** 'ok' = 200; 'refused' = 503 no_leader (certainly not proposed); 'unknown' = anything else. */
  outcome: 'pending' | 'ok' | 'refused' | 'unknown';
  detail: string;
}

export interface WorkloadOptions {
  readonly writers?: number;
  readonly keysPerWriter?: number;
  /** Every key starts with it; default 'w'. */
  readonly prefix?: string;
  /** Client-side bound of each request. */
  readonly requestTimeoutMs?: number;
  /** Nodes a writer may use; default every live node of the cluster, decided per request. */
  readonly targets?: () => readonly number[];
}

export class Workload {
  readonly attempts: Attempt[] = [];
  private readonly cluster: Cluster;
  private readonly options: WorkloadOptions;
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(cluster: Cluster, options: WorkloadOptions = {}) {
    this.cluster = cluster;
    this.options = options;
  }

  get prefix(): string {
    return this.options.prefix ?? 'w';
  }

  start(): void {
    if (this.running) throw new Error('the workload already runs');
    this.running = true;
    const writers = this.options.writers ?? 4;
    this.loops = Array.from({ length: writers }, (_, writer) => this.writerLoop(writer));
  }

  /** Stops issuing writes and waits for the ones in flight to end. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  acknowledged(): Attempt[] {
    return this.attempts.filter((a) => a.outcome === 'ok');
  }

  counts(): Record<Attempt['outcome'], number> {
    const counts = { pending: 0, ok: 0, refused: 0, unknown: 0 };
    for (const a of this.attempts) counts[a.outcome]++;
    return counts;
  }

  private async writerLoop(writer: number): Promise<void> {
    const keys = this.options.keysPerWriter ?? 8;
    let turn = writer;
    for (let seq = 1; this.running; seq++) {
      const targets = this.options.targets?.() ?? this.cluster.live();
      if (targets.length === 0) {
        await delay(20); // pacing while every node is down; not a wait for a condition
        continue;
      }
      const node = targets[turn++ % targets.length];
      const key = `${this.prefix}${writer}-k${seq % keys}`;
      const attempt: Attempt = { writer, seq, key, value: `${this.prefix}${writer}-s${seq}`, node, outcome: 'pending', detail: '' };
      this.attempts.push(attempt);
      try {
        const answer = await this.cluster.put(node, key, attempt.value, { timeoutMs: this.options.requestTimeoutMs ?? 15_000 });
        attempt.detail = `${answer.status} ${answer.errorCode ?? answer.text.slice(0, 80)}`;
        attempt.outcome = answer.status === 200 ? 'ok' : answer.status === 503 && answer.errorCode === 'no_leader' ? 'refused' : 'unknown';
      } catch (error) {
        attempt.outcome = 'unknown';
        attempt.detail = error instanceof Error ? error.message : String(error);
        await delay(20); // the node is gone or paused: do not spin on a refused connection
      }
    }
  }

  /**
   * Judges a final key-value state (values as text) against the record; returns the problems, an
   * empty list when every acknowledged write survived.
   */
  check(state: ReadonlyMap<string, { readonly value: string }>): string[] {
    const problems: string[] = [];
    const byKey = new Map<string, Attempt[]>();
    for (const a of this.attempts) {
      const list = byKey.get(a.key) ?? [];
      list.push(a);
      byKey.set(a.key, list);
    }
    for (const [key, attempts] of byKey) {
      const lastAck = attempts.filter((a) => a.outcome === 'ok').at(-1);
      const found = state.get(key)?.value;
      const describe = (a: Attempt | undefined): string => (a === undefined ? 'none' : `${a.value} via node ${a.node} (${a.outcome}: ${a.detail})`);
      if (found === undefined) {
        if (lastAck !== undefined) problems.push(`${key} is missing; last acknowledged write ${describe(lastAck)}`);
        continue;
      }
      const writtenAs = attempts.find((a) => a.value === found);
      if (writtenAs === undefined) {
        problems.push(`${key} holds ${JSON.stringify(found)}, which no writer wrote`);
        continue;
      }
      if (writtenAs.outcome === 'refused') {
        problems.push(`${key} holds ${describe(writtenAs)}: a write refused with 503 no_leader was applied after all`);
      }
      if (lastAck !== undefined && writtenAs.seq < lastAck.seq) {
        problems.push(`${key} holds ${describe(writtenAs)}, older than the acknowledged ${describe(lastAck)}: an acknowledged write was lost`);
      }
    }
    for (const key of state.keys()) {
      if (key.startsWith(this.prefix) && !byKey.has(key)) problems.push(`${key} exists but was never written`);
    }
    return problems;
  }
}
