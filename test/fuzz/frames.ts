// Peer-protocol frames built byte by byte, so the fuzz tests can break exactly one rule of the
// wire format (src/transport/codec.ts): 'R' 'L' <version> <count varint> then messages of
// <kind u8> <from str> <to str> <term varint> <fields...>.
const MAGIC = [0x52, 0x4c];
export const WIRE_VERSION = 2;
const TAG = { vote: 1, append: 3, heartbeat: 5 } as const;
const ENTRY_NOOP = 1;

export function varint(value: number | bigint): number[] {
  let v = BigInt(value);
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) byte |= 0x80;
    out.push(byte);
  } while (v !== 0n);
  return out;
}

export function str(text: string): number[] {
  const bytes = [...Buffer.from(text, 'utf8')];
  return [...varint(bytes.length), ...bytes];
}

export function frame(messages: readonly number[][], count = messages.length, version = WIRE_VERSION): Buffer {
  return Buffer.from([...MAGIC, version, ...varint(count), ...messages.flat()]);
}

export function heartbeat(from: string, to: string, term: number[] | number, commit = 0, seq = 1): number[] {
  return [TAG.heartbeat, ...str(from), ...str(to), ...(typeof term === 'number' ? varint(term) : term), ...varint(commit), ...varint(seq)];
}

export function vote(from: string, to: string, term: number, preVote: number, lastLogIndex = 0, lastLogTerm = 0): number[] {
  return [TAG.vote, ...str(from), ...str(to), ...varint(term), preVote, ...varint(lastLogIndex), ...varint(lastLogTerm), 0];
}

/** An append with noop entries at the given [index, term] places. */
export function append(from: string, to: string, term: number, prevLogIndex: number, prevLogTerm: number, entries: readonly [number, number][], entryCount = entries.length): number[] {
  const body: number[] = [];
  for (const [index, entryTerm] of entries) body.push(ENTRY_NOOP, ...varint(entryTerm), ...varint(index));
  return [TAG.append, ...str(from), ...str(to), ...varint(term), ...varint(prevLogIndex), ...varint(prevLogTerm), ...varint(entryCount), ...body, ...varint(0)];
}

/**
 * Frames that each break one rule of the format while carrying a term far in the future, so that
 * a node that wrongly accepted one would show it in its term. `to` is the target's id.
 */
export function malformedFrames(to: string, futureTerm: number): { name: string; body: Buffer }[] {
  const from = 'intruder';
  const good = heartbeat(from, to, futureTerm);
  return [
    { name: 'wrong magic', body: Buffer.from([0x52, 0x58, WIRE_VERSION, 1, ...good]) },
    { name: 'wire version 3', body: frame([good], 1, 3) },
    { name: 'wire version 1 (heartbeat answers without app health)', body: frame([good], 1, 1) },
    { name: 'wire version 0', body: frame([good], 1, 0) },
    { name: 'term varint longer than 8 bytes', body: frame([heartbeat(from, to, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])]) },
    { name: 'term of 2^53 (not a safe integer)', body: frame([heartbeat(from, to, varint(2n ** 53n))]) },
    { name: 'term of 2^64', body: frame([heartbeat(from, to, varint(2n ** 64n))]) },
    { name: 'non-canonical varint (trailing zero group)', body: frame([heartbeat(from, to, [0x85, 0x80, 0x00])]) },
    { name: 'unknown message kind 0', body: frame([[0, ...good.slice(1)]]) },
    { name: 'unknown message kind 9', body: frame([[9, ...good.slice(1)]]) },
    { name: 'unknown message kind 255', body: frame([[255, ...good.slice(1)]]) },
    { name: 'count says 2, one message', body: frame([good], 2) },
    { name: 'count of a billion', body: frame([good], 1_000_000_000) },
    { name: 'trailing bytes after the last message', body: Buffer.concat([frame([good]), Buffer.from([0, 1, 2])]) },
    { name: 'empty sender id', body: frame([heartbeat('', to, futureTerm)]) },
    { name: 'sender id of 300 bytes', body: frame([heartbeat('x'.repeat(300), to, futureTerm)]) },
    { name: 'sender id not UTF-8', body: frame([[5, 2, 0xff, 0xfe, ...str(to), ...varint(futureTerm), 0, 1]]) },
    { name: 'boolean byte 2', body: frame([vote(from, to, futureTerm, 2)]) },
    { name: 'append entries with a gap', body: frame([append(from, to, futureTerm, 0, 0, [[2, futureTerm]])]) },
    { name: 'append entry from a later term than the message', body: frame([append(from, to, futureTerm, 0, 0, [[1, futureTerm + 1]])]) },
    { name: 'append entry terms going down', body: frame([append(from, to, futureTerm, 0, 0, [[1, 5], [2, 4]])]) },
    { name: 'append claiming 10 million entries', body: frame([append(from, to, futureTerm, 0, 0, [[1, 1]], 10_000_000)]) },
    { name: 'length prefix beyond the body', body: frame([[5, ...varint(1_000_000), 0x61]]) },
    { name: 'no messages, only the magic', body: Buffer.from(MAGIC) },
    { name: 'empty body', body: Buffer.alloc(0) },
  ];
}
