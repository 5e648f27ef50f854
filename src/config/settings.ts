// The settings of `raftlet run` (SPEC §3). One table below names every setting once (environment
// variable, flag, default, parser, help); parsing, validation and `--help` are all generated from it,
// so a new setting cannot be parsed but undocumented, or documented but ignored.
//
// Everything is checked here, before the node touches the disk or a socket: a bad setting must end
// the process with exit code 2 and one line naming the setting (SPEC §2), never half-way through
// start-up.
//
// Decisions where SPEC §3 is silent:
// - An empty value counts as unset (Kubernetes manifests often template empty strings).
// - RAFTLET_ELECTION_TIMEOUT_MS must be at least 2 x RAFTLET_HEARTBEAT_MS (the defaults are 10 x).
// - Neither RAFTLET_PEERS nor RAFTLET_DISCOVERY_SERVICE: a one-member cluster of this node, outside
//   Kubernetes only; with Kubernetes on it is an error, since every pod would label itself leader.
//   Both set is an error too.
// - The cluster token has at least MIN_TOKEN_LENGTH printable ASCII characters; RAFTLET_INSECURE=1
//   with a token set is an error (which one did the operator mean?).
// - Unknown flags are errors; unknown RAFTLET_* variables are warnings (another tool may own them).
import { readFileSync, statSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import path from 'node:path';
import {
  DNS_LABEL, LOG_LEVELS, NODE_ID, SettingsError, dnsLabel, dnsSubdomain, fail, formatHostPort, integer, nearest, parseAutoSwitch,
  parseDnsName, parseDnsServer, parseLabelKey, parseListen, parseLogLevel, parseNodeId, parsePath, parsePeers, parseSwitch,
  parseUrl, show,
} from './values.ts';
import type { Given, HostPort, LogLevel, PeerSpec } from './values.ts';
import { MIN_TOKEN_LENGTH, parseTokenList } from './tokens.ts';

export { SettingsError, LOG_LEVELS, formatHostPort } from './values.ts';
export type { HostPort, LogLevel, PeerSpec } from './values.ts';

/** Where the initial members come from. */
export type MembersFrom =
  /** RAFTLET_PEERS: `peers` is the full list, self included. */
  | 'peers'
  /** RAFTLET_DISCOVERY_SERVICE: `peers` is empty; members come from DNS SRV records. */
  | 'dns'
  /** Neither was set (allowed outside Kubernetes only): a one-member cluster, `peers` = [self]. */
  | 'self';

export interface Settings {
  readonly nodeId: string;
  readonly peerListen: HostPort;
  readonly apiListen: HostPort;
  readonly metricsListen: HostPort;
  /** What peers use to reach this node: explicit, else this node's RAFTLET_PEERS entry, else derived. */
  readonly advertiseUrl: string;
  readonly membersFrom: MembersFrom;
  /** See MembersFrom. When not empty it contains { id: nodeId, url: advertiseUrl }. */
  readonly peers: readonly PeerSpec[];
  /** Headless Service DNS name without a trailing dot; SRV records are `_raft._tcp.<name>`. */
  readonly discoveryService: string | null;
  /** null = the system resolver. host is always an IP address. */
  readonly dnsServer: HostPort | null;
  readonly bootstrapExpect: number;
  /** Absolute path. Not created here. */
  readonly dataDir: string;
  readonly heartbeatMs: number;
  /** T: each election timeout is drawn uniformly from [T, 2T). At least 2 × heartbeatMs. */
  readonly electionTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly maxValueBytes: number;
  readonly snapshotEntries: number;
  /** Warm the code with a throwaway in-memory cluster before joining (src/run/rehearsal.ts). */
  readonly rehearsal: boolean;
  /** The peer RPC bearer token this member sends (the first of clusterTokens); null exactly when insecure. */
  readonly clusterToken: string | null;
  // ---- token rotation (issue 11) ----
  /** Every token this member accepts, the one it sends first; null exactly when insecure. */
  readonly clusterTokens: readonly string[] | null;
  /** Absolute path of RAFTLET_CLUSTER_TOKEN_FILE, re-read when it changes; null when the tokens
   * came from RAFTLET_CLUSTER_TOKEN (or insecure). */
  readonly clusterTokenFile: string | null;
  readonly insecure: boolean;
  readonly kubernetes: boolean;
  readonly podName: string;
  readonly podNamespace: string;
  readonly roleLabel: string;
  readonly leaseName: string | null;
  readonly logLevel: LogLevel;
  // ---- peer TLS (issue 14) ----
  /** Peer mutual TLS files (absolute paths), or null for plain http. */
  readonly peerTls: { readonly certFile: string; readonly keyFile: string; readonly caFile: string } | null;
  /** A peer's certificate must carry the DNS name (or IP) of the host in its URL. */
  readonly peerTlsVerifyName: boolean;
  /** What authenticates a peer: its TLS client certificate, the bearer token, or both. */
  readonly peerAuth: PeerAuth;
  /** Things worth a log line at warn level once the logger exists (insecure mode, ignored settings). */
  readonly warnings: readonly string[];
  // The application's side (issue 15).
  /** Share of the leader lease given up for clock-rate differences and timer slack, in [0, 0.9]. */
  readonly leaseDriftRatio: number;
  /** The application's health endpoint (GET, 2xx = healthy); null = leadership ignores the app. */
  readonly appHealthUrl: string | null;
  readonly appHealthIntervalMs: number;
  /** Failed checks in a row before the application counts as unhealthy. */
  readonly appHealthThreshold: number;
  /** Changes kept for watches (RAFTLET_WATCH_HISTORY). */
  readonly watchHistory: number;
  readonly watchMaxWatchers: number;
  readonly watchMaxBuffered: number;
}

/** What parsing needs from the outside world; tests pass their own. */
export interface SettingsHost {
  hostname(): string;
  readFile(file: string): string;
  cwd(): string;
  /** The file's permission bits, or null if unknown (tests without a file system). */
  fileMode?(file: string): number | null;
}

export const systemHost: SettingsHost = {
  hostname: () => osHostname(),
  readFile: (file) => readFileSync(file, 'utf8'),
  cwd: () => process.cwd(),
  fileMode: (file) => statSync(file).mode & 0o777,
};

export type PeerAuth = 'tls' | 'token' | 'both';
const PEER_AUTH_VALUES: readonly PeerAuth[] = ['both', 'tls', 'token'];

function parsePeerAuth(given: Given): PeerAuth {
  const value = PEER_AUTH_VALUES.find((v) => v === given.text);
  if (value === undefined) return fail(given, `must be one of ${PEER_AUTH_VALUES.join(', ')}`);
  return value;
}

export type Env = Readonly<Record<string, string | undefined>>;

// ---- limits ---------------------------------------------------------------------------------------

export { MIN_TOKEN_LENGTH };
export const MAX_VALUE_BYTES_LIMIT = 64 * 1024 * 1024;
/** Followers must hear at least this many heartbeats per election timeout, or they campaign
 * against a healthy leader whenever one heartbeat is late. */
export const MIN_ELECTION_TO_HEARTBEAT_RATIO = 2;
const SERVICE_ACCOUNT_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

// ---- the table --------------------------------------------------------------------------------------

export interface SettingSpec<T> {
  readonly env: string;
  /** Without the leading `--`: always the variable's name without RAFTLET_, lower-case, dashed. */
  readonly flag: string;
  readonly metavar: string;
  readonly help: string;
  readonly defaultText: string;
  /** The value of the flag given bare (`--insecure`); only switches have one. */
  readonly bare: string | null;
  readonly parse: (given: Given) => T;
}

function setting<T>(s: {
  env: string;
  metavar: string;
  help: string;
  defaultText: string;
  bare?: string;
  parse: (given: Given) => T;
}): SettingSpec<T> {
  return {
    env: s.env,
    flag: s.env.replace(/^RAFTLET_/, '').toLowerCase().replaceAll('_', '-'),
    metavar: s.metavar,
    help: s.help,
    defaultText: s.defaultText,
    bare: s.bare ?? null,
    parse: s.parse,
  };
}

const DEFAULTS = {
  peerListen: '0.0.0.0:7070',
  apiListen: '127.0.0.1:7071',
  metricsListen: '0.0.0.0:9102',
  bootstrapExpect: 3,
  heartbeatMs: 100,
  electionTimeoutMs: 1000,
  requestTimeoutMs: 5000,
  maxValueBytes: 1_048_576,
  snapshotEntries: 10_000,
  roleLabel: 'raftlet.io/role',
  logLevel: 'info' as LogLevel,
} as const;

// ---- the application's side (issue 15): leader lease, leadership that follows the app, watches ----

const APP_DEFAULTS = {
  leaseDriftRatio: 0.1,
  appHealthIntervalMs: 1000,
  appHealthThreshold: 2,
  watchHistory: 10_000,
  watchMaxWatchers: 1000,
  watchMaxBuffered: 1000,
} as const;

// A function, so the table above can spread it while this block stays apart from the rest.
function APP_SETTINGS() {
  return {
    leaseDriftRatio: setting({
      env: 'RAFTLET_LEASE_DRIFT_RATIO', metavar: 'RATIO', defaultText: String(APP_DEFAULTS.leaseDriftRatio),
      help: 'share of the leader lease (GET /v1/leadership) given up for clock-rate differences between members, 0 to 0.9',
      parse: parseRatio(0, 0.9),
    }),
    appHealthUrl: setting({
      env: 'RAFTLET_APP_HEALTH_URL', metavar: 'URL', defaultText: 'none',
      help: "the application's health endpoint (GET, 2xx = healthy): leadership moves away from an unhealthy app",
      parse: parseHealthUrl,
    }),
    appHealthIntervalMs: setting({
      env: 'RAFTLET_APP_HEALTH_INTERVAL_MS', metavar: 'MS', defaultText: String(APP_DEFAULTS.appHealthIntervalMs),
      help: 'how often the application health endpoint is checked (each check times out after this too)', parse: integer(50, 600_000),
    }),
    appHealthThreshold: setting({
      env: 'RAFTLET_APP_HEALTH_THRESHOLD', metavar: 'N', defaultText: String(APP_DEFAULTS.appHealthThreshold),
      help: 'failed checks in a row before the application counts as unhealthy (one success: healthy)', parse: integer(1, 100),
    }),
    watchHistory: setting({
      env: 'RAFTLET_WATCH_HISTORY', metavar: 'N', defaultText: String(APP_DEFAULTS.watchHistory),
      help: 'recent changes kept for watches; a watch resuming from further back is told to re-read', parse: integer(1, 10_000_000),
    }),
    watchMaxWatchers: setting({
      env: 'RAFTLET_WATCH_MAX_WATCHERS', metavar: 'N', defaultText: String(APP_DEFAULTS.watchMaxWatchers),
      help: 'watch streams and blocking queries open at once; more are refused with 429', parse: integer(1, 1_000_000),
    }),
    watchMaxBuffered: setting({
      env: 'RAFTLET_WATCH_MAX_BUFFERED', metavar: 'N', defaultText: String(APP_DEFAULTS.watchMaxBuffered),
      help: 'changes one watch stream may have waiting; a slower client is cut off and told to re-read', parse: integer(1, 10_000_000),
    }),
  };
}

function parseRatio(min: number, max: number): (given: Given) => number {
  return (given) => {
    if (!/^\d+(\.\d+)?$/.test(given.text)) fail(given, 'must be a decimal number such as 0.1');
    const value = Number(given.text);
    if (value < min || value > max) fail(given, `must be between ${min} and ${max}`);
    return value;
  };
}

function parseHealthUrl(given: Given): string {
  let url: URL;
  try {
    url = new URL(given.text);
  } catch {
    return fail(given, 'must be a URL such as http://127.0.0.1:8080/healthz');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail(given, 'must be an http:// or https:// URL');
  if (url.hash !== '') fail(given, 'must not have a #fragment');
  return url.href;
}

/** The issue-15 settings, read after the rest (they depend on nothing else). */
function readAppSettings(read: <K extends AppSettingKey>(key: K) => SettingValue<K> | undefined, given: (key: SettingKey) => Given | undefined,
  nameOf: (key: SettingKey) => string, warnings: string[]): Pick<Settings, AppSettingKey> {
  const appHealthUrl = read('appHealthUrl') ?? null;
  if (appHealthUrl === null) {
    for (const key of ['appHealthIntervalMs', 'appHealthThreshold'] as const) {
      if (given(key) !== undefined) warnings.push(`${nameOf(key)} is ignored: ${SETTINGS.appHealthUrl.env} is not set`);
    }
  }
  return {
    leaseDriftRatio: read('leaseDriftRatio') ?? APP_DEFAULTS.leaseDriftRatio,
    appHealthUrl,
    appHealthIntervalMs: read('appHealthIntervalMs') ?? APP_DEFAULTS.appHealthIntervalMs,
    appHealthThreshold: read('appHealthThreshold') ?? APP_DEFAULTS.appHealthThreshold,
    watchHistory: read('watchHistory') ?? APP_DEFAULTS.watchHistory,
    watchMaxWatchers: read('watchMaxWatchers') ?? APP_DEFAULTS.watchMaxWatchers,
    watchMaxBuffered: read('watchMaxBuffered') ?? APP_DEFAULTS.watchMaxBuffered,
  };
}

type AppSettingKey = keyof ReturnType<typeof APP_SETTINGS>;

export const SETTINGS = {
  nodeId: setting({
    env: 'RAFTLET_NODE_ID', metavar: 'ID', defaultText: 'POD_NAME, else the host name',
    help: 'stable member id (the StatefulSet pod name): a DNS-1123 label', parse: parseNodeId,
  }),
  peerListen: setting({
    env: 'RAFTLET_PEER_LISTEN', metavar: 'HOST:PORT', defaultText: DEFAULTS.peerListen,
    help: 'address for peer RPC (authenticated with the cluster token)', parse: parseListen,
  }),
  apiListen: setting({
    env: 'RAFTLET_API_LISTEN', metavar: 'HOST:PORT', defaultText: DEFAULTS.apiListen,
    help: 'address for the client API used by the app container', parse: parseListen,
  }),
  metricsListen: setting({
    env: 'RAFTLET_METRICS_LISTEN', metavar: 'HOST:PORT', defaultText: DEFAULTS.metricsListen,
    help: 'address for /metrics, /healthz and /readyz', parse: parseListen,
  }),
  advertiseUrl: setting({
    env: 'RAFTLET_ADVERTISE_URL', metavar: 'URL',
    defaultText: "this node's RAFTLET_PEERS entry, else http://<peer host, or <id>.<discovery service>, or <id>>:<peer port>",
    help: 'the URL peers use to reach this node', parse: parseUrl,
  }),
  peers: setting({
    env: 'RAFTLET_PEERS', metavar: 'ID=URL,...', defaultText: 'none',
    help: 'static members, self included (without it and without discovery: a one-node cluster)', parse: parsePeers,
  }),
  discoveryService: setting({
    env: 'RAFTLET_DISCOVERY_SERVICE', metavar: 'NAME', defaultText: 'none',
    help: 'headless Service DNS name; members are the SRV records _raft._tcp.<NAME>', parse: parseDnsName,
  }),
  dnsServer: setting({
    env: 'RAFTLET_DNS_SERVER', metavar: 'IP[:PORT]', defaultText: 'the system resolver',
    help: 'DNS server to ask for discovery (port 53 if omitted)', parse: parseDnsServer,
  }),
  bootstrapExpect: setting({
    env: 'RAFTLET_BOOTSTRAP_EXPECT', metavar: 'N', defaultText: String(DEFAULTS.bootstrapExpect),
    help: 'members that must be discovered before a new cluster forms', parse: integer(1, 1000),
  }),
  dataDir: setting({
    env: 'RAFTLET_DATA_DIR', metavar: 'DIR', defaultText: './raftlet-data/<id>',
    help: 'term, vote, log and snapshots', parse: parsePath,
  }),
  heartbeatMs: setting({
    env: 'RAFTLET_HEARTBEAT_MS', metavar: 'MS', defaultText: String(DEFAULTS.heartbeatMs),
    help: 'leader heartbeat interval', parse: integer(1, 60_000),
  }),
  electionTimeoutMs: setting({
    env: 'RAFTLET_ELECTION_TIMEOUT_MS', metavar: 'MS', defaultText: String(DEFAULTS.electionTimeoutMs),
    help: `T: each timeout is drawn from [T, 2T); at least ${MIN_ELECTION_TO_HEARTBEAT_RATIO} x the heartbeat`,
    parse: integer(2, 600_000),
  }),
  requestTimeoutMs: setting({
    env: 'RAFTLET_REQUEST_TIMEOUT_MS', metavar: 'MS', defaultText: String(DEFAULTS.requestTimeoutMs),
    help: 'how long a client request may wait for a leader or a commit', parse: integer(1, 3_600_000),
  }),
  maxValueBytes: setting({
    env: 'RAFTLET_MAX_VALUE_BYTES', metavar: 'BYTES', defaultText: String(DEFAULTS.maxValueBytes),
    help: `largest value accepted (at most ${MAX_VALUE_BYTES_LIMIT}, 64 MiB)`, parse: integer(1, MAX_VALUE_BYTES_LIMIT),
  }),
  snapshotEntries: setting({
    env: 'RAFTLET_SNAPSHOT_ENTRIES', metavar: 'N', defaultText: String(DEFAULTS.snapshotEntries),
    help: 'advanced: entries applied between snapshots (log compaction, Raft §7)', parse: integer(1, 100_000_000),
  }),
  rehearsal: setting({
    env: 'RAFTLET_REHEARSAL', metavar: 'BOOL', defaultText: '1', bare: '1',
    help: 'advanced: before joining, run a throwaway 3-member cluster in memory on 127.0.0.1 for about half a second, so the first failover runs warm code; 0 = start at once',
    parse: parseSwitch,
  }),
  clusterToken: setting({
    env: 'RAFTLET_CLUSTER_TOKEN', metavar: 'TOKEN', defaultText: 'required',
    help: `shared secret for peer RPC, at least ${MIN_TOKEN_LENGTH} characters; several separated by commas while rotating (the first is sent, all are accepted; prefer the file: flags show in ps)`,
    parse: (given) => given,
  }),
  clusterTokenFile: setting({
    env: 'RAFTLET_CLUSTER_TOKEN_FILE', metavar: 'FILE', defaultText: 'required (or the token)',
    help: 'file holding the cluster token, or one token per line while rotating (the first is sent, all are accepted); re-read when it changes', parse: parsePath,
  }),
  insecure: setting({
    env: 'RAFTLET_INSECURE', metavar: 'BOOL', defaultText: '0', bare: '1',
    help: '1 = peer RPC without a token (local experiments only; logged loudly)', parse: parseSwitch,
  }),
  kubernetes: setting({
    env: 'RAFTLET_KUBERNETES', metavar: 'auto|BOOL', defaultText: 'auto', bare: '1',
    help: 'label pods, record events; auto = on when KUBERNETES_SERVICE_HOST or KUBECONFIG is set',
    parse: parseAutoSwitch,
  }),
  podName: setting({
    env: 'RAFTLET_POD_NAME', metavar: 'NAME', defaultText: 'POD_NAME, else the node id',
    help: 'the pod to label', parse: dnsSubdomain,
  }),
  podNamespace: setting({
    env: 'RAFTLET_POD_NAMESPACE', metavar: 'NAMESPACE', defaultText: "POD_NAMESPACE, else the service account's, else default",
    help: "the pod's namespace", parse: dnsLabel,
  }),
  roleLabel: setting({
    env: 'RAFTLET_ROLE_LABEL', metavar: 'KEY', defaultText: DEFAULTS.roleLabel,
    help: 'pod label key; values leader and follower', parse: parseLabelKey,
  }),
  leaseName: setting({
    env: 'RAFTLET_LEASE_NAME', metavar: 'NAME', defaultText: 'none',
    help: 'if set, mirror the leader into this coordination.k8s.io/v1 Lease', parse: dnsSubdomain,
  }),
  logLevel: setting({
    env: 'RAFTLET_LOG_LEVEL', metavar: 'LEVEL', defaultText: DEFAULTS.logLevel,
    help: `pino level: ${LOG_LEVELS.join(', ')}`, parse: parseLogLevel,
  }),
  // ---- peer TLS (issue 14) ----
  peerTlsCertFile: setting({
    env: 'RAFTLET_PEER_TLS_CERT_FILE', metavar: 'FILE', defaultText: 'none',
    help: "peer mutual TLS: this member's certificate (PEM); with the key and CA files, all three or none; re-read when changed",
    parse: parsePath,
  }),
  peerTlsKeyFile: setting({
    env: 'RAFTLET_PEER_TLS_KEY_FILE', metavar: 'FILE', defaultText: 'none',
    help: "peer mutual TLS: this member's private key (PEM; readable by its owner only)", parse: parsePath,
  }),
  peerTlsCaFile: setting({
    env: 'RAFTLET_PEER_TLS_CA_FILE', metavar: 'FILE', defaultText: 'none',
    help: "peer mutual TLS: the CA every peer's certificate must chain to (PEM)", parse: parsePath,
  }),
  peerTlsVerifyName: setting({
    env: 'RAFTLET_PEER_TLS_VERIFY_NAME', metavar: 'BOOL', defaultText: '0', bare: '1',
    help: "1 = a peer's certificate must carry the DNS name (or IP) of the host in that member's peer URL, both ways: a server's for its URL, a client's for the member it says it is", parse: parseSwitch,
  }),
  peerAuth: setting({
    env: 'RAFTLET_PEER_AUTH', metavar: 'both|tls|token', defaultText: 'both',
    help: 'what authenticates a peer: both = client certificate (with TLS on) and cluster token; tls = the certificate only (needs TLS); token = the token only',
    parse: parsePeerAuth,
  }),
  ...APP_SETTINGS(),
} as const;

export type SettingKey = keyof typeof SETTINGS;
type SettingValue<K extends SettingKey> = (typeof SETTINGS)[K] extends SettingSpec<infer T> ? T : never;
export const SETTING_KEYS = Object.keys(SETTINGS) as SettingKey[];

/** Variables read by the launcher (bin/raftlet.js) or by the client and demo-app commands, not by `run`. */
// Read by bin/raftlet.js (RAFTLET_USE_DIST) and the client commands (RAFTLET_API_URL), not by run.
const OTHER_KNOWN_ENV = new Set(['RAFTLET_USE_DIST', 'RAFTLET_API_URL']);

// ---- flags ---------------------------------------------------------------------------------------

export interface FlagSpec {
  /** Without the leading `--`. */
  readonly flag: string;
  /** Value when given bare, or null if the flag needs a value. */
  readonly bare: string | null;
}

/**
 * Reads `--name=value`, `--name value` and bare switches. Anything else is an error, since neither
 * `run` nor `local` takes positional arguments. A repeated flag keeps its last value.
 * `command` only serves the messages (`raftlet run`).
 */
export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[], command: string): Map<string, string> {
  const byFlag = new Map(specs.map((s) => [s.flag, s]));
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--') || arg === '--') {
      throw new SettingsError(arg, `${command} takes flags only, not ${show(arg)} (see ${command} --help)`);
    }
    const eq = arg.indexOf('=');
    const flag = arg.slice(2, eq === -1 ? undefined : eq);
    const spec = byFlag.get(flag);
    if (spec === undefined) {
      const near = nearest(flag, [...byFlag.keys()]);
      const hint = near === null ? '' : `; did you mean --${near}?`;
      throw new SettingsError(`--${flag}`, `unknown flag --${flag} for ${command}${hint} (see ${command} --help)`);
    }
    if (eq !== -1) {
      values.set(flag, arg.slice(eq + 1));
      continue;
    }
    const next = argv[i + 1];
    if (spec.bare !== null && (next === undefined || next.startsWith('--'))) {
      values.set(flag, spec.bare);
    } else if (next === undefined) {
      throw new SettingsError(`--${flag}`, `--${flag} needs a value`);
    } else {
      values.set(flag, next);
      i++;
    }
  }
  return values;
}

