// An optional coordination.k8s.io/v1 Lease that mirrors the Raft leader (RAFTLET_LEASE_NAME), for
// tools that already read leader-election Leases. Raft decides who leads; the Lease only reports
// it. Writes are fenced by term like the pod labels, and use resourceVersion (409 → read again).
import { V1MicroTime, type V1Lease } from '@kubernetes/client-node';
import { Backoff, sleep } from './backoff.ts';
import { classifyKubeError, type KubeClient } from './client.ts';
import { parseTerm, TERM_ANNOTATION, type RoleState } from './labeler.ts';
import type { Logger } from './log.ts';
import { BackgroundLoop, type RoundResult } from './loop.ts';
import { describeRule } from './rbac.ts';
import { steadyNow } from '../util/steady-clock.ts';

export type LeaseResult = 'ok' | 'conflict' | 'fenced' | 'forbidden' | 'throttled' | 'error';

export interface LeaseMirrorOptions {
  readonly client: Pick<KubeClient, 'readLease' | 'createLease' | 'replaceLease'>;
  readonly namespace: string;
  readonly leaseName: string;
  readonly selfId: string;
  readonly logger: Logger;
  /** spec.leaseDurationSeconds: how long readers should trust a renewal. */
  readonly leaseDurationSeconds?: number;
  /** How often the leader renews; well below the duration. */
  readonly renewIntervalMs?: number;
  readonly onResult?: (result: LeaseResult) => void;
  readonly maxConflictRetries?: number;
  readonly random?: () => number;
}

type Outcome = LeaseResult | 'aborted' | 'not_found';

export class LeaseMirror {
  private readonly opts: LeaseMirrorOptions;
  private readonly loop: BackgroundLoop;
  private readonly backoff: Backoff;
  private desired: RoleState | null = null;
  private pausedUntil = 0;

  constructor(opts: LeaseMirrorOptions) {
    this.opts = opts;
    this.backoff = new Backoff(200, 10_000, opts.random);
    this.loop = new BackgroundLoop(
      (signal) => this.round(signal),
      (err) => this.opts.logger.error({ err: (err as Error).message }, 'lease mirror round failed unexpectedly; retrying'),
    );
  }

  start(): void {
    this.loop.start();
  }

  /** Hand over the current role; returns at once. */
  update(state: RoleState): void {
    const previous = this.desired;
    this.desired = state;
    if (state.isLeader && (previous === null || !previous.isLeader || previous.term !== state.term)) this.loop.kick();
  }

