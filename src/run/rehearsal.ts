// A rehearsal at start-up: before the member joins its cluster, the process runs a throwaway
// three-member cluster of its own on loopback for a moment, with the same code every member runs
// (the Raft core, RaftNode, the peer transport's streams and calls, the client API) and drives it
// through elections, writes on the leader and through followers, linearizable reads and leadership
// transfers.
//
// Why: V8 runs a function slowly the first times (no inline caches, no feedback, no compiled code),
// and a member runs its leader's code for the first time in the middle of a failover: the
// successor of a SIGTERM hand-off, often a member restarted a moment before (a rolling update),
// spent 7-12 ms of the hand-off's ~20 on CPU, mostly in V8's cold paths (IC misses, feedback
// allocation, tier-up; perf, docs/performance.md). The same hand-off after some warm-up traffic
// took 12-14 ms. Warming the code here, while nobody waits on this member, moves that cost out of
// the failover.
//
// Nothing of the rehearsal reaches the real cluster or the data directory: its members listen on
// 127.0.0.1 with ports of their own, share no token or identity, and keep their logs in memory. It
// is bounded in time; whatever goes wrong in it only ends it early, never the start.
import type { Agent, IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApiApp } from '../api/app.ts';
import { DEFAULT_HISTORY, KvStore } from '../kv/index.ts';
import type { LogStore, LogUpdate } from '../node/ports.ts';
import { RaftNode, type NodeLogger } from '../node/node.ts';
import { bootstrapState } from '../raft/raft.ts';
import type { Member, NodeId, Snapshot } from '../raft/types.ts';
import { PeerClient, startPeerServer, type PeerHandlers, type RunningPeerServer } from '../transport/index.ts';
import { http } from '../util/http.ts';
import { closeServer } from './listen.ts';

export interface RehearsalOptions {
  /** The rehearsal ends by this long after it started, done or not. */
  readonly budgetMs: number;
  /** Leadership transfers to drive, each followed by writes and reads on every member. */
  readonly rounds?: number;
  /** Writes per member and round (half of them in parallel). */
  readonly writesPerMember?: number;
}

export interface RehearsalReport {
  /** Whether every round ran (else the budget ran out, or something failed: `error`). */
  readonly completed: boolean;
  readonly rounds: number;
  readonly writes: number;
  readonly reads: number;
  readonly transfers: number;
  readonly elapsedMs: number;
  readonly error?: string;
}

const MEMBERS = 3;
const HEARTBEAT_MS = 10;
const ELECTION_TIMEOUT_MS = 60;

/** Logs kept in memory: a save is durable at once (nothing here must survive). */
class MemoryLog implements LogStore {
  save(_update: LogUpdate): Promise<void> {
    return Promise.resolve();
  }
  saveSnapshot(_snapshot: Snapshot): Promise<void> {
    return Promise.resolve();
  }
}

const quiet: NodeLogger = { info() {}, warn() {}, error() {}, debug() {} };

class Deadline extends Error {}

interface RehearsalMember {
  readonly id: NodeId;
  readonly node: RaftNode;
  readonly apiPort: number;
}

/** Runs the rehearsal; never rejects. */
export async function rehearse(options: RehearsalOptions): Promise<RehearsalReport> {
  const started = performance.now();
  const endsAt = started + options.budgetMs;
  const rounds = options.rounds ?? 6;
  const writesPerMember = options.writesPerMember ?? 12;
  const counts = { rounds: 0, writes: 0, reads: 0, transfers: 0 };
  const members: RehearsalMember[] = [];
  const teardown = new Teardown();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  let error: string | undefined;
  try {
    await startCluster(members, teardown, endsAt);
    const client = new Client(agent, endsAt);
    await waitFor(() => leaderOf(members) !== null, endsAt);
    for (let round = 0; round < rounds; round++) {
      // Writes and reads on every member: the leader's own path, and the forwarded one.
      for (const m of members) {
        const batch: Promise<void>[] = [];
        for (let i = 0; i < writesPerMember; i++) {
          const write = client.put(m.apiPort, `rehearsal/${round}/${m.id}/${i % 4}`, `value ${i}`).then(() => void counts.writes++);
          // Half of them one at a time, half together (batched appends, pipelining).
          if (i < writesPerMember / 2) await write;
          else batch.push(write);
        }
        await Promise.all(batch);
        await client.get(m.apiPort, `rehearsal/${round}/${m.id}/0`);
        counts.reads++;
      }
      // Leadership moves on, as in a SIGTERM hand-off (thesis §3.10), with writes under way on
      // every member meanwhile: those that reach the old leader in the hand-off take the refusal
      // and retry paths.
      const from = leaderOf(members);
      if (from === null) throw new Error('no leader');
      const to = members[(members.indexOf(from) + 1) % members.length];
      const during = Promise.all(members.map((m) => client.put(m.apiPort, `rehearsal/${round}/during`, m.id).then(() => void counts.writes++)));
      // Handled here too, should the transfer fail first: an unhandled rejection ends the process.
      during.catch(() => undefined);
      await client.transfer(from.apiPort, to.id);
      counts.transfers++;
      await during;
      counts.rounds++;
    }
  } catch (err) {
    error = err instanceof Deadline ? 'out of time' : err instanceof Error ? err.message : String(err);
  } finally {
    await teardown.run();
    agent.destroy();
  }
  return { completed: error === undefined, ...counts, elapsedMs: performance.now() - started, ...(error === undefined ? {} : { error }) };
}

