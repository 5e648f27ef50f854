// The backup CronJob: off by default; when on, its script (run here with sh and a stand-in
// `raftlet` on PATH that records its arguments) asks the members in turn until one gives a
// snapshot, writes it under /backups with a sortable timestamp, and keeps the newest `keep`.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { renderChart } from './render.ts';

const run = promisify(execFile);
type Obj = Record<string, unknown>;

async function cronJob(set: Record<string, string | number | boolean> = {}): Promise<{ job: Obj; objects: Obj[] }> {
  const objects = (await renderChart({ releaseName: 'orders', namespace: 'shop', set: { 'backup.enabled': true, ...set } })).map((o) => o.object as unknown as Obj);
  const job = objects.find((o) => o.kind === 'CronJob');
  assert.ok(job, 'a CronJob');
  return { job, objects };
}

function podSpec(job: Obj): Obj {
  return ((((job.spec as Obj).jobTemplate as Obj).spec as Obj).template as Obj).spec as Obj;
}

/** Runs the job's container script with /backups mapped to a temp dir and a fake raftlet. */
async function runScript(job: Obj, opts: { failFor: readonly number[]; existing: readonly string[] }): Promise<{ code: number; output: string; files: string[]; calls: string[] }> {
  const container = (podSpec(job).containers as Obj[])[0];
  const command = container.command as string[];
  assert.deepEqual(command.slice(0, 2), ['/bin/sh', '-c']);
  const dir = mkdtempSync(join(tmpdir(), 'raftlet-backup-'));
  try {
    const backups = join(dir, 'backups');
    const bin = join(dir, 'bin');
    mkdirSync(backups);
    mkdirSync(bin);
    for (const name of opts.existing) writeFileSync(join(backups, name), 'old');
    const calls = join(dir, 'calls');
    // Stand-in for `raftlet snapshot save FILE --peer URL`: fails for the listed ordinals.
    writeFileSync(join(bin, 'raftlet'), [
      '#!/bin/sh',
      `echo "$*" >> ${calls}`,
      `case "$5" in ${opts.failFor.map((i) => `*-${i}.*`).join('|') || '__none__'}) echo "connect ECONNREFUSED" >&2; exit 1;; esac`,
      'echo snapshot > "$3"',
    ].join('\n'));
    chmodSync(join(bin, 'raftlet'), 0o755);
    const env: Record<string, string> = { PATH: `${bin}:${process.env.PATH ?? ''}` };
    for (const e of container.env as Obj[]) if (typeof e.value === 'string') env[String(e.name)] = e.value;
    const script = command[2].replaceAll('/backups', backups);
    let code = 0;
    let output = '';
    try {
      const result = await run('/bin/sh', ['-c', script], { env, timeout: 30_000 });
      output = `${result.stdout}${result.stderr}`;
    } catch (err: unknown) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      code = typeof e.code === 'number' ? e.code : 1;
      output = `${e.stdout ?? ''}${e.stderr ?? ''}`;
    }
    let recorded: string[] = [];
    try {
      recorded = readFileSync(calls, 'utf8').trim().split('\n');
    } catch {
      recorded = [];
    }
    return { code, output, files: readdirSync(backups).sort(), calls: recorded.map((c) => c.replaceAll(backups, '/backups')) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('the backup CronJob', () => {
  it('is off by default', async () => {
    const kinds = (await renderChart()).map((o) => o.object.kind);
    assert.ok(!kinds.includes('CronJob') && !kinds.includes('PersistentVolumeClaim'));
  });

  it('runs raftlet snapshot save against a member\'s peer port with the token file, onto a kept volume', async () => {
    const { job, objects } = await cronJob();
    assert.equal((job.spec as Obj).concurrencyPolicy, 'Forbid');
    const spec = podSpec(job);
    assert.equal(spec.automountServiceAccountToken, false);
    const container = (spec.containers as Obj[])[0];
    const env = new Map((container.env as Obj[]).map((e) => [e.name, e.value]));
    assert.equal(env.get('RAFTLET_CLUSTER_TOKEN_FILE'), '/etc/raftlet/cluster-token/token');
    assert.equal(env.get('PEER_SCHEME'), 'http');
    assert.equal(env.get('RAFTLET_CLUSTER_TOKEN'), undefined);
    const claim = ((spec.volumes as Obj[]).find((v) => v.name === 'backups')?.persistentVolumeClaim as Obj).claimName;
    const pvc = objects.find((o) => o.kind === 'PersistentVolumeClaim' && (o.metadata as Obj).name === claim) as Obj;
    assert.equal(((pvc.metadata as Obj).annotations as Obj)['helm.sh/resource-policy'], 'keep', 'helm uninstall keeps the backups');
    // The backup pods may reach the peer port, and are not members (not selected by Services or the PDB).
    const labels = ((((job.spec as Obj).jobTemplate as Obj).spec as Obj).template as Obj).metadata as Obj;
    const policy = objects.find((o) => o.kind === 'NetworkPolicy') as Obj;
    const peerRule = ((policy.spec as Obj).ingress as Obj[]).find((r) => (r.ports as Obj[]).some((p) => p.port === 'raft')) as Obj;
    assert.ok((peerRule.from as Obj[]).some((f) => JSON.stringify((f.podSelector as Obj).matchLabels) === JSON.stringify({
      'app.kubernetes.io/name': 'raftlet-backup', 'app.kubernetes.io/instance': 'orders',
    })));
    assert.equal((labels.labels as Obj)['app.kubernetes.io/name'], 'raftlet-backup');
  });

  it('asks the members in turn, saves one snapshot, and keeps the newest `keep`', async () => {
    const { job } = await cronJob({ 'backup.keep': 3 });
    const old = ['raftlet-20240101T000000Z.snap', 'raftlet-20240102T000000Z.snap', 'raftlet-20240103T000000Z.snap', 'raftlet-20240104T000000Z.snap'];
    const { code, output, files, calls } = await runScript(job, { failFor: [0], existing: old });
    assert.equal(code, 0, output);
    assert.equal(calls.length, 2, calls.join('\n'));
    assert.match(calls[0], /^snapshot save \/backups\/raftlet-\d{8}T\d{6}Z\.snap --peer http:\/\/orders-raftlet-0\.orders-raftlet\.shop\.svc\.cluster\.local:7070$/);
    assert.match(calls[1], /--peer http:\/\/orders-raftlet-1\.orders-raftlet\.shop\.svc\.cluster\.local:7070$/);
    assert.match(output, /trying the next member/);
    assert.equal(files.length, 3);
    assert.deepEqual(files.slice(0, 2), old.slice(2), 'the oldest are removed');
    assert.match(files[2], /^raftlet-\d{8}T\d{6}Z\.snap$/);
  });

  it('fails, removing nothing, when no member gives a snapshot', async () => {
    const { job } = await cronJob();
    const old = ['raftlet-20240101T000000Z.snap'];
    const { code, output, files, calls } = await runScript(job, { failFor: [0, 1, 2], existing: old });
    assert.notEqual(code, 0);
    assert.match(output, /no member gave a snapshot/);
    assert.equal(calls.length, 3);
    assert.deepEqual(files, old);
  });
});
