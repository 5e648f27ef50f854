// The Helm chart and the plain manifests: strictly valid Kubernetes 1.30 objects for the default
// values and a few overrides, wired together correctly (names, ports, env, volumes, RBAC), and the
// same install in both forms.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { KubeSchemaValidator } from './k8s-schema.ts';
import type { KubeObject } from './k8s-schema.ts';
import { chartDir, kustomizePlainManifests, renderChart, renderChartText, rootCaConfigMap } from './render.ts';
import type { RenderOptions, RenderedObject } from './render.ts';
import { chartOnlyKinds, helmOnlyLabels } from './write-plain-manifests.ts';

// Loose views of the objects, enough to walk them in assertions.
type Obj = Record<string, unknown>;
const obj = (value: unknown): Obj => {
  assert.ok(typeof value === 'object' && value !== null && !Array.isArray(value), `expected an object, got ${JSON.stringify(value)}`);
  return value as Obj;
};
const arr = (value: unknown): Obj[] => {
  assert.ok(Array.isArray(value), `expected a list, got ${JSON.stringify(value)}`);
  return value as Obj[];
};

function find(objects: readonly RenderedObject[], kind: string, name?: string): Obj {
  const found = objects.filter((o) => o.object.kind === kind && (name === undefined || o.object.metadata?.name === name));
  assert.equal(found.length, 1, `expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0].object as unknown as Obj;
}

const isHook = (o: RenderedObject): boolean => {
  const annotations = o.object.metadata?.annotations as Record<string, string> | undefined;
  return annotations?.['helm.sh/hook'] !== undefined;
};

const kinds = (objects: readonly RenderedObject[]): string[] =>
  objects.map((o) => `${o.object.kind}/${o.object.metadata?.name ?? ''}`).sort();

function podSpec(statefulSet: Obj): Obj {
  return obj(obj(obj(statefulSet.spec).template).spec);
}

function container(statefulSet: Obj, name: string): Obj {
  const found = arr(podSpec(statefulSet).containers).filter((c) => c.name === name);
  assert.equal(found.length, 1, `expected container ${name}`);
  return found[0];
}

function envOf(c: Obj): Map<string, Obj> {
  return new Map(arr(c.env ?? []).map((e) => [String(e.name), e]));
}

function envValue(c: Obj, name: string): string | undefined {
  const value = envOf(c).get(name)?.value;
  return value === undefined ? undefined : String(value);
}

const monitoringApi = ['monitoring.coreos.com/v1'];

// The cases every check runs on: the defaults and the overrides an operator is likely to use.
const cases: ReadonlyArray<{ readonly name: string; readonly options: RenderOptions }> = [
  { name: 'defaults', options: {} },
  {
    name: 'monitoring on',
    options: {
      set: { 'monitoring.serviceMonitor.enabled': true, 'monitoring.prometheusRule.enabled': true, 'monitoring.grafanaDashboard.enabled': true },
      apiVersions: monitoringApi,
    },
  },
  { name: 'lease on', options: { set: { 'lease.name': 'raftlet-leader' } } },
  { name: 'app disabled', options: { set: { 'app.enabled': false } } },
  { name: '5 replicas', options: { set: { replicas: 5 } } },
  {
    name: 'everything customised',
    options: {
      releaseName: 'orders',
      namespace: 'shop',
      values: {
        fullnameOverride: 'orders-raft',
        image: { repository: 'registry.example.com/raftlet', tag: '0.1.0', digest: `sha256:${'a'.repeat(64)}`, pullPolicy: 'Always' },
        imagePullSecrets: [{ name: 'regcred' }],
        auth: { existingSecret: 'orders-token', key: 'peer-token' },
        roleLabel: 'example.com/raft-role',
        settings: { heartbeatMs: 50, electionTimeoutMs: 500, requestTimeoutMs: 2000, maxValueBytes: 65536, logLevel: 'debug' },
        extraEnv: [{ name: 'RAFTLET_DNS_SERVER', value: '10.96.0.10:53' }],
        ports: { raft: 17070, api: 17071, metrics: 19102 },
        persistence: { size: '10Gi', storageClassName: 'fast-ssd', annotations: { 'backup.example.com/enabled': 'true' } },
        app: {
          name: 'orders',
          image: { repository: 'registry.example.com/orders', tag: '2.3.4', pullPolicy: 'IfNotPresent' },
          command: ['/orders'],
          args: ['--listen', ':9000'],
          ports: [{ name: 'web', containerPort: 9000, protocol: 'TCP' }],
          env: [{ name: 'ORDERS_MODE', value: 'leader-aware' }],
          readinessProbe: { httpGet: { path: '/ready', port: 'web' } },
          livenessProbe: null,
          volumeMounts: [{ name: 'scratch', mountPath: '/tmp' }],
        },
        extraVolumes: [{ name: 'scratch', emptyDir: { sizeLimit: '64Mi' } }],
        leaderService: { enabled: true, type: 'LoadBalancer', port: 9000, targetPort: 'web', annotations: { 'example.com/lb': 'internal' } },
        serviceAccount: { create: true, name: 'orders-raftlet', annotations: { 'example.com/owner': 'shop' } },
        podDisruptionBudget: { enabled: true, maxUnavailable: '34%', unhealthyPodEvictionPolicy: 'IfHealthyBudget' },
        networkPolicy: {
          enabled: true,
          metrics: { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } }, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } } }] },
          app: { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'shop-frontend' } } }] },
          extraIngress: [{ ports: [{ port: 9999, protocol: 'TCP' }], from: [{ ipBlock: { cidr: '10.0.0.0/8' } }] }],
        },
        admissionPolicy: { enabled: true, validationActions: ['Warn', 'Audit'] },
        tls: { enabled: true, source: 'existingSecret', existingSecret: 'orders-peer-tls' },
        backup: { enabled: true, schedule: '*/30 * * * *', keep: 3, persistence: { existingClaim: 'orders-backups' } },
        podAnnotations: { 'example.com/team': 'shop' },
        podLabels: { 'example.com/tier': 'backend' },
        priorityClassName: 'critical',
        podAntiAffinity: 'hard',
        nodeSelector: { 'kubernetes.io/os': 'linux' },
        tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'raft', effect: 'NoSchedule' }],
        topologySpreadConstraints: [{
          maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway',
          labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'raftlet' } },
        }],
      },
    },
  },
  { name: 'TLS generated by the chart, backup on', options: { set: { 'tls.enabled': true, 'backup.enabled': true } } },
  { name: 'TLS from cert-manager, own issuer', options: { set: { 'tls.enabled': true, 'tls.source': 'certManager', 'tls.certManager.issuerRef.name': 'corp-ca', 'tls.certManager.issuerRef.kind': 'ClusterIssuer' }, apiVersions: ['cert-manager.io/v1'] } },
  { name: 'no NetworkPolicy, no admission policy', options: { set: { 'networkPolicy.enabled': false, 'admissionPolicy.enabled': false, 'tests.enabled': false } } },
];

describe('Kubernetes objects are strictly valid for Kubernetes 1.30', () => {
  let validator: KubeSchemaValidator;
  before(() => {
    validator = new KubeSchemaValidator();
  });

  it('the validator itself rejects unknown fields, wrong types, bad quantities and missing required fields', () => {
    const service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { ports: [{ port: 80, targetPort: 'http' }] } };
    assert.deepEqual(validator.validate(service), []);
    const cases: Array<[KubeObject, RegExp]> = [
      [{ ...service, spec: { ports: [{ port: 80, targetPort: 'http', tragetPort: 1 }] } }, /unknown field "tragetPort"/],
      [{ ...service, spec: { ports: [{ port: '80' }] } }, /\/spec\/ports\/0\/port: must be integer/],
      [{ ...service, spec: { ports: [{ port: 80, targetPort: true }] } }, /targetPort/],
      [{ ...service, spec: { ports: [{ name: 'x' }] } }, /must have required property 'port'/],
      [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', labels: { a: 1 } } }, /labels\/a: must be string/],
      [{ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'x' }, spec: { selector: {}, serviceName: 'x', template: {}, replicas: 1, volumeClaimTemplates: [{ spec: { resources: { requests: { storage: 'lots' } } } }] } }, /storage: must match pattern/],
      [{ apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor', metadata: { name: 'm' }, spec: { selector: {}, endpoints: [{ port: 'metrics', intervall: '5s' }] } }, /unknown field "intervall"/],
      [{ apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor', metadata: { name: 'm', lables: {} }, spec: { selector: {} } }, /unknown field "lables"/],
      [{ apiVersion: 'v1', kind: 'Gadget', metadata: { name: 'g' } }, /no schema for v1 Gadget/],
    ];
    for (const [object, expected] of cases) {
      const problems = validator.validate(object);
      assert.ok(problems.some((p) => expected.test(p)), `expected ${expected} for ${JSON.stringify(object)}, got ${JSON.stringify(problems)}`);
    }
  });

  it('every object of k8s/ (kubectl kustomize k8s/)', async () => {
    const objects = await kustomizePlainManifests();
    assert.ok(objects.length >= 8, `kustomize built only ${objects.length} objects`);
    assert.deepEqual(objects.flatMap((o) => validator.validate(o)), []);
  });

  for (const { name, options } of cases) {
    it(`every object the chart renders: ${name}`, async () => {
      const objects = await renderChart(options);
      assert.ok(objects.length >= 8, `the chart rendered only ${objects.length} objects`);
      // cert-manager's objects are not Kubernetes' own: tls.test.ts validates them.
      const builtIn = objects.filter((o) => !o.object.apiVersion.startsWith('cert-manager.io/'));
      assert.deepEqual(builtIn.flatMap((o) => validator.validate(o.object)), []);
    });
  }
});

describe('the chart wires its objects together', () => {
  it('renders the expected objects for each case', async () => {
    const base = ['NetworkPolicy/raftlet', 'PodDisruptionBudget/raftlet', 'Pod/raftlet-test-leader', 'Role/raftlet', 'Role/raftlet-test',
      'RoleBinding/raftlet', 'RoleBinding/raftlet-test', 'Secret/raftlet-cluster-token', 'Service/raftlet', 'Service/raftlet-leader',
      'ServiceAccount/raftlet', 'ServiceAccount/raftlet-test', 'StatefulSet/raftlet',
      'ValidatingAdmissionPolicy/raftlet.default.raftlet', 'ValidatingAdmissionPolicyBinding/raftlet.default.raftlet'];
    assert.deepEqual(kinds(await renderChart()), base.sort());
    assert.deepEqual(kinds(await renderChart(cases[1].options)), [...base, 'ConfigMap/raftlet-dashboard', 'PrometheusRule/raftlet', 'ServiceMonitor/raftlet'].sort());
    assert.deepEqual(kinds(await renderChart({ set: { 'app.enabled': false } })), base.filter((k) => k !== 'Service/raftlet-leader'));
    const custom = kinds(await renderChart(cases[5].options));
    assert.ok(!custom.some((k) => k.startsWith('Secret/')), 'an existing Secret is used, none is rendered');
    assert.ok(custom.includes('StatefulSet/orders-raft') && custom.includes('ServiceAccount/orders-raftlet'), custom.join(' '));
    assert.ok(custom.includes('CronJob/orders-raft-backup') && !custom.some((k) => k.startsWith('PersistentVolumeClaim/')), 'an existing claim is used for backups');
    const tlsBackup = kinds(await renderChart(cases[6].options));
    for (const k of ['Secret/raftlet-peer-tls', 'CronJob/raftlet-backup', 'PersistentVolumeClaim/raftlet-backups']) assert.ok(tlsBackup.includes(k), k);
    const bare = kinds(await renderChart(cases[8].options));
    assert.ok(!bare.some((k) => /NetworkPolicy|ValidatingAdmissionPolicy|-test/.test(k)), bare.join(' '));
  });

  it('members find each other through the headless Service and its SRV record _raft._tcp', async () => {
    for (const { options } of cases) {
      const objects = await renderChart(options);
      const sts = find(objects, 'StatefulSet');
      const spec = obj(sts.spec);
      const headless = objects.map((o) => o.object as unknown as Obj).find((o) => o.kind === 'Service' && obj(o.spec).clusterIP === 'None');
      assert.ok(headless, 'a headless Service');
      const headlessName = String(obj(headless.metadata).name);
      assert.equal(spec.serviceName, headlessName);
      assert.equal(spec.podManagementPolicy, 'Parallel');
      assert.equal(obj(headless.spec).publishNotReadyAddresses, true);
      const raftPort = arr(obj(headless.spec).ports).find((p) => p.name === 'raft');
      assert.ok(raftPort && raftPort.protocol === 'TCP', 'port named raft over TCP (SRV _raft._tcp)');
      const raftlet = container(sts, 'raftlet');
      const peerPort = arr(raftlet.ports).find((p) => p.name === 'raft');
      assert.equal(raftPort.port, peerPort?.containerPort);
      assert.equal(raftPort.targetPort, 'raft');
      assert.equal(envValue(raftlet, 'RAFTLET_DISCOVERY_SERVICE'), `${headlessName}.$(POD_NAMESPACE).svc.cluster.local`);
      const scheme = envValue(raftlet, 'RAFTLET_PEER_TLS_CERT_FILE') === undefined ? 'http' : 'https';
      assert.equal(envValue(raftlet, 'RAFTLET_ADVERTISE_URL'), `${scheme}://$(POD_NAME).${headlessName}.$(POD_NAMESPACE).svc.cluster.local:${String(peerPort?.containerPort)}`);
      assert.equal(envValue(raftlet, 'RAFTLET_PEER_LISTEN'), `0.0.0.0:${String(peerPort?.containerPort)}`);
      assert.match(envValue(raftlet, 'RAFTLET_API_LISTEN') ?? '', /^127\.0\.0\.1:\d+$/);
      assert.equal(envValue(raftlet, 'RAFTLET_BOOTSTRAP_EXPECT'), String(Math.min(Number(spec.replicas), 3)));
      // $(VAR) expands only variables defined earlier in the list.
      const names = arr(raftlet.env).map((e) => String(e.name));
      assert.ok(names.indexOf('POD_NAME') < names.indexOf('RAFTLET_ADVERTISE_URL'));
      assert.ok(names.indexOf('POD_NAMESPACE') < names.indexOf('RAFTLET_DISCOVERY_SERVICE'));
      assert.deepEqual(obj(obj(envOf(raftlet).get('POD_NAME')?.valueFrom).fieldRef), { fieldPath: 'metadata.name' });
      assert.deepEqual(obj(obj(envOf(raftlet).get('POD_NAMESPACE')?.valueFrom).fieldRef), { fieldPath: 'metadata.namespace' });
    }
  });

  it('replicas follow values; the bootstrap expectation is min(replicas, 3) unless pinned', async () => {
    const sts = find(await renderChart({ set: { replicas: 5 } }), 'StatefulSet');
    assert.equal(obj(sts.spec).replicas, 5);
    // Scaling 3 -> 5 must not change the pod template (that would restart every member).
    assert.equal(envValue(container(sts, 'raftlet'), 'RAFTLET_BOOTSTRAP_EXPECT'), '3');
    const single = find(await renderChart({ set: { replicas: 1 } }), 'StatefulSet');
    assert.equal(envValue(container(single, 'raftlet'), 'RAFTLET_BOOTSTRAP_EXPECT'), '1');
    const pinned = find(await renderChart({ set: { replicas: 5, bootstrapExpect: 5 } }), 'StatefulSet');
    assert.equal(envValue(container(pinned, 'raftlet'), 'RAFTLET_BOOTSTRAP_EXPECT'), '5');
  });

  it('the leader Service selects the pod labelled leader and reaches the app port', async () => {
    for (const { options } of cases.filter((c) => c.name !== 'app disabled')) {
      const objects = await renderChart(options);
      const sts = find(objects, 'StatefulSet');
      const selectorLabels = obj(obj(obj(sts.spec).selector).matchLabels);
      const roleLabel = envValue(container(sts, 'raftlet'), 'RAFTLET_ROLE_LABEL') ?? '';
      const leader = objects.map((o) => o.object as unknown as Obj).find((o) => o.kind === 'Service' && String(obj(o.metadata).name).endsWith('-leader'));
      assert.ok(leader, 'a leader Service');
      assert.deepEqual(obj(leader.spec).selector, { ...selectorLabels, [roleLabel]: 'leader' });
      const podLabels = obj(obj(obj(obj(sts.spec).template).metadata).labels);
      assert.equal(podLabels[roleLabel], undefined, 'raftlet owns the role label; the template must not set it');
      for (const [key, value] of Object.entries(selectorLabels)) assert.equal(podLabels[key], value);
      const targetPort = arr(obj(leader.spec).ports)[0].targetPort;
      const appPorts = arr(podSpec(sts).containers).filter((c) => c.name !== 'raftlet').flatMap((c) => arr(c.ports ?? []));
      assert.ok(appPorts.some((p) => p.name === targetPort || p.containerPort === targetPort), `targetPort ${String(targetPort)} is an app container port`);
    }
  });

  it('the app container talks to its raftlet over localhost and is replaceable', async () => {
    const defaults = find(await renderChart(), 'StatefulSet');
    const app = container(defaults, 'app');
    assert.deepEqual(app.args, ['demo-app', '--port', '8080']);
    assert.equal(app.image, container(defaults, 'raftlet').image);
    assert.equal(envValue(app, 'RAFTLET_API_URL'), 'http://127.0.0.1:7071');
    assert.equal(envValue(container(defaults, 'raftlet'), 'RAFTLET_API_LISTEN'), '127.0.0.1:7071');

    const custom = find(await renderChart(cases[5].options), 'StatefulSet');
    const orders = container(custom, 'orders');
    assert.equal(orders.image, 'registry.example.com/orders:2.3.4');
    assert.deepEqual(orders.command, ['/orders']);
    assert.equal(envValue(orders, 'ORDERS_MODE'), 'leader-aware');
    assert.equal(envValue(orders, 'RAFTLET_API_URL'), 'http://127.0.0.1:17071');
    assert.equal(orders.livenessProbe, undefined, 'a null probe means none');
    assert.equal(container(custom, 'raftlet').image, `registry.example.com/raftlet@sha256:${'a'.repeat(64)}`);

    const without = find(await renderChart({ set: { 'app.enabled': false } }), 'StatefulSet');
    assert.deepEqual(arr(podSpec(without).containers).map((c) => c.name), ['raftlet']);
  });

  it('the cluster token comes from the Secret as a file (never a variable), with no checksum that would restart members', async () => {
    const objects = await renderChart();
    const sts = find(objects, 'StatefulSet');
    const secret = find(objects, 'Secret');
    const raftlet = container(sts, 'raftlet');
    assert.ok(!arr(raftlet.env).some((e) => e.name === 'RAFTLET_CLUSTER_TOKEN'), 'never the token in a variable');
    assert.ok(!arr(raftlet.env).some((e) => e.valueFrom !== undefined && obj(e.valueFrom).secretKeyRef !== undefined), 'no Secret in a variable');
    const tokenFile = envValue(raftlet, 'RAFTLET_CLUSTER_TOKEN_FILE') ?? '';
    const mount = arr(raftlet.volumeMounts).find((m) => tokenFile.startsWith(`${String(m.mountPath)}/`));
    assert.ok(mount, `a volume is mounted at ${tokenFile}'s directory`);
    assert.equal(mount.readOnly, true);
    assert.equal(mount.subPath, undefined, 'a subPath mount would never see the Secret change');
    const volume = arr(podSpec(sts).volumes).find((v) => v.name === mount.name);
    assert.equal(obj(volume?.secret).secretName, obj(secret.metadata).name);
    const key = tokenFile.slice(String(mount.mountPath).length + 1);
    const token = Buffer.from(String(obj(secret.data)[key]), 'base64').toString('utf8');
    assert.match(token, /^[A-Za-z0-9]{48}$/);
    const annotations = obj(obj(obj(sts.spec).template).metadata).annotations;
    assert.ok(!Object.keys(obj(annotations ?? {})).some((k) => k.startsWith('checksum/')), 'a token change must not restart the members');

    const existing = find(await renderChart(cases[5].options), 'StatefulSet');
    const existingRaftlet = container(existing, 'raftlet');
    assert.equal(envValue(existingRaftlet, 'RAFTLET_CLUSTER_TOKEN_FILE'), '/etc/raftlet/cluster-token/peer-token');
    assert.equal(obj(arr(podSpec(existing).volumes).find((v) => v.name === 'cluster-token')?.secret).secretName, 'orders-token');
  });

  it('the token is made once and kept: lookup finds it on upgrade, and a render without lookup refuses instead of inventing one', async () => {
    const tokenOf = (objects: readonly RenderedObject[]): string => Buffer.from(String(obj(find(objects, 'Secret').data).token), 'base64').toString('utf8');
    const first = tokenOf(await renderChart());
    const second = tokenOf(await renderChart());
    assert.notEqual(first, second, 'each fresh install gets its own random token');
    // The upgrade sees the Secret of the install and keeps its (multi-line, mid-rotation) content.
    const stored = `${first}\n${'B'.repeat(20)}`;
    const cluster = [rootCaConfigMap('default'), {
      apiVersion: 'v1', kind: 'Secret', metadata: { name: 'raftlet-cluster-token', namespace: 'default' }, data: { token: Buffer.from(stored).toString('base64') },
    }];
    assert.equal(tokenOf(await renderChart({ cluster, isUpgrade: true })), stored);
    // helm template / GitOps: lookup sees nothing at all.
    await assert.rejects(renderChartText({ cluster: null }), /cannot look up Secret raftlet-cluster-token in namespace default.*set auth\.existingSecret, or set auth\.token/s);
    await assert.rejects(renderChartText({ cluster: [] }), /cannot look up Secret raftlet-cluster-token/, 'a namespace that does not exist yet is no place to invent a token either');
    // An upgrade whose Secret vanished: the running members still hold the old token.
    await assert.rejects(renderChartText({ isUpgrade: true }), /holding the cluster token is missing.*this is an upgrade.*Set auth\.token/s);
    // With an existing Secret or a given token, no lookup is needed.
    const viaExisting = await renderChart({ cluster: null, set: { 'auth.existingSecret': 'mine' } });
    assert.ok(!viaExisting.some((o) => o.object.kind === 'Secret'));
    assert.equal(obj(arr(podSpec(find(viaExisting, 'StatefulSet')).volumes).find((v) => v.name === 'cluster-token')?.secret).secretName, 'mine');
    const given = `${'A'.repeat(24)}\n${'B'.repeat(24)}`;
    assert.equal(tokenOf(await renderChart({ cluster: null, values: { auth: { token: given } } })), given);
    await assert.rejects(renderChartText({ cluster: null, values: { auth: { token: 'short' } } }), /auth\.token: every line must be a token of at least 16 characters/);
    // The name before auth.*, still honoured.
    const legacy = await renderChart({ cluster: null, values: { clusterToken: { existingSecret: 'old-name', key: 'peer' } } });
    const legacySts = container(find(legacy, 'StatefulSet'), 'raftlet');
    assert.equal(envValue(legacySts, 'RAFTLET_CLUSTER_TOKEN_FILE'), '/etc/raftlet/cluster-token/peer');
    assert.ok(!legacy.some((o) => o.object.kind === 'Secret'));
  });

  it('data lives on a per-member volume at /var/lib/raftlet', async () => {
    const sts = find(await renderChart(), 'StatefulSet');
    const claims = arr(obj(sts.spec).volumeClaimTemplates);
    assert.equal(claims.length, 1);
    const claimName = obj(claims[0].metadata).name;
    const raftlet = container(sts, 'raftlet');
    assert.deepEqual(arr(raftlet.volumeMounts).find((m) => m.name === claimName), { name: claimName, mountPath: '/var/lib/raftlet' });
    assert.equal(envValue(raftlet, 'RAFTLET_DATA_DIR'), '/var/lib/raftlet');
    const custom = find(await renderChart(cases[5].options), 'StatefulSet');
    assert.equal(obj(arr(obj(custom.spec).volumeClaimTemplates)[0].spec).storageClassName, 'fast-ssd');
  });

  it('probes hit /healthz and /readyz on the metrics port, and the grace period leaves room for hand-off', async () => {
    for (const { options } of [cases[0], cases[5]]) {
      const sts = find(await renderChart(options), 'StatefulSet');
      const raftlet = container(sts, 'raftlet');
      const metricsPort = arr(raftlet.ports).find((p) => p.name === 'metrics');
      assert.ok(metricsPort);
      assert.deepEqual(obj(obj(raftlet.livenessProbe).httpGet), { path: '/healthz', port: 'metrics' });
      assert.deepEqual(obj(obj(raftlet.readinessProbe).httpGet), { path: '/readyz', port: 'metrics' });
      assert.equal(envValue(raftlet, 'RAFTLET_METRICS_LISTEN'), `0.0.0.0:${String(metricsPort.containerPort)}`);
      const grace = Number(podSpec(sts).terminationGracePeriodSeconds);
      const electionTimeoutMs = Number(envValue(raftlet, 'RAFTLET_ELECTION_TIMEOUT_MS'));
      assert.ok(grace * 1000 >= 10 * electionTimeoutMs, `grace ${grace}s is many election timeouts (${electionTimeoutMs} ms)`);
    }
  });

  it('every pod is hardened: non-root, read-only root, no privilege escalation, no capabilities, RuntimeDefault seccomp', async () => {
    for (const { options } of cases) {
      const objects = await renderChart(options);
      for (const { object } of objects.filter((o) => o.object.kind === 'StatefulSet' || o.object.kind === 'Pod')) {
        const spec = object.kind === 'Pod' ? obj((object as unknown as Obj).spec) : podSpec(object as unknown as Obj);
        const pod = obj(spec.securityContext);
        assert.equal(pod.runAsNonRoot, true);
        assert.ok(Number(pod.runAsUser) > 0 && Number(pod.fsGroup) > 0);
        assert.deepEqual(pod.seccompProfile, { type: 'RuntimeDefault' });
        for (const c of arr(spec.containers)) {
          const sc = obj(c.securityContext);
          assert.equal(sc.readOnlyRootFilesystem, true, `${String(c.name)} readOnlyRootFilesystem`);
          assert.equal(sc.allowPrivilegeEscalation, false, `${String(c.name)} allowPrivilegeEscalation`);
          assert.deepEqual(obj(sc.capabilities).drop, ['ALL']);
        }
      }
    }
  });

  it('only the raftlet container gets API credentials', async () => {
    const sts = find(await renderChart(), 'StatefulSet');
    assert.equal(podSpec(sts).automountServiceAccountToken, false);
    const saPath = '/var/run/secrets/kubernetes.io/serviceaccount';
    const mounted = arr(podSpec(sts).containers).filter((c) => arr(c.volumeMounts ?? []).some((m) => m.mountPath === saPath));
    assert.deepEqual(mounted.map((c) => c.name), ['raftlet']);
    const volume = arr(podSpec(sts).volumes).find((v) => v.name === 'kube-api-access');
    const sources = arr(obj(volume?.projected).sources);
    assert.ok(sources.some((s) => obj(s.serviceAccountToken ?? {}).path === 'token'));
    assert.ok(sources.some((s) => s.configMap !== undefined && obj(s.configMap).name === 'kube-root-ca.crt'));
  });

  it('scheduling settings pass through; soft anti-affinity by default', async () => {
    const defaults = podSpec(find(await renderChart(), 'StatefulSet'));
    assert.ok(obj(obj(defaults.affinity).podAntiAffinity).preferredDuringSchedulingIgnoredDuringExecution);
    const custom = podSpec(find(await renderChart(cases[5].options), 'StatefulSet'));
    assert.ok(obj(obj(custom.affinity).podAntiAffinity).requiredDuringSchedulingIgnoredDuringExecution);
    assert.deepEqual(custom.nodeSelector, { 'kubernetes.io/os': 'linux' });
    assert.equal(arr(custom.tolerations).length, 1);
    assert.equal(arr(custom.topologySpreadConstraints).length, 1);
    assert.equal(custom.priorityClassName, 'critical');
    assert.deepEqual(custom.imagePullSecrets, [{ name: 'regcred' }]);
  });

  it('the PodDisruptionBudget keeps a majority: maxUnavailable 1 over the members, never blocking a drain of NotReady pods', async () => {
    const objects = await renderChart();
    const pdb = find(objects, 'PodDisruptionBudget');
    assert.equal(obj(pdb.spec).maxUnavailable, 1);
    assert.equal(obj(pdb.spec).unhealthyPodEvictionPolicy, 'AlwaysAllow');
    assert.equal(obj(find(await renderChart(cases[5].options), 'PodDisruptionBudget').spec).unhealthyPodEvictionPolicy, 'IfHealthyBudget');
    assert.deepEqual(obj(pdb.spec).selector, obj(find(objects, 'StatefulSet').spec).selector);
  });

  it('settings and extra env reach the raftlet container', async () => {
    const defaults = container(find(await renderChart(), 'StatefulSet'), 'raftlet');
    assert.equal(envValue(defaults, 'RAFTLET_HEARTBEAT_MS'), '100');
    assert.equal(envValue(defaults, 'RAFTLET_ELECTION_TIMEOUT_MS'), '1000');
    assert.equal(envValue(defaults, 'RAFTLET_MAX_VALUE_BYTES'), '1048576');
    assert.equal(envValue(defaults, 'RAFTLET_LOG_LEVEL'), 'info');
    assert.equal(envValue(defaults, 'RAFTLET_ROLE_LABEL'), 'raftlet.io/role');
    assert.equal(envValue(defaults, 'RAFTLET_LEASE_NAME'), undefined);
    const custom = container(find(await renderChart(cases[5].options), 'StatefulSet'), 'raftlet');
    assert.equal(envValue(custom, 'RAFTLET_HEARTBEAT_MS'), '50');
    assert.equal(envValue(custom, 'RAFTLET_ELECTION_TIMEOUT_MS'), '500');
    assert.equal(envValue(custom, 'RAFTLET_MAX_VALUE_BYTES'), '65536');
    assert.equal(envValue(custom, 'RAFTLET_LOG_LEVEL'), 'debug');
    assert.equal(envValue(custom, 'RAFTLET_ROLE_LABEL'), 'example.com/raft-role');
    assert.equal(envValue(custom, 'RAFTLET_DNS_SERVER'), '10.96.0.10:53');
    const lease = container(find(await renderChart({ set: { 'lease.name': 'raftlet-leader' } }), 'StatefulSet'), 'raftlet');
    assert.equal(envValue(lease, 'RAFTLET_LEASE_NAME'), 'raftlet-leader');
    assert.equal(envValue(defaults, 'RAFTLET_APP_HEALTH_URL'), undefined, 'leadership follows app health only when asked');
    const health = container(find(await renderChart({ set: { 'app.leadershipFollowsHealth': 'true' } }), 'StatefulSet'), 'raftlet');
    assert.equal(envValue(health, 'RAFTLET_APP_HEALTH_URL'), 'http://127.0.0.1:8080/healthz', 'the app readiness probe, its named port resolved');
    const explicit = container(find(await renderChart({ set: { 'app.leadershipFollowsHealth': 'true', 'app.healthUrl': 'http://127.0.0.1:9000/ready' } }), 'StatefulSet'), 'raftlet');
    assert.equal(envValue(explicit, 'RAFTLET_APP_HEALTH_URL'), 'http://127.0.0.1:9000/ready');
  });

  it('the Role is bound to the pods\' ServiceAccount', async () => {
    for (const { options } of cases) {
      const objects = (await renderChart(options)).filter((o) => !isHook(o));
      const binding = find(objects, 'RoleBinding');
      const role = find(objects, 'Role');
      const sts = find(objects, 'StatefulSet');
      assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: obj(role.metadata).name });
      assert.deepEqual(arr(binding.subjects).map((s) => [s.kind, s.name]), [['ServiceAccount', podSpec(sts).serviceAccountName]]);
      assert.equal(obj(find(objects, 'ServiceAccount').metadata).name, podSpec(sts).serviceAccountName);
    }
  });

  it('the helm test pod is a hook with a ServiceAccount of its own that may only list pods and EndpointSlices', async () => {
    for (const { name, options } of cases.filter((c) => c.name !== 'no NetworkPolicy, no admission policy')) {
      const objects = await renderChart(options);
      const hooks = objects.filter(isHook);
      const test = find(hooks, 'Pod');
      const annotations = obj(obj(test.metadata).annotations);
      assert.equal(annotations['helm.sh/hook'], 'test');
      const sts = find(objects.filter((o) => !isHook(o)), 'StatefulSet');
      const account = String(obj(test.spec).serviceAccountName);
      assert.notEqual(account, podSpec(sts).serviceAccountName, 'not the members\' ServiceAccount, which may patch pods');
      // The hook's RBAC exists before the pod (lower weight) and is removed with it.
      for (const kind of ['ServiceAccount', 'Role', 'RoleBinding']) {
        const object = find(hooks, kind);
        const hook = obj(obj(object.metadata).annotations);
        assert.equal(hook['helm.sh/hook'], 'test', `${name}: ${kind}`);
        assert.ok(Number(hook['helm.sh/hook-weight']) < Number(annotations['helm.sh/hook-weight'] ?? 0), `${name}: ${kind} before the pod`);
        assert.match(String(hook['helm.sh/hook-delete-policy']), /before-hook-creation/);
      }
      assert.equal(obj(find(hooks, 'ServiceAccount').metadata).name, account);
      const binding = find(hooks, 'RoleBinding');
      assert.deepEqual(arr(binding.subjects).map((s) => s.name), [account]);
      assert.equal(obj(binding.roleRef).name, obj(find(hooks, 'Role').metadata).name);
      assert.deepEqual(find(hooks, 'Role').rules, [
        { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list'] },
      ]);
      const selector = obj(obj(obj(sts.spec).selector).matchLabels);
      const labels = obj(obj(test.metadata).labels);
      assert.ok(Object.entries(selector).some(([k, v]) => labels[k] !== v), 'the test pod must not match the members\' selector');
      const script = arr(obj(test.spec).containers)[0];
      const command = (script.command as string[]);
      assert.equal(command[0], 'node');
      assert.equal(command.at(-1), readFileSync(join(chartDir, 'files', 'helm-test-leader.mjs'), 'utf8'));
      const env = envOf(script);
      const leaderService = objects.some((o) => o.object.kind === 'Service' && String(o.object.metadata?.name).endsWith('-leader'));
      assert.equal(env.has('LEADER_SERVICE'), leaderService, `${name}: the leader Service is checked whenever it exists`);
    }
  });

  it('the helm test asks the application over HTTP only when it is the demo app', async () => {
    const testEnv = async (options: RenderOptions): Promise<Map<string, Obj>> =>
      envOf(arr(obj(find((await renderChart(options)).filter(isHook), 'Pod').spec).containers)[0]);
    assert.equal(String((await testEnv({})).get('LEADER_URL')?.value), 'http://raftlet-leader.default.svc.cluster.local:80/');
    assert.equal((await testEnv(cases[5].options)).get('LEADER_URL'), undefined, 'an application of its own');
    assert.equal(String((await testEnv(cases[5].options)).get('LEADER_SERVICE')?.value), 'orders-raft-leader');
    assert.equal((await testEnv({ values: { app: { args: ['serve'] } } })).get('LEADER_URL'), undefined, 'the raftlet image running something else');
    assert.equal((await testEnv({ set: { 'app.enabled': false } })).get('LEADER_SERVICE'), undefined);
  });

  it('monitoring: ServiceMonitor on the headless Service\'s metrics port, alert rules and dashboard from files/', async () => {
    const objects = await renderChart(cases[1].options);
    const monitor = find(objects, 'ServiceMonitor');
    const headless = find(objects, 'Service', 'raftlet');
    const matchLabels = obj(obj(obj(monitor.spec).selector).matchLabels);
    const headlessLabels = obj(obj(headless.metadata).labels);
    for (const [k, v] of Object.entries(matchLabels)) assert.equal(headlessLabels[k], v, `ServiceMonitor selects the headless Service (${k})`);
    const leaderLabels = obj(obj(find(objects, 'Service', 'raftlet-leader').metadata).labels);
    assert.ok(Object.entries(matchLabels).some(([k, v]) => leaderLabels[k] !== v), 'and not the leader Service');
    assert.equal(arr(obj(monitor.spec).endpoints)[0].port, 'metrics');
    assert.ok(arr(obj(headless.spec).ports).some((p) => p.name === 'metrics'));

    const rulesFile = parseYaml(readFileSync(join(chartDir, 'files', 'raftlet-alerts.rules.yml'), 'utf8')) as Obj;
    assert.deepEqual(obj(find(objects, 'PrometheusRule').spec).groups, chartRuleGroups(rulesFile.groups, 'default', 'raftlet'));

    const dashboard = find(objects, 'ConfigMap');
    assert.equal(obj(obj(dashboard.metadata).labels).grafana_dashboard, '1');
    const json = String(obj(dashboard.data)['raftlet.json']);
    assert.deepEqual(JSON.parse(json), JSON.parse(readFileSync(join(chartDir, 'files', 'grafana-dashboard.json'), 'utf8')));
  });

  it('refuses, with a message saying what to do, what cannot work', async () => {
    await assert.rejects(renderChartText({ set: { 'monitoring.serviceMonitor.enabled': true } }), /needs the prometheus-operator CRDs.*--api-versions monitoring\.coreos\.com\/v1/);
    await assert.rejects(renderChartText({ set: { 'serviceAccount.create': false } }), /serviceAccount\.name must name an existing ServiceAccount/);
    await assert.rejects(renderChartText({ set: { 'app.image.repository': 'example/app' } }), /app\.image\.tag is required/);
  });
});

