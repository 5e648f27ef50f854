// Wire version 2: a heartbeat answer carries the follower's application health in one byte after
// lastLogIndex (0 unchecked, 1 healthy, 2 unhealthy), so the leader can prefer healthy members.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeMessage, decodeMessages, encodeMessage, encodeMessages, WIRE_VERSION } from '../../src/transport/codec.ts';
import type { HeartbeatResponse } from '../../src/raft/types.ts';
import { WireError } from '../../src/transport/wire.ts';

const base: HeartbeatResponse = { kind: 'heartbeatResponse', from: 'a', to: 'b', term: 3, seq: 7, lastLogIndex: 9 };

test('heartbeat answers carry the application health; unchecked is the absent field', () => {
  assert.equal(WIRE_VERSION, 2);
  for (const appHealth of ['healthy', 'unhealthy'] as const) {
    assert.deepEqual(decodeMessages(encodeMessages([{ ...base, appHealth }])), [{ ...base, appHealth }]);
  }
  assert.deepEqual(decodeMessage(encodeMessage(base)), base);
  assert.deepEqual(decodeMessage(encodeMessage({ ...base, appHealth: 'unchecked' })), base);
  const encoded = encodeMessage({ ...base, appHealth: 'unhealthy' });
  assert.equal(encoded.at(-1), 2, 'one byte after lastLogIndex');
});

test('an unknown health code is refused, naming the field', () => {
  const bytes = encodeMessage({ ...base, appHealth: 'healthy' });
  bytes[bytes.byteLength - 1] = 3;
  assert.throws(() => decodeMessage(bytes), (error: unknown) => error instanceof WireError && /appHealth/.test(error.message));
  assert.throws(() => encodeMessage({ ...base, appHealth: 'sick' as unknown as 'healthy' }), WireError);
});
