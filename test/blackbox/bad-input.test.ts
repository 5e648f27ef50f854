// Bad input is refused with the status SPEC §2-5 name and changes nothing: after every refused
// client and peer request the leader, its term and the data are what they were, and nothing was
// appended to the log. `raftlet run` with a bad setting exits 2 with one line naming the setting,
// before it creates its data directory.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  baseEnv, clusterHooks, runRaftlet, type ApiStatus, type Cluster, type HttpAnswer,
} from '../support/cluster.ts';
import { releasePorts, reservePorts } from '../support/ports.ts';

const MAX_VALUE_BYTES = 1024;

describe('bad input to a running cluster', () => {
  const clusters = clusterHooks();
  let c: Cluster;
  let leader: { node: number; id: string; term: number };
  let targets: number[];
  let data: Map<string, { value: string; modIndex: number }>;
  let leaderStatus: ApiStatus;

  before(async () => {
    // A long election timeout: a spurious election on a busy machine must not pass for damage.
    c = await clusters.start({
      nodes: 3, name: 'bad-input', heartbeatMs: 100, electionTimeoutMs: 2000, env: { RAFTLET_MAX_VALUE_BYTES: String(MAX_VALUE_BYTES) },
    });
    leader = await c.waitForLeader();
    const follower = c.ordinals.find((n) => n !== leader.node) ?? 0;
    targets = [leader.node, follower];
    await c.putOk(follower, 'existing', 'original value');
    await c.putOk(leader.node, 'other', 'another value');
    await c.putOk(leader.node, 'é'.repeat(256), 'a key of exactly 512 bytes of UTF-8');
    await c.putOk(leader.node, 'k'.repeat(512), 'a key of exactly 512 bytes');
    await c.putOk(follower, 'full', 'x'.repeat(MAX_VALUE_BYTES));
    data = await c.list(leader.node);
  });

  /** Same leader, same term, same data, on every node. */
  async function assertUnchanged(what: string, sameLog: boolean): Promise<void> {
    const now = await c.waitForLeader({ among: c.ordinals });
    assert.deepEqual(now, leader, `${what}: the leader and term are unchanged`);
    for (const node of c.ordinals) assert.deepEqual(await c.list(node), data, `${what}: node ${node} holds the same data`);
    if (sameLog) {
      const s = await c.status(leader.node);
      assert.equal(s.lastLogIndex, leaderStatus.lastLogIndex, `${what}: nothing was appended to the log`);
      assert.equal(s.commitIndex, leaderStatus.commitIndex);
    }
  }

  function assertError(answer: HttpAnswer, status: number, code: string, what: string): void {
    assert.equal(answer.status, status, `${what}: ${answer.status} ${answer.text}`);
    assert.equal(answer.errorCode, code, `${what}: ${answer.text}`);
    assert.match(String(answer.headers['content-type']), /^application\/json/, `${what}: errors are JSON`);
    const message = answer.json<{ error: { message: unknown } }>().error.message;
    assert.ok(typeof message === 'string' && message.length > 0, `${what}: the error has a message`);
  }

  test('failed conditions: If-Match mismatch and If-None-Match on an existing key are 412', async () => {
    const modIndex = data.get('existing')?.modIndex ?? 0;
    for (const node of targets) {
      assertError(await c.put(node, 'existing', 'changed', { ifMatch: modIndex + 1000 }), 412, 'precondition_failed', `PUT If-Match mismatch via ${node}`);
      assertError(await c.put(node, 'existing', 'changed', { ifNoneMatch: true }), 412, 'precondition_failed', `PUT If-None-Match via ${node}`);
      assertError(await c.del(node, 'existing', { ifMatch: modIndex + 1000 }), 412, 'precondition_failed', `DELETE If-Match mismatch via ${node}`);
      assertError(await c.del(node, 'never-written', { ifMatch: modIndex }), 412, 'precondition_failed', `DELETE If-Match on an absent key via ${node}`);
    }
    // Conditions are decided in log order, so these were appended; the data must not change.
    await assertUnchanged('after failed conditions', false);
    leaderStatus = await c.status(leader.node);
  });

  test('the client API refuses bad keys, values, conditions and routes', async () => {
    const tooLong = encodeURIComponent('k'.repeat(513));
    const tooLongUtf8 = encodeURIComponent(`${'é'.repeat(256)}k`);
    const value = (bytes: number): Buffer => Buffer.alloc(bytes, 0x61);
    for (const node of targets) {
      const via = ` via node ${node}`;
      const put = (rawPath: string, body: string | Buffer = 'v', headers: Record<string, string> = {}): Promise<HttpAnswer> =>
        c.request(node, 'PUT', rawPath, { body, headers: { 'content-type': 'application/octet-stream', ...headers } });
      assertError(await put('/v1/kv/'), 400, 'bad_request', `empty key${via}`);
      assertError(await c.request(node, 'DELETE', '/v1/kv/'), 400, 'bad_request', `DELETE of an empty key${via}`);
      assertError(await put(`/v1/kv/${tooLong}`), 400, 'bad_request', `513-byte key${via}`);
      assertError(await put(`/v1/kv/${tooLongUtf8}`), 400, 'bad_request', `513 bytes of UTF-8 in 257 characters${via}`);
      assertError(await c.request(node, 'GET', `/v1/kv/${tooLong}`), 400, 'bad_request', `GET of a 513-byte key${via}`);
      for (const control of ['%00', '%01', '%0A', '%1F', '%7F', '%C2%85']) {
        assertError(await put(`/v1/kv/a${control}b`), 400, 'bad_request', `key with ${control}${via}`);
      }
      assertError(await put('/v1/kv/%E0%A4%A'), 400, 'bad_request', `broken percent-encoding${via}`);
      assertError(await put('/v1/kv/%FF%FE'), 400, 'bad_request', `percent-encoded bytes that are not UTF-8${via}`);
      assertError(await put('/v1/kv/existing', value(MAX_VALUE_BYTES + 1)), 413, 'payload_too_large', `value over the limit${via}`);
      assertError(await put('/v1/kv/big', value(4 * MAX_VALUE_BYTES)), 413, 'payload_too_large', `value far over the limit${via}`);
      for (const ifMatch of ['abc', '42', 'W/"42"', '*', '"1", "2"', '"-1"', '""']) {
        assertError(await put('/v1/kv/existing', 'changed', { 'if-match': ifMatch }), 400, 'bad_request', `If-Match: ${ifMatch}${via}`);
      }
      assertError(await put('/v1/kv/existing', 'changed', { 'if-none-match': '"3"' }), 400, 'bad_request', `If-None-Match other than *${via}`);
      assertError(await c.request(node, 'GET', '/v2/kv/existing'), 404, 'not_found', `unknown route${via}`);
      assertError(await c.request(node, 'POST', '/v1/nothing-here', { body: '{}' }), 404, 'not_found', `unknown route${via}`);
      assertError(await c.request(node, 'GET', '/v1/kv?consistency=sometimes'), 400, 'bad_request', `unknown consistency${via}`);
      assertError(await c.request(node, 'GET', '/v1/kv?limit=-1'), 400, 'bad_request', `negative limit${via}`);
      assertError(await c.request(node, 'GET', '/v1/kv/never-written'), 404, 'not_found', `absent key${via}`);
      const transfer = await c.request(node, 'POST', '/v1/leader/transfer', { body: '{"to":', headers: { 'content-type': 'application/json' } });
      assertError(transfer, 400, 'bad_request', `transfer with a broken body${via}`);
    }
    await assertUnchanged('after bad client requests', true);
  });

  test('the peer API refuses requests without the token, with a wrong token, malformed or from another protocol version', async () => {
    const bearer = { authorization: `Bearer ${c.token}` };
    const framed = { ...bearer, 'raftlet-protocol': '1', 'content-type': 'application/octet-stream' };
    const json = { ...bearer, 'raftlet-protocol': '1', 'content-type': 'application/json' };
    const garbage = randomBytes(256);
    for (const node of targets) {
      const via = ` to node ${node}`;
      const post = (route: string, headers: Record<string, string>, body: string | Buffer = garbage): Promise<HttpAnswer> =>
        c.peerRequest(node, 'POST', route, { headers, body });
      for (const route of ['/raft/v1/messages', '/raft/v1/propose', '/raft/v1/read-index', '/raft/v1/transfer']) {
        const noToken = await post(route, { 'raftlet-protocol': '1', 'content-type': 'application/octet-stream' });
        assert.equal(noToken.status, 401, `no token${via} ${route}: ${noToken.text}`);
        const wrong = await post(route, { ...framed, authorization: `Bearer ${c.token.slice(0, -1)}x` });
        assert.equal(wrong.status, 401, `wrong token${via} ${route}: ${wrong.text}`);
        const basic = await post(route, { ...framed, authorization: `Basic ${Buffer.from(`raftlet:${c.token}`).toString('base64')}` });
        assert.equal(basic.status, 401, `the token in another scheme${via} ${route}: ${basic.text}`);
      }
      const statusNoToken = await c.peerRequest(node, 'GET', '/raft/v1/status');
      assert.equal(statusNoToken.status, 401, `status without a token${via}`);

      const messages = await post('/raft/v1/messages', framed);
      assert.equal(messages.status, 400, `garbage Raft messages with the right token${via}: ${messages.text}`);
      const truncated = await post('/raft/v1/messages', framed, Buffer.alloc(3));
      assert.equal(truncated.status, 400, `a truncated frame${via}: ${truncated.text}`);
      const notJson = await post('/raft/v1/propose', json, '{"command":');
      assert.equal(notJson.status, 400, `a propose that is not JSON${via}: ${notJson.text}`);
      const wrongShape = await post('/raft/v1/propose', json, '{"command":{"op":"put","key":""},"timeoutMs":-5}');
      assert.equal(wrongShape.status, 400, `a propose of the wrong shape${via}: ${wrongShape.text}`);
      const huge = await post('/raft/v1/propose', json, Buffer.alloc(3 << 20, 0x20));
      assert.equal(huge.status, 413, `an oversized propose${via}: ${huge.text}`);

      const v2 = await post('/raft/v2/messages', { ...framed, 'raftlet-protocol': '2' });
      assert.equal(v2.status, 426, `protocol 2 in the path${via}: ${v2.text}`);
      assert.match(v2.text, /protocol/i);
      assert.match(v2.text, /\b1\b/, 'the refusal says which version this node speaks');
      const header2 = await post('/raft/v1/messages', { ...framed, 'raftlet-protocol': '2' });
      assert.equal(header2.status, 426, `protocol 2 in the header${via}: ${header2.text}`);
      assert.match(header2.text, /protocol/i);
      const noHeader = await post('/raft/v1/messages', { ...bearer, 'content-type': 'application/octet-stream' });
      assert.equal(noHeader.status, 426, `no protocol header${via}: ${noHeader.text}`);
    }
    await assertUnchanged('after bad peer requests', true);
    // The refusals are logged, so an operator can find a misconfigured peer.
    assert.match(c.logText(leader.node), /refused a peer request/);
  });
});