/**
 * The chart's PrometheusRule is the rules file with two substitutions: the absent() selector names
 * the release's namespace and job (a standalone rules file cannot know them), and runbook links
 * point at monitoring.prometheusRule.runbookBaseUrl.
 */
function chartRuleGroups(groups: unknown, namespace: string, job: string, runbookBase = RUNBOOK_BASE): unknown {
  const text = JSON.stringify(groups)
    .replaceAll('raftlet_is_leader{namespace=\\"default\\", job=\\"raftlet\\"}', `raftlet_is_leader{namespace=\\"${namespace}\\", job=\\"${job}\\"}`)
    .replaceAll(RUNBOOK_BASE, runbookBase);
  return JSON.parse(text) as unknown;
}
const RUNBOOK_BASE = 'https://github.com/raftlet/raftlet/blob/main/docs/runbooks.md';

// What differs legitimately between a Helm release and the plain manifests.
function normalise(object: KubeObject): Obj {
  const copy = structuredClone(object) as unknown as Obj;
  const metadata = obj(copy.metadata);
  delete metadata.namespace;
  const stripLabels = (labels: unknown): void => {
    if (labels === undefined) return;
    for (const label of helmOnlyLabels) delete obj(labels)[label];
  };
  stripLabels(metadata.labels);
  if (copy.kind === 'Secret') {
    delete copy.data;
    delete copy.stringData;
  }
  if (Array.isArray(copy.subjects)) for (const subject of arr(copy.subjects)) delete subject.namespace;
  if (copy.kind === 'StatefulSet') {
    const template = obj(obj(copy.spec).template);
    stripLabels(obj(template.metadata).labels);
    const annotations = obj(template.metadata).annotations;
    if (annotations !== undefined) {
      for (const key of Object.keys(obj(annotations))) if (key.startsWith('checksum/')) delete obj(annotations)[key];
    }
  }
  return copy;
}

