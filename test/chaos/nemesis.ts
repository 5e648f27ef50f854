// The nemesis: faults in an order drawn from a seeded RNG, each held for a while and healed.
// Process faults act on the node's process (kill -9 then restart from its data dir, SIGSTOP then
// SIGCONT); network faults act in the namespaces (iptables partitions and random loss) and in the
// relays (delay). Sometimes a process fault and a network fault overlap.
import { request } from 'undici';
import { iptables, LOSS_CHAIN, PARTITION_CHAIN } from './netns.ts';
import type { ChaosNode, ChaosRelay } from './processes.ts';
import type { Rng } from './rng.ts';

export const FAULT_KINDS = [
  'kill',
  'kill-leader',
  'kill-all',
  'pause',
  'pause-leader',
  'terminate-leader',
  'transfer',
  'partition-leader',
  'partition-one',
  'partition-halves',
  'partition-bridge',
  'partition-ring',
  'loss',
  'delay',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

const PROCESS_FAULTS: ReadonlySet<FaultKind> = new Set<FaultKind>(['kill', 'kill-leader', 'kill-all', 'pause', 'pause-leader', 'terminate-leader', 'transfer']);

const WEIGHTS: Readonly<Record<FaultKind, number>> = {
  kill: 3,
  'kill-leader': 3,
  'kill-all': 1,
  pause: 2,
  'pause-leader': 3,
  'terminate-leader': 1,
  transfer: 1,
  'partition-leader': 3,
  'partition-one': 2,
  'partition-halves': 2,
  'partition-bridge': 2,
  'partition-ring': 1,
  loss: 2,
  delay: 2,
};

export function parseFaultKinds(text: string): FaultKind[] {
  const kinds: FaultKind[] = [];
  for (const word of text.split(',').map((w) => w.trim()).filter(Boolean)) {
    if (word === 'all') {
      kinds.push(...FAULT_KINDS);
      continue;
    }
    // A family name stands for all its kinds: "partition" = every partition-*.
    const family = FAULT_KINDS.filter((k) => k === word || k.startsWith(`${word}-`));
    if (family.length === 0) throw new Error(`unknown fault ${JSON.stringify(word)}; known: ${FAULT_KINDS.join(', ')} (or kill, pause, partition, all)`);
    kinds.push(...family);
  }
  return [...new Set(kinds)];
}

export interface FaultEvent {
  readonly at: number;
  readonly kind: FaultKind;
  readonly phase: 'start' | 'heal';
  readonly detail: string;
}

interface ActiveFault {
  readonly kind: FaultKind;
  readonly detail: string;
  heal(): Promise<void>;
}

export interface NemesisOptions {
  readonly nodes: readonly ChaosNode[];
  readonly relays: readonly ChaosRelay[];
  readonly rng: Rng;
  readonly kinds: readonly FaultKind[];
  readonly clock: () => number;
  readonly leader: () => string | null;
  readonly log: (line: string) => void;
  /** Called right after a paused node is resumed: the moment a node that led before the pause
   * may still think it leads, when a stale read would show. */
  readonly afterResume?: (node: ChaosNode) => void;
  /** Something a fault showed that SPEC does not allow (a SIGTERM that does not end in exit 0). */
  readonly anomaly: (summary: string, details: readonly string[]) => void;
  /** A fault is held this long (ms), drawn uniformly. */
  readonly holdMs: readonly [number, number];
  /** Quiet time between faults (ms), drawn uniformly. */
  readonly gapMs: readonly [number, number];
}

export class Nemesis {
  readonly events: FaultEvent[] = [];
  readonly counts = new Map<FaultKind, number>();
  private readonly options: NemesisOptions;
  private readonly active: ActiveFault[] = [];
  private wake: (() => void) | null = null;
  private stopping = false;
  /** When the last fault was healed (run clock), or null if none was. */
  lastHealAt: number | null = null;

  constructor(options: NemesisOptions) {
    this.options = options;
    const usable = this.usableKinds();
    if (usable.length === 0) throw new Error(`none of the faults ${options.kinds.join(', ')} applies to ${options.nodes.length} nodes`);
  }

  get total(): number {
    let sum = 0;
    for (const n of this.counts.values()) sum += n;
    return sum;
  }

  private usableKinds(): FaultKind[] {
    // A ring differs from a full mesh only from 4 nodes on.
    return this.options.kinds.filter((k) => k !== 'partition-ring' || this.options.nodes.length >= 4);
  }

  /** Faults until `untilMs` on the run clock (or stop()), then heals everything. */
  async run(untilMs: number): Promise<void> {
    const { rng, clock } = this.options;
    const usable = this.usableKinds();
    const processKinds = usable.filter((k) => PROCESS_FAULTS.has(k));
    const networkKinds = usable.filter((k) => !PROCESS_FAULTS.has(k));
    try {
      while (!this.stopping && clock() < untilMs) {
        const first = rng.weighted(usable.map((k) => [k, WEIGHTS[k]] as const));
        const kinds: FaultKind[] = [first];
        const other = PROCESS_FAULTS.has(first) ? networkKinds : processKinds;
        if (other.length > 0 && rng.chance(0.25)) kinds.push(rng.weighted(other.map((k) => [k, WEIGHTS[k]] as const)));
        for (const kind of kinds) await this.begin(kind);
        await this.sleep(Math.min(rng.between(...this.options.holdMs), Math.max(0, untilMs - clock())));
        await this.healAll();
        if (clock() < untilMs) await this.sleep(Math.min(rng.between(...this.options.gapMs), Math.max(0, untilMs - clock())));
      }
    } finally {
      await this.healAll();
    }
  }

  stop(): void {
    this.stopping = true;
    this.wake?.();
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopping || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  /** Heals every active fault, latest first. */
  async healAll(): Promise<void> {
    while (this.active.length > 0) {
      const fault = this.active.pop() as ActiveFault;
      await fault.heal();
      this.lastHealAt = this.options.clock();
      this.record(fault.kind, 'heal', fault.detail);
    }
  }

  private record(kind: FaultKind, phase: 'start' | 'heal', detail: string): void {
    const at = this.options.clock();
    this.events.push({ at, kind, phase, detail });
    this.options.log(`t=${(at / 1000).toFixed(1)}s ${phase === 'start' ? 'fault' : 'heal '} ${kind}: ${detail}`);
  }

  private async begin(kind: FaultKind): Promise<void> {
    const fault = await this.inflict(kind);
    if (fault === null) return;
    this.active.push(fault);
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
    this.record(kind, 'start', fault.detail);
  }

  private pickNode(leaderFirst: boolean, usable: (n: ChaosNode) => boolean): ChaosNode | null {
    const candidates = this.options.nodes.filter(usable);
    if (candidates.length === 0) return null;
    if (leaderFirst) {
      const leader = this.options.leader();
      const found = candidates.find((n) => n.id === leader);
      if (found !== undefined) return found;
    }
    return this.options.rng.pick(candidates);
  }

  private async inflict(kind: FaultKind): Promise<ActiveFault | null> {
    const { nodes, rng } = this.options;
    const runningNotPaused = (n: ChaosNode): boolean => n.running && !n.paused;
    switch (kind) {
      case 'kill':
      case 'kill-leader': {
        const node = this.pickNode(kind === 'kill-leader', runningNotPaused);
        if (node === null) return null;
        await node.kill9();
        return { kind, detail: `kill -9 ${node.id}`, heal: async () => node.start() };
      }
      case 'kill-all': {
        const victims = nodes.filter((n) => n.running);
        await Promise.all(victims.map((n) => n.kill9()));
        return { kind, detail: `kill -9 ${victims.map((n) => n.id).join(' ')}`, heal: async () => victims.forEach((n) => n.start()) };
      }
      case 'pause':
      case 'pause-leader': {
        const node = this.pickNode(kind === 'pause-leader', runningNotPaused);
        if (node === null) return null;
        node.pause();
        return {
          kind,
          detail: `SIGSTOP ${node.id}`,
          heal: async () => {
            node.resume();
            this.options.afterResume?.(node);
          },
        };
      }
      case 'terminate-leader': {
        // SPEC §7: SIGTERM on the leader hands leadership over, then exits 0. With no leader known
        // any node that has begun its start will do (SIGTERM during a start ends in exit 0 too);
        // one whose Node is still booting could not catch the signal yet.
        const node = this.pickNode(true, (n) => runningNotPaused(n) && n.hasWritten());
        if (node === null) return null;
        const how = await node.terminate(15_000);
        if (how !== 'exit 0') this.options.anomaly(`${node.id} did not exit 0 on SIGTERM (${how})`, node.logTail(15).split('\n'));
        return { kind, detail: `SIGTERM ${node.id} (${how}), restart later`, heal: async () => node.start() };
      }
      case 'transfer': {
        const via = this.pickNode(false, runningNotPaused);
        if (via === null) return null;
        const answer = await request(`${via.apiUrl}/v1/leader/transfer`, { method: 'POST', signal: AbortSignal.timeout(10_000) })
          .then(async (r) => `${r.statusCode} ${(await r.body.text()).slice(0, 120)}`)
          .catch((error: unknown) => (error instanceof Error ? error.message : String(error)));
        return { kind, detail: `POST /v1/leader/transfer via ${via.id}: ${answer}`, heal: async () => undefined };
      }
      case 'partition-leader':
      case 'partition-one': {
        const node = this.pickNode(kind === 'partition-leader', () => true) as ChaosNode;
        const rest = nodes.filter((n) => n !== node);
        return this.partition(kind, [[node], rest], `${node.id} | ${rest.map((n) => n.id).join(' ')}`);
      }
      case 'partition-halves': {
        const shuffled = rng.shuffle(nodes);
        const minority = shuffled.slice(0, Math.floor((nodes.length - 1) / 2));
        const majority = shuffled.slice(minority.length);
        return this.partition(kind, [minority, majority], `${ids(minority)} | ${ids(majority)}`);
      }
      case 'partition-bridge': {
        // Two sides that cannot see each other and one node that sees both.
        const [bridge, ...others] = rng.shuffle(nodes);
        const left = others.slice(0, Math.ceil(others.length / 2));
        const right = others.slice(left.length);
        return this.partition(kind, [left, right], `${ids(left)} | ${ids(right)}, ${bridge.id} sees both`);
      }
      case 'partition-ring': {
        const ring = rng.shuffle(nodes);
        const cut: [ChaosNode, ChaosNode][] = [];
        for (let i = 0; i < ring.length; i++) {
          for (let j = i + 1; j < ring.length; j++) {
            const adjacent = j === i + 1 || (i === 0 && j === ring.length - 1);
            if (!adjacent) cut.push([ring[i], ring[j]]);
          }
        }
        return this.blockPairs(kind, cut, `ring ${ids(ring)} (each sees its neighbours only)`);
      }
      case 'loss': {
        const probability = rng.between(5, 35) / 100;
        for (const node of nodes) {
          for (const other of nodes) {
            if (other === node) continue;
            await iptables(node.host.ns, ['-A', LOSS_CHAIN, '-s', other.host.addr, '-m', 'statistic', '--mode', 'random', '--probability', probability.toFixed(2), '-j', 'DROP']);
          }
        }
        return {
          kind,
          detail: `drop ${Math.round(probability * 100)}% of packets between nodes`,
          heal: async () => {
            for (const node of nodes) await iptables(node.host.ns, ['-F', LOSS_CHAIN]);
          },
        };
      }
      case 'delay': {
        const relays = this.options.relays;
        const slow = rng.chance(0.5) ? rng.pick(nodes) : null;
        const delays = new Map<ChaosRelay, Record<string, number>>();
        const describe: string[] = [];
        for (const relay of relays) {
          const byPeer: Record<string, number> = {};
          for (const node of nodes) {
            if (node.host.addr === relay.host.addr) continue;
            const owner = nodes.find((n) => n.host.addr === relay.host.addr);
            const involved = slow === null || node === slow || owner === slow;
            if (!involved) continue;
            byPeer[node.host.addr] = slow === null ? rng.between(20, 400) : rng.between(200, 1500);
          }
          delays.set(relay, byPeer);
        }
        describe.push(slow === null ? 'every link held 20..400 ms each way' : `links of ${slow.id} held 200..1500 ms each way`);
        await Promise.all([...delays].map(([relay, byPeer]) => relay.setDelays(byPeer)));
        return { kind, detail: describe.join(', '), heal: async () => void (await Promise.all(relays.map((r) => r.setDelays({})))) };
      }
      default: {
        const never: never = kind;
        throw new Error(`unknown fault ${String(never)}`);
      }
    }
  }

  private async partition(kind: FaultKind, sides: readonly (readonly ChaosNode[])[], detail: string): Promise<ActiveFault> {
    const pairs: [ChaosNode, ChaosNode][] = [];
    for (const a of sides[0]) for (const b of sides[1]) pairs.push([a, b]);
    return this.blockPairs(kind, pairs, detail);
  }

  /** Drops everything between each pair, both ways (in each one's INPUT). */
  private async blockPairs(kind: FaultKind, pairs: readonly (readonly [ChaosNode, ChaosNode])[], detail: string): Promise<ActiveFault> {
    const touched = new Set<ChaosNode>();
    for (const [a, b] of pairs) {
      await iptables(a.host.ns, ['-A', PARTITION_CHAIN, '-s', b.host.addr, '-j', 'DROP']);
      await iptables(b.host.ns, ['-A', PARTITION_CHAIN, '-s', a.host.addr, '-j', 'DROP']);
      touched.add(a);
      touched.add(b);
    }
    return {
      kind,
      detail,
      heal: async () => {
        for (const node of touched) await iptables(node.host.ns, ['-F', PARTITION_CHAIN]);
      },
    };
  }
}

function ids(nodes: readonly ChaosNode[]): string {
  return nodes.map((n) => n.id).join(' ');
}

export function isProcessFault(kind: FaultKind): boolean {
  return PROCESS_FAULTS.has(kind);
}
