// Peer host names resolved through a chosen DNS server (RAFTLET_DNS_SERVER): the server that
// answers the SRV query also knows the pods' A records, while the system resolver may not.
import { lookup as systemLookup } from 'node:dns';
import { Resolver } from 'node:dns/promises';
import { isIP, type LookupFunction } from 'node:net';

/** A net.connect lookup that asks `server` ("host:port") for A records, and the system resolver
 * for IP literals and for names that server does not know. */
export function lookupVia(server: string): LookupFunction {
  const resolver = new Resolver({ timeout: 2000, tries: 2 });
  resolver.setServers([server]);
  return (hostname, options, callback) => {
    if (isIP(hostname) !== 0 || options.family === 6) {
      systemLookup(hostname, options, callback);
      return;
    }
    resolver.resolve4(hostname).then(
      (addresses) => {
        if (addresses.length === 0) {
          systemLookup(hostname, options, callback);
        } else if (options.all) {
          callback(null, addresses.map((address) => ({ address, family: 4 })));
        } else {
          callback(null, addresses[0], 4);
        }
      },
      () => systemLookup(hostname, options, callback),
    );
  };
}
