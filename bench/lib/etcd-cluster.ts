// A 3-member etcd (the Debian etcd-server package) on 127.0.0.1 as the reference: distinct ports,
// data in a temp dir, fsync on (etcd's default). Writes go through its v3 gRPC-gateway JSON API,
// which costs about what raftlet's HTTP API costs, so the comparison is HTTP to HTTP.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { request, type Dispatcher } from 'undici';
import { waitStable, type BenchCluster, type MemberView, type RequestSpec } from './cluster.ts';
import { sumOver, sumSamples, type Counters } from './scrape.ts';
import { freePorts, makeTempDir, removeTempDir, spawnLogged, stopProcess, type Spawned } from './procs.ts';

export const ETCD_BIN = '/usr/bin/etcd';

export function etcdAvailable(): boolean {
  return existsSync(ETCD_BIN);
}

export interface EtcdClusterOptions {
  readonly size: number;
  readonly heartbeatMs: number;
  readonly electionTimeoutMs: number;
  readonly parentDir?: string;
}

interface Member {
  readonly name: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  readonly logFile: string;
  /** etcd's member id as the gateway prints it (decimal uint64 string); known after start. */
  id: string;
  process: Spawned | null;
}

export class EtcdCluster implements BenchCluster {
  readonly system = 'etcd' as const;
  readonly size: number;
  readonly dir: string;
  private readonly options: EtcdClusterOptions;
  private members: Member[] = [];

  constructor(options: EtcdClusterOptions) {
    this.options = options;
    this.size = options.size;
    this.dir = makeTempDir('etcd-bench-', options.parentDir);
  }

  async start(): Promise<void> {
    const ports = await freePorts(2 * this.size);
    this.members = Array.from({ length: this.size }, (_, i): Member => ({
      name: `etcd-${i + 1}`,
      clientPort: ports[2 * i],
      peerPort: ports[2 * i + 1],
      dataDir: join(this.dir, `etcd-${i + 1}`),
      logFile: join(this.dir, `etcd-${i + 1}.log`),
      id: `etcd-${i + 1}`,
      process: null,
    }));
    for (let i = 0; i < this.size; i++) this.launch(i);
    // Member ids are derived by etcd from the cluster's URLs; ask each member for its own.
    const deadline = Date.now() + 30_000;
    for (let i = 0; i < this.size; i++) {
      for (;;) {
        const status = await this.status(i, 1000);
        if (status !== null) {
          this.members[i].id = status.self;
          break;
        }
        if (Date.now() > deadline || !this.members[i].process?.alive()) {
          throw new Error(`etcd member ${this.members[i].name} did not answer on ${this.apiUrl(i)}; see ${this.members[i].logFile}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    await waitStable(this, 30_000);
  }

  private launch(i: number): void {
    const m = this.members[i];
    const peerUrl = (p: Member): string => `http://127.0.0.1:${p.peerPort}`;
    const args = [
      `--name=${m.name}`,
      `--data-dir=${m.dataDir}`,
      `--listen-client-urls=http://127.0.0.1:${m.clientPort}`,
      `--advertise-client-urls=http://127.0.0.1:${m.clientPort}`,
      `--listen-peer-urls=${peerUrl(m)}`,
      `--initial-advertise-peer-urls=${peerUrl(m)}`,
      `--initial-cluster=${this.members.map((p) => `${p.name}=${peerUrl(p)}`).join(',')}`,
      '--initial-cluster-state=new',
      `--initial-cluster-token=bench-${this.dir.slice(-6)}`,
      `--heartbeat-interval=${this.options.heartbeatMs}`,
      `--election-timeout=${this.options.electionTimeoutMs}`,
      '--logger=zap',
      '--log-outputs=stderr',
    ];
    const env: NodeJS.ProcessEnv = {};
    // etcd reads ETCD_* variables as flags: none of the caller's may leak in.
    for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('ETCD')) env[name] = value;
    m.process = spawnLogged(`etcd ${m.name}`, ETCD_BIN, args, env, m.logFile);
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => (m.process ? stopProcess(m.process, 10_000) : Promise.resolve())));
    removeTempDir(this.dir);
  }

  apiUrl(i: number): string {
    return `http://127.0.0.1:${this.members[i].clientPort}`;
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

  view(i: number, timeoutMs: number, dispatcher?: Dispatcher): Promise<MemberView | null> {
    return this.status(i, timeoutMs, dispatcher);
  }

  /** POST /v3/maintenance/status: the member's id, the leader it knows ("0" = none) and its applied index. */
  private async status(i: number, timeoutMs: number, dispatcher?: Dispatcher): Promise<MemberView | null> {
    try {
      const res = await request(`${this.apiUrl(i)}/v3/maintenance/status`, {
        method: 'POST',
        body: '{}',
        headers: { 'content-type': 'application/json' },
        signal: AbortSignal.timeout(timeoutMs),
        dispatcher,
      });
      const text = await res.body.text();
      if (res.statusCode !== 200) return null;
      const s = JSON.parse(text) as { header?: { member_id?: string }; leader?: string; raftAppliedIndex?: string; raftIndex?: string };
      if (s.header?.member_id === undefined) return null;
      const leader = s.leader === undefined || s.leader === '0' ? null : s.leader;
      return { self: s.header.member_id, leader, appliedIndex: Number(s.raftAppliedIndex ?? s.raftIndex ?? 0) };
    } catch {
      return null;
    }
  }

  write(key: string, value: Buffer): RequestSpec {
    const body = Buffer.from(JSON.stringify({ key: Buffer.from(key).toString('base64'), value: value.toString('base64') }));
    return { method: 'POST', path: '/v3/kv/put', headers: { 'content-type': 'application/json' }, body };
  }

  accepted(statusCode: number, body: string): boolean {
    // The gateway answers errors with 200 on some paths only in old versions; an "error" field means refused.
    return statusCode === 200 && !body.includes('"error"');
  }

  counters(): Promise<Counters | null> {
    // etcd serves /metrics on its client URL; its peers talk over long-lived streams, not requests.
    const urls = this.members.map((_, i) => `${this.apiUrl(i)}/metrics`);
    return sumOver(urls, (text) => ({
      fsyncs: sumSamples(text, 'etcd_disk_wal_fsync_duration_seconds_count'),
      fsyncSeconds: sumSamples(text, 'etcd_disk_wal_fsync_duration_seconds_sum'),
      peerRequests: null,
      peerRequestSeconds: null,
    }));
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
}
