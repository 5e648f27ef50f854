// Leadership that follows the application's health (RAFTLET_APP_HEALTH_URL): a leader whose
// application is unhealthy hands leadership to a follower whose application is healthy and whose
// log is the longest among those; with no such follower it stays, so a cluster never goes
// leaderless because of its applications. Campaign delays for unhealthy members are the core's
// (Raft.setAppHealth); the probe itself is the host's (src/run/app-health.ts).
import type { AppHealth, NodeId, RaftStatus } from '../raft/types.ts';
import { bestTransferTarget } from './transfer-target.ts';

/** Health as this node tracks it from probe results: `threshold` failures in a row make the
 * application unhealthy, one success makes it healthy again (as a Kubernetes readiness probe
 * with successThreshold 1). Before the first result it counts as unhealthy: not known to serve. */
export class AppHealthTracker {
  private readonly threshold: number;
  private failures = 0;
  private state: AppHealth;

  constructor(checked: boolean, threshold: number) {
    if (!Number.isSafeInteger(threshold) || threshold < 1) throw new RangeError(`threshold must be a positive integer, got ${threshold}`);
    this.threshold = threshold;
    this.state = checked ? 'unhealthy' : 'unchecked';
  }

  get health(): AppHealth {
    return this.state;
  }

  /** Records one probe result; returns the health after it. */
  observe(ok: boolean): AppHealth {
    if (this.state === 'unchecked') return this.state;
    if (ok) {
      this.failures = 0;
      this.state = 'healthy';
    } else if (++this.failures >= this.threshold) {
      this.state = 'unhealthy';
    }
    return this.state;
  }
}

/** The follower to hand leadership to when this leader's application is unhealthy: by the rule of
 * bestTransferTarget, among the voters whose application it reported healthy (or not checked: it
 * cannot tell) and that are not departing (scaled away: leadership handed to one would only have to
 * move again); null when there is none. */
export function healthyTransferTarget(status: RaftStatus, contactOrder: readonly NodeId[], departing: (id: NodeId) => boolean = () => false): NodeId | null {
  return bestTransferTarget(status, contactOrder, (peer) => peer.appHealth !== null && peer.appHealth !== 'unhealthy' && !departing(peer.id));
}
