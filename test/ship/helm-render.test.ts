// tools/helm-render against a small chart written here: it must render like `helm template`, or
// the chart tests would prove things about a different engine.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseManifests, renderChartText, renderNotes } from './render.ts';
import type { RenderOptions } from './render.ts';

const files: Record<string, string> = {
  'Chart.yaml': 'apiVersion: v2\nname: demo\nversion: 1.2.3\nappVersion: "4.5"\ndescription: a fixture\n',
  'values.yaml': [
    'replicas: 3',
    'big: 1048576',
    'flag: false',
    'nested:',
    '  keep: yes-keep',
    '  drop: me',
    'list: [a, b]',
    'greeting: "hello {{ .Release.Name }}"',
    'need: ""',
    '',
  ].join('\n'),
  'templates/_helpers.tpl': '{{- define "demo.name" -}}{{ .Chart.Name }}-{{ .Release.Name }}{{- end -}}\n',
  'templates/NOTES.txt': 'never printed {{ .Release.Name }}\n',
  'templates/empty.yaml': '{{- if .Values.flag }}\nkind: Never\n{{- end }}\n',
  'templates/b-service.yaml': [
    'apiVersion: v1',
    'kind: Service',
    'metadata:',
    '  name: {{ include "demo.name" . }}',
    '  namespace: {{ .Release.Namespace }}',
    'data:',
    '  service: {{ .Release.Service }}',
    '  install: {{ .Release.IsInstall }}',
    '  chart: {{ .Chart.Name }}-{{ .Chart.Version }}-{{ .Chart.AppVersion }}',
    '  replicas: {{ .Values.replicas }}',
    '  bigRaw: {{ .Values.big }}',
    '  bigInt: {{ .Values.big | int }}',
    '  kube: {{ .Capabilities.KubeVersion.Version }} {{ .Capabilities.KubeVersion.Minor }}',
    '  monitoring: {{ .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}',
    '  apps: {{ .Capabilities.APIVersions.Has "apps/v1" }}',
    '  tpl: {{ tpl .Values.greeting . }}',
    '  lookup: {{ lookup "v1" "Secret" "ns" "name" | len }}',
    '  json: {{ toJson .Values.list }}',
    '  fromYaml: {{ (fromYaml "a: 1").a }}',
    '  file: {{ .Files.Get "files/a.txt" | trim }}',
    '  missing: "{{ .Files.Get "files/none.txt" }}"',
    '  globbed: {{ len (.Files.Glob "files/*.txt") }}',
    '  keys: {{ keys .Values.nested | sortAlpha | join "," }}',
    '',
    '---',
    '# only a comment',
    '---',
    'apiVersion: v1',
    'kind: ConfigMap',
    'metadata:',
    '  name: second',
    'data:',
    '  {{- (.Files.Glob "files/*.txt").AsConfig | nindent 2 }}',
    '  yaml: |',
    '    {{- toYaml .Values.nested | nindent 4 }}',
    '',
  ].join('\n'),
  'templates/a-account.yaml': 'apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {{ required "need is required" .Values.need | default "x" }}\n',
  'files/a.txt': 'alpha\n',
  'files/b.txt': 'beta\n',
};

