// Regenerates k8s/ (the plain-manifest install) from the chart's default values:
//   node test/ship/write-plain-manifests.ts
// It drops what only a Helm release has (helm.sh/chart, managed-by and version labels, namespaces,
// the `helm test` hooks), the admission policy (cluster-scoped, written for one namespace, so it
// cannot be part of a namespace-agnostic kustomization: docs/shipping.md), and puts a placeholder
// token in the Secret.
// test/ship/chart.test.ts fails when k8s/ and the chart drift apart.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { isMap, isSeq, parseAllDocuments } from 'yaml';
import type { Document } from 'yaml';
import { leadingComment, renderChartText, repoRoot } from './render.ts';

export const helmOnlyLabels = ['helm.sh/chart', 'app.kubernetes.io/managed-by', 'app.kubernetes.io/version'] as const;
export const tokenPlaceholder = 'CHANGE_ME';

/** Kinds the chart renders that k8s/ leaves out: they name the release's namespace. */
export const chartOnlyKinds: readonly string[] = ['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding'];

function dropHelmOnlyFields(doc: Document): void {
  doc.deleteIn(['metadata', 'namespace']);
  for (const path of [['metadata', 'labels'], ['spec', 'template', 'metadata', 'labels']]) {
    const labels = doc.getIn(path);
    if (isMap(labels)) for (const label of helmOnlyLabels) labels.delete(label);
  }
  const subjects = doc.get('subjects');
  if (isSeq(subjects)) for (const subject of subjects.items) if (isMap(subject)) subject.delete('namespace');
}

function plainSecret(doc: Document): void {
  doc.delete('data');
  doc.setIn(['stringData', 'token'], tokenPlaceholder);
  doc.commentBefore = null;
  if (isMap(doc.contents)) doc.contents.commentBefore = [
    ' The shared peer-RPC token; all members of a cluster need the same one. CHANGE_ME is a',
    ' placeholder: replace it before you apply, best with a kustomize overlay that generates this',
    ' Secret from a file kept out of git (see docs/shipping.md):',
    '   secretGenerator:',
    '     - name: raftlet-cluster-token',
    '       behavior: replace',
    '       files: [token=cluster-token.txt]   # head -c 32 /dev/urandom | base64 | tr -d "\\n"',
  ].join('\n');
}

async function main(): Promise<void> {
  const text = await renderChartText({ releaseName: 'raftlet', namespace: 'default' });
  const outDir = join(repoRoot, 'k8s');
  mkdirSync(outDir, { recursive: true });
  for (const old of readdirSync(outDir).filter((f) => f.endsWith('.yaml'))) rmSync(join(outDir, old));
  const files: string[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (!isMap(doc.contents)) continue;
    if (doc.getIn(['metadata', 'annotations', 'helm.sh/hook']) !== undefined) continue;
    if (chartOnlyKinds.includes(String(doc.get('kind')))) continue;
    const source = /Source: (\S+)/.exec(leadingComment(doc))?.[1];
    if (source === undefined) throw new Error('a rendered document lacks its # Source: comment');
    // Keep the template's own comment lines, without helm's Source line.
    const comment = leadingComment(doc).replace(/^ ?Source: \S+\n?/, '');
    doc.commentBefore = null;
    if (isMap(doc.contents)) doc.contents.commentBefore = comment || null;
    dropHelmOnlyFields(doc);
    if (doc.get('kind') === 'Secret') plainSecret(doc);
    const file = basename(source);
    const contents = doc.contents;
    const generated = ' Generated from helm/raftlet (default values) by test/ship/write-plain-manifests.ts.';
    contents.commentBefore = contents.commentBefore ? `${generated}\n\n${contents.commentBefore}` : generated;
    if (doc.directives) doc.directives.docStart = null;
    writeFileSync(join(outDir, file), doc.toString({ lineWidth: 0 }));
    files.push(file);
  }
  const kustomization = [
    '# The raftlet install as plain manifests, namespace-agnostic: apply into any namespace with',
    '#   kubectl apply -n NAMESPACE -k k8s/',
    '# after replacing the placeholder token in secret.yaml (see docs/shipping.md).',
    'apiVersion: kustomize.config.k8s.io/v1beta1',
    'kind: Kustomization',
    'resources:',
    ...files.sort().map((f) => `  - ${f}`),
    '',
  ].join('\n');
  writeFileSync(join(outDir, 'kustomization.yaml'), kustomization);
  process.stdout.write(`wrote ${files.length} manifests and kustomization.yaml to k8s/\n`);
}

if (import.meta.main) await main();
