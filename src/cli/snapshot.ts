// `raftlet snapshot save | restore | inspect`: backup and restore, as etcdctl snapshot save and
// restore do. save asks a running member for a consistent snapshot (a read barrier, then the state
// at that index: every write acknowledged before the command started is in it) through the client
// API (GET /v1/snapshot) or, with --peer, through the peer port with the cluster token (GET
// /raft/v1/snapshot); it verifies the file before writing it (atomically). restore verifies it
// again and prepares a data directory that starts a new cluster with a new cluster id.
// Exit codes: 0 done; 1 the request failed; 2 bad usage; 3 the snapshot file is damaged.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Agent, request } from 'undici';
import { parseNodeId, parsePeers, parseUrl, SettingsError } from '../config/values.ts';
import { BackupError, decodeBackup, type BackupHeader } from '../run/backup.ts';
import { isClusterId, newClusterId } from '../run/cluster-id.ts';
import { writeFileDurably } from '../run/durable-file.ts';
import { ExitCode } from '../run/exit-codes.ts';
import { restoreDataDir, RestoreRefused } from '../run/restore.ts';
import { PROTOCOL_HEADER, PROTOCOL_VERSION } from '../transport/protocol.ts';
import { SNAPSHOT_ROUTE } from '../transport/snapshot-route.ts';
import type { Output } from './local.ts';

const DEFAULT_API_URL = 'http://127.0.0.1:7071';
const DEFAULT_TIMEOUT_MS = 60_000;

export const SNAPSHOT_USAGE = `usage: raftlet snapshot save FILE [--api URL | --peer URL] [--timeout-ms N]
       raftlet snapshot restore FILE [--data-dir DIR] [--node-id ID] [--peers id=url,...] [--cluster-id ID]
       raftlet snapshot inspect FILE

save     a consistent snapshot of a running cluster (its index, term and SHA-256 are printed):
         --api URL   a member's client API (default $RAFTLET_API_URL, else ${DEFAULT_API_URL})
         --peer URL  a member's peer port, authenticated with RAFTLET_CLUSTER_TOKEN or
                     RAFTLET_CLUSTER_TOKEN_FILE (and RAFTLET_PEER_TLS_* files for https)
restore  verifies FILE and makes DIR (new or empty) the data directory of a member of a NEW cluster
         with that state: --node-id (default $RAFTLET_NODE_ID, else $POD_NAME) and its members
         --peers (default $RAFTLET_PEERS, else this node alone at $RAFTLET_ADVERTISE_URL); DIR
         defaults to $RAFTLET_DATA_DIR, else ./raftlet-data/ID. Each restore makes a new cluster id
         (printed); restore the other members from the same file with --cluster-id ID, or start
         them with empty data directories: the new cluster's leader adds and catches them up.
inspect  verifies FILE and prints its header
`;

export interface SnapshotIo {
  readonly stdout: Output;
  readonly stderr: Output;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd?: string;
}

class UsageError extends Error {}

export async function runSnapshotCommand(args: readonly string[], io: SnapshotIo): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === 'help' || args.includes('--help') || args.includes('-h')) {
    (sub === undefined ? io.stderr : io.stdout).write(SNAPSHOT_USAGE);
    return sub === undefined ? ExitCode.badConfig : ExitCode.ok;
  }
  try {
    switch (sub) {
      case 'save':
        return await save(parseFlags(rest, ['api', 'peer', 'timeout-ms']), io);
      case 'restore':
        return await restore(parseFlags(rest, ['data-dir', 'node-id', 'peers', 'cluster-id', 'advertise-url']), io);
      case 'inspect':
        return inspect(parseFlags(rest, []), io);
      default:
        throw new UsageError(`unknown snapshot command ${JSON.stringify(sub)}; use save, restore or inspect`);
    }
  } catch (err) {
    if (err instanceof UsageError || err instanceof SettingsError) {
      io.stderr.write(`raftlet snapshot: ${err.message}\n${SNAPSHOT_USAGE}`);
      return ExitCode.badConfig;
    }
    if (err instanceof BackupError) {
      io.stderr.write(`raftlet snapshot ${sub}: ${err.message}\n`);
      return ExitCode.badData;
    }
    if (err instanceof RestoreRefused) {
      io.stderr.write(`raftlet snapshot restore: ${err.message}\n`);
      return ExitCode.badConfig;
    }
    throw err;
  }
}

interface Flags {
  readonly file: string;
  readonly values: ReadonlyMap<string, string>;
}

