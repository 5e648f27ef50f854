// The StatefulSet controller and kubelet of the e2e harness: it watches the API double's
// StatefulSet (which `kubectl scale` changes through the scale subresource) and does what the real
// controller and kubelet would to the pods, with real raftlet processes and the dnsmasq records:
// - scale up: create the missing pods (API object with the StatefulSet owner reference, DNS record
//   as with publishNotReadyAddresses, process); OrderedReady: lowest first, each Ready (readyz
//   200) before the next; Parallel: all at once.
// - scale down: pods at or above the replicas are deleted: deletionTimestamp and
//   deletionGracePeriodSeconds set, SIGTERM, SIGKILL if still running after the grace period, then
//   the pod object and its DNS record are gone; OrderedReady: highest first, one at a time after the
//   previous one is gone and while every lower pod is Ready; Parallel: all at once.
// - a rolling update: each pod deleted and recreated under the same name, highest first, each
//   Ready before the next (updateStrategy RollingUpdate).
import { setTimeout as delay } from 'node:timers/promises';
import type { JsonObject, Rule } from '../support/k8s-double/index.ts';
import { FOREIGN_ANNOTATIONS, FOREIGN_LABELS, NAMESPACE, podId, waitUntil, type PodCluster } from './harness.ts';

export type PodManagementPolicy = 'OrderedReady' | 'Parallel';

export const STATEFULSET = 'raftlet';

/** The chart's Role for the members: SPEC §7 plus get on their own StatefulSet only. */
export const MEMBER_ROLE: readonly Rule[] = [
  { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'patch'] },
  { apiGroups: [''], resources: ['events'], verbs: ['create'] },
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
  { apiGroups: ['apps'], resources: ['statefulsets'], verbs: ['get'], resourceNames: [STATEFULSET] },
];

export interface Termination {
  readonly ordinal: number;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Still running when the grace period ended: SIGKILLed. */
  readonly killed: boolean;
  readonly ms: number;
}

export class StatefulSetController {
  readonly policy: PodManagementPolicy;
  readonly graceSeconds: number;
  readonly terminations: Termination[] = [];
  readonly timeline: string[] = [];
  private readonly c: PodCluster;
  /** Pods that exist in the API (created, not yet deleted). */
  private readonly pods = new Set<number>();
  /** Pods being deleted (deletionTimestamp set). */
  private readonly terminating = new Set<number>();
  private queue: Promise<void> = Promise.resolve();
  private pending = 0;
  private failure: Error | null = null;
  private readonly t0 = Date.now();
  private unsubscribe: (() => void) | null = null;

  constructor(c: PodCluster, options: { policy: PodManagementPolicy; graceSeconds?: number }) {
    this.c = c;
    this.policy = options.policy;
    this.graceSeconds = options.graceSeconds ?? 30;
  }

  /** Creates the StatefulSet with `replicas` pods and starts watching it. */
  async create(replicas: number): Promise<void> {
    this.c.k8s.statefulSets.add({ name: STATEFULSET, replicas, podManagementPolicy: this.policy, serviceName: STATEFULSET });
    this.unsubscribe = this.c.k8s.statefulSets.onChange((sts) => {
      if ((sts.metadata as JsonObject | undefined)?.name === STATEFULSET) this.enqueue(() => this.reconcile());
    });
    this.enqueue(() => this.reconcile());
    await this.idle();
  }

  stop(): void {
    this.unsubscribe?.();
  }

  /** spec.replicas of the StatefulSet in the API double. */
  desired(): number {
    const spec = this.c.k8s.statefulSets.get(STATEFULSET)?.spec as JsonObject | undefined;
    return typeof spec?.replicas === 'number' ? spec.replicas : 1;
  }

  /** Pods whose application would still send requests: existing and not being deleted. */
  active(): number[] {
    return [...this.pods].filter((o) => !this.terminating.has(o)).sort((a, b) => a - b);
  }

  existing(): number[] {
    return [...this.pods].sort((a, b) => a - b);
  }

  /** Resolves once every change seen so far has been carried out; rejects with the first failure. */
  async idle(): Promise<void> {
    while (this.pending > 0) await this.queue;
    if (this.failure !== null) throw this.failure;
  }

