// raftlet's key-value API as a sequential specification, one register per key (SPEC §4):
// GET answers the value and its modIndex (ETag); PUT, compare-and-set (If-Match: modIndex),
// create-only (If-None-Match: *) and DELETE (optionally If-Match) change it. A successful write's
// modIndex is the log index its answer carries, and every value the workload writes is unique,
// so the register's state is simply "which write is current" (or "absent").
import { checkLinearizable, type CheckOptions, type CheckResult, type Model, type Operation } from './linearizability.ts';

export type KvInput =
  | { readonly kind: 'get' }
  | { readonly kind: 'put'; readonly value: string; readonly ifMatch?: number; readonly ifNoneMatch?: boolean }
  | { readonly kind: 'del'; readonly ifMatch?: number };

export type KvOutput =
  | { readonly kind: 'found'; readonly value: string; readonly modIndex: number }
  | { readonly kind: 'absent' }
  | { readonly kind: 'written'; readonly index: number }
  | { readonly kind: 'deleted'; readonly deleted: boolean; readonly index: number }
  | { readonly kind: 'precondition_failed' };

/** ok: the answer says what happened. failed: it certainly did not happen (refused before it was
 * proposed: 503 no_leader, connection refused). unknown: it may or may not have happened. */
export type Outcome = 'ok' | 'failed' | 'unknown';

/** One client operation as the harness records it. Times are ms since the run started. */
export interface KvOp {
  readonly id: number;
  readonly key: string;
  readonly client: string;
  /** The node the request was sent to. */
  readonly node: string;
  readonly input: KvInput;
  readonly call: number;
  /** Infinity while pending or when the outcome is unknown. */
  readonly ret: number;
  readonly outcome: Outcome;
  /** Set exactly when outcome is 'ok'. */
  readonly output: KvOutput | null;
  /** The error or status that made the outcome failed or unknown. */
  readonly note?: string;
}

/** No write has a modIndex below this: raftlet's log starts at 1 and its entry 1 is the
 * bootstrap configuration. An If-Match below it is a condition that certainly fails. */
export const FIRST_WRITE_INDEX = 2;

/** The register: the id of the write that is current, ABSENT, or OPAQUE. */
export type RegisterState = number;
export const ABSENT: RegisterState = -1;
/** Present, written by a write whose answer was lost and whose value no read saw: its value and
 * index are unknown, so no read and no If-Match can tell such writes apart. One state for all of
 * them lets the search treat them as one. */
export const OPAQUE: RegisterState = -2;

/** What the model needs to know about the writes of one key. */
export interface WriteFacts {
  /** value -> id of the put that wrote it (values are unique per run). */
  readonly writerOf: ReadonlyMap<string, number>;
  readonly valueOf: (writer: number) => string;
  /** The modIndex a write gives the key: from its answer, else from a read that saw its value,
   * else a negative number no client can have sent as If-Match. */
  readonly indexOf: (writer: number) => number;
  /** Whether some read saw this value. */
  readonly seen: (value: string) => boolean;
}

/**
 * The index of a write whose answer was lost and whose value no read saw is unknown, and the model
 * takes it to match no If-Match. That is exact only if every If-Match a client sends is an index
 * it has seen (in an answer or an ETag; indexes are never reused, so such an index belongs to a
 * known write), or one below FIRST_WRITE_INDEX. The workload must keep to that; this refuses a
 * history that does not.
 */
