// Strict validation of Kubernetes objects against the OpenAPI v3 documents a 1.30 API server
// publishes (../shared/k8s-schemas), the way `kubectl apply --validate=strict` judges them: unknown
// fields fail, required fields must be there, types (int-or-string, quantities) must fit.
// The built-in documents leave additionalProperties out, so the conversion closes every object
// schema that has properties, unless it says x-kubernetes-preserve-unknown-fields.
import { readFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { parse as parseYaml } from 'yaml';

const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** The shared schema data, found from the repository root as ../shared/k8s-schemas. */
export const k8sSchemaRoot = process.env.RAFTLET_K8S_SCHEMAS ?? resolve(repoRoot, '..', 'shared', 'k8s-schemas');

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

export interface KubeObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata?: { readonly name?: string; readonly namespace?: string; readonly [key: string]: unknown };
  readonly [key: string]: unknown;
}

// JSON Schema keywords ajv should see; OpenAPI-only and x-kubernetes-* keywords are dropped.
const schemaKeywords = new Set([
  'type', 'properties', 'additionalProperties', 'items', 'required', 'enum', 'allOf', 'oneOf', 'anyOf',
  '$ref', 'format', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'minLength',
  'maxLength', 'pattern', 'minItems', 'maxItems', 'uniqueItems', 'minProperties', 'maxProperties',
]);

// Kubernetes resource.Quantity in its serialised form (apimachinery's quantity grammar).
const quantityPattern = '^[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][+-]?[0-9]+|[KMGTPE]i|[mkMGTPE])?$';

function isObject(value: Json | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Go's RE2 allows a leading (?i) (also after ^); JavaScript has no inline flags. Spell letters in both cases
 * instead (enough for the CRDs' enum-like patterns such as ^(?i)(abort|warn)?$).
 */
function jsPattern(pattern: string): string {
  const flag = /^(\^?)\(\?i\)/.exec(pattern);
  if (flag === null) return pattern;
  let out = flag[1];
  let inClass = false;
  const body = pattern.slice(flag[0].length);
  for (let i = 0; i < body.length; i++) {
    const ch = body[i];
    if (ch === '\\') {
      out += ch + (body[i + 1] ?? '');
      i++;
    } else if (ch === '[') {
      inClass = true;
      out += ch;
    } else if (ch === ']') {
      inClass = false;
      out += ch;
    } else if (/[a-z]/i.test(ch)) {
      if (inClass) throw new Error(`cannot translate the case-insensitive pattern ${pattern}`);
      out += `[${ch.toLowerCase()}${ch.toUpperCase()}]`;
    } else {
      out += ch;
    }
  }
  return out;
}

/** Rewrites one OpenAPI schema node into a strict JSON Schema for ajv. */
function strictSchema(node: Json, refBase: string): Json {
  if (Array.isArray(node)) return node.map((item) => strictSchema(item, refBase));
  if (!isObject(node)) return node;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(node)) {
    if (!schemaKeywords.has(key)) continue;
    if (key === '$ref' && typeof value === 'string') {
      out.$ref = value.replace('#/components/schemas/', `${refBase}#/definitions/`);
    } else if (key === 'properties' && isObject(value)) {
      // Property names are data, not keywords: convert each property's schema.
      out.properties = Object.fromEntries(Object.entries(value).map(([name, schema]) => [name, strictSchema(schema, refBase)]));
    } else if (key === 'pattern' && typeof value === 'string') {
      out.pattern = jsPattern(value);
    } else if (key === 'additionalProperties' && typeof value !== 'boolean') {
      out.additionalProperties = strictSchema(value, refBase);
    } else {
      out[key] = strictSchema(value, refBase);
    }
  }
  if (node['x-kubernetes-int-or-string'] === true && out.anyOf === undefined && out.oneOf === undefined) {
    delete out.type;
    out.anyOf = [{ type: 'integer' }, { type: 'string' }];
  }
  // A format without a type (IntOrString's "int-or-string") only describes the oneOf beside it.
  if (out.format !== undefined && out.type === undefined) delete out.format;
  const preserves = node['x-kubernetes-preserve-unknown-fields'] === true;
  if (isObject(out.properties) && out.additionalProperties === undefined && !preserves) {
    out.additionalProperties = false;
  }
  return out;
}

function newAjv(): Ajv {
  // strictTypes off: CRDs put `pattern` beside anyOf [integer, string] without a type, which is
  // valid JSON Schema; unknown keywords and formats still fail (strictSchema).
  const ajv = new Ajv({ strict: true, strictTypes: false, allErrors: true, validateFormats: true });
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isInteger(n) });
  ajv.addFormat('double', { type: 'number', validate: () => true });
  ajv.addFormat('byte', /^[A-Za-z0-9+/]*={0,2}$/);
  ajv.addFormat('date-time', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/i);
  return ajv;
}

function groupVersionFile(apiVersion: string): string {
  return apiVersion.includes('/') ? join('kubernetes-1.30', 'apis', `${apiVersion}.json`) : join('kubernetes-1.30', 'api', `${apiVersion}.json`);
}

const crdFiles: Readonly<Record<string, string>> = {
  'monitoring.coreos.com/v1/ServiceMonitor': 'monitoring.coreos.com_servicemonitors.yaml',
  'monitoring.coreos.com/v1/PrometheusRule': 'monitoring.coreos.com_prometheusrules.yaml',
  'monitoring.coreos.com/v1/PodMonitor': 'monitoring.coreos.com_podmonitors.yaml',
};

