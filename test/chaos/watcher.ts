// A watcher of a chaos run: one server-sent event stream (GET /v1/watch, SPEC §4) at a time, to a
// random node, recorded for linearizability-watch.ts. Every event is kept with its delivery time
// on the history's clock; progress events move the covered range (upTo) on. When the stream ends
// (a kill, a reset), goes silent (a pause, a partition, a connect that hangs) or lags behind what
// the cluster acknowledged, the watcher resumes with Last-Event-ID, on another node when there is
// one: a resumed stream must go on with no gap, which is what the checker judges. A node that no
// longer keeps the history from there answers 410 (or ends with a `resync` event); the others are
// tried, and only when none can resume does the watcher start a new segment from a fresh index (a
// resync: allowed by SPEC §4, so a statistic and not an anomaly, and the gap between segments is
// not held against the stream).
//
// Node built-ins only (node:http), so what is tested is the wire format as any client sees it.
// Memory is bounded: at most maxEvents events (then the watcher stops and says so), a bounded
// parse buffer and a bounded journal of connections.
import { request, type IncomingMessage } from 'node:http';
import { acknowledgedChanges, type WatchEventRecord, type WatchLog } from './linearizability-watch.ts';
import type { KvOp } from './kv-model.ts';
import type { Rng } from './rng.ts';
import type { Target } from './workload.ts';

export interface WatcherOptions {
  readonly name: string;
  readonly prefix: string;
  readonly targets: readonly Target[];
  readonly rng: Rng;
  /** ms on the history's clock. */
  readonly clock: () => number;
  /** The first segment covers the changes after this index (0: every change). */
  readonly after: number;
  /** No byte for this long ends the connection (an idle stream gets a progress event every 10 s). */
  readonly idleMs: number;
  /** How long the cluster may have acknowledged a change under the prefix before a stream that has
   * not delivered it is left for another node. */
  readonly lagMs: number;
  /** The highest index under the prefix acknowledged at or before a time (from the history). */
  readonly acknowledgedBy?: (time: number) => number;
  /** Leave a healthy stream after a random time in this range and resume on another node, so
   * that resuming is exercised often, not only when a fault cuts a stream. */
  readonly hopMs?: readonly [number, number];
  /** After a third of the hops, stay away this long before resuming: the stream must catch up
   * from the node's kept history (or refuse with 410 when that no longer reaches back). */
  readonly awayMs?: readonly [number, number];
  /** Refused (410) for this long, or by every node: give up resuming and resync. */
  readonly resyncAfterMs: number;
  /** Most events kept; past it the watcher stops (truncated). */
  readonly maxEvents: number;
}

export interface WatcherStats {
  events: number;
  /** Connection attempts, and attempts after the first. */
  connects: number;
  reconnects: number;
  /** Streams opened (200), of them resumed with Last-Event-ID, and of those on another node than
   * the previous stream's. */
  streams: number;
  resumed: number;
  resumedElsewhere: number;
  /** Healthy connections left on purpose (hopMs). */
  hops: number;
  /** Connections left because the stream lagged behind acknowledged writes. */
  lagSwitches: number;
  /** Connections left because no byte came for idleMs. */
  idleTimeouts: number;
  /** 410 answers and resync events. */
  refusals: number;
  /** New segments from a fresh index after every node refused to resume. */
  resyncs: number;
  truncated: boolean;
}

/** Answers and streams SPEC §4 does not allow (a harness or product bug), at most a few kept. */
export interface WatcherProblem {
  readonly at: number;
  readonly node: string;
  readonly detail: string;
}

type End =
  | { readonly kind: 'stopped' }
  | { readonly kind: 'closed' }
  | { readonly kind: 'error'; readonly detail: string }
  | { readonly kind: 'idle' }
  | { readonly kind: 'hop' }
  | { readonly kind: 'lag'; readonly expected: number }
  | { readonly kind: 'refused'; readonly detail: string }
  | { readonly kind: 'status'; readonly status: number; readonly detail: string }
  | { readonly kind: 'bad'; readonly detail: string }
  | { readonly kind: 'full' };

