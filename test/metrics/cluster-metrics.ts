// Checks of a running cluster's metrics, for end-to-end tests: every metric the dashboard and the
// alerts use is exported by each node, and a real Prometheus scraping all nodes sees one leader,
// a leader known everywhere and one term. Pass the nodes' RAFTLET_METRICS_LISTEN addresses.
import assert from 'node:assert/strict';
import { metricNamesUsedByDashboardAndRules, seriesNamesInExposition } from './names.ts';
import { startPrometheus } from './prometheus.ts';
import type { RunningPrometheus } from './prometheus.ts';

export interface ClusterNode {
  /** Member id; becomes the pod label, as on Kubernetes. */
  readonly id: string;
  /** host:port of the node's metrics listener. */
  readonly metricsAddress: string;
}

/** The SPEC §6 metrics, each of which must carry a # HELP line. */
export const SPEC_METRIC_NAMES: readonly string[] = [
  'raftlet_term', 'raftlet_is_leader', 'raftlet_has_leader', 'raftlet_role', 'raftlet_leader_changes_total',
  'raftlet_elections_started_total', 'raftlet_elections_won_total', 'raftlet_commit_index', 'raftlet_applied_index',
  'raftlet_proposals_total', 'raftlet_proposal_duration_seconds', 'raftlet_label_updates_total',
];

/** Fetches one node's /metrics and checks it offers every series the dashboard and alerts query. */
export async function assertNodeExportsDashboardMetrics(metricsAddress: string): Promise<void> {
  const res = await fetch(`http://${metricsAddress}/metrics`);
  assert.equal(res.status, 200, `GET http://${metricsAddress}/metrics answered ${res.status}`);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  for (const name of SPEC_METRIC_NAMES) assert.match(text, new RegExp(`^# HELP ${name} \\S`, 'm'), `${metricsAddress} has no # HELP for ${name}`);
  const exported = seriesNamesInExposition(text);
  const missing = metricNamesUsedByDashboardAndRules().filter((name) => !exported.has(name));
  assert.deepEqual(missing, [], `${metricsAddress} does not export what the dashboard or alerts use: ${missing.join(', ')}`);
}

/** Starts Prometheus on the nodes, labelled like Kubernetes pods in namespace `namespace`. Stop it yourself. */
export function startClusterPrometheus(nodes: readonly ClusterNode[], options: { rulesFile?: string; namespace?: string } = {}): Promise<RunningPrometheus> {
  return startPrometheus({
    targets: nodes.map((node) => ({ address: node.metricsAddress, labels: { namespace: options.namespace ?? 'e2e', pod: node.id } })),
    scrapeIntervalMs: 250,
    ...(options.rulesFile !== undefined ? { rulesFile: options.rulesFile } : {}),
  });
}

/**
 * Waits until Prometheus sees a settled cluster: all nodes up, exactly one leader, every node
 * knowing a leader, one term. `selector` (e.g. `namespace="e2e"`) picks the cluster's series.
 */
export async function waitForSettledCluster(
  prometheus: RunningPrometheus,
  nodeCount: number,
  options: { selector?: string; timeoutMs?: number } = {},
): Promise<{ leader: string; term: number }> {
  const sel = `{${options.selector ?? ''}}`;
  const timeoutMs = options.timeoutMs ?? 20_000;
  await prometheus.waitFor(`sum(up${sel})`, (s) => s[0]?.value === nodeCount, timeoutMs);
  await prometheus.waitFor(`sum(raftlet_is_leader${sel})`, (s) => s[0]?.value === 1, timeoutMs);
  await prometheus.waitFor(`sum(raftlet_has_leader${sel})`, (s) => s[0]?.value === nodeCount, timeoutMs);
  await prometheus.waitFor(`count(count_values("term", raftlet_term${sel}))`, (s) => s[0]?.value === 1, timeoutMs);
  const leaders = await prometheus.waitFor(`raftlet_is_leader${sel} == 1`, (s) => s.length === 1, timeoutMs);
  const terms = await prometheus.query(`max(raftlet_term${sel})`);
  return { leader: leaders[0].metric.pod ?? leaders[0].metric.instance ?? '', term: terms[0]?.value ?? 0 };
}
