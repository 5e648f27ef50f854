// The writer's picture of the persisted log without its contents: where it starts (the snapshot
// base), where it ends, and the term of each index as runs (terms change rarely, so this stays tiny
// however long the log grows). It lets save() reject a batch that would leave a hole or reach under
// the snapshot before anything is written, so a caller's bug can never become a corrupt log.

interface TermRun {
  /** First index of the run; the run lasts until the next run's first index. */
  readonly index: number;
  readonly term: number;
}

export class LogShape {
  /** Index covered by the newest snapshot (0 = none). */
  base: number;
  baseTerm: number;
  last: number;
  private runs: TermRun[] = [];

  constructor(base: number, baseTerm: number) {
    this.base = base;
    this.baseTerm = baseTerm;
    this.last = base;
  }

  termAt(index: number): number | undefined {
    if (index === this.base) return this.baseTerm;
    if (index < this.base || index > this.last) return undefined;
    let low = 0;
    let high = this.runs.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (this.runs[middle]!.index <= index) low = middle;
      else high = middle - 1;
    }
    return this.runs[low]!.term;
  }

  /** Appends one entry, discarding any persisted entries at or after its index (§5.3). */
  append(index: number, term: number): void {
    if (index <= this.last) {
      while (this.runs.length > 0 && this.runs[this.runs.length - 1]!.index >= index) this.runs.pop();
    }
    const tail = this.runs[this.runs.length - 1];
    if (tail === undefined || tail.term !== term) this.runs.push({ index, term });
    this.last = index;
  }

  /** A snapshot from the leader replaces the whole log (§7). */
  install(index: number, term: number): void {
    this.base = index;
    this.baseTerm = term;
    this.last = index;
    this.runs = [];
  }

  /** A snapshot of our own applied state: entries up to index go, later ones stay. */
  compact(index: number, term: number): void {
    if (index >= this.last) {
      this.install(index, term);
      return;
    }
    let keepFrom = 0;
    while (keepFrom + 1 < this.runs.length && this.runs[keepFrom + 1]!.index <= index + 1) keepFrom++;
    const kept = this.runs.slice(keepFrom);
    const first = kept[0];
    if (first !== undefined && first.index < index + 1) kept[0] = { index: index + 1, term: first.term };
    this.runs = kept;
    this.base = index;
    this.baseTerm = term;
  }
}
