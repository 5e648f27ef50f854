// The few Kubernetes API calls raftlet makes, through @kubernetes/client-node, each with a timeout
// and the content type it needs, plus one place that turns the client's errors into decisions.
import {
  ApiException,
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  createConfiguration,
  KubeConfig,
  Observable,
  PatchStrategy,
  ServerConfiguration,
  type ConfigurationOptions,
  type CoreV1Event,
  type RequestContext,
  type ResponseContext,
  type V1Lease,
  type V1Pod,
  type V1StatefulSet,
} from '@kubernetes/client-node';
import { KubeTransport } from './connection.ts';

export type { CoreV1Event, V1Lease, V1Pod, V1StatefulSet };

/** KUBECONFIG (or the given file), else ~/.kube/config, else the pod's service account. */
export function loadKubeConfig(kubeconfigPath?: string): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfigPath !== undefined) kc.loadFromFile(kubeconfigPath);
  else kc.loadFromDefault();
  if (kc.getCurrentCluster() === null) {
    throw new Error(
      'no Kubernetes cluster configured: run inside a pod with a service account, or set KUBECONFIG to a kubeconfig file (or set RAFTLET_KUBERNETES=0)',
    );
  }
  return kc;
}

/** Who the API server's audit log and throttling see. */
const USER_AGENT = 'raftlet';

export interface KubeClientOptions {
  /** Upper bound of every call, connect to last byte (SPEC §7: the API never blocks Raft). */
  readonly timeoutMs?: number;
}

/** The calls the adapters use. Narrow on purpose: the RBAC rules in rbac.ts must cover all of it. */
export class KubeClient {
  private readonly core: CoreV1Api;
  private readonly coordination: CoordinationV1Api;
  private readonly apps: AppsV1Api;
  private readonly transport: KubeTransport | null;
  private readonly timeoutMs: number;

  constructor(kc: KubeConfig, opts: KubeClientOptions = {}) {
    const cluster = kc.getCurrentCluster();
    if (cluster === null) throw new Error('no Kubernetes cluster configured');
    this.timeoutMs = opts.timeoutMs ?? 5000;
    if (cluster.proxyUrl !== undefined && cluster.proxyUrl !== '') {
      // Through a proxy: client-node's own transport, which knows HTTP, HTTPS and SOCKS proxies.
      this.transport = null;
      this.core = kc.makeApiClient(CoreV1Api);
      this.coordination = kc.makeApiClient(CoordinationV1Api);
      this.apps = kc.makeApiClient(AppsV1Api);
      return;
    }
    // As kc.makeApiClient, over kept-alive connections that send at once (connection.ts).
    this.transport = new KubeTransport(kc);
    const config = createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: this.transport },
      httpApi: this.transport.httpApi,
    });
    this.core = new CoreV1Api(config);
    this.coordination = new CoordinationV1Api(config);
    this.apps = new AppsV1Api(config);
  }

  /** Closes the kept-alive connections (at exit). */
  close(): void {
    this.transport?.close();
  }

  getPod(namespace: string, name: string, signal?: AbortSignal): Promise<V1Pod> {
    return this.core.readNamespacedPod({ name, namespace }, this.options(signal));
  }

  async listPods(namespace: string, labelSelector: string, signal?: AbortSignal): Promise<V1Pod[]> {
    const list = await this.core.listNamespacedPod({ namespace, labelSelector }, this.options(signal));
    return list.items;
  }

  /**
   * JSON merge patch (RFC 7386). The generated client would send application/json-patch+json,
   * which the API server reads as an RFC 6902 operation list, so the content type is set here.
   */
  mergePatchPod(namespace: string, name: string, patch: object, signal?: AbortSignal): Promise<V1Pod> {
    return this.core.patchNamespacedPod(
      { name, namespace, body: patch, fieldManager: 'raftlet' },
      this.options(signal, PatchStrategy.MergePatch),
    );
  }

  /** The pod's own StatefulSet, for its desired replicas (scale.ts). */
  getStatefulSet(namespace: string, name: string, signal?: AbortSignal): Promise<V1StatefulSet> {
    return this.apps.readNamespacedStatefulSet({ name, namespace }, this.options(signal));
  }

  createEvent(namespace: string, event: CoreV1Event, signal?: AbortSignal): Promise<CoreV1Event> {
    return this.core.createNamespacedEvent({ namespace, body: event, fieldManager: 'raftlet' }, this.options(signal));
  }

  readLease(namespace: string, name: string, signal?: AbortSignal): Promise<V1Lease> {
    return this.coordination.readNamespacedLease({ name, namespace }, this.options(signal));
  }

  createLease(namespace: string, lease: V1Lease, signal?: AbortSignal): Promise<V1Lease> {
    return this.coordination.createNamespacedLease({ namespace, body: lease, fieldManager: 'raftlet' }, this.options(signal));
  }

  /** PUT with metadata.resourceVersion as read: the API server answers 409 if it changed since. */
  replaceLease(namespace: string, name: string, lease: V1Lease, signal?: AbortSignal): Promise<V1Lease> {
    return this.coordination.replaceNamespacedLease({ name, namespace, body: lease, fieldManager: 'raftlet' }, this.options(signal));
  }

  private options(signal: AbortSignal | undefined, contentType?: string): ConfigurationOptions {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const combined = signal === undefined ? timeout : AbortSignal.any([timeout, signal]);
    return {
      // A fresh array per call: the generated code reverses the middleware array in place.
      middleware: [
        {
          pre: (ctx: RequestContext): Observable<RequestContext> => {
            ctx.setSignal(combined);
            ctx.setHeaderParam('User-Agent', USER_AGENT);
            if (contentType !== undefined) ctx.setHeaderParam('Content-Type', contentType);
            return new Observable(Promise.resolve(ctx));
          },
          post: (rsp: ResponseContext): Observable<ResponseContext> => new Observable(Promise.resolve(rsp)),
        },
      ],
      middlewareMergeStrategy: 'append',
    };
  }
}

