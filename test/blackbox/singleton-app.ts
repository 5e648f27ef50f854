// An application built on runAsLeader, as a process of its own beside one raftlet node (the judged
// test in run-as-leader.test.ts starts one per node). While it leads it appends fenced writes to a
// log in raftlet, fence/<name>/<seq> = {"app","term","seq"}, every intervalMs; the client adds
// If-Term. On stdout, one JSON line per event, times on the machine's clock (ms since the epoch,
// sub-millisecond): start (fn started), stop (its signal aborted, with the reason), write (the
// answer to each write). SIGTERM stops it cleanly.
//
//   node test/blackbox/singleton-app.ts --api http://10.99.0.2:7071 --name a1 --interval-ms 25
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { LeadershipLost, PreconditionFailed, RaftletClient, RaftletError } from '../../src/client/index.ts';

const { values } = parseArgs({
  options: { api: { type: 'string' }, name: { type: 'string' }, 'interval-ms': { type: 'string', default: '25' } },
});
if (values.api === undefined || values.name === undefined) {
  process.stderr.write('usage: singleton-app.ts --api URL --name NAME [--interval-ms N]\n');
  process.exit(2);
}
const name = values.name;
const intervalMs = Number(values['interval-ms']);
const client = new RaftletClient({ url: values.api, timeoutMs: 5000 });
const now = (): number => performance.timeOrigin + performance.now();
const emit = (event: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify({ app: name, t: now(), ...event })}\n`);
};

const stop = new AbortController();
process.once('SIGTERM', () => stop.abort());
let seq = 0;

await client.runAsLeader(async (signal, { term }) => {
  emit({ ev: 'start', term });
  signal.addEventListener('abort', () => emit({ ev: 'stop', term }), { once: true });
  while (!signal.aborted) {
    const mine = ++seq;
    const sentAt = now();
    try {
      const result = await client.put(`fence/${name}/${String(mine).padStart(6, '0')}`, JSON.stringify({ app: name, term, seq: mine }));
      emit({ ev: 'write', term, seq: mine, status: 200, index: result.index, entryTerm: result.term, sentAt });
    } catch (err) {
      if (err instanceof LeadershipLost) break;
      const status = err instanceof PreconditionFailed ? 412 : err instanceof RaftletError ? err.status : -1;
      emit({ ev: 'write', term, seq: mine, status, error: err instanceof Error ? err.message : String(err), sentAt });
    }
    await sleep(intervalMs, undefined, { signal }).catch(() => undefined);
  }
}, {
  signal: stop.signal,
  renewMs: 50,
  onStoppedLeading: ({ term }, reason) => emit({ ev: 'stopped', term, reason }),
});
emit({ ev: 'exit' });
