// Reads a V8 .cpuprofile (node --cpu-prof) and sums self time per function and per file, to name
// where a node spends its CPU under load.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
}

interface CpuProfile {
  readonly endTime: number;
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface ProfileLine {
  readonly name: string;
  readonly selfMs: number;
  readonly share: number;
}

export interface ProfileSummary {
  readonly file: string;
  /** Only the samples of the profile's last windowMs count (start-up is left out). */
  readonly windowMs: number;
  readonly totalMs: number;
  /** Time the thread was busy (everything but "(idle)"). */
  readonly busyMs: number;
  readonly functions: readonly ProfileLine[];
  readonly files: readonly ProfileLine[];
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Sums the samples of the last windowMs of the profile (the process's exit ends it). */
export function summarizeProfile(file: string, top: number, windowMs: number): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  // Sample k was taken at startTime + timeDeltas[0..k]; walking back from the end finds the window.
  let at = profile.endTime;
  const from = profile.endTime - windowMs * 1000;
  for (let k = profile.samples.length - 1; k >= 0 && at >= from; k--) {
    const delta = profile.timeDeltas[k + 1] ?? 0; // the time after sample k, until the next one
    selfUs.set(profile.samples[k], (selfUs.get(profile.samples[k]) ?? 0) + delta);
    at -= profile.timeDeltas[k] ?? 0;
  }
  const perFunction = new Map<string, number>();
  const perFile = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const frame = (byId.get(id) as ProfileNode).callFrame;
    total += us;
    if (frame.functionName === '(idle)') idle += us;
    const where = frame.url === '' ? '' : shortUrl(frame.url);
    const fn = `${frame.functionName || '(anonymous)'}${where === '' ? '' : ` ${where}:${frame.lineNumber + 1}`}`;
    perFunction.set(fn, (perFunction.get(fn) ?? 0) + us);
    const group = where === '' ? frame.functionName : where;
    perFile.set(group, (perFile.get(group) ?? 0) + us);
  }
  const busy = total - idle;
  const rank = (m: Map<string, number>): ProfileLine[] =>
    [...m].filter(([name]) => name !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, top)
      .map(([name, us]) => ({ name, selfMs: us / 1000, share: busy === 0 ? 0 : us / busy }));
  return { file, windowMs, totalMs: total / 1000, busyMs: busy / 1000, functions: rank(perFunction), files: rank(perFile) };
}

function shortUrl(url: string): string {
  if (!url.startsWith('file://')) return url;
  const path = fileURLToPath(url);
  const inModules = path.lastIndexOf('node_modules/');
  if (inModules >= 0) return path.slice(inModules + 'node_modules/'.length);
  if (path.startsWith(ROOT)) return relative(ROOT, path);
  // A compiled copy in a temp dir (--compiled): name it from its dist/ on.
  const inDist = path.lastIndexOf('/dist/');
  return inDist >= 0 ? path.slice(inDist + 1) : path;
}
