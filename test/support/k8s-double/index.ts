// A Kubernetes API server test double over HTTP on 127.0.0.1. It behaves like kube-apiserver for
// every call raftlet, `kubectl get` and `kubectl scale` make: bearer-token authentication, a
// Role-like authorizer (resourceNames and subresources included), pods / events / leases /
// statefulsets (with the scale subresource) as real Kubernetes JSON with a resourceVersion that
// moves on every change,
// optimistic concurrency (409), patch content types (415 for anything else), label selectors,
// Status bodies with the real messages, discovery documents, Table output, and fault injection.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeKubeconfig } from './kubeconfig.ts';
import { isObject, jsonPatch, mergePatch, PatchError, strategicMergePatch, type Json } from './patch.ts';
import { allows, specRole, type Rule } from './rbac.ts';
import {
  apiGroup,
  apiGroupList,
  apiResourceList,
  apiVersionOf,
  apiVersions,
  endpointSlices as endpointSlicesDef,
  events as eventsDef,
  findResource,
  leases as leasesDef,
  pods as podsDef,
  statefulSets as statefulSetsDef,
  versionInfo,
  type ResourceDef,
} from './resources.ts';
import { matchesSelector, parseLabelSelector } from './selectors.ts';
import { checkScale, scaleOf } from './scale.ts';
import * as S from './status.ts';
import { podTable } from './table.ts';

export type { Rule } from './rbac.ts';
export { specRole } from './rbac.ts';
export { writeKubeconfig } from './kubeconfig.ts';

export type JsonObject = { [key: string]: Json };

export interface K8sDoubleOptions {
  /** The namespace the service account lives in (kubeconfig default). Default `default`. */
  readonly namespace?: string;
  readonly token?: string;
  /** The user named in 403 messages. Default system:serviceaccount:<namespace>:raftlet. */
  readonly user?: string;
  /** The authorization table of the token's user. Default: SPEC §7's Role with leases. */
  readonly rules?: readonly Rule[];
  /**
   * What a request without credentials may do, as user system:anonymous (discovery is always
   * open, as on a real API server). Default: nothing. kubectl (client-go) never sends a bearer
   * token over plain HTTP, so a test that runs kubectl against the double grants view rules here.
   */
  readonly anonymousRules?: readonly Rule[];
}

export interface PodInput {
  readonly name: string;
  readonly namespace?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
  readonly podIP?: string;
  /** metadata.ownerReferences, e.g. the pod's StatefulSet (statefulSets.ownerReference). */
  readonly ownerReferences?: readonly JsonObject[];
  /** spec.terminationGracePeriodSeconds; default 30, as the API server defaults it. */
  readonly terminationGracePeriodSeconds?: number;
}

export interface StatefulSetInput {
  readonly name: string;
  readonly namespace?: string;
  readonly replicas: number;
  readonly podManagementPolicy?: 'OrderedReady' | 'Parallel';
  readonly serviceName?: string;
  /** spec.selector.matchLabels and the pod template's labels. */
  readonly labels?: Record<string, string>;
}

/** One endpoint of an EndpointSlice: a pod of the Service, ready or not. */
export interface EndpointInput {
  readonly pod: string;
  readonly ip?: string;
  readonly ready?: boolean;
}

export interface RequestRecord {
  /** Date.now() when the request's headers arrived. */
  readonly at: number;
  /**
   * Which TCP connection carried it: 1 for the first connection the double accepted, 2 for the
   * next, ... Two requests with the same number share a kept-alive connection.
   */
  readonly connection: number;
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly contentType: string;
  readonly accept: string;
  /** RBAC verb (get, list, patch, ...) for resource requests; '' for discovery and unknown paths. */
  readonly verb: string;
  /** The authenticated user, or system:anonymous. */
  readonly user: string;
  readonly resource: string;
  readonly namespace: string;
  readonly name: string;
  readonly body: unknown;
  status: number;
}

export interface FaultMatch {
  readonly method?: string;
  readonly verb?: string;
  readonly resource?: string;
  readonly name?: string;
}

export interface Faults {
  /** The next `times` matching requests fail with `status` (and a Status body). */
  failNext(times: number, status: number, opts?: { match?: FaultMatch; retryAfterSeconds?: number }): void;
  /** 429 TooManyRequests with a Retry-After header, as API Priority and Fairness answers. */
  throttle(times: number, retryAfterSeconds: number, match?: FaultMatch): void;
  /** Answer matching requests only after `ms` (times = how many; default every request). */
  delay(ms: number, opts?: { times?: number; match?: FaultMatch }): void;
  /**
   * Run `fn` right after each of the next `times` matching requests has been answered, before the
   * client can act on the answer (the double and the test share one event loop): e.g. another
   * controller changing a pod between a client's GET and its PATCH.
   */
  afterResponse(times: number, match: FaultMatch, fn: () => void): void;
  /** Accept requests and never answer them, until up() / clear() / stop(). */
  hang(match?: FaultMatch): void;
  /** 'refuse': stop listening (ECONNREFUSED); 'reset': accept and drop every connection. */
  down(mode?: 'refuse' | 'reset'): Promise<void>;
  /** Listen again on the same port and release hung requests. */
  up(): Promise<void>;
  /** Remove every injected fault (and come back up). */
  clear(): Promise<void>;
}