export function writeFacts(ops: readonly KvOp[]): WriteFacts {
  const writerOf = new Map<string, number>();
  const values = new Map<number, string>();
  const indexes = new Map<number, number>();
  for (const op of ops) {
    if (op.input.kind !== 'put') continue;
    writerOf.set(op.input.value, op.id);
    values.set(op.id, op.input.value);
    if (op.output?.kind === 'written') indexes.set(op.id, op.output.index);
  }
  // A write whose answer was lost has its index revealed by the first read of its value, in time
  // order. A read that shows another index for the same value can then never be linearized.
  const reads = ops.filter((op) => op.output?.kind === 'found').sort((a, b) => a.call - b.call);
  for (const read of reads) {
    const output = read.output as Extract<KvOutput, { kind: 'found' }>;
    const writer = writerOf.get(output.value);
    if (writer !== undefined && !indexes.has(writer)) indexes.set(writer, output.modIndex);
  }
  const problem = unseenIfMatch(ops);
  if (problem !== null) throw new Error(problem);
  const seenValues = new Set(reads.map((read) => (read.output as Extract<KvOutput, { kind: 'found' }>).value));
  return {
    writerOf,
    valueOf: (writer) => values.get(writer) ?? '',
    indexOf: (writer) => indexes.get(writer) ?? -(writer + 3),
    seen: (value) => seenValues.has(value),
  };
}

/** Why the history breaks the If-Match rule of writeFacts, or null. */
export function unseenIfMatch(ops: readonly KvOp[]): string | null {
  const seenIndexes = new Set<number>();
  for (const op of ops) {
    if (op.output?.kind === 'written' || op.output?.kind === 'deleted') seenIndexes.add(op.output.index);
    if (op.output?.kind === 'found') seenIndexes.add(op.output.modIndex);
  }
  for (const op of ops) {
    const ifMatch = op.input.kind === 'get' ? undefined : op.input.ifMatch;
    if (ifMatch !== undefined && ifMatch >= FIRST_WRITE_INDEX && !seenIndexes.has(ifMatch)) {
      return `operation ${op.id} sends If-Match ${ifMatch}, an index no answer in the history shows; ` +
        `the workload must only send indexes it has seen, or one below ${FIRST_WRITE_INDEX}`;
    }
  }
  return null;
}

/** The sequential specification of one key, for the checker. */
export function registerModel(facts: WriteFacts): Model<RegisterState, { readonly id: number; readonly input: KvInput }, KvOutput> {
  const known = (state: RegisterState): boolean => state !== ABSENT && state !== OPAQUE;
  const matches = (state: RegisterState, ifMatch: number): boolean => known(state) && facts.indexOf(state) === ifMatch;
  return {
    init: ABSENT,
    key: (state) => state,
    unknownClass: ({ input }) => {
      switch (input.kind) {
        case 'get':
          return null;
        case 'put':
          if (facts.seen(input.value)) return null; // its own state
          return input.ifMatch !== undefined ? `put If-Match ${input.ifMatch}` : input.ifNoneMatch === true ? 'put If-None-Match' : 'put';
        case 'del':
          return input.ifMatch !== undefined ? `del If-Match ${input.ifMatch}` : 'del';
        default: {
          const never: never = input;
          throw new Error(`unknown input ${JSON.stringify(never)}`);
        }
      }
    },
    step(state, { id, input }, output) {
      switch (input.kind) {
        case 'get': {
          if (output === null) return state; // a read with no answer constrains nothing
          if (output.kind === 'absent') return state === ABSENT ? state : undefined;
          if (output.kind !== 'found') return undefined;
          return known(state) && facts.valueOf(state) === output.value && facts.indexOf(state) === output.modIndex ? state : undefined;
        }
        case 'put': {
          const holds = input.ifMatch !== undefined ? matches(state, input.ifMatch) : input.ifNoneMatch === true ? state === ABSENT : true;
          if (output === null) return holds ? (facts.seen(input.value) ? id : OPAQUE) : state;
          if (output.kind === 'written') return holds ? id : undefined;
          if (output.kind === 'precondition_failed') return holds ? undefined : state;
          return undefined;
        }
        case 'del': {
          const holds = input.ifMatch === undefined || matches(state, input.ifMatch);
          if (output === null) return holds ? ABSENT : state;
          if (output.kind === 'deleted') return holds && output.deleted === (state !== ABSENT) ? ABSENT : undefined;
          if (output.kind === 'precondition_failed') return holds ? undefined : state;
          return undefined;
        }
        default: {
          const never: never = input;
          throw new Error(`unknown input ${JSON.stringify(never)}`);
        }
      }
    },
  };
}

