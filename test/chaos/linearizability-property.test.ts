// Property tests of the checker: histories produced by running the sequential specification, with
// each operation's interval drawn around its linearization point, are always linearizable; and
// one read made stale (it shows a value that a completed write had already replaced before the
// read began) makes them non-linearizable.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { checkKey, FIRST_WRITE_INDEX, unseenIfMatch, type KvInput, type KvOp, type KvOutput, type Outcome } from './kv-model.ts';

type Kind = 'get' | 'put' | 'cas' | 'create' | 'del' | 'casDel';
type Fate = 'ok' | 'applied-unknown' | 'dropped-unknown' | 'failed';

interface Step {
  readonly kind: Kind;
  /** CAS: aim at the current modIndex (true) or a wrong one. */
  readonly hit: boolean;
  /** How far the interval reaches before and after the linearization point. */
  readonly before: number;
  readonly after: number;
  readonly fate: Fate;
}

const stepArb: fc.Arbitrary<Step> = fc.record({
  kind: fc.constantFrom<Kind>('get', 'get', 'get', 'put', 'put', 'cas', 'create', 'del', 'casDel'),
  hit: fc.boolean(),
  before: fc.integer({ min: 0, max: 35 }),
  after: fc.integer({ min: 0, max: 35 }),
  fate: fc.constantFrom<Fate>('ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'applied-unknown', 'dropped-unknown', 'failed'),
});

const SPACING = 10;

/** Runs the steps against a sequential register; linearization point i is at i * SPACING. */
function simulate(steps: readonly Step[]): KvOp[] {
  let current: { value: string; modIndex: number } | null = null;
  // Entry 1 is the bootstrap configuration, as in raftlet.
  let logIndex = FIRST_WRITE_INDEX - 1;
  const ops: KvOp[] = [];
  // Like the real workload, clients only send an If-Match they have seen, or one that cannot match.
  const seen: number[] = [];
  steps.forEach((step, i) => {
    const point = i * SPACING;
    const applied = step.fate === 'ok' || step.fate === 'applied-unknown';
    const older = seen.filter((index) => index !== current?.modIndex);
    const wrongIndex = older.length > 0 ? older[(i * 7) % older.length] : 0;
    const target = step.hit && current !== null && seen.includes(current.modIndex) ? current.modIndex : wrongIndex;
    let input: KvInput;
    let output: KvOutput | null = null;
    switch (step.kind) {
      case 'get':
        input = { kind: 'get' };
        output = current === null ? { kind: 'absent' } : { kind: 'found', value: current.value, modIndex: current.modIndex };
        break;
      case 'put':
      case 'cas':
      case 'create': {
        const value = `v${i}`;
        input = step.kind === 'put' ? { kind: 'put', value } : step.kind === 'cas' ? { kind: 'put', value, ifMatch: target } : { kind: 'put', value, ifNoneMatch: true };
        const holds = step.kind === 'put' || (step.kind === 'cas' ? current !== null && current.modIndex === target : current === null);
        if (applied) {
          logIndex++;
          if (holds) current = { value, modIndex: logIndex };
        }
        output = holds ? { kind: 'written', index: logIndex } : { kind: 'precondition_failed' };
        break;
      }
      case 'del':
      case 'casDel': {
        input = step.kind === 'del' ? { kind: 'del' } : { kind: 'del', ifMatch: target };
        const holds = step.kind === 'del' || (current !== null && current.modIndex === target);
        const wasPresent = current !== null;
        if (applied) {
          logIndex++;
          if (holds) current = null;
        }
        output = holds ? { kind: 'deleted', deleted: wasPresent, index: logIndex } : { kind: 'precondition_failed' };
        break;
      }
      default: {
        const never: never = step.kind;
        throw new Error(`unknown kind ${String(never)}`);
      }
    }
    const outcome: Outcome = step.fate === 'ok' ? 'ok' : step.fate === 'failed' ? 'failed' : 'unknown';
    if (outcome === 'ok' && output !== null) {
      if (output.kind === 'written' || output.kind === 'deleted') seen.push(output.index);
      if (output.kind === 'found') seen.push(output.modIndex);
    }
    ops.push({
      id: i,
      key: 'k',
      client: `c${i % 4}`,
      node: 'n1',
      input,
      call: point - step.before,
      ret: outcome === 'ok' ? point + step.after : Infinity,
      outcome,
      output: outcome === 'ok' ? output : null,
    });
  });
  return ops;
}

/** A completed read R, a completed write `replacer` that changed the state and returned before R
 * began, and a completed put `old` that returned before `replacer` began: R cannot see `old`. */
function staleReadCandidates(ops: readonly KvOp[]): { read: KvOp; old: KvOp & { output: { kind: 'written' } } }[] {
  const changed = (op: KvOp): boolean =>
    op.outcome === 'ok' && (op.output?.kind === 'written' || (op.output?.kind === 'deleted' && op.output.deleted));
  const candidates: { read: KvOp; old: KvOp & { output: { kind: 'written' } } }[] = [];
  for (const read of ops) {
    if (read.input.kind !== 'get' || read.outcome !== 'ok') continue;
    for (const replacer of ops) {
      if (!changed(replacer) || !(replacer.ret < read.call)) continue;
      for (const old of ops) {
        if (old.input.kind === 'put' && old.output?.kind === 'written' && old.outcome === 'ok' && old.ret < replacer.call && old !== replacer) {
          candidates.push({ read, old: old as KvOp & { output: { kind: 'written' } } });
        }
      }
    }
  }
  return candidates;
}

describe('checker properties', () => {
  it('a history produced by the sequential specification is linearizable', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 40 }), (steps) => {
        const verdict = checkKey(simulate(steps));
        assert.equal(verdict.verdict, 'ok', JSON.stringify({ verdict, ops: simulate(steps) }));
      }),
      { numRuns: 400 },
    );
  });

  it('one stale read makes it non-linearizable', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 3, maxLength: 40 }), fc.nat(), (steps, pick) => {
        const ops = simulate(steps);
        const candidates = staleReadCandidates(ops);
        fc.pre(candidates.length > 0);
        const { read, old } = candidates[pick % candidates.length];
        const corrupted = ops.map((op) =>
          op.id === read.id ? { ...op, output: { kind: 'found', value: (old.input as { value: string }).value, modIndex: old.output.index } as const } : op);
        // The read replaced may have been where a client learnt the index it later sent.
        fc.pre(unseenIfMatch(corrupted) === null);
        const verdict = checkKey(corrupted);
        assert.equal(verdict.verdict, 'illegal', JSON.stringify({ read: read.id, old: old.id, ops: corrupted }));
      }),
      { numRuns: 400 },
    );
  });

  it('a read of a value nobody wrote makes it non-linearizable', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 40 }), fc.nat(), (steps, pick) => {
        const ops = simulate(steps);
        const reads = ops.filter((op) => op.input.kind === 'get' && op.outcome === 'ok');
        fc.pre(reads.length > 0);
        const read = reads[pick % reads.length];
        const corrupted = ops.map((op) => (op.id === read.id ? { ...op, output: { kind: 'found', value: 'never-written', modIndex: 1 } as const } : op));
        fc.pre(unseenIfMatch(corrupted) === null);
        assert.equal(checkKey(corrupted).verdict, 'illegal');
      }),
      { numRuns: 200 },
    );
  });
});

