// Safe bootstrap: every pod that bootstraps does so with the same member set, whatever order the
// pods start in and whatever subset of them DNS shows it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { chooseBootstrapMembers, decideBootstrap, judgeProbes, shouldBootstrap } from '../../src/kubernetes/bootstrap.ts';
import type { Peer } from '../../src/kubernetes/discovery.ts';
import { compareMemberIds, ordinalOf } from '../../src/kubernetes/ordinal.ts';

const peer = (id: string): Peer => ({ id, url: `http://${id}.raftlet.ns.svc:7070` });
const ids = (members: readonly { id: string }[] | null): string[] | null => (members === null ? null : members.map((m) => m.id));

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
}

describe('ordinal order', () => {
  it('parses StatefulSet names and orders numerically, ordinal names before others', () => {
    assert.deepEqual(ordinalOf('raftlet-12'), { prefix: 'raftlet', ordinal: 12 });
    assert.equal(ordinalOf('raftlet'), null);
    assert.equal(ordinalOf('raftlet-01'), null);
    const sorted = ['b', 'raftlet-10', 'a', 'raftlet-2', 'raftlet-0'].sort(compareMemberIds);
    assert.deepEqual(sorted, ['raftlet-0', 'raftlet-2', 'raftlet-10', 'a', 'b']);
  });
});

describe('chooseBootstrapMembers', () => {
  it('waits until EXPECT members are seen', () => {
    assert.equal(chooseBootstrapMembers([peer('raftlet-0'), peer('raftlet-1')], 3), null);
    assert.deepEqual(ids(chooseBootstrapMembers([peer('raftlet-2'), peer('raftlet-0'), peer('raftlet-1')], 3)), ['raftlet-0', 'raftlet-1', 'raftlet-2']);
  });

  it('takes the EXPECT lowest ordinals, as voters with their URLs', () => {
    const members = chooseBootstrapMembers(['raftlet-4', 'raftlet-1', 'raftlet-3', 'raftlet-0', 'raftlet-2'].map(peer), 3);
    assert.deepEqual(members, [
      { id: 'raftlet-0', url: 'http://raftlet-0.raftlet.ns.svc:7070', voter: true },
      { id: 'raftlet-1', url: 'http://raftlet-1.raftlet.ns.svc:7070', voter: true },
      { id: 'raftlet-2', url: 'http://raftlet-2.raftlet.ns.svc:7070', voter: true },
    ]);
  });

  it('does not pick {1,2,3} while raftlet-0 is not yet in DNS', () => {
    assert.equal(chooseBootstrapMembers(['raftlet-1', 'raftlet-2', 'raftlet-3'].map(peer), 3), null);
  });

  it('sorts 10 after 9 (numeric, not lexical)', () => {
    const all = Array.from({ length: 11 }, (_, i) => peer(`raftlet-${i}`)).reverse();
    assert.deepEqual(ids(chooseBootstrapMembers(all, 10))?.at(-1), 'raftlet-9');
  });

  it('puts names without ordinals after ordinal names, lexically', () => {
    assert.deepEqual(ids(chooseBootstrapMembers(['zeta', 'alpha', 'raftlet-0'].map(peer), 2)), ['raftlet-0', 'alpha']);
    assert.deepEqual(ids(chooseBootstrapMembers(['c', 'a', 'b'].map(peer), 3)), ['a', 'b', 'c']);
  });

  it('counts a pod listed twice once', () => {
    assert.equal(chooseBootstrapMembers([peer('raftlet-0'), peer('raftlet-0'), peer('raftlet-1')], 3), null);
  });

  it('refuses a nonsensical EXPECT', () => {
    assert.equal(chooseBootstrapMembers([peer('raftlet-0')], 0), null);
  });
});