export class KubeSchemaValidator {
  readonly #root: string;
  readonly #ajv = newAjv();
  readonly #loadedFiles = new Set<string>();
  // "group/version/Kind" (core: "v1/Kind") -> the ajv id of its schema.
  readonly #kinds = new Map<string, string>();
  readonly #compiled = new Map<string, ValidateFunction>();

  constructor(root: string = k8sSchemaRoot) {
    if (!existsSync(join(root, 'kubernetes-1.30'))) {
      throw new Error(`Kubernetes schemas not found at ${root}: they belong in ../shared/k8s-schemas (see its SOURCES.md), or set RAFTLET_K8S_SCHEMAS`);
    }
    this.#root = root;
  }

  // Adds one group-version document (lazily: ajv compiles only what a validated kind reaches).
  #loadGroupVersion(file: string): void {
    if (this.#loadedFiles.has(file)) return;
    this.#loadedFiles.add(file);
    const path = join(this.#root, file);
    if (!existsSync(path)) return;
    const document = JSON.parse(readFileSync(path, 'utf8')) as JsonObject;
    const components = document.components;
    const schemas = isObject(components) && isObject(components.schemas) ? components.schemas : {};
    const id = `https://k8s-schemas.invalid/${file.replaceAll('\\', '/')}`;
    const definitions: JsonObject = {};
    for (const [name, schema] of Object.entries(schemas)) {
      definitions[name] = name === 'io.k8s.apimachinery.pkg.api.resource.Quantity'
        ? { oneOf: [{ type: 'string', pattern: quantityPattern }, { type: 'number' }] }
        : strictSchema(schema, id);
      const gvks = isObject(schema) ? schema['x-kubernetes-group-version-kind'] : undefined;
      if (!Array.isArray(gvks)) continue;
      for (const gvk of gvks) {
        if (!isObject(gvk)) continue;
        const groupVersion = gvk.group ? `${String(gvk.group)}/${String(gvk.version)}` : String(gvk.version);
        const key = `${groupVersion}/${String(gvk.kind)}`;
        // Shared kinds such as DeleteOptions appear under many groups; the file's own group wins.
        if (!this.#kinds.has(key) || file === groupVersionFile(groupVersion)) this.#kinds.set(key, `${id}#/definitions/${name}`);
      }
    }
    this.#ajv.addSchema({ $id: id, definitions });
  }

  #loadCrd(key: string): void {
    const file = crdFiles[key];
    if (file === undefined || this.#kinds.has(key)) return;
    const crd = parseYaml(readFileSync(join(this.#root, 'crds', file), 'utf8')) as JsonObject;
    const spec = crd.spec as JsonObject;
    const version = key.split('/')[1];
    const versions = (spec.versions as JsonObject[]).filter((v) => v.name === version);
    if (versions.length !== 1) throw new Error(`${file} has no version ${version}`);
    const openApi = (versions[0].schema as JsonObject).openAPIV3Schema;
    const converted = strictSchema(openApi, '') as JsonObject;
    // A CRD's schema leaves metadata open; the API server checks it as ObjectMeta.
    this.#loadGroupVersion(groupVersionFile('v1'));
    const properties = converted.properties as JsonObject;
    properties.metadata = { $ref: 'https://k8s-schemas.invalid/kubernetes-1.30/api/v1.json#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta' };
    const id = `https://k8s-schemas.invalid/crds/${file}`;
    this.#ajv.addSchema({ $id: id, ...converted });
    this.#kinds.set(key, id);
  }

  #validatorFor(apiVersion: string, kind: string): ValidateFunction | null {
    const key = `${apiVersion}/${kind}`;
    const cached = this.#compiled.get(key);
    if (cached) return cached;
    if (crdFiles[key] !== undefined) this.#loadCrd(key);
    else this.#loadGroupVersion(groupVersionFile(apiVersion));
    const ref = this.#kinds.get(key);
    if (ref === undefined) return null;
    const validate = this.#ajv.getSchema(ref) ?? this.#ajv.compile({ $ref: ref });
    this.#compiled.set(key, validate);
    return validate;
  }

  /** Problems with one object, each naming the field; [] when the API server would accept it. */
  validate(object: KubeObject): string[] {
    const name = `${object.kind}/${object.metadata?.name ?? '(no name)'}`;
    if (typeof object.apiVersion !== 'string' || typeof object.kind !== 'string') return [`${name}: apiVersion and kind are required`];
    const validate = this.#validatorFor(object.apiVersion, object.kind);
    if (validate === null) return [`${name}: no schema for ${object.apiVersion} ${object.kind} in Kubernetes 1.30 or the known CRDs`];
    if (validate(object)) return [];
    return describeErrors(name, validate.errors ?? []);
  }
}

// oneOf/anyOf failures repeat every branch's complaint; keep the ones that say something.
function describeErrors(name: string, errors: readonly ErrorObject[]): string[] {
  const lines = new Set<string>();
  for (const error of errors) {
    const where = error.instancePath || '/';
    if (error.keyword === 'additionalProperties') {
      lines.add(`${name}: ${where}: unknown field ${JSON.stringify(error.params.additionalProperty)}`);
    } else if (error.keyword !== 'oneOf' && error.keyword !== 'anyOf') {
      lines.add(`${name}: ${where}: ${error.message ?? error.keyword}`);
    }
  }
  if (lines.size === 0) for (const error of errors) lines.add(`${name}: ${error.instancePath || '/'}: ${error.message ?? error.keyword}`);
  return [...lines];
}
