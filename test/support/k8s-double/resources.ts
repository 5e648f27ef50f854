// The resource types the double serves, with the per-kind checks kube-apiserver would make on the
// fields raftlet writes, and the discovery documents clients (client-node, kubectl) ask for.
import { isObject, type Json } from './patch.ts';

type JsonObject = { [key: string]: Json };

export interface FieldCause {
  readonly field: string;
  readonly message: string;
}

export interface ResourceDef {
  readonly group: string;
  readonly version: string;
  readonly resource: string;
  readonly kind: string;
  readonly shortNames: readonly string[];
  readonly verbs: readonly string[];
  /** Decoding errors (wrong JSON types, bad timestamps) → 400, as the API server's decoder does. */
  readonly decode: (obj: JsonObject) => string | null;
  /** Field validation → 422 Invalid. */
  readonly validate: (obj: JsonObject, namespace: string) => FieldCause[];
}

export function apiVersionOf(def: ResourceDef): string {
  return def.group === '' ? def.version : `${def.group}/${def.version}`;
}

const ALL_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

// metav1.MicroTime is decoded with Go's layout 2006-01-02T15:04:05.000000Z07:00: exactly six
// fractional digits. A JavaScript Date's toISOString() (three digits) is refused.
const MICRO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$/;
// metav1.Time is RFC 3339; the decoder accepts a fraction.
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

function microTime(kind: string, obj: JsonObject | undefined, field: string): string | null {
  const value = obj?.[field];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || !MICRO_TIME.test(value)) {
    return `${kind} in version "v1" cannot be handled as a ${kind}: parsing time ${JSON.stringify(value)} as "2006-01-02T15:04:05.000000Z07:00": cannot parse ${JSON.stringify(value)} as MicroTime`;
  }
  return null;
}

function time(kind: string, obj: JsonObject | undefined, field: string): string | null {
  const value = obj?.[field];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || !TIME.test(value)) {
    return `${kind} in version "v1" cannot be handled as a ${kind}: parsing time ${JSON.stringify(value)} as "2006-01-02T15:04:05Z07:00": cannot parse`;
  }
  return null;
}

function typed(kind: string, obj: JsonObject | undefined, field: string, type: 'string' | 'integer'): string | null {
  const value = obj?.[field];
  if (value === undefined || value === null) return null;
  const ok = type === 'string' ? typeof value === 'string' : Number.isInteger(value);
  if (ok) return null;
  const goType = type === 'string' ? 'string' : 'int32';
  return `${kind} in version "v1" cannot be handled as a ${kind}: json: cannot unmarshal ${typeof value} into Go struct field .${field} of type ${goType}`;
}

function first(...errors: (string | null)[]): string | null {
  return errors.find((e) => e !== null) ?? null;
}

/** ObjectMeta decoding shared by every kind: labels and annotations are maps of strings. */
export function decodeMeta(kind: string, obj: JsonObject): string | null {
  const meta = obj.metadata;
  if (meta === undefined) return null;
  if (!isObject(meta)) return `${kind} in version "v1" cannot be handled as a ${kind}: json: cannot unmarshal into Go struct field .metadata of type v1.ObjectMeta`;
  for (const field of ['labels', 'annotations']) {
    const map = meta[field];
    if (map === undefined || map === null) continue;
    if (!isObject(map)) return `${kind} in version "v1" cannot be handled as a ${kind}: json: cannot unmarshal into Go struct field ObjectMeta.metadata.${field} of type map[string]string`;
    for (const value of Object.values(map)) {
      if (typeof value !== 'string') {
        return `${kind} in version "v1" cannot be handled as a ${kind}: json: cannot unmarshal ${value === null ? 'null' : typeof value} into Go struct field ObjectMeta.metadata.${field} of type string`;
      }
    }
  }
  return first(typed(kind, meta, 'resourceVersion', 'string'), typed(kind, meta, 'name', 'string'));
}

const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Label key and value syntax (apimachinery validation). */
export function validateLabels(obj: JsonObject): FieldCause[] {
  const meta = obj.metadata;
  const labels = isObject(meta) && isObject(meta.labels) ? meta.labels : {};
  const causes: FieldCause[] = [];
  for (const [key, value] of Object.entries(labels)) {
    const slash = key.lastIndexOf('/');
    const prefix = slash >= 0 ? key.slice(0, slash) : '';
    const name = slash >= 0 ? key.slice(slash + 1) : key;
    if ((slash >= 0 && (!DNS_SUBDOMAIN.test(prefix) || prefix.length > 253)) || !LABEL_NAME.test(name) || name.length > 63) {
      causes.push({ field: 'metadata.labels', message: `Invalid value: ${JSON.stringify(key)}: name part must consist of alphanumeric characters, '-', '_' or '.'` });
    }
    if (typeof value === 'string' && value !== '' && (!LABEL_NAME.test(value) || value.length > 63)) {
      causes.push({
        field: 'metadata.labels',
        message: `Invalid value: ${JSON.stringify(value)}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`,
      });
    }
  }
  return causes;
}

