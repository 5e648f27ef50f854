// What both ends of the peer protocol agree on: the version, the routes, the headers, how errors
// travel, and the errors a caller can tell apart.
import { ClientError, clientErrorStatus } from '../api/ops.ts';

/** Bump when routes, bodies or the frame format change incompatibly. Carried in the path (/raft/v1)
 * and, for finer refusals, in the Raftlet-Protocol header of every request and response. */
export const PROTOCOL_VERSION = 1;
export const PROTOCOL_HEADER = 'raftlet-protocol';
/** The member id a stream is meant for: a node at a stale address refuses it at once (421). */
export const TARGET_HEADER = 'raftlet-to';
/** The member id of the sender of a stream or request; with RAFTLET_PEER_TLS_VERIFY_NAME the
 * receiver checks that the client certificate names that member's host (sender.ts). */
export const SENDER_HEADER = 'raftlet-from';
/**
 * Optional parts of the protocol, comma-separated: a stream's server announces what it accepts in
 * its 200 response to the stream request, and the client what it accepts in the request. Each end
 * uses such a part only with a peer that named it, so members of different releases keep talking
 * during a rolling upgrade without a version bump (an unknown name is ignored; a missing header
 * means none).
 * - `propose-bytes` (server): propose calls whose body is the encoded command (stream-frames.ts, kind 5).
 * - `call-fence` (client): fence frames, answered with a fence-ack (stream-frames.ts).
 */
export const FEATURES_HEADER = 'raftlet-features';
export const FEATURE_PROPOSE_BYTES = 'propose-bytes';
export const FEATURE_CALL_FENCE = 'call-fence';

const NO_FEATURES: ReadonlySet<string> = new Set();

/** The names in a FEATURES_HEADER (none for a missing header). */
export function parseFeatures(header: string | string[] | undefined): ReadonlySet<string> {
  if (header === undefined) return NO_FEATURES;
  const text = Array.isArray(header) ? header.join(',') : header;
  return new Set(text.split(',').map((name) => name.trim()).filter((name) => name !== ''));
}

export const ROUTE_PREFIX = `/raft/v${PROTOCOL_VERSION}`;
export const ROUTES = {
  messages: `${ROUTE_PREFIX}/messages`,
  propose: `${ROUTE_PREFIX}/propose`,
  readIndex: `${ROUTE_PREFIX}/read-index`,
  transfer: `${ROUTE_PREFIX}/transfer`,
  status: `${ROUTE_PREFIX}/status`,
  /** One long-lived request per direction of a peer pair: Raft messages and forwarded calls as
   * frames (stream-frames.ts); the response streams the calls' replies back. */
  stream: `${ROUTE_PREFIX}/stream`,
} as const;

/** The longest wait a peer may ask of another (a request's timeoutMs); a client asks for no more. */
export const MAX_TIMEOUT_MS = 60_000;

export const MESSAGES_CONTENT_TYPE = 'application/octet-stream';
export const JSON_CONTENT_TYPE = 'application/json';
export const STREAM_CONTENT_TYPE = 'application/vnd.raftlet.stream';

/** Error codes of the transport itself, beside the ClientError codes a handler may throw. */
export type TransportErrorCode = 'unauthorized' | 'forbidden' | 'protocol_mismatch' | 'misdirected' | 'no_route' | 'internal' | 'request_timeout';
export type ClientErrorCode = ClientError['code'];
export type ErrorCode = ClientErrorCode | TransportErrorCode;

const CLIENT_ERROR_CODES: ReadonlySet<string> = new Set<ClientErrorCode>([
  'bad_request',
  'no_leader',
  'timeout',
  'precondition_failed',
  'not_found',
  'payload_too_large',
  'unavailable',
]);

export function isClientErrorCode(code: string): code is ClientErrorCode {
  return CLIENT_ERROR_CODES.has(code);
}

/** HTTP status per error code: the client API's for ClientError codes (SPEC section 4), plus the
 * refusals only peer RPC makes. */
export function statusForCode(code: ErrorCode): number {
  if (isClientErrorCode(code)) return clientErrorStatus(code);
  switch (code) {
    case 'unauthorized':
      return 401;
    case 'forbidden':
      return 403;
    case 'no_route':
      return 404;
    case 'misdirected':
      return 421;
    case 'protocol_mismatch':
      return 426;
    case 'internal':
      return 500;
    case 'request_timeout':
      return 408;
    default: {
      const unreachable: never = code;
      return unreachable;
    }
  }
}

/** The body of every error reply: the same shape as the client API's errors. */
export interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string };
}

/** The peer runs an incompatible protocol version. Surfaces as `unavailable` to clients; the
 * runtime should log it as a deployment problem (mixed versions in one cluster). */
export class ProtocolMismatchError extends ClientError {
  readonly peer: string;
  readonly peerVersion: number | null;
  readonly localVersion: number;
  constructor(peer: string, peerVersion: number | null, detail: string) {
    super(
      'unavailable',
      `peer ${peer} refused our raftlet protocol ${PROTOCOL_VERSION}` +
        `${peerVersion === null ? '' : ` (it speaks ${peerVersion})`}: ${detail}; run one raftlet version across the cluster`,
    );
    this.name = 'ProtocolMismatchError';
    this.peer = peer;
    this.peerVersion = peerVersion;
    this.localVersion = PROTOCOL_VERSION;
  }
}

/** The peer refused our cluster token: RAFTLET_CLUSTER_TOKEN differs between members. */
export class PeerAuthError extends ClientError {
  readonly peer: string;
  constructor(peer: string, detail: string) {
    super('unavailable', `peer ${peer} refused our cluster token (${detail}); give every member the same RAFTLET_CLUSTER_TOKEN`);
    this.name = 'PeerAuthError';
    this.peer = peer;
  }
}

/** The peer refused the member id we sent: our certificate does not name our own peer URL's host,
 * or the peer does not know us as a member (RAFTLET_PEER_TLS_VERIFY_NAME). */
export class MemberIdentityError extends ClientError {
  readonly peer: string;
  constructor(peer: string, detail: string) {
    super('unavailable', `peer ${peer} refused this member's identity: ${detail}`);
    this.name = 'MemberIdentityError';
    this.peer = peer;
  }
}

/** The node at the peer's URL is not the member we meant (a stale address after a reschedule). */
export class MisdirectedError extends ClientError {
  readonly peer: string;
  constructor(peer: string, detail: string) {
    super('unavailable', `peer ${peer} is not the member we addressed: ${detail}`);
    this.name = 'MisdirectedError';
    this.peer = peer;
  }
}
