// The peer transport alone, between two processes on loopback: no Raft, no storage. Node A sends
// appends to node B, whose handler answers each with an appendResponse over its own client (as a
// follower does); forwarded proposals go A -> B and B answers at once (as a leader that has
// committed would). What it measures:
//   - ping: one append at a time, the round trip until its response is back (p50 / p99);
//   - window: 256 appends outstanding, responses per second;
//   - propose: one forwarded proposal at a time (p50 / p99), then 64 at once (per second).
// Usage: node bench/transport.ts [--impl DIR] [--seconds S] [--tls]
//   --impl DIR  a copy of the repository whose src/transport to run (default: this one), e.g. an
//               export of an older commit under .bench-before/ to compare before and after.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { KvCommand, KvResult } from '../src/kv/types.ts';
import type { Message } from '../src/raft/types.ts';
import type * as Transport from '../src/transport/index.ts';

const TOKEN = 'bench-transport-token-0123456789';
const HERE = fileURLToPath(import.meta.url);
const REPO = path.resolve(path.dirname(HERE), '..');

interface Args {
  readonly impl: string;
  readonly seconds: number;
  readonly role: 'driver' | 'echo';
  readonly peerUrl: string | null;
}

function parseArgs(argv: readonly string[]): Args {
  let impl = REPO;
  let seconds = 5;
  let role: Args['role'] = 'driver';
  let peerUrl: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = (): string => {
      const value = argv[++i];
      if (value === undefined) throw new Error(`${arg} needs a value`);
      return value;
    };
    if (arg === '--impl') impl = path.resolve(next());
    else if (arg === '--seconds') seconds = Number(next());
    else if (arg === '--role') role = next() === 'echo' ? 'echo' : 'driver';
    else if (arg === '--peer') peerUrl = next();
    else throw new Error(`unknown argument ${arg}; usage: node bench/transport.ts [--impl DIR] [--seconds S]`);
  }
  if (!(seconds > 0)) throw new Error('--seconds must be positive');
  return { impl, seconds, role, peerUrl };
}

async function loadTransport(impl: string): Promise<typeof Transport> {
  return (await import(pathToFileURL(path.join(impl, 'src', 'transport', 'index.ts')).href)) as typeof Transport;
}

function append(from: string, to: string, index: number): Message {
  return {
    kind: 'append', from, to, term: 1, prevLogIndex: index - 1, prevLogTerm: index > 1 ? 1 : 0, leaderCommit: 0,
    entries: [{ kind: 'command', term: 1, index, data: new Uint8Array(100).fill(index % 251) }],
  };
}

const noCalls = {
  onReadIndex: async () => ({ index: 0, term: 0 }),
  onTransfer: async () => ({ leader: 'b', term: 1 }),
  onStatus: () => ({ id: 'b', role: 'leader' as const, term: 1, leader: 'b', commitIndex: 0, appliedIndex: 0, lastLogIndex: 0, members: [] }),
};

