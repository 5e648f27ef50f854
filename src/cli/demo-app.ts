// `raftlet demo-app`: the stand-in application container of the Helm chart. It shows, per pod, what
// its own raftlet sidecar says about the cluster, so `curl <release>-leader` proves that the leader
// Service really lands on the leader pod.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';

export interface DemoAppOptions {
  readonly host: string;
  readonly port: number;
  /** Base URL of the local raftlet client API (SPEC §4). */
  readonly raftletApiUrl: string;
  readonly podName: string;
  /** How long to wait for the sidecar before answering 503. */
  readonly statusTimeoutMs: number;
}

export interface RunningDemoApp {
  readonly port: number;
  close(): Promise<void>;
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
`;

class UsageError extends Error {}

export function parseDemoAppArgs(args: readonly string[], env: NodeJS.ProcessEnv): DemoAppOptions {
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const match = /^--(port|host|api)(?:=(.*))?$/.exec(arg);
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
  };
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

async function handle(options: DemoAppOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
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
  const server: Server = createServer((req, res) => {
    handle(options, req, res).catch((err: unknown) => {
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
  return {
    port,
    close: () => new Promise<void>((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      server.closeAllConnections();
    }),
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