interface Segment {
  readonly after: number;
  upTo: number;
  /** The id of the last event of any kind: where a resumed stream goes on. */
  lastId: number;
  readonly events: WatchEventRecord[];
}

const MAX_LINE_CHARS = 1 << 20;
const MAX_JOURNAL = 400;
const MAX_PROBLEMS = 20;

export class Watcher {
  readonly name: string;
  readonly prefix: string;
  readonly stats: WatcherStats = { events: 0, connects: 0, reconnects: 0, streams: 0, resumed: 0, resumedElsewhere: 0, hops: 0, lagSwitches: 0, idleTimeouts: 0, refusals: 0, resyncs: 0, truncated: false };
  readonly problems: WatcherProblem[] = [];
  /** One line per connection: when, where, from which index, how it ended. */
  readonly journal: { at: number; line: string }[] = [];
  private readonly options: WatcherOptions;
  private readonly segments: Segment[] = [];
  /** null between a resync and the first progress event of the fresh stream. */
  private segment: Segment | null;
  private stopped = false;
  private abortCurrent: (() => void) | null = null;
  private wakeSleep: (() => void) | null = null;
  private loop: Promise<void> | null = null;

  constructor(options: WatcherOptions) {
    this.options = options;
    this.name = options.name;
    this.prefix = options.prefix;
    this.segment = { after: options.after, upTo: options.after, lastId: options.after, events: [] };
    this.segments.push(this.segment);
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abortCurrent?.();
    this.wakeSleep?.();
    await this.loop;
  }

  /** How far the current segment reaches; null between a resync and its fresh starting point. */
  get upTo(): number | null {
    return this.segment?.upTo ?? null;
  }

  /** What the watcher saw, one WatchLog per segment (`w1`, then `w1.2` after a resync, ...). */
  logs(): WatchLog[] {
    return this.segments.map((s, i) => ({
      watcher: i === 0 ? this.name : `${this.name}.${i + 1}`,
      prefix: this.prefix,
      after: s.after,
      upTo: s.upTo,
      events: s.events,
    }));
  }

  private note(line: string): void {
    this.journal.push({ at: this.options.clock(), line });
    if (this.journal.length > MAX_JOURNAL) this.journal.shift();
  }

  private problem(node: string, detail: string): void {
    if (this.problems.length < MAX_PROBLEMS) this.problems.push({ at: this.options.clock(), node, detail });
  }

