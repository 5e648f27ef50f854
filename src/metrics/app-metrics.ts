// Metrics of the application's side (issue 15), in the node's registry: the application's health as
// RAFTLET_APP_HEALTH_URL shows it, leadership transfers by reason, and watches. Kept apart from
// RaftletMetrics so the two grow independently; every label value is a fixed enumeration.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { AppHealth } from '../raft/types.ts';

export type TransferReasonLabel = 'requested' | 'shutdown' | 'app_unhealthy';
const TRANSFER_REASONS: readonly TransferReasonLabel[] = ['requested', 'shutdown', 'app_unhealthy'];
export type WatchKindLabel = 'stream' | 'blocking';
export type WatchDropLabel = 'compacted' | 'slow_consumer' | 'shutdown';
const WATCH_DROPS: readonly WatchDropLabel[] = ['compacted', 'slow_consumer', 'shutdown'];

export class AppMetrics {
  readonly #appHealthy: Gauge;
  readonly #transfers: Counter;
  readonly #watchers: Gauge;
  readonly #eventsSent: Counter;
  readonly #dropped: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    this.#appHealthy = new Gauge({
      name: 'raftlet_app_healthy',
      help: "1 if the application beside this node passes its health check (RAFTLET_APP_HEALTH_URL), 0 if not; absent when not checked.",
      registers,
    });
    this.#transfers = new Counter({
      name: 'raftlet_leadership_transfers_total',
      help: 'Leadership hand-offs this node started as leader, by reason (requested, shutdown, app_unhealthy) and result (ok, failed).',
      labelNames: ['reason', 'result'],
      registers,
    });
    this.#watchers = new Gauge({
      name: 'raftlet_watchers',
      help: 'Watches open on this node: stream = GET /v1/watch, blocking = a blocking query (?index=).',
      labelNames: ['kind'],
      registers,
    });
    this.#eventsSent = new Counter({ name: 'raftlet_watch_events_sent_total', help: 'Change events sent to watch streams.', registers });
    this.#dropped = new Counter({
      name: 'raftlet_watchers_dropped_total',
      help: 'Watch streams this node ended, by reason: compacted (the history no longer reaches back), slow_consumer (too many changes waiting), shutdown.',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of TRANSFER_REASONS) for (const result of ['ok', 'failed']) this.#transfers.labels(reason, result).inc(0);
    for (const kind of ['stream', 'blocking'] as const) this.#watchers.labels(kind).set(0);
    for (const reason of WATCH_DROPS) this.#dropped.labels(reason).inc(0);
  }

  setAppHealth(health: AppHealth): void {
    if (health === 'unchecked') this.#appHealthy.reset();
    else this.#appHealthy.set(health === 'healthy' ? 1 : 0);
  }

  onLeadershipTransfer(reason: TransferReasonLabel, ok: boolean): void {
    this.#transfers.labels(reason, ok ? 'ok' : 'failed').inc();
  }

  setWatchers(kind: WatchKindLabel, count: number): void {
    this.#watchers.labels(kind).set(count);
  }

  onWatchEventsSent(count: number): void {
    this.#eventsSent.inc(count);
  }

  onWatchDropped(reason: WatchDropLabel): void {
    this.#dropped.labels(reason).inc();
  }
}
