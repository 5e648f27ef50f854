// A cluster of real `raftlet run` processes on 127.0.0.1 for black-box tests: what only real
// processes show (fsync, signals, sockets, exit codes). Each node is this repository's
// bin/raftlet.js on this Node binary, with static members node-1..node-N, its own ports, a data
// directory under one temp dir and its stdout and stderr appended to one log file.
//
// Nodes are addressed by their ordinal: node 1 is `node-1`. Every wait polls a condition with a
// generous bound and never sleeps for a fixed time; a bound that runs out fails with what it saw
// last. Typical use:
//
//   const clusters = clusterHooks();               // inside describe(): log tails on failure, stop in after()
//   const c = await clusters.start({ nodes: 3 });
//   const leader = await c.waitForLeader();
//   await c.putOk(leader.node, 'k', 'v');
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, afterEach, beforeEach } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Agent, request, type Dispatcher } from 'undici';
import type { Status } from '../../src/client/index.ts';
import { releasePorts, reservePorts } from './ports.ts';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const RAFTLET_BIN = path.join(REPO_ROOT, 'bin', 'raftlet.js');
/** Default bound of every wait, generous for a loaded 2-core machine. */
export const DEFAULT_WAIT_MS = 30_000;

export interface ClusterOptions {
  readonly nodes: number;
  /** RAFTLET_ELECTION_TIMEOUT_MS; default 1000 (SPEC §3). */
  readonly electionTimeoutMs?: number;
  /** RAFTLET_HEARTBEAT_MS; default 100 (SPEC §3). */
  readonly heartbeatMs?: number;
  /** RAFTLET_REQUEST_TIMEOUT_MS; default 5000 (SPEC §3). */
  readonly requestTimeoutMs?: number;
  /** Extra variables for every node (e.g. RAFTLET_SNAPSHOT_ENTRIES); they win over the harness's. */
  readonly env?: Readonly<Record<string, string>>;
  /** The client certificate, key and CA that peerRequest uses against https peer ports. */
  readonly peerClientTls?: { readonly ca: Buffer; readonly cert: Buffer; readonly key: Buffer };
  /** Scheme of the peer URLs: https for clusters with peer TLS (the nodes' TLS files come in `nodeEnv`). */
  readonly peerScheme?: 'http' | 'https';
  /** The loopback address node N's peer port listens on and its peer URL names (e.g. 127.0.0.2, so
   * certificates can name members apart); default 127.0.0.1. */
  readonly peerHost?: (node: number) => string;
  /** Extra variables for one node (e.g. its own token file), applied after `env`. */
  readonly nodeEnv?: (node: number, dir: string) => Readonly<Record<string, string>>;
  /** Parent of the cluster's temp dir; default the OS temp dir. */
  readonly dataRoot?: string;
  /** Shows in the temp dir's name and in messages. */
  readonly name?: string;
  /**
   * A command that starts node N's process instead of Node itself and ends by exec'ing its
   * arguments (so the pid is raftlet's), e.g. a shell that first enters a memory cgroup.
   */
  readonly launchPrefix?: (node: number) => readonly string[];
  /** The launcher to run instead of this checkout's bin/raftlet.js (e.g. a compiled copy's). */
  readonly bin?: string;
}

export interface NodeSpec {
  /** 1-based: node 1 is node-1. */
  readonly node: number;
  readonly id: string;
  readonly peerPort: number;
  readonly apiPort: number;
  readonly metricsPort: number;
  readonly apiUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  readonly logFile: string;
  /** The whole environment the process runs with. */
  readonly env: Readonly<Record<string, string>>;
}

/** GET /v1/status (SPEC §4), as the client library types it. */
export type ApiStatus = Status;

export interface LeaderView {
  readonly node: number;
  readonly id: string;
  readonly term: number;
}

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface HttpAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
  readonly text: string;
  /** The body parsed as JSON; throws with the text if it is not JSON. */
  json<T = unknown>(): T;
  /** error.code of a SPEC §4 error body, or null. */
  readonly errorCode: string | null;
}

export interface RequestOptions {
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | Uint8Array;
  /** Client-side bound; default DEFAULT_WAIT_MS. */
  readonly timeoutMs?: number;
}

