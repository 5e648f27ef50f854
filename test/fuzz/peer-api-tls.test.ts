// The peer API fuzz suite (peer-api.test.ts) again, against a node whose peer port speaks mutual
// TLS: the fuzz requests carry a certificate of the node's CA, so they reach the HTTP layer
// behind TLS and every refusal there must hold as it does over plain HTTP.
process.env.RAFTLET_FUZZ_TLS = '1';
await import('./peer-api.test.ts');
