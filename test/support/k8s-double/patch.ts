// The three PATCH formats kube-apiserver accepts for built-in types (server-side apply aside):
// JSON merge patch (RFC 7386), strategic merge patch, and JSON patch (RFC 6902).

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

export class PatchError extends Error {
  /** 400 = the patch document is malformed; 422 = it cannot be applied to this object. */
  readonly status: 400 | 422;
  constructor(status: 400 | 422, message: string) {
    super(message);
    this.status = status;
  }
}

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** RFC 7386: objects merge recursively, null deletes a key, anything else (arrays too) replaces. */
export function mergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return structuredClone(patch);
  const result: JsonObject = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key] ?? null, value);
  }
  return result;
}

/**
 * Strategic merge patch as it treats what raftlet and kubectl send to pods: maps merge (labels,
 * annotations), null deletes, `$patch: replace | delete` on a map, lists of objects with a `name`
 * merge by name (containers, env, volumes), other lists are replaced. Directives this double does
 * not model are refused rather than silently misapplied.
 */
export function strategicMergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) throw new PatchError(400, 'strategic merge patch must be a JSON object');
  return smpObject(isObject(target) ? target : {}, patch);
}

function smpObject(target: JsonObject, patch: JsonObject): JsonObject {
  const directive = patch.$patch;
  if (directive === 'replace') {
    const rest = { ...patch };
    delete rest.$patch;
    return structuredClone(rest);
  }
  if (directive !== undefined && directive !== 'merge') {
    throw new PatchError(400, `strategic merge patch directive $patch: ${JSON.stringify(directive)} is not supported by the k8s double`);
  }
  const result: JsonObject = { ...target };
  for (const [key, value] of Object.entries(patch)) {
    if (key === '$patch') continue;
    if (key.startsWith('$')) throw new PatchError(400, `strategic merge patch directive ${key} is not supported by the k8s double`);
    if (value === null) {
      delete result[key];
    } else if (isObject(value)) {
      if (value.$patch === 'delete') delete result[key];
      else result[key] = smpObject(isObject(result[key]) ? result[key] : {}, value);
    } else if (Array.isArray(value)) {
      const current = result[key];
      result[key] = Array.isArray(current) ? smpList(current, value) : structuredClone(value);
    } else {
      result[key] = value;
    }
  }
  return result;
}

function smpList(target: Json[], patch: Json[]): Json[] {
  const byName = (list: Json[]): boolean => list.every((item) => isObject(item) && typeof item.name === 'string');
  if (!byName(patch) || !byName(target)) return structuredClone(patch);
  const result = target.map((item) => structuredClone(item));
  for (const item of patch as JsonObject[]) {
    const index = result.findIndex((existing) => isObject(existing) && existing.name === item.name);
    if (item.$patch === 'delete') {
      if (index >= 0) result.splice(index, 1);
    } else if (index >= 0) {
      result[index] = smpObject(result[index] as JsonObject, item);
    } else {
      result.push(smpObject({}, item));
    }
  }
  return result;
}

/** RFC 6902 operations add, remove, replace, move, copy, test. */
export function jsonPatch(target: Json, operations: Json): Json {
  if (!Array.isArray(operations)) {
    throw new PatchError(400, 'json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  }
  let doc = structuredClone(target);
  for (const op of operations) {
    if (!isObject(op) || typeof op.op !== 'string' || typeof op.path !== 'string') {
      throw new PatchError(400, `invalid JSON patch operation ${JSON.stringify(op)}`);
    }
    const path = op.path;
    switch (op.op) {
      case 'add':
        doc = setAt(doc, pointer(path), requireValue(op), 'add');
        break;
      case 'replace':
        getAt(doc, pointer(path));
        doc = setAt(doc, pointer(path), requireValue(op), 'replace');
        break;
      case 'remove':
        doc = removeAt(doc, pointer(path));
        break;
      case 'test':
        if (JSON.stringify(getAt(doc, pointer(path))) !== JSON.stringify(requireValue(op))) {
          throw new PatchError(422, `testing value ${path} failed: test failed`);
        }
        break;
      case 'move':
      case 'copy': {
        if (typeof op.from !== 'string') throw new PatchError(400, `${op.op} operation needs "from"`);
        const value = structuredClone(getAt(doc, pointer(op.from)));
        if (op.op === 'move') doc = removeAt(doc, pointer(op.from));
        doc = setAt(doc, pointer(path), value, 'add');
        break;
      }
      default:
        throw new PatchError(400, `Unexpected kind: ${op.op}`);
    }
  }
  return doc;
}

function requireValue(op: JsonObject): Json {
  if (!('value' in op)) throw new PatchError(400, `${String(op.op)} operation does not contain a value`);
  return op.value ?? null;
}

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new PatchError(400, `invalid JSON pointer ${JSON.stringify(path)}`);
  return path
    .slice(1)
    .split('/')
    .map((part) => part.replaceAll('~1', '/').replaceAll('~0', '~'));
}

function getAt(doc: Json, parts: readonly string[]): Json {
  let node: Json = doc;
  for (const part of parts) {
    if (Array.isArray(node)) node = node[Number(part)] ?? missing(parts);
    else if (isObject(node) && Object.hasOwn(node, part)) node = node[part] ?? null;
    else missing(parts);
  }
  return node;
}

function missing(parts: readonly string[]): never {
  throw new PatchError(422, `doc is missing path: "/${parts.join('/')}": missing value`);
}

function setAt(doc: Json, parts: readonly string[], value: Json, mode: 'add' | 'replace'): Json {
  if (parts.length === 0) return structuredClone(value);
  const parent = getAt(doc, parts.slice(0, -1));
  const last = parts[parts.length - 1] ?? '';
  if (Array.isArray(parent)) {
    const index = last === '-' ? parent.length : Number(last);
    if (!Number.isInteger(index) || index < 0 || index > parent.length) missing(parts);
    if (mode === 'add') parent.splice(index, 0, structuredClone(value));
    else parent[index] = structuredClone(value);
  } else if (isObject(parent)) {
    parent[last] = structuredClone(value);
  } else {
    missing(parts);
  }
  return doc;
}

function removeAt(doc: Json, parts: readonly string[]): Json {
  getAt(doc, parts);
  const parent = getAt(doc, parts.slice(0, -1));
  const last = parts[parts.length - 1] ?? '';
  if (Array.isArray(parent)) parent.splice(Number(last), 1);
  else if (isObject(parent)) delete parent[last];
  return doc;
}
