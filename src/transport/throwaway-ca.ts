// A throwaway CA and one certificate per member for `raftlet local --tls` and the tests: made with
// the `openssl` binary (on Debian machines by default; Node has no X.509 generator built in, and
// shelling out for a few certificates beats adding a crypto library to the runtime's
// dependencies). Keys are EC P-256, certificates valid for two days, for serverAuth and
// clientAuth, naming the member id, localhost and 127.0.0.1 (or only the names asked for).
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';

export interface MemberFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

function openssl(args: readonly string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString('utf8').trim() ?? '';
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new Error(missing ? 'the openssl command is needed to make throwaway certificates (apt-get install openssl)' : `openssl ${args[0]} failed: ${stderr}`);
  }
}

export interface ThrowawayCa {
  readonly dir: string;
  readonly caFile: string;
  /** Makes (or remakes: rotation) the certificate and key of one member, signed by this CA. Names
   * that are IP addresses become IP SANs, the others DNS SANs. */
  issue(id: string, names?: readonly string[], options?: IssueOptions): MemberFiles;
}

export interface IssueOptions {
  /** Name exactly `names` (not also the id, localhost and 127.0.0.1): for tests of the name check. */
  readonly only?: boolean;
}

/** Creates a CA in dir (made if missing). `name` tells CAs apart in their subject. */
export function createThrowawayCa(dir: string, name = 'raftlet-local-ca'): ThrowawayCa {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caKey = path.join(dir, 'ca.key');
  const caFile = path.join(dir, 'ca.pem');
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', caKey, '-out', caFile,
    '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  chmodSync(caKey, 0o600);
  let serial = 0;
  return {
    dir,
    caFile,
    issue(id, names = [], options = {}) {
      serial++;
      const keyFile = path.join(dir, `${id}.key`);
      const certFile = path.join(dir, `${id}.pem`);
      const csr = path.join(dir, `${id}.csr`);
      const ext = path.join(dir, `${id}.ext`);
      const all = options.only === true ? names : [id, 'localhost', '127.0.0.1', ...names];
      if (all.length === 0) throw new Error(`a certificate for ${id} needs at least one name`);
      const sans = [...new Set(all)].map((n) => (isIP(n) === 0 ? `DNS:${n}` : `IP:${n}`));
      writeFileSync(ext, `subjectAltName=${sans.join(',')}\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n`);
      openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${keyFile}.new`, '-out', csr, '-subj', `/CN=${id}`], dir);
      openssl(['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-set_serial', String(Date.now() * 100 + serial), '-out', `${certFile}.new`,
        '-days', '2', '-extfile', ext], dir);
      chmodSync(`${keyFile}.new`, 0o600);
      // Key first, then certificate, each replaced atomically (a reader may see the new key with the
      // old certificate for a moment: the consumer's validation refuses that pair and retries).
      renameSync(`${keyFile}.new`, keyFile);
      renameSync(`${certFile}.new`, certFile);
      return { certFile, keyFile, caFile };
    },
  };
}