  /** A rolling update of every pod, highest ordinal first, each Ready before the next. */
  rollingRestart(): Promise<void> {
    this.enqueue(async () => {
      for (const o of this.existing().reverse()) {
        await this.deletePod(o);
        await this.createPod(o);
        await this.waitReady([o]);
      }
    });
    return this.idle();
  }

  private enqueue(work: () => Promise<void>): void {
    this.pending++;
    this.queue = this.queue
      .then(work)
      .catch((err: unknown) => {
        this.failure ??= err instanceof Error ? err : new Error(String(err));
      })
      .finally(() => {
        this.pending--;
      });
  }

  private note(what: string): void {
    this.timeline.push(`+${((Date.now() - this.t0) / 1000).toFixed(1)}s ${what}`);
  }

  private async reconcile(): Promise<void> {
    const replicas = this.desired();
    const condemned = this.existing().filter((o) => o >= replicas).reverse();
    const missing = Array.from({ length: replicas }, (_, o) => o).filter((o) => !this.pods.has(o));
    if (condemned.length > 0) {
      this.note(`scale to ${replicas}: deleting ${condemned.map(podId).join(', ')}`);
      if (this.policy === 'Parallel') {
        await Promise.all(condemned.map((o) => this.deletePod(o)));
      } else {
        for (const o of condemned) {
          // OrderedReady: a pod is deleted only while all its predecessors are Running and Ready.
          await this.waitReady(this.existing().filter((p) => p < o));
          await this.deletePod(o);
        }
      }
    }
    if (missing.length > 0) {
      this.note(`scale to ${replicas}: creating ${missing.map(podId).join(', ')}`);
      if (this.policy === 'Parallel') {
        await Promise.all(missing.map((o) => this.createPod(o)));
      } else {
        for (const o of missing) {
          await this.createPod(o);
          await this.waitReady([o]);
        }
      }
    }
    await this.updateStatus();
  }

  private async createPod(o: number): Promise<void> {
    this.c.k8s.pods.add({
      name: podId(o),
      labels: { ...FOREIGN_LABELS, 'statefulset.kubernetes.io/pod-name': podId(o) },
      annotations: FOREIGN_ANNOTATIONS,
      ownerReferences: [this.c.k8s.statefulSets.ownerReference(STATEFULSET)],
      terminationGracePeriodSeconds: this.graceSeconds,
    });
    this.pods.add(o);
    await this.c.publish(this.existing());
    await this.c.start(o);
    this.note(`${podId(o)} started`);
  }

  private async deletePod(o: number): Promise<void> {
    this.terminating.add(o);
    this.c.k8s.pods.update(podId(o), (pod) => {
      const meta = pod.metadata as JsonObject;
      meta.deletionTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      meta.deletionGracePeriodSeconds = this.graceSeconds;
    });
    const end = await this.c.terminate(o, this.graceSeconds * 1000);
    this.terminations.push({ ordinal: o, ...end });
    this.note(`${podId(o)} exited ${end.killed ? 'KILLED after the grace period' : `with ${end.code ?? end.signal}`} after ${end.ms} ms`);
    this.c.k8s.pods.delete(podId(o), NAMESPACE);
    this.pods.delete(o);
    this.terminating.delete(o);
    await this.c.publish(this.existing());
  }

  private async waitReady(ordinals: readonly number[]): Promise<void> {
    if (ordinals.length === 0) return;
    await waitUntil(
      `${ordinals.map(podId).join(', ')} to be Ready`,
      async () => {
        const answers = await Promise.all(ordinals.map(async (o) => ({ o, r: await this.c.readyz(o) })));
        const not = answers.filter((a) => a.r.status !== 200);
        if (not.length > 0) throw new Error(not.map((a) => `${podId(a.o)}: ${a.r.status} ${a.r.reason}`).join('; '));
        return true;
      },
      { timeoutMs: 90_000, intervalMs: 100 },
    );
  }

  private async updateStatus(): Promise<void> {
    const existing = this.existing();
    const ready = (await Promise.all(existing.map((o) => this.c.readyz(o)))).filter((r) => r.status === 200).length;
    this.c.k8s.statefulSets.update(STATEFULSET, (sts) => {
      sts.status = { ...(sts.status as JsonObject), replicas: existing.length, currentReplicas: existing.length, updatedReplicas: existing.length, readyReplicas: ready, availableReplicas: ready };
    });
    await delay(0);
  }
}
