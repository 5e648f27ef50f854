// The Grafana dashboard: well-formed, parameterised by data source, namespace and pod, covering
// what an operator needs, and querying only metrics raftlet exports.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RaftletMetrics } from '../../src/metrics/metrics.ts';
import {
  dashboardExpressions,
  dashboardVariableQueries,
  loadDashboard,
  metricNamesInPromQL,
  metricNamesInVariableQuery,
  metricNamesUsedByDashboardAndRules,
  seriesNamesInExposition,
} from './names.ts';

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { expr: string; datasource?: { uid: string } }[];
  panels?: Panel[];
}
interface Variable { name: string; type: string; query?: string; datasource?: { uid: string } }

function panelsOf(): Panel[] {
  const dashboard = loadDashboard() as unknown as { panels: Panel[] };
  return dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]);
}

describe('metric names in PromQL', () => {
  it('finds metric names and nothing else', () => {
    const cases: [string, string[]][] = [
      ['raftlet_term', ['raftlet_term']],
      ['sum by (pod, le) (rate(raftlet_x_bucket{pod=~"$pod", le="0.5"}[$__rate_interval])) > 1e3', ['raftlet_x_bucket']],
      ['max by (pod) (a{role="leader"}) * 2 + on (pod) max by (pod) (b{role="candidate"})', ['a', 'b']],
      ['histogram_quantile(0.99, sum without (instance) (rate(c[5m] offset 1h))) and ignoring (x) d unless e', ['c', 'd', 'e']],
      ['label_replace(f, "dst", "$1", "src", "(.*)") or vector(0)', ['f']],
      ['sum(g{namespace=~"${namespace}"}) / count(h) == bool 0', ['g', 'h']],
    ];
    for (const [expr, names] of cases) assert.deepEqual(metricNamesInPromQL(expr).sort(), names, expr);
  });

  it('reads Grafana variable queries', () => {
    assert.deepEqual(metricNamesInVariableQuery('label_values(raftlet_term{namespace=~"$namespace"}, pod)'), ['raftlet_term']);
    assert.deepEqual(metricNamesInVariableQuery('label_values(namespace)'), []);
    assert.deepEqual(metricNamesInVariableQuery('query_result(max by (pod) (raftlet_role))'), ['raftlet_role']);
  });
});

