// The Kubernetes side of raftlet in one object for the node runtime: role labels, the
// LeaderElected event and the optional Lease mirror, all fed by one non-blocking update() call.
// Discovery (discovery.ts) and the pure bootstrap / membership rules are used directly.
import type { NodeId } from '../raft/types.ts';
import { KubeClient, loadKubeConfig } from './client.ts';
import { EventRecorder, type EventResult } from './events.ts';
import { RoleLabeler, type LabelResult, type RoleState } from './labeler.ts';
import { LeaseMirror, type LeaseResult } from './lease.ts';
import type { Logger } from './log.ts';
import { ScaleReader } from './scale.ts';

export type { RoleState, LabelResult } from './labeler.ts';
export type { EventResult } from './events.ts';
export type { LeaseResult } from './lease.ts';
export { requiredRbacRules, type PolicyRule } from './rbac.ts';
export { isScaledAway, type DesiredReplicas, type ScaleReading, type ScaleVerdict } from './scale.ts';
export type { ScaleReader } from './scale.ts';

export interface KubernetesAdaptersOptions {
  /** A kubeconfig file; default: KUBECONFIG, ~/.kube/config, else the in-cluster service account. */
  readonly kubeconfigPath?: string;
  /** RAFTLET_POD_NAMESPACE. */
  readonly namespace: string;
  /** RAFTLET_POD_NAME: this node's pod. */
  readonly podName: string;
  /** RAFTLET_NODE_ID. */
  readonly selfId: NodeId;
  /** RAFTLET_ROLE_LABEL. */
  readonly roleLabel: string;
  /** RAFTLET_LEASE_NAME, or null for no Lease. */
  readonly leaseName: string | null;
  readonly logger: Logger;
  readonly onLabelUpdate?: (result: LabelResult) => void;
  readonly onEvent?: (result: EventResult) => void;
  readonly onLease?: (result: LeaseResult) => void;
  /** Per-call timeout. */
  readonly timeoutMs?: number;
  readonly reconcileIntervalMs?: number;
}

export class KubernetesAdapters {
  private readonly labeler: RoleLabeler;
  private readonly events: EventRecorder;
  private readonly lease: LeaseMirror | null;
  private readonly selfId: NodeId;
  /** The desired replicas of this pod's StatefulSet: scale-down or restart (scale.ts). */
  readonly scale: ScaleReader;
  private readonly client: KubeClient;
  private lastLeaderTerm = -1;
  private latest: RoleState | null = null;
  /** The term whose own label write the Lease and the LeaderElected event are waiting for. */
  private holdingFor: number | null = null;
  private held: Promise<void> = Promise.resolve();

  constructor(opts: KubernetesAdaptersOptions) {
    const client = new KubeClient(loadKubeConfig(opts.kubeconfigPath), { timeoutMs: opts.timeoutMs ?? 5000 });
    this.client = client;
    const common = { client, namespace: opts.namespace, logger: opts.logger };
    this.selfId = opts.selfId;
    this.labeler = new RoleLabeler({
      ...common,
      selfId: opts.selfId,
      podName: opts.podName,
      labelKey: opts.roleLabel,
      onLabelUpdate: opts.onLabelUpdate,
      reconcileIntervalMs: opts.reconcileIntervalMs,
    });
    this.events = new EventRecorder({ ...common, podName: opts.podName, onResult: opts.onEvent });
    this.scale = new ScaleReader({ client, namespace: opts.namespace, podName: opts.podName });
    this.lease =
      opts.leaseName === null
        ? null
        : new LeaseMirror({ ...common, leaseName: opts.leaseName, selfId: opts.selfId, onResult: opts.onLease, renewIntervalMs: opts.reconcileIntervalMs });
    this.labeler.start();
    this.labeler.warmUp();
    this.lease?.start();
  }

  /**
   * Call on every change of role, term, leader or membership. Never blocks, never throws.
   *
   * On taking office the own leader label goes out first and alone (the Service that selects the
   * leader follows it); the Lease and the LeaderElected event follow once it is answered, or after
   * OTHERS_WAIT_MS at most, so they neither delay it on the wire nor take CPU from it.
   */
  update(state: RoleState): void {
    this.latest = state;
    this.labeler.update(state);
    if (state.isLeader && state.term > this.lastLeaderTerm) {
      const term = state.term;
      this.lastLeaderTerm = term;
      this.holdingFor = term;
      this.held = settledWithin(this.labeler.ownLabelSettled(), OTHERS_WAIT_MS).then(() => {
        if (this.holdingFor === term) {
          this.holdingFor = null;
          if (this.latest !== null) this.lease?.update(this.latest);
        }
        this.events.leaderElected(this.selfId, term);
      });
      return;
    }
    if (this.holdingFor === null) this.lease?.update(state);
  }

  /** Records an Event on this node's pod, e.g. LeadershipMovedAppUnhealthy. Never blocks, never throws. */
  recordEvent(reason: string, message: string, type: 'Normal' | 'Warning', term: number): void {
    this.events.note(reason, message, type, term);
  }

  /** Waits (at most timeoutMs) for pending label, lease and event writes, e.g. before exiting on SIGTERM. */
  async flush(timeoutMs: number): Promise<boolean> {
    const deadline = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), timeoutMs).unref());
    const work = this.held.then(() => Promise.all([this.labeler.flush(timeoutMs), this.lease?.flush(timeoutMs) ?? true, this.events.flush().then(() => true)]));
    return Promise.race([work.then((all) => all.every(Boolean)), deadline]);
  }

  async stop(): Promise<void> {
    await Promise.all([this.labeler.stop(), this.lease?.stop(), this.events.stop()]);
    this.client.close();
  }
}

/** How long the Lease and the LeaderElected event wait for the new leader's own label write. */
const OTHERS_WAIT_MS = 1000;

function settledWithin(work: Promise<void>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    void work.then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      () => {
        clearTimeout(timer);
        resolve();
      },
    );
  });
}
