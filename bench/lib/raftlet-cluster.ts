// A 3-node raftlet cluster on 127.0.0.1: real `raftlet run` processes (this Node binary,
// bin/raftlet.js), static RAFTLET_PEERS, a cluster token, data in a temp dir, fsync as always.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request, type Dispatcher } from 'undici';
import { waitStable, type BenchCluster, type MemberView, type RequestSpec } from './cluster.ts';
import { sumOver, sumSamples, type Counters } from './scrape.ts';
import { freePorts, makeTempDir, removeTempDir, spawnLogged, stopProcess, type Spawned } from './procs.ts';

export const RAFTLET_BIN = fileURLToPath(new URL('../../bin/raftlet.js', import.meta.url));

export interface RaftletClusterOptions {
  readonly size: number;
  readonly heartbeatMs: number;
  readonly electionTimeoutMs: number;
  /** Parent of the temp data dir. */
  readonly parentDir?: string;
  /** The launcher to run; default this checkout's bin/raftlet.js (see compiledLauncher). */
  readonly bin?: string;
  /** Extra Node flags for every node (e.g. --cpu-prof). */
  readonly nodeFlags?: readonly string[];
  /** Extra environment for every node (e.g. RAFTLET_USE_DIST). */
  readonly env?: Readonly<Record<string, string>>;
  readonly logLevel?: string;
  /** https when `env` turns peer TLS on (RAFTLET_PEER_TLS_*); default http. */
  readonly peerScheme?: 'http' | 'https';
}

interface Member {
  readonly id: string;
  readonly peerPort: number;
  readonly apiPort: number;
  readonly metricsPort: number;
  readonly dataDir: string;
  readonly logFile: string;
  process: Spawned | null;
}

export class RaftletCluster implements BenchCluster {
  readonly system = 'raftlet' as const;
  readonly size: number;
  readonly dir: string;
  private readonly options: RaftletClusterOptions;
  private readonly token = randomBytes(32).toString('hex');
  private members: Member[] = [];

  constructor(options: RaftletClusterOptions) {
    this.options = options;
    this.size = options.size;
    this.dir = makeTempDir('raftlet-bench-', options.parentDir);
  }

  async start(): Promise<void> {
    const ports = await freePorts(3 * this.size);
    this.members = Array.from({ length: this.size }, (_, i): Member => ({
      id: `node-${i + 1}`,
      peerPort: ports[3 * i],
      apiPort: ports[3 * i + 1],
      metricsPort: ports[3 * i + 2],
      dataDir: join(this.dir, `node-${i + 1}`),
      logFile: join(this.dir, `node-${i + 1}.log`),
      process: null,
    }));
    for (const m of this.members) mkdirSync(m.dataDir, { recursive: true });
    for (let i = 0; i < this.size; i++) this.launch(i);
    await waitStable(this, 30_000);
  }

  private launch(i: number): void {
    const m = this.members[i];
    const env: NodeJS.ProcessEnv = {};
    // Only what we set: a RAFTLET_* variable of the caller's shell must not change the cluster.
    for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('RAFTLET_')) env[name] = value;
    Object.assign(env, {
      RAFTLET_NODE_ID: m.id,
      RAFTLET_PEER_LISTEN: `127.0.0.1:${m.peerPort}`,
      RAFTLET_API_LISTEN: `127.0.0.1:${m.apiPort}`,
      RAFTLET_METRICS_LISTEN: `127.0.0.1:${m.metricsPort}`,
      RAFTLET_PEERS: this.members.map((p) => `${p.id}=${this.options.peerScheme ?? 'http'}://127.0.0.1:${p.peerPort}`).join(','),
      RAFTLET_DATA_DIR: m.dataDir,
      RAFTLET_CLUSTER_TOKEN: this.token,
      RAFTLET_KUBERNETES: '0',
      RAFTLET_HEARTBEAT_MS: String(this.options.heartbeatMs),
      RAFTLET_ELECTION_TIMEOUT_MS: String(this.options.electionTimeoutMs),
      RAFTLET_LOG_LEVEL: this.options.logLevel ?? 'info',
      ...this.options.env,
    });
    m.process = spawnLogged(`raftlet ${m.id}`, process.execPath, [...(this.options.nodeFlags ?? []), this.options.bin ?? RAFTLET_BIN, 'run'], env, m.logFile);
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => (m.process ? stopProcess(m.process, 10_000) : Promise.resolve())));
    removeTempDir(this.dir);
  }

  peerPort(i: number): number {
    return this.members[i].peerPort;
  }

  apiUrl(i: number): string {
    return `http://127.0.0.1:${this.members[i].apiPort}`;
  }

  pid(i: number): number | null {
    const p = this.members[i].process;
    return p !== null && p.alive() ? p.pid : null;
  }

  memberId(i: number): string {
    return this.members[i].id;
  }

  logFile(i: number): string {
    return this.members[i].logFile;
  }

  async view(i: number, timeoutMs: number, dispatcher?: Dispatcher): Promise<MemberView | null> {
    try {
      const res = await request(`${this.apiUrl(i)}/v1/status`, { signal: AbortSignal.timeout(timeoutMs), dispatcher });
      const text = await res.body.text();
      if (res.statusCode !== 200) return null;
      const s = JSON.parse(text) as { id: string; leader: string | null; appliedIndex: number };
      return { self: s.id, leader: s.leader, appliedIndex: s.appliedIndex };
    } catch {
      return null;
    }
  }

  write(key: string, value: Buffer): RequestSpec {
    return {
      method: 'PUT',
      path: `/v1/kv/${encodeURIComponent(key)}`,
      headers: { 'content-type': 'application/octet-stream' },
      body: value,
    };
  }

  accepted(statusCode: number): boolean {
    return statusCode === 200;
  }

  signal(i: number, signal: NodeJS.Signals): void {
    this.members[i].process?.child.kill(signal);
  }

  async exited(i: number): Promise<void> {
    await this.members[i].process?.exited;
  }

  async restart(i: number): Promise<void> {
    await this.exited(i);
    this.launch(i);
  }

  counters(): Promise<Counters | null> {
    const urls = this.members.map((_, i) => `${this.metricsUrl(i)}/metrics`);
    return sumOver(urls, (text) => ({
      fsyncs: sumSamples(text, 'raftlet_fsync_duration_seconds_count', 'kind="wal"'),
      fsyncSeconds: sumSamples(text, 'raftlet_fsync_duration_seconds_sum', 'kind="wal"'),
      peerRequests: sumSamples(text, 'raftlet_rpc_duration_seconds_count', 'kind="messages"'),
      peerRequestSeconds: sumSamples(text, 'raftlet_rpc_duration_seconds_sum', 'kind="messages"'),
    }));
  }

  /** Base URL of member i's metrics server (/metrics). */
  metricsUrl(i: number): string {
    return `http://127.0.0.1:${this.members[i].metricsPort}`;
  }
}
