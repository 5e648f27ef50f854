import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RaftletMetrics, exportedRole } from '../../src/metrics/metrics.ts';
import type { FsyncKind, ProposalResult, RpcKind } from '../../src/metrics/metrics.ts';
import type { Membership, RaftEvent } from '../../src/raft/types.ts';
import { parseSamples, sampleValue } from './exposition.ts';

const SPEC_METRICS = [
  'raftlet_term', 'raftlet_is_leader', 'raftlet_has_leader', 'raftlet_role', 'raftlet_leader_changes_total',
  'raftlet_elections_started_total', 'raftlet_elections_won_total', 'raftlet_commit_index', 'raftlet_applied_index',
  'raftlet_proposals_total', 'raftlet_proposal_duration_seconds', 'raftlet_label_updates_total',
];
const EXTRA_METRICS = [
  'raftlet_follower_lag_entries', 'raftlet_rpc_duration_seconds', 'raftlet_rpc_failures_total', 'raftlet_fsync_duration_seconds',
  'raftlet_snapshots_total', 'raftlet_snapshot_duration_seconds', 'raftlet_discovery_lookups_total', 'raftlet_discovery_members',
  'raftlet_peer_messages_dropped_total', 'raftlet_members', 'raftlet_last_log_index',
];

const MEMBERS: Membership = [
  { id: 'raftlet-0', url: 'http://a:7070', voter: true },
  { id: 'raftlet-1', url: 'http://b:7070', voter: true },
  { id: 'raftlet-2', url: 'http://c:7070', voter: true },
];

function fresh(): RaftletMetrics {
  // Default metrics are off where they are not under test: they install process-wide observers.
  return new RaftletMetrics({ defaultMetrics: false });
}

async function value(metrics: RaftletMetrics, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  return sampleValue(await metrics.render(), name, labels);
}

async function roleValues(metrics: RaftletMetrics): Promise<Record<string, number | undefined>> {
  const text = await metrics.render();
  return {
    leader: sampleValue(text, 'raftlet_role', { role: 'leader' }),
    follower: sampleValue(text, 'raftlet_role', { role: 'follower' }),
    candidate: sampleValue(text, 'raftlet_role', { role: 'candidate' }),
  };
}

function feed(metrics: RaftletMetrics, events: readonly RaftEvent[]): void {
  for (const event of events) metrics.onRaftEvent(event);
}

describe('RaftletMetrics registry', () => {
  it('exports every metric of SPEC §6 and the extra ones, each with # HELP and # TYPE', async () => {
    const text = await new RaftletMetrics().render();
    for (const name of [...SPEC_METRICS, ...EXTRA_METRICS]) {
      assert.match(text, new RegExp(`^# HELP ${name} \\S`, 'm'), `${name} has no HELP line`);
      assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), `${name} has no TYPE line`);
    }
    assert.match(text, /^# TYPE raftlet_proposal_duration_seconds histogram$/m);
    assert.match(text, /^# TYPE raftlet_leader_changes_total counter$/m);
    // prom-client's default process metrics, on this registry.
    assert.match(text, /^process_cpu_seconds_total /m);
    assert.match(text, /^process_resident_memory_bytes /m);
    assert.match(text, /^nodejs_eventloop_lag_p99_seconds /m);
  });

  it('starts as a follower in term 0 without a leader, fixed label values present at 0', async () => {
    const metrics = fresh();
    const text = await metrics.render();
    assert.equal(sampleValue(text, 'raftlet_term'), 0);
    assert.equal(sampleValue(text, 'raftlet_is_leader'), 0);
    assert.equal(sampleValue(text, 'raftlet_has_leader'), 0);
    assert.deepEqual(await roleValues(metrics), { leader: 0, follower: 1, candidate: 0 });
    for (const result of ['ok', 'precondition_failed', 'no_leader', 'timeout', 'error']) {
      assert.equal(sampleValue(text, 'raftlet_proposals_total', { result }), 0, result);
    }
    for (const result of ['ok', 'conflict', 'fenced', 'forbidden', 'throttled', 'not_found', 'error']) {
      assert.equal(sampleValue(text, 'raftlet_label_updates_total', { result }), 0, result);
    }
    assert.equal(sampleValue(text, 'raftlet_rpc_failures_total', { kind: 'messages' }), 0);
    assert.equal(sampleValue(text, 'raftlet_fsync_duration_seconds_count', { kind: 'wal' }), 0);
  });

  it('keeps each instance separate (one registry per node)', async () => {
    const a = fresh();
    const b = fresh();
    a.onRaftEvent({ kind: 'termChanged', term: 7 });
    assert.equal(await value(a, 'raftlet_term'), 7);
    assert.equal(await value(b, 'raftlet_term'), 0);
  });
});

