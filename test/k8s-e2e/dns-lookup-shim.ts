// Preloaded into the raftlet processes of the end-to-end tests (`node --import`), never into
// production. In a pod, the system resolver IS the cluster DNS, so the SRV targets raftlet finds
// (raftlet-0.<service>) resolve through getaddrinfo. Here the cluster DNS is a dnsmasq on a
// loopback port that only RAFTLET_DNS_SERVER points at, and raftlet resolves peer host names with
// the system resolver, which does not know them. This shim sends names under the discovery service
// to that dnsmasq (its A records), so a pod removed from DNS really stops resolving. Everything else
// goes to the original lookup. The e2e test "peers reachable without the shim" shows the gap.
import type { LookupAddress, LookupOptions } from 'node:dns';
import { Resolver } from 'node:dns';
import { createRequire } from 'node:module';

type LookupCallback = (err: NodeJS.ErrnoException | null, address?: string | LookupAddress[], family?: number) => void;
type Lookup = (hostname: string, options: LookupOptions | number | LookupCallback, callback?: LookupCallback) => void;

const service = process.env.RAFTLET_DISCOVERY_SERVICE?.toLowerCase().replace(/\.$/, '');
const server = process.env.RAFTLET_DNS_SERVER;

if (service !== undefined && service !== '' && server !== undefined && server !== '') {
  // The CommonJS view of node:dns is the object node:net reads `lookup` from at connect time.
  const dns = createRequire(import.meta.url)('node:dns') as { lookup: Lookup };
  const original = dns.lookup;
  const resolver = new Resolver({ timeout: 1000, tries: 2 });
  resolver.setServers([server]);
  const suffix = `.${service}`;

  const shimmed: Lookup = (hostname, options, callback) => {
    const cb = typeof options === 'function' ? options : callback;
    const opts: LookupOptions = typeof options === 'object' ? options : typeof options === 'number' ? { family: options } : {};
    const name = hostname.toLowerCase().replace(/\.$/, '');
    if (cb === undefined || !name.endsWith(suffix)) {
      original(hostname, options, callback);
      return;
    }
    resolver.resolve4(name, (err, addresses) => {
      if (err !== null || addresses.length === 0) {
        const failure: NodeJS.ErrnoException = err ?? new Error(`no A record for ${name}`);
        failure.code = 'ENOTFOUND';
        cb(failure);
        return;
      }
      if (opts.all === true) cb(null, addresses.map((address) => ({ address, family: 4 })));
      else cb(null, addresses[0], 4);
    });
  };
  dns.lookup = shimmed;
}
