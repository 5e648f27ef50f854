// The clients of a chaos run: each sends one request at a time (GET, blocking GET, list, PUT,
// compare-and-set with If-Match, create-only with If-None-Match, DELETE, conditional DELETE) on a
// few keys to a random node, with a timeout, and records it for the checker: invocation and
// completion times and what the answer proves (ok), rules out (failed: certainly not done), or
// leaves open (unknown).
//
// Every value is unique (client name and a sequence number), and an If-Match is always an index
// this client has seen on that key, or 1, which matches nothing: see writeFacts in kv-model.ts.
import { Agent, request } from 'undici';
import type { KvInput, KvOp, KvOutput, Outcome } from './kv-model.ts';
import type { Rng } from './rng.ts';

export interface Target {
  readonly id: string;
  readonly apiUrl: string;
}

/** An answer the SPEC does not allow for a valid request (a 500, a 400, a malformed body). */
export interface UnexpectedAnswer {
  readonly op: KvOp;
  readonly detail: string;
}

export class History {
  readonly ops: KvOp[] = [];
  readonly unexpected: UnexpectedAnswer[] = [];
  private nextId = 0;

  newId(): number {
    return this.nextId++;
  }
}

interface HttpResult {
  readonly status: number;
  readonly etag: string | undefined;
  readonly text: string;
}

/** How a request ended without an HTTP answer: refused before it was sent, or anything else. */
class NoAnswer extends Error {
  readonly certainlyNotSent: boolean;
  constructor(message: string, certainlyNotSent: boolean) {
    super(message);
    this.certainlyNotSent = certainlyNotSent;
  }
}

const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

function errorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && typeof current === 'object' && current !== null; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

export class KvClient {
  private readonly agent: Agent;
  private readonly timeoutMs: number;

  constructor(timeoutMs: number) {
    this.timeoutMs = timeoutMs;
    // One connection at a time per client is what a real app does; connect fails fast so a dead
    // node is "refused" (certainly not sent) rather than "unknown".
    this.agent = new Agent({ connectTimeout: 2_000, keepAliveTimeout: 4_000, headersTimeout: 0, bodyTimeout: 0 });
  }

  async send(method: 'GET' | 'PUT' | 'DELETE', url: string, headers: Record<string, string>, body?: string): Promise<HttpResult> {
    try {
      const response = await request(url, { method, headers, body, dispatcher: this.agent, signal: AbortSignal.timeout(this.timeoutMs) });
      const text = await response.body.text();
      const etag = response.headers.etag;
      return { status: response.statusCode, etag: typeof etag === 'string' ? etag : undefined, text };
    } catch (error) {
      const code = errorCode(error);
      const message = code ?? (error instanceof Error ? `${error.name}: ${error.message}` : String(error));
      throw new NoAnswer(message, code !== undefined && NOT_SENT_CODES.has(code));
    }
  }

  async close(): Promise<void> {
    await this.agent.destroy().catch(() => undefined);
  }
}

