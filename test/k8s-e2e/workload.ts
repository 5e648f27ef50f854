// What runs beside a scenario: a writer that remembers which writes were acknowledged, and a
// monitor that polls every live pod's /v1/status to catch two leaders in one term.
import { setTimeout as delay } from 'node:timers/promises';
import type { PodCluster } from './harness.ts';

/** Keys sort by number and 1000 of them share a list prefix (GET /v1/kv has no cursor, limit ≤ 1000). */
export const writeKey = (n: number): string => `w-${String(n).padStart(7, '0')}`;

export class WriteLoop {
  /** Acknowledged (200) writes: key → value. */
  readonly acked = new Map<string, string>();
  /** Non-200 answers and transport errors, by `<status>@<pod>` (status 0 = no answer). */
  readonly failures = new Map<string, number>();
  attempts = 0;
  private readonly cluster: PodCluster;
  private readonly targets: () => readonly number[];
  private running = false;
  private loop: Promise<void> | null = null;

  /** `targets` is asked before every write: the pods to send writes to, round robin. */
  constructor(cluster: PodCluster, targets: () => readonly number[]) {
    this.cluster = cluster;
    this.targets = targets;
  }

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  private async run(): Promise<void> {
    for (let n = 0; this.running; n++) {
      const targets = this.targets();
      const target = targets[n % Math.max(1, targets.length)];
      if (target === undefined) {
        await delay(50);
        continue;
      }
      const key = writeKey(n);
      const value = `value-${n}-${target}`;
      this.attempts += 1;
      let status = 0;
      try {
        status = (await this.cluster.put(target, key, value, 8_000)).status;
      } catch {
        status = 0;
      }
      if (status === 200) this.acked.set(key, value);
      else {
        const what = `${status}@raftlet-${target}`;
        this.failures.set(what, (this.failures.get(what) ?? 0) + 1);
        await delay(20);
      }
    }
  }

  /** Acknowledged writes whose value a linearizable list on `ordinal` does not show. */
  async lost(ordinal: number): Promise<string[]> {
    const seen = new Map<string, string>();
    const prefixes = new Set([...this.acked.keys()].map((k) => k.slice(0, 6)));
    for (const prefix of prefixes) {
      const answer = await this.cluster.http(`${this.cluster.spec(ordinal).apiUrl}/v1/kv?prefix=${prefix}&limit=1000`, 'GET', { timeoutMs: 10_000 });
      if (answer.status !== 200) throw new Error(`GET /v1/kv?prefix=${prefix} on ${this.cluster.spec(ordinal).id} answered ${answer.status}: ${answer.text}`);
      const body = JSON.parse(answer.text) as { items: { key: string; value: string }[] };
      for (const item of body.items) seen.set(item.key, item.value);
    }
    return [...this.acked].filter(([key, value]) => seen.get(key) !== value).map(([key, value]) => `${key}=${value} (read ${seen.get(key) ?? 'nothing'})`);
  }
}

export class LeaderMonitor {
  /** term → ids that said "I am the leader" in that term. */
  readonly selfClaims = new Map<number, Set<string>>();
  /** term → leader ids any pod reported for that term. */
  readonly reported = new Map<number, Set<string>>();
  rounds = 0;
  private readonly cluster: PodCluster;
  private running = false;
  private loop: Promise<void> | null = null;

  constructor(cluster: PodCluster) {
    this.cluster = cluster;
  }

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  private async run(): Promise<void> {
    while (this.running) {
      await Promise.all(
        this.cluster.live().map(async (ordinal) => {
          const s = await this.cluster.tryStatus(ordinal, 1_000);
          if (s === null) return;
          if (s.role === 'leader') add(this.selfClaims, s.term, s.id);
          if (s.leader !== null) add(this.reported, s.term, s.leader);
        }),
      );
      this.rounds += 1;
      await delay(100);
    }
  }

  /** Terms in which more than one leader was seen; [] when Election Safety held. */
  violations(): string[] {
    const problems: string[] = [];
    for (const [what, map] of [['claimed leadership', this.selfClaims], ['were reported as leader', this.reported]] as const) {
      for (const [term, ids] of map) if (ids.size > 1) problems.push(`term ${term}: ${[...ids].join(' and ')} ${what}`);
    }
    return problems;
  }

  /** term: leader, in term order, for the report. */
  summary(): string {
    return [...this.reported]
      .sort(([a], [b]) => a - b)
      .map(([term, ids]) => `${term}:${[...ids].join('+')}`)
      .join(' ');
  }
}

function add(map: Map<number, Set<string>>, term: number, id: string): void {
  const ids = map.get(term) ?? new Set<string>();
  ids.add(id);
  map.set(term, ids);
}
