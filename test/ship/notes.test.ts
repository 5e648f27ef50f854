// NOTES.txt: what `helm install` prints. Its kubectl commands are run as printed, with the real
// kubectl, against the Kubernetes API double holding this release's pods and another release's, so
// they work and never touch the other release.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startK8sDouble } from '../support/k8s-double/index.ts';
import type { K8sDouble } from '../support/k8s-double/index.ts';
import { renderNotes } from './render.ts';
import type { RenderOptions } from './render.ts';

const run = promisify(execFile);
const NAMESPACE = 'shop';

/** The command lines NOTES prints (indented, starting with kubectl), continuation lines joined. */
function printedCommands(notes: string): string[] {
  const joined = notes.replace(/\\\n\s*/g, '');
  return joined.split('\n').map((line) => line.trim()).filter((line) => line.startsWith('kubectl '));
}

async function shell(api: K8sDouble, command: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run('sh', ['-c', command], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', KUBECONFIG: api.kubeconfigPath },
      timeout: 60_000,
    });
    return { code: 0, output: `${stdout}${stderr}` };
  } catch (err: unknown) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** Two releases of the chart in one namespace: orders (ours) and billing, each with a leader. */
async function twoReleases(): Promise<K8sDouble> {
  // kubectl sends no bearer token over plain HTTP: the commands run as the anonymous user.
  const api = await startK8sDouble({
    namespace: NAMESPACE,
    anonymousRules: [
      { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'delete'] },
      { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list'] },
    ],
  });
  const roles = ['follower', 'leader', 'follower'];
  for (const [release, offset] of [['orders', 0], ['billing', 2]] as const) {
    for (let i = 0; i < 3; i++) {
      api.pods.add({ name: `${release}-raftlet-${i}`, labels: { 'app.kubernetes.io/instance': release, 'raftlet.io/role': roles[(i + offset) % 3] } });
    }
  }
  api.endpointSlices.set('orders-raftlet-leader', [{ pod: 'orders-raftlet-1' }]);
  api.endpointSlices.set('billing-raftlet-leader', [{ pod: 'billing-raftlet-0' }]);
  return api;
}

const orders: RenderOptions = { releaseName: 'orders', namespace: NAMESPACE };

describe('NOTES.txt', () => {
  it('prints commands that select this release only', async () => {
    const commands = printedCommands(await renderNotes(orders));
    assert.ok(commands.length >= 5, commands.join('\n'));
    for (const command of commands.filter((c) => c.includes(' -l ') && !c.includes('endpointslices'))) {
      assert.match(command, /-l app\.kubernetes\.io\/name=raftlet,app\.kubernetes\.io\/instance=orders/, command);
    }
    assert.ok(!commands.some((c) => /delete pod /.test(c)), '`delete pod pod/x` fails: delete the name kubectl prints');
  });

  it('every command that can run against an API server works as printed and leaves the other release alone', async () => {
    const api = await twoReleases();
    try {
      const commands = printedCommands(await renderNotes(orders));
      const ran: string[] = [];
      for (const printed of commands) {
        // exec needs a running container and `run -it` a terminal: a real cluster proves those.
        if (/ exec | run /.test(printed)) continue;
        // The double serves no watch: run a watch command once without -w.
        const command = printed.replace(/ -w$/, '');
        const before = api.pods.list().map((p) => String((p.metadata as Record<string, unknown>).name));
        const { code, output } = await shell(api, command);
        assert.equal(code, 0, `${printed}\n${output}`);
        assert.doesNotMatch(output, /billing/, `${printed} shows the other release:\n${output}`);
        const rows = output.split('\n').filter((line) => line.startsWith('orders-raftlet-'));
        if (command.includes(' delete ')) {
          const after = api.pods.list().map((p) => String((p.metadata as Record<string, unknown>).name));
          assert.deepEqual(before.filter((name) => !after.includes(name)), ['orders-raftlet-1'], `${printed} deletes exactly our leader`);
          assert.match(output, /pod "orders-raftlet-1" deleted/);
          // What the cluster then does: a new leader, and the StatefulSet's new pod a follower.
          api.pods.update('orders-raftlet-0', (pod) => {
            ((pod.metadata as Record<string, unknown>).labels as Record<string, string>)['raftlet.io/role'] = 'leader';
          });
          api.pods.add({ name: 'orders-raftlet-1', labels: { 'app.kubernetes.io/instance': 'orders', 'raftlet.io/role': 'follower' } });
        } else if (command.includes('get pods') && command.includes('=leader')) {
          assert.equal(rows.length, 1, output);
          assert.match(rows[0], /\sleader$/, output);
        } else if (command.includes('get pods')) {
          assert.equal(rows.length, 3, output);
          assert.equal(rows.filter((row) => /\sleader$/.test(row)).length, 1, output);
          assert.equal(rows.filter((row) => /\sfollower$/.test(row)).length, 2, output);
        } else if (command.includes('endpointslices')) {
          assert.match(output, /orders-raftlet-leader/, output);
        }
        ran.push(command);
      }
      assert.ok(ran.some((c) => c.includes(' delete ')) && ran.some((c) => c.includes('=leader')), ran.join('\n'));
    } finally {
      await api.stop();
    }
  });

  it('says what a non-demo application, TLS and backups add, and how to rotate the token', async () => {
    const own = await renderNotes({ ...orders, values: { app: { args: ['serve'] } } });
    assert.doesNotMatch(own, /curl/, 'the curl check expects the demo app');
    assert.match(own, /get endpointslices -l kubernetes\.io\/service-name=orders-raftlet-leader/);
    const full = await renderNotes({ ...orders, set: { 'tls.enabled': true, 'backup.enabled': true } });
    assert.match(full, /mutual TLS \(certificate from generate, Secret orders-raftlet-peer-tls\)/);
    assert.match(full, /kubectl -n shop create job --from=cronjob\/orders-raftlet-backup orders-raftlet-backup-manual/);
    assert.match(await renderNotes(orders), /rotate it without\s+downtime.*docs\/shipping\.md/s);
  });
});