// ---- against a brute-force checker on tiny random histories ----------------------------------------

/** Every subset of the unknown-outcome writes, every order of those and the completed operations
 * that respects real time, run through a register written out plainly. */
function bruteForceLinearizable(ops: readonly KvOp[]): boolean {
  const completed = ops.filter((op) => op.outcome === 'ok');
  const unknownWrites = ops.filter((op) => op.outcome === 'unknown' && op.input.kind !== 'get');
  // The index a write gives the key: its answer's; for a lost answer, what a read of its value
  // showed; else one nobody has seen.
  const indexOf = new Map<number, number>();
  for (const op of ops) if (op.output?.kind === 'written') indexOf.set(op.id, op.output.index);
  for (const op of [...ops].sort((a, b) => a.call - b.call)) {
    if (op.output?.kind !== 'found') continue;
    const value = op.output.value;
    const writer = ops.find((w) => w.input.kind === 'put' && w.input.value === value);
    if (writer !== undefined && !indexOf.has(writer.id)) indexOf.set(writer.id, op.output.modIndex);
  }
  const legal = (order: readonly KvOp[]): boolean => {
    let current: { value: string; index: number } | null = null;
    for (const op of order) {
      const input = op.input;
      const out = op.outcome === 'ok' ? op.output : null;
      if (input.kind === 'get') {
        if (out?.kind === 'absent' && current !== null) return false;
        if (out?.kind === 'found' && (current === null || current.value !== out.value || current.index !== out.modIndex)) return false;
        continue;
      }
      const holds = input.ifMatch !== undefined ? current !== null && current.index === input.ifMatch
        : input.kind === 'put' && input.ifNoneMatch === true ? current === null : true;
      if (out?.kind === 'precondition_failed') {
        if (holds) return false;
        continue;
      }
      if (!holds) {
        if (out !== null) return false;
        continue;
      }
      if (out?.kind === 'deleted' && out.deleted !== (current !== null)) return false;
      current = input.kind === 'put' ? { value: input.value, index: indexOf.get(op.id) ?? -1000 - op.id } : null;
    }
    return true;
  };
  const before = (a: KvOp, b: KvOp): boolean => a.outcome === 'ok' && a.ret < b.call;
  const search = (placed: KvOp[], rest: KvOp[]): boolean => {
    if (rest.length === 0) return legal(placed);
    for (const op of rest) {
      if (rest.some((other) => other !== op && before(other, op))) continue;
      if (search([...placed, op], rest.filter((o) => o !== op))) return true;
    }
    return false;
  };
  for (let mask = 0; mask < 1 << unknownWrites.length; mask++) {
    const chosen = unknownWrites.filter((_, i) => (mask & (1 << i)) !== 0);
    if (search([], [...completed, ...chosen])) return true;
  }
  return false;
}