/** Node B: answers appends with appendResponses and proposals at once. Prints its URL. */
async function runEcho(args: Args): Promise<void> {
  const t = await loadTransport(args.impl);
  if (args.peerUrl === null) throw new Error('--peer is required for --role echo');
  const client = new t.PeerClient({ token: TOKEN });
  client.setPeers({ a: args.peerUrl });
  let index = 0;
  const server = await t.startPeerServer('127.0.0.1', 0, {
    token: TOKEN,
    nodeId: 'b',
    handlers: {
      onMessages: (messages) => {
        const out: Message[] = [];
        for (const m of messages) {
          if (m.kind !== 'append') continue;
          const last = m.entries.at(-1)?.index ?? m.prevLogIndex;
          out.push({ kind: 'appendResponse', from: 'b', to: 'a', term: m.term, success: true, matchIndex: last, rejectedIndex: 0, conflictIndex: 0, conflictTerm: 0, lastLogIndex: last });
        }
        client.sendAll(out);
      },
      onPropose: async (_cmd: KvCommand): Promise<KvResult> => ({ ok: true, index: ++index, term: 1 }),
      ...noCalls,
    },
  });
  process.stdout.write(`${server.url}\n`);
  process.stdin.resume();
  await once(process.stdin, 'end');
  await client.close();
  await server.close();
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function summary(samplesMs: number[]): string {
  const sorted = samplesMs.sort((x, y) => x - y);
  return `p50 ${quantile(sorted, 0.5).toFixed(3)} ms, p99 ${quantile(sorted, 0.99).toFixed(3)} ms (${sorted.length} samples)`;
}

async function runDriver(args: Args): Promise<void> {
  const t = await loadTransport(args.impl);
  let onResponse: (m: Message) => void = () => undefined;
  const server = await t.startPeerServer('127.0.0.1', 0, {
    token: TOKEN,
    nodeId: 'a',
    handlers: {
      onMessages: (messages) => {
        for (const m of messages) onResponse(m);
      },
      onPropose: async () => ({ ok: true, index: 0, term: 1 }),
      ...noCalls,
    },
  });
  const child = spawn(process.execPath, [HERE, '--role', 'echo', '--impl', args.impl, '--peer', server.url], { stdio: ['pipe', 'pipe', 'inherit'] });
  const stopChild = (): void => {
    child.stdin.end();
  };
  try {
    const lines = createInterface({ input: child.stdout });
    const [bUrl] = (await once(lines, 'line')) as [string];
    const client = new t.PeerClient({ token: TOKEN });
    client.setPeers({ b: bUrl });
    const cpuStart = process.cpuUsage();
    const results: Record<string, string> = {};

    // Warm up connections and JIT.
    let index = 0;
    await new Promise<void>((resolve) => {
      let seen = 0;
      onResponse = () => {
        if (++seen === 2000) resolve();
      };
      for (let i = 0; i < 2000; i++) client.send('b', [append('a', 'b', ++index)]);
    });

    // ping: one outstanding append.
    const pings: number[] = [];
    const pingUntil = performance.now() + (args.seconds * 1000) / 3;
    while (performance.now() < pingUntil) {
      const started = performance.now();
      await new Promise<void>((resolve) => {
        onResponse = () => resolve();
        client.send('b', [append('a', 'b', ++index)]);
      });
      pings.push(performance.now() - started);
    }
    results.ping = summary(pings);

    // window: 256 outstanding appends.
    const window = 256;
    let answered = 0;
    const windowMs = args.seconds * 1000;
    await new Promise<void>((resolve) => {
      const ends = performance.now() + windowMs;
      onResponse = () => {
        answered++;
        if (performance.now() >= ends) {
          onResponse = () => undefined;
          resolve();
          return;
        }
        client.send('b', [append('a', 'b', ++index)]);
      };
      for (let i = 0; i < window; i++) client.send('b', [append('a', 'b', ++index)]);
    });
    results.window = `${Math.round(answered / args.seconds)} messages/s answered (window ${window})`;

    // propose: sequential, then 64 at once.
    const cmd: KvCommand = { op: 'put', key: 'bench', value: new Uint8Array(100) };
    const proposes: number[] = [];
    const proposeUntil = performance.now() + (args.seconds * 1000) / 3;
    while (performance.now() < proposeUntil) {
      const started = performance.now();
      await client.propose(bUrl, cmd, Date.now() + 5000);
      proposes.push(performance.now() - started);
    }
    results.propose = summary(proposes);
    let done = 0;
    const concurrentUntil = performance.now() + args.seconds * 1000;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (performance.now() < concurrentUntil) {
          await client.propose(bUrl, cmd, Date.now() + 5000);
          done++;
        }
      }),
    );
    results.propose64 = `${Math.round(done / args.seconds)} proposals/s (64 at once)`;
    const cpu = process.cpuUsage(cpuStart);
    results.driverCpu = `${((cpu.user + cpu.system) / 1000).toFixed(0)} ms CPU in the driver`;
    await client.close();
    process.stdout.write(`transport bench (${args.impl === REPO ? 'this tree' : args.impl}), ${args.seconds} s phases\n`);
    for (const [name, value] of Object.entries(results)) process.stdout.write(`  ${name.padEnd(10)} ${value}\n`);
  } finally {
    stopChild();
    await once(child, 'exit');
    await server.close();
  }
}

const args = parseArgs(process.argv.slice(2));
if (args.role === 'echo') await runEcho(args);
else await runDriver(args);
