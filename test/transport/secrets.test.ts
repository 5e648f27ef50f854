// Secrets hygiene (issue 14): the cluster tokens and the TLS private keys never appear in logs,
// /metrics, error messages or --help, whatever the cluster went through: refused peers with a
// wrong token, a token file rewritten with an invalid token, a settings error about a token.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { PROTOCOL_HEADER, PROTOCOL_VERSION, ROUTES } from '../../src/transport/protocol.ts';
import { createThrowawayCa } from '../../src/transport/throwaway-ca.ts';
import { baseEnv, clusterHooks, runRaftlet, waitUntil } from '../support/cluster.ts';

/** The base64 lines of a PEM key: any of them in an output would leak key material. */
function keyLines(file: string): string[] {
  return readFileSync(file, 'utf8').split('\n').filter((line) => line.length >= 16 && !line.startsWith('-----'));
}

describe('secrets hygiene', () => {
  const clusters = clusterHooks();
  const dir = mkdtempSync(path.join(tmpdir(), 'raftlet-secrets-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('tokens and keys appear in no log, /metrics, error message or --help', async () => {
    const [first, second, wrong] = [0, 1, 2].map(() => randomBytes(24).toString('hex'));
    const ca = createThrowawayCa(path.join(dir, 'ca'));
    for (const id of ['node-1', 'node-2', 'node-3', 'visitor']) ca.issue(id);
    const tokenFile = path.join(dir, 'tokens');
    writeFileSync(tokenFile, `${first}\n${second}\n`, { mode: 0o600 });
    const cluster = await clusters.start({
      nodes: 3,
      name: 'secrets',
      peerScheme: 'https',
      env: { RAFTLET_CLUSTER_TOKEN: '', RAFTLET_CLUSTER_TOKEN_FILE: tokenFile, RAFTLET_LOG_LEVEL: 'debug' },
      nodeEnv: (node) => ({
        RAFTLET_PEER_TLS_CERT_FILE: path.join(ca.dir, `node-${node}.pem`),
        RAFTLET_PEER_TLS_KEY_FILE: path.join(ca.dir, `node-${node}.key`),
        RAFTLET_PEER_TLS_CA_FILE: ca.caFile,
      }),
    });
    const leader = await cluster.waitForLeader();
    await cluster.putOk(leader.node, 'k', 'v');

    // A peer with a valid certificate and a wrong token: refused, and logged.
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpsRequest({
        host: '127.0.0.1', port: cluster.spec(leader.node).peerPort, path: ROUTES.status, method: 'GET',
        headers: { authorization: `Bearer ${wrong}`, [PROTOCOL_HEADER]: String(PROTOCOL_VERSION) },
        ca: readFileSync(ca.caFile), cert: readFileSync(path.join(ca.dir, 'visitor.pem')), key: readFileSync(path.join(ca.dir, 'visitor.key')),
        checkServerIdentity: () => undefined,
      }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 401);
    await waitUntil('the refusal in the log', () => cluster.logText(leader.node).includes('refused a peer request'));

    // A rewrite with an invalid second token: kept the last good set, with a warning.
    writeFileSync(tokenFile, `${first}\n${second.slice(0, 10)}\n`);
    await waitUntil('the warning about the token file', () => cluster.ordinals.every((n) => cluster.logText(n).includes('cannot use the rewritten token file')));
    writeFileSync(tokenFile, `${first}\n${second}\n`);

    const outputs: [string, string][] = [];
    for (const node of cluster.ordinals) {
      const metrics = await fetch(`http://127.0.0.1:${cluster.spec(node).metricsPort}/metrics`);
      outputs.push([`node-${node} /metrics`, await metrics.text()]);
    }
    for (const args of [['--help'], ['run', '--help'], ['local', '--help']]) {
      const result = await runRaftlet(args);
      outputs.push([`raftlet ${args.join(' ')}`, result.stdout + result.stderr]);
    }
    // Settings errors about tokens and TLS files.
    const bad = await runRaftlet(['run'], { env: { ...baseEnv(), RAFTLET_CLUSTER_TOKEN: `${first},tooshort` } });
    assert.equal(bad.code, 2);
    outputs.push(['a settings error about a token', bad.stdout + bad.stderr]);
    const badFile = path.join(dir, 'bad-tokens');
    writeFileSync(badFile, `${second} with a space\n`);
    const badFromFile = await runRaftlet(['run'], { env: { ...baseEnv(), RAFTLET_CLUSTER_TOKEN_FILE: badFile } });
    assert.equal(badFromFile.code, 2);
    outputs.push(['a settings error about a token file', badFromFile.stdout + badFromFile.stderr]);
    for (const node of cluster.ordinals) outputs.push([`node-${node} log`, cluster.logText(node)]);

    const secrets: [string, string][] = [['the first token', first], ['the second token', second], ['the wrong token', wrong],
      ...cluster.ordinals.flatMap((n) => keyLines(path.join(ca.dir, `node-${n}.key`)).map((line): [string, string] => [`node-${n}'s key`, line])),
      ...keyLines(path.join(ca.dir, 'ca.key')).map((line): [string, string] => ['the CA key', line])];
    for (const [where, text] of outputs) {
      for (const [what, secret] of secrets) assert.ok(!text.includes(secret), `${what} appears in ${where}`);
    }
    // The checks above would see a leak: the outputs are not empty.
    assert.ok(outputs.every(([, text]) => text.length > 0));
  });
});
