// The simulated network between whole nodes: Raft messages go to the other node's onMessages, and
// forwarded client calls (propose, read index, transfer) to its onPropose / onReadIndex / onTransfer,
// with the answers the real transport gives (src/transport/client.ts): a node that is down refuses
// the connection (no_leader: certainly not sent); a request or answer lost on the way, or a peer that
// does not answer in time, is a timeout (outcome unknown); the peer's own ClientError comes back as
// it is. Messages are delayed, dropped, duplicated, reordered, sometimes held for a long time (an
// old term's message arriving much later), and one-way partitions cut a direction of a link.
import { ClientError } from '../../src/api/ops.ts';
import type { KvCommand } from '../../src/kv/types.ts';
import type { PeerSender } from '../../src/node/ports.ts';
import type { RaftNode } from '../../src/node/node.ts';
import type { Message, NodeId } from '../../src/raft/types.ts';
import type { Rng } from '../sim/rng.ts';
import type { NodeSlot, Scheduler, SimClock } from './scheduler.ts';

export interface NetProfile {
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  dropRate: number;
  dupRate: number;
  /** Share of messages held back for longDelayMs or more. */
  longDelayRate: number;
  readonly longDelayMs: number;
}

/** What the network needs of a simulated node. */
export interface NetNode {
  readonly slot: NodeSlot;
  readonly url: string;
  /** The running RaftNode and its clock, or null while down. */
  running(): { node: RaftNode; clock: SimClock } | null;
}

export interface NetStats {
  sent: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  longDelayed: number;
  calls: number;
}