export const SETTING_FLAGS: readonly FlagSpec[] = SETTING_KEYS.map((k) => ({ flag: SETTINGS[k].flag, bare: SETTINGS[k].bare }));

// ---- assembly ------------------------------------------------------------------------------------

/**
 * Parses and validates every setting of `raftlet run` from the flags in `argv` (without the word
 * `run`) and the environment. A flag wins over the variable; an empty value counts as unset.
 * Throws SettingsError on the first mistake. Reads the token file, and nothing else is touched.
 */
export function parseSettings(argv: readonly string[], env: Env, host: SettingsHost = systemHost): Settings {
  const flags = parseFlags(argv, SETTING_FLAGS, 'raftlet run');
  const warnings: string[] = [];

  const given = (key: SettingKey): Given | undefined => {
    const spec = SETTINGS[key];
    const fromFlag = flags.get(spec.flag);
    if (fromFlag !== undefined && fromFlag.trim() !== '') return { text: fromFlag.trim(), name: `--${spec.flag}` };
    const fromEnv = env[spec.env];
    if (fromEnv !== undefined && fromEnv.trim() !== '') return { text: fromEnv.trim(), name: spec.env };
    return undefined;
  };
  function read<K extends SettingKey>(key: K): SettingValue<K> | undefined {
    const g = given(key);
    return g === undefined ? undefined : (SETTINGS[key].parse(g) as SettingValue<K>);
  }
  const nameOf = (key: SettingKey): string => given(key)?.name ?? SETTINGS[key].env;

  for (const name of Object.keys(env)) {
    if (!name.startsWith('RAFTLET_') || OTHER_KNOWN_ENV.has(name)) continue;
    if (SETTING_KEYS.some((k) => SETTINGS[k].env === name)) continue;
    const near = nearest(name, SETTING_KEYS.map((k) => SETTINGS[k].env));
    warnings.push(`unknown environment variable ${name} is ignored${near === null ? '' : `; did you mean ${near}?`}`);
  }

  const nodeId = read('nodeId') ?? defaultNodeId(env, host);

  const peerListen = read('peerListen') ?? parseListen({ text: DEFAULTS.peerListen, name: SETTINGS.peerListen.env });
  const apiListen = read('apiListen') ?? parseListen({ text: DEFAULTS.apiListen, name: SETTINGS.apiListen.env });
  const metricsListen = read('metricsListen') ?? parseListen({ text: DEFAULTS.metricsListen, name: SETTINGS.metricsListen.env });
  checkDistinctPorts([
    ['peerListen', peerListen],
    ['apiListen', apiListen],
    ['metricsListen', metricsListen],
  ], nameOf);

  const heartbeatMs = read('heartbeatMs') ?? DEFAULTS.heartbeatMs;
  const electionTimeoutMs = read('electionTimeoutMs') ?? DEFAULTS.electionTimeoutMs;
  if (heartbeatMs >= electionTimeoutMs) {
    throw new SettingsError(nameOf('heartbeatMs'),
      `${nameOf('heartbeatMs')} must be below ${nameOf('electionTimeoutMs')} (got ${heartbeatMs} >= ${electionTimeoutMs})`);
  }
  if (electionTimeoutMs < MIN_ELECTION_TO_HEARTBEAT_RATIO * heartbeatMs) {
    throw new SettingsError(nameOf('electionTimeoutMs'),
      `${nameOf('electionTimeoutMs')} must be at least ${MIN_ELECTION_TO_HEARTBEAT_RATIO} x ${nameOf('heartbeatMs')}, ` +
      `or a single late heartbeat starts an election (got ${electionTimeoutMs} < ${MIN_ELECTION_TO_HEARTBEAT_RATIO} x ${heartbeatMs})`);
  }
  const requestTimeoutMs = read('requestTimeoutMs') ?? DEFAULTS.requestTimeoutMs;
  const maxValueBytes = read('maxValueBytes') ?? DEFAULTS.maxValueBytes;
  const snapshotEntries = read('snapshotEntries') ?? DEFAULTS.snapshotEntries;
  const rehearsal = read('rehearsal') ?? true;
  const bootstrapExpect = read('bootstrapExpect') ?? DEFAULTS.bootstrapExpect;
  const logLevel = read('logLevel') ?? DEFAULTS.logLevel;

  const insecure = read('insecure') ?? false;
  const tlsSettings = readPeerTls(given, nameOf, host, warnings);
  const tokenSet = tlsSettings.peerAuth === 'tls'
    ? tokensOffWithTls(given, nameOf, insecure, warnings)
    : readTokens(given('clusterToken'), given('clusterTokenFile'), insecure, nameOf('insecure'), host);
  const clusterTokens = tokenSet.tokens;
  const clusterTokenFile = tokenSet.file;
  const clusterToken = clusterTokens?.[0] ?? null;
  if (insecure) {
    warnings.push(`${nameOf('insecure')}=1: peer RPC is NOT authenticated; anyone who can reach ` +
      `${formatHostPort(peerListen)} can join and rewrite this cluster. Use it for local experiments only.`);
  }

  const kubernetesSetting = read('kubernetes') ?? 'auto';
  const kubernetes = kubernetesSetting === 'auto'
    ? nonEmpty(env.KUBERNETES_SERVICE_HOST) || nonEmpty(env.KUBECONFIG)
    : kubernetesSetting;

  const peersGiven = read('peers');
  const discoveryService = read('discoveryService') ?? null;
  const dnsServer = read('dnsServer') ?? null;
  if (peersGiven !== undefined && discoveryService !== null) {
    throw new SettingsError(nameOf('peers'),
      `set ${nameOf('peers')} or ${nameOf('discoveryService')}, not both: members come either from a static list or from DNS`);
  }
  if (peersGiven === undefined && discoveryService === null && kubernetes) {
    throw new SettingsError(SETTINGS.discoveryService.env,
      `${SETTINGS.discoveryService.env} (or ${SETTINGS.peers.env}) must be set when Kubernetes is on, ` +
      'or every pod would form a cluster of its own and label itself leader');
  }
  if (dnsServer !== null && discoveryService === null) {
    warnings.push(`${nameOf('dnsServer')} is ignored: it only serves ${SETTINGS.discoveryService.env}`);
  }
  if (peersGiven !== undefined && given('bootstrapExpect') !== undefined) {
    warnings.push(`${nameOf('bootstrapExpect')} is ignored: with ${nameOf('peers')} the members are known from the start`);
  }

  const selfEntry = peersGiven?.find((p) => p.id === nodeId);
  if (peersGiven !== undefined && selfEntry === undefined) {
    throw new SettingsError(nameOf('peers'),
      `${nameOf('peers')} must include this node's id ${show(nodeId)} (listed: ${peersGiven.map((p) => p.id).join(', ')}); ` +
      `set ${nameOf('nodeId')} to one of them or add this node`);
  }
  const advertiseGiven = read('advertiseUrl');
  if (advertiseGiven !== undefined && selfEntry !== undefined && advertiseGiven !== selfEntry.url) {
    throw new SettingsError(nameOf('advertiseUrl'),
      `${nameOf('advertiseUrl')} (${advertiseGiven}) differs from this node's entry in ${nameOf('peers')} ` +
      `(${selfEntry.url}); peers would reach it at the wrong address`);
  }
  const advertiseUrl = advertiseGiven ?? selfEntry?.url ??
    deriveAdvertiseUrl(nodeId, peerListen, discoveryService, nameOf('peerListen'), tlsSettings.peerTls === null ? 'http' : 'https');
  if (tlsSettings.peerTls !== null) checkHttpsUrls(advertiseUrl, advertiseGiven !== undefined ? nameOf('advertiseUrl') : nameOf('peers'), peersGiven, nameOf('peers'));

  let membersFrom: MembersFrom;
  let peers: readonly PeerSpec[];
  if (peersGiven !== undefined) {
    membersFrom = 'peers';
    peers = peersGiven;
  } else if (discoveryService !== null) {
    membersFrom = 'dns';
    peers = [];
  } else {
    membersFrom = 'self';
    peers = [{ id: nodeId, url: advertiseUrl }];
    warnings.push(`neither ${SETTINGS.peers.env} nor ${SETTINGS.discoveryService.env} is set: ` +
      `running a one-member cluster of ${nodeId}`);
  }

  const dataDir = path.resolve(host.cwd(), read('dataDir') ?? path.join('raftlet-data', nodeId));
  const podName = read('podName') ?? fromEnv(env, 'POD_NAME', dnsSubdomain) ?? nodeId;
  const podNamespace = read('podNamespace') ?? fromEnv(env, 'POD_NAMESPACE', dnsLabel) ??
    (kubernetes ? serviceAccountNamespace(host) : null) ?? 'default';
  const roleLabel = read('roleLabel') ?? DEFAULTS.roleLabel;
  const leaseName = read('leaseName') ?? null;
  if (!kubernetes) {
    for (const key of ['leaseName', 'podName', 'podNamespace', 'roleLabel'] as const) {
      if (given(key) !== undefined) warnings.push(`${nameOf(key)} is ignored: Kubernetes is off (${SETTINGS.kubernetes.env})`);
    }
  }

  const app = readAppSettings(read, given, nameOf, warnings);

  return deepFreeze({
    nodeId, peerListen, apiListen, metricsListen, advertiseUrl, membersFrom, peers, discoveryService, dnsServer,
    bootstrapExpect, dataDir, heartbeatMs, electionTimeoutMs, requestTimeoutMs, maxValueBytes, snapshotEntries, rehearsal, clusterToken,
    clusterTokens, clusterTokenFile, insecure, ...tlsSettings, kubernetes, podName, podNamespace, roleLabel, leaseName, logLevel, warnings,
    ...app,
  });
}

