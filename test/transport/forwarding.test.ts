import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { NodeStatus } from '../../src/api/ops.ts';
import type { KvCommand, KvResult } from '../../src/kv/types.ts';
import {
  decodeError,
  decodeKvResult,
  decodeProposeRequest,
  decodeReadIndexRequest,
  decodeStatus,
  decodeTransferRequest,
  decodeTransferResult,
  encodeError,
  encodeKvResult,
  encodeProposeRequest,
  encodeStatus,
  encodeTransferRequest,
  encodeTransferResult,
} from '../../src/transport/forwarding.ts';
import { WireError } from '../../src/transport/wire.ts';
import { id, members, uint } from './arbitraries.ts';

const key = (): fc.Arbitrary<string> => fc.string({ unit: 'binary', minLength: 1, maxLength: 100 });
const optional = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(arb, { nil: undefined });

function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

const command = (): fc.Arbitrary<KvCommand> =>
  fc.oneof(
    fc
      .record({ key: key(), value: fc.uint8Array({ maxLength: 100 }), ifMatch: optional(uint()), ifNoneMatch: optional(fc.boolean()) })
      .map((c): KvCommand => withoutUndefined({ op: 'put', ...c })),
    fc.record({ key: key(), ifMatch: optional(uint()) }).map((c): KvCommand => withoutUndefined({ op: 'del', ...c })),
  );

const kvResult = (): fc.Arbitrary<KvResult> =>
  fc.oneof(
    fc.record({ index: uint(), term: uint(), deleted: optional(fc.boolean()) }).map((r): KvResult => withoutUndefined({ ok: true, ...r })),
    fc
      .record({ index: uint(), term: uint(), message: fc.string({ maxLength: 50 }) })
      .map((r): KvResult => ({ ok: false, code: 'precondition_failed', ...r })),
  );

const status = (): fc.Arbitrary<NodeStatus> =>
  fc
    .record({
      id: id(),
      role: fc.constantFrom('leader' as const, 'follower' as const, 'candidate' as const),
      term: uint(),
      leader: fc.option(id(), { nil: null }),
      commitIndex: uint(),
      appliedIndex: uint(),
      lastLogIndex: uint(),
      members: members(),
    })
    .map((s) => ({ ...s }));

function onlyWireErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (error) {
    if (!(error instanceof WireError)) throw error;
  }
}

function expectWireError(fn: () => unknown, field: string, problem?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof WireError, `expected a WireError, got ${String(error)}`);
    assert.equal(error.field, field);
    if (problem !== undefined) assert.match(error.message, problem);
    return true;
  });
}

describe('forwarding bodies: round trip', () => {
  test('propose requests', () => {
    fc.assert(
      fc.property(command(), fc.integer({ min: 1, max: 60_000 }), (cmd, timeoutMs) => {
        const decoded = decodeProposeRequest(JSON.parse(encodeProposeRequest({ command: cmd, timeoutMs })), 60_000);
        assert.deepEqual(decoded, { command: cmd, timeoutMs });
      }),
    );
  });

  test('results, statuses, transfers, errors', () => {
    fc.assert(fc.property(kvResult(), (r) => assert.deepEqual(decodeKvResult(JSON.parse(encodeKvResult(r))), r)));
    fc.assert(fc.property(status(), (s) => assert.deepEqual(decodeStatus(JSON.parse(encodeStatus(s))), s)));
    fc.assert(
      fc.property(fc.option(id(), { nil: null }), fc.integer({ min: 1, max: 60_000 }), (to, timeoutMs) => {
        assert.deepEqual(decodeTransferRequest(JSON.parse(encodeTransferRequest({ to, timeoutMs })), 60_000), { to, timeoutMs });
      }),
    );
    fc.assert(fc.property(id(), uint(), (leader, term) => assert.deepEqual(decodeTransferResult(JSON.parse(encodeTransferResult({ leader, term }))), { leader, term })));
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 20 }), fc.string({ maxLength: 100 }), (code, message) => {
        assert.deepEqual(decodeError(JSON.parse(encodeError(code, message))), { code, message });
      }),
    );
  });

  test('an error message with a lone surrogate or of any length still decodes', () => {
    assert.equal(decodeError(JSON.parse(encodeError('timeout', 'bad \ud800 text'))).message, 'bad \ufffd text');
    assert.equal(decodeError(JSON.parse(encodeError('timeout', '\u2603'.repeat(10_000)))).message.length, 4096);
  });
});

