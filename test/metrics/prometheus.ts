// A real Prometheus (the Debian package's /usr/bin/prometheus) for tests: it scrapes the given
// targets on 127.0.0.1, optionally evaluates a rules file, and answers PromQL. Each instance has
// its own temp config and TSDB directory and is stopped by its PID.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify as toYaml } from 'yaml';

export type PrometheusTarget = string | { readonly address: string; readonly labels?: Readonly<Record<string, string>> };

export interface PrometheusOptions {
  /** host:port of each /metrics endpoint (127.0.0.1 only), optionally with extra target labels. */
  readonly targets: readonly PrometheusTarget[];
  /** A Prometheus rules file to load (rule_files). */
  readonly rulesFile?: string;
  /** Scrape and rule evaluation interval; default 250 ms. */
  readonly scrapeIntervalMs?: number;
  /** The job label of the targets; default "raftlet". */
  readonly jobName?: string;
  /** Path of the prometheus binary; default "prometheus" from PATH. */
  readonly binary?: string;
  /** How long to wait for Prometheus to become ready; default 30 s. */
  readonly startTimeoutMs?: number;
}

export interface VectorSample {
  readonly metric: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface PrometheusAlert {
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly state: 'pending' | 'firing' | 'inactive';
}

export interface RunningPrometheus {
  readonly url: string;
  readonly pid: number;
  /** An instant query; rejects with Prometheus's error text for a bad expression. */
  query(promql: string): Promise<VectorSample[]>;
  /** Polls `promql` until `accept` holds for its result, at most timeoutMs; resolves with that result. */
  waitFor(promql: string, accept: (samples: VectorSample[]) => boolean, timeoutMs?: number): Promise<VectorSample[]>;
  /** Active (pending and firing) alerts. */
  alerts(): Promise<PrometheusAlert[]>;
  /** Rules as loaded, with their evaluation health. */
  rules(): Promise<{ name: string; type: string; health: string; lastError?: string }[]>;
  /** The process's log so far, for failure messages. */
  log(): string;
  stop(): Promise<void>;
}

interface ApiResponse<T> {
  readonly status: 'success' | 'error';
  readonly data?: T;
  readonly error?: string;
  readonly errorType?: string;
}

export async function startPrometheus(options: PrometheusOptions): Promise<RunningPrometheus> {
  // The port is chosen before Prometheus binds it, so another process may take it in between:
  // then Prometheus exits at once and we try another.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(options, await freePort());
    } catch (err) {
      lastError = err;
      if (!(err instanceof PortInUse)) throw err;
    }
  }
  throw lastError;
}

class PortInUse extends Error {}

async function startOnce(options: PrometheusOptions, port: number): Promise<RunningPrometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'raftlet-prometheus-'));
  const intervalMs = options.scrapeIntervalMs ?? 250;
  const config = {
    global: { scrape_interval: `${intervalMs}ms`, scrape_timeout: `${intervalMs}ms`, evaluation_interval: `${intervalMs}ms` },
    ...(options.rulesFile !== undefined ? { rule_files: [resolve(options.rulesFile)] } : {}),
    scrape_configs: [
      {
        job_name: options.jobName ?? 'raftlet',
        static_configs: options.targets.map((target) =>
          typeof target === 'string' ? { targets: [target] } : { targets: [target.address], labels: { ...(target.labels ?? {}) } },
        ),
      },
    ],
  };
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(configFile, toYaml(config));
  const logFile = join(dir, 'prometheus.log');
  const logFd = openSync(logFile, 'w');
  const url = `http://127.0.0.1:${port}`;
  let child: ChildProcess;
  try {
    child = spawn(
      options.binary ?? 'prometheus',
      [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        // Nothing here survives the test; a short lookback makes a stopped target disappear fast.
        '--query.lookback-delta=5s',
        '--storage.tsdb.retention.time=1h',
      ],
      { stdio: ['ignore', logFd, logFd] },
    );
  } finally {
    closeSync(logFd);
  }
  const readLog = (): string => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const exit = new Promise<void>((resolveExit) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolveExit();
    });
  });
  const spawnError = new Promise<Error>((resolveError) => child.once('error', resolveError));

  const stop = async (): Promise<void> => {
    if (exited === null && child.pid !== undefined) {
      process.kill(child.pid, 'SIGTERM');
      const timer = setTimeout(() => {
        if (exited === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      }, 10_000);
      await exit;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await waitReady(url, options.startTimeoutMs ?? 30_000, () => exited, spawnError, readLog);
  } catch (err) {
    await stop();
    throw err;
  }

  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${url}${path}`);
    const body = (await res.json()) as ApiResponse<T>;
    if (body.status !== 'success' || body.data === undefined) {
      throw new Error(`Prometheus ${path} failed (${res.status}): ${body.errorType ?? ''} ${body.error ?? ''}`);
    }
    return body.data;
  };

  const query = async (promql: string): Promise<VectorSample[]> => {
    const data = await api<{ resultType: string; result: unknown }>(`/api/v1/query?query=${encodeURIComponent(promql)}`);
    switch (data.resultType) {
      case 'vector':
        return (data.result as { metric: Record<string, string>; value: [number, string] }[]).map((sample) => ({
          metric: sample.metric,
          value: Number(sample.value[1]),
        }));
      case 'scalar':
        return [{ metric: {}, value: Number((data.result as [number, string])[1]) }];
      default:
        throw new Error(`query ${promql} returned a ${data.resultType}; write an instant vector or scalar expression`);
    }
  };

  return {
    url,
    pid: child.pid ?? -1,
    query,
    async waitFor(promql, accept, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      let last: VectorSample[] = [];
      for (;;) {
        last = await query(promql);
        if (accept(last)) return last;
        if (Date.now() > deadline) {
          throw new Error(`Prometheus: ${promql} did not reach the expected result within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
        }
        await delay(Math.min(intervalMs, 200));
      }
    },
    async alerts() {
      const data = await api<{ alerts: PrometheusAlert[] }>('/api/v1/alerts');
      return data.alerts;
    },
    async rules() {
      const data = await api<{ groups: { rules: { name: string; type: string; health: string; lastError?: string }[] }[] }>('/api/v1/rules');
      return data.groups.flatMap((group) => group.rules);
    },
    log: readLog,
    stop,
  };
}

async function waitReady(
  url: string,
  timeoutMs: number,
  exited: () => { code: number | null; signal: NodeJS.Signals | null } | null,
  spawnError: Promise<Error>,
  readLog: () => string,
): Promise<void> {
  const spawnFailure: { error: Error | null } = { error: null };
  void spawnError.then((err) => { spawnFailure.error = err; }, () => undefined);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (spawnFailure.error !== null) {
      throw new Error(`could not start prometheus (${spawnFailure.error.message}); install it with: apt-get install -y prometheus`);
    }
    const status = exited();
    if (status !== null) {
      const log = readLog();
      if (/address already in use/.test(log)) throw new PortInUse(log);
      throw new Error(`prometheus exited (code ${status.code}, signal ${status.signal}) before it was ready:\n${log}`);
    }
    try {
      const res = await fetch(`${url}/-/ready`);
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`prometheus was not ready within ${timeoutMs} ms:\n${readLog()}`);
    await delay(100);
  }
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolvePort(port));
    });
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolveDelay) => setTimeout(resolveDelay, ms));
}