  flush(timeoutMs: number): Promise<boolean> {
    return this.loop.whenSettled(timeoutMs);
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  private async round(signal: AbortSignal): Promise<RoundResult> {
    const pause = this.pausedUntil - steadyNow();
    if (pause > 0) return { nextInMs: pause, settled: false };
    const state = this.desired;
    if (state === null || !state.isLeader) return { nextInMs: null, settled: true };
    const outcome = await this.renew(state.term, signal);
    if (outcome === 'ok' || outcome === 'fenced' || outcome === 'forbidden') {
      this.backoff.reset();
      return { nextInMs: this.opts.renewIntervalMs ?? 5000, settled: true };
    }
    return { nextInMs: Math.max(this.backoff.next(), this.pausedUntil - steadyNow()), settled: false };
  }

  private async renew(term: number, signal: AbortSignal): Promise<Outcome> {
    const { client, namespace, leaseName, selfId } = this.opts;
    const attempts = this.opts.maxConflictRetries ?? 5;
    for (let attempt = 1; ; attempt++) {
      let verb = 'get';
      try {
        let current: V1Lease | null;
        try {
          current = await client.readLease(namespace, leaseName, signal);
        } catch (err) {
          if (classifyKubeError(err).kind !== 'not_found') throw err;
          current = null;
        }
        const now = new V1MicroTime(Date.now());
        if (current === null) {
          verb = 'create';
          await client.createLease(namespace, this.lease(term, now, now, 0, undefined), signal);
          this.done('ok', `created Lease ${leaseName} held by ${selfId} (term ${term})`);
          return 'ok';
        }
        const leaseTerm = parseTerm(current.metadata?.annotations?.[TERM_ANNOTATION]);
        if (leaseTerm > term) {
          this.done('fenced', `not renewing Lease ${leaseName}: it carries ${TERM_ANNOTATION}=${leaseTerm}, newer than our term ${term}`);
          return 'fenced';
        }
        const spec = current.spec ?? {};
        // A new holder, or the same node leading again in a later term, is a leader change.
        const changed = spec.holderIdentity !== selfId || leaseTerm !== term;
        const transitions = (spec.leaseTransitions ?? 0) + (changed ? 1 : 0);
        const acquired = changed ? now : (spec.acquireTime ?? now);
        verb = 'update';
        const next = this.lease(term, acquired, now, transitions, current);
        await client.replaceLease(namespace, leaseName, next, signal);
        if (changed) this.done('ok', `Lease ${leaseName} now held by ${selfId} (term ${term}, transitions ${transitions})`);
        else this.opts.onResult?.('ok');
        return 'ok';
      } catch (err) {
        const failure = classifyKubeError(err);
        switch (failure.kind) {
          case 'aborted':
            return 'aborted';
          case 'conflict':
            this.opts.onResult?.('conflict');
            if (attempt >= attempts) return 'conflict';
            await sleep(50 * 2 ** attempt * (0.5 + 0.5 * (this.opts.random ?? Math.random)()), signal);
            if (signal.aborted) return 'aborted';
            continue;
          case 'forbidden': {
            const rule = describeRule(verb, 'leases', namespace);
            this.opts.onResult?.('forbidden');
            this.opts.logger.error({ rule, detail: failure.message }, `Kubernetes RBAC is missing the rule "${rule}" (coordination.k8s.io): grant it in raftlet's Role, or unset RAFTLET_LEASE_NAME`);
            return 'forbidden';
          }
          case 'throttled':
            this.pausedUntil = Math.max(this.pausedUntil, steadyNow() + failure.retryAfterMs);
            this.opts.onResult?.('throttled');
            return 'throttled';
          case 'not_found':
          case 'unauthorized':
          case 'invalid':
          case 'server':
          case 'timeout':
          case 'unreachable':
          case 'unknown':
            this.opts.onResult?.('error');
            this.opts.logger.warn({ kind: failure.kind, verb, detail: failure.message }, `Lease ${leaseName} ${verb} failed (${failure.message}); retrying with backoff`);
            return 'error';
          default: {
            const never: never = failure;
            return never;
          }
        }
      }
    }
  }

  private lease(term: number, acquireTime: Date, renewTime: Date, transitions: number, current: V1Lease | undefined): V1Lease {
    const { namespace, leaseName, selfId } = this.opts;
    const metadata = current?.metadata ?? { name: leaseName, namespace };
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        ...metadata,
        // resourceVersion stays as read: the API server refuses the update if it moved.
        annotations: { ...metadata.annotations, [TERM_ANNOTATION]: String(term) },
      },
      spec: {
        ...current?.spec,
        holderIdentity: selfId,
        leaseDurationSeconds: this.opts.leaseDurationSeconds ?? 15,
        acquireTime: toMicroTime(acquireTime),
        renewTime: toMicroTime(renewTime),
        leaseTransitions: transitions,
      },
    };
  }

  private done(result: LeaseResult, message: string): void {
    this.opts.onResult?.(result);
    this.opts.logger.info({ lease: this.opts.leaseName }, message);
  }
}

/**
 * metav1.MicroTime must travel with exactly six fractional digits. client-node's V1MicroTime does
 * that; a value read back from the server may arrive as a string or a plain Date, so normalise.
 */
function toMicroTime(value: Date | string): V1MicroTime {
  return new V1MicroTime(typeof value === 'string' ? Date.parse(value) : value.getTime());
}
