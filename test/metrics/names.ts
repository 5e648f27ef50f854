// Which metric names the Grafana dashboard and the alert rules use, and which ones a node exports,
// so tests can check that no panel or alert watches a metric raftlet does not have. Used by the
// metrics unit tests (against RaftletMetrics) and by end-to-end tests (against a running node).
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';

const FILES_DIR = fileURLToPath(new URL('../../helm/raftlet/files/', import.meta.url));
export const DASHBOARD_FILE = `${FILES_DIR}grafana-dashboard.json`;
export const RULES_FILE = `${FILES_DIR}raftlet-alerts.rules.yml`;
export const RULES_TEST_FILE = `${FILES_DIR}raftlet-alerts.test.yml`;

// Words that may stand alone in PromQL without being a metric name (functions and aggregations
// are recognised by the "(" after them instead).
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'atan2']);

/**
 * Metric names referenced by a PromQL expression, possibly containing Grafana variables. A light
 * lexer, not a parser: it removes strings, label matchers, ranges, grouping clauses, variables
 * and numbers, and what is left that is not a function or keyword is a metric name.
 */
export function metricNamesInPromQL(expr: string): string[] {
  let rest = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\boffset\s+-?\S+/g, ' ')
    .replace(/\$\{[^}]*\}|\$\w+/g, ' ');
  rest = rest.replace(/(?<![\w:.])(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![\w:])/g, ' ');
  const names = new Set<string>();
  for (const match of rest.matchAll(/([A-Za-z_:][\w:]*)(\s*\()?/g)) {
    const [, word, call] = match;
    if (call !== undefined || KEYWORDS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  return [...names];
}

/** A Grafana templating query: `label_values(metric{...}, label)` names a metric, `label_values(label)` does not. */
export function metricNamesInVariableQuery(query: string): string[] {
  const labelValues = /^\s*label_values\(\s*(.+?)\s*,\s*\w+\s*\)\s*$/.exec(query);
  if (labelValues !== null) return metricNamesInPromQL(labelValues[1]);
  if (/^\s*label_values\(\s*\w+\s*\)\s*$/.test(query)) return [];
  const wrapped = /^\s*(?:query_result|metrics)\((.*)\)\s*$/.exec(query);
  return metricNamesInPromQL(wrapped !== null ? wrapped[1] : query);
}

interface DashboardTarget { readonly expr?: string }
interface DashboardPanel { readonly targets?: readonly DashboardTarget[]; readonly panels?: readonly DashboardPanel[] }
interface DashboardVariable { readonly type: string; readonly query?: string | { readonly query?: string } }
export interface Dashboard {
  readonly uid: string;
  readonly title: string;
  readonly schemaVersion: number;
  readonly panels: readonly DashboardPanel[];
  readonly templating: { readonly list: readonly DashboardVariable[] };
}

export function loadDashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;
}

/** Every PromQL expression of every panel, rows' nested panels included. */
export function dashboardExpressions(dashboard: Dashboard = loadDashboard()): string[] {
  const exprs: string[] = [];
  const visit = (panels: readonly DashboardPanel[]): void => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) if (target.expr !== undefined && target.expr.trim() !== '') exprs.push(target.expr);
      visit(panel.panels ?? []);
    }
  };
  visit(dashboard.panels);
  return exprs;
}

export function dashboardVariableQueries(dashboard: Dashboard = loadDashboard()): string[] {
  const queries: string[] = [];
  for (const variable of dashboard.templating.list) {
    if (variable.type !== 'query' || variable.query === undefined) continue;
    const query = typeof variable.query === 'string' ? variable.query : variable.query.query;
    if (query !== undefined) queries.push(query);
  }
  return queries;
}

export interface AlertRule {
  readonly alert?: string;
  readonly record?: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** The selector the rules file names its one cluster by; the chart's PrometheusRule template puts
 * the release's namespace and job in its place (templates/prometheusrule.yaml), and so does
 * rulesFileFor for a Prometheus a test runs. */
export const RULES_CLUSTER_SELECTOR = 'raftlet_is_leader{namespace="default", job="raftlet"}';

/** The rules file as the chart renders it for a cluster in `namespace` scraped as `job`, in a temp file. */
export function rulesFileFor(namespace: string, job: string): string {
  const text = readFileSync(RULES_FILE, 'utf8');
  if (!text.includes(RULES_CLUSTER_SELECTOR)) throw new Error(`${RULES_FILE} no longer names its cluster by ${RULES_CLUSTER_SELECTOR}`);
  const file = join(mkdtempSync(join(tmpdir(), 'raftlet-rules-')), 'raftlet-alerts.rules.yml');
  writeFileSync(file, text.replaceAll(RULES_CLUSTER_SELECTOR, `raftlet_is_leader{namespace="${namespace}", job="${job}"}`));
  return file;
}

/** Series Prometheus makes itself for every target it scrapes: used by the rules, exported by nobody. */
const SCRAPE_SERIES = new Set(['up']);

export function loadAlertRules(file: string = RULES_FILE): AlertRule[] {
  const doc = parseYaml(readFileSync(file, 'utf8')) as { groups: { name: string; rules: AlertRule[] }[] };
  return doc.groups.flatMap((group) => group.rules);
}

/** Sorted, distinct metric names (series names, e.g. `x_bucket`) that the dashboard and the alert rules query. */
export function metricNamesUsedByDashboardAndRules(): string[] {
  const dashboard = loadDashboard();
  const names = new Set<string>();
  for (const expr of dashboardExpressions(dashboard)) for (const name of metricNamesInPromQL(expr)) names.add(name);
  for (const query of dashboardVariableQueries(dashboard)) for (const name of metricNamesInVariableQuery(query)) names.add(name);
  for (const rule of loadAlertRules()) for (const name of metricNamesInPromQL(rule.expr)) names.add(name);
  return [...names].filter((name) => !SCRAPE_SERIES.has(name)).sort();
}

/**
 * Series names a Prometheus text exposition offers, from its `# TYPE` lines, so that a metric is
 * found even before it has samples (a labeled histogram nobody observed yet): a histogram gives
 * `_bucket`, `_sum` and `_count`, a summary its own name, `_sum` and `_count`.
 */
export function seriesNamesInExposition(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type !== null) {
      const [, name, kind] = type;
      if (kind === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
      else if (kind === 'summary') for (const suffix of ['', '_sum', '_count']) names.add(name + suffix);
      else names.add(name);
      continue;
    }
    const sample = /^([A-Za-z_:][\w:]*)[{ ]/.exec(line);
    if (sample !== null) names.add(sample[1]);
  }
  return names;
}
