// A linearizability checker (Herlihy & Wing 1990) for one object with a sequential model: a
// depth-first search for a legal sequential order that respects real time, after Wing & Gong (1993)
// and Lowe (2017), with Porcupine's memoisation of (set of linearized operations, model state):
// two search paths that linearized the same operations and reached the same state have the same
// future, so the second is cut off.
//
// Operations with an unknown outcome (a timeout, a 5xx, a connection lost after sending) complete
// at +infinity: they may be linearized anywhere after their invocation, including after everything
// else, which is the same as not having taken effect. They are tried lazily, after the operations
// that did complete, so they are placed just before the first operation that needs their effect.
//
// Search size. Let n be the number of completed operations, w the most of them pending at once,
// and u the number of unknown-outcome operations. A configuration is (linearized set, state); the
// linearized set of completed operations is a prefix of the invocation order plus at most w others
// invoked before the earliest pending return, so there are at most n * 2^w of those, times 2^u for
// the unknown ones, times the states the model can be in (for a register: which write is current,
// one of at most w + u + 1). Memoisation visits each configuration once, so the work is
// O(n * 2^(w+u) * (w+u+1)) steps: linear in the length of a history, exponential in its
// concurrency. The step and memo budgets bound it; past them the verdict is 'undecided', never 'ok'.

/** One operation of a history. */
export interface Operation<I, O> {
  /** Unique within the history checked. */
  readonly id: number;
  /** When the client invoked it. */
  readonly call: number;
  /** When the client saw its result. Ignored (taken as +infinity) when the output is unknown. */
  readonly ret: number;
  readonly input: I;
  /** null = unknown outcome: it may or may not have taken effect. */
  readonly output: O | null;
}

/** The sequential specification of the object. */
export interface Model<S, I, O> {
  readonly init: S;
  /** The state after the operation, or undefined if it could not have produced `output` in
   * `state`. For an unknown output (null) the model decides the effect; it should not refuse. */
  step(state: S, input: I, output: O | null): S | undefined;
  /** A canonical key of a state, for memoisation: equal keys must mean equal states. */
  key(state: S): string | number;
}

export interface CheckOptions {
  /** Most model steps before giving up with 'undecided'. Default 20 million. */
  readonly maxSteps?: number;
  /** Most configurations remembered before giving up with 'undecided'. Default 3 million. */
  readonly maxMemo?: number;
}

export type CheckResult<S> =
  | {
      readonly verdict: 'ok';
      readonly steps: number;
      /** The ids of the completed and needed unknown operations, in a legal order. */
      readonly order: readonly number[];
    }
  | {
      readonly verdict: 'illegal';
      readonly steps: number;
      /** The operation whose return the deepest partial linearization could not get past. */
      readonly stuck: number;
      /** The model state at that point of the deepest partial linearization. */
      readonly state: S;
      /** How many completed operations the deepest partial linearization covered. */
      readonly depth: number;
      /** The last operations of the deepest partial linearization, oldest first. */
      readonly tail: readonly number[];
    }
  | { readonly verdict: 'undecided'; readonly steps: number; readonly reason: string };

export const DEFAULT_MAX_STEPS = 20_000_000;
export const DEFAULT_MAX_MEMO = 3_000_000;
const TAIL_LENGTH = 12;

interface Event {
  /** Index into the completed operations (by invocation order). */
  readonly op: number;
  readonly isCall: boolean;
  readonly time: number;
  prev: Event | null;
  next: Event | null;
  /** For a call event: its return event. */
  match: Event | null;
}

/** Where the search is at one configuration: scanning completed candidates (the event list), or
 * the unknown-outcome candidates invoked before `limit`. */
type Cursor =
  | { readonly phase: 'completed'; readonly event: Event }
  | { readonly phase: 'unknown'; readonly index: number; readonly limit: number };

interface Frame<S> {
  readonly cursor: Cursor;
  readonly state: S;
}

/**
 * Decides whether `history` (operations on ONE object) is linearizable with respect to `model`.
 * For several independent objects (keys), check each on its own (P-compositionality, Herlihy &
 * Wing's locality): a history is linearizable iff every per-object subhistory is.
 */
