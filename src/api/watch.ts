// Watches (SPEC §4): blocking queries (GET /v1/kv/<key>?index=N&wait=MS, GET /v1/kv?prefix=P&index=N)
// and server-sent event streams (GET /v1/watch?prefix=P&index=N). Both read the local replica's
// change history (ChangeFeed), so what a watcher sees is this replica's apply order: the log order,
// the same on every node, whoever leads. A read barrier first makes the starting point linearizable
// (done by the caller). Everything is bounded: watchers at once, and new changes waiting to be sent
// to one stream (a catch-up from an older index is read from the history as the client takes it);
// a stream that falls behind what is kept is told to re-read (a `resync` event).
import type { Response } from 'express';
import type { ChangeFeed, KvChange } from '../kv/types.ts';
import { steadyNow } from '../util/steady-clock.ts';

export interface WatchLimits {
  /** Streams and blocking queries held open at once (RAFTLET_WATCH_MAX_WATCHERS). */
  readonly maxWatchers: number;
  /** Changes made after a stream started that may wait to be sent to it (RAFTLET_WATCH_MAX_BUFFERED). */
  readonly maxBuffered: number;
  /** An idle stream gets a progress event (its resume point) this often. */
  readonly progressMs: number;
}

export const DEFAULT_WATCH_LIMITS: WatchLimits = { maxWatchers: 1000, maxBuffered: 1000, progressMs: 10_000 };

export type WatchKind = 'stream' | 'blocking';
export type WatchDropReason = 'compacted' | 'slow_consumer' | 'shutdown';

/** What the watch machinery reports for metrics (raftlet_watchers, raftlet_watch_*). */
export interface WatchHooks {
  onWatchers?(kind: WatchKind, count: number): void;
  onEventsSent?(count: number): void;
  onDropped?(reason: WatchDropReason): void;
}

/** Why a stream must re-read (also the answer before a stream starts, as 410). */
export class ResyncNeeded extends Error {
  readonly code: 'history_compacted' | 'too_far_behind';
  /** Where a fresh read and watch can start from. */
  readonly index: number;
  constructor(code: ResyncNeeded['code'], message: string, index: number) {
    super(message);
    this.code = code;
    this.index = index;
  }
}

export class TooManyWatchers extends Error {}

/** How many changes one pass of a stream takes from the history before yielding. */
const BATCH = 256;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A change as JSON: the value as text when it is UTF-8, else base64 marked with "encoding". */
export function changeJson(change: KvChange, forceBase64: boolean): Record<string, unknown> {
  const base: Record<string, unknown> = { key: change.key, index: change.index, term: change.term };
  if (change.value === null) return base;
  const bytes = Buffer.from(change.value.buffer, change.value.byteOffset, change.value.byteLength);
  if (!forceBase64) {
    try {
      return { ...base, value: utf8.decode(bytes) };
    } catch {
      // not UTF-8: base64 below
    }
  }
  return { ...base, value: bytes.toString('base64'), encoding: 'base64' };
}

function resyncMessage(prefix: string, after: number, floor: number): string {
  return `changes after index ${after} under prefix ${JSON.stringify(prefix)} are no longer kept here (kept: after ${floor}); ` +
    're-read with GET /v1/kv?prefix=... and watch again from the index it answers';
}

export class Watches {
  private readonly feed: () => ChangeFeed;
  private readonly limits: WatchLimits;
  private readonly hooks: WatchHooks;
  private readonly counts: Record<WatchKind, number> = { stream: 0, blocking: 0 };
  private readonly closers = new Set<() => void>();

  constructor(feed: () => ChangeFeed, limits: WatchLimits, hooks: WatchHooks = {}) {
    this.feed = feed;
    this.limits = limits;
    this.hooks = hooks;
  }

