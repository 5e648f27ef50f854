// `raftlet demo-app`: the stand-in application container of the Helm chart. It shows, per pod, what
// its own raftlet sidecar says about the cluster, so `curl <release>-leader` proves that the leader
// Service really lands on the leader pod. It also does singleton work the way an application should
// (raftlet/client's runAsLeader): only while its own raftlet leads, it increments a counter in the
// key-value store, every write fenced with the leader's term (If-Term) and a compare-and-set.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { LeadershipLost, PreconditionFailed, RaftletClient } from '../client/index.ts';

export interface DemoAppOptions {
  readonly host: string;
  readonly port: number;
  /** Base URL of the local raftlet client API (SPEC §4). */
  readonly raftletApiUrl: string;
  readonly podName: string;
  /** How long to wait for the sidecar before answering 503. */
  readonly statusTimeoutMs: number;
  /** While leading, increment COUNTER_KEY this often; 0 or absent = no singleton work. */
  readonly counterIntervalMs?: number;
}

/** The key the demo's singleton work increments. */
export const COUNTER_KEY = 'demo/counter';

export interface RunningDemoApp {
  readonly port: number;
  close(): Promise<void>;
}

/** What GET /counter answers: this pod's part in the singleton work. */
export interface CounterView {
  readonly leading: boolean;
  /** The term this pod leads in (its fencing token), or null. */
  readonly term: number | null;
  /** The last value this pod wrote, or null. */
  readonly counter: number | null;
  /** Increments this pod made, in all its leaderships. */
  readonly increments: number;
}

/** What GET / answers: the sidecar's view, reduced to what a human checks. */
export interface DemoAppView {
  readonly pod: string;
  readonly role: string;
  readonly term: number;
  readonly leader: string | null;
}

const usage = `Usage: raftlet demo-app [--port N] [--host ADDR] [--api URL]

A tiny HTTP server that answers GET / with {pod, role, term, leader} from the local raftlet
(GET <api>/v1/status) and GET /healthz with 200. Stops cleanly on SIGTERM.

  --port N     listen port (env DEMO_PORT, default 8080)
  --host ADDR  listen address (env DEMO_HOST, default 0.0.0.0)
  --api URL    raftlet client API (env RAFTLET_API_URL, default http://127.0.0.1:7071)
  --counter-interval-ms N
               while this pod's raftlet leads, increment the key demo/counter every N ms,
               fenced with the leader's term (env DEMO_COUNTER_INTERVAL_MS, default 1000,
               0 = off); GET /counter shows this pod's part
`;

class UsageError extends Error {}

export function parseDemoAppArgs(args: readonly string[], env: NodeJS.ProcessEnv): DemoAppOptions {
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const match = /^--(port|host|api|counter-interval-ms)(?:=(.*))?$/.exec(arg);
    if (match === null) throw new UsageError(`demo-app: unknown argument ${JSON.stringify(arg)}`);
    const value = match[2] ?? args[++i];
    if (value === undefined) throw new UsageError(`demo-app: --${match[1]} needs a value`);
    flags.set(match[1], value);
  }
  const portText = flags.get('port') ?? env.DEMO_PORT ?? '8080';
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) {
    throw new UsageError(`demo-app: --port / DEMO_PORT must be a port number 0-65535 (got ${JSON.stringify(portText)})`);
  }
  const intervalText = flags.get('counter-interval-ms') ?? env.DEMO_COUNTER_INTERVAL_MS ?? '1000';
  if (!/^\d+$/.test(intervalText) || Number(intervalText) > 3_600_000) {
    throw new UsageError(`demo-app: --counter-interval-ms / DEMO_COUNTER_INTERVAL_MS must be 0 to 3600000 ms (got ${JSON.stringify(intervalText)})`);
  }
  const raftletApiUrl = (flags.get('api') ?? env.RAFTLET_API_URL ?? 'http://127.0.0.1:7071').replace(/\/+$/, '');
  if (!URL.canParse(raftletApiUrl)) {
    throw new UsageError(`demo-app: --api / RAFTLET_API_URL must be a URL such as http://127.0.0.1:7071 (got ${JSON.stringify(raftletApiUrl)})`);
  }
  return {
    host: flags.get('host') ?? env.DEMO_HOST ?? '0.0.0.0',
    port,
    raftletApiUrl,
    podName: env.POD_NAME ?? hostname(),
    statusTimeoutMs: 2000,
    counterIntervalMs: Number(intervalText),
  };
}

/**
 * The singleton work: while this pod's raftlet leads, read the counter and write it plus one, with
 * If-Match (compare-and-set) and, through runAsLeader, If-Term; stop the moment leadership or its
 * lease is lost. Two pods can never both count, and a late write of a former leader never lands.
 */
