// Renders the Helm chart with tools/helm-render (helm's engine in Go, built from Debian's Go
// sources) and kustomizes k8s/ with the real kubectl, for the shipping tests.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import type { Document } from 'yaml';
import type { KubeObject } from './k8s-schema.ts';

const run = promisify(execFile);

export const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const chartDir = join(repoRoot, 'helm', 'raftlet');
const rendererSources = join(repoRoot, 'tools', 'helm-render');

export interface RenderedObject {
  /** The template it came from, e.g. raftlet/templates/statefulset.yaml. */
  readonly source: string;
  readonly object: KubeObject;
}

export interface RenderOptions {
  /** --set expressions: { 'lease.name': 'raftlet-leader', replicas: 5 }. */
  readonly set?: Readonly<Record<string, string | number | boolean>>;
  /** A values file's content, given as -f. */
  readonly values?: unknown;
  readonly apiVersions?: readonly string[];
  readonly releaseName?: string;
  readonly namespace?: string;
  /** A chart directory other than helm/raftlet (tests of the renderer itself). */
  readonly chart?: string;
  /**
   * What `lookup` sees. Default: a fresh namespace of a real cluster (only the kube-root-ca.crt
   * ConfigMap Kubernetes publishes in every namespace), as `helm install` sees it. null: no cluster
   * at all, as `helm template` and GitOps tools render. A list: exactly these objects.
   */
  readonly cluster?: readonly KubeObject[] | null;
  /** .Release.IsUpgrade instead of .Release.IsInstall. */
  readonly isUpgrade?: boolean;
}

/** The one object every namespace of a real cluster has (the chart probes lookup with it). */
export function rootCaConfigMap(namespace: string): KubeObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kube-root-ca.crt', namespace }, data: { 'ca.crt': 'dummy' } };
}

let built: Promise<string> | undefined;

/**
 * Builds tools/helm-render once per sources version: the binary is kept in the temp directory under
 * a hash of the Go sources, so every test process of a run (and later runs) reuses it.
 */
export function helmRenderBinary(): Promise<string> {
  built ??= buildHelmRender();
  return built;
}

async function buildHelmRender(): Promise<string> {
  const hash = createHash('sha256');
  for (const file of readdirSync(rendererSources).filter((f) => f.endsWith('.go')).sort()) {
    hash.update(file).update(readFileSync(join(rendererSources, file)));
  }
  const dir = join(tmpdir(), `raftlet-helm-render-${hash.digest('hex').slice(0, 16)}`);
  const binary = join(dir, 'helm-render');
  if (existsSync(binary)) return binary;
  mkdirSync(dir, { recursive: true });
  // Build beside the final name and rename: parallel test processes may build at the same time.
  const partial = join(dir, `helm-render.${process.pid}.tmp`);
  try {
    await run('go', ['build', '-o', partial, '.'], {
      cwd: rendererSources,
      env: {
        ...process.env,
        GOPATH: process.env.GOPATH ?? '/usr/share/gocode',
        GO111MODULE: 'off',
        GOCACHE: process.env.GOCACHE ?? join(tmpdir(), 'raftlet-go-cache'),
      },
    });
  } catch (err: unknown) {
    const stderr = (err as { stderr?: string }).stderr ?? String(err);
    throw new Error(`building tools/helm-render failed (needs golang-go, golang-github-masterminds-sprig-dev, golang-gopkg-yaml.v3-dev): ${stderr}`);
  }
  renameSync(partial, binary);
  return binary;
}

function setExpression(key: string, value: string | number | boolean): string {
  // helm-render splits pairs at commas and keys at dots; escape them inside values.
  return `${key}=${String(value).replaceAll('\\', '\\\\').replaceAll(',', '\\,')}`;
}

/** `helm template` (or, with a cluster, `helm install --dry-run=server`) output as text. */
export async function renderChartText(options: RenderOptions = {}): Promise<string> {
  return runHelmRender(options, []);
}

/** The NOTES.txt that `helm install` would print for these options. */
export async function renderNotes(options: RenderOptions = {}): Promise<string> {
  return runHelmRender(options, ['--notes']);
}

async function runHelmRender(options: RenderOptions, extra: readonly string[]): Promise<string> {
  const binary = await helmRenderBinary();
  const namespace = options.namespace ?? 'default';
  const args = ['--strict', '--name', options.releaseName ?? 'raftlet', '--namespace', namespace, ...extra];
  const valuesDir = join(tmpdir(), `raftlet-values-${process.pid}-${Math.random().toString(36).slice(2)}`);
  mkdirSync(valuesDir);
  if (options.values !== undefined) {
    writeFileSync(join(valuesDir, 'values.yaml'), JSON.stringify(options.values));
    args.push('-f', join(valuesDir, 'values.yaml'));
  }
  const cluster = options.cluster === undefined ? [rootCaConfigMap(namespace)] : options.cluster;
  if (cluster !== null) {
    writeFileSync(join(valuesDir, 'cluster.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: cluster }));
    args.push('--cluster', join(valuesDir, 'cluster.json'));
  }
  if (options.isUpgrade === true) args.push('--is-upgrade');
  for (const [key, value] of Object.entries(options.set ?? {})) args.push('--set', setExpression(key, value));
  for (const apiVersion of options.apiVersions ?? []) args.push('--api-versions', apiVersion);
  args.push(options.chart ?? chartDir);
  try {
    const { stdout } = await run(binary, args, { maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (err: unknown) {
    const stderr = (err as { stderr?: string }).stderr;
    throw new Error(`helm-render ${args.join(' ')} failed: ${stderr ?? String(err)}`);
  } finally {
    rmSync(valuesDir, { recursive: true, force: true });
  }
}

/** The comment lines above a document's first node (the yaml package hangs them on either). */
export function leadingComment(document: Document): string {
  const contents = document.contents as { commentBefore?: string | null } | null;
  return [document.commentBefore, contents?.commentBefore].filter((c) => c).join('\n');
}

/** Parses `---` separated YAML into objects, remembering each one's `# Source:` comment. */
export function parseManifests(text: string): RenderedObject[] {
  const objects: RenderedObject[] = [];
  for (const document of parseAllDocuments(text)) {
    if (document.errors.length > 0) throw new Error(`rendered YAML does not parse: ${document.errors[0].message}`);
    const object = document.toJS() as KubeObject | null;
    if (object === null) continue;
    const source = /Source: (\S+)/.exec(leadingComment(document))?.[1] ?? '';
    objects.push({ source, object });
  }
  return objects;
}

export async function renderChart(options: RenderOptions = {}): Promise<RenderedObject[]> {
  return parseManifests(await renderChartText(options));
}

/** `kubectl kustomize k8s/`: the plain manifests as the real kustomize builds them. */
export async function kustomizePlainManifests(dir: string = join(repoRoot, 'k8s')): Promise<KubeObject[]> {
  try {
    const { stdout } = await run('kubectl', ['kustomize', dir], { maxBuffer: 64 * 1024 * 1024 });
    return parseManifests(stdout).map((rendered) => rendered.object);
  } catch (err: unknown) {
    const stderr = (err as { stderr?: string }).stderr;
    throw new Error(`kubectl kustomize ${dir} failed: ${stderr ?? String(err)}`);
  }
}