describe('k8s/ is the chart for its default values', () => {
  it('same objects, apart from Helm\'s own labels, namespaces, the token and checksums', async () => {
    const chart = (await renderChart({ releaseName: 'raftlet', namespace: 'anywhere' }))
      .filter((o) => !isHook(o) && !chartOnlyKinds.includes(o.object.kind))
      .map((o) => o.object);
    const plain = await kustomizePlainManifests();
    const byName = (objects: readonly KubeObject[]): Map<string, Obj> =>
      new Map(objects.map((o) => [`${o.kind}/${o.metadata?.name ?? ''}`, normalise(o)]));
    const fromChart = byName(chart);
    const fromPlain = byName(plain);
    assert.deepEqual([...fromPlain.keys()].sort(), [...fromChart.keys()].sort(), 'regenerate with: node test/ship/write-plain-manifests.ts');
    for (const [key, expected] of fromChart) {
      assert.deepEqual(fromPlain.get(key), expected, `${key} differs from the chart; regenerate with: node test/ship/write-plain-manifests.ts`);
    }
  });

  it('is namespace-agnostic and ships only a placeholder token that raftlet refuses', async () => {
    const plain = await kustomizePlainManifests();
    for (const object of plain) assert.equal(object.metadata?.namespace, undefined, `${object.kind} has a namespace`);
    const secret = plain.find((o) => o.kind === 'Secret') as unknown as Obj;
    const token = String(obj(secret.stringData).token);
    // MIN_TOKEN_LENGTH in src/config/tokens.ts is 16: a placeholder left in place stops raftlet with
    // exit code 2 instead of running a cluster on a published token.
    assert.ok(token.length < 16, `placeholder ${token} must be too short to be accepted`);
  });
});