  private async run(): Promise<void> {
    const { targets, rng, clock } = this.options;
    let previous: string | null = null;
    let previousStream: string | null = null;
    let avoid: string | null = null;
    const refusedBy = new Set<string>();
    let firstRefusalAt: number | null = null;
    // Attempts in a row that opened no stream: the pause after a failure doubles up to 1 s (every
    // node down for a while, as after kill -9 of all).
    let failures = 0;
    while (!this.stopped) {
      // Another node than the one just left, when there is one; none that refused to resume.
      const fresh = targets.filter((t) => !refusedBy.has(t.id));
      const choices = fresh.filter((t) => t.id !== avoid);
      const target = rng.pick(choices.length > 0 ? choices : fresh.length > 0 ? fresh : targets);
      if (this.stats.connects > 0) this.stats.reconnects++;
      this.stats.connects++;
      const resumeFrom = this.segment?.lastId ?? null;
      const startedAt = clock();
      const end = await this.connect(target, resumeFrom, () => {
        failures = 0;
        refusedBy.clear();
        this.stats.streams++;
        if (resumeFrom !== null && this.stats.streams > 1) {
          this.stats.resumed++;
          if (previousStream !== target.id) this.stats.resumedElsewhere++;
        }
        previousStream = target.id;
      });
      const moved = previous !== null && previous !== target.id ? ` (was ${previous})` : '';
      this.note(`${target.id}${moved} from ${resumeFrom ?? 'now (fresh)'} t=${(startedAt / 1000).toFixed(3)}s: ${describeEnd(end)}, upTo ${this.segment?.upTo ?? '-'}`);
      previous = target.id;
      avoid = target.id;
      let pauseMs = 0;
      const backoff = (): number => Math.min(1_000, 50 * 2 ** failures++) + rng.between(0, 100);
      switch (end.kind) {
        case 'stopped':
          return;
        case 'full':
          this.stats.truncated = true;
          return;
        case 'closed':
        case 'error':
          pauseMs = backoff();
          break;
        case 'idle':
          this.stats.idleTimeouts++;
          break;
        case 'hop': {
          this.stats.hops++;
          const away = this.options.awayMs;
          if (away !== undefined && rng.chance(1 / 3)) pauseMs = rng.between(away[0], away[1]);
          break;
        }
        case 'lag':
          this.stats.lagSwitches++;
          break;
        case 'status':
          pauseMs = backoff();
          // 503/504 (no leader, a read barrier that timed out) and 429 are answers under faults.
          if (end.status !== 503 && end.status !== 504 && end.status !== 429) this.problem(target.id, `GET /v1/watch answered ${end.status}: ${end.detail}`);
          break;
        case 'bad':
          pauseMs = backoff();
          this.problem(target.id, end.detail);
          break;
        case 'refused': {
          this.stats.refusals++;
          refusedBy.add(target.id);
          firstRefusalAt ??= clock();
          if (refusedBy.size >= targets.length || clock() - firstRefusalAt >= this.options.resyncAfterMs) {
            this.stats.resyncs++;
            this.note(`resync: no node resumes from ${this.segment?.lastId ?? '-'} (${[...refusedBy].join(', ')} refused); a new segment starts from a fresh index`);
            this.segment = null;
            refusedBy.clear();
            firstRefusalAt = null;
            avoid = null;
          } else {
            pauseMs = rng.between(20, 100);
          }
          break;
        }
        default: {
          const never: never = end;
          throw new Error(`unknown end ${JSON.stringify(never)}`);
        }
      }
      if (refusedBy.size === 0) firstRefusalAt = null;
      if (pauseMs > 0 && !this.stopped) await this.sleep(pauseMs);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeSleep = () => {
        this.wakeSleep = null;
        done();
      };
    });
  }

  /** One connection, until it ends for one of the reasons of End. */
  private connect(target: Target, resumeFrom: number | null, opened: () => void): Promise<End> {
    const { clock, idleMs, lagMs, acknowledgedBy, hopMs, rng } = this.options;
    const hopAt = hopMs === undefined ? Infinity : clock() + rng.between(hopMs[0], hopMs[1]);
    const url = new URL(`${target.apiUrl}/v1/watch`);
    url.searchParams.set('prefix', this.prefix);
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (resumeFrom !== null) headers['last-event-id'] = String(resumeFrom);
    return new Promise<End>((resolve) => {
      let settled = false;
      let lastByteAt = clock();
      let streaming = false;
      const finish = (end: End): void => {
        if (settled) return;
        settled = true;
        clearInterval(timer);
        this.abortCurrent = null;
        req.destroy();
        resolve(end);
      };
      const req = request(url, { headers, agent: false }, (res) => {
        lastByteAt = clock();
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          readSome(res, (text) => finish(status === 410 ? { kind: 'refused', detail: text } : { kind: 'status', status, detail: text }));
          return;
        }
        const type = res.headers['content-type'] ?? '';
        if (!type.startsWith('text/event-stream')) {
          finish({ kind: 'bad', detail: `GET /v1/watch answered 200 with content-type ${JSON.stringify(type)}` });
          return;
        }
        streaming = true;
        opened();
        const parser = new EventStreamParser((event) => {
          const end = this.receive(event, target.id);
          if (end !== null) finish(end);
        });
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          lastByteAt = clock();
          if (settled) return;
          const problem = parser.push(chunk);
          if (problem !== null) finish({ kind: 'bad', detail: problem });
        });
        res.on('end', () => finish({ kind: 'closed' }));
        res.on('error', (error) => finish({ kind: 'error', detail: errorText(error) }));
      });
      req.on('error', (error) => finish({ kind: 'error', detail: errorText(error) }));
      const connectedAt = clock();
      const timer = setInterval(() => {
        const now = clock();
        if (now - lastByteAt > idleMs) {
          finish({ kind: 'idle' });
          return;
        }
        if (streaming && now >= hopAt) {
          finish({ kind: 'hop' });
          return;
        }
        // A stream behind what the cluster acknowledged lagMs ago sits on a node that is cut off,
        // paused or slow: another node should have it.
        if (!streaming || acknowledgedBy === undefined || now - connectedAt < lagMs || this.segment === null) return;
        const expected = acknowledgedBy(now - lagMs);
        if (expected > this.segment.upTo) finish({ kind: 'lag', expected });
      }, 250);
      this.abortCurrent = () => finish({ kind: 'stopped' });
      if (this.stopped) finish({ kind: 'stopped' });
      req.end();
    });
  }

  /** One event of the stream; an End when the connection must end. */
  private receive(event: StreamEvent, node: string): End | null {
    const at = this.options.clock();
    let data: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(event.data);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      data = parsed as Record<string, unknown>;
    } catch (error) {
      return { kind: 'bad', detail: `event ${JSON.stringify(event.type)} with data that is not a JSON object (${(error as Error).message}): ${event.data.slice(0, 200)}` };
    }
    const id = event.id === null ? null : Number(event.id);
    switch (event.type) {
      case 'resync':
        return { kind: 'refused', detail: `resync event: ${event.data.slice(0, 300)}` };
      case 'progress': {
        const index = data.index;
        if (!isIndex(index) || id !== index) return { kind: 'bad', detail: `progress event with id ${event.id} and data ${event.data.slice(0, 200)}` };
        if (this.segment === null) {
          this.segment = { after: index, upTo: index, lastId: index, events: [] };
          this.segments.push(this.segment);
        } else {
          this.segment.upTo = Math.max(this.segment.upTo, index);
          this.segment.lastId = index;
        }
        return null;
      }
      case 'put':
      case 'delete': {
        const { key, index, term } = data;
        let value: string | null = null;
        if (event.type === 'put') {
          if (typeof data.value !== 'string') return { kind: 'bad', detail: `put event without a value: ${event.data.slice(0, 200)}` };
          value = data.encoding === 'base64' ? Buffer.from(data.value, 'base64').toString('utf8') : data.value;
        }
        if (typeof key !== 'string' || !isIndex(index) || !isIndex(term) || id === null) {
          return { kind: 'bad', detail: `${event.type} event with id ${event.id} and data ${event.data.slice(0, 200)}` };
        }
        if (id !== index) this.problem(node, `event id ${event.id} is not its index ${index}`);
        // Fresh streams start with a progress event that says where they start.
        if (this.segment === null) return { kind: 'bad', detail: `a ${event.type} event before the stream said where it starts` };
        if (this.stats.events >= this.options.maxEvents) return { kind: 'full' };
        this.segment.events.push({ key, index, term, op: event.type === 'put' ? 'put' : 'del', value, at, node });
        this.stats.events++;
        this.segment.upTo = Math.max(this.segment.upTo, index);
        this.segment.lastId = id;
        return null;
      }
      default:
        this.problem(node, `an event type SPEC §4 does not name: ${JSON.stringify(event.type)}`);
        return null;
    }
  }
}

