// The alert rules: valid for promtool, unit-tested by promtool (firing and quiet cases for every
// alert), documented for the on-call engineer, and only about metrics raftlet exports.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { RaftletMetrics } from '../../src/metrics/metrics.ts';
import { RULES_FILE, RULES_TEST_FILE, loadAlertRules, metricNamesInPromQL, seriesNamesInExposition } from './names.ts';

const REQUIRED_ALERTS = [
  'RaftletNoLeader', 'RaftletInsufficientMembers', 'RaftletMembersDown', 'RaftletMultipleLeaders', 'RaftletFrequentLeaderChanges',
  'RaftletFollowerLagging', 'RaftletProposalsFailing', 'RaftletLabelUpdatesFailing', 'RaftletFsyncSlow',
];

// Series Prometheus makes itself for every target, which the alerts may use beside raftlet's own.
const PROMETHEUS_SERIES = new Set(['up']);

const RUNBOOKS_FILE = fileURLToPath(new URL('../../docs/runbooks.md', import.meta.url));
const RUNBOOK_BASE = 'https://github.com/raftlet/raftlet/blob/main/docs/runbooks.md';

/** GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to dashes. */
function headingAnchor(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replaceAll(' ', '-');
}

function promtool(args: string[]): { status: number | null; output: string } {
  const result = spawnSync('promtool', args, { encoding: 'utf8', timeout: 60_000 });
  if (result.error !== undefined) throw new Error(`could not run promtool (${result.error.message}); install it with: apt-get install -y prometheus`);
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

interface RuleTestFile {
  rule_files: string[];
  tests: { alert_rule_test?: { alertname: string; eval_time: string; exp_alerts?: unknown[] }[] }[];
}

describe('alert rules', () => {
  it('pass promtool check rules', () => {
    const { status, output } = promtool(['check', 'rules', RULES_FILE]);
    assert.equal(status, 0, output);
    assert.match(output, new RegExp(`SUCCESS: ${REQUIRED_ALERTS.length} rules found`));
  });

  it('pass their promtool unit tests', () => {
    const { status, output } = promtool(['test', 'rules', RULES_TEST_FILE]);
    assert.equal(status, 0, output);
    assert.match(output, /SUCCESS/);
  });

  it('have a unit test for every alert where it fires and one where it stays quiet', () => {
    const tests = parseYaml(readFileSync(RULES_TEST_FILE, 'utf8')) as RuleTestFile;
    const cases = tests.tests.flatMap((test) => test.alert_rule_test ?? []);
    for (const alert of REQUIRED_ALERTS) {
      const mine = cases.filter((c) => c.alertname === alert);
      assert.ok(mine.some((c) => (c.exp_alerts ?? []).length > 0), `${alert} has no test where it fires`);
      assert.ok(mine.some((c) => (c.exp_alerts ?? []).length === 0), `${alert} has no test where it stays quiet`);
    }
  });

  it('unit tests fail when an alert can no longer fire (the tests are not vacuous)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'raftlet-alerts-'));
    try {
      const rulesName = basename(RULES_FILE);
      copyFileSync(RULES_TEST_FILE, join(dir, basename(RULES_TEST_FILE)));
      const silenced = parseYaml(readFileSync(RULES_FILE, 'utf8')) as { groups: { rules: { alert?: string; expr: string }[] }[] };
      for (const rule of silenced.groups[0].rules) rule.expr = `(${rule.expr}) and on () (vector(0) > 1)`;
      writeFileSync(join(dir, rulesName), toYaml(silenced));
      const { status, output } = promtool(['test', 'rules', join(dir, basename(RULES_TEST_FILE))]);
      assert.notEqual(status, 0, `silenced alerts did not fail the unit tests:\n${output}`);
      for (const alert of REQUIRED_ALERTS) assert.match(output, new RegExp(`alertname: ${alert},`), `silencing ${alert} failed none of its tests`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('tell the on-call engineer what happened and what to check', () => {
    const rules = loadAlertRules();
    assert.deepEqual(rules.map((rule) => rule.alert).sort(), [...REQUIRED_ALERTS].sort());
    for (const rule of rules) {
      const name = rule.alert ?? '';
      assert.ok(['critical', 'warning'].includes(rule.labels?.severity ?? ''), `${name} needs severity critical or warning`);
      assert.ok((rule.annotations?.summary ?? '').length > 10, `${name} needs a summary`);
      const description = rule.annotations?.description ?? '';
      assert.match(description, /kubectl /, `${name}: say which kubectl command to run`);
      assert.match(description, /raftlet_\w+|logs/, `${name}: name the metrics or logs to look at`);
      assert.match(description, /\{\{ \$labels\.namespace \}\}/, `${name}: say which namespace`);
    }
  });

  it('use only metrics raftlet exports', async () => {
    const exported = seriesNamesInExposition(await new RaftletMetrics().render());
    for (const rule of loadAlertRules()) {
      const names = metricNamesInPromQL(rule.expr);
      assert.ok(names.length > 0, `${rule.alert ?? ''}: no metric found in ${rule.expr}`);
      for (const name of names) assert.ok(exported.has(name) || PROMETHEUS_SERIES.has(name), `${rule.alert ?? ''} uses ${name}, which raftlet does not export`);
    }
  });

  it('each link a runbook section that says what to check and what to do', () => {
    const runbooks = readFileSync(RUNBOOKS_FILE, 'utf8');
    const sections = new Map<string, string>();
    const parts = runbooks.split(/^## /m).slice(1);
    for (const part of parts) {
      const newline = part.indexOf('\n');
      sections.set(headingAnchor(part.slice(0, newline)), part.slice(newline + 1));
    }
    for (const rule of loadAlertRules()) {
      const name = rule.alert ?? '';
      const url = rule.annotations?.runbook_url ?? '';
      assert.equal(url, `${RUNBOOK_BASE}#${name.toLowerCase()}`, `${name}: runbook_url`);
      const section = sections.get(name.toLowerCase());
      assert.ok(section !== undefined, `docs/runbooks.md has no section "## ${name}"`);
      assert.match(section, /^### What to check$/m, `${name}: the runbook says what to check`);
      assert.match(section, /^### What to do$/m, `${name}: the runbook says what to do`);
      assert.match(section, /kubectl /, `${name}: the runbook names commands`);
    }
  });

  it('aggregate per cluster (namespace and job) so two releases never mix', () => {
    for (const rule of loadAlertRules()) {
      for (const [, labels] of rule.expr.matchAll(/\b(?:sum|max|min|count|avg)\s+by\s*\(([^)]*)\)/g)) {
        const by = labels.split(',').map((l) => l.trim());
        assert.ok(by.includes('namespace') && by.includes('job'), `${rule.alert ?? ''}: "by (${labels})" must keep namespace and job`);
      }
    }
  });
});
