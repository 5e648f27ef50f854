// Reads a few counters from the members' Prometheus /metrics, so a write run can report how much
// disk and peer traffic each write cost (fsyncs per write, their mean time, peer requests per write).
import { request } from 'undici';

export interface Counters {
  readonly fsyncs: number;
  readonly fsyncSeconds: number;
  /** Peer HTTP requests carrying Raft messages; null for a system that streams instead (etcd). */
  readonly peerRequests: number | null;
  readonly peerRequestSeconds: number | null;
}

/** Sum of every sample of `name` whose labels contain `labels` (e.g. `kind="wal"`), or NaN if none. */
export function sumSamples(text: string, name: string, labels = ''): number {
  let total = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    if (labels !== '' && !rest.includes(labels)) continue;
    total += Number(rest.slice(rest.lastIndexOf(' ') + 1));
    found = true;
  }
  return found ? total : Number.NaN;
}

export async function scrape(url: string): Promise<string | null> {
  try {
    const res = await request(url, { signal: AbortSignal.timeout(2000) });
    const text = await res.body.text();
    return res.statusCode === 200 ? text : null;
  } catch {
    return null;
  }
}

/** Adds up counters over every member; null if any member did not answer. */
export async function sumOver(urls: readonly string[], read: (text: string) => Counters): Promise<Counters | null> {
  const texts = await Promise.all(urls.map(scrape));
  if (texts.some((t) => t === null)) return null;
  const all = (texts as string[]).map(read);
  const add = (pick: (c: Counters) => number | null): number | null =>
    all.some((c) => pick(c) === null) ? null : all.reduce((sum, c) => sum + (pick(c) as number), 0);
  return {
    fsyncs: add((c) => c.fsyncs) as number,
    fsyncSeconds: add((c) => c.fsyncSeconds) as number,
    peerRequests: add((c) => c.peerRequests),
    peerRequestSeconds: add((c) => c.peerRequestSeconds),
  };
}