describe('shouldBootstrap', () => {
  const three = ['raftlet-0', 'raftlet-1', 'raftlet-2'];

  it('all 6 start orders of 3 pods give one and the same bootstrap set, chosen by every pod', () => {
    const decisions = new Map<string, string>();
    for (const order of permutations(three)) {
      // Pods start one by one; each pod, once started, sees the pods started so far.
      const started: string[] = [];
      for (const pod of order) {
        started.push(pod);
        for (const self of started) {
          const members = shouldBootstrap(self, started.map(peer), 3, false);
          if (members === null) continue;
          decisions.set(`${order.join(',')}:${self}`, ids(members)?.join(',') ?? '');
        }
      }
      // In every order, every pod ends up deciding to bootstrap.
      for (const self of three) assert.ok(decisions.has(`${order.join(',')}:${self}`), `${self} in order ${order.join(',')}`);
    }
    assert.equal(decisions.size, 6 * 3);
    assert.deepEqual(new Set(decisions.values()), new Set(['raftlet-0,raftlet-1,raftlet-2']));
  });

  it('a pod outside the bootstrap set waits to be added', () => {
    const five = ['raftlet-0', 'raftlet-1', 'raftlet-2', 'raftlet-3', 'raftlet-4'].map(peer);
    assert.equal(shouldBootstrap('raftlet-3', five, 3, false), null);
    assert.deepEqual(ids(shouldBootstrap('raftlet-1', five, 3, false)), three);
    const decision = decideBootstrap({ selfId: 'raftlet-4', discovered: five, expect: 3, hasData: false });
    assert.equal(decision.kind, 'wait');
    assert.match(decision.kind === 'wait' ? decision.reason : '', /not in the bootstrap set/);
  });

  it('a pod with data never bootstraps again', () => {
    assert.equal(shouldBootstrap('raftlet-0', three.map(peer), 3, true), null);
    const decision = decideBootstrap({ selfId: 'raftlet-0', discovered: three.map(peer), expect: 3, hasData: true });
    assert.match(decision.kind === 'wait' ? decision.reason : '', /never bootstraps again/);
  });

  it('a pod that sees an existing cluster waits for its leader', () => {
    assert.equal(shouldBootstrap('raftlet-0', three.map(peer), 3, false, true), null);
  });

  it('explains what it waits for', () => {
    const decision = decideBootstrap({ selfId: 'raftlet-1', discovered: [peer('raftlet-1')], expect: 3, hasData: false });
    assert.match(decision.kind === 'wait' ? decision.reason : '', /RAFTLET_BOOTSTRAP_EXPECT=3 .*seen 1: raftlet-1/);
  });

  it('property: whatever subsets of a StatefulSet pods see, all bootstrap sets are equal', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 0, max: 4 }),
        fc.array(fc.array(fc.nat({ max: 8 }), { maxLength: 9 }), { minLength: 1, maxLength: 8 }),
        (expect, extra, views) => {
          const replicas = expect + extra;
          const chosen = new Set<string>();
          for (const view of views) {
            const seen = [...new Set(view.filter((n) => n < replicas))].map((n) => peer(`raftlet-${n}`));
            for (const self of seen) {
              const members = shouldBootstrap(self.id, seen, expect, false);
              if (members !== null) chosen.add(ids(members)?.join(',') ?? '');
            }
          }
          assert.ok(chosen.size <= 1, `different bootstrap sets: ${[...chosen].join(' | ')}`);
          if (chosen.size === 1) {
            assert.deepEqual([...chosen][0], Array.from({ length: expect }, (_, i) => `raftlet-${i}`).join(','));
          }
        },
      ),
    );
  });
});