export const pods: ResourceDef = {
  group: '',
  version: 'v1',
  resource: 'pods',
  kind: 'Pod',
  shortNames: ['po'],
  verbs: ALL_VERBS,
  decode: (obj) => decodeMeta('Pod', obj),
  validate: (obj) => validateLabels(obj),
};

export const events: ResourceDef = {
  group: '',
  version: 'v1',
  resource: 'events',
  kind: 'Event',
  shortNames: ['ev'],
  verbs: ALL_VERBS,
  decode: (obj) =>
    first(
      decodeMeta('Event', obj),
      microTime('Event', obj, 'eventTime'),
      time('Event', obj, 'firstTimestamp'),
      time('Event', obj, 'lastTimestamp'),
      typed('Event', obj, 'reason', 'string'),
      typed('Event', obj, 'message', 'string'),
      typed('Event', obj, 'count', 'integer'),
    ),
  validate: (obj, namespace) => {
    const causes: FieldCause[] = [];
    const involved = isObject(obj.involvedObject) ? obj.involvedObject : null;
    if (involved === null || typeof involved.kind !== 'string' || typeof involved.name !== 'string') {
      causes.push({ field: 'involvedObject', message: 'Required value: involvedObject kind and name are required' });
    } else if (involved.namespace !== undefined && involved.namespace !== namespace) {
      causes.push({ field: 'involvedObject.namespace', message: `Invalid value: ${JSON.stringify(involved.namespace)}: does not match event.namespace` });
    }
    if (obj.type !== undefined && obj.type !== 'Normal' && obj.type !== 'Warning') {
      causes.push({ field: 'type', message: `Unsupported value: ${JSON.stringify(obj.type)}: supported values: "Normal", "Warning"` });
    }
    if (obj.eventTime !== undefined && obj.eventTime !== null) {
      // New-style events (with eventTime) must say who reported them.
      for (const field of ['reportingComponent', 'reportingInstance', 'action']) {
        if (typeof obj[field] !== 'string' || obj[field] === '') causes.push({ field, message: 'Required value' });
      }
    }
    return causes;
  },
};

export const leases: ResourceDef = {
  group: 'coordination.k8s.io',
  version: 'v1',
  resource: 'leases',
  kind: 'Lease',
  shortNames: [],
  verbs: ALL_VERBS,
  decode: (obj) => {
    const spec = isObject(obj.spec) ? obj.spec : undefined;
    return first(
      decodeMeta('Lease', obj),
      typed('Lease', spec, 'holderIdentity', 'string'),
      typed('Lease', spec, 'leaseDurationSeconds', 'integer'),
      typed('Lease', spec, 'leaseTransitions', 'integer'),
      microTime('Lease', spec, 'acquireTime'),
      microTime('Lease', spec, 'renewTime'),
    );
  },
  validate: (obj) => {
    const spec = isObject(obj.spec) ? obj.spec : {};
    const causes: FieldCause[] = [];
    if (typeof spec.leaseDurationSeconds === 'number' && spec.leaseDurationSeconds <= 0) {
      causes.push({ field: 'spec.leaseDurationSeconds', message: `Invalid value: ${spec.leaseDurationSeconds}: must be greater than 0` });
    }
    if (typeof spec.leaseTransitions === 'number' && spec.leaseTransitions < 0) {
      causes.push({ field: 'spec.leaseTransitions', message: `Invalid value: ${spec.leaseTransitions}: must be greater than or equal to 0` });
    }
    return causes;
  },
};

/** discovery.k8s.io/v1 EndpointSlices, as the EndpointSlice controller writes them for a Service. */
export const endpointSlices: ResourceDef = {
  group: 'discovery.k8s.io',
  version: 'v1',
  resource: 'endpointslices',
  kind: 'EndpointSlice',
  shortNames: [],
  verbs: ALL_VERBS,
  decode: (obj) => decodeMeta('EndpointSlice', obj),
  validate: (obj) => {
    const causes: FieldCause[] = [...validateLabels(obj)];
    if (!['IPv4', 'IPv6', 'FQDN'].includes(String(obj.addressType))) {
      causes.push({ field: 'addressType', message: `Unsupported value: ${JSON.stringify(obj.addressType ?? '')}: supported values: "FQDN", "IPv4", "IPv6"` });
    }
    const endpoints = obj.endpoints;
    if (endpoints !== undefined && endpoints !== null && !Array.isArray(endpoints)) {
      causes.push({ field: 'endpoints', message: 'Invalid value: must be a list' });
    }
    for (const [i, endpoint] of (Array.isArray(endpoints) ? endpoints : []).entries()) {
      const addresses = isObject(endpoint) ? endpoint.addresses : undefined;
      if (!Array.isArray(addresses) || addresses.length === 0) causes.push({ field: `endpoints[${i}].addresses`, message: 'Required value: must contain at least 1 address' });
    }
    return causes;
  },
};