describe('RaftletMetrics.onRaftEvent', () => {
  it('follows an election from follower through pre-candidate and candidate to leader', async () => {
    const metrics = fresh();
    feed(metrics, [{ kind: 'roleChanged', role: 'precandidate', term: 1 }]);
    assert.deepEqual(await roleValues(metrics), { leader: 0, follower: 0, candidate: 1 });
    feed(metrics, [
      { kind: 'termChanged', term: 2 },
      { kind: 'roleChanged', role: 'candidate', term: 2 },
      { kind: 'electionStarted', term: 2 },
    ]);
    let text = await metrics.render();
    assert.equal(sampleValue(text, 'raftlet_term'), 2);
    assert.equal(sampleValue(text, 'raftlet_elections_started_total'), 1);
    assert.equal(sampleValue(text, 'raftlet_has_leader'), 0);
    feed(metrics, [
      { kind: 'electionWon', term: 2 },
      { kind: 'roleChanged', role: 'leader', term: 2 },
      { kind: 'leaderChanged', leader: 'raftlet-0', term: 2 },
    ]);
    text = await metrics.render();
    assert.equal(sampleValue(text, 'raftlet_elections_won_total'), 1);
    assert.equal(sampleValue(text, 'raftlet_is_leader'), 1);
    assert.equal(sampleValue(text, 'raftlet_has_leader'), 1);
    assert.equal(sampleValue(text, 'raftlet_leader_changes_total'), 1);
    assert.deepEqual(await roleValues(metrics), { leader: 1, follower: 0, candidate: 0 });

    feed(metrics, [
      { kind: 'steppedDown', reason: 'higherTerm', term: 3 },
      { kind: 'termChanged', term: 3 },
      { kind: 'roleChanged', role: 'follower', term: 3 },
    ]);
    text = await metrics.render();
    assert.equal(sampleValue(text, 'raftlet_is_leader'), 0);
    // The leader it knew belongs to term 2: it knows no leader in term 3 even without a leaderChanged(null).
    assert.equal(sampleValue(text, 'raftlet_has_leader'), 0);
    assert.equal(sampleValue(text, 'raftlet_term'), 3);
  });

  it('counts a leader change per new (leader, term) pair, not per event', async () => {
    const metrics = fresh();
    const steps: [RaftEvent, number, number][] = [
      // event, expected leader changes, expected has_leader
      [{ kind: 'leaderChanged', leader: 'raftlet-1', term: 1 }, 1, 1],
      [{ kind: 'leaderChanged', leader: null, term: 1 }, 1, 0], // lost sight of it
      [{ kind: 'leaderChanged', leader: 'raftlet-1', term: 1 }, 1, 1], // the same leader again: no change
      [{ kind: 'leaderChanged', leader: 'raftlet-1', term: 1 }, 1, 1], // a duplicate event
      [{ kind: 'termChanged', term: 2 }, 1, 0],
      [{ kind: 'leaderChanged', leader: 'raftlet-1', term: 2 }, 2, 1], // re-elected in a new term: a change
      [{ kind: 'leaderChanged', leader: 'raftlet-2', term: 3 }, 3, 1], // leadership transfer
      [{ kind: 'leaderChanged', leader: null, term: 4 }, 3, 0],
    ];
    for (const [event, changes, hasLeader] of steps) {
      metrics.onRaftEvent(event);
      const text = await metrics.render();
      assert.equal(sampleValue(text, 'raftlet_leader_changes_total'), changes, JSON.stringify(event));
      assert.equal(sampleValue(text, 'raftlet_has_leader'), hasLeader, JSON.stringify(event));
    }
    assert.equal(await value(metrics, 'raftlet_term'), 4);
  });

  it('never lowers the term, whatever order the events of a batch come in', async () => {
    const metrics = fresh();
    feed(metrics, [{ kind: 'leaderChanged', leader: 'raftlet-1', term: 5 }, { kind: 'termChanged', term: 4 }]);
    assert.equal(await value(metrics, 'raftlet_term'), 5);
    assert.equal(await value(metrics, 'raftlet_has_leader'), 1);
  });

  it('takes the membership from membershipChanged events', async () => {
    const metrics = fresh();
    metrics.onRaftEvent({ kind: 'membershipChanged', members: [...MEMBERS, { id: 'raftlet-3', url: 'http://d:7070', voter: false }], index: 4 });
    const text = await metrics.render();
    assert.equal(sampleValue(text, 'raftlet_members', { voter: 'true' }), 3);
    assert.equal(sampleValue(text, 'raftlet_members', { voter: 'false' }), 1);
  });

  it('maps a pre-candidate to candidate', () => {
    assert.equal(exportedRole('precandidate'), 'candidate');
    assert.equal(exportedRole('candidate'), 'candidate');
    assert.equal(exportedRole('leader'), 'leader');
    assert.equal(exportedRole('follower'), 'follower');
  });
});