export interface K8sDouble {
  readonly url: string;
  readonly port: number;
  readonly namespace: string;
  readonly token: string;
  readonly user: string;
  /** A kubeconfig (server, token, namespace) for client-node and kubectl. */
  readonly kubeconfigPath: string;
  readonly pods: {
    add(pod: PodInput): JsonObject;
    get(name: string, namespace?: string): JsonObject | undefined;
    list(namespace?: string): JsonObject[];
    labels(name: string, namespace?: string): Record<string, string>;
    annotations(name: string, namespace?: string): Record<string, string>;
    /** Another controller's write: mutate the stored pod, bumping its resourceVersion. */
    update(name: string, mutate: (pod: JsonObject) => void, namespace?: string): JsonObject;
    delete(name: string, namespace?: string): boolean;
  };
  readonly events: { list(namespace?: string): JsonObject[] };
  readonly leases: {
    get(name: string, namespace?: string): JsonObject | undefined;
    update(name: string, mutate: (lease: JsonObject) => void, namespace?: string): JsonObject;
  };
  /** EndpointSlices as the EndpointSlice controller keeps them: one slice per Service here. */
  readonly endpointSlices: {
    /** Creates or replaces <service>-<suffix>, labelled kubernetes.io/service-name=<service>. */
    set(service: string, endpoints: readonly EndpointInput[], namespace?: string): JsonObject;
    list(namespace?: string): JsonObject[];
  };
  readonly statefulSets: {
    add(input: StatefulSetInput): JsonObject;
    get(name: string, namespace?: string): JsonObject | undefined;
    /** Another controller's write (the StatefulSet controller's status), bumping resourceVersion. */
    update(name: string, mutate: (sts: JsonObject) => void, namespace?: string): JsonObject;
    /** The owner reference its pods carry. */
    ownerReference(name: string, namespace?: string): JsonObject;
    /** Called after every stored change of any StatefulSet (through the API or update()). */
    onChange(listener: (sts: JsonObject) => void): () => void;
  };
  readonly rbac: { set(rules: readonly Rule[]): void };
  readonly faults: Faults;
  /** Every request, in arrival order, with the status it got (0 while unanswered). */
  readonly requests: readonly RequestRecord[];
  stop(): Promise<void>;
}

interface StatusFault {
  readonly kind: 'status';
  remaining: number;
  readonly status: number;
  readonly retryAfterSeconds: number | undefined;
  readonly match: FaultMatch;
}
interface DelayFault {
  readonly kind: 'delay';
  remaining: number;
  readonly ms: number;
  readonly match: FaultMatch;
}
interface HangFault {
  readonly kind: 'hang';
  readonly match: FaultMatch;
}
interface AfterHook {
  remaining: number;
  readonly match: FaultMatch;
  readonly fn: () => void;
}
type Fault = StatusFault | DelayFault | HangFault;

type Route =
  | { readonly kind: 'discovery'; readonly body: JsonObject }
  | {
      readonly kind: 'resource';
      readonly def: ResourceDef;
      readonly namespace: string | null;
      readonly name: string | undefined;
      /** e.g. `scale` for /statefulsets/<name>/scale. */
      readonly subresource?: 'scale';
    };

const PATCH_TYPES = [
  'application/json-patch+json',
  'application/merge-patch+json',
  'application/strategic-merge-patch+json',
  'application/apply-patch+yaml',
];
const BODY_TYPES = ['application/json', 'application/yaml', 'application/vnd.kubernetes.protobuf'];
const MAX_BODY = 3 * 1024 * 1024;