describe('raftlet run with bad settings', () => {
  let scratch: string;
  let ports: number[];
  before(async () => {
    scratch = await mkdtemp(path.join(tmpdir(), 'raftlet-bb-settings-'));
    ports = await reservePorts(3);
  });
  after(async () => {
    releasePorts(ports);
    await rm(scratch, { recursive: true, force: true });
  });

  function goodEnv(dataDir: string): Record<string, string> {
    const [peer, api, metrics] = ports;
    return {
      ...baseEnv(),
      RAFTLET_NODE_ID: 'node-1',
      RAFTLET_PEERS: `node-1=http://127.0.0.1:${peer}`,
      RAFTLET_PEER_LISTEN: `127.0.0.1:${peer}`,
      RAFTLET_API_LISTEN: `127.0.0.1:${api}`,
      RAFTLET_METRICS_LISTEN: `127.0.0.1:${metrics}`,
      RAFTLET_DATA_DIR: dataDir,
      RAFTLET_CLUSTER_TOKEN: randomBytes(16).toString('hex'),
      RAFTLET_KUBERNETES: '0',
    };
  }

  const CASES: readonly { readonly name: string; readonly setting: string; readonly env?: Record<string, string | undefined>; readonly args?: string[] }[] = [
    { name: 'heartbeat not below the election timeout', setting: 'RAFTLET_HEARTBEAT_MS', env: { RAFTLET_HEARTBEAT_MS: '500', RAFTLET_ELECTION_TIMEOUT_MS: '300' } },
    { name: 'no cluster token', setting: 'RAFTLET_CLUSTER_TOKEN', env: { RAFTLET_CLUSTER_TOKEN: undefined } },
    { name: 'a short cluster token', setting: 'RAFTLET_CLUSTER_TOKEN', env: { RAFTLET_CLUSTER_TOKEN: 'short' } },
    { name: 'peers without this node', setting: 'RAFTLET_PEERS', env: { RAFTLET_PEERS: 'node-2=http://127.0.0.1:1,node-3=http://127.0.0.1:2' } },
    { name: 'a port out of range', setting: 'RAFTLET_API_LISTEN', env: { RAFTLET_API_LISTEN: '127.0.0.1:99999' } },
    { name: 'a negative value limit', setting: 'RAFTLET_MAX_VALUE_BYTES', env: { RAFTLET_MAX_VALUE_BYTES: '-1' } },
    { name: 'an unknown log level', setting: 'RAFTLET_LOG_LEVEL', env: { RAFTLET_LOG_LEVEL: 'loud' } },
    { name: 'a bad flag value (flags win over the environment)', setting: '--election-timeout-ms', args: ['--election-timeout-ms=soon'] },
    { name: 'an unknown flag', setting: '--heartbeat', args: ['--heartbeat=50'] },
  ];

  test('exit 2 with one line naming the setting, and no data directory', async () => {
    await Promise.all(CASES.map(async (item, i) => {
      const dataDir = path.join(scratch, `case-${i}`, 'data');
      const env: Record<string, string> = goodEnv(dataDir);
      for (const [name, value] of Object.entries(item.env ?? {})) {
        if (value === undefined) delete env[name];
        else env[name] = value;
      }
      const result = await runRaftlet(['run', ...(item.args ?? [])], { env });
      const what = `${item.name}: stderr ${JSON.stringify(result.stderr)}`;
      assert.equal(result.code, 2, what);
      const lines = result.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, `one line: ${what}`);
      assert.ok(lines[0].includes(item.setting), `names ${item.setting}: ${what}`);
      assert.equal(existsSync(path.dirname(dataDir)) && existsSync(dataDir), false, `no data directory: ${what}`);
    }));
  });

  test('a port that is already in use: exit 2 with one line naming the setting', async () => {
    const dataDir = path.join(scratch, 'busy', 'data');
    const result = await withBusyPort(ports[1], () => runRaftlet(['run'], { env: goodEnv(dataDir) }));
    assert.equal(result.code, 2, result.stderr);
    const lines = result.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0], /RAFTLET_API_LISTEN/);
    assert.match(lines[0], new RegExp(`${ports[1]}`));
  });

  test('a port that is already in use is found before the data directory is created', async () => {
    const dataDir = path.join(scratch, 'busy-dir', 'data');
    const result = await withBusyPort(ports[2], () => runRaftlet(['run'], { env: goodEnv(dataDir) }));
    assert.equal(result.code, 2, result.stderr);
    assert.equal(existsSync(dataDir), false, `SPEC §2: exit 2 before anything is started, yet ${dataDir} exists`);
  });
});

