// Term-fenced role labels on member pods (SPEC §7). Every write reads the pod, refuses to overwrite
// a higher `raftlet.io/term`, and PATCHes only our label and that annotation, carrying the
// resourceVersion it read so that a concurrent writer makes it fail with 409 instead of being lost.
// A new leader's own label is the exception in timing only: its read is made when the election
// begins, and the PATCH leaves the moment the election is won (issue 12).
import type { NodeId } from '../raft/types.ts';
import { Backoff, sleep } from './backoff.ts';
import { classifyKubeError, type KubeClient, type V1Pod } from './client.ts';
import type { Logger } from './log.ts';
import { BackgroundLoop, type RoundResult } from './loop.ts';
import { ordinalOf } from './ordinal.ts';
import { describeRule } from './rbac.ts';
import { steadyNow } from '../util/steady-clock.ts';

export const TERM_ANNOTATION = 'raftlet.io/term';

/** What the runtime knows about this node's place in the cluster. */
export interface RoleState {
  readonly term: number;
  readonly isLeader: boolean;
  readonly leaderId: NodeId | null;
  /** The ids of the current configuration (voters and learners), this node included. */
  readonly memberIds: readonly NodeId[];
}

/** One value per label write attempt, for raftlet_label_updates_total{result}. */
export type LabelResult = 'ok' | 'conflict' | 'fenced' | 'forbidden' | 'throttled' | 'not_found' | 'error';

type Role = 'leader' | 'follower';
type WriteOutcome = LabelResult | 'unchanged' | 'aborted';

export type PodClient = Pick<KubeClient, 'getPod' | 'listPods' | 'mergePatchPod'>;

export interface RoleLabelerOptions {
  readonly client: PodClient;
  readonly namespace: string;
  /** This node's member id, and the name of its own pod (RAFTLET_POD_NAME). */
  readonly selfId: NodeId;
  readonly podName: string;
  /** RAFTLET_ROLE_LABEL. */
  readonly labelKey: string;
  readonly logger: Logger;
  readonly onLabelUpdate?: (result: LabelResult) => void;
  /** How often the leader re-checks every member pod. */
  readonly reconcileIntervalMs?: number;
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
  /** Read-and-patch attempts for one pod when it keeps changing under us (409). */
  readonly maxConflictRetries?: number;
  readonly random?: () => number;
}

export class RoleLabeler {
  private readonly opts: RoleLabelerOptions;
  private readonly loop: BackgroundLoop;
  private readonly backoff: Backoff;
  private readonly knownIds = new Set<NodeId>();
  private readonly lastLogged = new Map<string, number>();
  private desired: RoleState | null = null;
  /** Set when this node stops leading: relabel its own pod follower (best effort). */
  private demotionPending = false;
  private pausedUntil = 0;
  /** This node's pod, read when an election began in `term` (null: the read failed). */
  private prefetch: { readonly term: number; readonly pod: Promise<V1Pod | null> } | null = null;
  /** The leader label write started the moment this node took office in `term`. */
  private claim: { readonly term: number; readonly outcome: Promise<WriteOutcome> } | null = null;

  constructor(opts: RoleLabelerOptions) {
    this.opts = opts;
    this.backoff = new Backoff(opts.backoffBaseMs ?? 200, opts.backoffMaxMs ?? 10_000, opts.random);
    this.loop = new BackgroundLoop(
      (signal) => this.round(signal),
      (err) => this.opts.logger.error({ err: (err as Error).message }, 'role labeler round failed unexpectedly; retrying'),
    );
  }

  start(): void {
    this.loop.start();
  }

  /**
   * Reads this node's pod once and ignores the answer. The client's first call pays for loading its
   * code paths (50-250 ms on a busy 2-core machine, against 20-50 ms once warm); paid at start, it
   * is not paid by the first label write after this node wins an election.
   */
  warmUp(): void {
    this.opts.client.getPod(this.opts.namespace, this.opts.podName, this.loop.signal).catch(() => undefined);
  }

