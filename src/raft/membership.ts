// Single-server membership changes (thesis §4.1): each change adds, promotes or removes one server,
// so any two consecutive configurations share a majority and no joint consensus is needed.
import type { ConfigChange, Member, Membership, NodeId } from './types.ts';

export function voters(members: Membership): NodeId[] {
  return members.filter((m) => m.voter).map((m) => m.id);
}

export function isVoter(members: Membership, id: NodeId): boolean {
  return members.some((m) => m.id === id && m.voter);
}

export function findMember(members: Membership, id: NodeId): Member | undefined {
  return members.find((m) => m.id === id);
}

/** The configuration after `change`, or an error saying why the change makes no sense. */
export function applyConfigChange(
  members: Membership,
  change: ConfigChange,
  leaderId: NodeId,
): { members: Membership } | { error: string } {
  const existing = findMember(members, change.id);
  switch (change.kind) {
    case 'addLearner':
      if (existing) return { error: `${change.id} is already a member` };
      if (change.url.length === 0) return { error: `learner ${change.id} needs a URL` };
      // New servers join without a vote and catch up first (thesis §4.2.1).
      return { members: [...members, { id: change.id, url: change.url, voter: false }] };
    case 'promote':
      if (!existing) return { error: `${change.id} is not a member` };
      if (existing.voter) return { error: `${change.id} is already a voter` };
      return { members: members.map((m) => (m.id === change.id ? { ...m, voter: true } : m)) };
    case 'remove':
      if (!existing) return { error: `${change.id} is not a member` };
      // The leader hands over leadership before it is removed, so it never manages a cluster it
      // is not part of (thesis §4.2.2 describes the alternative; transfer-first is simpler).
      if (change.id === leaderId) return { error: `${change.id} is the leader: transfer leadership first` };
      if (existing.voter && voters(members).length === 1) return { error: `cannot remove the last voter` };
      return { members: members.filter((m) => m.id !== change.id) };
    default: {
      const never: never = change;
      return never;
    }
  }
}
