// meta.k8s.io/v1 Table for pods: what `kubectl get pods` asks for (Accept: ...;as=Table;...). The
// row objects carry the pod's metadata, which is where `kubectl -L <label>` reads its columns.
import { isObject, type Json } from './patch.ts';

type JsonObject = { [key: string]: Json };

const COLUMNS = [
  { name: 'Name', type: 'string', format: 'name', description: 'Name must be unique within a namespace.', priority: 0 },
  { name: 'Ready', type: 'string', format: '', description: 'The aggregate readiness state of this pod for accepting traffic.', priority: 0 },
  { name: 'Status', type: 'string', format: '', description: 'The aggregate status of the containers in this pod.', priority: 0 },
  { name: 'Restarts', type: 'string', format: '', description: 'The number of times the containers in this pod have been restarted.', priority: 0 },
  { name: 'Age', type: 'string', format: '', description: 'CreationTimestamp is a timestamp representing the server time when this object was created.', priority: 0 },
  { name: 'IP', type: 'string', format: '', description: 'podIP address allocated to the pod.', priority: 1 },
  { name: 'Node', type: 'string', format: '', description: 'Name of the node this pod is scheduled on.', priority: 1 },
];

export function podTable(pods: readonly JsonObject[], resourceVersion: string, includeObject: string): JsonObject {
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion },
    columnDefinitions: COLUMNS,
    rows: pods.map((pod) => ({ cells: cells(pod), object: rowObject(pod, includeObject) })),
  };
}

function rowObject(pod: JsonObject, includeObject: string): Json {
  if (includeObject === 'None') return null;
  if (includeObject === 'Object') return pod;
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: pod.metadata ?? {} };
}

function cells(pod: JsonObject): Json[] {
  const meta = isObject(pod.metadata) ? pod.metadata : {};
  const spec = isObject(pod.spec) ? pod.spec : {};
  const status = isObject(pod.status) ? pod.status : {};
  const statuses = Array.isArray(status.containerStatuses) ? status.containerStatuses.filter(isObject) : [];
  const containers = Array.isArray(spec.containers) ? spec.containers.length : 0;
  const ready = statuses.filter((s) => s.ready === true).length;
  const restarts = statuses.reduce((sum, s) => sum + (typeof s.restartCount === 'number' ? s.restartCount : 0), 0);
  return [
    typeof meta.name === 'string' ? meta.name : '',
    `${ready}/${containers}`,
    typeof status.phase === 'string' ? status.phase : 'Unknown',
    String(restarts),
    age(typeof meta.creationTimestamp === 'string' ? meta.creationTimestamp : ''),
    typeof status.podIP === 'string' ? status.podIP : '<none>',
    typeof spec.nodeName === 'string' ? spec.nodeName : '<none>',
  ];
}

/** kubectl's short human duration. */
function age(created: string): string {
  const ms = Date.now() - Date.parse(created);
  if (!Number.isFinite(ms)) return '<unknown>';
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 120) return `${m}m`;
  const h = Math.floor(m / 60);
  return h < 48 ? `${h}h` : `${Math.floor(h / 24)}d`;
}
