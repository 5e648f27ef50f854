// Real `raftlet run` processes on 127.0.0.1 for end-to-end metric tests: one child per node on this
// same Node binary, a static RAFTLET_PEERS list, a cluster token, ports picked free, and a temp
// directory for data and logs that stop() removes. Each node can be killed on its own (kill -9).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/raftlet.js', import.meta.url));

export interface LocalClusterOptions {
  readonly size: number;
  /** RAFTLET_ELECTION_TIMEOUT_MS; the heartbeat is a tenth of it. */
  readonly electionTimeoutMs: number;
  /** Extra RAFTLET_* variables for every node. */
  readonly env?: Readonly<Record<string, string>>;
  /** How long every node gets to answer GET /v1/status; default 20 s. */
  readonly startTimeoutMs?: number;
}

export interface NodeStatus {
  readonly id: string;
  readonly role: string;
  readonly term: number;
  readonly leader: string | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastLogIndex: number;
}

export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface LocalNode {
  readonly id: string;
  readonly apiUrl: string;
  /** host:port of RAFTLET_METRICS_LISTEN. */
  readonly metricsAddress: string;
  readonly metricsUrl: string;
  readonly logFile: string;
  readonly pid: number;
  /** null while the process runs. */
  exit(): ProcessExit | null;
  /** Sends SIGKILL and waits for the exit. */
  kill(): Promise<void>;
  status(): Promise<NodeStatus>;
}

export interface LocalCluster {
  readonly nodes: readonly LocalNode[];
  readonly dir: string;
  /** The last lines of every node's log, for failure messages. */
  logs(linesPerNode?: number): string;
  /** Kills what still runs and removes the temp directory. */
  stop(): Promise<void>;
}

class ListenFailed extends Error {}

