// The demo app's singleton work on real raftlet processes: one demo app per node, only the one
// beside the leader counts, and after kill -9 of the leader another takes over, continuing the count
// (compare-and-set plus If-Term: no increment lost to a race, none written twice).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { COUNTER_KEY, startDemoApp, type CounterView, type RunningDemoApp } from '../../src/cli/demo-app.ts';
import { clusterHooks, waitUntil } from '../support/cluster.ts';

async function counterOf(app: RunningDemoApp): Promise<CounterView> {
  const response = await fetch(`http://127.0.0.1:${app.port}/counter`);
  assert.equal(response.status, 200);
  return (await response.json()) as CounterView;
}

describe('demo app: a counter only the leader increments (black box)', () => {
  const clusters = clusterHooks();

  it('counts on the leader only, and carries on after kill -9 of the leader', async () => {
    const c = await clusters.start({ nodes: 3, name: 'demo-counter', electionTimeoutMs: 1000, heartbeatMs: 100 });
    const apps: RunningDemoApp[] = [];
    try {
      for (const node of c.ordinals) {
        apps.push(await startDemoApp({ host: '127.0.0.1', port: 0, raftletApiUrl: c.spec(node).apiUrl, podName: c.spec(node).id, statusTimeoutMs: 2000, counterIntervalMs: 20 }));
      }
      const first = await c.waitForLeader();
      await waitUntil('the leader\'s app to count to 10', async () => ((await counterOf(apps[first.node - 1])).counter ?? 0) >= 10);
      const views = await Promise.all(apps.map(counterOf));
      assert.deepEqual(views.map((v) => v.leading), c.ordinals.map((n) => n === first.node), 'only the app beside the leader counts');
      const before = Number(await c.getText(first.node, COUNTER_KEY));

      await c.kill9(first.node);
      const second = await c.waitForLeader({ among: c.ordinals.filter((n) => n !== first.node) });
      await waitUntil('the new leader\'s app to count on', async () => ((await counterOf(apps[second.node - 1])).counter ?? 0) >= before + 10);
      await c.restart(first.node);
      await waitUntil('the old leader\'s app to stop counting', async () => !(await counterOf(apps[first.node - 1])).leading);

      // Stop counting everywhere, then compare: every acknowledged increment is in the count (a
      // write whose answer was lost may be in it too, uncounted by its app).
      const increments = (await Promise.all(apps.map(counterOf))).reduce((sum, v) => sum + v.increments, 0);
      for (const app of apps.splice(0)) await app.close();
      const final = Number(await c.getText(second.node, COUNTER_KEY));
      assert.ok(final >= before + 10, `counter ${final}`);
      assert.ok(final >= increments, `counter ${final} < ${increments} acknowledged increments: one was lost`);
      process.stdout.write(`# demo counter: ${final} after a leader kill, ${increments} acknowledged increments\n`);
    } finally {
      for (const app of apps) await app.close();
    }
  });
});