function defaultNodeId(env: Env, host: SettingsHost): string {
  const pod = fromEnv(env, 'POD_NAME', parseNodeId);
  if (pod !== undefined) return pod;
  // Host names are often FQDNs or mixed case (laptops); the first label, lower-cased, is the usual id.
  const name = host.hostname();
  const label = name.split('.')[0].toLowerCase();
  if (!NODE_ID.test(label)) {
    throw new SettingsError(SETTINGS.nodeId.env,
      `${SETTINGS.nodeId.env} is not set and the host name ${show(name)} does not make a valid id; set ${SETTINGS.nodeId.env}`);
  }
  return label;
}

// ---- cluster tokens (issue 11: a token set for rotation) ----------------------------------------------

function readTokens(token: Given | undefined, file: Given | undefined, insecure: boolean, insecureName: string,
  host: SettingsHost): { tokens: string[] | null; file: string | null } {
  if (insecure) {
    const set = token ?? file;
    if (set !== undefined) {
      throw new SettingsError(set.name, `${insecureName}=1 turns peer authentication off, so ${set.name} must not be set too; unset one`);
    }
    return { tokens: null, file: null };
  }
  if (token !== undefined && file !== undefined) {
    throw new SettingsError(token.name, `${token.name} and ${file.name} are both set; keep one`);
  }
  if (token === undefined && file === undefined) {
    throw new SettingsError(SETTINGS.clusterToken.env,
      `${SETTINGS.clusterToken.env} or ${SETTINGS.clusterTokenFile.env} is required: a shared secret for peer RPC ` +
      `(e.g. openssl rand -hex 32); ${SETTINGS.insecure.env}=1 runs without one for local experiments`);
  }
  // Never echo a token: these messages end up in logs.
  if (token !== undefined) {
    try {
      return { tokens: parseTokenList(token.text, 'comma', token.name), file: null };
    } catch (err) {
      throw new SettingsError(token.name, (err as Error).message);
    }
  }
  const tokenFile = file as Given;
  const tokenPath = path.resolve(host.cwd(), tokenFile.text);
  let text: string;
  try {
    text = host.readFile(tokenPath);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new SettingsError(tokenFile.name, `${tokenFile.name} cannot be read (${code}: ${tokenPath})`);
  }
  try {
    return { tokens: parseTokenList(text, 'line', `the file ${tokenFile.name} (${tokenPath})`), file: tokenPath };
  } catch (err) {
    throw new SettingsError(tokenFile.name, (err as Error).message);
  }
}

