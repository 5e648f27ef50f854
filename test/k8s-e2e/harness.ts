// End-to-end harness for issue 4: real `raftlet run` processes named like StatefulSet pods
// (raftlet-0, raftlet-1, ...), discovering each other through a real dnsmasq (SRV records carry
// each pod's peer port, A records point at 127.0.0.1) and labelling their pods on the Kubernetes
// API double through a kubeconfig. Nothing of raftlet is stubbed; the only aid is the preloaded
// DNS lookup shim (see dns-lookup-shim.ts) that a pod's resolver would make unnecessary.
//
// One dnsmasq and one set of ports serve a whole test file; each scenario gets its own API double,
// data directories and cluster token, and must be stopped before the next one starts.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, afterEach, before } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { startDnsDouble, type DnsDouble } from '../support/k8s-double/dns.ts';
import { startK8sDouble, type JsonObject, type K8sDouble, type Rule } from '../support/k8s-double/index.ts';
import { allChildren, baseEnv, GiveUp, RAFTLET_BIN, REPO_ROOT, waitUntil, type ApiStatus, type WaitOptions } from '../support/cluster.ts';
import { releasePorts, reservePorts } from '../support/ports.ts';

export { GiveUp, waitUntil, type ApiStatus } from '../support/cluster.ts';

export const SERVICE = 'raftlet.e2e.svc.cluster.local';
export const NAMESPACE = 'e2e';
export const ROLE_LABEL = 'raftlet.io/role';
export const TERM_ANNOTATION = 'raftlet.io/term';
/** raftlet-0 .. raftlet-4: enough for 3 → 5 → 3. */
export const MAX_PODS = 5;
export const SHIM_PATH = fileURLToPath(new URL('./dns-lookup-shim.ts', import.meta.url));
/** Labels and annotations other controllers put on the pods: raftlet must leave them alone. */
export const FOREIGN_LABELS: Readonly<Record<string, string>> = { 'app.kubernetes.io/name': 'raftlet', 'controller-revision-hash': 'raftlet-7d9f' };
export const FOREIGN_ANNOTATIONS: Readonly<Record<string, string>> = { 'example.com/owner': 'team-storage' };

export const podId = (ordinal: number): string => `raftlet-${ordinal}`;

export interface PodSpec {
  readonly ordinal: number;
  readonly id: string;
  readonly peerPort: number;
  readonly apiPort: number;
  readonly metricsPort: number;
  readonly apiUrl: string;
  readonly metricsUrl: string;
  /** What SRV publishes and RAFTLET_ADVERTISE_URL says: http://raftlet-i.<service>:<peer port>. */
  readonly advertiseUrl: string;
  readonly dataDir: string;
  readonly logFile: string;
}

export interface ScenarioOptions {
  readonly name: string;
  /** Pods created in the API double (raftlet-0 .. raftlet-(n-1)); default MAX_PODS. */
  readonly podsInApi?: number;
  /** Preload the DNS lookup shim into the processes; default true. */
  readonly shim?: boolean;
  readonly electionTimeoutMs?: number;
  readonly heartbeatMs?: number;
  readonly env?: Readonly<Record<string, string>>;
  /** The service account's Role in the API double; default specRole(true). */
  readonly rules?: readonly Rule[];
  /** What kubectl may do (it sends no token over plain HTTP, so it is the anonymous user). */
  readonly anonymousRules?: readonly Rule[];
  /** Extra variables for one pod (e.g. its own RAFTLET_APP_HEALTH_URL); they win over `env`. */
  readonly podEnv?: (ordinal: number) => Readonly<Record<string, string>>;
}

class PodProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  paused = false;

  constructor(spec: PodSpec, env: Record<string, string>, shim: boolean) {
    const log = openSync(spec.logFile, 'a');
    try {
      writeSync(log, `---- e2e: starting ${spec.id} at ${new Date().toISOString()} ----\n`);
      const args = [...(shim ? ['--import', SHIM_PATH] : []), RAFTLET_BIN, 'run'];
      this.child = spawn(process.execPath, args, { env, cwd: REPO_ROOT, stdio: ['ignore', log, log] });
    } finally {
      closeSync(log);
    }
    allChildren.add(this.child);
    this.exited = new Promise((resolve) => {
      const done = (code: number | null, signal: NodeJS.Signals | null): void => {
        allChildren.delete(this.child);
        this.exit ??= { code, signal };
        resolve();
      };
      this.child.once('exit', done);
      this.child.once('error', () => done(null, null));
    });
  }

  get running(): boolean {
    return this.exit === null;
  }
}

