// What peer RPC is secured with: the cluster token set (re-read from RAFTLET_CLUSTER_TOKEN_FILE when
// it changes, so a token rotates without a restart: issue 11) and peer TLS (certificates re-read when
// the files change: issue 14). Neither the tokens nor the keys are ever logged.
import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';
import type { Settings } from '../config/settings.ts';
import { FileTls, FileTokens, staticTokens, type TokenSource } from '../transport/index.ts';

export interface PeerSecurity {
  /** null exactly when RAFTLET_INSECURE=1 or RAFTLET_PEER_AUTH=tls. */
  readonly tokens: TokenSource | null;
  readonly tls: FileTls | null;
  close(): void;
}

/** Thrown when the TLS files cannot be used: a configuration error (exit 2). */
export class PeerSecurityError extends Error {}

export function openPeerSecurity(settings: Settings, logger: Logger): PeerSecurity {
  const fileTokens = settings.clusterTokenFile === null ? null : new FileTokens(settings.clusterTokenFile, {
    onWarning: (message) => logger.warn(message),
    onChange: (count) => logger.info({ tokens: count }, 'cluster token file re-read'),
  });
  const tokens: TokenSource | null = fileTokens ?? (settings.clusterTokens === null ? null : staticTokens(settings.clusterTokens));
  let tls: FileTls | null = null;
  if (settings.peerTls !== null) {
    try {
      // A pair that does not load (cert and key written one after the other) keeps the previous
      // one until the next change.
      tls = new FileTls(settings.peerTls, {
        verifyName: settings.peerTlsVerifyName,
        validate: (m) => createSecureContext({ cert: m.cert, key: m.key, ca: m.ca }),
        onWarning: (message) => logger.warn(message),
        onReload: () => logger.info('peer TLS certificates re-read'),
      });
    } catch (err) {
      fileTokens?.close();
      const files = `${settings.peerTls.certFile}, ${settings.peerTls.keyFile}, ${settings.peerTls.caFile}`;
      throw new PeerSecurityError(`peer TLS files cannot be used (${files}): ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return {
    tokens,
    tls,
    close: () => {
      fileTokens?.close();
      tls?.close();
    },
  };
}