// ---- peer TLS (issue 14) ----------------------------------------------------------------------------------

type GivenOf = (key: SettingKey) => Given | undefined;

function readPeerTls(given: GivenOf, nameOf: (key: SettingKey) => string, host: SettingsHost, warnings: string[]):
  { peerTls: Settings['peerTls']; peerTlsVerifyName: boolean; peerAuth: PeerAuth } {
  const keys = ['peerTlsCertFile', 'peerTlsKeyFile', 'peerTlsCaFile'] as const;
  const files = keys.map((key) => given(key));
  const verifyGiven = given('peerTlsVerifyName');
  const peerTlsVerifyName = verifyGiven === undefined ? false : SETTINGS.peerTlsVerifyName.parse(verifyGiven);
  const authGiven = given('peerAuth');
  const peerAuth = authGiven === undefined ? 'both' : SETTINGS.peerAuth.parse(authGiven);
  if (files.every((f) => f === undefined)) {
    if (peerAuth === 'tls') {
      throw new SettingsError(nameOf('peerAuth'),
        `${nameOf('peerAuth')}=tls needs peer TLS: set ${keys.map((k) => SETTINGS[k].env).join(', ')}`);
    }
    if (verifyGiven !== undefined) warnings.push(`${nameOf('peerTlsVerifyName')} is ignored: peer TLS is off`);
    return { peerTls: null, peerTlsVerifyName, peerAuth };
  }
  const missing = keys.find((_, i) => files[i] === undefined);
  if (missing !== undefined) {
    throw new SettingsError(SETTINGS[missing].env,
      `${SETTINGS[missing].env} must be set too: peer TLS needs this member's certificate, its key and the CA (all three or none)`);
  }
  const [certFile, keyFile, caFile] = files.map((f) => {
    const g = f as Given;
    const file = path.resolve(host.cwd(), g.text);
    try {
      host.readFile(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new SettingsError(g.name, `${g.name} cannot be read (${code}: ${file})`);
    }
    return file;
  });
  const mode = host.fileMode?.(keyFile) ?? null;
  if (mode !== null && (mode & 0o077) !== 0) {
    warnings.push(`${nameOf('peerTlsKeyFile')} (${keyFile}) can be read by its group or others (mode ${mode.toString(8).padStart(3, '0')}); ` +
      'make it readable by its owner only (chmod 600)');
  }
  if (peerTlsVerifyName && peerAuth === 'token') {
    warnings.push(`${nameOf('peerTlsVerifyName')}=1 with ${nameOf('peerAuth')}=token checks server certificates only: ` +
      'peers present no client certificate, so a sender\'s member id cannot be checked against one');
  }
  return { peerTls: { certFile, keyFile, caFile }, peerTlsVerifyName, peerAuth };
}

/** RAFTLET_PEER_AUTH=tls: no token is needed; one given anyway is ignored (said once). */
function tokensOffWithTls(given: GivenOf, nameOf: (key: SettingKey) => string, insecure: boolean, warnings: string[]):
  { tokens: string[] | null; file: string | null } {
  if (insecure) {
    throw new SettingsError(nameOf('insecure'), `${nameOf('insecure')}=1 and ${nameOf('peerAuth')}=tls are both set; peers authenticate by certificate, unset ${nameOf('insecure')}`);
  }
  for (const key of ['clusterToken', 'clusterTokenFile'] as const) {
    if (given(key) !== undefined) warnings.push(`${nameOf(key)} is ignored: ${nameOf('peerAuth')}=tls authenticates peers by certificate only`);
  }
  return { tokens: null, file: null };
}

/** With peer TLS on, peers are reached over https only: an http:// URL would never connect. */
function checkHttpsUrls(advertiseUrl: string, advertiseName: string, peers: readonly PeerSpec[] | undefined, peersName: string): void {
  if (!advertiseUrl.startsWith('https://')) {
    throw new SettingsError(advertiseName, `${advertiseName} must be an https:// URL when peer TLS is on (got ${show(advertiseUrl)})`);
  }
  const plain = peers?.find((p) => !p.url.startsWith('https://'));
  if (plain !== undefined) {
    throw new SettingsError(peersName, `${peersName} must use https:// URLs when peer TLS is on (${plain.id} is ${show(plain.url)})`);
  }
}

function deriveAdvertiseUrl(nodeId: string, peerListen: HostPort, discoveryService: string | null, peerListenName: string,
  scheme: 'http' | 'https' = 'http'): string {
  if (peerListen.port === 0) {
    throw new SettingsError(peerListenName,
      `${peerListenName} has port 0, so peers cannot be told where to reach this node; set ${SETTINGS.advertiseUrl.env} or a fixed port`);
  }
  // A wildcard address is no address: fall back to the name peers can resolve. In a StatefulSet
  // behind a headless Service that is <pod>.<service>; elsewhere the id itself.
  const wildcard = peerListen.host === '0.0.0.0' || peerListen.host === '::';
  const host = !wildcard ? peerListen.host : discoveryService !== null ? `${nodeId}.${discoveryService}` : nodeId;
  return `${scheme}://${formatHostPort({ host, port: peerListen.port })}`;
}

function serviceAccountNamespace(host: SettingsHost): string | null {
  try {
    const ns = host.readFile(SERVICE_ACCOUNT_NAMESPACE_FILE).trim();
    return DNS_LABEL.test(ns) ? ns : null;
  } catch {
    return null; // not in a pod with a mounted service account: the next default applies
  }
}

function checkDistinctPorts(listens: readonly (readonly [SettingKey, HostPort])[], nameOf: (key: SettingKey) => string): void {
  for (let i = 0; i < listens.length; i++) {
    for (let j = i + 1; j < listens.length; j++) {
      const [a, pa] = listens[i];
      const [b, pb] = listens[j];
      if (pa.port !== 0 && pa.port === pb.port && overlaps(pa.host, pb.host)) {
        throw new SettingsError(nameOf(b), `${nameOf(b)} uses port ${pb.port}, which ${nameOf(a)} already uses`);
      }
    }
  }
}

function overlaps(a: string, b: string): boolean {
  const wild = (h: string): boolean => h === '0.0.0.0' || h === '::';
  return a === b || wild(a) || wild(b);
}

function fromEnv<T>(env: Env, name: string, parse: (given: Given) => T): T | undefined {
  const text = env[name];
  return text === undefined || text.trim() === '' ? undefined : parse({ text: text.trim(), name });
}

function nonEmpty(text: string | undefined): boolean {
  return text !== undefined && text.trim() !== '';
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

// ---- help ----------------------------------------------------------------------------------------

/** The settings part of `raftlet run --help`, one entry per row of the table. */
export function settingsHelp(): string[] {
  const lines: string[] = [];
  for (const key of SETTING_KEYS) {
    const s = SETTINGS[key];
    lines.push(`  --${s.flag} ${s.metavar}`.padEnd(40) + s.env);
    lines.push(`      ${s.help}; default: ${s.defaultText}`);
  }
  return lines;
}
