// The write runs' cluster and workload, shared by `npm run bench` and `npm run bench:forward`, so the
// follower row of one and the rounds of the other measure the same thing.

/** Timings of the write runs: SPEC's defaults, which are also etcd's. */
export const WRITE_TIMINGS = { heartbeatMs: 100, electionTimeoutMs: 1000 } as const;
export const CLUSTER_SIZE = 3;
/** Each write puts a value of this many bytes ... */
export const VALUE_BYTES = 100;
/** ... under one of this many keys, in turn. */
export const KEYS = 500;
