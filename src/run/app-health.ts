// The probe behind RAFTLET_APP_HEALTH_URL: GET the application's health endpoint every interval
// (each check bounded by the interval too), 2xx = a pass. AppHealthTracker (src/node) turns the
// results into healthy / unhealthy with the threshold; the node does the rest.
import { AppHealthTracker } from '../node/app-health.ts';
import type { AppHealth } from '../raft/types.ts';
import { steadyNow } from '../util/steady-clock.ts';

export interface AppHealthProbeOptions {
  readonly url: string;
  readonly intervalMs: number;
  readonly threshold: number;
  readonly onHealth: (health: AppHealth) => void;
  readonly logger: { warn(obj: object, msg: string): void; debug(obj: object, msg: string): void };
}

/** Starts probing at once; the returned function stops it. */
export function startAppHealthProbe(opts: AppHealthProbeOptions): () => void {
  const tracker = new AppHealthTracker(true, opts.threshold);
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let lastProblem: string | null = null;
  opts.onHealth(tracker.health);

  const probe = async (): Promise<void> => {
    const started = steadyNow();
    let problem: string | null = null;
    try {
      const response = await fetch(opts.url, { signal: AbortSignal.timeout(opts.intervalMs), redirect: 'manual', headers: { 'user-agent': 'raftlet-app-health' } });
      await response.body?.cancel();
      if (response.status < 200 || response.status > 299) problem = `answered ${response.status}`;
    } catch (err) {
      problem = err instanceof Error ? (err.name === 'TimeoutError' ? `no answer within ${opts.intervalMs} ms` : err.message) : String(err);
    }
    if (stopped) return;
    if (problem !== lastProblem) {
      if (problem !== null) opts.logger.warn({ url: opts.url, problem }, `application health check failed: ${problem}`);
      else opts.logger.debug({ url: opts.url }, 'application health check passes');
      lastProblem = problem;
    }
    opts.onHealth(tracker.observe(problem === null));
    // Checks start an interval apart, however long one took.
    timer = setTimeout(run, Math.max(0, started + opts.intervalMs - steadyNow()));
    timer.unref();
  };
  const run = (): void => {
    probe().catch((err: unknown) => opts.logger.warn({ err }, 'application health probe stopped by an error'));
  };
  run();
  return () => {
    stopped = true;
    if (timer !== null) clearTimeout(timer);
  };
}
