// fast-check generators for valid Raft messages, as the core would produce them.
import fc from 'fast-check';
import type { Entry, Member, Message, Snapshot } from '../../src/raft/types.ts';

const MAX = Number.MAX_SAFE_INTEGER;

/** Mostly small numbers, sometimes the extremes a varint must carry. */
export const uint = (): fc.Arbitrary<number> => fc.oneof(fc.nat(300), fc.nat(), fc.maxSafeNat(), fc.constant(MAX), fc.constant(0));

// 'binary' units: any code point, surrogate pairs included, never a lone surrogate.
export const id = (): fc.Arbitrary<string> =>
  fc.oneof(fc.constantFrom('raftlet-0', 'raftlet-1', 'n1'), fc.string({ unit: 'binary', minLength: 1, maxLength: 30 }));

export const member = (): fc.Arbitrary<Member> =>
  fc
    .record({ id: id(), url: fc.oneof(fc.webUrl(), fc.string({ unit: 'binary', maxLength: 40 })), voter: fc.boolean() })
    .map((m) => ({ ...m }));

export const members = (): fc.Arbitrary<Member[]> => fc.uniqueArray(member(), { selector: (m) => m.id, maxLength: 5 });

/** A number in [low, high] spread over the whole range. */
function between(low: number, high: number, fraction: number): number {
  return Math.min(high, low + Math.floor(fraction * (high - low)));
}

const fraction = (): fc.Arbitrary<number> => fc.double({ min: 0, max: 1, noNaN: true });

function entryArb(term: number, index: number): fc.Arbitrary<Entry> {
  return fc.oneof(
    fc.constant<Entry>({ kind: 'noop', term, index }),
    fc.uint8Array({ maxLength: 64 }).map((data): Entry => ({ kind: 'command', term, index, data })),
    members().map((ms): Entry => ({ kind: 'config', term, index, members: ms })),
  );
}

const append = (from: string, to: string, term: number): fc.Arbitrary<Message> =>
  fc
    .record({
      prevLogIndex: fc.oneof(fc.nat(1000), fc.constant(MAX - 20)),
      prevFraction: fraction(),
      entryFractions: fc.array(fraction(), { maxLength: 8 }),
      leaderCommit: uint(),
    })
    .chain(({ prevLogIndex, prevFraction, entryFractions, leaderCommit }) => {
      const prevLogTerm = between(0, term, prevFraction);
      const terms = entryFractions.map((f) => between(prevLogTerm, term, f)).sort((a, b) => a - b);
      const entries = terms.map((entryTerm, i) => entryArb(entryTerm, prevLogIndex + 1 + i));
      return fc.tuple(...entries).map(
        (list): Message => ({ kind: 'append', from, to, term, prevLogIndex, prevLogTerm, entries: list, leaderCommit }),
      );
    });

const snapshot = (term: number): fc.Arbitrary<Snapshot> =>
  fc.record({ index: uint(), termFraction: fraction(), members: members(), data: fc.uint8Array({ maxLength: 256 }) }).map(
    (s): Snapshot => ({ meta: { index: s.index, term: between(0, term, s.termFraction), members: s.members }, data: s.data }),
  );

export const message = (): fc.Arbitrary<Message> =>
  fc.record({ from: id(), to: id(), term: uint() }).chain(({ from, to, term }) =>
    fc.oneof(
      fc
        .record({ preVote: fc.boolean(), lastLogIndex: uint(), lastLogTerm: uint(), transfer: fc.boolean() })
        .map((f): Message => ({ kind: 'vote', from, to, term, ...f })),
      fc.record({ preVote: fc.boolean(), granted: fc.boolean() }).map((f): Message => ({ kind: 'voteResponse', from, to, term, ...f })),
      append(from, to, term),
      fc
        .record({ success: fc.boolean(), matchIndex: uint(), rejectedIndex: uint(), conflictIndex: uint(), conflictTerm: uint(), lastLogIndex: uint() })
        .map((f): Message => ({ kind: 'appendResponse', from, to, term, ...f })),
      fc.record({ commit: uint(), seq: uint() }).map((f): Message => ({ kind: 'heartbeat', from, to, term, ...f })),
      fc.record({ seq: uint(), lastLogIndex: uint() }).map((f): Message => ({ kind: 'heartbeatResponse', from, to, term, ...f })),
      snapshot(term).map((s): Message => ({ kind: 'snapshot', from, to, term, snapshot: s })),
      fc.constant<Message>({ kind: 'timeoutNow', from, to, term }),
    ),
  );
