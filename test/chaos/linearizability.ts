// A linearizability checker (Herlihy & Wing 1990) for one object with a sequential model: a
// depth-first search for a legal sequential order that respects real time, after Wing & Gong (1993)
// and Lowe (2017), with Porcupine's memoisation of (set of linearized operations, model state):
// two search paths that linearized the same operations and reached the same state have the same
// future, so the second is cut off.
//
// Operations with an unknown outcome (a timeout, a 5xx, a connection lost after sending) complete
// at +infinity: they may be linearized anywhere after their invocation, including after everything
// else, which is the same as not having taken effect. Three rules keep them cheap, each exact:
// - they are tried lazily, only once no completed operation can go next, so each lands just
//   before the first operation that needs its effect;
// - one that would leave the state as it is is not placed: leaving it for later (or the end)
//   keeps every option open;
// - the model may put them in classes of operations with the same effect on every state (say,
//   every DELETE whose answer was lost); of a class only the earliest unplaced member is tried, as
//   any two members already invoked are interchangeable from then on. So the search tracks how many
//   of a class are placed, not which.
//
// Search size. Let n be the number of completed operations and w the most of them pending at once.
// The linearized completed operations are a prefix of the invocation order plus at most w others
// invoked before the earliest pending return: at most n * 2^w sets. Unknown-outcome operations add
// a factor 2^s for s of them in classes of their own, and (c_k + 1) for each class k of c_k
// members. Times the model's states (a register: which write is current, at most w + s + 2).
// Memoisation visits each configuration once, so the work is O(n * 2^(w+s) * prod(c_k + 1) *
// (w + s + 2)) steps: linear in a history's length, exponential in its concurrency. The step and
// memo budgets bound it; past them the verdict is 'undecided', never 'ok'.

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
  /** For unknown-outcome operations: a name shared by inputs whose effect is the same on every
   * state, or null for one of its own. Optional; without it every one is its own class. */
  unknownClass?(input: I): string | null;
}

