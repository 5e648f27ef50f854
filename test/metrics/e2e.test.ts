// End to end (issue 5): a real Prometheus with raftlet's alert rules scrapes three real `raftlet run`
// processes. One leader; every metric the dashboard and the alerts use is exported; metric values
// agree with /v1/status and with the writes sent; after kill -9 of the leader the election counters
// rise on the survivors and one leader is back; with two of three nodes killed the no-leader alert's
// own expression is true and the alert goes pending; the probes say what SPEC §6 says.
// The cases run in order on one cluster: each one builds on the state the previous one left.
import { after, before, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { assertNodeExportsDashboardMetrics } from './cluster-metrics.ts';
import { sampleValue } from './exposition.ts';
import { RULES_FILE, loadAlertRules, metricNamesUsedByDashboardAndRules, rulesFileFor } from './names.ts';
import { startPrometheus } from './prometheus.ts';
import type { RunningPrometheus, VectorSample } from './prometheus.ts';
import { startLocalCluster } from './raftlet-processes.ts';
import type { LocalCluster, LocalNode, NodeStatus } from './raftlet-processes.ts';

const NAMESPACE = 'e2e';
const SEL = `namespace="${NAMESPACE}"`;
const ELECTION_TIMEOUT_MS = 500;
// Small enough that the writes below make every node compact its log, so the snapshot panels have data.
const SNAPSHOT_ENTRIES = 20;
// Generous: two cores shared with other test files; a healthy run needs a fraction of these.
const WAIT_MS = 30_000;

// The rules as the chart renders them for this namespace (the no-leader alert names its cluster).
const RULES_FOR_NAMESPACE = rulesFileFor(NAMESPACE, 'raftlet');
const noLeaderRule = loadAlertRules(RULES_FOR_NAMESPACE).find((rule) => rule.alert === 'RaftletNoLeader');

describe('a real Prometheus scraping three real raftlet processes', { timeout: 150_000 }, () => {
  let cluster: LocalCluster | undefined;
  let prometheus: RunningPrometheus | undefined;
  const startedAtSeconds = Date.now() / 1000;
  const c = (): LocalCluster => cluster ?? assert.fail('the cluster did not start');
  const prom = (): RunningPrometheus => prometheus ?? assert.fail('Prometheus did not start');
  const node = (id: string): LocalNode => c().nodes.find((n) => n.id === id) ?? assert.fail(`no node ${id}`);
  const running = (): LocalNode[] => c().nodes.filter((n) => n.exit() === null);

  /** Runs a case; on failure prints the nodes' and Prometheus's logs before failing. */
  const withLogs = (body: (t: TestContext) => Promise<void>) => async (t: TestContext): Promise<void> => {
    try {
      await body(t);
    } catch (err) {
      process.stderr.write(`\n==== ${t.name} failed; node logs ====\n${cluster?.logs() ?? '(no cluster)'}\n`);
      process.stderr.write(`==== Prometheus log (tail) ====\n${(prometheus?.log() ?? '').split('\n').slice(-30).join('\n')}\n`);
      throw err;
    }
  };

  before(async () => {
    cluster = await startLocalCluster({ size: 3, electionTimeoutMs: ELECTION_TIMEOUT_MS, env: { RAFTLET_SNAPSHOT_ENTRIES: String(SNAPSHOT_ENTRIES) } });
    // Prometheus needs the ports, which the cluster picks: so it starts second.
    prometheus = await startPrometheus({
      targets: cluster.nodes.map((n) => ({ address: n.metricsAddress, labels: { namespace: NAMESPACE, pod: n.id } })),
      rulesFile: RULES_FOR_NAMESPACE,
      scrapeIntervalMs: 1000,
    });
  });

  after(async () => {
    await Promise.allSettled([prometheus?.stop(), cluster?.stop()]);
  });

  it('sees exactly one leader, every node knowing it, ready probes and no no-leader alert', withLogs(async () => {
    // Prometheus's service discovery hands out its first targets after about 5 s.
    await prom().waitFor(`sum(up{${SEL}})`, (s) => s[0]?.value === 3, WAIT_MS);
    await prom().waitFor(`sum(raftlet_is_leader{${SEL}})`, (s) => s[0]?.value === 1, WAIT_MS);
    await prom().waitFor(`sum(raftlet_has_leader{${SEL}})`, (s) => s[0]?.value === 3, WAIT_MS);
    const leaders = await prom().query(`raftlet_is_leader{${SEL}} == 1`);
    assert.equal(leaders.length, 1, `leaders: ${JSON.stringify(leaders)}`);
    const leader = leaders[0].metric.pod;
    assert.equal((await node(leader).status()).role, 'leader', `Prometheus says ${leader} leads, its /v1/status does not`);

    // The same expression later proves there is no quorum: here, with a leader, it must be empty.
    assert.deepEqual(await prom().query(noLeaderExpr()), [], 'the no-leader expression is true although the cluster has a leader');
    // Scrapes taken during the first election may have made it pending; the next evaluation clears it.
    await waitAlertCleared(prom(), 'RaftletNoLeader');
    const rules = await prom().rules();
    for (const rule of rules) assert.equal(rule.health, 'ok', `rule ${rule.name} does not evaluate on real nodes: ${rule.lastError ?? ''}`);

    for (const n of c().nodes) {
      assert.equal(await probe(n, '/healthz'), 200, `${n.id} /healthz`);
      assert.equal(await waitProbe(n, '/readyz', 200), 200, `${n.id} /readyz with leader ${leader}`);
    }
  }));

  it('exports on every node each metric the dashboard and the alert rules use, before any write', withLogs(async () => {
    // From # TYPE lines, so labelled histograms nobody observed yet count too.
    for (const n of c().nodes) await assertNodeExportsDashboardMetrics(n.metricsAddress);
  }));

  it('counts successful writes once, on the node the client asked, and agrees with /v1/status', withLogs(async () => {
    const leader = await currentLeader();
    const follower = c().nodes.find((n) => n !== leader) as LocalNode;
    const before = { leader: await scrape(leader), follower: await scrape(follower) };

    const toFollower = 15;
    const toLeader = 10;
    let lastIndex = { follower: 0, leader: 0 };
    for (let i = 0; i < toFollower; i++) lastIndex = { ...lastIndex, follower: await put(follower, `f-${i}`, `v${i}`) };
    for (let i = 0; i < toLeader; i++) lastIndex = { ...lastIndex, leader: await put(leader, `l-${i}`, `v${i}`) };

    const afterWrites = { leader: await scrape(leader), follower: await scrape(follower) };
    const ok = { result: 'ok' };
    assert.equal(value(afterWrites.follower, 'raftlet_proposals_total', ok) - value(before.follower, 'raftlet_proposals_total', ok), toFollower,
      `${follower.id}: raftlet_proposals_total{result="ok"} must rise by the ${toFollower} PUTs it answered`);
    // The follower forwarded its writes to the leader; the leader counts only the writes clients sent it.
    assert.equal(value(afterWrites.leader, 'raftlet_proposals_total', ok) - value(before.leader, 'raftlet_proposals_total', ok), toLeader,
      `${leader.id}: raftlet_proposals_total{result="ok"} must rise by the ${toLeader} PUTs it answered, not by forwarded ones`);
    for (const [n, text, sent] of [[follower, afterWrites.follower, toFollower], [leader, afterWrites.leader, toLeader]] as const) {
      const beforeText = n === follower ? before.follower : before.leader;
      assert.equal(value(text, 'raftlet_proposal_duration_seconds_count') - value(beforeText, 'raftlet_proposal_duration_seconds_count'), sent,
        `${n.id}: raftlet_proposal_duration_seconds must observe each of its ${sent} writes`);
      for (const result of ['no_leader', 'timeout', 'error']) {
        assert.equal(value(text, 'raftlet_proposals_total', { result }), value(beforeText, 'raftlet_proposals_total', { result }),
          `${n.id}: no write failed, yet raftlet_proposals_total{result="${result}"} rose`);
      }
    }

    for (const n of c().nodes) {
      // The metrics follow each apply batch and a 1 s resync: wait for them to reach what status said.
      const first = await n.status();
      await waitScrape(n, (t) => value(t, 'raftlet_commit_index') >= first.commitIndex && value(t, 'raftlet_applied_index') >= first.appliedIndex,
        `raftlet_commit_index >= ${first.commitIndex} and raftlet_applied_index >= ${first.appliedIndex}`);
      // Compare within a bracket of two status reads that agree, so a spurious election on a busy
      // machine makes the check repeat instead of fail.
      const { before: status, text, after: later } = await stableBracket(n);
      assert.equal(value(text, 'raftlet_term'), status.term, `${n.id}: raftlet_term vs /v1/status term`);
      assert.ok(value(text, 'raftlet_commit_index') >= first.commitIndex, `${n.id}: raftlet_commit_index went backwards`);
      assert.ok(value(text, 'raftlet_commit_index') <= later.commitIndex, `${n.id}: raftlet_commit_index ${value(text, 'raftlet_commit_index')} is ahead of /v1/status ${later.commitIndex}`);
      assert.ok(value(text, 'raftlet_applied_index') <= later.appliedIndex, `${n.id}: raftlet_applied_index is ahead of /v1/status`);
      assert.equal(value(text, 'raftlet_is_leader'), status.role === 'leader' ? 1 : 0, `${n.id}: raftlet_is_leader vs role ${status.role}`);
      assert.equal(value(text, 'raftlet_role', { role: status.role }), 1, `${n.id}: raftlet_role{role="${status.role}"}`);
      assert.equal(value(text, 'raftlet_has_leader'), status.leader === null ? 0 : 1, `${n.id}: raftlet_has_leader vs leader ${status.leader}`);
    }
    // A PUT answers once its entry is applied on the node that answered (SPEC §4).
    assert.ok(value(await scrape(follower), 'raftlet_applied_index') >= lastIndex.follower, `${follower.id}: applied index below its last acknowledged write`);
    assert.ok(value(await scrape(leader), 'raftlet_applied_index') >= lastIndex.leader, `${leader.id}: applied index below its last acknowledged write`);

    // Prometheus reads the same numbers the node serves.
    const okCount = value(afterWrites.follower, 'raftlet_proposals_total', ok);
    await prom().waitFor(`raftlet_proposals_total{${SEL},pod="${follower.id}",result="ok"}`, (s) => s[0]?.value === okCount, WAIT_MS);
  }));

  it('has observations in the histograms and per-peer series after writes, and still exports every used metric', withLogs(async () => {
    const leader = await currentLeader();
    for (const n of c().nodes) {
      await assertNodeExportsDashboardMetrics(n.metricsAddress);
      // The log passed SNAPSHOT_ENTRIES applied entries, so each node compacts it (asynchronously).
      const text = await waitScrape(n, (t) => value(t, 'raftlet_snapshots_total', { kind: 'create' }) >= 1, 'raftlet_snapshots_total{kind="create"} >= 1');
      assert.ok(value(text, 'raftlet_fsync_duration_seconds_count', { kind: 'wal' }) > 0, `${n.id}: no WAL fsync observed`);
      assert.ok(value(text, 'raftlet_snapshot_duration_seconds_count', { kind: 'create' }) >= 1, `${n.id}: snapshot duration not observed`);
      assert.ok(value(text, 'raftlet_members', { voter: 'true' }) === 3, `${n.id}: raftlet_members{voter="true"} is not 3`);
    }
    const text = await waitScrape(leader, (t) => c().nodes.every((n) => n === leader || sampleValue(t, 'raftlet_follower_lag_entries', { peer: n.id }) !== undefined),
      'a raftlet_follower_lag_entries series for each follower');
    assert.ok(value(text, 'raftlet_rpc_duration_seconds_count', { kind: 'messages' }) > 0, 'the leader observed no RPC to its followers');
    assert.equal(sampleValue(text, 'raftlet_follower_lag_entries', { peer: leader.id }), undefined, 'the leader reports a lag for itself');
  }));

  it('after kill -9 of the leader: leader changes and elections rise on the survivors, one leader again', withLogs(async () => {
    const firstLeader = (await currentLeader()).id;
    const survivors = c().nodes.filter((n) => n.id !== firstLeader);
    const pods = survivors.map((n) => n.id).join('|');
    // Prometheus's "before" must be the nodes' current values, not an older scrape.
    for (const n of survivors) {
      const text = await scrape(n);
      for (const name of ['raftlet_leader_changes_total', 'raftlet_elections_started_total', 'raftlet_elections_won_total']) {
        const current = value(text, name);
        await prom().waitFor(`${name}{${SEL},pod="${n.id}"}`, (s) => s[0]?.value === current, WAIT_MS);
      }
    }
    const beforeKill = {
      changes: await perPod(`raftlet_leader_changes_total{${SEL},pod=~"${pods}"}`),
      started: await perPod(`raftlet_elections_started_total{${SEL},pod=~"${pods}"}`),
      won: await perPod(`raftlet_elections_won_total{${SEL},pod=~"${pods}"}`),
    };
    for (const n of survivors) {
      assert.ok(beforeKill.changes.has(n.id) && beforeKill.started.has(n.id) && beforeKill.won.has(n.id), `Prometheus has no election counters of ${n.id}`);
    }

    await node(firstLeader).kill();
    await prom().waitFor(`up{${SEL},pod="${firstLeader}"}`, (s) => s[0]?.value === 0, WAIT_MS);
    const leaders = await prom().waitFor(`raftlet_is_leader{${SEL}} == 1`, (s) => s.length === 1 && s[0].metric.pod !== firstLeader, WAIT_MS);
    const secondLeader = leaders[0].metric.pod;
    await prom().waitFor(`sum(raftlet_is_leader{${SEL}})`, (s) => s[0]?.value === 1, WAIT_MS);

    // Every member counts each leader it learns of (src/metrics/metrics.ts), the winner included.
    const changes = await prom().waitFor(`raftlet_leader_changes_total{${SEL},pod=~"${pods}"}`,
      (s) => survivors.every((n) => (podValue(s, n.id) ?? 0) > (beforeKill.changes.get(n.id) ?? Infinity)), WAIT_MS);
    for (const n of survivors) assert.ok((podValue(changes, n.id) ?? 0) > (beforeKill.changes.get(n.id) ?? Infinity), `${n.id}: raftlet_leader_changes_total did not rise`);
    const won = await prom().waitFor(`raftlet_elections_won_total{${SEL},pod="${secondLeader}"}`,
      (s) => (s[0]?.value ?? 0) > (beforeKill.won.get(secondLeader) ?? Infinity), WAIT_MS);
    assert.ok(won[0].value > (beforeKill.won.get(secondLeader) ?? Infinity), `${secondLeader} leads but raftlet_elections_won_total did not rise`);
    // The winner started the election it won.
    await prom().waitFor(`raftlet_elections_started_total{${SEL},pod="${secondLeader}"}`,
      (s) => (s[0]?.value ?? 0) > (beforeKill.started.get(secondLeader) ?? Infinity), WAIT_MS);
    const started = await prom().query(`sum(raftlet_elections_started_total{${SEL},pod=~"${pods}"})`);
    const startedBefore = [...beforeKill.started.values()].reduce((a, b) => a + b, 0);
    assert.ok((started[0]?.value ?? 0) > startedBefore, 'raftlet_elections_started_total did not rise on the survivors');

    // Cross-check with the winner itself.
    assert.equal((await node(secondLeader).status()).role, 'leader');
    for (const n of survivors) {
      assert.equal(await waitProbe(n, '/readyz', 200), 200, `${n.id} /readyz with leader ${secondLeader}`);
      assert.equal(await probe(n, '/healthz'), 200, `${n.id} /healthz`);
    }
    assert.deepEqual(await prom().query(noLeaderExpr()), [], 'the no-leader expression is true although a leader was elected again');
  }));

  it('with two of three nodes killed, the no-leader expression is true for the survivor and the alert goes pending', withLogs(async () => {
    // Kill the follower: the lone survivor is the leader, which must notice it lost its quorum.
    const [a, b] = running();
    const follower = (await a.status()).role === 'leader' ? b : a;
    await follower.kill();
    const survivor = running()[0];
    assert.deepEqual(running().map((n) => n.id), [survivor.id]);

    await prom().waitFor(`sum(up{${SEL}})`, (s) => s[0]?.value === 1, WAIT_MS);
    // The rule's own expression, evaluated on what Prometheus holds now: only the survivor's series.
    const result = await prom().waitFor(noLeaderExpr(), (s) => s.length > 0, WAIT_MS);
    assert.deepEqual(result.map((s) => ({ namespace: s.metric.namespace, job: s.metric.job })), [{ namespace: NAMESPACE, job: 'raftlet' }]);
    const hasLeader = await prom().query(`raftlet_has_leader{${SEL}}`);
    assert.deepEqual(hasLeader.map((s) => [s.metric.pod, s.value]), [[survivor.id, 0]], 'the expression must rest on the survivor alone');
    const isLeader = await prom().waitFor(`raftlet_is_leader{${SEL}}`, (s) => s.length === 1 && s[0].value === 0, WAIT_MS);
    assert.equal(isLeader[0].metric.pod, survivor.id);

    const alert = await waitAlert(prom(), 'RaftletNoLeader');
    assert.equal(alert.labels.severity, 'critical');
    assert.match(alert.annotations.summary ?? '', new RegExp(`${NAMESPACE}/raftlet`));

    const status = await survivor.status();
    assert.equal(status.leader, null, `${survivor.id} still names a leader without a quorum`);
    assert.notEqual(status.role, 'leader');
    assert.equal(await waitProbe(survivor, '/readyz', 503), 503, `${survivor.id} /readyz without a leader`);
    assert.equal(await probe(survivor, '/healthz'), 200, `${survivor.id} /healthz: process and storage still work`);
  }));

  it('Prometheus has scraped every metric name the dashboard and the alert rules use', withLogs(async () => {
    // Over the whole run (peer drops appear only after the kills), from the real processes.
    const res = await fetch(`${prom().url}/api/v1/label/__name__/values?start=${Math.floor(startedAtSeconds)}&match[]=${encodeURIComponent(`{${SEL}}`)}`);
    const body = (await res.json()) as { status: string; data: string[] };
    assert.equal(body.status, 'success');
    const scraped = new Set(body.data);
    const missing = metricNamesUsedByDashboardAndRules().filter((name) => !scraped.has(name));
    assert.deepEqual(missing, [], `no series in Prometheus for: ${missing.join(', ')}`);
  }));

  /** `raftlet_x` in text exposition, labels included; fails if the node does not export it. */
  function value(text: string, name: string, labels: Readonly<Record<string, string>> = {}): number {
    const found = sampleValue(text, name, labels);
    if (found === undefined) assert.fail(`no sample ${name}${JSON.stringify(labels)} in the node's /metrics`);
    return found;
  }

  async function scrape(n: LocalNode): Promise<string> {
    const res = await fetch(n.metricsUrl, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200, `GET ${n.metricsUrl}`);
    return res.text();
  }

  async function waitScrape(n: LocalNode, accept: (text: string) => boolean, what: string): Promise<string> {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const text = await scrape(n);
      if (accept(text)) return text;
      if (Date.now() > deadline) assert.fail(`${n.id}: /metrics never showed ${what}`);
      await delay(100);
    }
  }

  /** The node all running nodes agree leads, waiting for one if need be. */
  async function currentLeader(): Promise<LocalNode> {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const statuses = await Promise.all(running().map((n) => n.status()));
      const leaders = statuses.filter((st) => st.role === 'leader');
      if (leaders.length === 1 && statuses.every((st) => st.leader === leaders[0].id)) return node(leaders[0].id);
      if (Date.now() > deadline) assert.fail(`no leader all nodes agree on: ${JSON.stringify(statuses)}`);
      await delay(100);
    }
  }

  /** /metrics between two /v1/status reads with the same term, role and leader. */
  async function stableBracket(n: LocalNode): Promise<{ before: NodeStatus; text: string; after: NodeStatus }> {
    for (let attempt = 0; ; attempt++) {
      const first = await n.status();
      const text = await scrape(n);
      const second = await n.status();
      if (first.term === second.term && first.role === second.role && first.leader === second.leader) return { before: first, text, after: second };
      if (attempt === 10) assert.fail(`${n.id}: its role or term kept changing: ${JSON.stringify(first)} then ${JSON.stringify(second)}`);
    }
  }

  async function probe(n: LocalNode, path: string): Promise<number> {
    const res = await fetch(`http://${n.metricsAddress}${path}`, { signal: AbortSignal.timeout(5000) });
    await res.arrayBuffer();
    return res.status;
  }

  async function waitProbe(n: LocalNode, path: string, want: number): Promise<number> {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const status = await probe(n, path);
      if (status === want || Date.now() > deadline) return status;
      await delay(100);
    }
  }

  async function put(n: LocalNode, key: string, body: string): Promise<number> {
    const res = await fetch(`${n.apiUrl}/v1/kv/${key}`, { method: 'PUT', body, signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    assert.equal(res.status, 200, `PUT ${key} on ${n.id}: ${text}`);
    return (JSON.parse(text) as { index: number }).index;
  }

  async function perPod(promql: string): Promise<Map<string, number>> {
    return new Map((await prom().query(promql)).map((s) => [s.metric.pod, s.value]));
  }

  function noLeaderExpr(): string {
    if (noLeaderRule === undefined) assert.fail(`${RULES_FILE} has no RaftletNoLeader alert`);
    return noLeaderRule.expr;
  }
});

function podValue(samples: readonly VectorSample[], pod: string): number | undefined {
  return samples.find((s) => s.metric.pod === pod)?.value;
}

async function waitAlert(prometheus: RunningPrometheus, name: string): Promise<{ labels: Readonly<Record<string, string>>; annotations: Readonly<Record<string, string>>; state: string }> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const alerts = await prometheus.alerts();
    const found = alerts.find((a) => a.labels.alertname === name && a.labels.namespace === NAMESPACE && (a.state === 'pending' || a.state === 'firing'));
    if (found !== undefined) return found;
    if (Date.now() > deadline) assert.fail(`${name} did not become pending within ${WAIT_MS} ms; active alerts: ${JSON.stringify(alerts)}`);
    await delay(200);
  }
}

async function waitAlertCleared(prometheus: RunningPrometheus, name: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const alerts = await prometheus.alerts();
    if (!alerts.some((a) => a.labels.alertname === name && a.labels.namespace === NAMESPACE)) return;
    if (Date.now() > deadline) assert.fail(`${name} is still active although the cluster has a leader: ${JSON.stringify(alerts)}`);
    await delay(200);
  }
}