export interface WriteOptions {
  /** If-Match: "<n>" (a number), or the raw header text (a string). */
  readonly ifMatch?: number | string;
  readonly ifNoneMatch?: boolean;
  readonly headers?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
}

export interface ReadOptions {
  readonly consistency?: 'linearizable' | 'stale';
  readonly timeoutMs?: number;
}

export interface WaitOptions {
  readonly timeoutMs?: number;
  readonly intervalMs?: number;
}

/** Thrown by a waitUntil probe to stop waiting at once (the condition can no longer come true). */
export class GiveUp extends Error {}

/** Polls probe until it returns a value other than undefined / null / false; a throwing probe
 * counts as "not yet" (GiveUp ends the wait). Fails after timeoutMs saying what it waited for and
 * what it saw last. */
export async function waitUntil<T>(
  what: string,
  probe: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  options: WaitOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_WAIT_MS;
  const intervalMs = options.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let last = 'nothing yet';
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== null && value !== false) return value;
      last = `probe answered ${String(value)}`;
    } catch (error) {
      if (error instanceof GiveUp) throw error;
      last = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${last}`);
    await delay(intervalMs);
  }
}

// ---- processes ------------------------------------------------------------------------------------

/** Every process any cluster of this test file started: killed if the file's process exits first.
 * Other harnesses register theirs here too (add on spawn, delete on exit). */
export const allChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of allChildren) {
    try {
      child.kill('SIGKILL');
    } catch {
      // gone
    }
  }
});

/** The environment of a raftlet process: ours without anything that would change what it does. */
export function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value === undefined) continue;
    if (name.startsWith('RAFTLET_') || name.startsWith('NODE_TEST') || name === 'NODE_OPTIONS') continue;
    if (name === 'KUBECONFIG' || name.startsWith('KUBERNETES_') || name === 'POD_NAME' || name === 'POD_NAMESPACE') continue;
    env[name] = value;
  }
  return env;
}

class RunningNode {
  readonly child: ChildProcess;
  readonly exited: Promise<ExitInfo>;
  exit: ExitInfo | null = null;
  paused = false;

  constructor(spec: NodeSpec, args: readonly string[], prefix: readonly string[] = [], bin = RAFTLET_BIN) {
    const log = openSync(spec.logFile, 'a');
    try {
      writeSync(log, `---- harness: starting ${spec.id} at ${new Date().toISOString()} ----\n`);
      const command = [...prefix, process.execPath, bin, 'run', ...args];
      this.child = spawn(command[0]!, command.slice(1), {
        env: spec.env,
        cwd: REPO_ROOT,
        stdio: ['ignore', log, log],
      });
    } finally {
      closeSync(log); // the child has its own copy
    }
    allChildren.add(this.child);
    this.exited = new Promise((resolve) => {
      const done = (info: ExitInfo): void => {
        allChildren.delete(this.child);
        if (this.exit === null) this.exit = info;
        resolve(this.exit);
      };
      this.child.once('exit', (code, signal) => done({ code, signal }));
      this.child.once('error', () => done({ code: null, signal: null }));
    });
  }

  get pid(): number {
    const pid = this.child.pid;
    if (pid === undefined) throw new Error('the process did not start');
    return pid;
  }

  get running(): boolean {
    return this.exit === null;
  }
}

async function exitWithin(running: RunningNode, timeoutMs: number): Promise<ExitInfo | null> {
  const timer = new AbortController();
  try {
    return await Promise.race([running.exited, delay(timeoutMs, null, { signal: timer.signal })]);
  } finally {
    timer.abort();
  }
}

function errorCodeOf(text: string): string | null {
  try {
    const parsed: unknown = JSON.parse(text);
    const code = (parsed as { error?: { code?: unknown } } | null)?.error?.code;
    return typeof code === 'string' ? code : null;
  } catch {
    return null;
  }
}

// ---- the cluster ----------------------------------------------------------------------------------

export class Cluster {
  readonly name: string;
  /** The temp dir holding every node's data dir and log. */
  readonly dir: string;
  readonly token: string;
  readonly nodes: readonly NodeSpec[];
  readonly options: ClusterOptions;
  private readonly running = new Map<number, RunningNode>();
  private readonly ports: readonly number[];
  private readonly agent: Agent;
  private stopped = false;

  constructor(options: ClusterOptions, dir: string, ports: readonly number[], token: string) {
    this.options = options;
    const tls = options.peerClientTls;
    this.agent = new Agent({
      connectTimeout: 5_000, keepAliveTimeout: 1_000, keepAliveMaxTimeout: 2_000,
      ...(tls ? { connect: { ca: tls.ca, cert: tls.cert, key: tls.key, checkServerIdentity: () => undefined } } : {}),
    });
    this.name = options.name ?? 'cluster';
    this.dir = dir;
    this.ports = ports;
    this.token = token;
    const count = options.nodes;
    const ids = Array.from({ length: count }, (_, i) => `node-${i + 1}`);
    const scheme = options.peerScheme ?? 'http';
    const peerHost = (i: number): string => options.peerHost?.(i + 1) ?? '127.0.0.1';
    const peers = ids.map((id, i) => `${id}=${scheme}://${peerHost(i)}:${ports[3 * i]}`).join(',');
    const base = baseEnv();
    this.nodes = ids.map((id, i): NodeSpec => {
      const [peerPort, apiPort, metricsPort] = [ports[3 * i], ports[3 * i + 1], ports[3 * i + 2]];
      const dataDir = path.join(dir, id, 'data');
      return {
        node: i + 1,
        id,
        peerPort,
        apiPort,
        metricsPort,
        apiUrl: `http://127.0.0.1:${apiPort}`,
        peerUrl: `${scheme}://${peerHost(i)}:${peerPort}`,
        dataDir,
        logFile: path.join(dir, `${id}.log`),
        env: {
          ...base,
          RAFTLET_NODE_ID: id,
          RAFTLET_PEERS: peers,
          RAFTLET_PEER_LISTEN: `${peerHost(i)}:${peerPort}`,
          RAFTLET_API_LISTEN: `127.0.0.1:${apiPort}`,
          RAFTLET_METRICS_LISTEN: `127.0.0.1:${metricsPort}`,
          RAFTLET_DATA_DIR: dataDir,
          RAFTLET_CLUSTER_TOKEN: token,
          RAFTLET_KUBERNETES: '0',
          RAFTLET_HEARTBEAT_MS: String(options.heartbeatMs ?? 100),
          RAFTLET_ELECTION_TIMEOUT_MS: String(options.electionTimeoutMs ?? 1000),
          RAFTLET_REQUEST_TIMEOUT_MS: String(options.requestTimeoutMs ?? 5000),
          RAFTLET_LOG_LEVEL: 'info',
          ...options.env,
          ...options.nodeEnv?.(i + 1, dir),
        },
      };
    });
  }

  /** 1..N */
  get ordinals(): number[] {
    return this.nodes.map((n) => n.node);
  }

  spec(node: number): NodeSpec {
    const spec = this.nodes[node - 1];
    if (spec === undefined) throw new Error(`${this.name} has nodes 1..${this.nodes.length}, not ${node}`);
    return spec;
  }

  /** The node with this member id. */
  nodeOf(id: string): number {
    const spec = this.nodes.find((n) => n.id === id);
    if (spec === undefined) throw new Error(`${this.name} has no member ${JSON.stringify(id)}`);
    return spec.node;
  }

  pid(node: number): number {
    return this.process(node).pid;
  }

  /** Running and not paused by sigstop. */
  isLive(node: number): boolean {
    const r = this.running.get(node);
    return r !== undefined && r.running && !r.paused;
  }

  /** Nodes whose process runs and is not paused. */
  live(): number[] {
    return this.ordinals.filter((n) => this.isLive(n));
  }

  // ---- lifecycle ----

  /** Starts the node's process (first start or restart, same data dir and ports). Waits until its
   * client API answers unless wait is 'none'; a process that exits instead fails with its log. env:
   * variables for this start only, over the node's own (e.g. a test hook in NODE_OPTIONS). */
  async start(node: number, options: { wait?: 'up' | 'none'; args?: readonly string[]; env?: Readonly<Record<string, string>> } = {}): Promise<void> {
    if (this.stopped) throw new Error(`${this.name} was stopped`);
    const spec = this.spec(node);
    const previous = this.running.get(node);
    if (previous?.running) throw new Error(`${spec.id} is still running (pid ${previous.pid}); stop it first`);
    const launched = options.env === undefined ? spec : { ...spec, env: { ...spec.env, ...options.env } };
    const started = new RunningNode(launched, options.args ?? [], this.options.launchPrefix?.(node) ?? [], this.options.bin);
    this.running.set(node, started);
    if (options.wait === 'none') return;
    await waitUntil(`${spec.id} to answer GET /v1/status`, async () => {
      if (!started.running) throw new GiveUp(`${spec.id} exited (${describeExit(started.exit)}) while starting:\n${this.logTail(node, 20)}`);
      return (await this.tryStatus(node, 1000)) !== null;
    });
  }

  restart(node: number, options: { wait?: 'up' | 'none' } = {}): Promise<void> {
    return this.start(node, options);
  }

  /** Resolves with how the node's current process ended, waiting at most timeoutMs. */
  async waitExit(node: number, timeoutMs = DEFAULT_WAIT_MS): Promise<ExitInfo> {
    const r = this.process(node);
    const info = await exitWithin(r, timeoutMs);
    if (info === null) throw new Error(`${this.spec(node).id} (pid ${r.pid}) did not exit within ${timeoutMs} ms:\n${this.logTail(node, 20)}`);
    return info;
  }

  /** kill -9; resolves once the process is gone. */
  async kill9(node: number): Promise<ExitInfo> {
    const r = this.process(node);
    if (r.running) r.child.kill('SIGKILL');
    r.paused = false;
    return this.waitExit(node);
  }

  /** SIGTERM and wait for the exit; resolves with the exit code (null if a signal ended it). If it
   * does not exit within timeoutMs it is killed and this fails. */
  async sigterm(node: number, timeoutMs = DEFAULT_WAIT_MS): Promise<number | null> {
    const r = this.process(node);
    if (!r.running) throw new Error(`${this.spec(node).id} is not running (${describeExit(r.exit)})`);
    if (r.paused) this.sigcont(node);
    r.child.kill('SIGTERM');
    const info = await exitWithin(r, timeoutMs);
    if (info === null) {
      r.child.kill('SIGKILL');
      await r.exited;
      throw new Error(`${this.spec(node).id} did not exit within ${timeoutMs} ms of SIGTERM; killed it:\n${this.logTail(node, 20)}`);
    }
    return info.code;
  }

  /** SIGSTOP: the process stays, frozen (a long GC pause, a stuck VM). */
  sigstop(node: number): void {
    const r = this.process(node);
    if (!r.running) throw new Error(`${this.spec(node).id} is not running`);
    process.kill(r.pid, 'SIGSTOP');
    r.paused = true;
  }

  sigcont(node: number): void {
    const r = this.process(node);
    if (!r.running) throw new Error(`${this.spec(node).id} is not running`);
    process.kill(r.pid, 'SIGCONT');
    r.paused = false;
  }

  /** Kills every process (kill -9 by PID), removes the temp dir unless RAFTLET_KEEP_TEST_DATA=1,
   * releases the ports. Safe to call more than once. */
  async stopAll(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const ending: Promise<ExitInfo>[] = [];
    for (const r of this.running.values()) {
      if (!r.running) continue;
      try {
        r.child.kill('SIGKILL');
      } catch {
        // gone meanwhile
      }
      ending.push(r.exited);
    }
    await Promise.all(ending);
    await this.agent.destroy().catch(() => undefined);
    releasePorts(this.ports);
    if (process.env.RAFTLET_KEEP_TEST_DATA === '1') {
      process.stderr.write(`[${this.name}] RAFTLET_KEEP_TEST_DATA=1: data and logs kept in ${this.dir}\n`);
    } else {
      await rm(this.dir, { recursive: true, force: true });
    }
  }

  private process(node: number): RunningNode {
    const r = this.running.get(node);
    if (r === undefined) throw new Error(`${this.spec(node).id} was never started`);
    return r;
  }

  // ---- logs ----

  /** Everything the node's processes wrote so far (stdout and stderr, every restart). */
  logText(node: number): string {
    const file = this.spec(node).logFile;
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  logTail(node: number, lines = 30): string {
    return this.logText(node).trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** The last lines of every node's log, for a failed test's output. */
  dumpLogs(lines = 30): string {
    return this.nodes
      .map((n) => `==== ${this.name} ${n.id} (${this.describeProcess(n.node)}) ${n.logFile}, last ${lines} lines ====\n${this.logTail(n.node, lines)}`)
      .join('\n');
  }

  private describeProcess(node: number): string {
    const r = this.running.get(node);
    if (r === undefined) return 'never started';
    if (!r.running) return describeExit(r.exit);
    return `pid ${r.pid}${r.paused ? ', paused' : ''}`;
  }

  // ---- HTTP ----

  /** One request to the node's client API; network errors reject. */
  async request(node: number, method: Dispatcher.HttpMethod, pathAndQuery: string, options: RequestOptions = {}): Promise<HttpAnswer> {
    return this.requestTo(this.spec(node).apiUrl, method, pathAndQuery, options);
  }

  /** One request to the node's peer port (SPEC §5); no token is added. */
  async peerRequest(node: number, method: Dispatcher.HttpMethod, pathAndQuery: string, options: RequestOptions = {}): Promise<HttpAnswer> {
    return this.requestTo(this.spec(node).peerUrl, method, pathAndQuery, options);
  }

  private async requestTo(origin: string, method: Dispatcher.HttpMethod, pathAndQuery: string, options: RequestOptions): Promise<HttpAnswer> {
    const response = await request(`${origin}${pathAndQuery}`, {
      method,
      headers: { ...options.headers },
      body: options.body,
      dispatcher: this.agent,
      signal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_WAIT_MS),
    });
    const body = Buffer.from(await response.body.arrayBuffer());
    const text = body.toString('utf8');
    return {
      status: response.statusCode,
      headers: response.headers,
      body,
      text,
      errorCode: errorCodeOf(text),
      json<T>(): T {
        try {
          return JSON.parse(text) as T;
        } catch {
          throw new Error(`${method} ${origin}${pathAndQuery} answered ${response.statusCode} with non-JSON: ${text.slice(0, 300)}`);
        }
      },
    };
  }

  async status(node: number, timeoutMs = 5_000): Promise<ApiStatus> {
    const answer = await this.request(node, 'GET', '/v1/status', { timeoutMs });
    if (answer.status !== 200) throw new Error(`${this.spec(node).id} GET /v1/status answered ${answer.status}: ${answer.text}`);
    return answer.json<ApiStatus>();
  }

  /** Every node's term, last log index, commit index and leader, as one comparable string: equal
   * before and after a refused request means the request changed nothing. */
  async stateText(): Promise<string> {
    const statuses = await Promise.all(this.ordinals.map((n) => this.status(n)));
    return JSON.stringify(statuses.map((s) => [s.id, s.term, s.lastLogIndex, s.commitIndex, s.leader]));
  }

  /** The status, or null when the node does not answer (down, paused, starting). */
  async tryStatus(node: number, timeoutMs = 2_000): Promise<ApiStatus | null> {
    try {
      return await this.status(node, timeoutMs);
    } catch {
      return null;
    }
  }

  put(node: number, key: string, value: string | Uint8Array, options: WriteOptions = {}): Promise<HttpAnswer> {
    return this.request(node, 'PUT', `/v1/kv/${encodeURIComponent(key)}`, {
      body: value,
      headers: { 'content-type': 'application/octet-stream', ...conditionHeaders(options), ...options.headers },
      timeoutMs: options.timeoutMs,
    });
  }

  get(node: number, key: string, options: ReadOptions = {}): Promise<HttpAnswer> {
    const query = options.consistency === 'stale' ? '?consistency=stale' : '';
    return this.request(node, 'GET', `/v1/kv/${encodeURIComponent(key)}${query}`, { timeoutMs: options.timeoutMs });
  }

  del(node: number, key: string, options: WriteOptions = {}): Promise<HttpAnswer> {
    return this.request(node, 'DELETE', `/v1/kv/${encodeURIComponent(key)}`, {
      headers: { ...conditionHeaders(options), ...options.headers },
      timeoutMs: options.timeoutMs,
    });
  }

  /** GET /v1/kv?prefix=P&limit=N; values as text. */
  async list(node: number, prefix = '', options: ReadOptions & { limit?: number } = {}): Promise<Map<string, { value: string; modIndex: number }>> {
    const params = new URLSearchParams({ prefix, limit: String(options.limit ?? 1000) });
    if (options.consistency === 'stale') params.set('consistency', 'stale');
    const answer = await this.request(node, 'GET', `/v1/kv?${params.toString()}`, { timeoutMs: options.timeoutMs });
    if (answer.status !== 200) throw new Error(`${this.spec(node).id} GET /v1/kv answered ${answer.status}: ${answer.text}`);
    const body = answer.json<{ items: { key: string; value: string; modIndex: number; encoding?: string }[] }>();
    return new Map(body.items.map((item) => [item.key, { value: item.value, modIndex: item.modIndex }]));
  }

  /** PUT that must answer 200; resolves with its index and term. */
  async putOk(node: number, key: string, value: string | Uint8Array, options: WriteOptions = {}): Promise<{ index: number; term: number }> {
    const answer = await this.put(node, key, value, options);
    if (answer.status !== 200) throw new Error(`PUT ${key} on ${this.spec(node).id} answered ${answer.status}: ${answer.text}`);
    return answer.json<{ index: number; term: number }>();
  }

  /** GET that must answer 200; resolves with the value as text. */
  async getText(node: number, key: string, options: ReadOptions = {}): Promise<string> {
    const answer = await this.get(node, key, options);
    if (answer.status !== 200) throw new Error(`GET ${key} on ${this.spec(node).id} answered ${answer.status}: ${answer.text}`);
    return answer.text;
  }

  // ---- conditions ----

  /**
   * Waits until the nodes in `among` (default: every live node) agree on one leader in one term,
   * and that leader's own status says leader in that term. `minTerm` waits for a later term (a new
   * election); `not` refuses a given leader.
   */
  async waitForLeader(options: WaitOptions & { among?: readonly number[]; minTerm?: number; not?: number } = {}): Promise<LeaderView> {
    return waitUntil(`one leader agreed by ${this.name} nodes ${(options.among ?? this.live()).join(', ')}`, async () => {
      const among = options.among ?? this.live();
      if (among.length === 0) throw new Error('no live nodes');
      const statuses = await Promise.all(among.map(async (n) => ({ n, s: await this.status(n, 2_000) })));
      const first = statuses[0].s;
      const described = statuses.map(({ s }) => `${s.id}: ${s.role} term ${s.term} leader ${s.leader ?? 'none'}`).join('; ');
      if (first.leader === null) throw new Error(described);
      if (!statuses.every(({ s }) => s.leader === first.leader && s.term === first.term)) throw new Error(described);
      if (options.minTerm !== undefined && first.term < options.minTerm) throw new Error(`term ${first.term} < ${options.minTerm}: ${described}`);
      const node = this.nodeOf(first.leader);
      if (options.not === node) throw new Error(`still ${first.leader}: ${described}`);
      const own = statuses.find((x) => x.n === node)?.s ?? (await this.status(node, 2_000));
      if (own.role !== 'leader' || own.term !== first.term) throw new Error(`${own.id} says ${own.role} in term ${own.term}: ${described}`);
      return { node, id: first.leader, term: first.term };
    }, options);
  }

  /** Waits until the node has applied at least `index` (its status appliedIndex and commitIndex). */
  async waitForApplied(node: number, index: number, options: WaitOptions = {}): Promise<ApiStatus> {
    return waitUntil(`${this.spec(node).id} to apply index ${index}`, async () => {
      const s = await this.status(node, 2_000);
      if (s.commitIndex < index || s.appliedIndex < index) throw new Error(`commitIndex ${s.commitIndex}, appliedIndex ${s.appliedIndex}`);
      return s;
    }, options);
  }
}