function parseFlags(args: readonly string[], allowed: readonly string[]): Flags {
  const values = new Map<string, string>();
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    if (!allowed.includes(name)) throw new UsageError(`unknown flag --${name}`);
    const value = eq >= 0 ? arg.slice(eq + 1) : args[++i];
    if (value === undefined || value === '') throw new UsageError(`--${name} needs a value`);
    if (values.has(name)) throw new UsageError(`--${name} given twice`);
    values.set(name, value);
  }
  if (positional.length !== 1) throw new UsageError(positional.length === 0 ? 'FILE is missing' : `one FILE expected, got ${positional.join(' ')}`);
  return { file: positional[0] ?? '', values };
}

// ---- save ----------------------------------------------------------------------------------------

async function save(flags: Flags, io: SnapshotIo): Promise<number> {
  const api = flags.values.get('api');
  const peer = flags.values.get('peer');
  if (api !== undefined && peer !== undefined) throw new UsageError('give --api or --peer, not both');
  const timeoutText = flags.values.get('timeout-ms');
  const timeoutMs = timeoutText === undefined ? DEFAULT_TIMEOUT_MS : Number(timeoutText);
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) throw new UsageError('--timeout-ms must be a whole number of milliseconds');
  const target = peer !== undefined ? peerTarget(peer, io.env) : apiTarget(api ?? io.env.RAFTLET_API_URL ?? DEFAULT_API_URL);
  let bytes: Uint8Array;
  try {
    const response = await request(target.url, {
      method: 'GET',
      headers: target.headers,
      dispatcher: target.agent,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = new Uint8Array(await response.body.arrayBuffer());
    if (response.statusCode !== 200) {
      io.stderr.write(`raftlet snapshot save: ${target.url} answered ${response.statusCode}: ${errorText(body)}\n`);
      return ExitCode.failure;
    }
    bytes = body;
  } catch (err) {
    io.stderr.write(`raftlet snapshot save: request to ${target.url} failed: ${describe(err)}\n`);
    return ExitCode.failure;
  } finally {
    await target.agent.close().catch(() => undefined);
  }
  // A damaged answer is a failed request, not a damaged file: nothing is written.
  let header: BackupHeader;
  try {
    header = decodeBackup(bytes).header;
  } catch (err) {
    if (!(err instanceof BackupError)) throw err;
    io.stderr.write(`raftlet snapshot save: ${target.url} sent ${err.message}; nothing written\n`);
    return ExitCode.failure;
  }
  const file = path.resolve(io.cwd ?? process.cwd(), flags.file);
  writeFileDurably(file, bytes);
  io.stdout.write(`saved ${flags.file}: ${describeHeader(header)}\n`);
  return ExitCode.ok;
}

interface Target {
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly agent: Agent;
}

function apiTarget(base: string): Target {
  const url = parseUrl({ name: '--api', text: base });
  return { url: `${url.replace(/\/$/, '')}/v1/snapshot`, headers: {}, agent: new Agent() };
}

function peerTarget(base: string, env: SnapshotIo['env']): Target {
  const url = parseUrl({ name: '--peer', text: base });
  const insecure = env.RAFTLET_INSECURE === '1' || env.RAFTLET_INSECURE === 'true';
  const token = insecure ? null : clusterToken(env);
  const headers: Record<string, string> = { [PROTOCOL_HEADER]: String(PROTOCOL_VERSION) };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const tls = url.startsWith('https:') ? tlsFiles(env) : {};
  return { url: `${url.replace(/\/$/, '')}${SNAPSHOT_ROUTE}`, headers, agent: new Agent({ connect: tls }) };
}

/** The token this member would send: the first of RAFTLET_CLUSTER_TOKEN (comma-separated while
 * rotating) or of RAFTLET_CLUSTER_TOKEN_FILE (one per line while rotating). */
function clusterToken(env: SnapshotIo['env']): string {
  const inline = env.RAFTLET_CLUSTER_TOKEN;
  const file = env.RAFTLET_CLUSTER_TOKEN_FILE;
  let text: string;
  if (inline !== undefined && inline !== '') text = inline;
  else if (file !== undefined && file !== '') {
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new UsageError(`RAFTLET_CLUSTER_TOKEN_FILE cannot be read (${describe(err)})`);
    }
  } else throw new UsageError('--peer needs the cluster token: set RAFTLET_CLUSTER_TOKEN or RAFTLET_CLUSTER_TOKEN_FILE');
  const first = text.split(/[\n,]/).map((t) => t.trim()).find((t) => t !== '');
  if (first === undefined) throw new UsageError('the cluster token is empty');
  return first;
}

