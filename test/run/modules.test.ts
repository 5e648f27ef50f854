// Libraries a mode does not use are not loaded (issue 12): a member outside Kubernetes
// (RAFTLET_KUBERNETES=0, as in the bench, `raftlet local` and every black-box test) must never load
// @kubernetes/client-node, which alone is ~870 modules and ~35 MB of RSS; and no member loads the
// copy of undici bundled in Node (with http2), which an ESM import of node:http drags in through
// http.WebSocket (src/util/http.ts). The member is a real `raftlet run` process; a resolve hook
// (test/support/module-log.ts) logs every module it loads while it starts, wins its election and
// serves a write, a read and a metrics scrape, and Node's list of internal modules at exit.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { request } from 'undici';
import { clusterHooks } from '../support/cluster.ts';

const HOOK = pathToFileURL(path.join(import.meta.dirname, '..', 'support', 'module-log.ts')).href;

/** The package a module URL belongs to (`@scope/name` or `name`), or null outside node_modules. */
function packageOf(url: string): string | null {
  const match = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  return match === null ? null : match[1]!;
}

describe('modules a member outside Kubernetes loads', () => {
  const clusters = clusterHooks();

  test('a member with RAFTLET_KUBERNETES=0 loads neither @kubernetes/client-node nor the undici bundled in Node', async () => {
    const c = await clusters.start({
      nodes: 1,
      name: 'modules',
      nodeEnv: (_node, dir) => ({ NODE_OPTIONS: `--import=${HOOK}`, RAFTLET_TEST_MODULE_LOG: path.join(dir, 'modules.log') }),
    });
    const logFile = c.spec(1).env.RAFTLET_TEST_MODULE_LOG!;
    await c.waitForLeader();
    await c.putOk(1, 'modules-key', 'v');
    assert.equal(await c.getText(1, 'modules-key'), 'v');
    const scrape = await request(`http://127.0.0.1:${c.spec(1).metricsPort}/metrics`);
    assert.equal(scrape.statusCode, 200);
    await scrape.body.text();

    assert.ok(existsSync(logFile), `the module log ${logFile} was written`);
    const packages = new Set(readFileSync(logFile, 'utf8').split('\n').map(packageOf).filter((p) => p !== null));
    // The hook saw the libraries this mode does use: the log is the member's.
    for (const used of ['express', 'pino', 'prom-client']) assert.ok(packages.has(used), `${used} was loaded: ${[...packages].join(', ')}`);
    assert.ok(!packages.has('@kubernetes/client-node'), `@kubernetes/client-node was loaded outside Kubernetes: ${[...packages].join(', ')}`);

    assert.equal(await c.sigterm(1), 0, 'the member stopped cleanly');
    const internal = readFileSync(`${logFile}.internal`, 'utf8').split('\n');
    assert.ok(internal.includes('NativeModule http'), 'the internal list is the member\'s (it loaded node:http)');
    for (const unused of ['NativeModule internal/deps/undici/undici', 'NativeModule http2']) {
      assert.ok(!internal.includes(unused), `${unused} was loaded`);
    }
  });
});
