// The chart's `helm test` script (helm/raftlet/files/helm-test-leader.mjs), run with node against
// the Kubernetes API double, authenticated with a ServiceAccount token and authorized by exactly the
// Role the chart gives the test pod, with a stand-in demo app behind the leader Service.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startK8sDouble } from '../support/k8s-double/index.ts';
import type { EndpointInput, K8sDouble, Rule } from '../support/k8s-double/index.ts';
import { chartDir, renderChart } from './render.ts';

const script = join(chartDir, 'files', 'helm-test-leader.mjs');
const NAMESPACE = 'shop';
const RELEASE = 'orders';

interface Scenario {
  /** Role labels of the release's member pods (undefined: no label yet). */
  readonly roles: Readonly<Record<string, string | undefined>>;
  /** The leader Service's endpoints; omitted: no LEADER_SERVICE (app disabled). */
  readonly endpoints?: readonly EndpointInput[];
  /** What the demo app behind the leader Service answers; omitted: no LEADER_URL (not the demo app). */
  readonly leaderView?: { pod: string; role: string; term: number };
  /** Runs once, right after the script's first pod listing has been answered. */
  readonly afterFirstListing?: (api: K8sDouble) => void;
  readonly rules?: readonly Rule[];
}

let testRole: Rule[] = [];
let env: Record<string, string> = {};
before(async () => {
  // The Role and environment the chart gives the test pod for a release with its own application.
  const objects = await renderChart({ releaseName: RELEASE, namespace: NAMESPACE });
  const hooks = objects.filter((o) => (o.object.metadata?.annotations as Record<string, string> | undefined)?.['helm.sh/hook'] === 'test');
  testRole = hooks.find((o) => o.object.kind === 'Role')?.object.rules as Rule[];
  const pod = hooks.find((o) => o.object.kind === 'Pod')?.object as unknown as { spec: { containers: { env: { name: string; value?: string }[] }[] } };
  env = Object.fromEntries(pod.spec.containers[0].env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value as string]));
  assert.equal(env.SELECTOR, `app.kubernetes.io/name=raftlet,app.kubernetes.io/instance=${RELEASE}`);
  assert.equal(env.LEADER_SERVICE, 'orders-raftlet-leader');
});

const servers: Server[] = [];
after(() => {
  for (const server of servers) server.close();
});

async function runScript(scenario: Scenario): Promise<{ code: number | null; output: string; api: K8sDouble }> {
  const api = await startK8sDouble({ namespace: NAMESPACE, rules: scenario.rules ?? testRole, user: `system:serviceaccount:${NAMESPACE}:orders-raftlet-test` });
  const saDir = mkdtempSync(join(tmpdir(), 'raftlet-helm-test-sa-'));
  try {
    writeFileSync(join(saDir, 'token'), `${api.token}\n`);
    writeFileSync(join(saDir, 'namespace'), NAMESPACE);
    for (const [name, role] of Object.entries(scenario.roles)) {
      api.pods.add({ name, labels: { 'app.kubernetes.io/instance': RELEASE, ...(role === undefined ? {} : { 'raftlet.io/role': role }) } });
    }
    // Another release in the same namespace, with a leader of its own: never counted.
    api.pods.add({ name: 'billing-raftlet-0', labels: { 'app.kubernetes.io/instance': 'billing', 'raftlet.io/role': 'leader' } });
    if (scenario.afterFirstListing !== undefined) {
      const hook = scenario.afterFirstListing;
      api.faults.afterResponse(1, { resource: 'pods', verb: 'list' }, () => hook(api));
    }
    const childEnv: Record<string, string> = {
      PATH: process.env.PATH ?? '',
      KUBERNETES_API: api.url,
      SERVICE_ACCOUNT_DIR: saDir,
      NAMESPACE,
      SELECTOR: env.SELECTOR,
      ROLE_LABEL: env.ROLE_LABEL,
      MEMBERS: env.MEMBERS,
      TIMEOUT_MS: '1500',
      POLL_MS: '50',
    };
    if (scenario.endpoints !== undefined) {
      api.endpointSlices.set(env.LEADER_SERVICE, scenario.endpoints);
      api.endpointSlices.set('orders-raftlet', [{ pod: 'raftlet-0' }, { pod: 'raftlet-1' }, { pod: 'raftlet-2' }]);
      childEnv.LEADER_SERVICE = env.LEADER_SERVICE;
    }
    if (scenario.leaderView !== undefined) {
      const view = scenario.leaderView;
      const leader = createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(view));
      });
      servers.push(leader);
      leader.listen(0, '127.0.0.1');
      await once(leader, 'listening');
      childEnv.LEADER_URL = `http://127.0.0.1:${(leader.address() as AddressInfo).port}/`;
    }
    const child = spawn(process.execPath, [script], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    try {
      const [code] = (await once(child, 'close')) as [number | null];
      return { code, output, api };
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  } finally {
    await api.stop();
    rmSync(saDir, { recursive: true, force: true });
  }
}

