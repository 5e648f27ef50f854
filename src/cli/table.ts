// The status display of `raftlet local`, as pure functions from rows to text: a table redrawn in
// place on a terminal, and plain change lines when stdout is a file or a pipe.

export type NodeState =
  /** Process running, API not answering yet. */
  | 'starting'
  /** Process running, last status poll answered. */
  | 'up'
  /** Process running, API answered before but not now. */
  | 'unreachable'
  /** Process exited on its own: it stays down, the others go on. */
  | 'down'
  /** Asked to stop, not exited yet. */
  | 'stopping'
  /** Exited after being asked to. */
  | 'stopped';

export interface StatusRow {
  readonly id: string;
  readonly apiUrl: string;
  readonly state: NodeState;
  /** From the last answered GET /v1/status; null before the first answer. */
  readonly role: string | null;
  readonly term: number | null;
  readonly leader: string | null;
  readonly commitIndex: number | null;
  /** Why a node is down, e.g. `exit code 3` or `signal SIGKILL`. */
  readonly note: string | null;
}

const COLUMNS = ['ID', 'ROLE', 'TERM', 'LEADER', 'COMMIT', 'API'] as const;

/** Header plus one line per node, columns aligned. */
export function renderTable(rows: readonly StatusRow[]): string[] {
  // Only a node that answers has a current term or leader; older values would mislead.
  const cells = rows.map((row) => row.state === 'up'
    ? [row.id, roleText(row), num(row.term), row.leader ?? '-', num(row.commitIndex), row.apiUrl]
    : [row.id, roleText(row), '-', '-', '-', row.apiUrl]);
  const all = [[...COLUMNS], ...cells];
  const widths = COLUMNS.map((_, col) => Math.max(...all.map((line) => line[col].length)));
  return all.map((line) => line.map((cell, col) => (col === line.length - 1 ? cell : cell.padEnd(widths[col]))).join('  '));
}

/** What a plain (non-terminal) output prints: one line per node whose displayed state changed. */
export function renderChanges(previous: readonly StatusRow[] | null, next: readonly StatusRow[]): string[] {
  const lines: string[] = [];
  for (const row of next) {
    const before = previous?.find((p) => p.id === row.id);
    const line = plainLine(row);
    if (before === undefined || plainLine(before) !== line) lines.push(line);
  }
  return lines;
}

/** One node in words: `node-1 leader term=3 leader=node-1 commit=12`, or `node-2 down (exit code 3)`. */
export function plainLine(row: StatusRow): string {
  switch (row.state) {
    case 'up':
      return `${row.id} ${row.role ?? '?'} term=${num(row.term)} leader=${row.leader ?? '-'} commit=${num(row.commitIndex)}`;
    case 'starting':
    case 'unreachable':
    case 'stopping':
    case 'stopped':
      return `${row.id} ${row.state}`;
    case 'down':
      return `${row.id} down${row.note === null ? '' : ` (${row.note})`}`;
    default: {
      const unknown: never = row.state;
      return unknown;
    }
  }
}

/**
 * The bytes that replace the previous frame (`previousLines` lines, 0 for the first) with `lines`:
 * cursor up, then each line rewritten and cleared to its end, then anything below cleared. One
 * write per frame, and only the changed frame, so the terminal does not flicker. Lines are cut to
 * `columns` so that none wraps, which would break the cursor arithmetic.
 */
export function redrawFrame(lines: readonly string[], previousLines: number, columns: number | null): string {
  const cut = (line: string): string => (columns !== null && columns > 1 && line.length >= columns ? line.slice(0, columns - 1) : line);
  const up = previousLines > 0 ? `\x1b[${previousLines}A` : '';
  return `${up}${lines.map((line) => `\r${cut(line)}\x1b[K\n`).join('')}\x1b[J`;
}

function roleText(row: StatusRow): string {
  switch (row.state) {
    case 'up':
      return row.role ?? '?';
    case 'down':
      return row.note === null ? 'down' : `down (${row.note})`;
    case 'starting':
    case 'unreachable':
    case 'stopping':
    case 'stopped':
      return row.state;
    default: {
      const unknown: never = row.state;
      return unknown;
    }
  }
}

function num(value: number | null): string {
  return value === null ? '-' : String(value);
}
