// A real Prometheus scraping real metrics servers of a simulated three-node cluster: the scrape
// works, the alert rules evaluate on it, every dashboard query is valid PromQL that finds data
// with Kubernetes-like target labels, and the end-to-end cluster checks notice what they should.
// One Prometheus for all cases: its service discovery hands out the first targets only after ~5 s.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RaftletMetrics } from '../../src/metrics/metrics.ts';
import { startMetricsServer } from '../../src/metrics/server.ts';
import type { MetricsServer } from '../../src/metrics/server.ts';
import type { Membership, NodeId } from '../../src/raft/types.ts';
import { assertNodeExportsDashboardMetrics, startClusterPrometheus, waitForSettledCluster } from './cluster-metrics.ts';
import { dashboardExpressions, dashboardVariableQueries, loadAlertRules, rulesFileFor } from './names.ts';
import type { PrometheusAlert, RunningPrometheus } from './prometheus.ts';

const MEMBERS: Membership = ['raftlet-0', 'raftlet-1', 'raftlet-2'].map((id) => ({ id, url: `http://${id}:7070`, voter: true }));

/** Grafana's variables as a dashboard with "All" selected sends them. */
function substituteVariables(expr: string): string {
  return expr.replace(/\$__rate_interval|\$__interval/g, '1m').replace(/\$\{\w+\}|\$\w+/g, '.*');
}

function serve(metrics: RaftletMetrics): Promise<MetricsServer> {
  return startMetricsServer({ host: '127.0.0.1', port: 0, metrics, healthy: () => true, ready: () => ({ ready: true, reason: '' }) });
}

async function waitForAlerts(prometheus: RunningPrometheus, accept: (alerts: PrometheusAlert[]) => boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const alerts = await prometheus.alerts();
    if (accept(alerts)) return;
    if (Date.now() > deadline) throw new Error(`alerts did not reach the expected state; now: ${JSON.stringify(alerts)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('real Prometheus scraping a simulated three-node cluster', () => {
  // Process metrics from one registry are enough; each registry would install its own observers.
  const nodes: { id: NodeId; metrics: RaftletMetrics; server?: MetricsServer }[] = MEMBERS.map((member) => ({
    id: member.id,
    metrics: new RaftletMetrics({ defaultMetrics: member.id === 'raftlet-0' }),
  }));
  const byId = (id: NodeId): RaftletMetrics => (nodes.find((node) => node.id === id) as { metrics: RaftletMetrics }).metrics;
  let prometheus: RunningPrometheus | undefined;
  const prom = (): RunningPrometheus => prometheus as RunningPrometheus;

  before(async () => {
    for (const node of nodes) {
      node.metrics.setMembers(MEMBERS);
      node.server = await serve(node.metrics);
    }
    prometheus = await startClusterPrometheus(
      nodes.map((node) => ({ id: node.id, metricsAddress: `127.0.0.1:${node.server?.port ?? 0}` })),
      { rulesFile: rulesFileFor('e2e', 'raftlet'), namespace: 'e2e' },
    );
  });
  after(async () => {
    await prometheus?.stop();
    for (const node of nodes) await node.server?.close();
  });

  it('raises RaftletNoLeader (pending) while nobody leads and clears it once a leader is known', async () => {
    await prom().waitFor('sum(up)', (s) => s[0]?.value === 3);
    await waitForAlerts(prom(), (alerts) =>
      alerts.some((a) => a.labels.alertname === 'RaftletNoLeader' && a.labels.namespace === 'e2e' && a.labels.job === 'raftlet' && a.state === 'pending'));

    for (const node of nodes) {
      node.metrics.syncStatus({ role: node.id === 'raftlet-1' ? 'leader' : 'follower', term: 5, leader: 'raftlet-1', members: MEMBERS, commitIndex: 3, appliedIndex: 3, lastLogIndex: 3 });
    }
    assert.deepEqual(await waitForSettledCluster(prom(), 3, { selector: 'namespace="e2e"' }), { leader: 'raftlet-1', term: 5 });
    await waitForAlerts(prom(), (alerts) => !alerts.some((a) => a.labels.alertname === 'RaftletNoLeader'));
    const rules = await prom().rules();
    assert.equal(rules.length, loadAlertRules().length, 'Prometheus loaded every alert of the rules file');
    for (const rule of rules) assert.equal(rule.health, 'ok', `${rule.name}: ${rule.lastError ?? ''}`);
  });

  it('answers every dashboard query with data', async () => {
    // A busy leader: every labelled series a panel looks at has a value.
    const leader = byId('raftlet-1');
    leader.setFollowerLag(new Map([['raftlet-0', 2], ['raftlet-2', 40]]));
    leader.setIndices({ commitIndex: 10, appliedIndex: 10, lastLogIndex: 12 });
    leader.observeProposal('ok', 0.004);
    leader.observeRpc('messages', 0.001, true);
    leader.observeFsync(0.002);
    leader.observeSnapshot(0.1);
    leader.onDiscovery('ok', 3);
    leader.onLabelUpdate('ok');
    leader.onDrop('raftlet-2', 'queue_full');

    for (const query of dashboardVariableQueries()) {
      const inner = /^label_values\((.+), (\w+)\)$/.exec(query);
      assert.ok(inner !== null, `unexpected variable query ${query}`);
      const [, selector, label] = inner;
      const samples = await prom().waitFor(substituteVariables(selector), (s) => s.length > 0);
      assert.ok(samples.every((sample) => label in sample.metric), `${query}: the series have no ${label} label`);
    }
    for (const expr of dashboardExpressions()) {
      // Rejects with Prometheus's parse error for invalid PromQL; waits for rates to have two samples.
      await prom().waitFor(substituteVariables(expr), (s) => s.length > 0);
    }
  });

  it('exports on each node what the dashboard and alerts use, and catches a node that does not', async () => {
    await assertNodeExportsDashboardMetrics(`127.0.0.1:${nodes[0].server?.port ?? 0}`);
    // raftlet-1 has no process metrics (defaultMetrics off above).
    await assert.rejects(assertNodeExportsDashboardMetrics(`127.0.0.1:${nodes[1].server?.port ?? 0}`), /process_resident_memory_bytes/);
  });

  it('no longer sees a settled cluster when a second node claims leadership', async () => {
    byId('raftlet-2').onRaftEvent({ kind: 'roleChanged', role: 'leader', term: 6 });
    await prom().waitFor('sum(raftlet_is_leader)', (s) => s[0]?.value === 2);
    await assert.rejects(waitForSettledCluster(prom(), 3, { selector: 'namespace="e2e"', timeoutMs: 1000 }), /did not reach the expected result/);
  });
});
