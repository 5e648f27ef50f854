// `raftlet local`: a whole cluster on 127.0.0.1 in one command. One child process per node runs
// this same CLI's `run` on this same Node binary; this process only launches, watches and stops
// them, so what runs is exactly what runs in a pod.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { SETTINGS, SettingsError, parseFlags, parseSettings } from '../config/settings.ts';
import type { Env, FlagSpec, SettingKey } from '../config/settings.ts';
import { integer, parsePath, parseSwitch } from '../config/values.ts';
import { redrawFrame, renderChanges, renderTable } from './table.ts';
import type { StatusRow } from './table.ts';

/** Where text goes; a terminal has isTTY (and usually columns). */
export interface Output {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

export interface LocalOptions {
  readonly stdout: Output;
  readonly stderr: Output;
  readonly env: Env;
  readonly cwd?: string;
  /** What each child runs with process.execPath, before the forwarded flags. Default: this CLI's
   * `run` (bin/raftlet.js run). Tests substitute a stand-in node. */
  readonly nodeCommand?: readonly string[];
  /** The cluster stops when this resolves. Default: the first SIGINT or SIGTERM (a second one
   * kills the nodes at once). */
  readonly stop?: Promise<unknown>;
  readonly pollMs?: number;
  /** How long nodes get to exit after SIGTERM before SIGKILL. */
  readonly stopGraceMs?: number;
}

export const LOCAL_DEFAULTS = { nodes: 3, basePort: 7070, dataDir: path.join('raftlet-data', 'local') } as const;
export const MAX_LOCAL_NODES = 15;
/** Ports per node: peer RPC, client API, metrics, in that order from basePort + PORTS_PER_NODE × i. */
export const PORTS_PER_NODE = 3;

/** Settings of `run` that `local` forwards to every node; the rest it sets itself. */
const FORWARDED: readonly SettingKey[] = ['heartbeatMs', 'electionTimeoutMs', 'requestTimeoutMs', 'maxValueBytes', 'snapshotEntries', 'logLevel'];
/** Variables that pass through to the nodes untouched. */
const PASSED_ENV = new Set(['RAFTLET_USE_DIST', ...FORWARDED.map((key) => SETTINGS[key].env)]);

const LOCAL_FLAGS: readonly FlagSpec[] = [
  { flag: 'nodes', bare: null },
  { flag: 'base-port', bare: null },
  { flag: 'data-dir', bare: null },
  { flag: 'tls', bare: '1' },
  ...FORWARDED.map((key) => ({ flag: SETTINGS[key].flag, bare: SETTINGS[key].bare })),
];

export function localUsage(): string {
  const forwarded = FORWARDED.map((key) => `--${SETTINGS[key].flag}`).join(', ');
  return [
    'Usage: raftlet local [--nodes N] [--base-port P] [--data-dir DIR] [run flags]',
    '',
    `Runs N nodes (default ${LOCAL_DEFAULTS.nodes}, at most ${MAX_LOCAL_NODES}) of one cluster on 127.0.0.1, each a child process`,
    'running `raftlet run`, and shows a live status table (redrawn on a terminal, plain change lines',
    'otherwise). Ctrl-C stops them all.',
    '',
    `  --nodes N        number of nodes; ids are node-1 .. node-N`,
    '  --tls            peer mutual TLS with a throwaway CA and a certificate per node (made with openssl',
    '                   in DIR/tls; https peer URLs)',
    `  --base-port P    node-i uses P+${PORTS_PER_NODE}(i-1) for peer RPC, the next port for its client API and the`,
    `                   one after for metrics (default ${LOCAL_DEFAULTS.basePort}: node-1 = 7070/7071/7072, node-2 = 7073/...)`,
    `  --data-dir DIR   data in DIR/<id>, logs in DIR/<id>.log (default ./${LOCAL_DEFAULTS.dataDir})`,
    `  ${forwarded}`,
    '                   passed to every node, as are the same RAFTLET_* variables',
    '',
    'Peer RPC is authenticated with a cluster token generated for this run.',
    '',
  ].join('\n');
}

export interface LocalNode {
  readonly id: string;
  readonly peerPort: number;
  readonly apiPort: number;
  readonly metricsPort: number;
  readonly apiUrl: string;
  readonly dataDir: string;
  readonly logFile: string;
  /** The RAFTLET_* variables local sets for this node. */
  readonly env: Readonly<Record<string, string>>;
}

export interface LocalPlan {
  readonly dataDir: string;
  readonly nodes: readonly LocalNode[];
  /** Flags forwarded to every node's `run`. */
  readonly runFlags: readonly string[];
  /** --tls: peer mutual TLS with a throwaway CA made in this directory. */
  readonly tlsDir: string | null;
}

/** Reads the command line into a plan; pure apart from the token it is given. Throws SettingsError. */
export function planLocal(argv: readonly string[], cwd: string, token: string): LocalPlan {
  const flags = parseFlags(argv, LOCAL_FLAGS, 'raftlet local');
  const given = (flag: string): { text: string; name: string } | undefined => {
    const text = flags.get(flag);
    return text === undefined ? undefined : { text, name: `--${flag}` };
  };
  const nodesGiven = given('nodes');
  const count = nodesGiven === undefined ? LOCAL_DEFAULTS.nodes : integer(1, MAX_LOCAL_NODES)(nodesGiven);
  const baseGiven = given('base-port');
  const basePort = baseGiven === undefined
    ? LOCAL_DEFAULTS.basePort
    : integer(1, 65536 - PORTS_PER_NODE * count)(baseGiven);
  const dataDirGiven = given('data-dir');
  const dataDir = path.resolve(cwd, dataDirGiven === undefined ? LOCAL_DEFAULTS.dataDir : parsePath(dataDirGiven));

  const tlsGiven = given('tls');
  const tls = tlsGiven === undefined ? false : parseSwitch(tlsGiven);
  const tlsDir = tls ? path.join(dataDir, 'tls') : null;
  const scheme = tls ? 'https' : 'http';

  const runFlags: string[] = [];
  for (const key of FORWARDED) {
    const value = flags.get(SETTINGS[key].flag);
    if (value !== undefined) runFlags.push(`--${SETTINGS[key].flag}=${value}`);
  }

  const ids = Array.from({ length: count }, (_, i) => `node-${i + 1}`);
  const portsOf = (i: number): { peer: number; api: number; metrics: number } => {
    const peer = basePort + PORTS_PER_NODE * i;
    return { peer, api: peer + 1, metrics: peer + 2 };
  };
  const peers = ids.map((id, i) => `${id}=${scheme}://127.0.0.1:${portsOf(i).peer}`).join(',');
  const nodes = ids.map((id, i): LocalNode => {
    const ports = portsOf(i);
    const nodeDataDir = path.join(dataDir, id);
    return {
      id,
      peerPort: ports.peer,
      apiPort: ports.api,
      metricsPort: ports.metrics,
      apiUrl: `http://127.0.0.1:${ports.api}`,
      dataDir: nodeDataDir,
      logFile: path.join(dataDir, `${id}.log`),
      env: {
        RAFTLET_NODE_ID: id,
        RAFTLET_PEER_LISTEN: `127.0.0.1:${ports.peer}`,
        RAFTLET_API_LISTEN: `127.0.0.1:${ports.api}`,
        RAFTLET_METRICS_LISTEN: `127.0.0.1:${ports.metrics}`,
        RAFTLET_PEERS: peers,
        RAFTLET_DATA_DIR: nodeDataDir,
        RAFTLET_CLUSTER_TOKEN: token,
        // A shell inside a pod, or with KUBECONFIG set, must not make laptop nodes relabel pods.
        RAFTLET_KUBERNETES: '0',
        ...(tlsDir === null ? {} : {
          RAFTLET_PEER_TLS_CERT_FILE: path.join(tlsDir, `${id}.pem`),
          RAFTLET_PEER_TLS_KEY_FILE: path.join(tlsDir, `${id}.key`),
          RAFTLET_PEER_TLS_CA_FILE: path.join(tlsDir, 'ca.pem'),
        }),
      },
    };
  });
  return { dataDir, nodes, runFlags, tlsDir };
}

/** The environment of one node: ours minus every RAFTLET_* setting local does not forward, plus its own. */
export function nodeEnv(parent: Env, node: LocalNode): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(parent)) {
    if (value === undefined) continue;
    if (name.startsWith('RAFTLET_') && !PASSED_ENV.has(name)) continue;
    env[name] = value;
  }
  return { ...env, ...node.env };
}

