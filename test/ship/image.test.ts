// The real image: tools/image/build.sh builds it with podman/buildah (no Docker engine, no
// registry) and runs `raftlet --help` and `raftlet demo-app` in it as an arbitrary uid. It takes
// minutes and needs root, podman, buildah and mmdebstrap, so it runs only with RAFTLET_IMAGE_TEST=1
// (CI sets it); otherwise it is reported as skipped.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './render.ts';

const enabled = process.env.RAFTLET_IMAGE_TEST === '1';

describe('container image', () => {
  it('builds with tools/image/build.sh and runs raftlet --help and demo-app', {
    skip: enabled ? false : 'set RAFTLET_IMAGE_TEST=1 to build the image (podman, buildah, mmdebstrap; minutes)',
    timeout: 30 * 60 * 1000,
  }, async () => {
    const image = `localhost/raftlet:test-${process.pid}`;
    const child = spawn('bash', [join(repoRoot, 'tools', 'image', 'build.sh'), image], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    try {
      const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
      assert.equal(code, 0, `tools/image/build.sh failed:\n${output.slice(-6000)}`);
      assert.match(output, /== OK: /);
      assert.match(output, /raftlet run/, 'raftlet --help printed its usage');
      assert.match(output, /demo-app listening on/);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      spawnSync('podman', ['rmi', '--force', image], { stdio: 'ignore' });
    }
  });
});
