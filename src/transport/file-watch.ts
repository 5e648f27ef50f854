// Noticing that files were replaced, as Kubernetes does it for Secret and ConfigMap volumes: the
// visible name is a symlink into a timestamped directory, swapped atomically, so a watch on the file
// itself goes stale. The directories are watched (fast), and the files are stat'ed now and then
// (a watch can miss events, e.g. on some network file systems); either calls onChange when a file's
// identity, size or modification time differs from what was seen last.
import { statSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';

type Seen = string;

function fingerprint(file: string): Seen {
  try {
    const s = statSync(file);
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch (error) {
    return `missing:${(error as NodeJS.ErrnoException).code ?? 'error'}`;
  }
}

export class FileWatch {
  private readonly files: readonly string[];
  private readonly onChange: () => void;
  private readonly seen = new Map<string, Seen>();
  private readonly watchers: FSWatcher[] = [];
  private readonly timer: NodeJS.Timeout;
  private debounce: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(files: readonly string[], onChange: () => void, pollMs: number) {
    this.files = files;
    this.onChange = onChange;
    for (const file of files) this.seen.set(file, fingerprint(file));
    for (const dir of new Set(files.map((f) => path.dirname(f)))) {
      try {
        const watcher = watch(dir, { persistent: false }, () => this.soon());
        watcher.on('error', () => undefined); // the periodic stat still covers it
        this.watchers.push(watcher);
      } catch {
        // unwatchable directory: polling alone
      }
    }
    this.timer = setInterval(() => this.check(), pollMs);
    this.timer.unref();
  }

  /** Events come in bursts while a volume is swapped: look once, a moment after the last. */
  private soon(): void {
    if (this.closed) return;
    if (this.debounce !== null) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = null;
      this.check();
    }, 50);
    this.debounce.unref();
  }

  private check(): void {
    if (this.closed) return;
    let changed = false;
    for (const file of this.files) {
      const now = fingerprint(file);
      if (now !== this.seen.get(file)) {
        this.seen.set(file, now);
        changed = true;
      }
    }
    if (changed) this.onChange();
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    if (this.debounce !== null) clearTimeout(this.debounce);
    for (const watcher of this.watchers) watcher.close();
  }
}
