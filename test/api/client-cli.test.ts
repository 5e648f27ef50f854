import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runClientCommand, type ClientIo } from '../../src/api/client-cli.ts';
import { withFakeApi as withApi } from './harness.ts';

interface Captured {
  readonly io: ClientIo;
  stdout(): Buffer;
  stderr(): string;
}

function capture(env: Record<string, string | undefined> = {}, isTTY = false): Captured {
  const out: Buffer[] = [];
  const err: string[] = [];
  return {
    io: {
      stdout: { write: (chunk: string | Uint8Array) => out.push(Buffer.from(chunk)), isTTY },
      stderr: { write: (chunk: string) => err.push(chunk) },
      env,
    },
    stdout: () => Buffer.concat(out),
    stderr: () => err.join(''),
  };
}


async function run(args: string[], env: Record<string, string | undefined> = {}, isTTY = false): Promise<{ code: number; stdout: string; stderr: string; raw: Buffer }> {
  const captured = capture(env, isTTY);
  const code = await runClientCommand(args, captured.io);
  return { code, stdout: captured.stdout().toString('utf8'), stderr: captured.stderr(), raw: captured.stdout() };
}

test('status prints the node status as JSON', () =>
  withApi(async (api) => {
    const result = await run(['status', '--api', api.base]);
    assert.equal(result.code, 0, result.stderr);
    const status = JSON.parse(result.stdout) as { id: string; role: string; members: unknown[] };
    assert.equal(status.id, 'n1');
    assert.equal(status.role, 'leader');
    assert.equal(status.members.length, 3);
    assert.equal(result.stderr, '');
  }));

test('put, get and del round trip through the API', () =>
  withApi(async (api, ops) => {
    const put = await run(['put', 'app/greeting', 'hello world', `--api=${api.base}`]);
    assert.equal(put.code, 0, put.stderr);
    assert.deepEqual(JSON.parse(put.stdout), { index: 1, term: 3 });
    assert.equal(ops.proposals[0].cmd.key, 'app/greeting', 'the key travels URL-encoded and arrives intact');

    const get = await run(['get', 'app/greeting', '--api', api.base]);
    assert.equal(get.code, 0, get.stderr);
    assert.equal(get.stdout, 'hello world', 'a pipe gets the exact bytes');
    assert.equal(ops.readBarriers.length, 1);
    assert.equal((await run(['get', 'app/greeting', '--api', api.base], {}, true)).stdout, 'hello world\n', 'a terminal gets a newline');
    assert.equal((await run(['get', '--stale', 'app/greeting', '--api', api.base])).stdout, 'hello world');
    assert.equal(ops.readBarriers.length, 2, '--stale skips the read barrier');

    const del = await run(['del', 'app/greeting', '--api', api.base]);
    assert.equal(del.code, 0, del.stderr);
    assert.deepEqual(JSON.parse(del.stdout), { index: 2, term: 3, deleted: true });
  }));

test('a failed request exits 1 and prints the server error', () =>
  withApi(async (api) => {
    const missing = await run(['get', 'nothing', '--api', api.base]);
    assert.equal(missing.code, 1);
    assert.equal(missing.stdout, '');
    assert.equal(missing.stderr, 'raftlet get: not_found: key "nothing" does not exist\n');

    assert.equal((await run(['put', 'k', 'v1', '--if-none-match', '--api', api.base])).code, 0);
    const exists = await run(['put', 'k', 'v2', '--if-none-match', '--api', api.base]);
    assert.equal(exists.code, 1);
    assert.match(exists.stderr, /^raftlet put: precondition_failed: If-None-Match \* failed/);
    const stale = await run(['del', 'k', '--if-match', '"7"', '--api', api.base]);
    assert.equal(stale.code, 1);
    assert.match(stale.stderr, /^raftlet del: precondition_failed: If-Match 7 failed: its modIndex is 1/);
    assert.equal((await run(['put', 'k', 'v3', '--if-match', '1', '--api', api.base])).code, 0);
  }));

test('RAFTLET_API_URL is used when --api is absent; --api wins over it', () =>
  withApi(async (api) => {
    assert.equal((await run(['status'], { RAFTLET_API_URL: api.base })).code, 0);
    const refused = await run(['status', '--api', 'http://127.0.0.1:1'], { RAFTLET_API_URL: api.base });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^raftlet status: request to http:\/\/127\.0\.0\.1:1 failed: .*ECONNREFUSED.*is raftlet running there\?/);
  }));

test('bad usage exits 2 and names what is wrong', async () => {
  const cases: Array<[string[], RegExp]> = [
    [[], /^usage: raftlet status/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['get'], /get needs KEY/],
    [['put', 'k'], /put needs KEY VALUE/],
    [['del', 'a', 'b'], /extra argument "b"/],
    [['status', 'x'], /extra argument "x"/],
    [['get', ''], /bad KEY: key must not be empty/],
    [['get', 'a\nb'], /bad KEY: key must not contain control characters/],
    [['put', 'x'.repeat(513), 'v'], /bad KEY: key is 513 bytes/],
    [['status', '--api'], /--api needs a value/],
    [['status', '--api', 'not a url'], /--api must be a URL/],
    [['status', '--api', 'ftp://127.0.0.1'], /--api must be an http/],
    [['get', 'k', '--bogus'], /unknown option --bogus/],
    [['put', 'k', 'v', '--stale'], /--stale only applies to get/],
    [['get', 'k', '--if-match', '3'], /--if-match only applies to put and del/],
    [['del', 'k', '--if-none-match'], /--if-none-match only applies to put/],
    [['put', 'k', 'v', '--if-match', 'x'], /--if-match needs a modIndex/],
    [['put', 'k', 'v', '--if-match', '0'], /--if-match needs a modIndex/],
    [['put', 'k', 'v', '--if-match', '2', '--if-none-match'], /cannot be combined/],
    [['status', '--api', 'http://a', '--api', 'http://b'], /--api is given twice/],
    [['put', 'k', '-5'], /unknown option -5/],
  ];
  for (const [args, message] of cases) {
    const result = await run(args);
    assert.equal(result.code, 2, `${JSON.stringify(args)} exits 2`);
    assert.match(result.stderr, message, JSON.stringify(args));
    assert.match(result.stderr, /usage: raftlet/);
  }
  const help = await run(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^usage: raftlet status/);
});

test('-- lets a VALUE start with a dash', () =>
  withApi(async (api, ops) => {
    const result = await run(['put', '--api', api.base, '--', 'k', '-5']);
    assert.equal(result.code, 0, result.stderr);
    const proposed = ops.proposals[0].cmd;
    assert.ok(proposed.op === 'put');
    assert.equal(Buffer.from(proposed.value).toString(), '-5');
  }));