describe('RaftletMetrics.syncStatus', () => {
  it('sets everything from a status and counts the leader once however often it is called', async () => {
    const metrics = fresh();
    const status = { role: 'follower' as const, term: 9, leader: 'raftlet-2', members: MEMBERS, commitIndex: 40, appliedIndex: 38, lastLogIndex: 41 };
    metrics.syncStatus(status);
    metrics.syncStatus(status);
    const text = await metrics.render();
    assert.equal(sampleValue(text, 'raftlet_term'), 9);
    assert.equal(sampleValue(text, 'raftlet_has_leader'), 1);
    assert.equal(sampleValue(text, 'raftlet_leader_changes_total'), 1);
    assert.equal(sampleValue(text, 'raftlet_commit_index'), 40);
    assert.equal(sampleValue(text, 'raftlet_applied_index'), 38);
    assert.equal(sampleValue(text, 'raftlet_last_log_index'), 41);
    assert.equal(sampleValue(text, 'raftlet_members', { voter: 'true' }), 3);
  });
});

describe('RaftletMetrics follower lag', () => {
  it('exports lag on the leader only, and removes series of peers that are gone', async () => {
    const metrics = fresh();
    metrics.setMembers(MEMBERS);
    metrics.setFollowerLag(new Map([['raftlet-1', 5]]));
    assert.equal(await value(metrics, 'raftlet_follower_lag_entries', { peer: 'raftlet-1' }), undefined, 'a follower exports no lag');

    feed(metrics, [{ kind: 'roleChanged', role: 'leader', term: 1 }]);
    metrics.setFollowerLag(new Map([['raftlet-1', 5], ['raftlet-2', 700]]));
    let text = await metrics.render();
    assert.equal(sampleValue(text, 'raftlet_follower_lag_entries', { peer: 'raftlet-1' }), 5);
    assert.equal(sampleValue(text, 'raftlet_follower_lag_entries', { peer: 'raftlet-2' }), 700);

    metrics.setFollowerLag(new Map([['raftlet-1', 0]]));
    text = await metrics.render();
    assert.equal(sampleValue(text, 'raftlet_follower_lag_entries', { peer: 'raftlet-1' }), 0);
    assert.equal(sampleValue(text, 'raftlet_follower_lag_entries', { peer: 'raftlet-2' }), undefined);

    metrics.setMembers(MEMBERS.filter((member) => member.id !== 'raftlet-1'));
    assert.equal(await value(metrics, 'raftlet_follower_lag_entries', { peer: 'raftlet-1' }), undefined, 'a removed member keeps no series');

    metrics.setFollowerLag(new Map([['raftlet-2', 3]]));
    feed(metrics, [{ kind: 'roleChanged', role: 'follower', term: 2 }]);
    text = await metrics.render();
    assert.equal(parseSamples(text).filter((sample) => sample.name === 'raftlet_follower_lag_entries').length, 0, 'a former leader drops its lag series');
  });
});

