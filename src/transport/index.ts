// The peer transport's public surface (SPEC section 5). The runtime (src/node) imports from here.
export { decodeMessage, decodeMessages, encodeMessage, encodeMessages, frameEncoded, WIRE_LIMITS, WIRE_VERSION } from './codec.ts';
export { WireError } from './wire.ts';
export {
  MAX_TIMEOUT_MS,
  MisdirectedError,
  PeerAuthError,
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
  ProtocolMismatchError,
  ROUTES,
} from './protocol.ts';
export { createPeerApp, createPeerRouter, startPeerServer } from './server.ts';
export type { PeerHandlers, PeerRefusal, PeerServerOptions, RunningPeerServer } from './server.ts';
export { PeerClient } from './client.ts';
export type { PeerClientOptions } from './client.ts';
export type { DropReason, PeerStats, RpcKind, TransportHooks } from './peer-link.ts';
export type { TransferResult } from './forwarding.ts';
