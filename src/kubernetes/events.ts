// The LeaderElected Event on the new leader's pod (SPEC §7): core/v1, a fresh generated name each
// time, in the background (never awaited by the Raft runtime), retried like client-go's recorder
// (about two minutes) so an API outage around an election does not lose it.
import type { CoreV1Event } from '@kubernetes/client-node';
import type { NodeId } from '../raft/types.ts';
import { Backoff, sleep } from './backoff.ts';
import { classifyKubeError, type KubeClient } from './client.ts';
import type { Logger } from './log.ts';
import { describeRule } from './rbac.ts';

export type EventResult = 'ok' | 'forbidden' | 'error';

export interface EventRecorderOptions {
  readonly client: Pick<KubeClient, 'getPod' | 'createEvent'>;
  readonly namespace: string;
  /** This node's own pod: the event's involvedObject. */
  readonly podName: string;
  readonly logger: Logger;
  readonly onResult?: (result: EventResult) => void;
  readonly attempts?: number;
  readonly random?: () => number;
}

export class EventRecorder {
  private readonly opts: EventRecorderOptions;
  private readonly abort = new AbortController();
  private readonly pending = new Set<Promise<void>>();
  private lastTerm = -1;

  constructor(opts: EventRecorderOptions) {
    this.opts = opts;
  }

  /** Records that `leaderId` (this node) won `term`; returns at once. One event per term. */
  leaderElected(leaderId: NodeId, term: number): void {
    if (term <= this.lastTerm || this.abort.signal.aborted) return;
    this.lastTerm = term;
    // A newer term's event supersedes this one: stop retrying it.
    this.start('LeaderElected', `${leaderId} became the Raft leader in term ${term}`, 'Normal', term, () => this.lastTerm === term);
  }

  /** Records another event on this node's pod (e.g. why leadership moved); returns at once. */
  note(reason: string, message: string, type: 'Normal' | 'Warning', term: number): void {
    if (this.abort.signal.aborted) return;
    this.start(reason, message, type, term, () => true);
  }

  private start(reason: string, message: string, type: 'Normal' | 'Warning', term: number, wanted: () => boolean): void {
    const task = this.record(reason, message, type, term, wanted).finally(() => this.pending.delete(task));
    this.pending.add(task);
  }

  /** Waits for events still being sent (bounded by the client's own timeouts), for a clean exit. */
  async flush(): Promise<void> {
    await Promise.all([...this.pending]);
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.flush();
  }

  private async record(reason: string, text: string, type: 'Normal' | 'Warning', term: number, wanted: () => boolean): Promise<void> {
    const { client, namespace, podName, logger } = this.opts;
    const signal = this.abort.signal;
    const backoff = new Backoff(500, 10_000, this.opts.random);
    const attempts = this.opts.attempts ?? 12;
    for (let attempt = 1; attempt <= attempts && !signal.aborted && wanted(); attempt++) {
      let verb = 'get';
      try {
        // The uid ties the event to this incarnation of the pod, not to a namesake created later.
        const pod = await client.getPod(namespace, podName, signal);
        verb = 'create';
        const now = new Date();
        const event: CoreV1Event = {
          apiVersion: 'v1',
          kind: 'Event',
          metadata: { generateName: `${podName}.`, namespace },
          involvedObject: {
            apiVersion: 'v1',
            kind: 'Pod',
            name: podName,
            namespace,
            uid: pod.metadata?.uid,
            resourceVersion: pod.metadata?.resourceVersion,
          },
          reason,
          message: text,
          type,
          source: { component: 'raftlet', host: pod.spec?.nodeName },
          reportingComponent: 'raftlet',
          reportingInstance: podName,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        };
        const created = await client.createEvent(namespace, event, signal);
        logger.info({ event: created.metadata?.name, term }, `recorded event ${reason} on pod ${podName} (term ${term})`);
        this.opts.onResult?.('ok');
        return;
      } catch (err) {
        const failure = classifyKubeError(err);
        if (failure.kind === 'aborted') return;
        if (failure.kind === 'forbidden') {
          const resource = verb === 'get' ? 'pods' : 'events';
          logger.error(
            { rule: describeRule(verb, resource, namespace), detail: failure.message },
            `Kubernetes RBAC is missing the rule "${describeRule(verb, resource, namespace)}": the ${reason} event was not recorded`,
          );
          this.opts.onResult?.('forbidden');
          return;
        }
        if (failure.kind === 'not_found' || attempt === attempts) {
          logger.warn({ term, kind: failure.kind, detail: failure.message }, `could not record event ${reason} for term ${term} (${failure.message}); giving up, it is best effort`);
          this.opts.onResult?.('error');
          return;
        }
        const delay = failure.kind === 'throttled' ? Math.max(failure.retryAfterMs, backoff.next()) : backoff.next();
        await sleep(delay, signal);
      }
    }
  }
}
