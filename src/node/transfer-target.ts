// The follower a leader hands leadership to when the runtime picks it (thesis §3.10 leaves the
// choice open): the most up-to-date voter that answered recently, among equals the one in contact
// longest (as etcd picks its transferee: one that has just restarted would lead with cold code and
// caches). Who is eligible beyond that is the caller's rule: a member that stays after a
// scale-down, a member whose application is healthy.
import type { NodeId, PeerProgress, RaftStatus } from '../raft/types.ts';

/** contactOrder: the members with a stream open to this node, the longest connected first (others
 * rank after them). Null when this node does not lead or no voter is eligible. */
export function bestTransferTarget(status: RaftStatus, contactOrder: readonly NodeId[], eligible: (peer: PeerProgress) => boolean): NodeId | null {
  if (status.role !== 'leader') return null;
  const voters = new Set(status.members.filter((m) => m.voter && m.id !== status.id).map((m) => m.id));
  const rank = (id: NodeId): number => {
    const at = contactOrder.indexOf(id);
    return at < 0 ? contactOrder.length : at;
  };
  let best: PeerProgress | null = null;
  for (const peer of status.progress) {
    if (!voters.has(peer.id) || !peer.recentActive || !eligible(peer)) continue;
    if (best === null || peer.matchIndex > best.matchIndex || (peer.matchIndex === best.matchIndex && rank(peer.id) < rank(best.id))) best = peer;
  }
  return best?.id ?? null;
}
