// Polls every node's GET /v1/status during a run, for the "one leader per term" check and for
// the nemesis, which aims some faults at the current leader.
import { Agent, request } from 'undici';
import type { Target } from './workload.ts';

export interface StatusSample {
  /** ms since the run started, when the answer arrived. */
  readonly at: number;
  readonly node: string;
  readonly role: string;
  readonly term: number;
  readonly leader: string | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
}

export const POLL_INTERVAL_MS = 200;

export class StatusMonitor {
  readonly samples: StatusSample[] = [];
  private readonly targets: readonly Target[];
  private readonly clock: () => number;
  private readonly agent = new Agent({ connectTimeout: 1_000, keepAliveTimeout: 2_000 });
  private readonly latest = new Map<string, StatusSample>();
  private stopped = false;
  private loops: Promise<void>[] = [];

  constructor(targets: readonly Target[], clock: () => number) {
    this.targets = targets;
    this.clock = clock;
  }

  start(): void {
    this.loops = this.targets.map((target) => this.poll(target));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
    await this.agent.destroy().catch(() => undefined);
  }

  /** One status, or null if the node does not answer in time. */
  async status(target: Target, timeoutMs = 1_000): Promise<StatusSample | null> {
    try {
      const response = await request(`${target.apiUrl}/v1/status`, { dispatcher: this.agent, signal: AbortSignal.timeout(timeoutMs) });
      const body = (await response.body.json()) as { id?: unknown; role?: unknown; term?: unknown; leader?: unknown; commitIndex?: unknown; appliedIndex?: unknown };
      if (response.statusCode !== 200 || typeof body.role !== 'string' || typeof body.term !== 'number') return null;
      const sample: StatusSample = {
        at: this.clock(),
        node: target.id,
        role: body.role,
        term: body.term,
        leader: typeof body.leader === 'string' ? body.leader : null,
        commitIndex: typeof body.commitIndex === 'number' ? body.commitIndex : -1,
        appliedIndex: typeof body.appliedIndex === 'number' ? body.appliedIndex : -1,
      };
      return sample;
    } catch {
      return null;
    }
  }

  private async poll(target: Target): Promise<void> {
    while (!this.stopped) {
      const started = this.clock();
      const sample = await this.status(target);
      if (sample !== null) {
        this.samples.push(sample);
        this.latest.set(target.id, sample);
      } else {
        this.latest.delete(target.id);
      }
      const wait = POLL_INTERVAL_MS - (this.clock() - started);
      if (wait > 0 && !this.stopped) await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  /** The leader the freshest samples agree on (highest term with a node saying it leads). */
  currentLeader(): string | null {
    let best: StatusSample | null = null;
    for (const sample of this.latest.values()) {
      if (sample.role === 'leader' && (best === null || sample.term > best.term)) best = sample;
    }
    return best?.node ?? null;
  }
}