const settled = { 'raftlet-0': 'follower', 'raftlet-1': 'leader', 'raftlet-2': 'follower' };

describe('helm test script', () => {
  it('passes for any application: one leader, two followers, and the leader Service\'s ready endpoints are that pod', async () => {
    const { code, output, api } = await runScript({
      roles: settled,
      // A member that is not Ready stays in the slice with ready=false (the controller keeps it).
      endpoints: [{ pod: 'raftlet-1' }, { pod: 'raftlet-0', ready: false }],
    });
    assert.equal(code, 0, output);
    assert.match(output, /raftlet-1 is the only pod labelled raftlet\.io\/role=leader/);
    assert.match(output, /Service orders-raftlet-leader sends traffic to raftlet-1 only/);
    assert.doesNotMatch(output, /demo app/);
    // Only what the test's Role allows, and every call authenticated.
    assert.ok(api.requests.length > 0);
    for (const request of api.requests) {
      assert.equal(request.status, 200, `${request.method} ${request.path}`);
      assert.equal(request.user, api.user);
      assert.equal(request.verb, 'list');
    }
    assert.ok(api.requests.some((r) => r.resource === 'endpointslices' && r.query.labelSelector === 'kubernetes.io/service-name=orders-raftlet-leader'));
  });

  it('with the demo app also asks it through the leader Service', async () => {
    const { code, output } = await runScript({
      roles: settled,
      endpoints: [{ pod: 'raftlet-1' }],
      leaderView: { pod: 'raftlet-1', role: 'leader', term: 4 },
    });
    assert.equal(code, 0, output);
    assert.match(output, /the demo app behind the leader Service answered from raftlet-1 \(role leader, term 4\)/);
  });

  it('waits for the labels to settle', async () => {
    const { code, output } = await runScript({
      roles: { 'raftlet-0': undefined, 'raftlet-1': undefined, 'raftlet-2': undefined },
      afterFirstListing: (api) => {
        for (const [name, role] of Object.entries(settled)) {
          api.pods.update(name, (pod) => {
            ((pod.metadata as Record<string, unknown>).labels as Record<string, string>)['raftlet.io/role'] = role;
          });
        }
      },
    });
    assert.equal(code, 0, output);
  });

  it('fails on two leaders, naming them', async () => {
    const { code, output } = await runScript({ roles: { 'raftlet-0': 'leader', 'raftlet-1': 'leader', 'raftlet-2': 'follower' } });
    assert.equal(code, 1);
    assert.match(output, /FAIL: exactly one pod labelled raftlet\.io\/role=leader: 2 leaders among \[raftlet-0=leader, raftlet-1=leader, raftlet-2=follower\]/);
  });

  it('fails when a member has no role label or a member is missing', async () => {
    const unlabelled = await runScript({ roles: { 'raftlet-0': 'leader', 'raftlet-1': undefined, 'raftlet-2': 'follower' } });
    assert.equal(unlabelled.code, 1);
    assert.match(unlabelled.output, /not every other member is a follower/);
    const missing = await runScript({ roles: { 'raftlet-0': 'leader', 'raftlet-1': 'follower' } });
    assert.equal(missing.code, 1);
    assert.match(missing.output, /2 of 3 member pods exist/);
  });

  it('fails when the leader Service reaches another pod too, or none', async () => {
    const stale = await runScript({ roles: settled, endpoints: [{ pod: 'raftlet-0' }, { pod: 'raftlet-1' }] });
    assert.equal(stale.code, 1);
    assert.match(stale.output, /FAIL: Service orders-raftlet-leader has exactly raftlet-1 as its ready endpoint: its ready endpoints are \[raftlet-0, raftlet-1\]/);
    const empty = await runScript({ roles: settled, endpoints: [{ pod: 'raftlet-1', ready: false }] });
    assert.equal(empty.code, 1);
    assert.match(empty.output, /its ready endpoints are \[\]/);
  });

  it('fails when the demo app answers from another pod', async () => {
    const { code, output } = await runScript({
      roles: settled,
      endpoints: [{ pod: 'raftlet-1' }],
      leaderView: { pod: 'raftlet-0', role: 'follower', term: 4 },
    });
    assert.equal(code, 1);
    assert.match(output, /FAIL: .* answers from raftlet-1/);
  });

  it('needs exactly its Role: without EndpointSlices it is refused and says so', async () => {
    const { code, output } = await runScript({
      roles: settled,
      endpoints: [{ pod: 'raftlet-1' }],
      rules: testRole.filter((rule) => !rule.resources.includes('endpointslices')),
    });
    assert.equal(code, 1);
    assert.match(output, /answered 403: .*endpointslices\.discovery\.k8s\.io is forbidden/);
  });
});
