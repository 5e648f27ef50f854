// The checker on hand-written histories whose verdict is known, and its budget.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HistoryBuilder } from './history-builder.ts';
import { checkHistory, checkKey, type KeyVerdict } from './kv-model.ts';
import { checkLinearizable, type Model, type Operation } from './linearizability.ts';

function verdictOf(build: (h: HistoryBuilder) => void): KeyVerdict {
  const h = new HistoryBuilder();
  build(h);
  return checkKey(h.ops);
}

function assertOk(build: (h: HistoryBuilder) => void): void {
  const v = verdictOf(build);
  assert.equal(v.verdict, 'ok', JSON.stringify(v));
}

function assertIllegal(build: (h: HistoryBuilder) => void, stuckId?: number): Extract<KeyVerdict, { verdict: 'illegal' }> {
  const v = verdictOf(build);
  assert.equal(v.verdict, 'illegal', JSON.stringify(v));
  if (v.verdict !== 'illegal') throw new Error('unreachable');
  if (stuckId !== undefined) assert.equal(v.stuck.id, stuckId, `stuck at ${v.stuck.id}, expected ${stuckId}`);
  return v;
}

describe('linearizable histories', () => {
  it('an empty history', () => assertOk(() => undefined));

  it('sequential put then get', () =>
    assertOk((h) => {
      h.put('a', 0, 10, 1);
      h.get(20, 30, ['a', 1]);
    }));

  it('a read concurrent with a write may see either value', () => {
    for (const seen of [['a', 1], ['b', 2]] as const) {
      assertOk((h) => {
        h.put('a', 0, 10, 1);
        h.put('b', 20, 60, 2);
        h.get(30, 40, seen);
      });
    }
  });

  it('concurrent writes take effect in either order, and reads agree on it', () =>
    assertOk((h) => {
      h.put('a', 0, 50, 2, 'c1');
      h.put('b', 0, 50, 1, 'c2');
      h.get(60, 70, ['a', 2]);
      h.get(80, 90, ['a', 2]);
    }));

  it('a write with a lost answer that a later read sees', () =>
    assertOk((h) => {
      h.put('a', 0, 10, 1);
      h.put('b', 20, 30, 'unknown');
      h.get(1000, 1010, ['b', 7]);
      h.get(1020, 1030, ['b', 7]);
    }));

  it('a write with a lost answer that never took effect', () =>
    assertOk((h) => {
      h.put('a', 0, 10, 1);
      h.put('b', 20, 30, 'unknown');
      h.get(1000, 1010, ['a', 1]);
    }));

  it('a delete with a lost answer explains a later 404', () =>
    assertOk((h) => {
      h.put('a', 0, 10, 1);
      h.del(20, 30, 'unknown');
      h.get(1000, 1010, null);
    }));

  it('a CAS on the current modIndex succeeds, on an old one fails', () =>
    assertOk((h) => {
      h.put('a', 0, 10, 1);
      h.cas('b', 1, 20, 30, 2);
      h.cas('c', 1, 40, 50, 412);
      h.get(60, 70, ['b', 2]);
    }));

  it('a failed CAS explained by a concurrent write', () =>
    assertOk((h) => {
      h.put('a', 0, 10, 1);
      h.put('b', 20, 80, 2, 'c2');
      h.cas('c', 1, 30, 40, 412, 'c1');
      h.get(90, 100, ['b', 2]);
    }));

  it('create-only succeeds on an absent key and fails on a present one', () =>
    assertOk((h) => {
      h.create('a', 0, 10, 1);
      h.create('b', 20, 30, 412);
      h.del(40, 50, { deleted: true, index: 3 });
      h.create('c', 60, 70, 4);
      h.get(80, 90, ['c', 4]);
    }));

  it('DELETE of an absent key answers deleted:false', () =>
    assertOk((h) => {
      h.del(0, 10, { deleted: false, index: 1 });
      h.put('a', 20, 30, 2);
      h.del(40, 50, { deleted: true, index: 3 }, 2);
      h.get(60, 70, null);
    }));

  it('operations that certainly failed are ignored', () =>
    assertOk((h) => {
      h.put('a', 0, 10, 1);
      h.put('b', 20, 30, 'failed');
      h.get(40, 50, ['a', 1]);
    }));

  it('a CAS whose answer was lost, decided by the state where it lands', () =>
    assertOk((h) => {
      h.put('a', 0, 10, 1);
      h.cas('b', 1, 20, 30, 'unknown');
      h.put('c', 40, 50, 3);
      h.get(60, 70, ['c', 3]);
    }));
});