export type KubeFailure =
  | { readonly kind: 'conflict' | 'not_found' | 'forbidden' | 'unauthorized' | 'invalid' | 'server'; readonly status: number; readonly message: string }
  | { readonly kind: 'throttled'; readonly status: 429; readonly retryAfterMs: number; readonly message: string }
  | { readonly kind: 'timeout' | 'unreachable' | 'aborted' | 'unknown'; readonly message: string };

/** What an error from KubeClient means for the caller. */
export function classifyKubeError(err: unknown, fallbackRetryAfterMs = 1000): KubeFailure {
  if (err instanceof ApiException) {
    const status = err.code;
    const message = statusMessage(err.body) ?? `HTTP ${status}`;
    if (status === 409) return { kind: 'conflict', status, message };
    if (status === 404) return { kind: 'not_found', status, message };
    if (status === 403) return { kind: 'forbidden', status, message };
    if (status === 401) return { kind: 'unauthorized', status, message };
    if (status === 429) {
      return { kind: 'throttled', status, message, retryAfterMs: retryAfterMs(err.headers, err.body) ?? fallbackRetryAfterMs };
    }
    if (status === 400 || status === 415 || status === 422) return { kind: 'invalid', status, message };
    return { kind: 'server', status, message };
  }
  if (err instanceof Error) {
    const cause = (err as Error & { cause?: unknown }).cause;
    if (err.name === 'TimeoutError' || (cause instanceof Error && cause.name === 'TimeoutError')) {
      return { kind: 'timeout', message: 'Kubernetes API call timed out' };
    }
    if (err.name === 'AbortError' || (cause instanceof Error && cause.name === 'AbortError')) {
      return { kind: 'aborted', message: 'Kubernetes API call aborted' };
    }
    // node:http puts the errno code on the error itself, fetch on its cause.
    const code = (err as NodeJS.ErrnoException).code ?? (cause as NodeJS.ErrnoException | undefined)?.code;
    if (code !== undefined) return { kind: 'unreachable', message: `${err.message}: ${code}` };
    return { kind: 'unknown', message: err.message };
  }
  return { kind: 'unknown', message: String(err) };
}

function statusMessage(body: unknown): string | undefined {
  const parsed = typeof body === 'string' ? tryParse(body) : body;
  if (typeof parsed === 'object' && parsed !== null && 'message' in parsed && typeof parsed.message === 'string') {
    return parsed.message;
  }
  return typeof body === 'string' && body !== '' ? body.slice(0, 300) : undefined;
}

function retryAfterMs(headers: Record<string, string>, body: unknown): number | undefined {
  const header = headers['retry-after'] ?? headers['Retry-After'];
  if (header !== undefined) {
    const secs = Number(header);
    if (Number.isFinite(secs) && secs >= 0) return secs * 1000;
    const date = Date.parse(header);
    if (!Number.isNaN(date)) return Math.max(0, date - Date.now());
  }
  const parsed = typeof body === 'string' ? tryParse(body) : body;
  if (typeof parsed === 'object' && parsed !== null && 'details' in parsed) {
    const details = parsed.details;
    if (typeof details === 'object' && details !== null && 'retryAfterSeconds' in details && typeof details.retryAfterSeconds === 'number') {
      return details.retryAfterSeconds * 1000;
    }
  }
  return undefined;
}

function tryParse(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
