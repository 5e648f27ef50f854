// `raftlet status | get KEY | put KEY VALUE | del KEY [--api URL]`: a small client of the API in
// app.ts, for people and shell scripts. Exit codes: 0 ok, 1 the request failed (the server's error
// is printed), 2 bad usage (the message names what is wrong).
import { Agent, request } from 'undici';
import { validateKey } from '../kv/key.ts';

export const DEFAULT_API_URL = 'http://127.0.0.1:7071';
/** Generous: the server answers within RAFTLET_REQUEST_TIMEOUT_MS; this only guards a hung server. */
const CLIENT_TIMEOUT_MS = 60_000;

export interface ClientIo {
  readonly stdout: { write(chunk: string | Uint8Array): unknown; readonly isTTY?: boolean };
  readonly stderr: { write(chunk: string): unknown };
  /** Where RAFTLET_API_URL is read from; process.env by default. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export const CLIENT_USAGE = `usage: raftlet status [--api URL]
       raftlet get KEY [--stale] [--api URL]
       raftlet put KEY VALUE [--if-match MODINDEX | --if-none-match] [--api URL]
       raftlet del KEY [--if-match MODINDEX] [--api URL]
--api defaults to $RAFTLET_API_URL, else ${DEFAULT_API_URL}. Use -- before a KEY or VALUE that starts with -.
`;

type Command =
  | { readonly kind: 'status' }
  | { readonly kind: 'get'; readonly key: string; readonly stale: boolean }
  | { readonly kind: 'put'; readonly key: string; readonly value: string; readonly ifMatch?: number; readonly ifNoneMatch: boolean }
  | { readonly kind: 'del'; readonly key: string; readonly ifMatch?: number };

interface Invocation {
  readonly command: Command;
  readonly api: URL;
}

class UsageError extends Error {}

export async function runClientCommand(args: readonly string[], io: ClientIo): Promise<number> {
  const options = args.includes('--') ? args.slice(0, args.indexOf('--')) : args;
  if (args.length === 0 || options.includes('--help') || options.includes('-h') || args[0] === 'help') {
    (args.length === 0 ? io.stderr : io.stdout).write(CLIENT_USAGE);
    return args.length === 0 ? 2 : 0;
  }
  let invocation: Invocation;
  try {
    invocation = parseArgs(args, io.env ?? process.env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr.write(`raftlet: ${error.message}\n${CLIENT_USAGE}`);
    return 2;
  }
  const agent = new Agent({ headersTimeout: CLIENT_TIMEOUT_MS, bodyTimeout: CLIENT_TIMEOUT_MS });
  try {
    return await execute(invocation, io, agent);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const hint = code === 'ECONNREFUSED' || code === 'ENOTFOUND' ? ' (is raftlet running there? set --api or RAFTLET_API_URL)' : '';
    io.stderr.write(`raftlet ${invocation.command.kind}: request to ${invocation.api.origin} failed: ${describe(error)}${hint}\n`);
    return 1;
  } finally {
    await agent.close();
  }
}

function parseArgs(args: readonly string[], env: Readonly<Record<string, string | undefined>>): Invocation {
  const positional: string[] = [];
  let api = env.RAFTLET_API_URL || DEFAULT_API_URL;
  let stale = false;
  let ifNoneMatch = false;
  let ifMatch: number | undefined;
  const seen = new Set<string>();
  for (let position = 0; position < args.length; position++) {
    const arg = args[position];
    if (arg === '--') {
      positional.push(...args.slice(position + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const takeValue = (): string => {
      if (inline !== undefined) return inline;
      const next = args[++position];
      if (next === undefined) throw new UsageError(`${flag} needs a value`);
      return next;
    };
    if (seen.has(flag)) throw new UsageError(`${flag} is given twice`);
    seen.add(flag);
    switch (flag) {
      case '--api':
        api = takeValue();
        break;
      case '--stale':
        stale = true;
        break;
      case '--if-none-match':
        ifNoneMatch = true;
        break;
      case '--if-match': {
        const raw = takeValue().replace(/^"(.*)"$/, '$1');
        ifMatch = /^[0-9]{1,16}$/.test(raw) ? Number(raw) : Number.NaN;
        if (!Number.isSafeInteger(ifMatch) || ifMatch < 1) throw new UsageError(`--if-match needs a modIndex (a positive integer), got ${JSON.stringify(raw)}`);
        break;
      }
      default:
        throw new UsageError(`unknown option ${flag}`);
    }
  }

  const [name, ...rest] = positional;
  const expect = (count: number, shape: string): void => {
    if (rest.length < count) throw new UsageError(`${name} needs ${shape}`);
    if (rest.length > count) throw new UsageError(`${name} takes ${shape}, but got an extra argument ${JSON.stringify(rest[count])}`);
  };
  const onlyFor = (allowed: readonly string[]): void => {
    if (stale && !allowed.includes('--stale')) throw new UsageError(`--stale only applies to get`);
    if (ifMatch !== undefined && !allowed.includes('--if-match')) throw new UsageError('--if-match only applies to put and del');
    if (ifNoneMatch && !allowed.includes('--if-none-match')) throw new UsageError('--if-none-match only applies to put');
  };
  let command: Command;
  switch (name) {
    case 'status':
      expect(0, 'no arguments');
      onlyFor([]);
      command = { kind: 'status' };
      break;
    case 'get':
      expect(1, 'KEY');
      onlyFor(['--stale']);
      command = { kind: 'get', key: checkKey(rest[0]), stale };
      break;
    case 'put':
      expect(2, 'KEY VALUE');
      onlyFor(['--if-match', '--if-none-match']);
      if (ifMatch !== undefined && ifNoneMatch) throw new UsageError('--if-match and --if-none-match cannot be combined');
      command = { kind: 'put', key: checkKey(rest[0]), value: rest[1], ifNoneMatch, ...(ifMatch === undefined ? {} : { ifMatch }) };
      break;
    case 'del':
      expect(1, 'KEY');
      onlyFor(['--if-match']);
      command = { kind: 'del', key: checkKey(rest[0]), ...(ifMatch === undefined ? {} : { ifMatch }) };
      break;
    case undefined:
      throw new UsageError('no command given');
    default:
      throw new UsageError(`unknown command ${JSON.stringify(name)}; the commands are status, get, put, del`);
  }
  return { command, api: parseApiUrl(api) };
}

function checkKey(key: string): string {
  const problem = validateKey(key);
  if (problem !== null) throw new UsageError(`bad KEY: ${problem}`);
  return key;
}

function parseApiUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--api must be a URL such as ${DEFAULT_API_URL}, got ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`--api must be an http:// or https:// URL, got ${JSON.stringify(raw)}`);
  }
  return url;
}

/** The API's URL for `path`, keeping any path prefix the base URL has (a reverse proxy's, say). */
function endpoint(api: URL, path: string): URL {
  const url = new URL(api.href);
  url.pathname = url.pathname.replace(/\/+$/, '') + path;
  url.search = '';
  url.hash = '';
  return url;
}

async function execute({ command, api }: Invocation, io: ClientIo, dispatcher: Agent): Promise<number> {
  const keyPath = (key: string): string => `/v1/kv/${encodeURIComponent(key)}`;
  switch (command.kind) {
    case 'status': {
      const response = await request(endpoint(api, '/v1/status'), { dispatcher });
      const body = Buffer.from(await response.body.arrayBuffer());
      if (response.statusCode !== 200) return failed(command.kind, response.statusCode, body, io);
      io.stdout.write(`${JSON.stringify(JSON.parse(body.toString('utf8')), null, 2)}\n`);
      return 0;
    }
    case 'get': {
      const url = endpoint(api, keyPath(command.key));
      if (command.stale) url.search = '?consistency=stale';
      const response = await request(url, { dispatcher });
      const body = Buffer.from(await response.body.arrayBuffer());
      if (response.statusCode !== 200) return failed(command.kind, response.statusCode, body, io);
      io.stdout.write(body);
      // A terminal gets a tidy line; a pipe gets the exact bytes.
      if (io.stdout.isTTY === true && body.at(-1) !== 0x0a) io.stdout.write('\n');
      return 0;
    }
    case 'put': {
      const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
      if (command.ifMatch !== undefined) headers['if-match'] = `"${command.ifMatch}"`;
      if (command.ifNoneMatch) headers['if-none-match'] = '*';
      const response = await request(endpoint(api, keyPath(command.key)), { method: 'PUT', headers, body: command.value, dispatcher });
      return printJson(command.kind, response.statusCode, Buffer.from(await response.body.arrayBuffer()), io);
    }
    case 'del': {
      const headers: Record<string, string> = command.ifMatch === undefined ? {} : { 'if-match': `"${command.ifMatch}"` };
      const response = await request(endpoint(api, keyPath(command.key)), { method: 'DELETE', headers, dispatcher });
      return printJson(command.kind, response.statusCode, Buffer.from(await response.body.arrayBuffer()), io);
    }
    default: {
      const unknown: never = command;
      throw new Error(`unknown command ${JSON.stringify(unknown)}`);
    }
  }
}

function printJson(name: string, statusCode: number, body: Buffer, io: ClientIo): number {
  if (statusCode !== 200) return failed(name, statusCode, body, io);
  io.stdout.write(`${body.toString('utf8').trim()}\n`);
  return 0;
}

/** Prints the server's {"error":{code,message}}, or the raw answer when it is not that shape. */
function failed(name: string, statusCode: number, body: Buffer, io: ClientIo): number {
  const text = body.toString('utf8');
  let detail = `HTTP ${statusCode}: ${text.slice(0, 500).trim() || '(empty answer)'}`;
  try {
    const parsed: unknown = JSON.parse(text);
    const error = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error;
    if (typeof error?.code === 'string' && typeof error.message === 'string') detail = `${error.code}: ${error.message}`;
  } catch {
    // not JSON: keep the raw text
  }
  io.stderr.write(`raftlet ${name}: ${detail}\n`);
  return 1;
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const cause = error.cause instanceof Error ? ` (${error.cause.message})` : '';
    return `${typeof code === 'string' ? `${code} ` : ''}${error.message}${cause}`;
  }
  return String(error);
}
