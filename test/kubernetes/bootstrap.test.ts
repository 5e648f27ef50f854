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

  it('judges the peers\' answers: a configuration or a leader anywhere means a cluster exists; silence means ask again', () => {
    const pristine = (id: string) => ({ id, answered: true as const, members: 0, leader: null, term: 0 });
    assert.deepEqual(judgeProbes([pristine('raftlet-1'), pristine('raftlet-2')]), { kind: 'none' });
    assert.deepEqual(judgeProbes([]), { kind: 'none' });
    // A pristine peer that granted a vote has a term but no cluster.
    assert.deepEqual(judgeProbes([{ ...pristine('raftlet-1'), term: 3 }]), { kind: 'none' });
    const withConfig = judgeProbes([pristine('raftlet-1'), { id: 'raftlet-2', answered: true, members: 3, leader: null, term: 7 }]);
    assert.equal(withConfig.kind, 'exists');
    assert.match(withConfig.kind === 'exists' ? withConfig.reason : '', /raftlet-2 already belongs to a cluster \(3 member\(s\), leader unknown, term 7\)/);
    assert.equal(judgeProbes([{ id: 'raftlet-1', answered: true, members: 0, leader: 'raftlet-2', term: 7 }]).kind, 'exists');
    const silent = judgeProbes([pristine('raftlet-1'), { id: 'raftlet-2', answered: false, error: 'connection refused' }]);
    assert.equal(silent.kind, 'unknown');
    assert.match(silent.kind === 'unknown' ? silent.reason : '', /raftlet-2 \(connection refused\) did not answer/);
    // A cluster anywhere outweighs a silent peer.
    assert.equal(judgeProbes([{ id: 'raftlet-1', answered: false, error: 'x' }, { id: 'raftlet-2', answered: true, members: 1, leader: null, term: 1 }]).kind, 'exists');
  });
});