/** One scenario: up to MAX_PODS pods, one API double, one data dir. */
export class PodCluster {
  readonly name: string;
  readonly dir: string;
  readonly token = randomBytes(24).toString('hex');
  readonly k8s: K8sDouble;
  readonly dns: DnsDouble;
  readonly pods: readonly PodSpec[];
  readonly options: ScenarioOptions;
  private readonly procs = new Map<number, PodProcess>();
  private readonly agent = new Agent({ connectTimeout: 2_000, keepAliveTimeout: 1_000, keepAliveMaxTimeout: 2_000 });
  private stopped = false;

  constructor(options: ScenarioOptions, dir: string, ports: readonly number[], dns: DnsDouble, k8s: K8sDouble) {
    this.options = options;
    this.name = options.name;
    this.dir = dir;
    this.dns = dns;
    this.k8s = k8s;
    this.pods = Array.from({ length: MAX_PODS }, (_, ordinal): PodSpec => {
      const [peerPort, apiPort, metricsPort] = [ports[3 * ordinal], ports[3 * ordinal + 1], ports[3 * ordinal + 2]];
      const id = podId(ordinal);
      return {
        ordinal,
        id,
        peerPort,
        apiPort,
        metricsPort,
        apiUrl: `http://127.0.0.1:${apiPort}`,
        metricsUrl: `http://127.0.0.1:${metricsPort}`,
        advertiseUrl: `http://${id}.${SERVICE}:${peerPort}`,
        dataDir: path.join(dir, id, 'data'),
        logFile: path.join(dir, `${id}.log`),
      };
    });
  }

  spec(ordinal: number): PodSpec {
    const spec = this.pods[ordinal];
    if (spec === undefined) throw new Error(`pods are raftlet-0..raftlet-${MAX_PODS - 1}, not ${ordinal}`);
    return spec;
  }

  ordinalOf(id: string): number {
    const spec = this.pods.find((p) => p.id === id);
    if (spec === undefined) throw new Error(`no pod ${JSON.stringify(id)}`);
    return spec.ordinal;
  }

  envOf(ordinal: number): Record<string, string> {
    const spec = this.spec(ordinal);
    return {
      ...baseEnv(),
      RAFTLET_NODE_ID: spec.id,
      POD_NAME: spec.id,
      POD_NAMESPACE: NAMESPACE,
      RAFTLET_DISCOVERY_SERVICE: SERVICE,
      RAFTLET_DNS_SERVER: this.dns.server,
      RAFTLET_BOOTSTRAP_EXPECT: '3',
      KUBECONFIG: this.k8s.kubeconfigPath,
      RAFTLET_CLUSTER_TOKEN: this.token,
      RAFTLET_PEER_LISTEN: `127.0.0.1:${spec.peerPort}`,
      RAFTLET_ADVERTISE_URL: spec.advertiseUrl,
      RAFTLET_API_LISTEN: `127.0.0.1:${spec.apiPort}`,
      RAFTLET_METRICS_LISTEN: `127.0.0.1:${spec.metricsPort}`,
      RAFTLET_DATA_DIR: spec.dataDir,
      RAFTLET_HEARTBEAT_MS: String(this.options.heartbeatMs ?? 50),
      RAFTLET_ELECTION_TIMEOUT_MS: String(this.options.electionTimeoutMs ?? 500),
      RAFTLET_REQUEST_TIMEOUT_MS: '5000',
      RAFTLET_LOG_LEVEL: 'info',
      ...this.options.env,
      ...this.options.podEnv?.(ordinal),
    };
  }

  // ---- DNS ----

  /** Publishes exactly these pods in DNS (SRV with their peer ports, A records to 127.0.0.1). */
  publish(ordinals: readonly number[]): Promise<void> {
    return this.dns.setPods(ordinals.map((o) => ({ pod: this.spec(o).id, port: this.spec(o).peerPort })));
  }

  // ---- processes ----