function conditionHeaders(options: WriteOptions): Record<string, string> {
  const headers: Record<string, string> = {};
  if (options.ifMatch !== undefined) headers['if-match'] = typeof options.ifMatch === 'number' ? `"${options.ifMatch}"` : options.ifMatch;
  if (options.ifNoneMatch === true) headers['if-none-match'] = '*';
  return headers;
}

export function describeExit(exit: ExitInfo | null): string {
  if (exit === null) return 'running';
  return exit.signal !== null ? `killed by ${exit.signal}` : `exit code ${exit.code ?? '?'}`;
}

export interface CommandResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs bin/raftlet.js with args to its end (a client command, or `run` that is expected to exit);
 * bounded so a hung command fails the test instead of stalling it. env defaults to baseEnv(). */
export function runRaftlet(args: readonly string[], options: { env?: Readonly<Record<string, string>>; timeoutMs?: number } = {}): Promise<CommandResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_WAIT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RAFTLET_BIN, ...args], { cwd: REPO_ROOT, env: options.env ?? baseEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    allChildren.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`raftlet ${args.join(' ')} did not finish within ${timeoutMs} ms; stdout: ${stdout.slice(-2000)} stderr: ${stderr.slice(-2000)}`));
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      allChildren.delete(child);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      allChildren.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Starts every node of a new cluster and waits until each answers its client API (not for a leader). */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  if (!Number.isSafeInteger(options.nodes) || options.nodes < 1) throw new Error(`nodes must be a positive integer, got ${options.nodes}`);
  const root = options.dataRoot ?? tmpdir();
  mkdirSync(root, { recursive: true });
  const dir = await mkdtemp(path.join(root, `raftlet-bb-${(options.name ?? 'cluster').replace(/[^a-z0-9-]/gi, '-')}-`));
  const ports = await reservePorts(options.nodes * 3);
  const cluster = new Cluster(options, dir, ports, randomBytes(24).toString('hex'));
  try {
    await Promise.all(cluster.ordinals.map((n) => cluster.start(n)));
  } catch (error) {
    process.stderr.write(`${cluster.dumpLogs(20)}\n`);
    await cluster.stopAll();
    throw error;
  }
  return cluster;
}