describe('seed-only bootstrap and the clusterSeen guard (issue 11)', () => {
  const three = ['raftlet-0', 'raftlet-1', 'raftlet-2'].map(peer);

  it('only the lowest ordinal of the bootstrap set writes the first configuration', () => {
    assert.equal(decideBootstrap({ selfId: 'raftlet-0', discovered: three, expect: 3, hasData: false, seedOnly: true }).kind, 'bootstrap');
    for (const self of ['raftlet-1', 'raftlet-2']) {
      const decision = decideBootstrap({ selfId: self, discovered: three, expect: 3, hasData: false, seedOnly: true });
      assert.equal(decision.kind, 'wait');
      assert.match(decision.kind === 'wait' ? decision.reason : '', /raftlet-0 writes the first configuration/);
    }
  });

  it('a cluster seen by the seed keeps it from bootstrapping', () => {
    const decision = decideBootstrap({ selfId: 'raftlet-0', discovered: three, expect: 3, hasData: false, clusterSeen: true, seedOnly: true });
    assert.equal(decision.kind, 'wait');
  });

  it('judges the peers\' answers: a configuration or a leader anywhere means a cluster exists', () => {
    const pristine = (id: string) => ({ id, answered: true as const, members: 0, leader: null, term: 0, lastLogIndex: 0 });
    const members = ['raftlet-0', 'raftlet-1', 'raftlet-2'];
    assert.deepEqual(judgeProbes([pristine('raftlet-1'), pristine('raftlet-2')], members, 'raftlet-0'), { kind: 'none' });
    // A pristine peer that granted a vote has a term but no cluster.
    assert.deepEqual(judgeProbes([{ ...pristine('raftlet-1'), term: 3 }, pristine('raftlet-2')], members, 'raftlet-0'), { kind: 'none' });
    const withConfig = judgeProbes([pristine('raftlet-1'), { id: 'raftlet-2', answered: true, members: 3, leader: null, term: 7, lastLogIndex: 40 }], members, 'raftlet-0');
    assert.equal(withConfig.kind, 'exists');
    assert.match(withConfig.kind === 'exists' ? withConfig.reason : '', /raftlet-2 already belongs to a cluster \(3 member\(s\), leader unknown, term 7\)/);
    assert.equal(judgeProbes([{ id: 'raftlet-1', answered: true, members: 0, leader: 'raftlet-2', term: 7, lastLogIndex: 0 }], members, 'raftlet-0').kind, 'exists');
    // A cluster anywhere outweighs silence, and a peer beyond the members counts too.
    assert.equal(judgeProbes([{ id: 'raftlet-1', answered: false, error: 'x' }, { id: 'raftlet-4', answered: true, members: 1, leader: null, term: 1, lastLogIndex: 1 }], members, 'raftlet-0').kind, 'exists');
  });

  it('needs a majority of the new members (itself included) known to hold nothing', () => {
    const members = ['raftlet-0', 'raftlet-1', 'raftlet-2'];
    const silent = (id: string) => ({ id, answered: false as const, error: 'connection refused' });
    const pristine = (id: string) => ({ id, answered: true as const, members: 0, leader: null, term: 0, lastLogIndex: 0 });
    const none = judgeProbes([silent('raftlet-1'), silent('raftlet-2')], members, 'raftlet-0');
    assert.equal(none.kind, 'unknown');
    assert.match(none.kind === 'unknown' ? none.reason : '', /1 of 3 members are known to hold no cluster, 2 needed; no answer from raftlet-1 \(connection refused\), raftlet-2/);
    assert.equal(judgeProbes([pristine('raftlet-1'), silent('raftlet-2')], members, 'raftlet-0').kind, 'none');
    // Peers outside the new configuration do not make up a majority of it.
    assert.equal(judgeProbes([pristine('raftlet-3'), pristine('raftlet-4'), silent('raftlet-1'), silent('raftlet-2')], members, 'raftlet-0').kind, 'unknown');
    assert.equal(judgeProbes([], ['solo'], 'solo').kind, 'none');
  });

  it('with a static list, a peer that only wrote the same first entry is forming the same cluster, not running another', () => {
    const members = ['node-1', 'node-2', 'node-3'];
    const fresh = { id: 'node-2', answered: true as const, members: 3, leader: null, term: 1, lastLogIndex: 1 };
    assert.equal(judgeProbes([fresh], members, 'node-1').kind, 'exists', 'seed-only bootstrap: any configuration is a cluster');
    assert.equal(judgeProbes([fresh], members, 'node-1', { peersBootstrapToo: true }).kind, 'none');
    for (const running of [{ ...fresh, term: 2 }, { ...fresh, lastLogIndex: 2 }, { ...fresh, leader: 'node-3' }]) {
      assert.equal(judgeProbes([running], members, 'node-1', { peersBootstrapToo: true }).kind, 'exists', JSON.stringify(running));
    }
  });
});