async function startCluster(members: RehearsalMember[], teardown: Teardown, endsAt: number): Promise<void> {
  const ids = Array.from({ length: MEMBERS }, (_, i) => `rehearsal-${i + 1}`);
  // The peer servers first, for their ports: the configuration names each member's URL. They
  // reach their node through `nodes`, filled in below before any peer can know their address.
  const nodes = new Map<NodeId, RaftNode>();
  const servers: RunningPeerServer[] = [];
  for (const id of ids) {
    const nodeOf = (): RaftNode => {
      const node = nodes.get(id);
      if (node === undefined) throw new Error(`rehearsal member ${id} is not up`);
      return node;
    };
    const handlers: PeerHandlers = {
      onMessages: (messages) => nodeOf().onMessages(messages),
      onPropose: (cmd, deadlineMs, encoded) => nodeOf().onPropose(cmd, deadlineMs, encoded),
      onReadIndex: (deadlineMs) => nodeOf().onReadIndex(deadlineMs),
      onTransfer: (to, deadlineMs) => nodeOf().onTransfer(to, deadlineMs),
      onStatus: () => nodeOf().onStatus(),
      onPeerStream: (sender) => nodeOf().onPeerStream(sender),
      onCallStream: (fence) => nodeOf().onCallStream(fence),
    };
    const server = await startPeerServer('127.0.0.1', 0, { token: null, handlers, nodeId: id });
    teardown.last(() => server.close());
    servers.push(server);
  }
  const membership: Member[] = ids.map((id, i) => ({ id, url: servers[i].url, voter: true }));
  for (const id of ids) {
    const peers = new PeerClient({ token: null, selfId: id, requestTimeoutMs: 500, backoffInitialMs: 10, backoffMaxMs: 50 });
    const node = new RaftNode({
      id,
      heartbeatMs: HEARTBEAT_MS,
      electionTimeoutMs: ELECTION_TIMEOUT_MS,
      restored: bootstrapState(membership),
      store: new MemoryLog(),
      peers,
      stateMachine: new KvStore({ history: DEFAULT_HISTORY }),
      logger: quiet,
      snapshotEntries: 10_000,
      onFatal: () => undefined,
    });
    teardown.last(() => peers.close());
    teardown.first(() => node.stop());
    nodes.set(id, node);
    const others = membership.filter((m) => m.id !== id);
    peers.setPeers(new Map(others.map((m) => [m.id, m.url])));
    peers.keepOpen(others.map((m) => m.id));
    const app = createApiApp(node, { maxValueBytes: 1024, requestTimeoutMs: Math.max(1, endsAt - performance.now()) });
    const api = http.createServer(app);
    teardown.last(() => closeServer(api));
    await new Promise<void>((resolve, reject) => {
      api.once('error', reject);
      api.listen(0, '127.0.0.1', () => resolve());
    });
    members.push({ id, node, apiPort: (api.address() as AddressInfo).port });
  }
  for (const m of members) m.node.start();
}

/** What was started, to stop: the nodes first (no more messages), then servers and connections. */
class Teardown {
  private readonly early: (() => Promise<unknown>)[] = [];
  private readonly late: (() => Promise<unknown>)[] = [];

  first(stop: () => Promise<unknown>): void {
    this.early.push(stop);
  }

  last(stop: () => Promise<unknown>): void {
    this.late.push(stop);
  }

  async run(): Promise<void> {
    await Promise.allSettled(this.early.map((stop) => stop()));
    await Promise.allSettled(this.late.map((stop) => stop()));
  }
}

function leaderOf(members: readonly RehearsalMember[]): RehearsalMember | null {
  return members.find((m) => m.node.status().role === 'leader') ?? null;
}

async function waitFor(done: () => boolean, endsAt: number): Promise<void> {
  while (!done()) {
    if (performance.now() > endsAt) throw new Deadline();
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The client API over node:http, as an application beside the member would call it. */
class Client {
  private readonly agent: Agent;
  private readonly endsAt: number;

  constructor(agent: Agent, endsAt: number) {
    this.agent = agent;
    this.endsAt = endsAt;
  }

  async put(port: number, key: string, value: string): Promise<void> {
    await this.call(port, 'PUT', `/v1/kv/${key}`, { 'content-type': 'application/octet-stream' }, value);
  }

  async get(port: number, key: string): Promise<void> {
    await this.call(port, 'GET', `/v1/kv/${key}`, {}, null);
  }

  async transfer(port: number, to: NodeId): Promise<void> {
    await this.call(port, 'POST', '/v1/leader/transfer', { 'content-type': 'application/json' }, JSON.stringify({ to }));
  }

  /** One request, tried again until the deadline on a 503 (no leader for a moment, in a hand-off)
   * or a 504 (a transfer aborted after an election timeout: the rehearsal's timeouts are short, and
   * a loaded machine can stall a member past one). */
  private async call(port: number, method: string, path: string, headers: IncomingHttpHeaders, body: string | null): Promise<void> {
    for (;;) {
      const left = this.endsAt - performance.now();
      if (left <= 0) throw new Deadline();
      const status = await this.once(port, method, path, headers, body, left);
      if (status >= 200 && status < 300) return;
      if (status !== 503 && status !== 504) throw new Error(`${method} ${path}: HTTP ${status}`);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  private once(port: number, method: string, path: string, headers: IncomingHttpHeaders, body: string | null, timeoutMs: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: this.agent, timeout: timeoutMs }, (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
        res.once('error', reject);
      });
      req.once('timeout', () => req.destroy(new Deadline()));
      req.once('error', reject);
      req.end(body ?? undefined);
    });
  }
}