export class SimNetwork {
  private readonly scheduler: Scheduler;
  private readonly rng: Rng;
  readonly profile: NetProfile;
  private readonly nodes = new Map<NodeId, NetNode>();
  /** Directions cut by a partition: "from>to". */
  private readonly cut = new Set<string>();
  readonly stats: NetStats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0, longDelayed: 0, calls: 0 };
  private readonly trace: (line: string) => void;
  /** Called before and after a node handles delivered messages (the simulation checks invariants there). */
  onDeliver: (to: NetNode, messages: readonly Message[], handle: () => void) => void = (_to, _m, handle) => handle();

  constructor(scheduler: Scheduler, rng: Rng, profile: NetProfile, trace: (line: string) => void) {
    this.scheduler = scheduler;
    this.rng = rng;
    this.profile = profile;
    this.trace = trace;
  }

  add(node: NetNode): void {
    this.nodes.set(node.slot.id, node);
  }

  /** Cuts from -> to (one way). */
  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}>${to}`);
  }

  heal(): void {
    this.cut.clear();
  }

  get partitioned(): boolean {
    return this.cut.size > 0;
  }

  describeCuts(): string {
    return [...this.cut].sort().join(' ');
  }

  private reachable(from: NodeId, to: NodeId): boolean {
    return !this.cut.has(`${from}>${to}`);
  }

  private delay(): number {
    const p = this.profile;
    let ms = p.minDelayMs + this.rng.next() * (p.maxDelayMs - p.minDelayMs);
    if (p.longDelayRate > 0 && this.rng.chance(p.longDelayRate)) {
      this.stats.longDelayed++;
      ms += p.longDelayMs * (1 + this.rng.next() * 3);
    }
    return ms;
  }

  /** The PeerSender of node `from`. */
  sender(from: NetNode): PeerSender {
    const incarnation = from.slot.incarnation;
    const alive = (): boolean => from.slot.up && from.slot.incarnation === incarnation;
    return {
      sendAll: (messages) => {
        if (!alive()) return;
        for (const m of messages) this.send(m);
      },
      propose: (peerUrl, cmd, deadlineMs) =>
        this.call(from, incarnation, 'propose', peerUrl, deadlineMs, (node, deadline) => node.onPropose(copyCommand(cmd), deadline)),
      readIndex: (peerUrl, deadlineMs) => this.call(from, incarnation, 'readIndex', peerUrl, deadlineMs, (node, deadline) => node.onReadIndex(deadline)),
      transfer: (peerUrl, to, deadlineMs) => this.call(from, incarnation, 'transfer', peerUrl, deadlineMs, (node, deadline) => node.onTransfer(to, deadline)),
    };
  }

  private send(m: Message): void {
    this.stats.sent++;
    const to = this.nodes.get(m.to);
    if (!to) {
      this.stats.dropped++;
      return;
    }
    if (this.rng.chance(this.profile.dropRate)) {
      this.stats.dropped++;
      return;
    }
    const copies = this.rng.chance(this.profile.dupRate) ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let copy = 0; copy < copies; copy++) {
      this.scheduler.at(this.scheduler.now + this.delay(), () => this.deliver(m, to), to.slot);
    }
  }

  private deliver(m: Message, to: NetNode): void {
    const running = to.running();
    if (running === null || !this.reachable(m.from, m.to)) {
      this.stats.dropped++;
      return;
    }
    this.stats.delivered++;
    this.onDeliver(to, [m], () => running.node.onMessages([m]));
  }

  /** A forwarded client call, answered as the real PeerClient answers. */
  private call<T>(
    from: NetNode,
    incarnation: number,
    kind: 'propose' | 'readIndex' | 'transfer',
    peerUrl: string,
    deadlineMs: number,
    invoke: (node: RaftNode, deadlineMs: number) => Promise<T>,
  ): Promise<T> {
    this.stats.calls++;
    const caller = from.running();
    const target = [...this.nodes.values()].find((n) => n.url === peerUrl);
    if (caller === null || from.slot.incarnation !== incarnation) return new Promise<T>(() => undefined); // a dead caller hears nothing
    const remainingMs = Math.floor(deadlineMs - caller.clock.now());
    if (target === undefined) return Promise.reject(new ClientError('no_leader', `${peerUrl} is not a known peer; not sent`));
    if (remainingMs < 1) return Promise.reject(new ClientError('no_leader', `the deadline passed before the ${kind} could be forwarded; not sent`));
    const waitMs = remainingMs;
    const peerTimeoutMs = Math.max(1, waitMs - Math.min(250, Math.ceil(waitMs / 10)));
    const callerSlot = from.slot;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const settle = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        cancelTimeout();
        fn();
      };
      // The caller's own timeout (AbortSignal.timeout in the real client): outcome unknown.
      const cancelTimeout = caller.clock.after(waitMs, () =>
        settle(() => reject(new ClientError('timeout', `no answer from ${peerUrl} within ${waitMs} ms; the ${kind}'s outcome is unknown`))),
      );
      if (target.running() === null) {
        // Connection refused: certainly not sent (fast failover).
        this.scheduler.at(this.scheduler.now + this.profile.minDelayMs, () => settle(() => reject(new ClientError('no_leader', `${peerUrl} refused the connection; the ${kind} was not sent`))), callerSlot, incarnation);
        return;
      }
      if (!this.reachable(from.slot.id, target.slot.id) || this.rng.chance(this.profile.dropRate)) return; // lost: the caller times out
      this.scheduler.at(
        this.scheduler.now + this.delay(),
        () => {
          const running = target.running();
          if (running === null || !this.reachable(from.slot.id, target.slot.id)) return;
          const targetIncarnation = target.slot.incarnation;
          invoke(running.node, running.clock.now() + peerTimeoutMs).then(
            (value) => this.answer(target, targetIncarnation, from, callerSlot, incarnation, () => settle(() => resolve(value))),
            (err: unknown) => {
              const error = err instanceof ClientError ? err : new ClientError('timeout', `${peerUrl} failed the ${kind} (${String(err)}); its outcome is unknown`);
              this.answer(target, targetIncarnation, from, callerSlot, incarnation, () => settle(() => reject(error)));
            },
          );
        },
        target.slot,
      );
    });
  }

  /** Carries an answer back, unless the answering node died first or the way back is cut or lossy. */
  private answer(target: NetNode, targetIncarnation: number, from: NetNode, callerSlot: NodeSlot, callerIncarnation: number, deliver: () => void): void {
    if (!target.slot.up || target.slot.incarnation !== targetIncarnation) return;
    if (this.rng.chance(this.profile.dropRate)) return;
    this.scheduler.at(
      this.scheduler.now + this.delay(),
      () => {
        if (this.reachable(target.slot.id, from.slot.id)) deliver();
      },
      callerSlot,
      callerIncarnation,
    );
  }
}

/** The wire copies a command: the receiver must never share the sender's bytes. */
function copyCommand(cmd: KvCommand): KvCommand {
  return cmd.op === 'put' ? { ...cmd, value: new Uint8Array(cmd.value) } : { ...cmd };
}

