// Cluster identity on the peer port: every request carries the sender's cluster id (when it has
// one) in the Raftlet-Cluster header, and the server refuses a request from another cluster before
// any handler runs, so a member of an old cluster (say, after a restore made a new one at the same
// addresses) changes nothing here. A node without an id yet adopts the first one that arrives with
// Raft traffic: the leader that adds it, or the member that made the id.
//
// The id itself is made and kept by the runtime (src/run/cluster-id.ts); the transport only carries
// and compares it. The hooks are two: clusterHeader() for the client, checkCluster() for the server.

export const CLUSTER_HEADER = 'raftlet-cluster';

/** Lower-case letters, digits and dashes: what a header carries without escaping. */
export const CLUSTER_ID_PATTERN = /^[a-z0-9][a-z0-9-]{7,63}$/;

export interface ClusterIdentity {
  /** This node's cluster id, or null while it has none (pristine, or data older than ids). */
  current(): string | null;
  /** Takes `id` as this node's cluster id, durably, before returning; throws if it cannot. */
  adopt(id: string): void;
}

/** The header for an outgoing peer request: none while this node has no cluster id. */
export function clusterHeader(identity: ClusterIdentity | undefined): Record<string, string> {
  const id = identity?.current() ?? null;
  return id === null ? {} : { [CLUSTER_HEADER]: id };
}

export type ClusterCheck =
  | { readonly ok: true }
  | { readonly ok: false; readonly code: 'misdirected' | 'bad_request' | 'internal'; readonly message: string };

/**
 * Whether a peer request may go on. `header` is the request's Raftlet-Cluster header;
 * `raftTraffic` says the request carries Raft messages (only those make a node without an id
 * adopt one: a status probe or a forwarded call never does). Requests without the header pass:
 * a pristine node has no id to send, and neither does a member whose data predates cluster ids.
 */
export function checkCluster(identity: ClusterIdentity | undefined, header: string | string[] | undefined, raftTraffic: boolean): ClusterCheck {
  if (identity === undefined || header === undefined) return { ok: true };
  const theirs = Array.isArray(header) ? header[0] : header;
  if (theirs === undefined || !CLUSTER_ID_PATTERN.test(theirs) || (Array.isArray(header) && header.length > 1)) {
    return { ok: false, code: 'bad_request', message: `malformed ${CLUSTER_HEADER} header: expected one cluster id` };
  }
  const ours = identity.current();
  if (ours === theirs) return { ok: true };
  if (ours !== null) {
    return {
      ok: false,
      code: 'misdirected',
      message: `cluster id mismatch: this node belongs to cluster ${ours}, the request comes from a member of cluster ${theirs} (another cluster, e.g. an old member after a restore); refused, nothing changed`,
    };
  }
  if (!raftTraffic) return { ok: true };
  try {
    identity.adopt(theirs);
  } catch (error) {
    return { ok: false, code: 'internal', message: `cannot record cluster id ${theirs}: ${error instanceof Error ? error.message : String(error)}` };
  }
  return { ok: true };
}
