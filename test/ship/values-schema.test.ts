// values.schema.json: helm checks the merged values against it before rendering, so it must accept
// values.yaml and every documented override, and refuse misspelled or mistyped ones.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { chartDir } from './render.ts';

type Values = { [key: string]: unknown };

const schema = JSON.parse(readFileSync(join(chartDir, 'values.schema.json'), 'utf8')) as Values;
const defaults = parseYaml(readFileSync(join(chartDir, 'values.yaml'), 'utf8')) as Values;
const validate = new Ajv({ strict: true, allowUnionTypes: true, allErrors: true }).compile(schema);

const isMap = (v: unknown): v is Values => typeof v === 'object' && v !== null && !Array.isArray(v);

// helm's merge: maps merge key by key, anything else replaces, null removes the key.
function merge(base: Values, override: Values): Values {
  const out: Values = { ...base };
  for (const [key, value] of Object.entries(override)) {
    if (value === null) delete out[key];
    else if (isMap(out[key]) && isMap(value)) out[key] = merge(out[key], value);
    else out[key] = value;
  }
  return out;
}

function problems(override: Values): string[] {
  if (validate(merge(defaults, override))) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
}

describe('values.schema.json', () => {
  it('is closed at the top level and in every group of settings', () => {
    assert.equal(schema.additionalProperties, false);
    const properties = schema.properties as Values;
    for (const group of ['image', 'auth', 'clusterToken', 'lease', 'settings', 'ports', 'persistence', 'app', 'leaderService', 'serviceAccount', 'rbac',
      'podDisruptionBudget', 'monitoring', 'tests', 'tls', 'networkPolicy', 'admissionPolicy', 'backup']) {
      assert.equal((properties[group] as Values).additionalProperties, false, `${group} must reject unknown keys`);
    }
  });

  it('accepts values.yaml and the documented overrides', () => {
    assert.deepEqual(problems({}), []);
    const overrides: Values[] = [
      { replicas: 5 },
      { bootstrapExpect: 3 },
      { lease: { name: 'raftlet-leader' } },
      { app: { enabled: false } },
      { app: { livenessProbe: null, image: { repository: 'example/app', tag: '1.0' } } },
      { monitoring: { serviceMonitor: { enabled: true, labels: { release: 'kube-prometheus-stack' } }, prometheusRule: { enabled: true }, grafanaDashboard: { enabled: true } } },
      { clusterToken: { existingSecret: 'my-token', key: 'token' } },
      { auth: { existingSecret: 'my-token', key: 'peer' } },
      { auth: { token: `${'a'.repeat(20)}\n${'b'.repeat(20)}` } },
      { tls: { enabled: true, source: 'certManager', certManager: { issuerRef: { name: 'corp', kind: 'ClusterIssuer', group: 'cert-manager.io' } } } },
      { tls: { enabled: true, source: 'existingSecret', existingSecret: 'peer-tls' } },
      { networkPolicy: { metrics: { from: [{ namespaceSelector: { matchLabels: { team: 'obs' } }, podSelector: {} }] }, extraIngress: [{ from: [] }] } },
      { admissionPolicy: { enabled: false } },
      { admissionPolicy: { validationActions: ['Warn', 'Audit'] } },
      { backup: { enabled: true, keep: 30, persistence: { existingClaim: 'backups', size: '20Gi' } } },
      { podDisruptionBudget: { unhealthyPodEvictionPolicy: 'IfHealthyBudget' } },
      { monitoring: { prometheusRule: { enabled: true, runbookBaseUrl: 'https://wiki.example.com/raftlet' } } },
      { settings: { heartbeatMs: 50, electionTimeoutMs: 500, logLevel: 'debug' } },
      { podDisruptionBudget: { enabled: true, maxUnavailable: '34%' } },
      { leaderService: { targetPort: 9000 } },
      { image: { digest: `sha256:${'0'.repeat(64)}` } },
      { extraEnv: [{ name: 'RAFTLET_DNS_SERVER', value: '10.0.0.10:53' }] },
      { podAntiAffinity: 'hard', tolerations: [{ key: 'k', operator: 'Exists' }] },
    ];
    for (const override of overrides) assert.deepEqual(problems(override), [], JSON.stringify(override));
  });

  it('rejects misspelled keys and wrong types, naming the place', () => {
    const bad: Array<[Values, RegExp]> = [
      [{ replica: 3 }, /additionalProperty":"replica"/],
      [{ replicas: 'three' }, /\/replicas must be integer/],
      [{ replicas: 0 }, /\/replicas must be >= 1/],
      [{ settings: { heartbeat: 100 } }, /\/settings must NOT have additional properties.*heartbeat/],
      [{ settings: { logLevel: 'loud' } }, /\/settings\/logLevel must be equal to one of the allowed values/],
      [{ ports: { raft: 70000 } }, /\/ports\/raft must be <= 65535/],
      [{ image: { pullPolicy: 'Sometimes' } }, /\/image\/pullPolicy/],
      [{ image: { digest: 'latest' } }, /\/image\/digest must match pattern/],
      [{ roleLabel: 'not a label' }, /\/roleLabel must match pattern/],
      [{ lease: { name: 'Not_A_Name' } }, /\/lease\/name must match pattern/],
      [{ persistence: { size: '1 GB' } }, /\/persistence\/size must match pattern/],
      [{ podAntiAffinity: 'sometimes' }, /\/podAntiAffinity/],
      [{ monitoring: { serviceMonitor: { enabled: 'yes' } } }, /\/monitoring\/serviceMonitor\/enabled must be boolean/],
      [{ app: { enabled: true, nmae: 'x' } }, /\/app must NOT have additional properties.*nmae/],
      [{ podLabels: { tier: 1 } }, /\/podLabels\/tier must be string/],
      [{ auth: null }, /must have required property 'auth'/],
      [{ auth: { token: 'short' } }, /\/auth\/token must match pattern/],
      [{ auth: { tokne: 'x' } }, /\/auth must NOT have additional properties.*tokne/],
      [{ tls: { source: 'vault' } }, /\/tls\/source must be equal to one of the allowed values/],
      [{ admissionPolicy: { validationActions: ['Block'] } }, /\/admissionPolicy\/validationActions\/0/],
      [{ backup: { keep: 0 } }, /\/backup\/keep must be >= 1/],
      [{ networkPolicy: { metrics: { from: [{ podSelecter: {} }] } } }, /\/networkPolicy\/metrics\/from\/0 must NOT have additional properties/],
      [{ podDisruptionBudget: { unhealthyPodEvictionPolicy: 'Sometimes' } }, /unhealthyPodEvictionPolicy/],
    ];
    for (const [override, expected] of bad) {
      const found = problems(override);
      assert.ok(found.some((p) => expected.test(p)), `${JSON.stringify(override)}: expected ${expected}, got ${JSON.stringify(found)}`);
    }
  });
});