function tlsFiles(env: SnapshotIo['env']): { cert?: Buffer; key?: Buffer; ca?: Buffer } {
  const read = (name: string): Buffer | undefined => {
    const file = env[name];
    if (file === undefined || file === '') return undefined;
    try {
      return readFileSync(file);
    } catch (err) {
      throw new UsageError(`${name} cannot be read (${describe(err)})`);
    }
  };
  const files = { cert: read('RAFTLET_PEER_TLS_CERT_FILE'), key: read('RAFTLET_PEER_TLS_KEY_FILE'), ca: read('RAFTLET_PEER_TLS_CA_FILE') };
  return Object.fromEntries(Object.entries(files).filter(([, v]) => v !== undefined));
}

// ---- restore and inspect ---------------------------------------------------------------------------

async function restore(flags: Flags, io: SnapshotIo): Promise<number> {
  const nodeIdText = flags.values.get('node-id') ?? io.env.RAFTLET_NODE_ID ?? io.env.POD_NAME;
  if (nodeIdText === undefined || nodeIdText === '') throw new UsageError('--node-id (or RAFTLET_NODE_ID) is required: the member this data directory is for');
  const nodeId = parseNodeId({ name: flags.values.has('node-id') ? '--node-id' : 'RAFTLET_NODE_ID', text: nodeIdText });
  const peersText = flags.values.get('peers') ?? io.env.RAFTLET_PEERS;
  let peers;
  if (peersText !== undefined && peersText !== '') {
    peers = parsePeers({ name: flags.values.has('peers') ? '--peers' : 'RAFTLET_PEERS', text: peersText });
  } else {
    const advertise = flags.values.get('advertise-url') ?? io.env.RAFTLET_ADVERTISE_URL;
    if (advertise === undefined || advertise === '') {
      throw new UsageError('--peers id=url,... (or RAFTLET_PEERS, or RAFTLET_ADVERTISE_URL for a one-member cluster) is required');
    }
    peers = [{ id: nodeId, url: parseUrl({ name: '--advertise-url', text: advertise }) }];
  }
  const clusterIdText = flags.values.get('cluster-id');
  if (clusterIdText !== undefined && !isClusterId(clusterIdText)) {
    throw new UsageError('--cluster-id must be a cluster id as a restore prints it (lower-case letters, digits and -, 8 to 64 characters)');
  }
  const cwd = io.cwd ?? process.cwd();
  const dataDir = path.resolve(cwd, flags.values.get('data-dir') ?? io.env.RAFTLET_DATA_DIR ?? path.join('raftlet-data', nodeId));
  const backup = decodeBackup(readSnapshotFile(path.resolve(cwd, flags.file)));
  const clusterId = clusterIdText ?? newClusterId();
  const members = peers.map((p) => ({ id: p.id, url: p.url, voter: true }));
  await restoreDataDir({ backup, dataDir, nodeId, members, clusterId });
  io.stdout.write(
    [
      `restored ${flags.file} (${describeHeader(backup.header)})`,
      `into ${dataDir} for ${nodeId}: a new cluster, id ${clusterId}, members ${members.map((m) => `${m.id}=${m.url}`).join(',')}`,
      members.length > 1
        ? `restore the other members from the same file with --cluster-id ${clusterId}, or start them with empty data directories (the leader catches them up)`
        : 'start it with raftlet run on this data directory',
      '',
    ].join('\n'),
  );
  return ExitCode.ok;
}

function inspect(flags: Flags, io: SnapshotIo): number {
  const { header } = decodeBackup(readSnapshotFile(path.resolve(io.cwd ?? process.cwd(), flags.file)));
  io.stdout.write(`${flags.file}: ${describeHeader(header)}; checksum ok\n${JSON.stringify(header, null, 2)}\n`);
  return ExitCode.ok;
}

function readSnapshotFile(file: string): Uint8Array {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${describe(err)}`);
  }
}

function describeHeader(h: BackupHeader): string {
  return `index ${h.index}, term ${h.term}, ${h.keys} key${h.keys === 1 ? '' : 's'}, ${h.bytes} bytes, sha256 ${h.sha256}, from ${h.node} of cluster ${h.clusterId ?? 'without an id'}`;
}

function errorText(body: Uint8Array): string {
  const text = Buffer.from(body).toString('utf8');
  try {
    const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
    if (parsed.error?.message !== undefined) return `${parsed.error.code ?? 'error'}: ${parsed.error.message}`;
  } catch {
    // not JSON
  }
  return text.slice(0, 300);
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code ?? (err.cause as NodeJS.ErrnoException | undefined)?.code;
  return code === undefined ? err.message : `${err.message} (${code})`;
}