describe('non-linearizable histories', () => {
  it('a stale read: an older value after a newer write completed', () => {
    const v = assertIllegal((h) => {
      h.put('a', 0, 10, 1);
      h.put('b', 20, 30, 2);
      h.get(40, 50, ['a', 1]);
    }, 2);
    assert.equal(v.state, 1, 'the register held the write of b (op 1) there');
    assert.deepEqual(v.tail.map((op) => op.id), [0, 1]);
  });

  it('a lost write: 404 after an acknowledged PUT and no delete', () => {
    assertIllegal((h) => {
      h.put('a', 0, 10, 1);
      h.get(20, 30, null);
    }, 1);
  });

  it('a lost CAS: the value before an acknowledged CAS is read after it', () => {
    assertIllegal((h) => {
      h.put('a', 0, 10, 1);
      h.cas('b', 1, 20, 30, 2);
      h.get(40, 50, ['a', 1]);
    }, 2);
  });

  it('a CAS that succeeded although the modIndex did not match', () => {
    assertIllegal((h) => {
      h.del(0, 10, { deleted: false, index: 2 });
      h.put('a', 20, 30, 3);
      h.cas('b', 2, 40, 50, 4);
    }, 2);
  });

  it('a CAS refused although the modIndex matched and nothing else wrote', () => {
    assertIllegal((h) => {
      h.put('a', 0, 10, 1);
      h.cas('b', 1, 20, 30, 412);
    }, 1);
  });

  it('a read of a value never written', () => {
    assertIllegal((h) => {
      h.put('a', 0, 10, 1);
      h.get(20, 30, ['zzz', 1]);
    }, 1);
  });

  it('a read of a value whose write certainly failed', () => {
    assertIllegal((h) => {
      h.put('a', 0, 10, 'failed');
      h.get(20, 30, ['a', 1]);
    }, 1);
  });

  it('a write visible, then invisible again', () => {
    assertIllegal((h) => {
      h.put('a', 0, 100, 1, 'c1');
      h.get(10, 20, ['a', 1], 'c2');
      h.get(30, 40, null, 'c2');
    }, 2);
  });

  it('a value read with the wrong modIndex', () => {
    assertIllegal((h) => {
      h.put('a', 0, 10, 3);
      h.get(20, 30, ['a', 4]);
    }, 1);
  });

  it('a read that sees a write invoked after the read returned', () => {
    assertIllegal((h) => {
      h.get(0, 10, ['b', 1]);
      h.put('b', 20, 30, 1);
    }, 0);
  });

  it('deleted:true on a key that was absent', () => {
    assertIllegal((h) => {
      h.del(0, 10, { deleted: true, index: 1 });
    }, 0);
  });

  it('an unknown write seen, then its predecessor again', () => {
    assertIllegal((h) => {
      h.put('a', 0, 10, 1);
      h.put('b', 20, 30, 'unknown');
      h.get(40, 50, ['b', 2]);
      h.get(60, 70, ['a', 1]);
    }, 3);
  });

  it('keys are independent: each is judged on its own', () => {
    const good = new HistoryBuilder('good');
    good.put('a', 0, 10, 1);
    good.get(20, 30, ['a', 1]);
    const bad = new HistoryBuilder('bad');
    bad.put('x', 0, 10, 2);
    bad.get(20, 30, null);
    const verdicts = checkHistory([...good.ops, ...bad.ops.map((op) => ({ ...op, id: op.id + 100 }))]);
    assert.equal(verdicts.get('good')?.verdict, 'ok');
    assert.equal(verdicts.get('bad')?.verdict, 'illegal');
  });
});