export async function runCounter(client: RaftletClient, intervalMs: number, view: { -readonly [K in keyof CounterView]: CounterView[K] }, signal: AbortSignal): Promise<void> {
  await client.runAsLeader(async (leading, context) => {
    while (!leading.aborted) {
      try {
        const current = await client.get(COUNTER_KEY, { signal: leading });
        const next = (current === null ? 0 : Number(current.text()) || 0) + 1;
        await client.put(COUNTER_KEY, String(next), current === null ? { ifNoneMatch: true, signal: leading } : { ifMatch: current.modIndex, signal: leading });
        view.counter = next;
        view.increments++;
      } catch (err) {
        if (err instanceof LeadershipLost || leading.aborted) return;
        // A lost compare-and-set or a fenced write means someone else wrote: read again next time.
        if (!(err instanceof PreconditionFailed)) process.stderr.write(`demo-app: counter in term ${context.term}: ${err instanceof Error ? err.message : String(err)}\n`);
      }
      await sleep(intervalMs, undefined, { signal: leading }).catch(() => undefined);
    }
  }, {
    signal,
    onStartedLeading: (context) => {
      view.leading = true;
      view.term = context.term;
    },
    onStoppedLeading: () => {
      view.leading = false;
      view.term = null;
    },
  });
}

function send(res: ServerResponse, status: number, body: unknown, asText: boolean): void {
  const text = asText ? `${typeof body === 'string' ? body : JSON.stringify(body)}\n` : `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    'content-type': asText ? 'text/plain; charset=utf-8' : 'application/json',
    'cache-control': 'no-store',
  });
  res.end(text);
}

function wantsText(req: IncomingMessage): boolean {
  const accept = req.headers.accept ?? '';
  return accept.includes('text/plain') && !accept.includes('application/json');
}

async function fetchView(options: DemoAppOptions): Promise<DemoAppView> {
  const response = await fetch(`${options.raftletApiUrl}/v1/status`, {
    signal: AbortSignal.timeout(options.statusTimeoutMs),
  });
  if (!response.ok) throw new Error(`raftlet answered ${response.status}: ${(await response.text()).trim()}`);
  const status = (await response.json()) as { role?: unknown; term?: unknown; leader?: unknown };
  if (typeof status.role !== 'string' || typeof status.term !== 'number') {
    throw new Error('raftlet /v1/status lacks role or term: is RAFTLET_API_URL pointing at a raftlet?');
  }
  return {
    pod: options.podName,
    role: status.role,
    term: status.term,
    leader: typeof status.leader === 'string' ? status.leader : null,
  };
}

async function handle(options: DemoAppOptions, counter: CounterView, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://demo.invalid').pathname;
  const asText = wantsText(req);
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    send(res, 405, { error: { code: 'method_not_allowed', message: 'only GET is served' } }, asText);
    return;
  }
  if (path === '/healthz') {
    send(res, 200, asText ? 'ok' : { ok: true }, asText);
    return;
  }
  if (path === '/counter') {
    const line = counter.leading ? `${options.podName} counts (term ${counter.term}); last value ${counter.counter}` : `${options.podName} does not count; last value it wrote ${counter.counter ?? 'none'}`;
    send(res, 200, asText ? line : counter, asText);
    return;
  }
  if (path !== '/') {
    send(res, 404, { error: { code: 'not_found', message: 'try GET / or GET /healthz' } }, asText);
    return;
  }
  try {
    const view = await fetchView(options);
    const line = `${view.pod} is ${view.role} in term ${view.term}; leader: ${view.leader ?? 'none'}`;
    send(res, 200, asText ? line : view, asText);
  } catch (err: unknown) {
    const message = err instanceof Error ? err.message : String(err);
    send(res, 503, {
      pod: options.podName,
      error: { code: 'raftlet_unavailable', message: `cannot read ${options.raftletApiUrl}/v1/status: ${message}` },
    }, asText);
  }
}

export async function startDemoApp(options: DemoAppOptions): Promise<RunningDemoApp> {
  const counter = { leading: false, term: null as number | null, counter: null as number | null, increments: 0 };
  const server: Server = createServer((req, res) => {
    handle(options, counter, req, res).catch((err: unknown) => {
      // handle() answers every request itself; reaching here means the response broke mid-way.
      res.destroy(err instanceof Error ? err : new Error(String(err)));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const stopCounting = new AbortController();
  const counting = (options.counterIntervalMs ?? 0) > 0
    ? runCounter(new RaftletClient({ url: options.raftletApiUrl }), options.counterIntervalMs ?? 0, counter, stopCounting.signal).catch((err: unknown) => {
      process.stderr.write(`demo-app: the counter stopped: ${err instanceof Error ? err.message : String(err)}\n`);
    })
    : Promise.resolve();
  return {
    port,
    close: async () => {
      stopCounting.abort();
      await counting;
      await new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
    },
  };
}

/** The `raftlet demo-app` command: serves until SIGTERM or SIGINT, then resolves with exit code 0. */
export async function runDemoApp(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(usage);
    return 0;
  }
  let options: DemoAppOptions;
  try {
    options = parseDemoAppArgs(args, process.env);
  } catch (err: unknown) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return 2;
  }
  let app: RunningDemoApp;
  try {
    app = await startDemoApp(options);
  } catch (err: unknown) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`demo-app: cannot listen on ${options.host}:${options.port}: ${message}\n`);
    return 1;
  }
  process.stdout.write(`demo-app listening on http://${options.host}:${app.port} (raftlet API ${options.raftletApiUrl})\n`);
  let onSignal: (signal: NodeJS.Signals) => void = () => {};
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    onSignal = resolve;
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  process.stdout.write(`demo-app: ${signal}, stopping\n`);
  await app.close();
  return 0;
}