/** What to print above the table: where everything is and how to try it. */
export function renderIntro(plan: LocalPlan, cwd: string, binPath: string): string[] {
  const [first, second] = [plan.nodes[0], plan.nodes[1] ?? plan.nodes[0]];
  // `npx raftlet` runs the project's own bin with node_modules/.bin first on PATH, so on the
  // project's Node 24 even where the machine's own node is older (`node bin/raftlet.js` is not).
  // Outside the project, npx would look the name up in the registry instead: cd there first.
  const root = path.dirname(path.dirname(binPath));
  const fromRoot = path.relative(root, cwd);
  const inside = fromRoot === '' || (!fromRoot.startsWith('..') && !path.isAbsolute(fromRoot));
  const raftlet = inside ? 'npx raftlet' : `cd ${root} && npx raftlet`;
  return [
    `raftlet local: ${plan.nodes.length} node${plan.nodes.length === 1 ? '' : 's'} on 127.0.0.1, data and logs in ${plan.dataDir}`,
    ...plan.nodes.map((n) =>
      `  ${n.id}  api ${n.apiUrl}  peer :${n.peerPort}  metrics http://127.0.0.1:${n.metricsPort}/metrics  log ${n.logFile}`),
    '',
    'Try:',
    `  curl -X PUT 127.0.0.1:${first.apiPort}/v1/kv/hello -d world`,
    `  curl 127.0.0.1:${second.apiPort}/v1/kv/hello`,
    `  curl 127.0.0.1:${second.apiPort}/v1/status`,
    `  ${raftlet} get hello --api ${second.apiUrl}`,
    'Ctrl-C stops all nodes.',
    '',
  ];
}

