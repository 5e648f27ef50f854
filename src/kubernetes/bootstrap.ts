// Safe bootstrap of a new cluster from DNS discovery. Two pods that bootstrap with different
// member sets would form two clusters that never merge (split brain), so the set must be a
// function of names alone: every pod that decides to bootstrap decides on the same set.
import type { Member, NodeId } from '../raft/types.ts';
import type { Peer } from './discovery.ts';
import { compareMemberIds, ordinalOf } from './ordinal.ts';

export type BootstrapDecision =
  /** Write the initial configuration (these voters) as this node's first log entry. */
  | { readonly kind: 'bootstrap'; readonly members: readonly Member[] }
  /** Do not form a cluster; wait to be contacted (added) by a leader. `reason` is for the log. */
  | { readonly kind: 'wait'; readonly reason: string };

export interface BootstrapInput {
  readonly selfId: NodeId;
  readonly discovered: readonly Peer[];
  /** RAFTLET_BOOTSTRAP_EXPECT. */
  readonly expect: number;
  /** The node has a log, a snapshot or a persisted term: it belongs to a cluster already. */
  readonly hasData: boolean;
  /** A peer told this node it belongs to a cluster (a leader contacted it, or a peer reported a
   * leader or a non-empty configuration). */
  readonly clusterSeen?: boolean;
  /** Only the seed (the lowest ordinal of the set) writes the first configuration; the others
   * wait for its leader to reach them. One writer means one cluster id (src/run/cluster-id.ts). */
  readonly seedOnly?: boolean;
}

/**
 * The bootstrap set for what DNS shows: the `expect` members with the lowest StatefulSet ordinals,
 * or null while it cannot be known yet.
 *
 * When those members are StatefulSet pods of one set (`name-<n>`), the set is exactly ordinals
 * 0..expect-1 and stays null until all of them are visible: a pod that sees name-1, name-2, name-3
 * before name-0 appears in DNS must not pick {1, 2, 3} while name-0 later picks {0, 1, 2}.
 * Names without ordinals sort lexically after ordinal names; with such names the set is only as
 * stable as DNS visibility (give pods StatefulSet names).
 */
export function chooseBootstrapMembers(discovered: readonly Peer[], expect: number): Member[] | null {
  if (!Number.isInteger(expect) || expect < 1) return null;
  const unique = new Map<NodeId, Peer>();
  for (const peer of discovered) if (!unique.has(peer.id)) unique.set(peer.id, peer);
  if (unique.size < expect) return null;
  const chosen = [...unique.values()].sort((a, b) => compareMemberIds(a.id, b.id)).slice(0, expect);
  const ordinals = chosen.map((peer) => ordinalOf(peer.id));
  const allOrdinal = ordinals.every((o) => o !== null);
  if (allOrdinal) {
    const prefix = ordinals[0]?.prefix;
    const onePrefix = ordinals.every((o) => o?.prefix === prefix);
    if (onePrefix && !ordinals.every((o, index) => o?.ordinal === index)) return null;
  }
  return chosen.map((peer) => ({ id: peer.id, url: peer.url, voter: true }));
}

/** The members to bootstrap with when this node should write the initial configuration, else null. */
export function shouldBootstrap(
  selfId: NodeId,
  discovered: readonly Peer[],
  expect: number,
  hasData: boolean,
  clusterSeen = false,
): Member[] | null {
  const decision = decideBootstrap({ selfId, discovered, expect, hasData, clusterSeen });
  return decision.kind === 'bootstrap' ? [...decision.members] : null;
}

/** shouldBootstrap with the reason for waiting, for one clear log line. */
export function decideBootstrap(input: BootstrapInput): BootstrapDecision {
  const { selfId, discovered, expect } = input;
  if (input.hasData) {
    return { kind: 'wait', reason: 'this node has Raft data: it rejoins its cluster and never bootstraps again' };
  }
  if (input.clusterSeen === true) {
    return { kind: 'wait', reason: 'a cluster already exists: waiting for its leader to add this node' };
  }
  const members = chooseBootstrapMembers(discovered, expect);
  if (members === null) {
    const seen = discovered.map((peer) => peer.id).sort(compareMemberIds);
    return {
      kind: 'wait',
      reason: `waiting for the ${expect} lowest-ordinal members of RAFTLET_BOOTSTRAP_EXPECT=${expect} to appear in DNS (seen ${seen.length}: ${seen.join(', ') || 'none'})`,
    };
  }
  if (!members.some((member) => member.id === selfId)) {
    return {
      kind: 'wait',
      reason: `not in the bootstrap set (${members.map((m) => m.id).join(', ')}): waiting for the leader to add this node`,
    };
  }
  const seed = members[0]?.id;
  if (input.seedOnly === true && seed !== selfId) {
    return { kind: 'wait', reason: `${seed ?? '?'} writes the first configuration (${members.map((m) => m.id).join(', ')}); waiting for its leader to reach this node` };
  }
  return { kind: 'bootstrap', members };
}

/** What a peer answered to the peer status route before a bootstrap, or why it did not. */
export type PeerProbe =
  | {
      readonly id: NodeId;
      readonly answered: true;
      readonly members: number;
      readonly leader: NodeId | null;
      readonly term: number;
      readonly lastLogIndex: number;
    }
  | { readonly id: NodeId; readonly answered: false; readonly error: string };

export type ProbeVerdict =
  /** No peer that answered belongs to a cluster, and a majority of the new cluster's members are
   * known to hold nothing: a new cluster may form. */
  | { readonly kind: 'none' }
  /** A peer has a configuration or knows a leader: join that cluster, never make another. */
  | { readonly kind: 'exists'; readonly reason: string }
  /** Too few members answered to know: ask again before deciding. */
  | { readonly kind: 'unknown'; readonly reason: string };

/**
 * The clusterSeen guard (issue 11), from the answers of the peers: a node that lost its data must
 * not form a new cluster next to the one its peers still run. A cluster that exists and could
 * still commit has a majority of its members alive and holding a configuration; so once a
 * majority of the would-be members (this node included) answered that they hold nothing, and no
 * peer answered with a cluster, none can be running on these members.
 */
export function judgeProbes(probes: readonly PeerProbe[], memberIds: readonly NodeId[], selfId: NodeId, options: { readonly peersBootstrapToo?: boolean } = {}): ProbeVerdict {
  for (const p of probes) {
    // Where every member writes the same first entry (a static list), a peer that has done just
    // that (entry 1 in term 1, no leader yet) is forming the same cluster, not running another.
    const forming = options.peersBootstrapToo === true && p.answered && p.leader === null && p.term <= 1 && p.lastLogIndex <= 1;
    if (p.answered && !forming && (p.members > 0 || p.leader !== null)) {
      return {
        kind: 'exists',
        reason: `${p.id} already belongs to a cluster (${p.members} member(s), leader ${p.leader ?? 'unknown'}, term ${p.term}): not bootstrapping; waiting for its leader to add this node`,
      };
    }
  }
  const empty = new Set(probes.filter((p) => p.answered).map((p) => p.id));
  empty.add(selfId);
  const known = memberIds.filter((id) => empty.has(id)).length;
  const needed = Math.floor(memberIds.length / 2) + 1;
  if (known >= needed) return { kind: 'none' };
  const silent = probes.filter((p): p is Extract<PeerProbe, { answered: false }> => !p.answered);
  return {
    kind: 'unknown',
    reason: `not bootstrapping yet: ${known} of ${memberIds.length} members are known to hold no cluster, ${needed} needed; no answer from ${silent.map((p) => `${p.id} (${p.error})`).join(', ') || 'nobody'}`,
  };
}
