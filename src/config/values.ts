// Parsers for single setting values. Each takes the text as the user gave it, with the name to blame
// (the flag or the variable), and either returns a typed value or throws a SettingsError whose
// message is one line: `<name> <what is wrong> (got <value>)`.
import { isIP } from 'node:net';

/** A configuration mistake. `message` is one line that names the setting and what is wrong. */
export class SettingsError extends Error {
  /** The environment variable or flag at fault, as the user gave it (e.g. `--heartbeat-ms`). */
  readonly setting: string;
  constructor(setting: string, message: string) {
    super(message);
    this.name = 'SettingsError';
    this.setting = setting;
  }
}

export interface HostPort {
  /** An IP address (IPv6 without brackets) or a host name. */
  readonly host: string;
  readonly port: number;
}

/** A static member: its id and the URL its peers reach it at (scheme://host:port, no path). */
export interface PeerSpec {
  readonly id: string;
  readonly url: string;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** A value as the user gave it, with the name to blame in a message (the flag or the variable). */
export interface Given {
  readonly text: string;
  readonly name: string;
}

export const NODE_ID = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const DNS_LABEL = NODE_ID;
const DNS_SUBDOMAIN_LABEL = '[a-z0-9]([a-z0-9-]*[a-z0-9])?';
const DNS_SUBDOMAIN = new RegExp(`^${DNS_SUBDOMAIN_LABEL}(\\.${DNS_SUBDOMAIN_LABEL})*$`);
const HOST_NAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;
const LABEL_NAME = /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/;

export function fail(given: Given, what: string): never {
  throw new SettingsError(given.name, `${given.name} ${what} (got ${show(given.text)})`);
}

export function parseNodeId(given: Given): string {
  if (!NODE_ID.test(given.text)) {
    fail(given, "must be a DNS-1123 label: 1 to 63 lower-case letters, digits or '-', starting and ending with a letter or digit");
  }
  return given.text;
}

export function dnsLabel(given: Given): string {
  if (!DNS_LABEL.test(given.text)) {
    fail(given, "must be a DNS-1123 label: 1 to 63 lower-case letters, digits or '-', starting and ending with a letter or digit");
  }
  return given.text;
}

export function dnsSubdomain(given: Given): string {
  if (given.text.length > 253 || !DNS_SUBDOMAIN.test(given.text)) {
    fail(given, "must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', at most 253 characters");
  }
  return given.text;
}

export function parseDnsName(given: Given): string {
  const name = given.text.endsWith('.') ? given.text.slice(0, -1) : given.text;
  if (name.length > 253 || !DNS_SUBDOMAIN.test(name) || name.split('.').some((label) => label.length > 63)) {
    fail(given, 'must be a DNS name such as raftlet.default.svc.cluster.local');
  }
  return name;
}

export function parseLabelKey(given: Given): string {
  const slash = given.text.indexOf('/');
  const prefix = slash === -1 ? null : given.text.slice(0, slash);
  const name = slash === -1 ? given.text : given.text.slice(slash + 1);
  const prefixOk = prefix === null || (prefix.length <= 253 && DNS_SUBDOMAIN.test(prefix));
  if (!prefixOk || !LABEL_NAME.test(name)) {
    fail(given, 'must be a Kubernetes label key: [DNS-subdomain/]name, name at most 63 letters, digits, -, _ or .');
  }
  return given.text;
}

export function integer(min: number, max: number): (given: Given) => number {
  return (given) => {
    if (!/^\d+$/.test(given.text)) fail(given, 'must be a whole number');
    const value = Number(given.text);
    if (value < min || value > max) fail(given, `must be between ${min} and ${max}`);
    return value;
  };
}

// SPEC §3: 1/0 and true/false (what Helm and most tools render).
const SWITCH_TEXT: Readonly<Record<string, boolean>> = { '1': true, '0': false, true: true, false: false };

export function parseSwitch(given: Given): boolean {
  return SWITCH_TEXT[given.text] ?? fail(given, 'must be 1, 0, true or false');
}

export function parseAutoSwitch(given: Given): boolean | 'auto' {
  if (given.text === 'auto') return 'auto';
  return SWITCH_TEXT[given.text] ?? fail(given, 'must be auto, 1, 0, true or false');
}

export function parseLogLevel(given: Given): LogLevel {
  const level = LOG_LEVELS.find((l) => l === given.text);
  if (level === undefined) fail(given, `must be one of ${LOG_LEVELS.join(', ')}`);
  return level;
}

/** Kept as given; resolved against the working directory where it is used. */
export function parsePath(given: Given): string {
  if (given.text.includes('\0')) fail(given, 'must be a file path');
  return given.text;
}

/** HOST:PORT, [IPv6]:PORT or :PORT (all interfaces). Port 0 = any free port. */
export function parseListen(given: Given): HostPort {
  return parseHostPort(given, { hostRequired: false, defaultPort: null, ipOnly: false, minPort: 0 });
}

export function parseDnsServer(given: Given): HostPort {
  // node:dns Resolver#setServers takes addresses, not names: there is no resolver to resolve them yet.
  return parseHostPort(given, { hostRequired: true, defaultPort: 53, ipOnly: true, minPort: 1 });
}

function parseHostPort(given: Given,
  opts: { hostRequired: boolean; defaultPort: number | null; ipOnly: boolean; minPort: number }): HostPort {
  const example = opts.ipOnly ? 'IP:PORT such as 127.0.0.1:53 or [::1]:53' : 'HOST:PORT such as 0.0.0.0:7070 or [::1]:7070';
  const text = given.text;
  let host: string;
  let portText: string | null;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close === -1) fail(given, `must be ${example}`);
    host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest === '') portText = null;
    else if (rest.startsWith(':')) portText = rest.slice(1);
    else return fail(given, `must be ${example}`);
    if (isIP(host) !== 6) fail(given, 'must have an IPv6 address inside the brackets');
  } else {
    const colon = text.lastIndexOf(':');
    host = colon === -1 ? text : text.slice(0, colon);
    portText = colon === -1 ? null : text.slice(colon + 1);
    if (host.includes(':')) fail(given, 'must put an IPv6 address in brackets, e.g. [::1]:7070');
    if (host === '' && !opts.hostRequired) host = '0.0.0.0';
    if (opts.ipOnly ? isIP(host) !== 4 : isIP(host) !== 4 && !HOST_NAME.test(host)) fail(given, `must be ${example}`);
  }
  let port: number;
  if (portText === null) {
    if (opts.defaultPort === null) fail(given, `must be ${example}`);
    port = opts.defaultPort;
  } else {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < opts.minPort || Number(portText) > 65535) {
      fail(given, `must have a port between ${opts.minPort} and 65535`);
    }
    port = Number(portText);
  }
  return { host, port };
}

