// Who sent a stream or request (issue 14). The sender names itself in the Raftlet-From header; the
// receiver holds it to that name in two ways:
// - with peer TLS and RAFTLET_PEER_TLS_VERIFY_NAME on, the client certificate must name the host of
//   that member's peer URL in the membership this node knows (a DNS SAN, or an IP SAN when the URL's
//   host is an IP): the server-side half of the name check a client makes of a server. Without it,
//   any holder of a certificate from the CA could speak for any member.
// - every Raft message on that stream or request must come `from` that member.
// A request without the header (a member of an older version, curl, a backup job) is accepted
// where no member identity is needed or the check is off; with the check on, the routes on which a
// member acts as a member (Raft messages, forwarded calls) refuse it.
import type { Socket } from 'node:net';
import { checkServerIdentity, TLSSocket } from 'node:tls';
import type { Message, NodeId } from '../raft/types.ts';
import { parsePeerUrl } from './peer-url.ts';
import { SENDER_HEADER } from './protocol.ts';

export interface SenderPolicy {
  /** The peer URL of a member this node knows (configuration, static peers, discovery). */
  readonly memberUrl: (id: NodeId) => string | undefined;
}

export type SenderOutcome =
  /** sender: the member the request speaks for, or null when it named none (and may not). */
  | { readonly ok: true; readonly sender: NodeId | null }
  | { readonly ok: false; readonly code: 'forbidden' | 'bad_request'; readonly message: string };

/** The header a member sends with every stream and request. */
export function senderHeader(selfId: NodeId | undefined): Record<string, string> {
  return selfId === undefined ? {} : { [SENDER_HEADER]: selfId };
}

/**
 * Checks the sender a request names. `policy` is null when the name check is off (no TLS, no
 * client certificates, or RAFTLET_PEER_TLS_VERIFY_NAME=0): the named sender is then taken as
 * given, and only held to the messages' `from`. `required`: the route acts for a member.
 */
export function checkSender(header: string | string[] | undefined, socket: Socket, required: boolean, policy: SenderPolicy | null): SenderOutcome {
  if (Array.isArray(header) || header === '') {
    return { ok: false, code: 'bad_request', message: `the ${SENDER_HEADER} header must name one member id` };
  }
  if (policy === null) return { ok: true, sender: header ?? null };
  if (header === undefined) {
    if (!required) return { ok: true, sender: null };
    return {
      ok: false,
      code: 'forbidden',
      message: `the request names no sending member (no ${SENDER_HEADER} header: a member of an older raftlet version?); ` +
        'this node checks that the client certificate names the sender (RAFTLET_PEER_TLS_VERIFY_NAME=1)',
    };
  }
  const url = policy.memberUrl(header);
  if (url === undefined) {
    return { ok: false, code: 'forbidden', message: `the sender ${JSON.stringify(header)} is not a member this node knows, so its certificate cannot be checked` };
  }
  let host: string;
  try {
    host = parsePeerUrl(url).hostname;
  } catch {
    return { ok: false, code: 'forbidden', message: `member ${JSON.stringify(header)} has an unusable peer URL ${JSON.stringify(url)}` };
  }
  if (!(socket instanceof TLSSocket)) {
    return { ok: false, code: 'forbidden', message: 'the connection carries no client certificate to check the sender against' };
  }
  const certificate = socket.getPeerCertificate();
  if (Object.keys(certificate).length === 0) {
    return { ok: false, code: 'forbidden', message: 'the connection carries no client certificate to check the sender against' };
  }
  const mismatch = checkServerIdentity(host, certificate);
  if (mismatch !== undefined) {
    const names = certificate.subjectaltname ?? `CN=${certificate.subject?.CN ?? '?'}`;
    return {
      ok: false,
      code: 'forbidden',
      message: `the client certificate does not name member ${JSON.stringify(header)}'s host ${host} (it names ${names})`,
    };
  }
  return { ok: true, sender: header };
}

/** The first message not sent by `sender`, if any (a stream or request speaks for one member). */
export function foreignMessage(messages: readonly Message[], sender: NodeId | null): Message | undefined {
  if (sender === null) return undefined;
  return messages.find((m) => m.from !== sender);
}
