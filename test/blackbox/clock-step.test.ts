// The wall clock steps (an NTP or chrony correction at boot, a VM resumed, an operator's `date
// -s`); request deadlines must not. node-1 of a 3-member cluster runs under libfaketime, whose
// offset for CLOCK_REALTIME (Date.now) is read from a file the test rewrites, while the monotonic
// clock (performance.now, timers) stays real. Writes and linearizable reads through node-1 go on
// across a step of an hour back and an hour forward; and a write that waits for a quorum that is
// gone is answered once its RAFTLET_REQUEST_TIMEOUT_MS has passed even when the clock steps an hour
// back while it waits, instead of waiting for the wall clock to catch up with its deadline.
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { clusterHooks, waitUntil, type Cluster } from '../support/cluster.ts';

const REQUEST_TIMEOUT_MS = 2_000;
const HOUR_S = 3600;

/** libfaketime's preload library (Debian's libfaketime package; the pretest installs it). */
function libfaketime(): string {
  const found = ['x86_64-linux-gnu', 'aarch64-linux-gnu', '']
    .map((arch) => path.join('/usr/lib', arch, 'faketime', 'libfaketime.so.1'))
    .find((file) => existsSync(file));
  if (found === undefined) throw new Error('libfaketime.so.1 not found: apt-get install -y faketime');
  return found;
}

describe('a wall clock that steps', () => {
  const clusters = clusterHooks();

  test('moves no request deadline: writes and reads go on, and a write without a quorum is answered in time', async () => {
    let offsetFile = '';
    const c: Cluster = await clusters.start({
      nodes: 3, name: 'clockstep', requestTimeoutMs: REQUEST_TIMEOUT_MS,
      nodeEnv: (n, dir): Record<string, string> => {
        if (n !== 1) return {};
        offsetFile = path.join(dir, 'faketime-offset');
        writeFileSync(offsetFile, '+0\n');
        return {
          LD_PRELOAD: libfaketime(),
          FAKETIME_TIMESTAMP_FILE: offsetFile,
          // Read the offset at every call, and leave CLOCK_MONOTONIC alone: only the wall clock steps.
          FAKETIME_NO_CACHE: '1',
          FAKETIME_DONT_FAKE_MONOTONIC: '1',
        };
      },
    });
    const stepTo = (offsetS: number): void => writeFileSync(offsetFile, `${offsetS >= 0 ? '+' : ''}${offsetS}\n`);
    const leader = await c.waitForLeader();
    // node-1 leads: its own proposals and read rounds are then timed by its own clock.
    if (leader.node !== 1) {
      const moved = await c.request(leader.node, 'POST', '/v1/leader/transfer', { body: JSON.stringify({ to: 'node-1' }), headers: { 'content-type': 'application/json' } });
      assert.equal(moved.status, 200, moved.text);
    }
    await waitUntil('node-1 to lead', async () => (await c.status(1)).role === 'leader');
    await c.putOk(1, 'k', 'before');

    for (const [offset, label] of [[-HOUR_S, 'an hour back'], [HOUR_S, 'an hour forward'], [0, 'back to true time']] as const) {
      stepTo(offset);
      for (let i = 0; i < 5; i++) {
        for (const node of [1, 2]) await c.putOk(node, 'k', `${label} ${i} through node ${node}`);
        assert.equal(await c.getText(1, 'k'), `${label} ${i} through node 2`, `linearizable read on node-1 with its clock ${label}`);
      }
    }

    // No quorum: node-1 alone can neither commit nor elect. Its clock steps an hour back while the
    // write waits; the answer must still come about REQUEST_TIMEOUT_MS after the request. The
    // client's own bound (30 s) only catches a hang: before the deadlines ran on a clock that never
    // steps, this write waited for the wall clock to reach its deadline again, an hour later.
    await Promise.all([c.kill9(2), c.kill9(3)]);
    const pending = c.put(1, 'k', 'without a quorum', { timeoutMs: 30_000 });
    await delay(REQUEST_TIMEOUT_MS / 4);
    stepTo(-HOUR_S);
    const answer = await pending;
    assert.ok(
      (answer.status === 503 && answer.errorCode === 'no_leader') || (answer.status === 504 && answer.errorCode === 'timeout'),
      `PUT without a quorum, the clock stepped back meanwhile: ${answer.status} ${answer.text}`,
    );
    const read = await c.get(1, 'k', { timeoutMs: 30_000 });
    assert.ok(read.status === 503 || read.status === 504, `linearizable GET without a quorum: ${read.status} ${read.text}`);
  });
});