function errorCodeOf(text: string): string | undefined {
  try {
    const code = (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}

interface Classified {
  readonly outcome: Outcome;
  readonly output: KvOutput | null;
  readonly note?: string;
  readonly unexpected?: string;
}

/** What an HTTP answer proves, per SPEC §4. */
export function classify(input: KvInput, answer: HttpResult): Classified {
  const code = errorCodeOf(answer.text);
  const brief = `${answer.status} ${code ?? answer.text.slice(0, 80)}`;
  if (answer.status === 503 && code === 'no_leader') return { outcome: 'failed', output: null, note: brief };
  if (answer.status === 504 || answer.status === 503) return { outcome: 'unknown', output: null, note: brief };
  if (answer.status === 412 && code === 'precondition_failed' && input.kind !== 'get') {
    const conditional = input.kind === 'put' ? input.ifMatch !== undefined || input.ifNoneMatch === true : input.ifMatch !== undefined;
    if (conditional) return { outcome: 'ok', output: { kind: 'precondition_failed' } };
  }
  switch (input.kind) {
    case 'get': {
      if (answer.status === 404 && code === 'not_found') return { outcome: 'ok', output: { kind: 'absent' } };
      const modIndex = /^"(\d+)"$/.exec(answer.etag ?? '')?.[1];
      if (answer.status === 200 && modIndex !== undefined) return { outcome: 'ok', output: { kind: 'found', value: answer.text, modIndex: Number(modIndex) } };
      break;
    }
    case 'put': {
      const index = answer.status === 200 ? jsonNumber(answer.text, 'index') : undefined;
      if (index !== undefined) return { outcome: 'ok', output: { kind: 'written', index } };
      break;
    }
    case 'del': {
      const index = answer.status === 200 ? jsonNumber(answer.text, 'index') : undefined;
      const deleted = answer.status === 200 ? jsonField(answer.text, 'deleted') : undefined;
      if (index !== undefined && typeof deleted === 'boolean') return { outcome: 'ok', output: { kind: 'deleted', deleted, index } };
      break;
    }
    default: {
      const never: never = input;
      throw new Error(`unknown input ${JSON.stringify(never)}`);
    }
  }
  // Anything else is not an answer SPEC §4 gives to this request: a product bug (a 500) or a
  // harness bug (a 400). Its effect is unknown.
  return { outcome: 'unknown', output: null, note: brief, unexpected: `${brief} ${answer.text.slice(0, 300)}` };
}

function jsonField(text: string, field: string): unknown {
  try {
    return (JSON.parse(text) as Record<string, unknown>)[field];
  } catch {
    return undefined;
  }
}

function jsonNumber(text: string, field: string): number | undefined {
  const value = jsonField(text, field);
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0 ? value : undefined;
}

/** One operation: send it, record it. */
export async function perform(
  history: History,
  client: KvClient,
  name: string,
  target: Target,
  key: string,
  input: KvInput,
  clock: () => number,
  query = '',
): Promise<KvOp> {
  const id = history.newId();
  const url = `${target.apiUrl}/v1/kv/${encodeURIComponent(key)}${query}`;
  const headers: Record<string, string> = {};
  if (input.kind !== 'get' && input.ifMatch !== undefined) headers['if-match'] = `"${input.ifMatch}"`;
  if (input.kind === 'put' && input.ifNoneMatch === true) headers['if-none-match'] = '*';
  if (input.kind === 'put') headers['content-type'] = 'application/octet-stream';
  const method = input.kind === 'get' ? 'GET' : input.kind === 'put' ? 'PUT' : 'DELETE';
  const call = clock();
  let classified: Classified;
  try {
    const answer = await client.send(method, url, headers, input.kind === 'put' ? input.value : undefined);
    classified = classify(input, answer);
  } catch (error) {
    const noAnswer = error instanceof NoAnswer ? error : new NoAnswer(String(error), false);
    classified = { outcome: noAnswer.certainlyNotSent ? 'failed' : 'unknown', output: null, note: noAnswer.message };
  }
  const ret = clock();
  const op: KvOp = {
    id,
    key,
    client: name,
    node: target.id,
    input,
    call,
    ret: classified.outcome === 'ok' ? ret : Infinity,
    outcome: classified.outcome,
    output: classified.output,
    ...(classified.note === undefined ? {} : { note: classified.note }),
  };
  history.ops.push(op);
  if (classified.unexpected !== undefined) history.unexpected.push({ op, detail: classified.unexpected });
  return op;
}

/** GET /v1/kv?prefix=: one linearizable read of every key at once, recorded as one read per
 * workload key with the same interval (its projection on each key is a read of that key). With
 * `blocking` (index=N&wait=MS) it is a blocking query, answered the same way after its wait. */
export async function performList(
  history: History,
  client: KvClient,
  name: string,
  target: Target,
  keys: readonly string[],
  clock: () => number,
  blocking = '',
): Promise<KvOp[]> {
  const url = `${target.apiUrl}/v1/kv?prefix=&limit=1000${blocking === '' ? '' : `&${blocking}`}`;
  const call = clock();
  let found: Map<string, { value: string; modIndex: number }> | null = null;
  let outcome: Outcome = 'unknown';
  let note: string | undefined;
  let unexpected: string | undefined;
  try {
    const answer = await client.send('GET', url, {});
    const code = errorCodeOf(answer.text);
    if (answer.status === 200) {
      found = parseList(answer.text);
      if (found === null) unexpected = `200 with a list SPEC §4 does not describe: ${answer.text.slice(0, 200)}`;
      else outcome = 'ok';
    } else if (answer.status === 503 && code === 'no_leader') {
      outcome = 'failed';
    } else if (answer.status !== 503 && answer.status !== 504) {
      unexpected = `${answer.status} ${answer.text.slice(0, 200)}`;
    }
    note = outcome === 'ok' ? undefined : `${answer.status} ${code ?? ''}`;
  } catch (error) {
    const noAnswer = error instanceof NoAnswer ? error : new NoAnswer(String(error), false);
    outcome = noAnswer.certainlyNotSent ? 'failed' : 'unknown';
    note = noAnswer.message;
  }
  const ret = clock();
  const ops: KvOp[] = keys.map((key) => {
    const item = found?.get(key);
    const output: KvOutput | null = found === null ? null : item === undefined ? { kind: 'absent' } : { kind: 'found', value: item.value, modIndex: item.modIndex };
    return {
      id: history.newId(),
      key,
      client: name,
      node: target.id,
      input: { kind: 'get' },
      call,
      ret: outcome === 'ok' ? ret : Infinity,
      outcome,
      output,
      note: `list${note === undefined ? '' : ` ${note}`}`,
    };
  });
  history.ops.push(...ops);
  if (unexpected !== undefined) history.unexpected.push({ op: ops[0], detail: `GET /v1/kv: ${unexpected}` });
  return ops;
}

function parseList(text: string): Map<string, { value: string; modIndex: number }> | null {
  try {
    const body = JSON.parse(text) as { items?: unknown };
    if (!Array.isArray(body.items)) return null;
    const items = new Map<string, { value: string; modIndex: number }>();
    for (const raw of body.items as { key?: unknown; value?: unknown; modIndex?: unknown; encoding?: unknown }[]) {
      if (typeof raw.key !== 'string' || typeof raw.value !== 'string' || typeof raw.modIndex !== 'number') return null;
      const value = raw.encoding === 'base64' ? Buffer.from(raw.value, 'base64').toString('utf8') : raw.value;
      items.set(raw.key, { value, modIndex: raw.modIndex });
    }
    return items;
  } catch {
    return null;
  }
}

export interface WorkloadOptions {
  readonly keys: readonly string[];
  readonly targets: readonly Target[];
  readonly history: History;
  readonly clock: () => number;
  /** Longest pause between one client's operations. */
  readonly thinkMs: number;
  readonly timeoutMs: number;
  /** 'stale' reads the local copy (?consistency=stale): not linearizable, so the checker must
   * find anomalies under partitions; a control that the harness can fail. */
  readonly readConsistency: 'linearizable' | 'stale';
}

/** Index 1 is the bootstrap configuration entry, never a key's modIndex: an If-Match that fails. */
const NEVER_MATCHES = 1;

type OpKind = 'get' | 'block' | 'list' | 'put' | 'cas' | 'create' | 'del' | 'casDel';
const MIX: readonly (readonly [OpKind, number])[] = [
  ['get', 36],
  // A blocking query (?index=&wait=, SPEC §4): answered after a read barrier and the wait, from
  // the local state, so it is a plain linearizable GET over its own interval.
  ['block', 6],
  ['list', 4],
  ['put', 22],
  ['cas', 16],
  ['create', 6],
  ['del', 8],
  ['casDel', 8],
];

/** One client's loop until `stopped()`; resolves after its last operation completed. */
export async function runClient(name: string, rng: Rng, options: WorkloadOptions, stopped: () => boolean): Promise<void> {
  const client = new KvClient(options.timeoutMs);
  // The indexes this client saw per key, newest last; the newest is its idea of the current one.
  const seen = new Map<string, number[]>();
  const remember = (key: string, index: number | null): void => {
    const list = seen.get(key) ?? [];
    if (index !== null) list.push(index);
    if (list.length > 20) list.shift();
    seen.set(key, list);
  };
  let seq = 0;
  try {
    while (!stopped()) {
      const key = rng.pick(options.keys);
      const target = rng.pick(options.targets);
      const kind = rng.weighted(MIX);
      const known = seen.get(key) ?? [];
      // Aim at the newest index seen most of the time; else an older one, or one that never matches.
      const ifMatch = known.length > 0 && rng.chance(0.8) ? known[known.length - 1] : known.length > 1 && rng.chance(0.5) ? rng.pick(known) : NEVER_MATCHES;
      const value = `${name}.${seq++}`;
      if (kind === 'list') {
        if (options.readConsistency === 'linearizable') {
          const newest = Math.max(0, ...[...seen.values()].map((list) => list.at(-1) ?? 0));
          const blocking = rng.chance(0.5) ? `index=${newest}&wait=${rng.between(100, 1_500)}` : '';
          for (const op of await performList(options.history, client, name, target, options.keys, options.clock, blocking)) {
            if (op.output?.kind === 'found') remember(op.key, op.output.modIndex);
          }
        }
        await new Promise((resolve) => setTimeout(resolve, rng.between(20, 20 + options.thinkMs)));
        continue;
      }
      let input: KvInput;
      let blocking = '';
      switch (kind) {
        case 'get':
          input = { kind: 'get' };
          break;
        case 'block':
          input = { kind: 'get' };
          blocking = `index=${known.at(-1) ?? 0}&wait=${rng.between(100, 1_500)}`;
          break;
        case 'put':
          input = { kind: 'put', value };
          break;
        case 'cas':
          input = { kind: 'put', value, ifMatch };
          break;
        case 'create':
          input = { kind: 'put', value, ifNoneMatch: true };
          break;
        case 'del':
          input = { kind: 'del' };
          break;
        case 'casDel':
          input = { kind: 'del', ifMatch };
          break;
        default: {
          const never: never = kind;
          throw new Error(`unknown kind ${String(never)}`);
        }
      }
      const params = [blocking, input.kind === 'get' && options.readConsistency === 'stale' ? 'consistency=stale' : ''].filter((p) => p !== '');
      const query = params.length > 0 ? `?${params.join('&')}` : '';
      const op = await perform(options.history, client, name, target, key, input, options.clock, query);
      if (op.output?.kind === 'found') remember(key, op.output.modIndex);
      if (op.output?.kind === 'written') remember(key, op.output.index);
      if (op.output?.kind === 'deleted' || op.output?.kind === 'absent') remember(key, null);
      // After a refusal or a timeout, back off a little instead of hammering a node that is down.
      const think = op.outcome === 'ok' ? rng.between(0, options.thinkMs) : rng.between(50, 250);
      if (think > 0 && !stopped()) await new Promise((resolve) => setTimeout(resolve, think));
    }
  } finally {
    await client.close();
  }
}