const tinyOp = fc.record({
  kind: fc.constantFrom('get', 'put', 'cas', 'create', 'del', 'casDel'),
  value: fc.constantFrom('a', 'b', 'c'),
  index: fc.integer({ min: 2, max: 5 }),
  found: fc.boolean(),
  deleted: fc.boolean(),
  failedCondition: fc.boolean(),
  call: fc.integer({ min: 0, max: 40 }),
  length: fc.integer({ min: 0, max: 25 }),
  outcome: fc.constantFrom<Outcome>('ok', 'ok', 'ok', 'unknown', 'failed'),
});

type TinySpec = typeof tinyOp extends fc.Arbitrary<infer T> ? T : never;

function tinyHistory(specs: readonly TinySpec[]): KvOp[] {
  // Each put writes its own value (values are unique in real histories); reads pick from them.
  const written: string[] = [];
  return specs.map((spec, id) => {
    let input: KvInput;
    let output: KvOutput;
    const value = `${spec.value}${id}`;
    switch (spec.kind) {
      case 'get':
        input = { kind: 'get' };
        output = spec.found && written.length > 0 ? { kind: 'found', value: written[spec.index % written.length], modIndex: spec.index } : { kind: 'absent' };
        break;
      case 'put':
      case 'cas':
      case 'create':
        written.push(value);
        input = spec.kind === 'put' ? { kind: 'put', value } : spec.kind === 'cas' ? { kind: 'put', value, ifMatch: spec.index } : { kind: 'put', value, ifNoneMatch: true };
        output = spec.kind !== 'put' && spec.failedCondition ? { kind: 'precondition_failed' } : { kind: 'written', index: spec.index };
        break;
      default:
        input = spec.kind === 'del' ? { kind: 'del' } : { kind: 'del', ifMatch: spec.index };
        output = spec.kind === 'casDel' && spec.failedCondition ? { kind: 'precondition_failed' } : { kind: 'deleted', deleted: spec.deleted, index: spec.index };
    }
    const op: KvOp = {
      id,
      key: 'k',
      client: `c${id}`,
      node: 'n1',
      input,
      call: spec.call,
      ret: spec.outcome === 'ok' ? spec.call + spec.length : Infinity,
      outcome: spec.outcome,
      output: spec.outcome === 'ok' ? output : null,
    };
    return op;
  });
}

describe('checker against brute force', () => {
  it('agrees on every tiny random history, linearizable or not', () => {
    let illegal = 0;
    let legal = 0;
    fc.assert(
      fc.property(fc.array(tinyOp, { minLength: 1, maxLength: 6 }), (specs) => {
        const ops = tinyHistory(specs);
        fc.pre(unseenIfMatch(ops) === null);
        // Indexes are unique per write in raftlet; histories breaking that are not meaningful.
        const answered = ops.flatMap((op) => (op.output?.kind === 'written' || op.output?.kind === 'deleted' ? [op.output.index] : []));
        fc.pre(new Set(answered).size === answered.length);
        const expected = bruteForceLinearizable(ops);
        const verdict = checkKey(ops).verdict;
        if (expected) legal++;
        else illegal++;
        assert.equal(verdict, expected ? 'ok' : 'illegal', JSON.stringify(ops));
      }),
      { numRuns: 3000 },
    );
    // Both answers must have been exercised, or the comparison proves little.
    assert.ok(legal > 300 && illegal > 300, `legal ${legal}, illegal ${illegal}`);
  });
});