// Last resort when the test process ends without its after() hook (a runner timeout, a crash):
// children are not in our process group's fate, so kill the ones still running ourselves.
const livePids = new Set<number>();
process.once('exit', () => {
  for (const pid of livePids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

export async function startLocalCluster(options: LocalClusterOptions): Promise<LocalCluster> {
  // Ports are free when chosen but another process may bind one before the node does: then that
  // node exits with code 2 (a listen error) and the whole cluster starts again on other ports.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(options);
    } catch (err) {
      lastError = err;
      if (!(err instanceof ListenFailed)) throw err;
    }
  }
  throw lastError;
}

async function startOnce(options: LocalClusterOptions): Promise<LocalCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'raftlet-e2e-'));
  const ports = await freePorts(options.size * 3);
  const ids = Array.from({ length: options.size }, (_, i) => `node-${i + 1}`);
  const peerPort = (i: number): number => ports[i * 3];
  const peers = ids.map((id, i) => `${id}=http://127.0.0.1:${peerPort(i)}`).join(',');
  const token = randomBytes(24).toString('hex');

  // Only PATH and the like from our environment: a RAFTLET_* variable of the caller must not leak in.
  const baseEnv: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !name.startsWith('RAFTLET_') && name !== 'KUBECONFIG' && name !== 'NODE_TEST_CONTEXT') baseEnv[name] = value;
  }

  const nodes = ids.map((id, i) => {
    const apiPort = ports[i * 3 + 1];
    const metricsPort = ports[i * 3 + 2];
    const logFile = join(dir, `${id}.log`);
    const env: Record<string, string> = {
      ...baseEnv,
      RAFTLET_NODE_ID: id,
      RAFTLET_PEER_LISTEN: `127.0.0.1:${peerPort(i)}`,
      RAFTLET_API_LISTEN: `127.0.0.1:${apiPort}`,
      RAFTLET_METRICS_LISTEN: `127.0.0.1:${metricsPort}`,
      RAFTLET_PEERS: peers,
      RAFTLET_DATA_DIR: join(dir, id),
      RAFTLET_CLUSTER_TOKEN: token,
      RAFTLET_KUBERNETES: '0',
      RAFTLET_ELECTION_TIMEOUT_MS: String(options.electionTimeoutMs),
      RAFTLET_HEARTBEAT_MS: String(Math.max(1, Math.floor(options.electionTimeoutMs / 10))),
      ...(options.env ?? {}),
    };
    return new ProcessNode(id, `http://127.0.0.1:${apiPort}`, `127.0.0.1:${metricsPort}`, logFile, env);
  });

  const cluster: LocalCluster = {
    nodes,
    dir,
    logs: (linesPerNode = 80) =>
      nodes.map((node) => {
        const exit = node.exit();
        const state = exit === null ? `pid ${node.pid}, running` : `pid ${node.pid}, exited (code ${exit.code}, signal ${exit.signal})`;
        return `--- ${node.id} (${state}) ${node.logFile} ---\n${tail(node.logFile, linesPerNode)}`;
      }).join('\n'),
    async stop() {
      await Promise.all(nodes.map((node) => node.kill()));
      rmSync(dir, { recursive: true, force: true });
    },
  };

  try {
    await waitAllAnswer(nodes, options.startTimeoutMs ?? 20_000);
  } catch (err) {
    const logs = cluster.logs();
    await cluster.stop();
    if (nodes.some((node) => node.exit()?.code === 2 && /already in use/.test(logs))) throw new ListenFailed(logs);
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${logs}`);
  }
  return cluster;
}

class ProcessNode implements LocalNode {
  readonly id: string;
  readonly apiUrl: string;
  readonly metricsAddress: string;
  readonly metricsUrl: string;
  readonly logFile: string;
  readonly pid: number;
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  #exit: ProcessExit | null = null;

  constructor(id: string, apiUrl: string, metricsAddress: string, logFile: string, env: Record<string, string>) {
    this.id = id;
    this.apiUrl = apiUrl;
    this.metricsAddress = metricsAddress;
    this.metricsUrl = `http://${metricsAddress}/metrics`;
    this.logFile = logFile;
    const log = openSync(logFile, 'a');
    try {
      this.#child = spawn(process.execPath, [BIN, 'run'], { env, stdio: ['ignore', log, log] });
    } finally {
      closeSync(log); // the child has its own descriptor
    }
    this.pid = this.#child.pid ?? -1;
    if (this.pid > 0) livePids.add(this.pid);
    this.#exited = new Promise((resolve) => {
      this.#child.once('exit', (code, signal) => {
        this.#exit = { code, signal };
        livePids.delete(this.pid);
        resolve();
      });
      this.#child.once('error', () => {
        this.#exit ??= { code: null, signal: null };
        resolve();
      });
    });
  }

  exit(): ProcessExit | null {
    return this.#exit;
  }

  async kill(): Promise<void> {
    if (this.#exit === null && this.pid > 0) process.kill(this.pid, 'SIGKILL');
    await this.#exited;
  }

  async status(): Promise<NodeStatus> {
    const res = await fetch(`${this.apiUrl}/v1/status`, { signal: AbortSignal.timeout(2000) });
    if (!res.ok) throw new Error(`GET ${this.apiUrl}/v1/status answered ${res.status}: ${await res.text()}`);
    return (await res.json()) as NodeStatus;
  }
}

async function waitAllAnswer(nodes: readonly LocalNode[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const pending = new Set(nodes);
  while (pending.size > 0) {
    for (const node of [...pending]) {
      const exit = node.exit();
      if (exit !== null) throw new Error(`${node.id} exited while starting (code ${exit.code}, signal ${exit.signal})`);
      try {
        await node.status();
        pending.delete(node);
      } catch {
        // not listening yet
      }
    }
    if (pending.size === 0) return;
    if (Date.now() > deadline) throw new Error(`${[...pending].map((n) => n.id).join(', ')} did not answer GET /v1/status within ${timeoutMs} ms`);
    await delay(100);
  }
}

/** Distinct free ports on 127.0.0.1: all listeners stay open until the last is bound, so none repeats. */
async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve());
      });
    }
    return servers.map((server) => (server.address() as AddressInfo).port);
  } finally {
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines - 1).join('\n');
  } catch {
    return '(no log)';
  }
}