  /** Starts the pod's process and waits until its client API answers (unless wait is 'none'). */
  async start(ordinal: number, options: { wait?: 'up' | 'none' } = {}): Promise<void> {
    if (this.stopped) throw new Error(`${this.name} was stopped`);
    const spec = this.spec(ordinal);
    if (this.procs.get(ordinal)?.running === true) throw new Error(`${spec.id} is still running`);
    const proc = new PodProcess(spec, this.envOf(ordinal), this.options.shim ?? true);
    this.procs.set(ordinal, proc);
    if (options.wait === 'none') return;
    await waitUntil(`${spec.id} to answer GET /v1/status`, async () => {
      if (!proc.running) throw new GiveUp(`${spec.id} exited (${JSON.stringify(proc.exit)}) while starting:\n${this.logTail(ordinal, 20)}`);
      return (await this.tryStatus(ordinal, 1000)) !== null;
    });
  }

  isLive(ordinal: number): boolean {
    const p = this.procs.get(ordinal);
    return p !== undefined && p.running && !p.paused;
  }

  /** Ordinals of running, unpaused pods. */
  live(): number[] {
    return this.pods.map((p) => p.ordinal).filter((o) => this.isLive(o));
  }

  async kill9(ordinal: number): Promise<void> {
    const p = this.proc(ordinal);
    if (p.running) p.child.kill('SIGKILL');
    p.paused = false;
    await p.exited;
  }

  /** SIGTERM and wait for the exit; resolves with the exit code (fails if it had to be killed). */
  async sigterm(ordinal: number, timeoutMs = 30_000): Promise<number | null> {
    const end = await this.terminate(ordinal, timeoutMs);
    if (end.killed) throw new Error(`${this.spec(ordinal).id} did not exit within ${timeoutMs} ms of SIGTERM:\n${this.logTail(ordinal, 20)}`);
    return end.code;
  }

  /**
   * What the kubelet does to a pod being deleted: SIGTERM, then SIGKILL once the grace period is
   * over. Resolves with how the process ended and whether it had to be killed.
   */
  async terminate(ordinal: number, graceMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; killed: boolean; ms: number }> {
    const p = this.proc(ordinal);
    const started = Date.now();
    if (!p.running) return { code: p.exit?.code ?? null, signal: p.exit?.signal ?? null, killed: false, ms: 0 };
    if (p.paused) this.sigcont(ordinal);
    p.child.kill('SIGTERM');
    const timer = new AbortController();
    const ended = await Promise.race([p.exited.then(() => true), delay(graceMs, false, { signal: timer.signal }).catch(() => false)]);
    timer.abort();
    if (!ended) {
      p.child.kill('SIGKILL');
      await p.exited;
    }
    return { code: p.exit?.code ?? null, signal: p.exit?.signal ?? null, killed: !ended, ms: Date.now() - started };
  }

  /** GET /readyz on the pod's metrics port: the status code, 0 when it does not answer. */
  async readyz(ordinal: number): Promise<{ status: number; reason: string }> {
    try {
      const answer = await this.http(`${this.spec(ordinal).metricsUrl}/readyz`, 'GET', { timeoutMs: 2_000 });
      return { status: answer.status, reason: (JSON.parse(answer.text) as { reason?: string }).reason ?? '' };
    } catch (err) {
      return { status: 0, reason: err instanceof Error ? err.message : String(err) };
    }
  }

  sigstop(ordinal: number): void {
    const p = this.proc(ordinal);
    process.kill(p.child.pid ?? -1, 'SIGSTOP');
    p.paused = true;
  }

  sigcont(ordinal: number): void {
    const p = this.proc(ordinal);
    process.kill(p.child.pid ?? -1, 'SIGCONT');
    p.paused = false;
  }

  private proc(ordinal: number): PodProcess {
    const p = this.procs.get(ordinal);
    if (p === undefined) throw new Error(`${this.spec(ordinal).id} was never started`);
    return p;
  }