function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function errorText(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : error instanceof Error ? error.message : String(error);
}

/** The first few KB of a refusal's body, for the journal. */
function readSome(res: IncomingMessage, done: (text: string) => void): void {
  let text = '';
  res.setEncoding('utf8');
  res.on('data', (chunk: string) => {
    if (text.length < 4096) text += chunk;
  });
  res.on('end', () => done(text.slice(0, 300)));
  res.on('error', () => done(text.slice(0, 300)));
}

function describeEnd(end: End): string {
  switch (end.kind) {
    case 'stopped':
    case 'closed':
    case 'idle':
    case 'hop':
    case 'full':
      return end.kind;
    case 'lag':
      return `lagging (index ${end.expected} acknowledged long ago)`;
    case 'error':
    case 'refused':
    case 'bad':
      return `${end.kind}: ${end.detail.slice(0, 200)}`;
    case 'status':
      return `status ${end.status}: ${end.detail.slice(0, 200)}`;
    default: {
      const never: never = end;
      return String(never);
    }
  }
}

export interface StreamEvent {
  /** The `event:` field; "message" when absent. */
  readonly type: string;
  readonly data: string;
  /** The `id:` field of this event, or null. */
  readonly id: string | null;
}

/** The text/event-stream format (WHATWG HTML §9.2): lines of `field: value`, a blank line ends an
 * event. Comments (`:`) and `retry:` are ignored. */
