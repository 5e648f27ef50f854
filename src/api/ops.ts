// The seam between the client API (src/api) and whatever serves it (the node runtime, src/node, or a
// test double). The API layer knows HTTP; the runtime knows Raft. This file is the contract between
// them: the operations, their answers, and the errors they reject with (SPEC section 4). The peer
// transport carries the same operations between nodes, so it imports this file too.
import type { ChangeFeed, KvCommand, KvResult, KvView } from '../kv/types.ts';
import type { Membership, NodeId, Role } from '../raft/types.ts';

export interface NodeStatus {
  readonly id: NodeId;
  readonly role: Exclude<Role, 'precandidate'> ;
  readonly term: number;
  readonly leader: NodeId | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastLogIndex: number;
  readonly members: Membership;
}

export interface LeaderInfo {
  readonly id: NodeId;
  readonly url: string;
  readonly term: number;
}

/** GET /v1/leadership (SPEC §4): this node's own leadership, for the application beside it. */
export interface Leadership {
  readonly leader: boolean;
  /** The fencing token: writes with If-Term: <term> apply only while this term's leader leads. */
  readonly term: number;
  /** How long this node is guaranteed to stay the only leader; 0 when it does not lead, has no lease
   * yet, or is handing leadership over. */
  readonly leaseRemainingMs: number;
}

/** Why leadership was handed over: the API or a CLI asked, SIGTERM, or the application's health. */
export type TransferReason = 'requested' | 'shutdown' | 'app_unhealthy';

/** Errors the runtime rejects with; the API maps `code` to the status of SPEC section 4. */
export class ClientError extends Error {
  readonly code: 'bad_request' | 'no_leader' | 'timeout' | 'precondition_failed' | 'not_found' | 'payload_too_large' | 'unavailable';
  constructor(code: ClientError['code'], message: string) {
    super(message);
    this.code = code;
  }
}

/** The HTTP status of each ClientError code (SPEC section 4), for the client API and peer RPC alike. */
export function clientErrorStatus(code: ClientError['code']): number {
  switch (code) {
    case 'bad_request':
      return 400;
    case 'not_found':
      return 404;
    case 'precondition_failed':
      return 412;
    case 'payload_too_large':
      return 413;
    case 'no_leader':
    case 'unavailable':
      return 503;
    case 'timeout':
      return 504;
    default: {
      const never: never = code;
      return never;
    }
  }
}

export interface ClientOps {
  status(): NodeStatus;
  /** The leader as this node knows it, or null. */
  leader(): LeaderInfo | null;
  /** Resolves when the leader or term differs from (seenLeader, seenTerm), or after waitMs with the
   * current value (which may be null). */
  waitLeaderChange(seenLeader: NodeId | null, seenTerm: number, waitMs: number): Promise<LeaderInfo | null>;
  /** Replicates cmd through the leader (forwarding if this node follows) and resolves once it is
   * committed and applied on this node. Rejects with ClientError no_leader (certainly not proposed)
   * or timeout (outcome unknown). A failed condition resolves with ok: false. */
  propose(cmd: KvCommand, deadlineMs: number): Promise<KvResult>;
  /** Linearizable read barrier (ReadIndex, thesis §6.4): once it resolves, kv() reflects every write
   * committed before the call began. */
  readBarrier(deadlineMs: number): Promise<void>;
  kv(): KvView;
  /** Leadership transfer; `to` null = the most up-to-date follower. */
  transferLeadership(to: NodeId | null, deadlineMs: number): Promise<{ leader: NodeId; term: number }>;
  leadership(): Leadership;
  /** Resolves when this node's leadership differs from what the caller saw: the leader flag, the
   * term, or (while leading) whether it holds a lease; or after waitMs with the current value. */
  waitLeadership(seen: { readonly leader: boolean; readonly term: number; readonly leased: boolean }, waitMs: number): Promise<Leadership>;
  /** The local replica's recent changes, for watches; read after readBarrier() for linearizability. */
  changes(): ChangeFeed;
}