describe('the search budget', () => {
  // A counter with increments whose answers were lost, and a read that nothing explains: without
  // classes (the counter declares none) the search must try every subset of the increments.
  const counter: Model<number, 'inc' | 'read', number> = {
    init: 0,
    key: (s) => s,
    step: (s, input, output) => (input === 'inc' ? s + 1 : output === s ? s : undefined),
  };
  function explosive(increments: number): Operation<'inc' | 'read', number>[] {
    const ops: Operation<'inc' | 'read', number>[] = [];
    for (let i = 0; i < increments; i++) ops.push({ id: i, call: i, ret: Infinity, input: 'inc', output: null });
    for (let i = 0; i < increments; i++) ops.push({ id: 1000 + i, call: 1000 + i * 10, ret: 1005 + i * 10, input: 'read', output: -1 - (i % 2) });
    return ops;
  }

  it('reports undecided, never ok, when the step budget runs out', () => {
    const result = checkLinearizable(counter, explosive(16), { maxSteps: 2_000 });
    assert.equal(result.verdict, 'undecided');
    if (result.verdict === 'undecided') assert.match(result.reason, /step budget of 2000 exhausted/);
  });

  it('reports undecided when the memo budget runs out', () => {
    const result = checkLinearizable(counter, explosive(16), { maxMemo: 500 });
    assert.equal(result.verdict, 'undecided');
    if (result.verdict === 'undecided') assert.match(result.reason, /memo budget of 500/);
  });

  it('reports undecided when the memo\'s characters run out (before the memory does)', () => {
    const result = checkLinearizable(counter, explosive(16), { maxMemoChars: 5_000 });
    assert.equal(result.verdict, 'undecided');
    if (result.verdict === 'undecided') assert.match(result.reason, /memo budget of 5000 characters exhausted/);
  });

  it('decides the same history with enough budget', () => {
    assert.equal(checkLinearizable(counter, explosive(8)).verdict, 'illegal');
  });

  it('keeps many lost-answer writes and deletes of the KV model cheap (one class each)', () => {
    const h = new HistoryBuilder();
    for (let i = 0; i < 100; i++) {
      h.put(`u${i}`, i * 2, i * 2 + 1, 'unknown', `c${i}`);
      h.del(i * 2 + 1, i * 2 + 2, 'unknown', undefined, `d${i}`);
    }
    h.put('a', 300, 310, 500);
    h.get(320, 330, ['never', 5]);
    const verdict = checkKey(h.ops, { maxSteps: 100_000 });
    assert.equal(verdict.verdict, 'illegal');
    assert.ok(verdict.steps < 10_000, `took ${verdict.steps} steps`);
  });
});

describe('the search engine with another model', () => {
  // A counter with increments and reads, to show the engine knows nothing of registers.
  const counter: Model<number, 'inc' | 'read', number> = {
    init: 0,
    key: (s) => s,
    step: (s, input, output) => (input === 'inc' ? s + 1 : output === s ? s : undefined),
  };

  it('finds the order in which two concurrent increments explain two reads', () => {
    const result = checkLinearizable(counter, [
      { id: 1, call: 0, ret: 100, input: 'inc', output: 0 },
      { id: 2, call: 0, ret: 100, input: 'inc', output: 0 },
      { id: 3, call: 10, ret: 20, input: 'read', output: 1 },
      { id: 4, call: 110, ret: 120, input: 'read', output: 2 },
    ]);
    assert.equal(result.verdict, 'ok');
    if (result.verdict === 'ok') assert.deepEqual(result.order.slice(-1), [4]);
  });

  it('refuses a read of 2 before the second increment was invoked', () => {
    const result = checkLinearizable(counter, [
      { id: 1, call: 0, ret: 10, input: 'inc', output: 0 },
      { id: 2, call: 30, ret: 40, input: 'read', output: 2 },
      { id: 3, call: 50, ret: 60, input: 'inc', output: 0 },
    ]);
    assert.equal(result.verdict, 'illegal');
  });

  it('refuses a history with an If-Match no answer shows, which it could not judge exactly', () => {
    const h = new HistoryBuilder();
    h.put('a', 0, 10, 'unknown');
    h.cas('b', 7, 20, 30, 9);
    assert.throws(() => checkKey(h.ops), /If-Match 7, an index no answer in the history shows/);
  });

  it('refuses a history whose operations return before they are invoked', () => {
    assert.throws(() => checkLinearizable(counter, [{ id: 1, call: 10, ret: 5, input: 'inc', output: 0 }]), /returns \(5\) before/);
  });

});
