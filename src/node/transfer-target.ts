// The follower a leader hands leadership to when the runtime picks it: by the core's order of
// targets (betterTransferTarget: the most up-to-date, among equals the one in contact longest),
// among the voters that answered recently. Who is eligible beyond that is the caller's rule: a
// member that stays after a scale-down, a member whose application is healthy.
import { betterTransferTarget } from '../raft/progress.ts';
import type { NodeId, PeerProgress, RaftStatus } from '../raft/types.ts';

/** contactOrder: the members with a stream open to this node, the longest connected first (others
 * rank after them). Null when this node does not lead or no voter is eligible. */
export function bestTransferTarget(status: RaftStatus, contactOrder: readonly NodeId[], eligible: (peer: PeerProgress) => boolean): NodeId | null {
  if (status.role !== 'leader') return null;
  const voters = new Set(status.members.filter((m) => m.voter && m.id !== status.id).map((m) => m.id));
  const better = betterTransferTarget(contactOrder);
  let best: PeerProgress | null = null;
  for (const peer of status.progress) {
    if (!voters.has(peer.id) || !peer.recentActive || !eligible(peer)) continue;
    if (best === null || better(peer, best)) best = peer;
  }
  return best?.id ?? null;
}