/**
 * Registers hooks in the current suite (call it inside describe()): after a failed test, the log
 * tails of the clusters that test started are printed; after the suite, every cluster is stopped.
 * Returns `start`, which is startCluster remembered for those hooks.
 */
export function clusterHooks(): { start(options: ClusterOptions): Promise<Cluster> } {
  const all: Cluster[] = [];
  /** Clusters started outside any test (in before()): shared by the suite's tests. */
  const shared = new Set<Cluster>();
  let inTest = 0;
  // Hooks run for subtests too; only the suite's own tests (the shallowest) report.
  const depth = (t: { fullName: string }): number => t.fullName.split(' > ').length;
  let testDepth = Number.POSITIVE_INFINITY;
  const firstOf = new Map<string, number>();
  beforeEach((t) => {
    testDepth = Math.min(testDepth, depth(t));
    if (depth(t) !== testDepth) return;
    inTest++;
    firstOf.set(t.fullName, all.length);
  });
  afterEach((t) => {
    if (depth(t) !== testDepth) return;
    inTest--;
    const mine = all.slice(firstOf.get(t.fullName) ?? all.length);
    firstOf.delete(t.fullName);
    // Only a test's context says whether it passed; a suite's has no verdict.
    if ((t as { passed?: boolean }).passed !== false) return;
    for (const c of [...shared, ...mine]) process.stderr.write(`\n[${t.name}] logs of ${c.name} in ${c.dir}:\n${c.dumpLogs(40)}\n`);
  });
  after(async () => {
    await Promise.all(all.map((c) => c.stopAll()));
  });
  return {
    async start(options: ClusterOptions): Promise<Cluster> {
      const c = await startCluster(options);
      all.push(c);
      if (inTest === 0) shared.add(c);
      return c;
    },
  };
}

// ---- data directory files (SPEC §8; layout in src/storage/FORMAT.md) -------------------------------

/** The node's WAL segment files, oldest first, as absolute paths. */
export function walSegments(spec: NodeSpec): string[] {
  if (!existsSync(spec.dataDir)) return [];
  return readdirSync(spec.dataDir).filter((f) => /^wal-\d+\.log$/.test(f)).sort().map((f) => path.join(spec.dataDir, f));
}

export function snapshotFiles(spec: NodeSpec): string[] {
  if (!existsSync(spec.dataDir)) return [];
  return readdirSync(spec.dataDir).filter((f) => /^snap-.*\.snap$/.test(f)).sort().map((f) => path.join(spec.dataDir, f));
}