describe('tools/helm-render', () => {
  let chart = '';
  before(() => {
    chart = mkdtempSync(join(tmpdir(), 'raftlet-render-fixture-'));
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(dirname(join(chart, name)), { recursive: true });
      writeFileSync(join(chart, name), text);
    }
  });
  after(() => rmSync(chart, { recursive: true, force: true }));

  const render = (options: RenderOptions = {}): Promise<string> => renderChartText({ releaseName: 'rel', namespace: 'ns', ...options, chart });

  it('rejects a required value that is missing, with the chart\'s message', async () => {
    await assert.rejects(render(), /need is required/);
  });

  it('renders like helm template: Source comments, install order, no NOTES, no partials, no empty documents', async () => {
    const text = await render({ set: { need: 'sa' } });
    const objects = parseManifests(text);
    assert.deepEqual(objects.map((o) => [o.object.kind, o.source]), [
      ['ServiceAccount', 'demo/templates/a-account.yaml'],
      ['ConfigMap', 'demo/templates/b-service.yaml'],
      ['Service', 'demo/templates/b-service.yaml'],
    ]);
    assert.doesNotMatch(text, /never printed|kind: Never|only a comment/);
    const data = objects[2].object.data as Record<string, unknown>;
    assert.equal(objects[2].object.metadata?.name, 'demo-rel');
    assert.equal(objects[2].object.metadata?.namespace, 'ns');
    assert.deepEqual(data, {
      service: 'Helm',
      install: true,
      chart: 'demo-1.2.3-4.5',
      replicas: 3,
      // helm reads values through JSON: numbers are float64 and print in %v form unless piped to int.
      bigRaw: 1.048576e+06,
      bigInt: 1048576,
      kube: 'v1.30.0 30',
      monitoring: false,
      apps: true,
      tpl: 'hello rel',
      lookup: 0,
      json: ['a', 'b'],
      fromYaml: 1,
      file: 'alpha',
      missing: '',
      globbed: 2,
      keys: 'drop,keep',
    });
    assert.match(text, /bigRaw: 1\.048576e\+06/);
    assert.deepEqual(objects[1].object.data, { 'a.txt': 'alpha\n', 'b.txt': 'beta\n', yaml: 'drop: me\nkeep: yes-keep\n' });
  });

  it('merges -f files and --set like helm: maps deep, null deletes, typed scalars, escaped dots', async () => {
    const text = await render({
      values: { nested: { drop: null, added: 'x' }, need: 'from-file' },
      set: { replicas: 5, 'nested.keep': 'set', 'nested.with\\.dot': 'd', flag: 'false' },
      apiVersions: ['monitoring.coreos.com/v1'],
    });
    const objects = parseManifests(text);
    assert.equal(objects[0].object.metadata?.name, 'from-file');
    const data = objects[2].object.data as Record<string, unknown>;
    assert.equal(data.replicas, 5);
    assert.equal(data.keys, 'added,keep,with.dot');
    assert.equal(data.monitoring, true);
    assert.doesNotMatch(text, /kind: Never/, '--set flag=false is the boolean false');
  });

  it('reports template errors with the template name', async () => {
    const broken = mkdtempSync(join(tmpdir(), 'raftlet-render-broken-'));
    try {
      mkdirSync(join(broken, 'templates'));
      writeFileSync(join(broken, 'Chart.yaml'), 'apiVersion: v2\nname: broken\nversion: 0.0.1\n');
      writeFileSync(join(broken, 'values.yaml'), 'a: 1\n');
      writeFileSync(join(broken, 'templates/x.yaml'), 'kind: X\nvalue: {{ .Values.nope.deeper }}\n');
      await assert.rejects(renderChartText({ chart: broken }), /broken\/templates\/x\.yaml/);
      writeFileSync(join(broken, 'templates/x.yaml'), 'kind: X\n{{ fail "told to fail" }}\n');
      await assert.rejects(renderChartText({ chart: broken }), /told to fail/);
      writeFileSync(join(broken, 'templates/x.yaml'), 'kind: X\n  bad: [indent\n');
      await assert.rejects(renderChartText({ chart: broken }), /does not parse/);
      // helm removes sprig's env and expandenv: a chart must not read the renderer's environment.
      writeFileSync(join(broken, 'templates/x.yaml'), 'kind: X\nhome: {{ env "HOME" }}\n');
      await assert.rejects(renderChartText({ chart: broken }), /function "env" not defined/);
    } finally {
      rmSync(broken, { recursive: true, force: true });
    }
  });

  it('models lookup: nothing without a cluster (helm template), the given objects with one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'raftlet-render-lookup-'));
    try {
      mkdirSync(join(dir, 'templates'));
      writeFileSync(join(dir, 'Chart.yaml'), 'apiVersion: v2\nname: lk\nversion: 0.0.1\n');
      writeFileSync(join(dir, 'values.yaml'), '{}\n');
      writeFileSync(join(dir, 'templates/NOTES.txt'), 'Hello {{ .Release.Name }} in {{ .Release.Namespace }}, upgrade={{ .Release.IsUpgrade }}\n');
      writeFileSync(join(dir, 'templates/cm.yaml'), [
        'apiVersion: v1',
        'kind: ConfigMap',
        'metadata:',
        '  name: probe',
        'data:',
        '  secret: {{ dig "data" (dict) (lookup "v1" "Secret" "ns" "s1") | toJson | quote }}',
        '  other: {{ lookup "v1" "Secret" "elsewhere" "s1" | len | quote }}',
        '  missing: {{ lookup "v1" "Secret" "ns" "nope" | len | quote }}',
        '  listed: {{ dig "items" (list) (lookup "v1" "Secret" "ns" "") | len | quote }}',
        '  upgrade: {{ .Release.IsUpgrade | quote }}',
        '',
      ].join('\n'));
      const data = async (options: RenderOptions): Promise<unknown> =>
        parseManifests(await renderChartText({ chart: dir, namespace: 'ns', ...options }))[0].object.data;
      const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's1', namespace: 'ns' }, data: { k: 'dg==' } };
      const other = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's2', namespace: 'ns' } };
      assert.deepEqual(await data({ cluster: null }), { secret: '{}', other: '0', missing: '0', listed: '0', upgrade: 'false' });
      assert.deepEqual(await data({ cluster: [secret, other], isUpgrade: true }), { secret: '{"k":"dg=="}', other: '0', missing: '0', listed: '2', upgrade: 'true' });
      // NOTES.txt: not among the objects, printed alone with --notes.
      assert.doesNotMatch(await renderChartText({ chart: dir, namespace: 'ns' }), /Hello/);
      assert.equal(await renderNotes({ chart: dir, releaseName: 'r', namespace: 'ns', isUpgrade: true }), 'Hello r in ns, upgrade=true\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
