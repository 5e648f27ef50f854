// The processes of a chaos run, each inside its node's network namespace: `raftlet run` (this
// repository's bin/raftlet.js on this Node binary) and the delay relay in front of its peer port.
//
// Inside namespace i: the node's peer server listens on 127.0.0.1:NODE_PEER_PORT, the relay on
// ADDR_i:RELAY_PORT forwards to it, and RAFTLET_PEERS names every node by its relay
// (http://ADDR_i:RELAY_PORT), so all peer traffic crosses the bridge, the iptables chains and a relay.
// The client API listens on ADDR_i:API_PORT, reachable from the root namespace where the clients
// run; 127.0.0.1 inside a namespace is that namespace's own loopback.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, cpSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, statSync, symlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { HostNet } from './netns.ts';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RELAY_MAIN = fileURLToPath(new URL('./relay-main.ts', import.meta.url));

export interface CodeSnapshot {
  /** Where bin/raftlet.js of the copy is. */
  readonly bin: string;
  /** The commit the copy was taken at, and whether src/ or bin/ had uncommitted changes. */
  readonly describe: string;
}

/**
 * Copies bin/, src/ and package.json into `dir` (node_modules linked), so that every start and
 * restart of a run runs the same code, however the checkout changes meanwhile.
 */
export function snapshotCode(dir: string): CodeSnapshot {
  mkdirSync(dir, { recursive: true });
  for (const part of ['bin', 'src', 'package.json']) cpSync(path.join(REPO_ROOT, part), path.join(dir, part), { recursive: true });
  symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  let describe = 'unknown commit';
  try {
    const commit = execFileSync('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['-C', REPO_ROOT, 'status', '--porcelain', '--', 'src', 'bin'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    describe = dirty === '' ? commit : `${commit} with uncommitted changes in src/ or bin/`;
  } catch {
    // not a git checkout
  }
  return { bin: path.join(dir, 'bin', 'raftlet.js'), describe };
}

export const RELAY_PORT = 7070;
export const NODE_PEER_PORT = 7000;
export const API_PORT = 7071;
export const METRICS_PORT = 9102;

export interface NodeSettings {
  readonly heartbeatMs: number;
  readonly electionTimeoutMs: number;
  readonly requestTimeoutMs: number;
  /** RAFTLET_SNAPSHOT_ENTRIES: small, so snapshots and their installation happen during a run. */
  readonly snapshotEntries: number;
  /** RAFTLET_WATCH_HISTORY when set: small, so watchers fall behind the kept history and resync. */
  readonly watchHistory?: number;
  readonly token: string;
}

export interface ExitRecord {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Whether the harness caused it (kill -9, SIGTERM at the end). */
  readonly expected: boolean;
  /** ms since the run started. */
  readonly at: number;
}

/** Every child of this process, killed with -9 if the harness exits without cleaning up. */
export const allChildren = new Set<ChildProcess>();

// setpriv (util-linux, in every Debian) makes the kernel kill a child when the harness dies, even
// by kill -9, so no raftlet keeps running in a namespace nobody watches. It execs, as `ip netns
// exec` does, so the child's pid is still the node's own.
const PDEATHSIG: readonly string[] = existsSync('/usr/bin/setpriv') ? ['/usr/bin/setpriv', '--pdeathsig', 'KILL'] : [];

/** argv for running `command` inside namespace `ns`. */
function inNamespace(ns: string, command: readonly string[]): string[] {
  return ['netns', 'exec', ns, ...PDEATHSIG, ...command];
}

function childEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of ['PATH', 'HOME', 'LANG', 'TZ']) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...extra };
}

/** What every node of one cluster shares. */
export interface ChaosNodeOptions {
  readonly runDir: string;
  /** bin/raftlet.js to run (a snapshotCode copy). */
  readonly bin: string;
  readonly settings: NodeSettings;
  readonly clock: () => number;
  readonly onUnexpectedExit: (node: ChaosNode, exit: ExitRecord) => void;
}

/** One relay and one node per host of the plan, each node named n<index> and reached through the
 * relays (so the nemesis can cut links). Nothing is started. */
export function chaosCluster(hosts: readonly HostNet[], options: ChaosNodeOptions): { relays: ChaosRelay[]; nodes: ChaosNode[] } {
  const peers = hosts.map((h) => `n${h.index}=http://${h.addr}:${RELAY_PORT}`).join(',');
  return {
    relays: hosts.map((host) => new ChaosRelay(host)),
    nodes: hosts.map((host) => new ChaosNode({ ...options, id: `n${host.index}`, host, peers })),
  };
}

export class ChaosNode {
  readonly id: string;
  readonly host: HostNet;
  readonly apiUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  readonly logFile: string;
  readonly exits: ExitRecord[] = [];
  private readonly env: Record<string, string>;
  private readonly bin: string;
  private readonly clock: () => number;
  private readonly onUnexpectedExit: (node: ChaosNode, exit: ExitRecord) => void;
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private expectingExit = false;
  paused = false;
  starts = 0;
  private logSizeAtStart = 0;