  /**
   * Hand over the current role; returns at once. Call on every change of role, term, leader or
   * membership (calling more often is harmless).
   *
   * Taking office starts the own leader label write here and now, not when the background loop
   * next gets round to it: the Service that selects the leader follows this write. An election in
   * a new term (term rose, no leader known) reads this node's pod at once, so that if this node
   * wins, the write is a single PATCH with that read's resourceVersion, on a connection the read
   * has just opened.
   */
  update(state: RoleState): void {
    const previous = this.desired;
    this.desired = state;
    for (const id of state.memberIds) this.knownIds.add(id);
    if (state.isLeader) {
      this.demotionPending = false;
      const tookOffice = previous === null || !previous.isLeader || previous.term !== state.term;
      if (tookOffice) this.claimOwnLabel(state.term);
      if (tookOffice || !sameIds(previous.memberIds, state.memberIds)) this.loop.kick();
    } else if (previous?.isLeader === true) {
      this.demotionPending = true;
      this.loop.kick();
    } else if (previous !== null && state.term > previous.term && state.leaderId === null) {
      this.prefetchOwnPod(state.term);
    }
  }

  /**
   * Settles once the own leader label write of the office this node holds (or last took) is done
   * or given up; at once if there is none. The Lease and the LeaderElected event wait for it, so
   * that write goes out first and alone.
   */
  ownLabelSettled(): Promise<void> {
    return this.claim === null ? Promise.resolve() : this.claim.outcome.then(() => undefined);
  }

