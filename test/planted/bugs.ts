// Realistic bugs planted in a copy of src/ to prove the tests catch them. Each is a textual mutation
// (find -> replace, `find` must occur exactly once in the current source) and names the test that
// must fail on the mutated tree: the whole-node simulator over a range of seeds, or a test file.
// The suite prints, for each bug, the seeds the simulator needed (node test/planted/cli.ts prints
// the same table on its own). Last measured (2 s of faults per seed): 1 seed for most bugs; 17 for
// read-index-unconfirmed, 31 for heartbeat-commit-unmatched and 69 for proposal-settled-by-index
// (vote-before-save needed 195 before restarted members refused votes for an election timeout; it
// is now caught by the Ready contract test). Bugs the simulator does not reach within its range (the runtime hides
// them, or they need an exact interleaving) name their paper-section test instead.

export type Catcher =
  /** npm run sim over seeds [start, start + seeds), on `nodes` nodes. */
  | { readonly kind: 'wholesim'; readonly nodes: 3 | 5; readonly start: number; readonly seeds: number }
  /** A test file run with node --test. */
  | { readonly kind: 'test'; readonly file: string };

export interface PlantedBug {
  readonly id: string;
  readonly what: string;
  readonly file: string;
  readonly find: string;
  readonly replace: string;
  readonly catcher: Catcher;
}

/** Every simulator catcher runs the same seeds (so one clean run shows they all pass unmutated);
 * it stops at the first violation, so a bug it finds early costs little. */
export const SIM: Catcher = { kind: 'wholesim', nodes: 3, start: 1, seeds: 400 };

