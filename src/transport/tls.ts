// Peer mutual TLS material (issue 14): this member's certificate and key, and the CA that every
// peer's certificate must chain to. Re-read when the files change (cert-manager rotates them): the
// server swaps its secure context, and new client connections use the new material.
import { readFileSync } from 'node:fs';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { FileWatch } from './file-watch.ts';

export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer;
}

export interface TlsSource {
  current(): TlsMaterial;
  /** When on, a peer's certificate must carry the DNS name (or IP) of the host in its URL. */
  readonly verifyName: boolean;
  /** Called after the material changed. */
  onChange(listener: () => void): void;
}

export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

/** Material given directly (tests, `raftlet local --tls`): never changes. */
export function staticTls(material: TlsMaterial, verifyName = false): TlsSource {
  return { current: () => material, verifyName, onChange: () => undefined };
}

function readMaterial(files: TlsFiles): TlsMaterial {
  return { cert: readFileSync(files.certFile), key: readFileSync(files.keyFile), ca: readFileSync(files.caFile) };
}

export interface FileTlsOptions {
  readonly verifyName?: boolean;
  /** A rewrite that cannot be used: the last good material stays. Never gets key bytes. */
  readonly onWarning?: (message: string) => void;
  readonly onReload?: () => void;
  readonly pollMs?: number;
  /** Checks new material before it is used (e.g. tls.createSecureContext); throws if unusable. */
  readonly validate?: (material: TlsMaterial) => void;
}

export class FileTls implements TlsSource {
  readonly files: TlsFiles;
  readonly verifyName: boolean;
  private material: TlsMaterial;
  private readonly listeners: (() => void)[] = [];
  private readonly watch: FileWatch;
  private readonly options: FileTlsOptions;

  /** Throws if a file cannot be read (a start-up error, checked by the settings first). */
  constructor(files: TlsFiles, options: FileTlsOptions = {}) {
    this.files = files;
    this.options = options;
    this.verifyName = options.verifyName ?? false;
    this.material = readMaterial(files);
    options.validate?.(this.material);
    this.watch = new FileWatch([files.certFile, files.keyFile, files.caFile], () => this.reload(), options.pollMs ?? 2000);
  }

  current(): TlsMaterial {
    return this.material;
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Re-reads the files now (also called by the watch). A certificate and key written one after the
   * other may not match for a moment: the validation refuses that pair and the next change retries. */
  reload(): void {
    let next: TlsMaterial;
    try {
      next = readMaterial(this.files);
      this.options.validate?.(next);
    } catch (error) {
      const why = (error as NodeJS.ErrnoException).code ?? (error instanceof Error ? error.message : String(error));
      this.options.onWarning?.(`cannot use the rewritten peer TLS files (${why}); keeping the certificates read before`);
      return;
    }
    if (next.cert.equals(this.material.cert) && next.key.equals(this.material.key) && next.ca.equals(this.material.ca)) return;
    this.material = next;
    this.options.onReload?.();
    for (const listener of this.listeners) listener();
  }

  close(): void {
    this.watch.close();
  }
}

/** The client's check of a server certificate: the CA is always verified by TLS itself; the name
 * only when verifyName is on (peer URLs are often IPs or names certificates do not list). */
export function serverIdentityCheck(verifyName: boolean): (host: string, cert: PeerCertificate) => Error | undefined {
  return verifyName ? checkServerIdentity : () => undefined;
}