  constructor(options: ChaosNodeOptions & { id: string; host: HostNet; peers: string }) {
    this.id = options.id;
    this.bin = options.bin;
    this.host = options.host;
    this.apiUrl = `http://${options.host.addr}:${API_PORT}`;
    this.peerUrl = `http://${options.host.addr}:${RELAY_PORT}`;
    this.dataDir = path.join(options.runDir, options.id);
    this.logFile = path.join(options.runDir, `${options.id}.log`);
    this.clock = options.clock;
    this.onUnexpectedExit = options.onUnexpectedExit;
    const s = options.settings;
    this.env = childEnv({
      RAFTLET_NODE_ID: options.id,
      RAFTLET_PEERS: options.peers,
      RAFTLET_PEER_LISTEN: `127.0.0.1:${NODE_PEER_PORT}`,
      RAFTLET_API_LISTEN: `${options.host.addr}:${API_PORT}`,
      RAFTLET_METRICS_LISTEN: `127.0.0.1:${METRICS_PORT}`,
      RAFTLET_DATA_DIR: this.dataDir,
      RAFTLET_CLUSTER_TOKEN: s.token,
      RAFTLET_KUBERNETES: '0',
      RAFTLET_HEARTBEAT_MS: String(s.heartbeatMs),
      RAFTLET_ELECTION_TIMEOUT_MS: String(s.electionTimeoutMs),
      RAFTLET_REQUEST_TIMEOUT_MS: String(s.requestTimeoutMs),
      RAFTLET_SNAPSHOT_ENTRIES: String(s.snapshotEntries),
      RAFTLET_LOG_LEVEL: 'info',
      ...(s.watchHistory === undefined ? {} : { RAFTLET_WATCH_HISTORY: String(s.watchHistory) }),
    });
  }

  get running(): boolean {
    return this.child !== null;
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  start(): void {
    if (this.child !== null) throw new Error(`${this.id} is already running (pid ${this.child.pid})`);
    const log = openSync(this.logFile, 'a');
    let child: ChildProcess;
    try {
      writeSync(log, `---- chaos harness: starting ${this.id} at t=${(this.clock() / 1000).toFixed(3)}s ----\n`);
      this.logSizeAtStart = fstatSync(log).size;
      child = spawn('ip', inNamespace(this.host.ns, [process.execPath, this.bin, 'run']), {
        env: this.env,
        cwd: REPO_ROOT,
        stdio: ['ignore', log, log],
      });
    } finally {
      closeSync(log);
    }
    this.child = child;
    this.paused = false;
    this.expectingExit = false;
    this.starts++;
    allChildren.add(child);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        allChildren.delete(child);
        const record: ExitRecord = { code, signal, expected: this.expectingExit, at: this.clock() };
        this.exits.push(record);
        this.child = null;
        this.paused = false;
        if (!record.expected) this.onUnexpectedExit(this, record);
        resolve();
      });
    });
  }

  /** kill -9; resolves once the process is gone. */
  async kill9(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    this.expectingExit = true;
    child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGSTOP: frozen, as in a long GC pause or a stuck VM. */
  pause(): void {
    if (this.child === null || this.paused) return;
    this.child.kill('SIGSTOP');
    this.paused = true;
  }

  resume(): void {
    if (this.child === null || !this.paused) return;
    this.child.kill('SIGCONT');
    this.paused = false;
  }

  /**
   * Whether the current process has written anything: raftlet's node logs its first line as soon
   * as it catches SIGTERM (the bin catches it before that, but says nothing). Before, Node may still
   * be booting, where no program can catch a signal.
   */
  hasWritten(): boolean {
    if (this.child === null) return false;
    try {
      return statSync(this.logFile).size > this.logSizeAtStart;
    } catch {
      return false;
    }
  }

  /** SIGTERM and wait; how the process ended: `exit 0`, `exit 1`, `ended by SIGTERM`, `killed
   * after N s` (it had to be killed after timeoutMs), or null if it was not running. */
  async terminate(timeoutMs: number): Promise<string | null> {
    const child = this.child;
    if (child === null) return null;
    this.resume();
    this.expectingExit = true;
    child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([
      this.exited.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (!inTime) {
      child.kill('SIGKILL');
      await this.exited;
      return `killed after ${timeoutMs / 1000} s`;
    }
    const exit = this.exits.at(-1);
    return exit?.signal !== null && exit?.signal !== undefined ? `ended by ${exit.signal}` : `exit ${exit?.code ?? '?'}`;
  }

  logText(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  logTail(lines: number): string {
    return this.logText().trimEnd().split('\n').slice(-lines).join('\n');
  }
}

/** The delay relay of one namespace. */
export class ChaosRelay {
  readonly host: HostNet;
  private child: ChildProcess | null = null;
  private acks: (() => void)[] = [];
  failure: string | null = null;

  constructor(host: HostNet) {
    this.host = host;
  }

  async start(): Promise<void> {
    const child = spawn('ip', inNamespace(this.host.ns, [process.execPath, RELAY_MAIN,
      '--listen', `${this.host.addr}:${RELAY_PORT}`, '--target', `127.0.0.1:${NODE_PEER_PORT}`]), {
      env: childEnv({}),
      cwd: REPO_ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child = child;
    allChildren.add(child);
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('exit', (code, signal) => {
      allChildren.delete(child);
      if (this.child === child) this.failure = `relay in ${this.host.ns} exited (code ${code}, signal ${signal}): ${stderr.trim()}`;
      this.child = null;
      for (const ack of this.acks.splice(0)) ack();
    });
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`relay in ${this.host.ns} did not start in 20 s: ${stderr}`)), 20_000);
      lines.on('line', (line) => {
        if (line.startsWith('ready')) {
          clearTimeout(timer);
          resolve();
        } else if (line === 'ok') {
          this.acks.shift()?.();
        }
      });
      child.once('exit', () => {
        clearTimeout(timer);
        reject(new Error(`relay in ${this.host.ns} exited while starting: ${stderr}`));
      });
    });
  }

  /** Sets the delay per peer address; resolves once the relay applied it. */
  setDelays(delays: Readonly<Record<string, number>>): Promise<void> {
    const child = this.child;
    if (child === null || child.stdin === null) return Promise.resolve();
    return new Promise((resolve) => {
      this.acks.push(resolve);
      child.stdin?.write(`${JSON.stringify({ delays })}\n`);
    });
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    this.child = null;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.stdin?.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await gone;
    clearTimeout(timer);
  }
}