export interface CheckOptions {
  /** Most model steps before giving up with 'undecided'. Default 20 million. */
  readonly maxSteps?: number;
  /** Most configurations remembered before giving up with 'undecided'. Default 3 million. */
  readonly maxMemo?: number;
  /** Most characters of remembered configurations (their keys grow with a history's concurrency)
   * before giving up with 'undecided', so a hard history ends with a verdict, not out of memory.
   * Default 200 million. */
  readonly maxMemoChars?: number;
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
export const DEFAULT_MAX_MEMO_CHARS = 200_000_000;
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

/** Unknown-outcome operations with the same effect, earliest invocation first. */
interface Unit<I, O> {
  readonly members: readonly Operation<I, O>[];
}

/** Where the search is at one configuration: scanning completed candidates (the event list), or
 * the unknown-outcome units with a member invoked by `limit`. */
type Cursor =
  | { readonly phase: 'completed'; readonly event: Event }
  | { readonly phase: 'unknown'; readonly unit: number; readonly limit: number };

interface Frame<S> {
  readonly cursor: Cursor;
  readonly state: S;
  readonly id: number;
}

/**
 * Decides whether `history` (operations on ONE object) is linearizable with respect to `model`.
 * For several independent objects (keys), check each on its own (P-compositionality, Herlihy &
 * Wing's locality): a history is linearizable iff every per-object subhistory is.
 */
export function checkLinearizable<S, I, O>(model: Model<S, I, O>, history: readonly Operation<I, O>[], options: CheckOptions = {}): CheckResult<S> {
  const maxSteps = options.maxSteps ?? DEFAULT_MAX_STEPS;
  const maxMemo = options.maxMemo ?? DEFAULT_MAX_MEMO;
  const maxMemoChars = options.maxMemoChars ?? DEFAULT_MAX_MEMO_CHARS;
  const ids = new Set<number>();
  for (const op of history) {
    if (ids.has(op.id)) throw new Error(`operation id ${op.id} appears twice; give every operation its own id`);
    ids.add(op.id);
    if (!Number.isFinite(op.call)) throw new Error(`operation ${op.id} has no finite invocation time`);
    if (op.output !== null && !(op.ret >= op.call)) throw new Error(`operation ${op.id} returns (${op.ret}) before it is invoked (${op.call})`);
  }

  const byCall = (a: Operation<I, O>, b: Operation<I, O>): number => a.call - b.call || a.id - b.id;
  const completed = history.filter((op) => op.output !== null).sort(byCall);

  // ---- completed operations: Porcupine's event list ----
  // Every call and return by time; at equal times calls first, so operations that touch are
  // treated as concurrent (the permissive reading, never a false alarm).
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

  // ---- unknown-outcome operations, in units of interchangeable ones ----
  const classes = new Map<string, Operation<I, O>[]>();
  const units: Unit<I, O>[] = [];
  for (const op of history.filter((o) => o.output === null).sort(byCall)) {
    const name = model.unknownClass?.(op.input) ?? null;
    if (name === null) {
      units.push({ members: [op] });
      continue;
    }
    const members = classes.get(name);
    if (members === undefined) {
      const fresh = [op];
      classes.set(name, fresh);
      units.push({ members: fresh });
    } else {
      members.push(op);
    }
  }
  const unknownCount = history.length - completed.length;

  // ---- the linearized set, with a canonical text that costs O(window), not O(history) ----
  // Every completed operation below `prefix` (in invocation order) is linearized; of unit u, the
  // first used[u] members are.
  const doneCompleted = new Uint8Array(completed.length);
  let prefix = 0;
  let completedCount = 0;
  const used = new Uint32Array(units.length);
  const usedUnits: number[] = []; // sorted
  const signature = (): string => {
    let text = prefix.toString(36);
    let above = completedCount - prefix;
    for (let i = prefix + 1; above > 0; i++) {
      if (doneCompleted[i] === 1) {
        text += `,${(i - prefix).toString(36)}`;
        above--;
      }
    }
    if (usedUnits.length > 0) {
      text += ';';
      for (const u of usedUnits) text += `${u.toString(36)}:${used[u].toString(36)},`;
    }
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
  const markUnit = (u: number): void => {
    if (used[u]++ === 0) {
      let at = usedUnits.length;
      while (at > 0 && usedUnits[at - 1] > u) at--;
      usedUnits.splice(at, 0, u);
    }
  };
  const unmarkUnit = (u: number): void => {
    if (--used[u] === 0) usedUnits.splice(usedUnits.indexOf(u), 1);
  };
  /** The next unit at or after `from` whose next member was invoked by `limit`, or -1. */
  const nextUnit = (from: number, limit: number): number => {
    for (let u = from; u < units.length; u++) {
      const member = units[u].members[used[u]];
      if (member !== undefined && member.call <= limit) return u;
    }
    return -1;
  };

  const memo = new Set<string>();
  let memoChars = 0;
  const stack: Frame<S>[] = [];
  let state = model.init;
  let steps = 0;
  let best: { depth: number; stuck: number; state: S; tail: number[] } | null = null;
  const firstCandidate = (): Cursor | null => (head.next === null ? null : { phase: 'completed', event: head.next });

  /** Linearizes op if the model allows it and the configuration is new; true if it did. */
  const attempt = (cursor: Cursor, op: Operation<I, O>, mark: () => void, unmark: () => void): boolean => {
    steps++;
    const next = model.step(state, op.input, op.output);
    if (next === undefined) return false;
    const nextKey = model.key(next);
    // An unknown-outcome operation that changes nothing is better left for later.
    if (op.output === null && nextKey === model.key(state)) return false;
    mark();
    const key = `${signature()}|${nextKey}`;
    if (memo.has(key)) {
      unmark();
      return false;
    }
    memo.add(key);
    memoChars += key.length;
    stack.push({ cursor, state, id: op.id });
    state = next;
    return true;
  };

  let cursor: Cursor | null = firstCandidate();
  for (;;) {
    if (steps > maxSteps) {
      return { verdict: 'undecided', steps, reason: `step budget of ${maxSteps} exhausted (${completed.length} completed and ${unknownCount} unknown-outcome operations)` };
    }
    if (memo.size > maxMemo) {
      return { verdict: 'undecided', steps, reason: `memo budget of ${maxMemo} configurations exhausted (${completed.length} completed and ${unknownCount} unknown-outcome operations)` };
    }
    if (memoChars > maxMemoChars) {
      return { verdict: 'undecided', steps, reason: `memo budget of ${maxMemoChars} characters exhausted (${memo.size} configurations; ${completed.length} completed and ${unknownCount} unknown-outcome operations)` };
    }
    if (cursor === null) {
      // Every completed operation is placed; the unknown ones not yet placed go after them all.
      return { verdict: 'ok', steps, order: stack.map((frame) => frame.id) };
    }
    if (cursor.phase === 'completed') {
      const event: Event = cursor.event;
      if (event.isCall) {
        if (attempt(cursor, completed[event.op], () => markCompleted(event.op), () => unmarkCompleted(event.op))) {
          lift(event);
          cursor = firstCandidate();
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
        best = { depth: completedCount, stuck: completed[event.op].id, state, tail: stack.slice(-TAIL_LENGTH).map((f) => f.id) };
      }
      const u = nextUnit(0, event.time);
      if (u !== -1) {
        cursor = { phase: 'unknown', unit: u, limit: event.time };
        continue;
      }
    } else {
      const u: number = cursor.unit;
      const limit: number = cursor.limit;
      if (attempt(cursor, units[u].members[used[u]], () => markUnit(u), () => unmarkUnit(u))) {
        cursor = firstCandidate();
        continue;
      }
      const following = nextUnit(u + 1, limit);
      if (following !== -1) {
        cursor = { phase: 'unknown', unit: following, limit };
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
        unmarkUnit(from.unit);
        const following = nextUnit(from.unit + 1, from.limit);
        if (following !== -1) cursor = { phase: 'unknown', unit: following, limit: from.limit };
      }
    }
  }
}
