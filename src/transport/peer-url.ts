// A peer's base URL split into what a connection needs (scheme, host, port) and the path prefix the
// routes go under, so that "http://host:7070" and "http://host:7070/" name the same peer.

export interface PeerBase {
  readonly origin: string;
  readonly protocol: 'http:' | 'https:';
  /** Without IPv6 brackets. */
  readonly hostname: string;
  readonly port: number;
  /** '' or a path without a trailing slash, e.g. '/proxy'. */
  readonly prefix: string;
  /** origin + prefix: equal keys are the same peer endpoint. */
  readonly key: string;
}

/** Throws a TypeError that says what is wrong with the URL. */
export function parsePeerUrl(url: string): PeerBase {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`peer URL ${JSON.stringify(url)} is not a URL; expected e.g. http://raftlet-0.raftlet:7070`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new TypeError(`peer URL ${JSON.stringify(url)} must start with http:// or https://`);
  }
  if (parsed.username !== '' || parsed.password !== '' || parsed.search !== '' || parsed.hash !== '') {
    throw new TypeError(`peer URL ${JSON.stringify(url)} must not carry credentials, a query or a fragment`);
  }
  const prefix = parsed.pathname.replace(/\/+$/, '');
  const hostname = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname;
  const port = parsed.port === '' ? (parsed.protocol === 'https:' ? 443 : 80) : Number(parsed.port);
  return { origin: parsed.origin, protocol: parsed.protocol, hostname, port, prefix, key: parsed.origin + prefix };
}
