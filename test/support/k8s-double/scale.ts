// The scale subresource of a StatefulSet (autoscaling/v1 Scale), as kube-apiserver serves it at
// /apis/apps/v1/namespaces/<ns>/statefulsets/<name>/scale: a view of the StatefulSet with the same
// uid and resourceVersion, whose spec.replicas writes through to the StatefulSet's. `kubectl scale`
// PATCHes it (or GETs it and PUTs it back with the resourceVersion it read, when given
// --resource-version or --current-replicas).
import { isObject, type Json } from './patch.ts';

type JsonObject = { [key: string]: Json };

function metaOf(obj: JsonObject): JsonObject {
  return isObject(obj.metadata) ? obj.metadata : {};
}

/** The label selector of the StatefulSet in the text form Scale.status.selector carries. */
function selectorText(sts: JsonObject): string {
  const spec = isObject(sts.spec) ? sts.spec : {};
  const selector = isObject(spec.selector) ? spec.selector : {};
  const labels = isObject(selector.matchLabels) ? selector.matchLabels : {};
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(',');
}

export function scaleOf(sts: JsonObject): JsonObject {
  const meta = metaOf(sts);
  const spec = isObject(sts.spec) ? sts.spec : {};
  const status = isObject(sts.status) ? sts.status : {};
  return {
    kind: 'Scale',
    apiVersion: 'autoscaling/v1',
    metadata: {
      name: meta.name ?? null,
      namespace: meta.namespace ?? null,
      uid: meta.uid ?? null,
      resourceVersion: meta.resourceVersion ?? null,
      creationTimestamp: meta.creationTimestamp ?? null,
    },
    spec: { replicas: typeof spec.replicas === 'number' ? spec.replicas : 1 },
    status: { replicas: typeof status.replicas === 'number' ? status.replicas : 0, selector: selectorText(sts) },
  };
}

export type ScaleCheck = { readonly ok: true; readonly replicas: number } | { readonly ok: false; readonly status: 400 | 422; readonly message: string; readonly field?: string };

/** What the API server checks of a Scale written back: its kind, and spec.replicas >= 0. */
export function checkScale(scale: Json): ScaleCheck {
  if (!isObject(scale)) return { ok: false, status: 400, message: 'Scale in version "v1" cannot be handled as a Scale: the request body is not a JSON object' };
  if ((scale.kind !== undefined && scale.kind !== 'Scale') || (scale.apiVersion !== undefined && scale.apiVersion !== 'autoscaling/v1')) {
    return { ok: false, status: 400, message: `the API version in the data (${String(scale.apiVersion)}) does not match the expected API version (autoscaling/v1)` };
  }
  const spec = isObject(scale.spec) ? scale.spec : {};
  const replicas = spec.replicas ?? 0;
  if (typeof replicas !== 'number' || !Number.isInteger(replicas)) {
    return { ok: false, status: 400, message: `Scale in version "v1" cannot be handled as a Scale: json: cannot unmarshal ${typeof replicas} into Go struct field ScaleSpec.spec.replicas of type int32` };
  }
  if (replicas < 0) return { ok: false, status: 422, field: 'spec.replicas', message: `Invalid value: ${replicas}: must be greater than or equal to 0` };
  return { ok: true, replicas };
}
