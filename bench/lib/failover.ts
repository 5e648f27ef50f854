// Failover: signal the leader, then time (from the signal) until a surviving member names a new
// leader and until a write is first accepted. Both systems are measured by this same code, with the
// same polling and retry pace, so their figures compare.
import { performance } from 'node:perf_hooks';
import { Agent } from 'undici';
import { waitStable, type BenchCluster } from './cluster.ts';

export interface FailoverRun {
  readonly signal: NodeJS.Signals;
  readonly oldLeader: string;
  /** A survivor first named a leader other than the old one; null if none did within the bound. */
  readonly leaderKnownMs: number | null;
  /** The first write accepted by any survivor; null if none was. */
  readonly firstWriteMs: number | null;
  /** The later of the two: the cluster is usable again. */
  readonly readyMs: number | null;
  /** When the old leader's process had exited (SIGTERM: its hand-off included). */
  readonly exitedMs: number | null;
  readonly newLeader: string | null;
  /** Write attempts started, and how those that ended before the first accepted one ended ("HTTP 503", "error: ..."). */
  readonly attempts: number;
  readonly outcomes: Readonly<Record<string, number>>;
}

/** How often each survivor is asked who leads, and how often a new write attempt starts per survivor. */
export const POLL_MS = 5;
export const WRITE_EVERY_MS = 10;
/**
 * Attempts in flight per survivor at most, as a client with a few connections per node would have.
 * Unbounded, a raftlet follower forwards every held attempt to the new leader over the same
 * connection pool its Raft messages use, and more than 16 of them starve its replies to the leader
 * (the leader then steps down by check-quorum): a transport bug of its own, shown by the follower
 * write run, which the failover figure should not be made of. Bounded, attempts etcd holds (sent
 * to the dead leader, up to its request timeout) fill the slots: hence also the direct attempts to
 * the new leader once a survivor names it, as a client that follows the leader makes.
 */
export const MAX_IN_FLIGHT_PER_SURVIVOR = 8;
/** A run that has no new leader or no accepted write within this is recorded as failed (null). */
export const GIVE_UP_MS = 10_000;

export async function measureFailover(cluster: BenchCluster, signal: NodeJS.Signals, run: number): Promise<FailoverRun> {
  const leader = await waitStable(cluster, 30_000);
  const oldLeader = cluster.memberId(leader);
  const survivors = Array.from({ length: cluster.size }, (_, i) => i).filter((i) => i !== leader);
  // No connection limit: an attempt the system holds must not queue later attempts behind it.
  const agent = new Agent({ keepAliveTimeout: 10_000 });
  // Connections to the survivors are opened before the clock starts, as a client's would be: the
  // polls' (undici's global dispatcher) and, through the agent the writes use, as many as the
  // attempts a survivor may hold at once (concurrent requests, one connection each). Without
  // them every first write to a member also paid for a TCP connect and the server's accept.
  await Promise.all(survivors.flatMap((i) => [
    cluster.view(i, 1000),
    ...Array.from({ length: MAX_IN_FLIGHT_PER_SURVIVOR }, () => cluster.view(i, 1000, agent)),
  ]));

  const started = performance.now();
  const since = (): number => performance.now() - started;
  cluster.signal(leader, signal);
  const exitedAt = cluster.exited(leader).then(since);
  let done = false;
  const giveUp = setTimeout(() => (done = true), GIVE_UP_MS);

  let newLeader: string | null = null;
  let onNewLeader: (index: number) => void = () => undefined;
  const leaderKnown = new Promise<number | null>((resolve) => {
    const poll = async (i: number): Promise<void> => {
      while (!done && newLeader === null) {
        const view = await cluster.view(i, 250);
        if (view !== null && view.leader !== null && view.leader !== oldLeader && newLeader === null) {
          newLeader = view.leader;
          resolve(since());
          const index = Array.from({ length: cluster.size }, (_, j) => cluster.memberId(j)).indexOf(view.leader);
          if (index >= 0) onNewLeader(index);
          return;
        }
        await sleep(POLL_MS);
      }
      resolve(null);
    };
    for (const i of survivors) void poll(i);
  });

  // A new attempt every WRITE_EVERY_MS to each survivor (while it has fewer than
  // MAX_IN_FLIGHT_PER_SURVIVOR), each waiting as long as the system makes it wait: a write held by
  // a follower until a leader exists counts when it is accepted. Once a survivor names the new
  // leader, attempts also go to it directly, one after the other.
  const value = Buffer.alloc(100, 0x62);
  let writeDone = false;
  const outcomes: Record<string, number> = {};
  const count = (outcome: string): void => {
    if (!writeDone) outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
  };
  let attempt = 0;
  const firstWrite = new Promise<number | null>((resolve) => {
    const inFlight = new Map(survivors.map((i) => [i, 0]));
    const tryWrite = async (i: number, bounded: boolean): Promise<void> => {
      if (bounded) inFlight.set(i, (inFlight.get(i) ?? 0) + 1);
      const spec = cluster.write(`bench/failover-${run}-${signal}-${attempt++}`, value);
      try {
        const res = await agent.request({
          origin: cluster.apiUrl(i), path: spec.path, method: spec.method, headers: spec.headers, body: spec.body,
          signal: AbortSignal.timeout(GIVE_UP_MS),
        });
        const text = await res.body.text();
        const accepted = cluster.accepted(res.statusCode, text);
        count(accepted ? 'accepted' : `HTTP ${res.statusCode}`);
        if (accepted && !writeDone) {
          writeDone = true;
          resolve(since());
        }
      } catch (err) {
        // refused, reset or timed out: the next attempt is already on its way
        if (!done) count(`error: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        if (bounded) inFlight.set(i, (inFlight.get(i) ?? 1) - 1);
      }
    };
    onNewLeader = (index) => {
      void (async () => {
        while (!done && !writeDone) {
          await tryWrite(index, false);
          if (!writeDone) await sleep(1); // a quick refusal must not spin
        }
      })();
    };
    void (async () => {
      while (!done && !writeDone) {
        for (const i of survivors) if ((inFlight.get(i) ?? 0) < MAX_IN_FLIGHT_PER_SURVIVOR) void tryWrite(i, true);
        await sleep(WRITE_EVERY_MS);
      }
      if (!writeDone) resolve(null);
    })();
  });

  const [leaderKnownMs, firstWriteMs] = await Promise.all([leaderKnown, firstWrite]);
  done = true;
  clearTimeout(giveUp);
  const exitedMs = await Promise.race([exitedAt, sleep(15_000).then(() => null)]);
  await agent.destroy();
  if (exitedMs === null) {
    cluster.signal(leader, 'SIGKILL');
    await cluster.exited(leader);
  }
  await cluster.restart(leader);
  await waitStable(cluster, 30_000);
  return {
    signal,
    oldLeader,
    leaderKnownMs,
    firstWriteMs,
    readyMs: leaderKnownMs === null || firstWriteMs === null ? null : Math.max(leaderKnownMs, firstWriteMs),
    exitedMs,
    newLeader,
    attempts: attempt,
    outcomes,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