export function checkLinearizable<S, I, O>(model: Model<S, I, O>, history: readonly Operation<I, O>[], options: CheckOptions = {}): CheckResult<S> {
  const maxSteps = options.maxSteps ?? DEFAULT_MAX_STEPS;
  const maxMemo = options.maxMemo ?? DEFAULT_MAX_MEMO;
  const ids = new Set<number>();
  for (const op of history) {
    if (ids.has(op.id)) throw new Error(`operation id ${op.id} appears twice; give every operation its own id`);
    ids.add(op.id);
    if (!Number.isFinite(op.call)) throw new Error(`operation ${op.id} has no finite invocation time`);
    if (op.output !== null && !(op.ret >= op.call)) throw new Error(`operation ${op.id} returns (${op.ret}) before it is invoked (${op.call})`);
  }

  const byCall = (a: Operation<I, O>, b: Operation<I, O>): number => a.call - b.call || a.id - b.id;
  const completed = history.filter((op) => op.output !== null).sort(byCall);
  const unknown = history.filter((op) => op.output === null).sort(byCall);

  // The event list: every completed call and return by time; at equal times calls first, so
  // operations that touch are treated as concurrent (the permissive reading, never a false alarm).
  const events: Event[] = [];
  completed.forEach((op, index) => {
    const call: Event = { op: index, isCall: true, time: op.call, prev: null, next: null, match: null };
    const ret: Event = { op: index, isCall: false, time: op.ret, prev: null, next: null, match: null };
    call.match = ret;
    events.push(call, ret);
  });
  events.sort((a, b) => a.time - b.time || Number(b.isCall) - Number(a.isCall) || a.op - b.op);
  const head: Event = { op: -1, isCall: false, time: -Infinity, prev: null, next: null, match: null };
  let last = head;
  for (const event of events) {
    last.next = event;
    event.prev = last;
    last = event;
  }

  const lift = (call: Event): void => {
    const ret = call.match as Event;
    (call.prev as Event).next = call.next;
    if (call.next) call.next.prev = call.prev;
    (ret.prev as Event).next = ret.next;
    if (ret.next) ret.next.prev = ret.prev;
  };
  const unlift = (call: Event): void => {
    const ret = call.match as Event;
    (ret.prev as Event).next = ret;
    if (ret.next) ret.next.prev = ret;
    (call.prev as Event).next = call;
    if (call.next) call.next.prev = call;
  };

  // The linearized set, kept so that its canonical text costs O(window), not O(history):
  // every completed operation below `prefix` (in invocation order) is linearized.
  const doneCompleted = new Uint8Array(completed.length);
  let prefix = 0;
  let completedCount = 0;
  const doneUnknown = new Uint8Array(unknown.length);
  const unknownDone: number[] = []; // sorted indices into `unknown`

  const signature = (): string => {
    let text = prefix.toString(36);
    let above = completedCount - prefix;
    for (let i = prefix + 1; above > 0; i++) {
      if (doneCompleted[i] === 1) {
        text += `,${(i - prefix).toString(36)}`;
        above--;
      }
    }
    if (unknownDone.length > 0) text += `;${unknownDone.join(',')}`;
    return text;
  };
  const markCompleted = (index: number): void => {
    doneCompleted[index] = 1;
    completedCount++;
    while (prefix < completed.length && doneCompleted[prefix] === 1) prefix++;
  };
  const unmarkCompleted = (index: number): void => {
    doneCompleted[index] = 0;
    completedCount--;
    if (index < prefix) prefix = index;
  };
  const markUnknown = (index: number): void => {
    doneUnknown[index] = 1;
    let at = unknownDone.length;
    while (at > 0 && unknownDone[at - 1] > index) at--;
    unknownDone.splice(at, 0, index);
  };
  const unmarkUnknown = (index: number): void => {
    doneUnknown[index] = 0;
    unknownDone.splice(unknownDone.indexOf(index), 1);
  };

  const memo = new Set<string>();
  const stack: Frame<S>[] = [];
  let state = model.init;
  let steps = 0;
  let best: { depth: number; stuck: number; state: S; tail: number[] } | null = null;

  const tailOfStack = (): number[] =>
    stack.slice(-TAIL_LENGTH).map((frame) =>
      frame.cursor.phase === 'completed' ? completed[frame.cursor.event.op].id : unknown[frame.cursor.index].id);

  /** Tries one candidate; true if it was linearized (pushed) and the search moves on from it. */
  const attempt = (cursor: Cursor, op: Operation<I, O>, mark: () => void): boolean => {
    steps++;
    const next = model.step(state, op.input, op.output);
    if (next === undefined) return false;
    mark();
    const key = `${signature()}|${model.key(next)}`;
    if (memo.has(key)) {
      undoMark(cursor);
      return false;
    }
    memo.add(key);
    stack.push({ cursor, state });
    state = next;
    return true;
  };
  const undoMark = (cursor: Cursor): void => {
    if (cursor.phase === 'completed') unmarkCompleted(cursor.event.op);
    else unmarkUnknown(cursor.index);
  };

  /** The next unknown-outcome candidate at or after `from` invoked no later than `limit`. */
  const nextUnknown = (from: number, limit: number): number => {
    for (let i = from; i < unknown.length && unknown[i].call <= limit; i++) if (doneUnknown[i] === 0) return i;
    return -1;
  };

  let cursor: Cursor | null = head.next === null ? null : { phase: 'completed', event: head.next };
  for (;;) {
    if (steps > maxSteps) {
      return { verdict: 'undecided', steps, reason: `step budget of ${maxSteps} exhausted (${completed.length} completed and ${unknown.length} unknown-outcome operations)` };
    }
    if (memo.size > maxMemo) {
      return { verdict: 'undecided', steps, reason: `memo budget of ${maxMemo} configurations exhausted (${completed.length} completed and ${unknown.length} unknown-outcome operations)` };
    }
    if (cursor === null) {
      // Every completed operation is placed; the unknown ones not yet placed go after them all.
      return { verdict: 'ok', steps, order: stack.map((frame) => (frame.cursor.phase === 'completed' ? completed[frame.cursor.event.op].id : unknown[frame.cursor.index].id)) };
    }
    if (cursor.phase === 'completed') {
      const event: Event = cursor.event;
      if (event.isCall) {
        if (attempt(cursor, completed[event.op], () => markCompleted(event.op))) {
          lift(event);
          cursor = head.next === null ? null : { phase: 'completed', event: head.next };
        } else {
          // A call is always followed by its own return, so there is a next event.
          cursor = { phase: 'completed', event: event.next as Event };
        }
        continue;
      }
      // A return: this operation must be linearized before it, and no completed candidate is
      // left. Remember the deepest such point for the report, then try the unknown-outcome
      // operations invoked before it, then backtrack.
      if (best === null || completedCount > best.depth) {
        best = { depth: completedCount, stuck: completed[event.op].id, state, tail: tailOfStack() };
      }
      const index = nextUnknown(0, event.time);
      if (index !== -1) {
        cursor = { phase: 'unknown', index, limit: event.time };
        continue;
      }
    } else {
      const index: number = cursor.index;
      const limit: number = cursor.limit;
      if (attempt(cursor, unknown[index], () => markUnknown(index))) {
        cursor = head.next === null ? null : { phase: 'completed', event: head.next };
        continue;
      }
      const following = nextUnknown(index + 1, limit);
      if (following !== -1) {
        cursor = { phase: 'unknown', index: following, limit };
        continue;
      }
    }
    // Backtrack to the most recent choice and try the candidate after it.
    cursor = null;
    while (cursor === null) {
      const frame = stack.pop();
      if (frame === undefined) {
        const found = best as { depth: number; stuck: number; state: S; tail: number[] };
        return { verdict: 'illegal', steps, stuck: found.stuck, state: found.state, depth: found.depth, tail: found.tail };
      }
      state = frame.state;
      const from = frame.cursor;
      if (from.phase === 'completed') {
        unlift(from.event);
        unmarkCompleted(from.event.op);
        cursor = { phase: 'completed', event: from.event.next as Event };
      } else {
        unmarkUnknown(from.index);
        const following = nextUnknown(from.index + 1, from.limit);
        if (following !== -1) cursor = { phase: 'unknown', index: following, limit: from.limit };
      }
    }
  }
}