/** Runs the cluster until stopped; resolves with the exit code (0 clean, 2 bad flags or busy port). */
export async function runLocal(argv: readonly string[], options: LocalOptions): Promise<number> {
  const cwd = options.cwd ?? process.cwd();
  const binPath = fileURLToPath(new URL('../../bin/raftlet.js', import.meta.url));
  const token = randomBytes(32).toString('hex');
  let plan: LocalPlan;
  try {
    plan = planLocal(argv, cwd, token);
    if (plan.tlsDir !== null) {
      // A throwaway CA and a certificate per node (made before the settings check reads them).
      const { createThrowawayCa } = await import('../transport/throwaway-ca.ts');
      try {
        const ca = createThrowawayCa(plan.tlsDir);
        for (const node of plan.nodes) ca.issue(node.id);
      } catch (err) {
        options.stderr.write(`raftlet local: cannot make the throwaway TLS certificates: ${err instanceof Error ? err.message : String(err)}\n`);
        return 1;
      }
    }
    // Every node would refuse the same bad forwarded setting: say it once, before anything starts.
    parseSettings(plan.runFlags, nodeEnv(options.env, plan.nodes[0]));
  } catch (err) {
    if (!(err instanceof SettingsError)) throw err;
    options.stderr.write(`raftlet local: ${err.message}\n`);
    return 2;
  }
  for (const node of plan.nodes) {
    for (const [port, what] of [[node.peerPort, 'peer RPC'], [node.apiPort, 'client API'], [node.metricsPort, 'metrics']] as const) {
      const problem = await portProblem(port);
      if (problem !== null) {
        options.stderr.write(`raftlet local: port ${port} (${node.id} ${what}) ${problem} on 127.0.0.1; ` +
          'stop what uses it or choose another --base-port\n');
        return 2;
      }
    }
  }
  mkdirSync(plan.dataDir, { recursive: true });

  const display = new Display(options.stdout);
  for (const line of renderIntro(plan, cwd, binPath)) options.stdout.write(`${line}\n`);

  const nodeCommand = options.nodeCommand ?? [binPath, 'run'];
  const watched = plan.nodes.map((node) => new WatchedNode(node, nodeEnv(options.env, node), [...nodeCommand, ...plan.runFlags],
    () => display.show(watched.map((w) => w.row))));
  display.show(watched.map((w) => w.row));

  const signals = options.stop === undefined ? new StopSignals() : null;
  const stop = options.stop ?? (signals as StopSignals).first;
  let stopping = false;
  const polling = (async () => {
    const pollMs = options.pollMs ?? 250;
    while (!stopping) {
      await Promise.all(watched.map((w) => w.poll(Math.max(pollMs * 4, 1000))));
      display.show(watched.map((w) => w.row));
      await Promise.race([delay(pollMs), stop]);
    }
  })();
  try {
    await stop;
  } finally {
    stopping = true;
    signals?.onSecond(() => {
      for (const w of watched) w.kill('SIGKILL');
    });
    await polling;
    await Promise.all(watched.map((w) => w.stop(options.stopGraceMs ?? 10_000)));
    display.show(watched.map((w) => w.row));
    signals?.dispose();
  }
  options.stdout.write('raftlet local: all nodes stopped\n');
  return 0;
}

/** One child process and what the status table knows about it. */
class WatchedNode {
  row: StatusRow;
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;
  private alive = true;
  private stopRequested = false;