export async function startK8sDouble(opts: K8sDoubleOptions = {}): Promise<K8sDouble> {
  const namespace = opts.namespace ?? 'default';
  const token = opts.token ?? `raftlet-test-${randomUUID()}`;
  const user = opts.user ?? `system:serviceaccount:${namespace}:raftlet`;
  let rules: readonly Rule[] = opts.rules ?? specRole(true);
  const anonymousRules: readonly Rule[] = opts.anonymousRules ?? [];
  const store = new Map<string, JsonObject>();
  let revision = 1000;
  const faults: Fault[] = [];
  const afterHooks: AfterHook[] = [];
  const stsListeners = new Set<(sts: JsonObject) => void>();
  const requests: RequestRecord[] = [];
  const sockets = new Set<Socket>();
  const connectionOf = new WeakMap<Socket, number>();
  let connections = 0;
  const held = new Set<ServerResponse>();
  let mode: 'up' | 'refuse' | 'reset' = 'up';
  let port = 0;

  const key = (def: ResourceDef, ns: string, name: string): string => `${def.group}/${def.resource}/${ns}/${name}`;
  const nextRevision = (): string => String(++revision);

  function stamp(def: ResourceDef, ns: string, obj: JsonObject): JsonObject {
    const meta = isObject(obj.metadata) ? obj.metadata : {};
    return {
      ...obj,
      kind: def.kind,
      apiVersion: apiVersionOf(def),
      metadata: {
        ...meta,
        namespace: ns,
        uid: typeof meta.uid === 'string' ? meta.uid : randomUUID(),
        resourceVersion: nextRevision(),
        creationTimestamp: typeof meta.creationTimestamp === 'string' ? meta.creationTimestamp : nowSeconds(),
      },
    };
  }

  function listOf(def: ResourceDef, ns: string | null): JsonObject[] {
    const prefix = ns === null ? `${def.group}/${def.resource}/` : `${def.group}/${def.resource}/${ns}/`;
    return [...store.entries()]
      .filter(([k]) => k.startsWith(prefix))
      .map(([, v]) => v)
      .sort((a, b) => nameOf(a).localeCompare(nameOf(b)));
  }

  // ---- HTTP ---------------------------------------------------------------------------------------

  const server: Server = createServer((req, res) => {
    // Taken when the request's headers have arrived, before its body is read.
    const arrivedAt = Date.now();
    void handle(req, res, arrivedAt).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, S.internalError((err as Error).message));
    });
  });
  server.on('connection', (socket: Socket) => {
    if (mode === 'reset') {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    connectionOf.set(socket, ++connections);
    socket.on('close', () => sockets.delete(socket));
  });

  async function handle(req: IncomingMessage, res: ServerResponse, arrivedAt: number): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = (req.method ?? 'GET').toUpperCase();
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    const raw = await readBody(req);
    const route = routeOf(url.pathname);
    const verb = route?.kind === 'resource' ? verbOf(method, route.name, url.searchParams) : '';
    const record: RequestRecord = {
      at: arrivedAt,
      connection: connectionOf.get(req.socket) ?? 0,
      method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      contentType,
      accept: req.headers.accept ?? '',
      verb,
      user: req.headers.authorization === undefined ? 'system:anonymous' : user,
      resource: route?.kind === 'resource' ? rbacResource(route) : '',
      namespace: route?.kind === 'resource' ? (route.namespace ?? '') : '',
      name: route?.kind === 'resource' ? (route.name ?? '') : '',
      body: parseJson(raw) ?? (raw.length > 0 ? raw.toString('utf8') : undefined),
      status: 0,
    };
    requests.push(record);
    res.on('finish', () => {
      record.status = res.statusCode;
    });
    const hook = afterHooks.find((h) => matches(h.match, record));
    if (hook !== undefined) {
      hook.remaining -= 1;
      if (hook.remaining <= 0) afterHooks.splice(afterHooks.indexOf(hook), 1);
      const end = res.end.bind(res);
      // Runs synchronously inside end(), so the mutation lands before the client reads the answer.
      res.end = ((...args: Parameters<typeof end>) => {
        const result = end(...args);
        hook.fn();
        return result;
      }) as typeof res.end;
    }

    // No credentials = the anonymous user; wrong credentials = 401, as with --anonymous-auth=true.
    const authorization = req.headers.authorization;
    if (authorization !== undefined && authorization !== `Bearer ${token}`) return send(res, 401, S.unauthorized());
    const anonymous = authorization === undefined;

    const fault = takeFault(record);
    if (fault?.kind === 'hang') {
      held.add(res);
      res.on('close', () => held.delete(res));
      return;
    }
    if (fault?.kind === 'delay') await new Promise((resolve) => setTimeout(resolve, fault.ms));
    if (fault?.kind === 'status') {
      const headers: Record<string, string> = {};
      if (fault.retryAfterSeconds !== undefined) headers['Retry-After'] = String(fault.retryAfterSeconds);
      const body = fault.status === 429 ? S.tooManyRequests(fault.retryAfterSeconds ?? 1) : S.internalError(`injected fault ${fault.status}`);
      return send(res, fault.status, { ...body, code: fault.status }, headers);
    }

    if (route === null) return send(res, 404, S.pathNotFound());
    if (route.kind === 'discovery') {
      if (method !== 'GET') return send(res, 405, S.methodNotAllowed());
      return send(res, 200, route.body);
    }

    const { def } = route;
    const ref: S.ResourceRef = { resource: def.resource, group: def.group, name: route.name };
    // The rules are a Role in the service account's namespace: they grant nothing elsewhere,
    // and nothing at the cluster scope.
    const granted = route.namespace === namespace && allows(anonymous ? anonymousRules : rules, def.group, rbacResource(route), verb, route.name);
    if (!granted) {
      return send(res, 403, S.forbidden(ref, anonymous ? 'system:anonymous' : user, verb, route.namespace, route.subresource));
    }
    const ns = namespace;
    if (route.subresource === 'scale') return doScale(res, def, ns, ref, verb, contentType, raw);
    switch (verb) {
      case 'get':
        return doGet(res, def, ns, ref);
      case 'list':
        return sendList(res, def, listOf(def, ns), url.searchParams, req.headers.accept ?? '');
      case 'watch':
        return send(res, 400, S.badRequest('watch is not supported by the k8s double'));
      case 'create':
        return doCreate(res, def, ns, contentType, raw);
      case 'update':
        return doUpdate(res, def, ns, ref, contentType, raw);
      case 'patch':
        return doPatch(res, def, ns, ref, contentType, raw);
      case 'delete':
        return doDelete(res, def, ns, ref);
      default:
        return send(res, 405, S.methodNotAllowed());
    }
  }

  function doGet(res: ServerResponse, def: ResourceDef, ns: string, ref: S.ResourceRef): void {
    const obj = store.get(key(def, ns, ref.name ?? ''));
    if (obj === undefined) return send(res, 404, S.notFound(ref));
    send(res, 200, obj);
  }

  function sendList(res: ServerResponse, def: ResourceDef, items: JsonObject[], params: URLSearchParams, accept: string): void {
    let selected = items;
    const selector = params.get('labelSelector');
    if (selector !== null && selector !== '') {
      let parsed;
      try {
        parsed = parseLabelSelector(selector);
      } catch (err) {
        return send(res, 400, S.badRequest((err as Error).message));
      }
      selected = items.filter((obj) => matchesSelector(parsed, labelsOf(obj)));
    }
    const fieldSelector = params.get('fieldSelector');
    if (fieldSelector !== null && fieldSelector !== '') {
      // Every kind supports metadata.name and metadata.namespace (kubectl delete --wait and
      // kubectl wait list by name); other fields are kind-specific and not modelled.
      for (const term of fieldSelector.split(',')) {
        const match = /^(metadata\.name|metadata\.namespace)(==|=|!=)(.*)$/.exec(term.trim());
        if (match === null) {
          return send(res, 400, S.badRequest(`"${term.split(/!?=/)[0] ?? term}" is not a known field selector: only "metadata.name", "metadata.namespace"`));
        }
        const [, field, op, value] = match;
        const metaField = field === 'metadata.name' ? 'name' : 'namespace';
        selected = selected.filter((obj) => (metaOf(obj)[metaField] === value) === (op !== '!='));
      }
    }
    const listRv = String(revision);
    if (accept.includes('as=Table') && def === podsDef) {
      return send(res, 200, podTable(selected, listRv, params.get('includeObject') ?? 'Metadata'));
    }
    send(res, 200, { kind: `${def.kind}List`, apiVersion: apiVersionOf(def), metadata: { resourceVersion: listRv }, items: selected });
  }

  function decodeBody(res: ServerResponse, def: ResourceDef, contentType: string, raw: Buffer): JsonObject | null {
    // Without a Content-Type the API server reads the body as its first media type, JSON
    // (NegotiateInputSerializer); client-go's scale client sends its PUT that way.
    if (contentType !== 'application/json' && contentType !== '') {
      send(res, 415, S.unsupportedMediaType(contentType, BODY_TYPES));
      return null;
    }
    const body = parseJson(raw);
    if (!isObject(body)) {
      send(res, 400, S.badRequest(`${def.kind} in version "${def.version}" cannot be handled as a ${def.kind}: the request body is not a JSON object`));
      return null;
    }
    if ((body.kind !== undefined && body.kind !== def.kind) || (body.apiVersion !== undefined && body.apiVersion !== apiVersionOf(def))) {
      send(res, 400, S.badRequest(`the API version in the data (${String(body.apiVersion)}) does not match the expected API version (${apiVersionOf(def)})`));
      return null;
    }
    return body;
  }

  /** Decoding (400) and field validation (422) of a would-be stored object; true if it may be stored. */
  function admit(res: ServerResponse, def: ResourceDef, ns: string, ref: S.ResourceRef, obj: JsonObject): boolean {
    const decodeError = def.decode(obj);
    if (decodeError !== null) {
      send(res, 400, S.badRequest(decodeError));
      return false;
    }
    const causes = def.validate(obj, ns);
    if (causes.length > 0) {
      send(res, 422, S.invalid(def.kind, ref, causes));
      return false;
    }
    return true;
  }

  function doCreate(res: ServerResponse, def: ResourceDef, ns: string, contentType: string, raw: Buffer): void {
    const body = decodeBody(res, def, contentType, raw);
    if (body === null) return;
    const meta = isObject(body.metadata) ? body.metadata : {};
    if (meta.namespace !== undefined && meta.namespace !== ns) {
      return send(res, 400, S.badRequest('the namespace of the provided object does not match the namespace sent on the request'));
    }
    let name = typeof meta.name === 'string' ? meta.name : '';
    if (name === '' && typeof meta.generateName === 'string' && meta.generateName !== '') {
      name = meta.generateName + randomSuffix();
    }
    const ref: S.ResourceRef = { resource: def.resource, group: def.group, name };
    if (name === '') {
      return send(res, 422, S.invalid(def.kind, ref, [{ field: 'metadata.name', message: 'Required value: name or generateName is required' }]));
    }
    if (meta.resourceVersion !== undefined && meta.resourceVersion !== '') {
      return send(res, 400, S.badRequest('resourceVersion should not be set on objects to be created'));
    }
    const candidate: JsonObject = { ...body, metadata: { ...meta, name, uid: null, creationTimestamp: null } };
    if (!admit(res, def, ns, ref, candidate)) return;
    if (store.has(key(def, ns, name))) return send(res, 409, S.alreadyExists(ref));
    const cleanMeta: JsonObject = { ...meta, name };
    delete cleanMeta.uid;
    delete cleanMeta.creationTimestamp;
    const obj = stamp(def, ns, { ...body, metadata: cleanMeta });
    store.set(key(def, ns, name), obj);
    send(res, 201, obj);
  }

  function doUpdate(res: ServerResponse, def: ResourceDef, ns: string, ref: S.ResourceRef, contentType: string, raw: Buffer): void {
    const body = decodeBody(res, def, contentType, raw);
    if (body === null) return;
    const current = store.get(key(def, ns, ref.name ?? ''));
    if (current === undefined) return send(res, 404, S.notFound(ref));
    const meta = isObject(body.metadata) ? body.metadata : {};
    if (meta.name !== ref.name) {
      return send(res, 400, S.badRequest(`the name of the object (${String(meta.name)}) does not match the name on the URL (${ref.name ?? ''})`));
    }
    if (typeof meta.resourceVersion !== 'string' || meta.resourceVersion === '') {
      return send(res, 422, S.invalid(def.kind, ref, [{ field: 'metadata.resourceVersion', message: 'Invalid value: 0x0: must be specified for an update' }]));
    }
    if (!admit(res, def, ns, ref, body)) return;
    if (meta.resourceVersion !== metaOf(current).resourceVersion) return send(res, 409, S.conflict(ref));
    const next = commitChange(def, ns, current, body);
    send(res, 200, next);
  }

  function doPatch(res: ServerResponse, def: ResourceDef, ns: string, ref: S.ResourceRef, contentType: string, raw: Buffer): void {
    if (!PATCH_TYPES.includes(contentType)) return send(res, 415, S.unsupportedMediaType(contentType, PATCH_TYPES));
    if (contentType === 'application/apply-patch+yaml') {
      return send(res, 415, S.unsupportedMediaType(`${contentType} (server-side apply is not modelled by the k8s double)`, PATCH_TYPES.slice(0, 3)));
    }
    const current = store.get(key(def, ns, ref.name ?? ''));
    if (current === undefined) return send(res, 404, S.notFound(ref));
    const patch = parseJson(raw);
    if (patch === undefined) return send(res, 400, S.badRequest('the request body is not valid JSON'));
    let patched: Json;
    try {
      if (contentType === 'application/merge-patch+json') {
        if (!isObject(patch)) throw new PatchError(400, 'merge patch must be a JSON object');
        patched = mergePatch(current, patch);
      } else if (contentType === 'application/strategic-merge-patch+json') {
        patched = strategicMergePatch(current, patch);
      } else {
        patched = jsonPatch(current, patch);
      }
    } catch (err) {
      if (err instanceof PatchError) return send(res, err.status, err.status === 400 ? S.badRequest(err.message) : S.invalid(def.kind, ref, [{ field: '', message: err.message }]));
      throw err;
    }
    if (!isObject(patched)) return send(res, 400, S.badRequest('the patch did not produce an object'));
    const meta = metaOf(patched);
    const currentMeta = metaOf(current);
    if (meta.name !== currentMeta.name) {
      return send(res, 400, S.badRequest(`the name of the object (${String(meta.name)}) does not match the name on the URL (${ref.name ?? ''})`));
    }
    if (meta.uid !== undefined && meta.uid !== currentMeta.uid) {
      return send(res, 409, S.uidConflict(ref, String(meta.uid), String(currentMeta.uid)));
    }
    if (!admit(res, def, ns, ref, patched)) return;
    // A resourceVersion inside the patch is a precondition (optimistic concurrency).
    if (meta.resourceVersion !== currentMeta.resourceVersion) return send(res, 409, S.conflict(ref));
    const next = commitChange(def, ns, current, patched);
    send(res, 200, next);
  }

  function doDelete(res: ServerResponse, def: ResourceDef, ns: string, ref: S.ResourceRef): void {
    const k = key(def, ns, ref.name ?? '');
    const current = store.get(k);
    if (current === undefined) return send(res, 404, S.notFound(ref));
    store.delete(k);
    send(res, 200, current);
  }

  /** GET, PUT and PATCH of a StatefulSet's scale: a view whose spec.replicas writes through. */
  function doScale(res: ServerResponse, def: ResourceDef, ns: string, ref: S.ResourceRef, verb: string, contentType: string, raw: Buffer): void {
    const current = store.get(key(def, ns, ref.name ?? ''));
    if (current === undefined) return send(res, 404, S.notFound(ref));
    const scaleRef: S.ResourceRef = { resource: 'scale', group: 'autoscaling', name: ref.name };
    let written: Json;
    switch (verb) {
      case 'get':
        return send(res, 200, scaleOf(current));
      case 'update': {
        if (contentType !== 'application/json' && contentType !== '') return send(res, 415, S.unsupportedMediaType(contentType, BODY_TYPES));
        const body = parseJson(raw);
        if (body === undefined) return send(res, 400, S.badRequest('the request body is not valid JSON'));
        written = body;
        break;
      }
      case 'patch': {
        if (!PATCH_TYPES.slice(0, 3).includes(contentType)) return send(res, 415, S.unsupportedMediaType(contentType, PATCH_TYPES.slice(0, 3)));
        const patch = parseJson(raw);
        if (patch === undefined) return send(res, 400, S.badRequest('the request body is not valid JSON'));
        try {
          const base = scaleOf(current);
          if (contentType === 'application/merge-patch+json') {
            if (!isObject(patch)) throw new PatchError(400, 'merge patch must be a JSON object');
            written = mergePatch(base, patch);
          } else if (contentType === 'application/strategic-merge-patch+json') written = strategicMergePatch(base, patch);
          else written = jsonPatch(base, patch);
        } catch (err) {
          if (err instanceof PatchError) return send(res, err.status === 400 ? 400 : 422, err.status === 400 ? S.badRequest(err.message) : S.invalid('Scale', scaleRef, [{ field: '', message: err.message }]));
          throw err;
        }
        break;
      }
      default:
        return send(res, 405, S.methodNotAllowed());
    }
    const check = checkScale(written);
    if (!check.ok) {
      return send(res, check.status, check.status === 400 ? S.badRequest(check.message) : S.invalid('Scale', scaleRef, [{ field: check.field ?? '', message: check.message }]));
    }
    const meta = isObject(written) && isObject(written.metadata) ? written.metadata : {};
    const currentMeta = metaOf(current);
    if (meta.name !== undefined && meta.name !== currentMeta.name) {
      return send(res, 400, S.badRequest(`the name of the object (${String(meta.name)}) does not match the name on the URL (${ref.name ?? ''})`));
    }
    // A resourceVersion in the written Scale is a precondition on the StatefulSet's (they are one).
    if (typeof meta.resourceVersion === 'string' && meta.resourceVersion !== '' && meta.resourceVersion !== currentMeta.resourceVersion) {
      return send(res, 409, S.conflict(ref));
    }
    const spec = isObject(current.spec) ? current.spec : {};
    const next = commitChange(def, ns, current, { ...current, spec: { ...spec, replicas: check.replicas } });
    send(res, 200, scaleOf(next));
  }

  /** Stores `next` over `current`, keeping server-owned fields; no-op writes keep the version. */
  function commitChange(def: ResourceDef, ns: string, current: JsonObject, next: JsonObject): JsonObject {
    const currentMeta = metaOf(current);
    const merged: JsonObject = {
      ...next,
      kind: def.kind,
      apiVersion: apiVersionOf(def),
      metadata: {
        ...metaOf(next),
        namespace: ns,
        uid: currentMeta.uid ?? null,
        creationTimestamp: currentMeta.creationTimestamp ?? null,
        resourceVersion: currentMeta.resourceVersion ?? null,
      },
    };
    if (JSON.stringify(canonical(merged)) === JSON.stringify(canonical(current))) return current;
    // metadata.generation counts spec changes (the StatefulSet controller reports observedGeneration).
    if (def === statefulSetsDef && JSON.stringify(canonical(merged.spec ?? null)) !== JSON.stringify(canonical(current.spec ?? null))) {
      (merged.metadata as JsonObject).generation = (typeof currentMeta.generation === 'number' ? currentMeta.generation : 1) + 1;
    }
    (merged.metadata as JsonObject).resourceVersion = nextRevision();
    store.set(key(def, ns, String(currentMeta.name)), merged);
    if (def === statefulSetsDef) for (const listener of stsListeners) listener(structuredClone(merged));
    return merged;
  }

  // ---- routing ------------------------------------------------------------------------------------

  function routeOf(path: string): Route | null {
    const parts = path.split('/').filter((p) => p !== '');
    const serverAddress = `127.0.0.1:${port}`;
    if (parts.length === 1 && parts[0] === 'version') return { kind: 'discovery', body: versionInfo() };
    if (parts[0] === 'api') {
      if (parts.length === 1) return { kind: 'discovery', body: apiVersions(serverAddress) };
      const version = parts[1] ?? '';
      if (parts.length === 2) {
        const list = apiResourceList('', version);
        return list === null ? null : { kind: 'discovery', body: list };
      }
      return resourceRoute('', version, parts.slice(2));
    }
    if (parts[0] === 'apis') {
      if (parts.length === 1) return { kind: 'discovery', body: apiGroupList() };
      const group = parts[1] ?? '';
      if (parts.length === 2) {
        const body = apiGroup(group);
        return body === null ? null : { kind: 'discovery', body };
      }
      const version = parts[2] ?? '';
      if (parts.length === 3) {
        const list = apiResourceList(group, version);
        return list === null ? null : { kind: 'discovery', body: list };
      }
      return resourceRoute(group, version, parts.slice(3));
    }
    return null;
  }

  function resourceRoute(group: string, version: string, rest: string[]): Route | null {
    if (rest[0] === 'namespaces' && rest.length >= 3 && rest.length <= 4) {
      const def = findResource(group, version, rest[2] ?? '');
      if (def === undefined) return null;
      return { kind: 'resource', def, namespace: decodeURIComponent(rest[1] ?? ''), name: rest[3] === undefined ? undefined : decodeURIComponent(rest[3]) };
    }
    if (rest[0] === 'namespaces' && rest.length === 5 && rest[4] === 'scale') {
      const def = findResource(group, version, rest[2] ?? '');
      if (def !== statefulSetsDef) return null;
      return { kind: 'resource', def, namespace: decodeURIComponent(rest[1] ?? ''), name: decodeURIComponent(rest[3] ?? ''), subresource: 'scale' };
    }
    if (rest.length === 1) {
      const def = findResource(group, version, rest[0] ?? '');
      return def === undefined ? null : { kind: 'resource', def, namespace: null, name: undefined };
    }
    return null;
  }

  // ---- faults -------------------------------------------------------------------------------------

  function takeFault(record: RequestRecord): Fault | undefined {
    const index = faults.findIndex((f) => matches(f.match, record));
    const fault = faults[index];
    if (fault === undefined) return undefined;
    if (fault.kind !== 'hang') {
      fault.remaining -= 1;
      if (fault.remaining <= 0) faults.splice(index, 1);
    }
    return fault;
  }

  function releaseHeld(): void {
    for (const res of held) res.destroy();
    held.clear();
  }

  async function listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    if (address !== null && typeof address === 'object') port = address.port;
  }

  async function closeListener(): Promise<void> {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    server.closeAllConnections();
    await closed;
  }

  const faultApi: Faults = {
    failNext(times, status, o = {}) {
      faults.push({ kind: 'status', remaining: times, status, retryAfterSeconds: o.retryAfterSeconds, match: o.match ?? {} });
    },
    throttle(times, retryAfterSeconds, match = {}) {
      faults.push({ kind: 'status', remaining: times, status: 429, retryAfterSeconds, match });
    },
    delay(ms, o = {}) {
      faults.push({ kind: 'delay', remaining: o.times ?? Number.POSITIVE_INFINITY, ms, match: o.match ?? {} });
    },
    afterResponse(times, match, fn) {
      afterHooks.push({ remaining: times, match, fn });
    },
    hang(match = {}) {
      faults.push({ kind: 'hang', match });
    },
    async down(how = 'refuse') {
      if (mode !== 'up') return;
      mode = how;
      releaseHeld();
      if (how === 'refuse') await closeListener();
      else for (const socket of sockets) socket.destroy();
    },
    async up() {
      releaseHeld();
      for (let i = faults.length - 1; i >= 0; i--) if (faults[i]?.kind === 'hang') faults.splice(i, 1);
      const was = mode;
      mode = 'up';
      if (was === 'refuse') await listenAgain();
    },
    async clear() {
      faults.length = 0;
      afterHooks.length = 0;
      await faultApi.up();
    },
  };

  /** The port may be taken in the instant it was free; retry briefly rather than fail the test. */
  async function listenAgain(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await listen();
        return;
      } catch (err) {
        if (attempt >= 50 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  }

  await listen();
  const dir = await mkdtemp(join(tmpdir(), 'k8s-double-'));
  const url = `http://127.0.0.1:${port}`;
  const kubeconfigPath = await writeKubeconfig({ dir, server: url, token, namespace });

  const podApi: K8sDouble['pods'] = {
    add(input) {
      const ns = input.namespace ?? namespace;
      const pod = stamp(podsDef, ns, makePod(input, ns));
      store.set(key(podsDef, ns, input.name), pod);
      return structuredClone(pod);
    },
    get(name, ns = namespace) {
      const pod = store.get(key(podsDef, ns, name));
      return pod === undefined ? undefined : structuredClone(pod);
    },
    list(ns = namespace) {
      return listOf(podsDef, ns).map((p) => structuredClone(p));
    },
    labels(name, ns = namespace) {
      return stringMap(metaOf(store.get(key(podsDef, ns, name)) ?? {}).labels);
    },
    annotations(name, ns = namespace) {
      return stringMap(metaOf(store.get(key(podsDef, ns, name)) ?? {}).annotations);
    },
    update(name, mutate, ns = namespace) {
      return mutateStored(podsDef, ns, name, mutate);
    },
    delete(name, ns = namespace) {
      return store.delete(key(podsDef, ns, name));
    },
  };

  const endpointSliceApi: K8sDouble['endpointSlices'] = {
    set(service, endpoints, ns = namespace) {
      const name = `${service}-x7k2q`;
      const slice: JsonObject = {
        metadata: {
          name,
          generateName: `${service}-`,
          labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
        },
        addressType: 'IPv4',
        endpoints: endpoints.map((e, i) => ({
          addresses: [e.ip ?? `10.0.0.${i + 10}`],
          conditions: { ready: e.ready ?? true, serving: e.ready ?? true, terminating: false },
          targetRef: { kind: 'Pod', name: e.pod, namespace: ns },
        })),
        ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      };
      const current = store.get(key(endpointSlicesDef, ns, name));
      const stored = current === undefined ? stamp(endpointSlicesDef, ns, slice) : commitChange(endpointSlicesDef, ns, current, slice);
      store.set(key(endpointSlicesDef, ns, name), stored);
      return structuredClone(stored);
    },
    list: (ns = namespace) => listOf(endpointSlicesDef, ns).map((e) => structuredClone(e)),
  };

  function mutateStored(def: ResourceDef, ns: string, name: string, mutate: (obj: JsonObject) => void): JsonObject {
    const current = store.get(key(def, ns, name));
    if (current === undefined) throw new Error(`k8s double: no ${def.resource} ${ns}/${name}`);
    const copy = structuredClone(current);
    mutate(copy);
    return structuredClone(commitChange(def, ns, current, copy));
  }

  return {
    url,
    get port() {
      return port;
    },
    namespace,
    token,
    user,
    kubeconfigPath,
    pods: podApi,
    endpointSlices: endpointSliceApi,
    events: {
      list: (ns = namespace) => listOf(eventsDef, ns).map((e) => structuredClone(e)),
    },
    leases: {
      get(name, ns = namespace) {
        const lease = store.get(key(leasesDef, ns, name));
        return lease === undefined ? undefined : structuredClone(lease);
      },
      update: (name, mutate, ns = namespace) => mutateStored(leasesDef, ns, name, mutate),
    },
    statefulSets: {
      add(input) {
        const ns = input.namespace ?? namespace;
        const labels = input.labels ?? { 'app.kubernetes.io/name': input.name };
        const sts = stamp(statefulSetsDef, ns, {
          metadata: { name: input.name, labels: { ...labels }, generation: 1 },
          spec: {
            replicas: input.replicas,
            serviceName: input.serviceName ?? input.name,
            podManagementPolicy: input.podManagementPolicy ?? 'OrderedReady',
            selector: { matchLabels: { ...labels } },
            template: { metadata: { labels: { ...labels } }, spec: { containers: [{ name: 'raftlet', image: 'raftlet:dev' }] } },
            updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 0 } },
          },
          status: { replicas: 0, readyReplicas: 0, currentReplicas: 0, updatedReplicas: 0, availableReplicas: 0, observedGeneration: 1 },
        });
        store.set(key(statefulSetsDef, ns, input.name), sts);
        return structuredClone(sts);
      },
      get(name, ns = namespace) {
        const sts = store.get(key(statefulSetsDef, ns, name));
        return sts === undefined ? undefined : structuredClone(sts);
      },
      update: (name, mutate, ns = namespace) => mutateStored(statefulSetsDef, ns, name, mutate),
      ownerReference(name, ns = namespace) {
        const sts = store.get(key(statefulSetsDef, ns, name));
        if (sts === undefined) throw new Error(`k8s double: no statefulset ${ns}/${name}`);
        return { apiVersion: 'apps/v1', kind: 'StatefulSet', name, uid: metaOf(sts).uid ?? '', controller: true, blockOwnerDeletion: true };
      },
      onChange(listener) {
        stsListeners.add(listener);
        return () => stsListeners.delete(listener);
      },
    },
    rbac: {
      set(next) {
        rules = next;
      },
    },
    faults: faultApi,
    requests,
    async stop() {
      faults.length = 0;
      releaseHeld();
      mode = 'up';
      if (server.listening) await closeListener();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// ---- helpers ----------------------------------------------------------------------------------------

function makePod(input: PodInput, ns: string): JsonObject {
  const started = nowSeconds();
  return {
    metadata: {
      name: input.name,
      namespace: ns,
      labels: { 'app.kubernetes.io/name': 'raftlet', ...input.labels },
      annotations: { ...input.annotations },
      ...(input.ownerReferences === undefined ? {} : { ownerReferences: input.ownerReferences.map((r) => ({ ...r })) }),
    },
    spec: {
      containers: [{ name: 'raftlet', image: 'raftlet:dev', ports: [{ name: 'raft', containerPort: 7070, protocol: 'TCP' }] }],
      nodeName: 'node-1',
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: input.terminationGracePeriodSeconds ?? 30,
    },
    status: {
      phase: 'Running',
      podIP: input.podIP ?? '10.0.0.1',
      startTime: started,
      conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: started }],
      containerStatuses: [{ name: 'raftlet', ready: true, restartCount: 0, image: 'raftlet:dev', state: { running: { startedAt: started } } }],
    },
  };
}