export type KeyVerdict =
  | { readonly verdict: 'ok'; readonly steps: number; readonly passes: number }
  | {
      readonly verdict: 'illegal';
      readonly steps: number;
      readonly passes: number;
      readonly stuck: KvOp;
      /** The write current at the stuck point (ABSENT for none). */
      readonly state: RegisterState;
      readonly depth: number;
      readonly tail: readonly KvOp[];
    }
  | { readonly verdict: 'undecided'; readonly steps: number; readonly passes: number; readonly reason: string };

/**
 * Checks the operations of ONE key. Failed operations (certainly not done) and reads without an
 * answer are left out: they neither change nor show the state. Unknown-outcome writes are the
 * expensive part of the search (each stays pending forever), so a first pass keeps only those whose
 * value some read saw; leaving an unknown operation out is the same as linearizing it after
 * everything, so an 'ok' there is final. Otherwise a second pass keeps every unknown write.
 */
export function checkKey(ops: readonly KvOp[], options: CheckOptions = {}): KeyVerdict {
  const facts = writeFacts(ops);
  const model = registerModel(facts);
  const relevant = ops.filter((op) => op.outcome === 'ok' || (op.outcome === 'unknown' && op.input.kind !== 'get'));
  const seen = new Set<string>();
  for (const op of relevant) if (op.output?.kind === 'found') seen.add(op.output.value);
  const firstPass = relevant.filter((op) => op.outcome === 'ok' || (op.input.kind === 'put' && seen.has(op.input.value)));
  const byId = new Map(ops.map((op) => [op.id, op]));
  const toOperation = (op: KvOp): Operation<{ readonly id: number; readonly input: KvInput }, KvOutput> => ({
    id: op.id,
    call: op.call,
    ret: op.outcome === 'ok' ? op.ret : Infinity,
    input: { id: op.id, input: op.input },
    output: op.outcome === 'ok' ? op.output : null,
  });
  let steps = 0;
  let result: CheckResult<RegisterState> | null = null;
  const passes = firstPass.length === relevant.length ? [firstPass] : [firstPass, relevant];
  let passCount = 0;
  for (const pass of passes) {
    passCount++;
    result = checkLinearizable(model, pass.map(toOperation), options);
    steps += result.steps;
    if (result.verdict !== 'illegal') break;
  }
  const final = result as CheckResult<RegisterState>;
  switch (final.verdict) {
    case 'ok':
      return { verdict: 'ok', steps, passes: passCount };
    case 'undecided':
      return { verdict: 'undecided', steps, passes: passCount, reason: final.reason };
    case 'illegal':
      return {
        verdict: 'illegal',
        steps,
        passes: passCount,
        stuck: byId.get(final.stuck) as KvOp,
        state: final.state,
        depth: final.depth,
        tail: final.tail.map((id) => byId.get(id) as KvOp),
      };
    default: {
      const never: never = final;
      return never;
    }
  }
}

/** Splits a history by key (P-compositionality: each key is an independent register). */
export function byKey(ops: readonly KvOp[]): Map<string, KvOp[]> {
  const keys = new Map<string, KvOp[]>();
  for (const op of ops) {
    const list = keys.get(op.key);
    if (list === undefined) keys.set(op.key, [op]);
    else list.push(op);
  }
  return keys;
}

/** Every key checked on its own. */
export function checkHistory(ops: readonly KvOp[], options: CheckOptions = {}): Map<string, KeyVerdict> {
  const verdicts = new Map<string, KeyVerdict>();
  for (const [key, keyOps] of byKey(ops)) verdicts.set(key, checkKey(keyOps, options));
  return verdicts;
}