  constructor(node: LocalNode, env: Record<string, string>, args: readonly string[], onChange: () => void) {
    this.row = { id: node.id, apiUrl: node.apiUrl, state: 'starting', role: null, term: null, leader: null, commitIndex: null, note: null };
    const log = openSync(node.logFile, 'a');
    try {
      this.child = spawn(process.execPath, args, { env, stdio: ['ignore', log, log] });
    } finally {
      closeSync(log); // the child holds its own copy
    }
    this.exited = new Promise((resolve) => {
      const settle = (note: string): void => {
        if (!this.alive) return;
        this.alive = false;
        this.row = { ...this.row, state: this.stopRequested ? 'stopped' : 'down', note: this.stopRequested ? null : note };
        onChange();
        resolve();
      };
      this.child.once('exit', (code, signal) => settle(signal !== null ? `signal ${signal}` : `exit code ${code ?? '?'}`));
      this.child.once('error', (err) => settle(`cannot start: ${err.message}`));
    });
  }

  async poll(timeoutMs: number): Promise<void> {
    if (!this.alive || this.stopRequested) return;
    const status = await fetchStatus(this.row.apiUrl, timeoutMs);
    if (!this.alive || this.stopRequested) return;
    if (status === null) {
      this.row = { ...this.row, state: this.row.state === 'starting' ? 'starting' : 'unreachable' };
    } else {
      this.row = { ...this.row, state: 'up', ...status };
    }
  }

  kill(signal: NodeJS.Signals): void {
    if (this.alive) this.child.kill(signal);
  }

  /** SIGTERM, then SIGKILL if it has not exited within graceMs. */
  async stop(graceMs: number): Promise<void> {
    if (!this.alive) return;
    this.stopRequested = true;
    this.row = { ...this.row, state: 'stopping' };
    this.child.kill('SIGTERM');
    const timer = new AbortController();
    const inTime = await Promise.race([this.exited.then(() => true), delay(graceMs, false, { signal: timer.signal }).catch(() => false)]);
    timer.abort();
    if (!inTime) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}

type PolledStatus = Pick<StatusRow, 'role' | 'term' | 'leader' | 'commitIndex'>;

/** GET /v1/status (SPEC §4), reduced to the table's columns; null when the node does not answer well. */
async function fetchStatus(apiUrl: string, timeoutMs: number): Promise<PolledStatus | null> {
  try {
    const response = await fetch(`${apiUrl}/v1/status`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!response.ok) {
      await response.body?.cancel();
      return null;
    }
    const body: unknown = await response.json();
    if (typeof body !== 'object' || body === null) return null;
    const s = body as Record<string, unknown>;
    return {
      role: typeof s.role === 'string' ? s.role : null,
      term: typeof s.term === 'number' ? s.term : null,
      leader: typeof s.leader === 'string' ? s.leader : null,
      commitIndex: typeof s.commitIndex === 'number' ? s.commitIndex : null,
    };
  } catch {
    return null; // not listening yet, or gone: the row says so
  }
}

/** Writes the table: redrawn in place on a terminal, change lines otherwise. */
class Display {
  private previousRows: readonly StatusRow[] | null = null;
  private previousFrame: readonly string[] = [];
  private readonly out: Output;

  constructor(out: Output) {
    this.out = out;
  }

  show(rows: readonly StatusRow[]): void {
    if (this.out.isTTY === true) {
      const frame = renderTable(rows);
      if (frame.join('\n') === this.previousFrame.join('\n')) return;
      this.out.write(redrawFrame(frame, this.previousFrame.length, this.out.columns ?? null));
      this.previousFrame = frame;
    } else {
      const lines = renderChanges(this.previousRows, rows);
      if (lines.length > 0) this.out.write(lines.map((line) => `${timestamp()} ${line}\n`).join(''));
    }
    this.previousRows = rows;
  }
}

function timestamp(): string {
  return new Date().toISOString().slice(11, 23);
}

/** null if 127.0.0.1:port can be bound now, else why not. */
async function portProblem(port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      resolve(err.code === 'EADDRINUSE' ? 'is already in use' : `cannot be bound (${err.code ?? err.message})`);
    });
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(null)));
  });
}

/** SIGINT / SIGTERM while local runs: the first stops the cluster, a second kills it. */
class StopSignals {
  readonly first: Promise<void>;
  private count = 0;
  private second: (() => void) | null = null;
  private readonly handler = (): void => {
    this.count++;
    if (this.count === 1) this.resolveFirst();
    else this.second?.();
  };
  private resolveFirst: () => void = () => {};

  constructor() {
    this.first = new Promise((resolve) => {
      this.resolveFirst = resolve;
    });
    process.on('SIGINT', this.handler);
    process.on('SIGTERM', this.handler);
  }

  onSecond(action: () => void): void {
    this.second = action;
  }

  dispose(): void {
    process.off('SIGINT', this.handler);
    process.off('SIGTERM', this.handler);
  }
}