export const PLANTED_BUGS: readonly PlantedBug[] = [
  {
    id: 'commit-own-unsynced',
    what: 'the leader counts its own not-yet-fsynced entries toward commit',
    file: 'src/raft/raft.ts',
    find: '(id === this.id ? this.stableIndex :',
    replace: '(id === this.id ? this.log.lastIndex :',
    catcher: { kind: 'test', file: 'test/raft/commit.test.ts' },
  },
  {
    id: 'follower-commit-last-index',
    what: 'a follower commits min(leaderCommit, its last index) instead of the last new entry (§5.3 rule 5)',
    file: 'src/raft/raft.ts',
    find: 'const newCommit = Math.min(m.leaderCommit, lastNewIndex);',
    replace: 'const newCommit = Math.min(m.leaderCommit, this.log.lastIndex);',
    catcher: { kind: 'test', file: 'test/raft/replication.test.ts' },
  },
  {
    id: 'vote-before-save',
    what: 'a vote is answered before the vote is saved',
    file: 'src/raft/raft.ts',
    find: "(m.preVote ? this.sendNow : this.messages).push({ kind: 'voteResponse', from: this.id, to: m.from, term, preVote: m.preVote, granted });",
    replace: "this.sendNow.push({ kind: 'voteResponse', from: this.id, to: m.from, term, preVote: m.preVote, granted });",
    // A restarted member now refuses votes for an election timeout (the leader lease's
    // leaseGuardOnStart), which hides a double vote from the simulator's reach; the Ready contract
    // test sees the early vote directly.
    catcher: { kind: 'test', file: 'test/raft/ready.test.ts' },
  },
  {
    id: 'ack-before-fsync-core',
    what: 'a follower acknowledges entries before they are fsynced (core puts the ack in sendNow)',
    file: 'src/raft/raft.ts',
    find: 'this.messages.push(this.appendReply(m.from, true, lastNewIndex, 0, 0, 0));',
    replace: 'this.sendNow.push(this.appendReply(m.from, true, lastNewIndex, 0, 0, 0));',
    catcher: SIM,
  },
  {
    id: 'ack-before-fsync-node',
    what: 'the runtime sends every message of a Ready before its fsync',
    file: 'src/node/node.ts',
    find: 'if (rd.sendNow.length > 0) this.options.peers.sendAll(rd.sendNow);',
    replace: 'this.options.peers.sendAll([...rd.sendNow, ...rd.messages]);',
    catcher: SIM,
  },
  {
    id: 'figure-8',
    what: "a leader commits a previous term's entry by counting replicas (Figure 8)",
    file: 'src/raft/raft.ts',
    find: 'return this.log.termAt(index) === this.term;',
    replace: 'return this.log.termAt(index) !== undefined;',
    catcher: { kind: 'test', file: 'test/raft/commit.test.ts' },
  },
  {
    id: 'read-index-unconfirmed',
    what: 'ReadIndex is answered without a heartbeat round confirming leadership',
    file: 'src/raft/raft.ts',
    find: 'this.pendingReads.push({ requestId, index: this.commitIndex, round: this.readRound + 1 });\n    this.startReadRoundIfIdle();',
    replace: 'this.readStates.push({ requestId, index: this.commitIndex });',
    catcher: SIM,
  },
  {
    id: 'read-before-applied',
    what: 'a linearizable read is served before the applied index reaches the read index',
    file: 'src/node/node.ts',
    find: "if (this.sm.appliedIndex < index) await this.waitApplied(index, deadlineMs, 'read');",
    replace: '',
    catcher: SIM,
  },
  {
    id: 'forwarded-write-unapplied',
    what: 'a forwarded write is answered before it is applied on the forwarding node',
    file: 'src/node/node.ts',
    find: "if (this.sm.appliedIndex < result.index) await this.waitApplied(result.index, deadlineMs, 'write');",
    replace: '',
    catcher: SIM,
  },
  {
    id: 'applied-wait-off-by-one',
    what: 'a wait for an index is woken when the entry before it is applied',
    file: 'src/node/applied-waiters.ts',
    find: 'while (done < this.waits.length && this.waits[done].index <= appliedIndex) done++;',
    replace: 'while (done < this.waits.length && this.waits[done].index <= appliedIndex + 1) done++;',
    catcher: SIM,
  },
  {
    id: 'learn-commit-term-mismatch',
    what: "learnCommit trusts an index whose entry here has another term",
    file: 'src/raft/raft.ts',
    find: 'if (index <= this.log.lastIndex && this.log.termAt(index) === term) {',
    replace: 'if (index <= this.log.lastIndex) {',
    catcher: { kind: 'test', file: 'test/raft/learn-commit.test.ts' },
  },
  {
    id: 'snapshot-restore-merges',
    what: 'restoring a snapshot keeps keys the snapshot does not have',
    file: 'src/kv/store.ts',
    find: 'const values = new Map<string, StoredValue>();\n    let sizeBytes',
    replace: 'const values = new Map<string, StoredValue>(this.#values);\n    let sizeBytes',
    catcher: SIM,
  },
  {
    id: 'truncation-keeps-suffix',
    what: 'a follower replaces a conflicting entry but keeps the suffix after it (§5.3 rule 3)',
    file: 'src/raft/log.ts',
    find: '        this.entries.length = entry.index - this.snapshotIndexValue - 1;\n        truncatedAt = entry.index;\n      }',
    replace: '        this.entries[entry.index - this.snapshotIndexValue - 1] = entry;\n        truncatedAt = entry.index;\n        continue;\n      }',
    catcher: SIM,
  },
  {
    id: 'prevote-bumps-term',
    what: 'a pre-vote request moves the voter to the proposed term',
    file: 'src/raft/raft.ts',
    find: 'if (m.preVote) return true; // a pre-vote never changes our term',
    replace: '',
    catcher: SIM,
  },
  {
    id: 'vote-for-shorter-log',
    what: 'a vote is granted to a candidate whose last term matches but whose log is shorter (§5.4.1)',
    file: 'src/raft/log.ts',
    find: 'return lastLogTerm > this.lastTerm || (lastLogTerm === this.lastTerm && lastLogIndex >= this.lastIndex);',
    replace: 'return lastLogTerm >= this.lastTerm;',
    catcher: SIM,
  },
  {
    id: 'follower-ignores-higher-term',
    what: 'a node follows a leader of a higher term without adopting that term',
    file: 'src/raft/raft.ts',
    find: 'this.becomeFollower(m.term, fromLeader ? m.from : null);',
    replace: 'this.becomeFollower(fromLeader ? this.term : m.term, fromLeader ? m.from : null);',
    catcher: SIM,
  },
  {
    id: 'two-pending-config-changes',
    what: 'a second configuration change is accepted while one is uncommitted (thesis §4.1)',
    file: 'src/raft/raft.ts',
    find: 'if (this.pendingConfigIndex > this.commitIndex) {',
    replace: 'if (this.pendingConfigIndex > this.commitIndex && this.pendingConfigIndex < 0) {',
    catcher: SIM,
  },
  {
    id: 'propose-during-transfer',
    what: 'a leader accepts proposals while it transfers leadership (thesis §3.10)',
    file: 'src/raft/raft.ts',
    find: "if (this.transferee !== null) return this.refusal('transferring',",
    replace: "if (this.transferee !== null && this.role !== 'leader') return this.refusal('transferring',",
    catcher: SIM,
  },
  {
    id: 'heartbeat-commit-unmatched',
    what: "a heartbeat carries the leader's commit index even past what the follower matches",
    file: 'src/raft/raft.ts',
    find: 'commit: Math.min(pr.matchIndex, this.commitIndex),',
    replace: 'commit: this.commitIndex,',
    catcher: SIM,
  },
  {
    id: 'proposal-settled-by-index',
    what: "a proposal is answered by whatever entry commits at its index, without checking the term",
    file: 'src/node/node.ts',
    find: 'if (entry.term === p.term && result !== null) p.resolve(result);',
    replace: 'if (result !== null) p.resolve(result);',
    catcher: SIM,
  },
  {
    id: 'storage-error-ignored',
    what: 'the runtime carries on after its storage failed',
    file: 'src/node/node.ts',
    find: "        this.persisting = false;\n        this.fail(err, 'storage');",
    replace: '        this.persisting = false;\n        void err;',
    catcher: SIM,
  },
  {
    id: 'forwarded-read-index-unconfirmed',
    what: "the leader answers a follower's read-index request with its commit index, unconfirmed",
    file: 'src/node/node.ts',
    find: 'const index = await this.readIndexHere(deadlineMs);\n    return { index, term: this.raft.termAt(index) ?? 0 };',
    replace: 'const index = this.raft.committedIndex;\n    return { index, term: this.raft.termAt(index) ?? 0 };',
    catcher: SIM,
  },
  {
    id: 'replay-keeps-overwritten-suffix',
    what: 'WAL recovery keeps the entries after one that a later record overwrote',
    file: 'src/storage/replay.ts',
    find: '    this.entries.length = entry.index - this.firstIndex();\n    this.entries.push(entry);',
    replace: '    this.entries.push(entry);',
    catcher: SIM,
  },
  {
    id: 'recovery-keeps-torn-tail',
    what: "crash recovery trusts a torn frame (the body checksum is not checked)",
    file: 'src/storage/frame.ts',
    find: 'return crc32(body) === header.bodyCrc;',
    replace: 'return body.length > 0 || crc32(body) === header.bodyCrc;',
    catcher: SIM,
  },
  {
    id: 'commit-index-moves-back',
    what: 'a heartbeat may lower the commit index',
    file: 'src/raft/raft.ts',
    find: '    const newCommit = Math.min(m.commit, this.log.lastIndex);\n    if (newCommit > this.commitIndex) this.commitIndex = newCommit;',
    replace: '    const newCommit = Math.min(m.commit, this.log.lastIndex);\n    if (newCommit !== this.commitIndex) this.commitIndex = newCommit;',
    catcher: SIM,
  },
];