  /** Kills every process, stops the API double, removes the data (unless RAFTLET_KEEP_TEST_DATA=1). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const p of this.procs.values()) {
      if (!p.running) continue;
      try {
        if (p.paused) p.child.kill('SIGCONT');
        p.child.kill('SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    await Promise.all([...this.procs.values()].map((p) => p.exited));
    await this.agent.destroy().catch(() => undefined);
    await this.k8s.stop();
    if (process.env.RAFTLET_KEEP_TEST_DATA === '1') process.stderr.write(`[${this.name}] data and logs kept in ${this.dir}\n`);
    else await rm(this.dir, { recursive: true, force: true });
  }

  // ---- logs ----

  logText(ordinal: number): string {
    const file = this.spec(ordinal).logFile;
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  logTail(ordinal: number, lines = 30): string {
    return this.logText(ordinal).trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** How many times the pod's processes logged that they bootstrapped a new cluster. */
  bootstrapCount(ordinal: number): number {
    return this.logText(ordinal)
      .split('\n')
      .filter((line) => line.includes('"msg":"bootstrapped a new cluster')).length;
  }

  dumpLogs(lines = 40): string {
    return [...this.procs.keys()]
      .sort()
      .map((o) => {
        const p = this.procs.get(o);
        const state = p === undefined ? 'never started' : p.running ? `pid ${p.child.pid ?? '?'}${p.paused ? ', paused' : ''}` : JSON.stringify(p.exit);
        return `==== ${this.name} ${this.spec(o).id} (${state}), last ${lines} lines ====\n${this.logTail(o, lines)}`;
      })
      .join('\n');
  }

  // ---- HTTP ----