/** http(s)://host:port, nothing after: peer RPC paths are the implementation's (SPEC §5). */
export function parseUrl(given: Given): string {
  return normalizeUrl(given.text, given);
}

function normalizeUrl(text: string, given: Given): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail(given, 'must be a URL such as http://raftlet-0.raftlet:7070');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail(given, 'must be an http:// or https:// URL');
  if (url.username !== '' || url.password !== '') fail(given, 'must not carry credentials (peer RPC uses the cluster token)');
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '') fail(given, 'must be scheme://host:port without a path, query or fragment');
  return `${url.protocol}//${url.host}`;
}

/** id=url,id=url with the ids unique and the URLs unique. Blank entries (a trailing comma) are skipped. */
export function parsePeers(given: Given): PeerSpec[] {
  const peers: PeerSpec[] = [];
  for (const item of given.text.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const eq = item.indexOf('=');
    if (eq === -1) fail(given, `must be id=url,id=url (the entry ${show(item)} has no '=')`);
    const id = item.slice(0, eq).trim();
    if (!NODE_ID.test(id)) {
      fail(given, `must use DNS-1123 labels as ids (lower-case letters, digits, '-'), not ${show(id)}`);
    }
    const url = normalizeUrl(item.slice(eq + 1).trim(), { name: `${given.name} entry ${id}`, text: item.slice(eq + 1).trim() });
    const clash = peers.find((p) => p.id === id || p.url === url);
    if (clash?.id === id) throw new SettingsError(given.name, `${given.name} lists ${id} twice`);
    if (clash !== undefined) throw new SettingsError(given.name, `${given.name} gives ${clash.id} and ${id} the same URL ${url}`);
    peers.push({ id, url });
  }
  if (peers.length === 0) fail(given, 'must list at least one member as id=url');
  return peers;
}

// ---- helpers -------------------------------------------------------------------------------------

/** host:port with IPv6 addresses in brackets, as URLs and node:dns want them. */
export function formatHostPort(hp: HostPort): string {
  return `${hp.host.includes(':') ? `[${hp.host}]` : hp.host}:${hp.port}`;
}

/** A value quoted for a one-line message: control characters escaped, long values cut. */
export function show(text: string): string {
  const cut = text.length > 80 ? `${text.slice(0, 77)}...` : text;
  return JSON.stringify(cut);
}

/** The candidate within a small edit distance of `word`, for "did you mean" hints. */
export function nearest(word: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}
