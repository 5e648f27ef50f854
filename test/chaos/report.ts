// How operations and anomalies are shown: one line per operation, and the history of a key
// around the operation an anomaly is about.
import type { KvInput, KvOp, KvOutput } from './kv-model.ts';

export interface Anomaly {
  readonly kind: string;
  readonly summary: string;
  readonly details: readonly string[];
}

function seconds(ms: number): string {
  return Number.isFinite(ms) ? `${(ms / 1000).toFixed(3)}s` : '∞';
}

export function describeInput(input: KvInput): string {
  switch (input.kind) {
    case 'get':
      return 'get';
    case 'put':
      return `put ${JSON.stringify(input.value)}${input.ifMatch !== undefined ? ` If-Match ${input.ifMatch}` : ''}${input.ifNoneMatch === true ? ' If-None-Match *' : ''}`;
    case 'del':
      return `del${input.ifMatch !== undefined ? ` If-Match ${input.ifMatch}` : ''}`;
    default: {
      const never: never = input;
      return String(never);
    }
  }
}

export function describeOutput(output: KvOutput): string {
  switch (output.kind) {
    case 'found':
      return `${JSON.stringify(output.value)} (modIndex ${output.modIndex})`;
    case 'absent':
      return '404 not_found';
    case 'written':
      return `ok, index ${output.index}`;
    case 'deleted':
      return `ok, deleted ${output.deleted}, index ${output.index}`;
    case 'precondition_failed':
      return '412 precondition_failed';
    default: {
      const never: never = output;
      return String(never);
    }
  }
}

export function describeOp(op: KvOp): string {
  const result = op.output !== null ? describeOutput(op.output) : `${op.outcome}${op.note === undefined ? '' : ` (${op.note})`}`;
  const end = op.outcome === 'ok' ? seconds(op.ret) : '?';
  const via = op.note?.startsWith('list') === true ? ' (in a list of every key)' : '';
  return `#${op.id} [${seconds(op.call)} .. ${end}] ${op.client} -> ${op.node} ${op.key}: ${describeInput(op.input)}${via} -> ${result}`;
}

/** The operations on `op`'s key around it: those invoked up to `beforeMs` earlier, and a few after. */
export function historyAround(all: readonly KvOp[], op: KvOp, beforeMs = 3_000, maxLines = 40): string[] {
  const sameKey = all.filter((o) => o.key === op.key).sort((a, b) => a.call - b.call || a.id - b.id);
  const end = op.outcome === 'ok' ? op.ret : op.call;
  const window = sameKey.filter((o) => o.call >= op.call - beforeMs && o.call <= end + 1_000 && o.outcome !== 'failed');
  let lines = window;
  if (lines.length > maxLines) {
    const at = lines.indexOf(op);
    const from = Math.max(0, Math.min(at - Math.floor(maxLines * 0.75), lines.length - maxLines));
    lines = lines.slice(from, from + maxLines);
  }
  return lines.map((o) => `${o === op ? '>>' : '  '} ${describeOp(o)}`);
}

export function printAnomaly(anomaly: Anomaly, out: (line: string) => void): void {
  out(`ANOMALY [${anomaly.kind}] ${anomaly.summary}`);
  for (const line of anomaly.details) out(`    ${line}`);
}