  async http(url: string, method: string, options: { body?: string; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<{ status: number; text: string }> {
    const response = await request(url, {
      method: method as 'GET',
      body: options.body,
      headers: options.headers,
      dispatcher: this.agent,
      signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
    });
    return { status: response.statusCode, text: await response.body.text() };
  }

  async status(ordinal: number, timeoutMs = 2_000): Promise<ApiStatus> {
    const answer = await this.http(`${this.spec(ordinal).apiUrl}/v1/status`, 'GET', { timeoutMs });
    if (answer.status !== 200) throw new Error(`${this.spec(ordinal).id} GET /v1/status answered ${answer.status}: ${answer.text}`);
    return JSON.parse(answer.text) as ApiStatus;
  }

  async tryStatus(ordinal: number, timeoutMs = 2_000): Promise<ApiStatus | null> {
    try {
      return await this.status(ordinal, timeoutMs);
    } catch {
      return null;
    }
  }

  put(ordinal: number, key: string, value: string, timeoutMs = 10_000): Promise<{ status: number; text: string }> {
    return this.http(`${this.spec(ordinal).apiUrl}/v1/kv/${encodeURIComponent(key)}`, 'PUT', {
      body: value,
      headers: { 'content-type': 'application/octet-stream' },
      timeoutMs,
    });
  }

  async putOk(ordinal: number, key: string, value: string): Promise<{ index: number; term: number }> {
    const answer = await this.put(ordinal, key, value);
    if (answer.status !== 200) throw new Error(`PUT ${key} on ${this.spec(ordinal).id} answered ${answer.status}: ${answer.text}`);
    return JSON.parse(answer.text) as { index: number; term: number };
  }

  get(ordinal: number, key: string, options: { stale?: boolean; timeoutMs?: number } = {}): Promise<{ status: number; text: string }> {
    const query = options.stale === true ? '?consistency=stale' : '';
    return this.http(`${this.spec(ordinal).apiUrl}/v1/kv/${encodeURIComponent(key)}${query}`, 'GET', { timeoutMs: options.timeoutMs });
  }

  async getText(ordinal: number, key: string): Promise<string> {
    const answer = await this.get(ordinal, key);
    if (answer.status !== 200) throw new Error(`GET ${key} on ${this.spec(ordinal).id} answered ${answer.status}: ${answer.text}`);
    return answer.text;
  }

  async metricsText(ordinal: number): Promise<string> {
    const answer = await this.http(`${this.spec(ordinal).metricsUrl}/metrics`, 'GET', { timeoutMs: 5_000 });
    if (answer.status !== 200) throw new Error(`${this.spec(ordinal).id} GET /metrics answered ${answer.status}`);
    return answer.text;
  }

  /** raftlet_label_updates_total{result} on the pod's /metrics (0 when the series is absent). */
  async labelUpdates(ordinal: number, result: string): Promise<number> {
    return sampleValue(await this.metricsText(ordinal), 'raftlet_label_updates_total', { result });
  }

  // ---- conditions ----

  /**
   * Waits until the pods in `among` (default: every live pod) agree on one leader in one term and
   * that leader says so itself. `minTerm` waits for a later election; `not` refuses a leader.
   */
  waitForLeader(options: WaitOptions & { among?: readonly number[]; minTerm?: number; not?: string } = {}): Promise<{ ordinal: number; id: string; term: number; statuses: ApiStatus[] }> {
    return waitUntil(
      `one leader agreed by ${this.name} pods ${(options.among ?? this.live()).map(podId).join(', ')}`,
      async () => {
        const among = options.among ?? this.live();
        const statuses = await Promise.all(among.map((o) => this.status(o)));
        const described = statuses.map((s) => `${s.id}: ${s.role} term ${s.term} leader ${s.leader ?? 'none'}`).join('; ');
        const first = statuses[0];
        if (first === undefined || first.leader === null) throw new Error(described || 'no live pods');
        if (!statuses.every((s) => s.leader === first.leader && s.term === first.term)) throw new Error(described);
        if (options.minTerm !== undefined && first.term < options.minTerm) throw new Error(`term ${first.term} < ${options.minTerm}: ${described}`);
        if (options.not === first.leader) throw new Error(`still ${first.leader}: ${described}`);
        const own = statuses.find((s) => s.id === first.leader) ?? (await this.status(this.ordinalOf(first.leader)));
        if (own.role !== 'leader' || own.term !== first.term) throw new Error(`${own.id} says ${own.role} in term ${own.term}: ${described}`);
        return { ordinal: this.ordinalOf(first.leader), id: first.leader, term: first.term, statuses };
      },
      { timeoutMs: 30_000, intervalMs: 50, ...options },
    );
  }

  /** The role label and term annotation of every pod in the API double. */
  podLabels(): Map<string, { role: string | undefined; term: string | undefined; labels: Record<string, string>; annotations: Record<string, string> }> {
    return new Map(
      this.k8s.pods.list(NAMESPACE).map((pod) => {
        const meta = (pod.metadata ?? {}) as { name?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
        const labels = meta.labels ?? {};
        const annotations = meta.annotations ?? {};
        return [meta.name ?? '', { role: labels[ROLE_LABEL], term: annotations[TERM_ANNOTATION], labels, annotations }];
      }),
    );
  }

  /** What keeps the pod labels from being converged on `leaderId` in `term` over `memberIds`; [] = converged. */
  labelProblems(leaderId: string, term: number, memberIds: readonly string[]): string[] {
    const problems: string[] = [];
    const pods = this.podLabels();
    const leaders = [...pods].filter(([, p]) => p.role === 'leader').map(([name]) => name);
    if (leaders.length !== 1 || leaders[0] !== leaderId) problems.push(`pods labelled leader: [${leaders.join(', ')}], want [${leaderId}]`);
    for (const id of memberIds) {
      const pod = pods.get(id);
      if (pod === undefined) {
        problems.push(`pod ${id} missing`);
        continue;
      }
      const want = id === leaderId ? 'leader' : 'follower';
      if (pod.role !== want) problems.push(`${id} is ${pod.role ?? 'unlabelled'}, want ${want}`);
      if (pod.term !== String(term)) problems.push(`${id} has term ${pod.term ?? 'none'}, want ${term}`);
    }
    return problems;
  }

  waitLabelsConverged(leaderId: string, term: number, memberIds: readonly string[], options: WaitOptions = {}): Promise<true> {
    return waitUntil(
      `pod labels converged on ${leaderId} in term ${term}`,
      () => {
        const problems = this.labelProblems(leaderId, term, memberIds);
        if (problems.length > 0) throw new Error(problems.join('; '));
        return true as const;
      },
      { timeoutMs: 30_000, intervalMs: 20, ...options },
    );
  }

  /**
   * SPEC §7 on the API double's request log: pod writes are PATCHes (merge or strategic merge)
   * carrying a resourceVersion, never PUTs, and on each pod the raftlet.io/term of successful
   * writes never goes down (a stale leader never overwrites a newer term). `from` skips the
   * requests before that index (e.g. before the test changed an annotation by hand).
   */
  podWriteViolations(from = 0): string[] {
    const problems: string[] = [];
    const highest = new Map<string, { term: number; at: number }>();
    this.k8s.requests.slice(from).forEach((r, i) => {
      if (r.resource !== 'pods') return;
      if (r.method === 'PUT') problems.push(`request ${from + i}: PUT ${r.path}`);
      if (r.method !== 'PATCH') return;
      if (r.contentType !== 'application/merge-patch+json' && r.contentType !== 'application/strategic-merge-patch+json') {
        problems.push(`request ${from + i}: PATCH ${r.name} with ${r.contentType}`);
      }
      const meta = (r.body as { metadata?: { resourceVersion?: unknown; annotations?: Record<string, unknown> } } | undefined)?.metadata;
      if (typeof meta?.resourceVersion !== 'string') problems.push(`request ${from + i}: PATCH ${r.name} without metadata.resourceVersion`);
      if (r.status !== 200) return;
      const term = Number(meta?.annotations?.[TERM_ANNOTATION]);
      const before = highest.get(r.name);
      if (before !== undefined && term < before.term) {
        problems.push(`request ${from + i}: PATCH of ${r.name} with term ${term} succeeded after term ${before.term} was written (${r.at - before.at} ms earlier)`);
      }
      if (before === undefined || term > before.term) highest.set(r.name, { term, at: r.at });
    });
    return problems;
  }

  /** The LeaderElected events recorded on a pod. */
  leaderElectedEvents(podName: string): { message: string }[] {
    return this.k8s.events
      .list(NAMESPACE)
      .filter((e) => e.reason === 'LeaderElected' && (e.involvedObject as JsonObject | undefined)?.name === podName)
      .map((e) => ({ message: String(e.message) }));
  }
}

/** A sample of a metric in Prometheus text format; 0 when absent. */
export function sampleValue(text: string, name: string, labels: Readonly<Record<string, string>> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (match === null || match[1] !== name) continue;
    const got = new Map<string, string>();
    for (const pair of (match[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) got.set(pair[1] ?? '', pair[2] ?? '');
    if (Object.entries(labels).every(([k, v]) => got.get(k) === v)) return Number(match[4]);
  }
  return 0;
}

/**
 * Registers hooks in the current describe(): one dnsmasq and one port set for the file; after each
 * test, the log tails of its scenarios if it failed, then those scenarios stopped (also on failure).
 * `scenario` stops any earlier scenario first: scenarios share ports and run one at a time.
 */
export function e2eSuite(): { scenario(options: ScenarioOptions): Promise<PodCluster> } {
  let dns: DnsDouble | null = null;
  let ports: number[] = [];
  const all: PodCluster[] = [];
  let sinceLastTest: PodCluster[] = [];

  before(async () => {
    ports = await reservePorts(MAX_PODS * 3);
    dns = await startDnsDouble(SERVICE, []);
  });
  // Logs are read before the scenario is stopped (stopping removes them).
  afterEach(async (t) => {
    const mine = sinceLastTest;
    sinceLastTest = [];
    if ((t as { passed?: boolean }).passed === false) {
      for (const c of mine) process.stderr.write(`\n[${t.name}] logs of ${c.name} in ${c.dir}:\n${c.dumpLogs(40)}\n`);
    }
    await Promise.allSettled(mine.map((c) => c.stop()));
  });
  after(async () => {
    await Promise.allSettled(all.map((c) => c.stop()));
    await dns?.stop();
    releasePorts(ports);
  });

  return {
    async scenario(options: ScenarioOptions): Promise<PodCluster> {
      if (dns === null) throw new Error('e2eSuite() must be called inside describe() so that its before() hook runs first');
      await Promise.all(all.map((c) => c.stop()));
      await dns.setPods([]);
      const k8s = await startK8sDouble({
        namespace: NAMESPACE,
        ...(options.rules === undefined ? {} : { rules: options.rules }),
        ...(options.anonymousRules === undefined ? {} : { anonymousRules: options.anonymousRules }),
      });
      for (let o = 0; o < (options.podsInApi ?? MAX_PODS); o++) {
        k8s.pods.add({ name: podId(o), labels: { ...FOREIGN_LABELS, 'statefulset.kubernetes.io/pod-name': podId(o) }, annotations: FOREIGN_ANNOTATIONS });
      }
      const dir = await mkdtemp(path.join(tmpdir(), `raftlet-k8s-e2e-${options.name.replace(/[^a-z0-9-]/gi, '-')}-`));
      const cluster = new PodCluster(options, dir, ports, dns, k8s);
      all.push(cluster);
      sinceLastTest.push(cluster);
      return cluster;
    },
  };
}

/** Median of a non-empty list. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}
