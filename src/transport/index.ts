// The peer transport's public surface (SPEC section 5). The runtime (src/node) imports from here.
export { decodeMessage, decodeMessages, encodeMessage, encodeMessages, frameEncoded, WIRE_LIMITS, WIRE_VERSION } from './codec.ts';
export { WireError } from './wire.ts';
export {
  MAX_TIMEOUT_MS,
  MemberIdentityError,
  MisdirectedError,
  PeerAuthError,
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
  ProtocolMismatchError,
  ROUTES,
} from './protocol.ts';
export { createPeerListener, startPeerServer } from './server.ts';
export type { PeerHandlers, PeerRefusal, PeerServerOptions, RefusalCode, RunningPeerServer } from './server.ts';
export { PeerClient } from './client.ts';
export type { PeerClientOptions } from './client.ts';
export type { DropReason, PeerStats, RpcKind, TransportHooks } from './peer-link.ts';
export type { TransferResult } from './forwarding.ts';
export type { TokenOption } from './auth.ts';
export { FileTokens, staticTokens } from './tokens.ts';
export type { TokenSource } from './tokens.ts';
export { FileTls, staticTls } from './tls.ts';
export type { TlsFiles, TlsMaterial, TlsSource } from './tls.ts';
