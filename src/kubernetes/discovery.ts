// Peer discovery through the headless Service's DNS: SRV `_raft._tcp.<service>` lists one target
// per pod (`<pod>.<service>`), so the member id is the target's first label and the peer URL is
// built from the target name, never from an address that changes when the pod is rescheduled.
import { Resolver } from 'node:dns/promises';
import type { NodeId } from '../raft/types.ts';
import type { Logger } from './log.ts';
import { compareMemberIds } from './ordinal.ts';

/** A pod seen in DNS. Structurally a Member without the voter flag. */
export interface Peer {
  readonly id: NodeId;
  readonly url: string;
}

export type DiscoveryResult = 'ok' | 'empty' | 'error';

export interface SrvDiscoveryOptions {
  /** RAFTLET_DISCOVERY_SERVICE, e.g. `raftlet.prod.svc.cluster.local`. */
  readonly service: string;
  /** RAFTLET_DNS_SERVER as `host:port` (or `[v6]:port`); undefined = the system resolver. */
  readonly dnsServer?: string | undefined;
  /** RAFTLET_BOOTSTRAP_EXPECT: until this many are seen, ask again at the fast interval. */
  readonly expected: number;
  readonly logger: Logger;
  /** Called after every lookup, for the metrics adapter. */
  readonly onResult?: (result: DiscoveryResult) => void;
  readonly intervalMs?: number;
  readonly fastIntervalMs?: number;
  readonly maxBackoffMs?: number;
  /** Per-query timeout handed to c-ares. */
  readonly queryTimeoutMs?: number;
  /** A number in [0, 1) for backoff jitter; injectable so tests can pin it. */
  readonly random?: () => number;
}

type Listener = (peers: readonly Peer[]) => void;

/** The DNS error codes that mean "the name has no SRV records", as opposed to "DNS is broken". */
const EMPTY_CODES = new Set(['ENOTFOUND', 'ENODATA']);

export class SrvDiscovery {
  readonly srvName: string;
  private readonly opts: SrvDiscoveryOptions;
  private readonly resolver: Resolver;
  private readonly listeners = new Set<Listener>();
  private peers: readonly Peer[] | null = null;
  private lastKind: string | null = null;
  private failures = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = true;
  private inFlight: Promise<DiscoveryResult> | null = null;

  constructor(opts: SrvDiscoveryOptions) {
    this.opts = opts;
    this.srvName = `_raft._tcp.${opts.service.replace(/\.$/, '')}`;
    this.resolver = new Resolver({ timeout: opts.queryTimeoutMs ?? 2000, tries: 2 });
    if (opts.dnsServer !== undefined) {
      try {
        this.resolver.setServers([opts.dnsServer]);
      } catch (err) {
        throw new Error(
          `RAFTLET_DNS_SERVER must be host:port, e.g. 127.0.0.1:53 or [::1]:53 (got ${JSON.stringify(opts.dnsServer)}): ${(err as Error).message}`,
        );
      }
    }
  }

  /** The peers of the last successful lookup, sorted by ordinal; null before the first answer. */
  current(): readonly Peer[] | null {
    return this.peers;
  }

  /** Subscribes to changes of the peer list; returns the unsubscribe function. */
  onChange(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Looks up at once, then keeps looking up on its own schedule until stop(). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.resolver.cancel();
  }

