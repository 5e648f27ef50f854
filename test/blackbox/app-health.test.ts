// Leadership that follows the application's health (RAFTLET_APP_HEALTH_URL) on real processes: each
// node probes its own test health server; the test turns them healthy or not. A leader whose app
// fails hands leadership to a healthy member; with every app unhealthy the leader stays; an
// unhealthy member does not win an election a healthy one can win.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { request } from 'undici';
import { clusterHooks, waitUntil, type Cluster } from '../support/cluster.ts';
import { HealthServer } from './health-server.ts';

const INTERVAL_MS = 200;
const THRESHOLD = 2;

async function metric(c: Cluster, node: number, name: string, labels = ''): Promise<number | null> {
  const answer = await request(`http://127.0.0.1:${c.spec(node).metricsPort}/metrics`);
  const text = await answer.body.text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `) || (labels === '' && l.startsWith(`${name} `)));
  return line === undefined ? null : Number(line.split(' ').at(-1));
}

/** The time of the last log line matching `pattern` (pino's epoch ms). */
function logTime(text: string, pattern: RegExp): number {
  const line = text.split('\n').filter((l) => pattern.test(l)).at(-1);
  assert.ok(line !== undefined, `no log line matches ${pattern}`);
  return (JSON.parse(line) as { time: number }).time;
}

describe('leadership follows the application health (black box)', () => {
  const clusters = clusterHooks();
  const servers: HealthServer[] = [];
  after(async () => {
    for (const server of servers) await server.stop();
  });

  /** A cluster whose node i probes apps[i - 1], fresh for each test (probes are counted). */
  async function start(name: string): Promise<{ c: Cluster; apps: HealthServer[] }> {
    const apps = [new HealthServer(), new HealthServer(), new HealthServer()];
    for (const app of apps) {
      servers.push(app);
      await app.start();
    }
    const c = await clusters.start({
      nodes: 3,
      name,
      electionTimeoutMs: 1000,
      heartbeatMs: 100,
      env: { RAFTLET_APP_HEALTH_INTERVAL_MS: String(INTERVAL_MS), RAFTLET_APP_HEALTH_THRESHOLD: String(THRESHOLD) },
      nodeEnv: (node) => ({ RAFTLET_APP_HEALTH_URL: `http://127.0.0.1:${apps[node - 1].port}/healthz` }),
    });
    await waitUntil('every node to see its app healthy', async () => {
      for (const node of c.ordinals) if ((await metric(c, node, 'raftlet_app_healthy')) !== 1) return false;
      return true;
    });
    return { c, apps };
  }

  it("a leader whose app fails hands leadership to a healthy member (measured)", async () => {
    const { c, apps } = await start('app-fails');
    const old = await c.waitForLeader();
    // Every follower's health has reached the leader in a heartbeat answer by now.
    await apps[old.node - 1].probed(2, 'two more probes of the leader app');
    const failedAt = Date.now();
    apps[old.node - 1].healthy = false;
    const next = await c.waitForLeader({ not: old.node, minTerm: old.term + 1 });
    const movedMs = Date.now() - failedAt;
    assert.ok(apps[next.node - 1].healthy);
    assert.equal(await metric(c, old.node, 'raftlet_leadership_transfers_total', '{reason="app_unhealthy",result="ok"}'), 1);
    assert.equal(await metric(c, old.node, 'raftlet_app_healthy'), 0);
    // From the nodes' own log lines: when the old leader decided, when the new one won.
    const decided = logTime(c.logText(old.node), /the application is unhealthy: handing leadership/);
    const won = logTime(c.logText(next.node), new RegExp(`"term":${next.term},"msg":"won the election"`));
    process.stdout.write(`# hand-off on app failure: the app failed at 0; the leader decided at ${decided - failedAt} ms ` +
      `(${THRESHOLD} failed checks at ${INTERVAL_MS} ms), ${next.id} won at ${won - failedAt} ms (hand-off ${won - decided} ms); ` +
      `all nodes agreed, as the test polled it, at ${movedMs} ms; bound ${2 * INTERVAL_MS} ms + one hand-off\n`);
    // The old leader, unhealthy now, does not take leadership back while a healthy member leads.
    await apps[old.node - 1].probed(3 * THRESHOLD, 'the old leader to keep checking its app');
    const still = await c.waitForLeader();
    assert.equal(still.node, next.node);
  });

  it('with every app unhealthy the leader stays; once one member is healthy again, leadership goes there', async () => {
    const { c, apps } = await start('all-unhealthy');
    const old = await c.waitForLeader();
    // The followers' apps fail first, so that the leader, when its own app fails, knows from many
    // heartbeat answers (every 100 ms) that no member is healthy; all at once would race.
    const followers = c.ordinals.filter((n) => n !== old.node);
    for (const node of followers) apps[node - 1].healthy = false;
    await Promise.all(followers.map((node) => apps[node - 1].probed(THRESHOLD + 1, 'failed checks on the followers')));
    await apps[old.node - 1].probed(3 * THRESHOLD, 'heartbeats to carry the followers\' health to the leader');
    apps[old.node - 1].healthy = false;
    // Several rounds of failed checks everywhere, far past the threshold.
    await Promise.all(apps.map((app) => app.probed(4 * THRESHOLD, 'failed checks on every node')));
    for (const node of c.ordinals) assert.equal(await metric(c, node, 'raftlet_app_healthy'), 0, `node ${node}`);
    const still = await c.waitForLeader();
    assert.deepEqual([still.node, still.term], [old.node, old.term], 'no member is healthier: the leader stays');
    assert.equal(await metric(c, old.node, 'raftlet_leadership_transfers_total', '{reason="app_unhealthy",result="ok"}'), 0);
    const healthy = c.ordinals.find((n) => n !== old.node) as number;
    apps[healthy - 1].healthy = true;
    const next = await c.waitForLeader({ minTerm: old.term + 1 });
    assert.equal(next.node, healthy);
  });

  it('when the leader dies, the member with a healthy app wins, not the one whose app is unhealthy', async () => {
    const { c, apps } = await start('election');
    const old = await c.waitForLeader();
    const [sick, fine] = c.ordinals.filter((n) => n !== old.node);
    apps[sick - 1].healthy = false;
    await apps[sick - 1].probed(THRESHOLD + 1, 'the sick member to count its app unhealthy');
    assert.equal(await metric(c, sick, 'raftlet_app_healthy'), 0);
    await c.kill9(old.node);
    const next = await c.waitForLeader({ among: [sick, fine], minTerm: old.term + 1 });
    assert.equal(next.node, fine);
  });
});