  /** Takes a watcher slot or throws TooManyWatchers; the returned function gives it back. */
  private enter(kind: WatchKind): () => void {
    if (this.counts.stream + this.counts.blocking >= this.limits.maxWatchers) {
      throw new TooManyWatchers(`this node already serves ${this.limits.maxWatchers} watches (RAFTLET_WATCH_MAX_WATCHERS); retry later or watch through another node`);
    }
    this.counts[kind]++;
    this.hooks.onWatchers?.(kind, this.counts[kind]);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.counts[kind]--;
      this.hooks.onWatchers?.(kind, this.counts[kind]);
    };
  }

  /** Ends every stream and blocking query (shutdown). */
  closeAll(): void {
    for (const close of [...this.closers]) close();
  }

  /**
   * Blocking query: resolves true as soon as a change after index `after` matches (a key exactly,
   * or a prefix), at once if one is already applied or if the history no longer reaches back to
   * `after` (then the caller's state is simply re-read); false after waitMs, or when `gone` fires
   * (the client left). The caller answers with the local state either way.
   */
  async waitForChange(match: { key: string } | { prefix: string }, after: number, waitMs: number, gone: AbortSignal): Promise<boolean> {
    const feed = this.feed();
    const prefix = 'key' in match ? match.key : match.prefix;
    const matches = (change: KvChange): boolean => ('key' in match ? change.key === match.key : change.key.startsWith(match.prefix));
    const changedAlready = (): boolean => after < feed.floor || feed.since(after, prefix, Number.MAX_SAFE_INTEGER).some(matches);
    if (changedAlready()) return true;
    if (gone.aborted || waitMs <= 0) return false;
    const leave = this.enter('blocking');
    return new Promise<boolean>((resolve) => {
      let unsubscribe: () => void = () => undefined;
      const finish = (changed: boolean): void => {
        clearTimeout(timer);
        unsubscribe();
        gone.removeEventListener('abort', onGone);
        this.closers.delete(onGone);
        leave();
        resolve(changed);
      };
      const onGone = (): void => finish(false);
      const timer = setTimeout(() => finish(false), waitMs);
      unsubscribe = feed.subscribe((change) => {
        if (change === null || matches(change)) finish(true);
      });
      gone.addEventListener('abort', onGone, { once: true });
      this.closers.add(onGone);
    });
  }

  /**
   * Checks that a stream can start after index `after` (throws ResyncNeeded otherwise) and takes a
   * watcher slot (throws TooManyWatchers). Call before any header is sent, so a refusal is a plain
   * JSON error answer; then call stream() at once (no await in between).
   */
  open(prefix: string, after: number): StreamTicket {
    const feed = this.feed();
    if (after < feed.floor) throw new ResyncNeeded('history_compacted', resyncMessage(prefix, after, feed.floor), feed.appliedIndex);
    return { prefix, after, leave: this.enter('stream') };
  }

  /** Streams changes as server-sent events until the client leaves or the stream must resync. */
  stream(ticket: StreamTicket, res: Response, options: { base64: boolean }): void {
    const feed = this.feed();
    const hooks = this.hooks;
    const { prefix } = ticket;
    let cursor = ticket.after;
    // Changes up to here are the catch-up, read from the history as the client takes them; later
    // ones count against maxBuffered until they are sent.
    const liveFrom = feed.appliedIndex;
    let pending = 0;
    let ended = false;
    let scheduled = false;
    let lastWrite = steadyNow();

    const send = (text: string): boolean => {
      lastWrite = steadyNow();
      return res.write(text);
    };
    const end = (reason: WatchDropReason | null, resync: ResyncNeeded | null): void => {
      if (ended) return;
      ended = true;
      unsubscribe();
      clearInterval(progressTimer);
      res.off('close', onClose);
      res.off('drain', pump);
      this.closers.delete(onShutdown);
      if (reason !== null) this.hooks.onDropped?.(reason);
      if (resync !== null && !res.writableEnded) {
        res.write(`event: resync\ndata: ${JSON.stringify({ code: resync.code, message: resync.message, index: resync.index })}\n\n`);
      }
      if (!res.writableEnded) res.end();
      ticket.leave();
    };
    const resyncNow = (code: ResyncNeeded['code'], message: string): void => {
      end(code === 'history_compacted' ? 'compacted' : 'slow_consumer', new ResyncNeeded(code, message, feed.appliedIndex));
    };

    // Writes what is waiting until the socket pushes back; 'drain' resumes it.
    const pump = (): void => {
      scheduled = false;
      if (ended || res.writableNeedDrain) return;
      for (;;) {
        if (cursor < feed.floor) {
          resyncNow('history_compacted', resyncMessage(prefix, cursor, feed.floor));
          return;
        }
        const batch = feed.since(cursor, prefix, BATCH);
        if (batch.length === 0) return;
        let writable = true;
        let sent = 0;
        for (const change of batch) {
          const event = change.value === null ? 'delete' : 'put';
          writable = send(`id: ${change.index}\nevent: ${event}\ndata: ${JSON.stringify(changeJson(change, options.base64))}\n\n`);
          cursor = change.index;
          if (change.index > liveFrom) pending--;
          sent++;
          if (!writable) break;
        }
        hooks.onEventsSent?.(sent);
        if (!writable) return;
      }
    };
    const schedule = (): void => {
      if (scheduled || ended) return;
      scheduled = true;
      setImmediate(pump);
    };
    const unsubscribe = feed.subscribe((change) => {
      if (change === null) {
        // A snapshot replaced the state: changes up to it cannot be told any more.
        if (cursor < feed.floor) resyncNow('history_compacted', resyncMessage(prefix, cursor, feed.floor));
        return;
      }
      if (!change.key.startsWith(prefix)) return;
      if (++pending > this.limits.maxBuffered) {
        resyncNow('too_far_behind', `this stream fell more than ${this.limits.maxBuffered} changes behind (RAFTLET_WATCH_MAX_BUFFERED): ` +
          'the client reads too slowly; re-read with GET /v1/kv?prefix=... and watch again from the index it answers');
        return;
      }
      schedule();
    });
    // Idle streams learn how far they are: resuming from there needs no history of other keys.
    const progressTimer = setInterval(() => {
      if (ended || scheduled || res.writableNeedDrain || steadyNow() - lastWrite < this.limits.progressMs / 2) return;
      // Only past changes that were all sent: the history itself says none is left.
      if (cursor < feed.floor || feed.since(cursor, prefix, 1).length > 0) return;
      cursor = Math.max(cursor, feed.appliedIndex);
      send(`id: ${cursor}\nevent: progress\ndata: ${JSON.stringify({ index: cursor })}\n\n`);
    }, Math.max(1, this.limits.progressMs / 2));
    progressTimer.unref();
    const onClose = (): void => end(null, null);
    const onShutdown = (): void => end('shutdown', null);
    res.on('close', onClose);
    res.on('drain', pump);
    this.closers.add(onShutdown);

    res.status(200).set({
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Raftlet-Index': String(cursor),
      'X-Accel-Buffering': 'no',
    });
    res.flushHeaders();
    // The starting point: a client that sees nothing else still knows where to resume.
    send(`retry: 1000\nid: ${cursor}\nevent: progress\ndata: ${JSON.stringify({ index: cursor })}\n\n`);
    schedule();
  }
}

export interface StreamTicket {
  readonly prefix: string;
  readonly after: number;
  readonly leave: () => void;
}