describe('RaftletMetrics observations', () => {
  it('counts proposals by result and times them all', async () => {
    const metrics = fresh();
    const observations: [ProposalResult, number][] = [['ok', 0.002], ['ok', 0.004], ['precondition_failed', 0.003], ['timeout', 5], ['no_leader', 5]];
    for (const [result, seconds] of observations) metrics.observeProposal(result, seconds);
    const text = await metrics.render();
    assert.equal(sampleValue(text, 'raftlet_proposals_total', { result: 'ok' }), 2);
    assert.equal(sampleValue(text, 'raftlet_proposals_total', { result: 'precondition_failed' }), 1);
    assert.equal(sampleValue(text, 'raftlet_proposals_total', { result: 'timeout' }), 1);
    assert.equal(sampleValue(text, 'raftlet_proposals_total', { result: 'no_leader' }), 1);
    assert.equal(sampleValue(text, 'raftlet_proposals_total', { result: 'error' }), 0);
    assert.equal(sampleValue(text, 'raftlet_proposal_duration_seconds_count'), 5);
    assert.equal(sampleValue(text, 'raftlet_proposal_duration_seconds_bucket', { le: '0.0025' }), 1);
    assert.equal(sampleValue(text, 'raftlet_proposal_duration_seconds_bucket', { le: '0.005' }), 3);
    assert.equal(sampleValue(text, 'raftlet_proposal_duration_seconds_bucket', { le: '+Inf' }), 5);
  });

  it('times peer calls by kind and counts the failed ones', async () => {
    const metrics = fresh();
    const calls: [RpcKind, number, boolean][] = [['messages', 0.001, true], ['messages', 0.002, false], ['snapshot', 0.5, true], ['propose', 0.01, false]];
    for (const [kind, seconds, ok] of calls) metrics.observeRpc(kind, seconds, ok);
    const text = await metrics.render();
    assert.equal(sampleValue(text, 'raftlet_rpc_duration_seconds_count', { kind: 'messages' }), 2);
    assert.equal(sampleValue(text, 'raftlet_rpc_duration_seconds_count', { kind: 'snapshot' }), 1);
    assert.equal(sampleValue(text, 'raftlet_rpc_failures_total', { kind: 'messages' }), 1);
    assert.equal(sampleValue(text, 'raftlet_rpc_failures_total', { kind: 'snapshot' }), 0);
    assert.equal(sampleValue(text, 'raftlet_rpc_failures_total', { kind: 'propose' }), 1);
    assert.equal(sampleValue(text, 'raftlet_rpc_failures_total', { kind: 'transfer' }), 0);
  });

  it('records fsync, snapshots, discovery, label updates, indices and drops', async () => {
    const metrics = fresh();
    metrics.setMembers(MEMBERS);
    metrics.observeFsync(0.0004, 'wal');
    metrics.observeFsync(0.7);
    metrics.observeFsync(2, 'snapshot');
    metrics.observeSnapshot(0.2);
    metrics.observeSnapshot(1.5, 'install');
    metrics.onDiscovery('ok', 3);
    metrics.onDiscovery('error');
    metrics.onLabelUpdate('ok');
    metrics.onLabelUpdate('conflict');
    metrics.onLabelUpdate('ok');
    metrics.setIndices({ commitIndex: 12, appliedIndex: 11, lastLogIndex: 13 });
    metrics.onDrop('raftlet-1', 'queue_full');
    metrics.onDrop('raftlet-1', 'queue_full');
    metrics.onDrop('raftlet-1', 'backoff');
    metrics.onDrop('stranger', 'unknown_peer');
    let text = await metrics.render();
    assert.equal(sampleValue(text, 'raftlet_fsync_duration_seconds_count', { kind: 'wal' }), 2, 'wal is the default kind');
    assert.equal(sampleValue(text, 'raftlet_fsync_duration_seconds_bucket', { kind: 'wal', le: '0.5' }), 1);
    assert.equal(sampleValue(text, 'raftlet_fsync_duration_seconds_count', { kind: 'snapshot' }), 1);
    assert.equal(sampleValue(text, 'raftlet_fsync_duration_seconds_count', { kind: 'dir' }), undefined);
    assert.equal(sampleValue(text, 'raftlet_snapshots_total', { kind: 'create' }), 1);
    assert.equal(sampleValue(text, 'raftlet_snapshots_total', { kind: 'install' }), 1);
    assert.equal(sampleValue(text, 'raftlet_snapshot_duration_seconds_sum', { kind: 'install' }), 1.5);
    assert.equal(sampleValue(text, 'raftlet_discovery_lookups_total', { result: 'ok' }), 1);
    assert.equal(sampleValue(text, 'raftlet_discovery_lookups_total', { result: 'error' }), 1);
    assert.equal(sampleValue(text, 'raftlet_discovery_members'), 3, 'a failed lookup keeps the last answer');
    assert.equal(sampleValue(text, 'raftlet_label_updates_total', { result: 'ok' }), 2);
    assert.equal(sampleValue(text, 'raftlet_label_updates_total', { result: 'conflict' }), 1);
    assert.equal(sampleValue(text, 'raftlet_commit_index'), 12);
    assert.equal(sampleValue(text, 'raftlet_applied_index'), 11);
    assert.equal(sampleValue(text, 'raftlet_last_log_index'), 13);
    assert.equal(sampleValue(text, 'raftlet_peer_messages_dropped_total', { peer: 'raftlet-1', reason: 'queue_full' }), 2);
    assert.equal(sampleValue(text, 'raftlet_peer_messages_dropped_total', { peer: 'raftlet-1', reason: 'backoff' }), 1);
    assert.equal(sampleValue(text, 'raftlet_peer_messages_dropped_total', { peer: 'stranger' }), undefined, 'only members are labels');

    metrics.setMembers(MEMBERS.filter((member) => member.id !== 'raftlet-1'));
    metrics.onDiscovery('empty');
    text = await metrics.render();
    assert.equal(parseSamples(text).filter((sample) => sample.labels.peer === 'raftlet-1').length, 0, 'a removed member keeps no drop series');
    assert.equal(sampleValue(text, 'raftlet_discovery_members'), 0, 'an empty answer finds no members');
  });

  it('reads the index gauges from their source when scraped, not before', async () => {
    const metrics = fresh();
    let indices = { commitIndex: 5, appliedIndex: 4, lastLogIndex: 6 };
    let reads = 0;
    metrics.readIndicesFrom(() => {
      reads++;
      return indices;
    });
    assert.equal(reads, 0, 'nothing is read until a scrape');
    assert.equal(await value(metrics, 'raftlet_commit_index'), 5);
    assert.equal(await value(metrics, 'raftlet_applied_index'), 4);
    assert.equal(await value(metrics, 'raftlet_last_log_index'), 6);
    indices = { commitIndex: 9, appliedIndex: 9, lastLogIndex: 11 };
    const text = await metrics.render();
    assert.deepEqual(
      ['raftlet_commit_index', 'raftlet_applied_index', 'raftlet_last_log_index'].map((name) => sampleValue(text, name)),
      [9, 9, 11],
      'each scrape reads them again',
    );
  });

  it('refuses label values outside the fixed sets, so a bad cast cannot grow the series', () => {
    const metrics = fresh();
    assert.throws(() => metrics.observeProposal('weird' as ProposalResult, 1), /unknown proposal result "weird"/);
    assert.throws(() => metrics.observeRpc('weird' as RpcKind, 1, true), /unknown rpc kind "weird"/);
    assert.throws(() => metrics.observeFsync(1, 'weird' as FsyncKind), /unknown fsync kind "weird"/);
  });
});
