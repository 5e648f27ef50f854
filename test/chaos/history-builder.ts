// Hand-written histories for the checker's tests: one line per operation, times in ms.
import type { KvInput, KvOp, KvOutput, Outcome } from './kv-model.ts';

type Result = KvOutput | 'unknown' | 'failed';

export class HistoryBuilder {
  readonly ops: KvOp[] = [];
  private readonly key: string;

  constructor(key = 'k') {
    this.key = key;
  }

  private add(input: KvInput, call: number, ret: number, result: Result, client: string): KvOp {
    const outcome: Outcome = result === 'unknown' ? 'unknown' : result === 'failed' ? 'failed' : 'ok';
    const op: KvOp = {
      id: this.ops.length,
      key: this.key,
      client,
      node: 'n1',
      input,
      call,
      ret: outcome === 'ok' ? ret : Infinity,
      outcome,
      output: typeof result === 'string' ? null : result,
    };
    this.ops.push(op);
    return op;
  }

  /** PUT value; index = the answer's index, or 'unknown' / 'failed'. */
  put(value: string, call: number, ret: number, index: number | 'unknown' | 'failed', client = 'c'): KvOp {
    return this.add({ kind: 'put', value }, call, ret, typeof index === 'number' ? { kind: 'written', index } : index, client);
  }

  /** PUT with If-Match; index = success, 412 = precondition failed. */
  cas(value: string, ifMatch: number, call: number, ret: number, index: number | 412 | 'unknown', client = 'c'): KvOp {
    const result: Result = index === 412 ? { kind: 'precondition_failed' } : index === 'unknown' ? 'unknown' : { kind: 'written', index };
    return this.add({ kind: 'put', value, ifMatch }, call, ret, result, client);
  }

  /** PUT with If-None-Match: *. */
  create(value: string, call: number, ret: number, index: number | 412 | 'unknown', client = 'c'): KvOp {
    const result: Result = index === 412 ? { kind: 'precondition_failed' } : index === 'unknown' ? 'unknown' : { kind: 'written', index };
    return this.add({ kind: 'put', value, ifNoneMatch: true }, call, ret, result, client);
  }

  /** GET; [value, modIndex], null = 404, or 'unknown'. */
  get(call: number, ret: number, seen: readonly [string, number] | null | 'unknown', client = 'c'): KvOp {
    const result: Result = seen === 'unknown' ? 'unknown' : seen === null ? { kind: 'absent' } : { kind: 'found', value: seen[0], modIndex: seen[1] };
    return this.add({ kind: 'get' }, call, ret, result, client);
  }

  /** DELETE (If-Match when ifMatch is set); deleted true/false with the answer's index, 412, or 'unknown'. */
  del(call: number, ret: number, result: { deleted: boolean; index: number } | 412 | 'unknown', ifMatch?: number, client = 'c'): KvOp {
    const output: Result = result === 412 ? { kind: 'precondition_failed' } : result === 'unknown' ? 'unknown' : { kind: 'deleted', ...result };
    return this.add(ifMatch === undefined ? { kind: 'del' } : { kind: 'del', ifMatch }, call, ret, output, client);
  }
}
