import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { plainLine, redrawFrame, renderChanges, renderTable } from '../../src/cli/table.ts';
import type { StatusRow } from '../../src/cli/table.ts';

function row(id: string, patch: Partial<StatusRow> = {}): StatusRow {
  return {
    id, apiUrl: `http://127.0.0.1:${id === 'node-1' ? 7071 : 7074}`, state: 'up', role: 'follower', term: 3,
    leader: 'node-1', commitIndex: 12, note: null, ...patch,
  };
}

describe('status table: terminal', () => {
  it('aligns a header and one line per node', () => {
    const lines = renderTable([
      row('node-1', { role: 'leader' }),
      row('node-2', { term: 10, commitIndex: 9 }),
      row('node-3', { state: 'down', note: 'exit code 3' }),
    ]);
    assert.deepEqual(lines, [
      'ID      ROLE                TERM  LEADER  COMMIT  API',
      'node-1  leader              3     node-1  12      http://127.0.0.1:7071',
      'node-2  follower            10    node-1  9       http://127.0.0.1:7074',
      'node-3  down (exit code 3)  -     -       -       http://127.0.0.1:7074',
    ]);
  });

  it('shows no stale term or leader for a node that does not answer', () => {
    const [, line] = renderTable([row('node-2', { state: 'unreachable' })]);
    assert.match(line, /^node-2 +unreachable +- +- +- +http/);
    assert.match(renderTable([row('node-2', { state: 'starting', leader: null, term: null })])[1], /starting/);
    assert.match(renderTable([row('node-2', { leader: null })])[1], /follower +3 +- +12/);
  });

  it('redraws the previous frame in place: cursor up, rewrite and clear each line, clear below', () => {
    assert.equal(redrawFrame(['a', 'b'], 0, null), '\ra\x1b[K\n\rb\x1b[K\n\x1b[J');
    assert.equal(redrawFrame(['a', 'b'], 3, null), '\x1b[3A\ra\x1b[K\n\rb\x1b[K\n\x1b[J');
  });

  it('cuts lines to the terminal width so that none wraps', () => {
    assert.equal(redrawFrame(['0123456789'], 0, 6), '\r01234\x1b[K\n\x1b[J');
    assert.equal(redrawFrame(['01234'], 0, 6), '\r01234\x1b[K\n\x1b[J');
  });
});

describe('status table: plain output', () => {
  it('describes each node in one line', () => {
    assert.equal(plainLine(row('node-1', { role: 'leader' })), 'node-1 leader term=3 leader=node-1 commit=12');
    assert.equal(plainLine(row('node-2', { leader: null, term: 4, role: 'candidate' })), 'node-2 candidate term=4 leader=- commit=12');
    assert.equal(plainLine(row('node-3', { state: 'down', note: 'signal SIGKILL' })), 'node-3 down (signal SIGKILL)');
    assert.equal(plainLine(row('node-3', { state: 'stopped' })), 'node-3 stopped');
  });

  it('prints every node first, then only the nodes whose line changed', () => {
    const first = [row('node-1', { state: 'starting' }), row('node-2', { state: 'starting' })];
    assert.deepEqual(renderChanges(null, first), ['node-1 starting', 'node-2 starting']);
    assert.deepEqual(renderChanges(first, first), []);
    const second = [row('node-1', { role: 'leader' }), row('node-2', { state: 'starting' })];
    assert.deepEqual(renderChanges(first, second), ['node-1 leader term=3 leader=node-1 commit=12']);
    // A new poll with the same values is no change, even though the row object is new.
    assert.deepEqual(renderChanges(second, second.map((r) => ({ ...r }))), []);
  });
});