  /** One lookup now (shared with one already running); updates current() and notifies listeners. */
  refresh(): Promise<DiscoveryResult> {
    this.inFlight ??= this.lookup().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.refresh().then((result) => this.schedule(this.nextDelay(result)));
    }, delayMs);
    // Discovery alone must not keep a stopping process alive.
    this.timer.unref();
  }

  private nextDelay(result: DiscoveryResult): number {
    const interval = this.opts.intervalMs ?? 5000;
    const fast = this.opts.fastIntervalMs ?? 1000;
    switch (result) {
      case 'ok':
        return (this.peers?.length ?? 0) < this.opts.expected ? fast : interval;
      case 'empty':
        // Pods appear in DNS one by one while a StatefulSet starts: keep looking quickly.
        return fast;
      case 'error': {
        const max = this.opts.maxBackoffMs ?? 30_000;
        const ceiling = Math.min(max, fast * 2 ** Math.min(this.failures, 10));
        const random = this.opts.random ?? Math.random;
        return ceiling / 2 + (random() * ceiling) / 2;
      }
      default: {
        const never: never = result;
        return never;
      }
    }
  }

  private async lookup(): Promise<DiscoveryResult> {
    let result: DiscoveryResult;
    try {
      const records = await this.resolver.resolveSrv(this.srvName);
      this.failures = 0;
      const peers = peersFromSrv(records, this.opts.logger);
      result = peers.length === 0 ? 'empty' : 'ok';
      if (result === 'empty') this.logOnce('empty', 'NOERROR', { records: 0 });
      else this.markOk();
      this.publish(peers);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'UNKNOWN';
      if (this.stopped && code === 'ECANCELLED') return 'error';
      if (EMPTY_CODES.has(code)) {
        this.failures = 0;
        result = 'empty';
        this.logOnce('empty', code === 'ENOTFOUND' ? 'NXDOMAIN' : 'NODATA', {});
        // No records is an answer: the set of members DNS knows is now empty.
        this.publish([]);
      } else {
        this.failures += 1;
        result = 'error';
        this.logOnce(`error:${code}`, code, { err: (err as Error).message });
      }
    }
    this.opts.onResult?.(result);
    return result;
  }

  /** Logs a condition when it starts, not on every poll, so a slow StatefulSet rollout stays quiet. */
  private logOnce(kind: string, rcode: string, extra: Record<string, unknown>): void {
    if (this.lastKind === kind) return;
    this.lastKind = kind;
    const server = this.opts.dnsServer ?? 'system resolver';
    if (kind === 'empty') {
      this.opts.logger.warn(
        { srv: this.srvName, dnsServer: server, rcode, ...extra },
        `DNS has no SRV records for ${this.srvName} (${rcode}): no pod is published yet. Check that the headless Service exists, names a port "raft", and sets publishNotReadyAddresses: true (pods are not ready before a leader exists)`,
      );
    } else {
      this.opts.logger.error(
        { srv: this.srvName, dnsServer: server, code: rcode, ...extra },
        `DNS lookup of ${this.srvName} failed (${rcode}) at ${server}; retrying with backoff`,
      );
    }
  }

  private markOk(): void {
    if (this.lastKind?.startsWith('error:') === true) {
      this.opts.logger.info({ srv: this.srvName }, `DNS lookup of ${this.srvName} works again`);
    }
    this.lastKind = 'ok';
  }

  private publish(peers: readonly Peer[]): void {
    const before = this.peers;
    this.peers = peers;
    if (before !== null && samePeers(before, peers)) return;
    this.opts.logger.info(
      { srv: this.srvName, members: peers.map((p) => p.id) },
      `discovered ${peers.length} member(s) through DNS`,
    );
    for (const listener of this.listeners) listener(peers);
  }
}

/**
 * SRV records to peers: id = first label of the target, url = http://<target>:<port>, one entry
 * per id (the lowest port wins if a pod is listed twice), sorted by StatefulSet ordinal.
 */
export function peersFromSrv(records: readonly { name: string; port: number }[], logger?: Logger): Peer[] {
  const byId = new Map<string, Peer & { port: number }>();
  for (const record of records) {
    const target = record.name.replace(/\.$/, '').toLowerCase();
    const id = target.split('.')[0] ?? '';
    if (id === '') continue;
    const existing = byId.get(id);
    if (existing !== undefined) {
      logger?.warn({ id, ports: [existing.port, record.port] }, `DNS lists pod ${id} more than once; using the lowest port`);
      if (existing.port <= record.port) continue;
    }
    byId.set(id, { id, url: `http://${target}:${record.port}`, port: record.port });
  }
  return [...byId.values()]
    .map(({ id, url }) => ({ id, url }))
    .sort((a, b) => compareMemberIds(a.id, b.id));
}

function samePeers(a: readonly Peer[], b: readonly Peer[]): boolean {
  return a.length === b.length && a.every((p, i) => p.id === b[i]?.id && p.url === b[i]?.url);
}