describe('forwarding bodies: hostile input', () => {
  test('arbitrary JSON never makes a decoder throw anything but WireError', () => {
    const decoders: ((value: unknown) => unknown)[] = [
      (v) => decodeProposeRequest(v, 60_000),
      decodeKvResult,
      decodeStatus,
      (v) => decodeTransferRequest(v, 60_000),
      (v) => decodeReadIndexRequest(v, 60_000),
      decodeTransferResult,
      decodeError,
    ];
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        for (const decode of decoders) onlyWireErrors(() => decode(value));
      }),
      { numRuns: 500 },
    );
  });

  test('mutated valid propose bodies decode to a valid command or fail with a WireError', () => {
    fc.assert(
      fc.property(command(), fc.string({ maxLength: 12 }), fc.jsonValue(), (cmd, field, value) => {
        const body = JSON.parse(encodeProposeRequest({ command: cmd, timeoutMs: 1000 })) as { command: Record<string, unknown> };
        body.command[field] = value;
        onlyWireErrors(() => {
          const decoded = decodeProposeRequest(body, 60_000);
          // What decodes must encode again: no half-valid command gets through.
          encodeProposeRequest(decoded);
        });
      }),
      { numRuns: 500 },
    );
  });

  test('strict fields, each named', () => {
    const good = { command: { op: 'put', key: 'k', value: 'AQI=' }, timeoutMs: 100 };
    assert.deepEqual(decodeProposeRequest(good, 1000).command, { op: 'put', key: 'k', value: new Uint8Array([1, 2]) });
    expectWireError(() => decodeProposeRequest({ ...good, extra: 1 }, 1000), 'propose.extra', /unknown field/);
    expectWireError(() => decodeProposeRequest({ command: good.command }, 1000), 'propose.timeoutMs', /missing/);
    expectWireError(() => decodeProposeRequest({ ...good, timeoutMs: 0 }, 1000), 'propose.timeoutMs', /1 to 1000/);
    expectWireError(() => decodeProposeRequest({ ...good, timeoutMs: 1001 }, 1000), 'propose.timeoutMs');
    expectWireError(() => decodeProposeRequest({ ...good, timeoutMs: '5' }, 1000), 'propose.timeoutMs', /non-negative safe integer/);
    expectWireError(() => decodeProposeRequest({ ...good, command: { ...good.command, value: 'A?==' } }, 1000), 'propose.command.value', /base64/);
    expectWireError(() => decodeProposeRequest({ ...good, command: { ...good.command, key: '' } }, 1000), 'propose.command.key', /shorter/);
    expectWireError(() => decodeProposeRequest({ ...good, command: { ...good.command, key: 'k'.repeat(513) } }, 1000), 'propose.command.key', /512/);
    expectWireError(() => decodeProposeRequest({ ...good, command: { ...good.command, op: 'cas' } }, 1000), 'propose.command.op', /"put" or "del"/);
    expectWireError(() => decodeProposeRequest({ ...good, command: { op: 'del', key: 'k', value: 'AQI=' } }, 1000), 'propose.command.value', /unknown field/);
    expectWireError(() => decodeProposeRequest({ ...good, command: { ...good.command, ifMatch: -1 } }, 1000), 'propose.command.ifMatch');
    const fullStatus = { id: 'a', role: 'leader', term: 1, leader: 'a', commitIndex: 1, appliedIndex: 1, lastLogIndex: 1, members: [] };
    expectWireError(() => decodeStatus({ ...fullStatus, role: 'precandidate' }), 'status.role', /"leader", "follower" or "candidate"/);
    expectWireError(() => decodeStatus({ ...fullStatus, members: [{ id: 'b', url: 'u', voter: 1 }] }), 'status.members[0].voter', /boolean/);
    expectWireError(() => decodeKvResult({ ok: false, code: 'nope', index: 1, term: 1, message: '' }), 'result.code');
  });
});