export const statefulSets: ResourceDef = {
  group: 'apps',
  version: 'v1',
  resource: 'statefulsets',
  kind: 'StatefulSet',
  shortNames: ['sts'],
  verbs: ALL_VERBS,
  decode: (obj) => {
    const spec = isObject(obj.spec) ? obj.spec : undefined;
    return first(decodeMeta('StatefulSet', obj), typed('StatefulSet', spec, 'replicas', 'integer'), typed('StatefulSet', spec, 'serviceName', 'string'));
  },
  validate: (obj) => {
    const spec = isObject(obj.spec) ? obj.spec : {};
    const causes: FieldCause[] = [];
    if (typeof spec.replicas === 'number' && spec.replicas < 0) {
      causes.push({ field: 'spec.replicas', message: `Invalid value: ${spec.replicas}: must be greater than or equal to 0` });
    }
    const policy = spec.podManagementPolicy;
    if (policy !== undefined && policy !== 'OrderedReady' && policy !== 'Parallel') {
      causes.push({ field: 'spec.podManagementPolicy', message: `Unsupported value: ${JSON.stringify(policy)}: supported values: "OrderedReady", "Parallel"` });
    }
    return causes;
  },
};

/** Subresources the double serves, as discovery lists them (name `<resource>/<sub>`). */
export interface SubresourceDef {
  readonly parent: ResourceDef;
  readonly name: 'scale';
  readonly group: string;
  readonly version: string;
  readonly kind: string;
  readonly verbs: readonly string[];
}

export const statefulSetScale: SubresourceDef = { parent: statefulSets, name: 'scale', group: 'autoscaling', version: 'v1', kind: 'Scale', verbs: ['get', 'patch', 'update'] };

export const SUBRESOURCES: readonly SubresourceDef[] = [statefulSetScale];

export const RESOURCES: readonly ResourceDef[] = [pods, events, leases, endpointSlices, statefulSets];

export function findResource(group: string, version: string, resource: string): ResourceDef | undefined {
  return RESOURCES.find((d) => d.group === group && d.version === version && d.resource === resource);
}

// ---- discovery -----------------------------------------------------------------------------------

export function versionInfo(): JsonObject {
  return {
    major: '1',
    minor: '30',
    gitVersion: 'v1.30.0-k8s-double',
    gitCommit: '0000000000000000000000000000000000000000',
    gitTreeState: 'clean',
    buildDate: '2024-04-17T00:00:00Z',
    goVersion: 'go1.22.2',
    compiler: 'gc',
    platform: 'linux/amd64',
  };
}

export function apiVersions(serverAddress: string): JsonObject {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

function groupVersion(group: string, version: string): JsonObject {
  return { groupVersion: `${group}/${version}`, version };
}

export function apiGroupList(): JsonObject {
  const groups = [...new Set(RESOURCES.filter((d) => d.group !== '').map((d) => d.group))];
  return {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: groups.map((group) => {
      const version = RESOURCES.find((d) => d.group === group)?.version ?? 'v1';
      return { name: group, versions: [groupVersion(group, version)], preferredVersion: groupVersion(group, version) };
    }),
  };
}

export function apiGroup(group: string): JsonObject | null {
  const def = RESOURCES.find((d) => d.group === group);
  if (def === undefined) return null;
  return {
    kind: 'APIGroup',
    apiVersion: 'v1',
    name: group,
    versions: [groupVersion(group, def.version)],
    preferredVersion: groupVersion(group, def.version),
  };
}

export function apiResourceList(group: string, version: string): JsonObject | null {
  const defs = RESOURCES.filter((d) => d.group === group && d.version === version);
  if (defs.length === 0) return null;
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: group === '' ? version : `${group}/${version}`,
    resources: [
      ...defs.map((d) => ({
        name: d.resource,
        singularName: d.kind.toLowerCase(),
        namespaced: true,
        kind: d.kind,
        verbs: [...d.verbs],
        ...(d.shortNames.length > 0 ? { shortNames: [...d.shortNames] } : {}),
        ...(d.resource === 'pods' || d.resource === 'statefulsets' ? { categories: ['all'] } : {}),
      })),
      // A subresource of another group's kind names its group and version (kubectl scale reads them).
      ...SUBRESOURCES.filter((s) => defs.includes(s.parent)).map((s) => ({
        name: `${s.parent.resource}/${s.name}`,
        singularName: '',
        namespaced: true,
        group: s.group,
        version: s.version,
        kind: s.kind,
        verbs: [...s.verbs],
      })),
    ],
  };
}
