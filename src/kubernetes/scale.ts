// Scale-down or restart? A StatefulSet scaled to N keeps pods 0..N-1 and deletes the others, so a
// pod whose ordinal is at or above the desired replicas (spec.replicas of its StatefulSet, read
// from the API) is being scaled away and must leave the Raft configuration; any other pod that
// gets SIGTERM only restarts (rolling update, eviction, drain) and must stay. When the API cannot
// be read, nothing is guessed: the pod stays a member and the reason is logged.
import { classifyKubeError, type KubeClient, type V1Pod } from './client.ts';
import { ordinalOf } from './ordinal.ts';
import type { DesiredReplicas, ScaleVerdict } from './scale-rules.ts';
import { steadyNow } from '../util/steady-clock.ts';

export { isScaledAway, isStatefulSetPod, type DesiredReplicas, type ScaleVerdict } from './scale-rules.ts';

/** The pod's StatefulSet: its controller owner reference of kind StatefulSet. */
export function ownerStatefulSet(pod: V1Pod): string | null {
  const owner = (pod.metadata?.ownerReferences ?? []).find((ref) => ref.kind === 'StatefulSet' && ref.apiVersion.startsWith('apps/'));
  return owner?.name ?? null;
}

/** What is left of the pod's termination grace period: deletionGracePeriodSeconds once the pod is
 * being deleted (counted from now: SIGTERM has just arrived), else the spec's; null if neither. */
export function graceMsOf(pod: V1Pod): number | null {
  const seconds = pod.metadata?.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds;
  return typeof seconds === 'number' && Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : null;
}

export interface ScaleReaderOptions {
  readonly client: KubeClient;
  readonly namespace: string;
  /** This node's pod (RAFTLET_POD_NAME): its owner reference names the StatefulSet. */
  readonly podName: string;
}

export type ScaleReading = ({ readonly ok: true } & DesiredReplicas & { readonly readAtMs: number }) | { readonly ok: false; readonly reason: string };

/** Reads the desired replicas of this pod's StatefulSet (GET pod once for the owner, then GET
 * statefulset each time: both granted by the Role, the latter for this StatefulSet only). */
export class ScaleReader {
  private readonly options: ScaleReaderOptions;
  private owner: string | null = null;
  /** The pod was read and has no StatefulSet owner: owner references do not change, so it is not read again. */
  private ownerless: string | null = null;
  private last: (DesiredReplicas & { readonly readAtMs: number }) | null = null;

  constructor(options: ScaleReaderOptions) {
    this.options = options;
  }

  /** The last successful reading, however old (null before the first). */
  latest(): (DesiredReplicas & { readonly readAtMs: number }) | null {
    return this.last;
  }

  async read(signal?: AbortSignal): Promise<ScaleReading> {
    try {
      if (this.ownerless !== null) return { ok: false, reason: this.ownerless };
      if (this.owner === null) {
        const pod = await this.options.client.getPod(this.options.namespace, this.options.podName, signal);
        const owner = ownerStatefulSet(pod);
        if (owner === null) {
          this.ownerless = `pod ${this.options.podName} has no StatefulSet owner reference`;
          return { ok: false, reason: this.ownerless };
        }
        this.owner = owner;
      }
      return await this.readStatefulSet(this.owner, signal);
    } catch (err) {
      return { ok: false, reason: describe(err) };
    }
  }

  /** For SIGTERM: reads the pod afresh (its deletion grace period) and then the StatefulSet. */
  async verdict(signal?: AbortSignal): Promise<ScaleVerdict> {
    let pod: V1Pod;
    try {
      pod = await this.options.client.getPod(this.options.namespace, this.options.podName, signal);
    } catch (err) {
      return { kind: 'unknown', reason: `cannot read pod ${this.options.podName}: ${describe(err)}`, graceMs: null };
    }
    const graceMs = graceMsOf(pod);
    const owner = ownerStatefulSet(pod);
    if (owner === null) return { kind: 'unknown', reason: `pod ${this.options.podName} is not owned by a StatefulSet`, graceMs };
    this.owner = owner;
    let reading: ScaleReading;
    try {
      reading = await this.readStatefulSet(owner, signal);
    } catch (err) {
      reading = { ok: false, reason: describe(err) };
    }
    if (!reading.ok) return { kind: 'unknown', reason: `cannot read StatefulSet ${owner}: ${reading.reason}`, graceMs };
    const o = ordinalOf(this.options.podName);
    if (o === null || o.prefix !== owner) {
      return { kind: 'unknown', reason: `pod name ${this.options.podName} is not ${owner}-<ordinal>`, graceMs };
    }
    const desired: DesiredReplicas = { statefulSet: reading.statefulSet, replicas: reading.replicas };
    return o.ordinal >= reading.replicas
      ? { kind: 'scaledAway', desired, ordinal: o.ordinal, graceMs }
      : { kind: 'staying', desired, ordinal: o.ordinal, graceMs };
  }

  private async readStatefulSet(name: string, signal?: AbortSignal): Promise<ScaleReading> {
    const sts = await this.options.client.getStatefulSet(this.options.namespace, name, signal);
    const replicas = sts.spec?.replicas ?? 1;
    if (!Number.isSafeInteger(replicas) || replicas < 0) return { ok: false, reason: `StatefulSet ${name} has spec.replicas ${String(replicas)}` };
    const reading = { statefulSet: name, replicas, readAtMs: steadyNow() };
    this.last = reading;
    return { ok: true, ...reading };
  }
}

function describe(err: unknown): string {
  const failure = classifyKubeError(err);
  switch (failure.kind) {
    case 'forbidden':
      return `forbidden (${failure.message}); the Role must grant get on this StatefulSet (apps statefulsets)`;
    case 'throttled':
      return `throttled (429, retry after ${failure.retryAfterMs} ms)`;
    case 'conflict':
    case 'not_found':
    case 'unauthorized':
    case 'invalid':
    case 'server':
      return `${failure.kind} (${failure.status}): ${failure.message}`;
    case 'timeout':
    case 'unreachable':
    case 'aborted':
    case 'unknown':
      return failure.message;
    default: {
      const never: never = failure;
      return never;
    }
  }
}