export class EventStreamParser {
  private buffer = '';
  private type = '';
  private data: string[] = [];
  private id: string | null = null;
  private readonly onEvent: (event: StreamEvent) => void;

  constructor(onEvent: (event: StreamEvent) => void) {
    this.onEvent = onEvent;
  }

  /** Feeds text; returns why the stream is malformed, or null. */
  push(chunk: string): string | null {
    this.buffer += chunk;
    for (;;) {
      const newline = this.buffer.search(/\r\n|\r|\n/);
      // A CR at the end of a chunk may be the first half of a CRLF.
      if (newline < 0 || (newline === this.buffer.length - 1 && this.buffer.endsWith('\r'))) break;
      const line = this.buffer.slice(0, newline);
      const width = this.buffer.startsWith('\r\n', newline) ? 2 : 1;
      this.buffer = this.buffer.slice(newline + width);
      this.line(line);
    }
    return this.buffer.length > MAX_LINE_CHARS ? `a line of more than ${MAX_LINE_CHARS} characters in the event stream` : null;
  }

  private line(line: string): void {
    if (line === '') {
      if (this.data.length > 0 || this.type !== '') this.onEvent({ type: this.type === '' ? 'message' : this.type, data: this.data.join('\n'), id: this.id });
      this.type = '';
      this.data = [];
      this.id = null;
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.type = value;
        break;
      case 'data':
        this.data.push(value);
        break;
      case 'id':
        this.id = value;
        break;
      default:
        break; // retry and unknown fields
    }
  }
}

/** A fault planted in what watchers recorded, for control runs: the checks must catch it. */
export type PlantedWatchFault = 'none' | 'drop' | 'swap';

/**
 * Drops one event of an acknowledged change (a gap) or swaps two neighbouring events (an order
 * violation) in the first segment that has one. Returns the tampered logs and what was done, or
 * null when nothing could be planted (no acknowledged change was seen).
 */
export function plantWatchFault(logs: readonly WatchLog[], ops: readonly KvOp[], fault: Exclude<PlantedWatchFault, 'none'>): { logs: WatchLog[]; planted: string } | null {
  const acked = acknowledgedChanges(ops);
  for (let l = 0; l < logs.length; l++) {
    const events = logs[l].events;
    const candidates = events.map((e, i) => i).filter((i) => acked.has(events[i].index) && (fault === 'drop' || i + 1 < events.length));
    if (candidates.length === 0) continue;
    const at = candidates[Math.floor(candidates.length / 2)];
    const tampered = [...events];
    let planted: string;
    if (fault === 'drop') {
      tampered.splice(at, 1);
      planted = `dropped the event of index ${events[at].index} from ${logs[l].watcher}`;
    } else {
      [tampered[at], tampered[at + 1]] = [tampered[at + 1], tampered[at]];
      planted = `swapped the events of indexes ${events[at].index} and ${events[at + 1].index} in ${logs[l].watcher}`;
    }
    return { logs: logs.map((log, i) => (i === l ? { ...log, events: tampered } : log)), planted };
  }
  return null;
}
