// Leadership that follows the application's health, seen from Kubernetes (issue 15): pods named
// like a StatefulSet's, discovered through dnsmasq, labelling themselves on the API double. When the
// leader's application fails, the leader label moves to a pod whose application is healthy, and the
// Event LeadershipMovedAppUnhealthy on the old leader's pod says why.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JsonObject } from '../support/k8s-double/index.ts';
import { e2eSuite, NAMESPACE, podId, sampleValue, waitUntil, type PodCluster } from '../k8s-e2e/harness.ts';
import { HealthServer } from './health-server.ts';

const ORDINALS = [0, 1, 2];
const IDS = ORDINALS.map(podId);
const INTERVAL_MS = 200;

function movedEvents(c: PodCluster, podName: string): string[] {
  return c.k8s.events
    .list(NAMESPACE)
    .filter((e) => e.reason === 'LeadershipMovedAppUnhealthy' && (e.involvedObject as JsonObject | undefined)?.name === podName)
    .map((e) => `${String(e.type)}: ${String(e.message)}`);
}

describe('leadership follows the application health: labels and events (dnsmasq discovery, API double)', () => {
  const suite = e2eSuite();

  it("the leader label leaves a pod whose application fails, with an Event saying why", async () => {
    const apps = ORDINALS.map(() => new HealthServer());
    for (const app of apps) await app.start();
    try {
      const c = await suite.scenario({
        name: 'app-health-labels',
        env: { RAFTLET_APP_HEALTH_INTERVAL_MS: String(INTERVAL_MS), RAFTLET_APP_HEALTH_THRESHOLD: '2' },
        podEnv: (ordinal) => ({ RAFTLET_APP_HEALTH_URL: `http://127.0.0.1:${apps[ordinal].port}/ready` }),
      });
      await c.publish(ORDINALS);
      await Promise.all(ORDINALS.map((o) => c.start(o)));
      const old = await c.waitForLeader();
      await c.waitLabelsConverged(old.id, old.term, IDS);
      await Promise.all(apps.map((app) => app.probed(3, 'every pod to see its app healthy a few times')));

      apps[old.ordinal].healthy = false;
      const next = await c.waitForLeader({ not: old.id, minTerm: old.term + 1 });
      assert.ok(apps[next.ordinal].healthy, `${next.id} has a healthy application`);
      await c.waitLabelsConverged(next.id, next.term, IDS);
      const events = await waitUntil(`a LeadershipMovedAppUnhealthy event on ${old.id}`, () => {
        const found = movedEvents(c, old.id);
        return found.length > 0 ? found : null;
      });
      assert.match(events[0] ?? '', new RegExp(`^Warning: the application beside ${old.id} is unhealthy .*leadership moved to ${next.id}`));
      const metrics = await c.metricsText(old.ordinal);
      assert.equal(sampleValue(metrics, 'raftlet_leadership_transfers_total', { reason: 'app_unhealthy', result: 'ok' }), 1);
      assert.equal(sampleValue(metrics, 'raftlet_app_healthy'), 0);
    } finally {
      for (const app of apps) await app.stop();
    }
  });
});