describe('Grafana dashboard', () => {
  it('has the identity Grafana imports it by', () => {
    const dashboard = loadDashboard();
    assert.equal(dashboard.uid, 'raftlet');
    assert.equal(dashboard.title, 'raftlet');
    assert.ok(dashboard.schemaVersion >= 36 && dashboard.schemaVersion <= 41, `schemaVersion ${dashboard.schemaVersion}`);
  });

  it('has a Prometheus data-source variable and namespace and pod variables from raftlet metrics', () => {
    const variables = loadDashboard().templating.list as unknown as Variable[];
    const byName = new Map(variables.map((variable) => [variable.name, variable]));
    const datasource = byName.get('datasource');
    assert.equal(datasource?.type, 'datasource');
    assert.equal(datasource?.query, 'prometheus');
    for (const name of ['namespace', 'pod']) {
      const variable = byName.get(name);
      assert.equal(variable?.type, 'query', name);
      assert.match(variable?.query ?? '', new RegExp(`^label_values\\(raftlet_\\w+.*, ${name}\\)$`), name);
      assert.equal(variable?.datasource?.uid, '${datasource}');
    }
    assert.ok(dashboardVariableQueries().length >= 2);
  });

  it('shows one cluster at a time: namespace and job (the release) are single-valued and every query uses both', () => {
    const variables = loadDashboard().templating.list as unknown as (Variable & { multi?: boolean; includeAll?: boolean })[];
    for (const name of ['namespace', 'job']) {
      const variable = variables.find((v) => v.name === name);
      assert.equal(variable?.multi, false, `${name} must not select several clusters at once`);
      assert.equal(variable?.includeAll, false, `${name} must not offer "All"`);
    }
    for (const panel of panelsOf()) {
      for (const target of panel.targets ?? []) assert.match(target.expr, /job=~"\$job"/, `${panel.title}: ${target.expr} mixes clusters`);
    }
  });

  it('queries every panel through the data-source variable', () => {
    for (const panel of panelsOf()) {
      if (panel.type === 'row') continue;
      assert.equal(panel.datasource?.uid, '${datasource}', panel.title);
      assert.ok((panel.targets ?? []).length > 0, `${panel.title} has no query`);
      for (const target of panel.targets ?? []) assert.match(target.expr, /\$namespace/, `${panel.title}: ${target.expr} ignores the namespace variable`);
    }
  });

  it('lays panels out on the 24-column grid without overlaps and with unique ids', () => {
    const panels = panelsOf();
    assert.equal(new Set(panels.map((panel) => panel.id)).size, panels.length, 'duplicate panel ids');
    for (const panel of panels) assert.ok(panel.gridPos.x >= 0 && panel.gridPos.x + panel.gridPos.w <= 24, `${panel.title} leaves the grid`);
    for (const [i, a] of panels.entries()) {
      for (const b of panels.slice(i + 1)) {
        const overlap = a.gridPos.x < b.gridPos.x + b.gridPos.w && b.gridPos.x < a.gridPos.x + a.gridPos.w &&
          a.gridPos.y < b.gridPos.y + b.gridPos.h && b.gridPos.y < a.gridPos.y + a.gridPos.h;
        assert.ok(!overlap, `${a.title} overlaps ${b.title}`);
      }
    }
  });

  it('shows what an operator needs', () => {
    const exprs = dashboardExpressions().join('\n');
    const needs: [string, RegExp][] = [
      ['role of each pod', /raftlet_role\{|raftlet_is_leader\{/],
      ['term', /raftlet_term\{/],
      ['elections per minute', /rate\(raftlet_elections_started_total\{.*\* 60/],
      ['leader changes per minute', /rate\(raftlet_leader_changes_total\{.*\* 60/],
      ['commit index', /raftlet_commit_index\{/],
      ['applied index', /raftlet_applied_index\{/],
      ['follower lag', /raftlet_follower_lag_entries\{/],
      ['proposal p50', /histogram_quantile\(0\.5, .*raftlet_proposal_duration_seconds_bucket/],
      ['proposal p99', /histogram_quantile\(0\.99, .*raftlet_proposal_duration_seconds_bucket/],
      ['proposal results', /sum by \(result\) \(rate\(raftlet_proposals_total\{/],
      ['RPC latency', /raftlet_rpc_duration_seconds_bucket/],
      ['fsync latency', /raftlet_fsync_duration_seconds_bucket/],
      ['label update results', /raftlet_label_updates_total\{/],
      ['process RSS', /process_resident_memory_bytes\{/],
    ];
    for (const [what, pattern] of needs) assert.match(exprs, pattern, `the dashboard does not show ${what}`);
  });
});

describe('metrics used by the dashboard and the alert rules', () => {
  it('are all exported by RaftletMetrics (or made by Prometheus for every target: up)', async () => {
    const exported = seriesNamesInExposition(await new RaftletMetrics().render());
    const used = metricNamesUsedByDashboardAndRules();
    assert.ok(used.length >= 20, `only ${used.length} names found: the extraction is broken`);
    const missing = used.filter((name) => !exported.has(name) && name !== 'up');
    assert.deepEqual(missing, [], `used but not exported: ${missing.join(', ')}`);
  });

  it('are checked for real: a name raftlet does not export is caught', async () => {
    const exported = seriesNamesInExposition(await new RaftletMetrics({ defaultMetrics: false }).render());
    assert.ok(exported.has('raftlet_fsync_duration_seconds_bucket'));
    assert.ok(exported.has('raftlet_rpc_duration_seconds_count'), 'histograms count from # TYPE even before any observation');
    assert.ok(!exported.has('raftlet_fsync_duration_seconds'), 'a histogram is not a series of its own');
    assert.ok(!exported.has('container_memory_rss'));
  });
});