  /** Resolves true once the writes the current state asks for are done (or given up), else false at the deadline. */
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
    if (state === null) return { nextInMs: null, settled: true };
    if (state.isLeader) {
      const complete = await this.labelMembers(state, signal);
      if (!complete) return { nextInMs: this.retryDelay(), settled: false };
      this.backoff.reset();
      return { nextInMs: this.opts.reconcileIntervalMs ?? 5000, settled: true };
    }
    if (this.demotionPending) {
      const outcome = await this.writeRole(this.opts.podName, 'follower', state.term, signal);
      if (retryable(outcome) && this.demotionPending) return { nextInMs: this.retryDelay(), settled: false };
      this.demotionPending = false;
      this.backoff.reset();
    }
    return { nextInMs: null, settled: true };
  }

  private prefetchOwnPod(term: number): void {
    if (this.prefetch?.term === term) return;
    const { client, namespace, podName, logger } = this.opts;
    const pod = client.getPod(namespace, podName, this.loop.signal).then(
      (read) => read,
      (err: unknown) => {
        logger.debug({ pod: podName, term, err: classifyKubeError(err).message }, 'reading our pod at the start of an election failed; a win reads it again');
        return null;
      },
    );
    this.prefetch = { term, pod };
  }

  private claimOwnLabel(term: number): void {
    const since = steadyNow();
    const prefetched = this.prefetch?.term === term ? this.prefetch.pod : null;
    this.prefetch = null;
    const write = async (): Promise<WriteOutcome> => {
      // Retry-After of a 429 is honoured by this write too; the loop's pass writes after the pause.
      if (this.pausedUntil > steadyNow()) return 'throttled';
      const known = prefetched === null ? null : await prefetched;
      if (this.desired?.isLeader !== true || this.desired.term !== term) return 'aborted';
      return this.writeRole(this.opts.podName, 'leader', term, this.loop.signal, { known, since });
    };
    const outcome = write().catch((err: unknown): WriteOutcome => {
      this.opts.logger.error({ err: (err as Error).message }, 'own leader label write failed unexpectedly; the next pass retries');
      return 'error';
    });
    this.claim = { term, outcome };
  }

  /** The own leader label of this pass: the write started on taking office, else a new one. */
  private async ownLabel(state: RoleState, signal: AbortSignal): Promise<WriteOutcome> {
    const claim = this.claim;
    if (claim !== null && claim.term === state.term) {
      this.claim = null;
      const outcome = await claim.outcome;
      if (outcome !== 'aborted' || signal.aborted) return outcome;
    }
    return this.writeRole(this.opts.podName, 'leader', state.term, signal);
  }

  private retryDelay(): number {
    return Math.max(this.backoff.next(), this.pausedUntil - steadyNow());
  }

  /**
   * The leader's pass: label itself first (the moment it wins, behind no other call: the Service
   * selecting the leader follows this write), then demote pods still labelled leader, then every
   * follower. Until the demotion, the old leader's pod may still carry the label as well; that pod
   * is dead or has stepped down, and the term annotation says which label is current.
   */
  private async labelMembers(state: RoleState, signal: AbortSignal): Promise<boolean> {
    const self = this.opts.podName;
    const staleLeaders: string[] = [];
    let complete = true;
    const own = await this.ownLabel(state, signal);
    if (own === 'throttled' || own === 'aborted') return false;
    if (retryable(own)) complete = false;
    try {
      const labelled = await this.opts.client.listPods(this.opts.namespace, `${this.opts.labelKey}=leader`, signal);
      for (const pod of labelled) {
        const name = pod.metadata?.name;
        if (name !== undefined && name !== self && this.mayManage(name, state)) staleLeaders.push(name);
      }
    } catch (err) {
      const outcome = this.failed(err, 'list', null, false);
      if (outcome === 'throttled' || outcome === 'aborted') return false;
      complete = false;
    }
    const followers = state.memberIds.filter((id) => id !== this.opts.selfId && !staleLeaders.includes(id));
    const plan: [string, Role][] = [
      ...staleLeaders.map((name): [string, Role] => [name, 'follower']),
      ...followers.map((id): [string, Role] => [id, 'follower']),
    ];
    for (const [pod, role] of plan) {
      // A newer state (another term, or no longer leader) has kicked the loop: stop this pass.
      if (this.desired?.isLeader !== true || this.desired.term !== state.term) return true;
      const outcome = await this.writeRole(pod, role, state.term, signal);
      if (outcome === 'throttled' || outcome === 'aborted') return false;
      if (retryable(outcome)) complete = false;
    }
    return complete;
  }

  /**
   * Pods this node may relabel beyond the current members: ids it has seen as members, and pods of
   * its own StatefulSet. Another raftlet cluster in the namespace using the same label is left alone.
   */
  private mayManage(podName: string, state: RoleState): boolean {
    if (state.memberIds.includes(podName) || this.knownIds.has(podName)) return true;
    const mine = ordinalOf(this.opts.podName);
    const theirs = ordinalOf(podName);
    return mine !== null && theirs !== null && mine.prefix === theirs.prefix;
  }

  /**
   * Read, fence by term, patch with the read resourceVersion; re-read on 409. `known` is a read
   * made moments ago (at the start of the election this node has just won): the first PATCH uses
   * it instead of reading again, which is as safe as a fresh read, since the API server applies the
   * PATCH only if the pod is still at that resourceVersion, i.e. still carries no newer term. On
   * 409 the pod is read again at once (it changed since that read; nobody raced this write).
   */
  private async writeRole(
    podName: string,
    role: Role,
    term: number,
    signal: AbortSignal,
    first: { readonly known: V1Pod | null; readonly since: number } | null = null,
  ): Promise<WriteOutcome> {
    const { client, namespace, labelKey } = this.opts;
    const attempts = this.opts.maxConflictRetries ?? 5;
    let known = first?.known ?? null;
    for (let attempt = 1; ; attempt++) {
      let pod: V1Pod;
      if (known !== null && usable(known, labelKey, role, term)) {
        pod = known;
      } else {
        try {
          pod = await client.getPod(namespace, podName, signal);
        } catch (err) {
          return this.failed(err, 'get', podName, true);
        }
      }
      const podTerm = parseTerm(pod.metadata?.annotations?.[TERM_ANNOTATION]);
      const current = pod.metadata?.labels?.[labelKey];
      if (podTerm > term) {
        this.report('fenced');
        this.logRateLimited(
          `fenced:${podName}:${podTerm}`,
          'info',
          { pod: podName, role, term, podTerm, label: current ?? null },
          `not labelling pod ${podName} ${role}: it carries ${TERM_ANNOTATION}=${podTerm}, newer than our term ${term} (a newer leader wrote it; if this cluster's data was wiped, clear it with: kubectl annotate pod ${podName} ${TERM_ANNOTATION}-)`,
        );
        return 'fenced';
      }
      if (current === role && podTerm === term) return 'unchanged';
      const patch = {
        metadata: {
          resourceVersion: pod.metadata?.resourceVersion,
          labels: { [labelKey]: role },
          annotations: { [TERM_ANNOTATION]: String(term) },
        },
      };
      const usedKnown = known !== null && pod === known;
      known = null;
      const patchedAt = steadyNow();
      try {
        await client.mergePatchPod(namespace, podName, patch, signal);
        this.report('ok');
        // For the own label on taking office: from the win to sending the PATCH, and to its answer.
        const timing =
          first === null ? {} : { msToPatch: patchedAt - first.since, msSinceElected: steadyNow() - first.since, read: usedKnown ? 'at election start' : 'fresh' };
        this.opts.logger.info({ pod: podName, role, term, previous: current ?? null, ...timing }, `labelled pod ${podName} ${labelKey}=${role} (term ${term})`);
        return 'ok';
      } catch (err) {
        const failure = classifyKubeError(err);
        if (failure.kind !== 'conflict') return this.failed(err, 'patch', podName, true);
        this.report('conflict');
        // The pod changed after the election-start read: read it again now, without counting this
        // as a lost race against another writer.
        if (usedKnown) {
          attempt -= 1;
          continue;
        }
        if (attempt >= attempts) {
          this.opts.logger.warn({ pod: podName, attempts }, `pod ${podName} kept changing while labelling it (409 ${attempts} times); retrying later`);
          return 'conflict';
        }
        await sleep(jitter(attempt, this.opts.random), signal);
        if (signal.aborted) return 'aborted';
      }
    }
  }

  /** Classifies, counts and logs a failed call. */
  private failed(err: unknown, verb: string, podName: string | null, count: boolean): WriteOutcome {
    const failure = classifyKubeError(err);
    const { namespace } = this.opts;
    const target = podName === null ? 'pods' : `pod ${podName}`;
    let outcome: WriteOutcome;
    switch (failure.kind) {
      case 'aborted':
        return 'aborted';
      case 'not_found':
        outcome = 'not_found';
        this.logRateLimited(`not_found:${podName ?? ''}`, 'info', { pod: podName }, `${target} not found in namespace ${namespace}; skipping its label`);
        break;
      case 'forbidden': {
        outcome = 'forbidden';
        const rule = describeRule(verb, 'pods', namespace);
        this.logRateLimited(`forbidden:${verb}`, 'error', { rule, status: 403, detail: failure.message }, `Kubernetes RBAC is missing the rule "${rule}": grant it in raftlet's Role (${failure.message})`);
        break;
      }
      case 'throttled':
        outcome = 'throttled';
        this.pausedUntil = Math.max(this.pausedUntil, steadyNow() + failure.retryAfterMs);
        this.logRateLimited('throttled', 'warn', { retryAfterMs: failure.retryAfterMs }, `Kubernetes API is throttling (429); pausing label writes for ${failure.retryAfterMs} ms as Retry-After asks`);
        break;
      case 'conflict':
      case 'unauthorized':
      case 'invalid':
      case 'server':
      case 'timeout':
      case 'unreachable':
      case 'unknown':
        outcome = 'error';
        this.logRateLimited(`error:${failure.kind}`, 'warn', { kind: failure.kind, verb, pod: podName, detail: failure.message }, `Kubernetes API ${verb} of ${target} failed (${failure.kind}: ${failure.message}); retrying with backoff`);
        break;
      default: {
        const never: never = failure;
        return never;
      }
    }
    if (count) this.report(outcome);
    return outcome;
  }

  private report(result: LabelResult): void {
    this.opts.onLabelUpdate?.(result);
  }

  /** The first occurrence of a condition at once, then at most once a minute. */
  private logRateLimited(key: string, level: 'info' | 'warn' | 'error', obj: Record<string, unknown>, msg: string): void {
    const now = steadyNow();
    const last = this.lastLogged.get(key);
    if (last !== undefined && now - last < 60_000) {
      this.opts.logger.debug(obj, msg);
      return;
    }
    this.lastLogged.set(key, now);
    this.opts.logger[level](obj, msg);
  }
}

/**
 * An earlier read is only used to write at once: if it shows the label already right or a newer
 * term, the pod is read again rather than trusting a read that may be out of date.
 */
function usable(pod: V1Pod, labelKey: string, role: Role, term: number): boolean {
  const podTerm = parseTerm(pod.metadata?.annotations?.[TERM_ANNOTATION]);
  if (podTerm > term) return false;
  return !(podTerm === term && pod.metadata?.labels?.[labelKey] === role) && pod.metadata?.resourceVersion !== undefined;
}

function retryable(outcome: WriteOutcome): boolean {
  return outcome === 'error' || outcome === 'conflict' || outcome === 'throttled' || outcome === 'aborted';
}

/** A missing or malformed annotation fences nothing. */
export function parseTerm(value: string | undefined): number {
  if (value === undefined || !/^\d+$/.test(value)) return 0;
  return Number(value);
}

function jitter(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(2000, 50 * 2 ** attempt);
  return ceiling / 2 + (random() * ceiling) / 2;
}

function sameIds(a: readonly NodeId[], b: readonly NodeId[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((id) => set.has(id));
}