describe('raftlet run with an unusable data directory', () => {
  test('exit 3 with a message naming the directory', async () => {
    const scratch = await mkdtemp(path.join(tmpdir(), 'raftlet-bb-datadir-'));
    const ports = await reservePorts(3);
    try {
      // A path below a regular file can never become a directory (root ignores permissions).
      const file = path.join(scratch, 'a-file');
      writeFileSync(file, 'not a directory');
      const dataDir = path.join(file, 'data');
      const [peer, api, metrics] = ports;
      const result = await runRaftlet(['run'], {
        env: {
          ...baseEnv(),
          RAFTLET_NODE_ID: 'node-1',
          RAFTLET_PEERS: `node-1=http://127.0.0.1:${peer}`,
          RAFTLET_PEER_LISTEN: `127.0.0.1:${peer}`,
          RAFTLET_API_LISTEN: `127.0.0.1:${api}`,
          RAFTLET_METRICS_LISTEN: `127.0.0.1:${metrics}`,
          RAFTLET_DATA_DIR: dataDir,
          RAFTLET_CLUSTER_TOKEN: randomBytes(16).toString('hex'),
          RAFTLET_KUBERNETES: '0',
        },
      });
      assert.equal(result.code, 3, result.stderr);
      assert.ok(result.stderr.includes(dataDir), `names the directory: ${result.stderr}`);
    } finally {
      releasePorts(ports);
      await rm(scratch, { recursive: true, force: true });
    }
  });
});

async function withBusyPort<T>(port: number, body: () => Promise<T>): Promise<T> {
  const busy: Server = createServer();
  await new Promise<void>((resolve) => busy.listen(port, '127.0.0.1', resolve));
  try {
    return await body();
  } finally {
    await new Promise<void>((resolve) => busy.close(() => resolve()));
  }
}