/** The resource RBAC authorises: `statefulsets/scale` for the subresource. */
function rbacResource(route: Extract<Route, { kind: 'resource' }>): string {
  return route.subresource === undefined ? route.def.resource : `${route.def.resource}/${route.subresource}`;
}

function verbOf(method: string, name: string | undefined, params: URLSearchParams): string {
  switch (method) {
    case 'GET':
      if (name !== undefined) return 'get';
      return params.get('watch') === 'true' || params.get('watch') === '1' ? 'watch' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return name === undefined ? 'deletecollection' : 'delete';
    default:
      return method.toLowerCase();
  }
}

function matches(match: FaultMatch, record: RequestRecord): boolean {
  return (
    (match.method === undefined || match.method === record.method) &&
    (match.verb === undefined || match.verb === record.verb) &&
    (match.resource === undefined || match.resource === record.resource) &&
    (match.name === undefined || match.name === record.name)
  );
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > MAX_BODY) throw new Error('request body too large');
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}

function parseJson(raw: Buffer): Json | undefined {
  if (raw.length === 0) return undefined;
  try {
    return JSON.parse(raw.toString('utf8')) as Json;
  } catch {
    return undefined;
  }
}

function metaOf(obj: JsonObject): JsonObject {
  return isObject(obj.metadata) ? obj.metadata : {};
}

function nameOf(obj: JsonObject): string {
  const name = metaOf(obj).name;
  return typeof name === 'string' ? name : '';
}

function labelsOf(obj: JsonObject): Record<string, string> {
  return stringMap(metaOf(obj).labels);
}

function stringMap(value: Json | undefined): Record<string, string> {
  if (!isObject(value)) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) if (typeof v === 'string') out[k] = v;
  return out;
}

/** Key order and empty maps do not make a change (the API server compares decoded objects). */
function canonical(value: Json): Json {
  if (Array.isArray(value)) return value.map(canonical);
  if (!isObject(value)) return value;
  const out: JsonObject = {};
  for (const k of Object.keys(value).sort()) {
    const v = value[k];
    if (v === undefined || v === null) continue;
    if (isObject(v) && Object.keys(v).length === 0) continue;
    out[k] = canonical(v);
  }
  return out;
}

function nowSeconds(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

const SUFFIX_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

/** The API server's generateName suffix: five characters from an alphabet without vowels. */
function randomSuffix(): string {
  let out = '';
  for (let i = 0; i < 5; i++) out += SUFFIX_ALPHABET[Math.floor(Math.random() * SUFFIX_ALPHABET.length)];
  return out;
}
