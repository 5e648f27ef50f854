// Token rotation with real processes and a writer running (issue 11): every member goes
// "A" -> "A\nB" -> "B\nA" -> "B", first by rewriting each member's token file the way Kubernetes
// updates a Secret volume (a symlink swapped atomically; no restart), then to a token C by
// restarting the members one by one with their new files. Asserted: every member stays in the
// cluster and keeps replicating after each step, no write is refused for longer than an election
// timeout, the rewrites cause no election (the term stays), the restarts none beyond the hand-off
// of each restarted leader, and the old token is refused at the end.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { PROTOCOL_HEADER, PROTOCOL_VERSION, ROUTES } from '../../src/transport/protocol.ts';
import { clusterHooks, waitUntil, type Cluster } from '../support/cluster.ts';

const ELECTION_TIMEOUT_MS = 1000;

/** The token file of a node, as a Secret volume presents it: token -> ..data/token, ..data -> ..vN. */
class SecretVolume {
  private version = 0;
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
  }

  get file(): string {
    return path.join(this.dir, 'token');
  }

  write(tokens: readonly string[]): void {
    const version = `..v${++this.version}`;
    mkdirSync(path.join(this.dir, version));
    writeFileSync(path.join(this.dir, version, 'token'), `${tokens.join('\n')}\n`, { mode: 0o600 });
    const tmp = path.join(this.dir, '..data_tmp');
    symlinkSync(version, tmp);
    renameSync(tmp, path.join(this.dir, '..data'));
    if (this.version === 1) symlinkSync(path.join('..data', 'token'), this.file);
  }
}

interface WriteResult {
  readonly startMs: number;
  readonly endMs: number;
  readonly ok: boolean;
  readonly node: number;
  readonly detail: string;
}

/** PUTs in a loop to the live members not being restarted, round-robin. */
function startWriter(cluster: Cluster, down: Set<number>): { stop: () => Promise<WriteResult[]> } {
  const results: WriteResult[] = [];
  let running = true;
  const loop = (async () => {
    let n = 0;
    while (running) {
      const candidates = cluster.ordinals.filter((node) => !down.has(node) && cluster.isLive(node));
      if (candidates.length === 0) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        continue;
      }
      const node = candidates[n % candidates.length];
      n++;
      const startMs = performance.now();
      let ok = false;
      let detail = '';
      try {
        const answer = await cluster.put(node, `rotation-${n % 50}`, `value-${n}`, { timeoutMs: 10_000 });
        ok = answer.status === 200;
        detail = `${answer.status} ${answer.text.slice(0, 200)}`;
      } catch (error) {
        detail = error instanceof Error ? error.message : String(error);
      }
      // A member being restarted does not answer: that is the restart, not a refusal.
      if (!ok && down.has(node)) continue;
      results.push({ startMs, endMs: performance.now(), ok, node, detail });
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return results;
    },
  };
}

/** The longest time from a refused write's start to the next accepted write's end. */
function longestRefusal(results: readonly WriteResult[]): { ms: number; failures: number; sample: string } {
  let worst = 0;
  let failures = 0;
  let sample = '';
  let firstFailure: WriteResult | null = null;
  for (const r of results) {
    if (!r.ok) {
      failures++;
      if (sample === '') sample = `node-${r.node}: ${r.detail}`;
      firstFailure ??= r;
      continue;
    }
    if (firstFailure !== null) {
      worst = Math.max(worst, r.endMs - firstFailure.startMs);
      firstFailure = null;
    }
  }
  if (firstFailure !== null) worst = Number.POSITIVE_INFINITY;
  return { ms: worst, failures, sample };
}

async function everyMemberReplicates(cluster: Cluster, why: string): Promise<void> {
  const leader = await cluster.waitForLeader();
  const { commitIndex } = await cluster.status(leader.node);
  for (const node of cluster.ordinals) {
    await cluster.waitForApplied(node, commitIndex, { timeoutMs: 15_000 }).catch((error: unknown) => {
      throw new Error(`${why}: node-${node} fell out of the cluster: ${(error as Error).message}`);
    });
  }
}

async function peerAnswer(cluster: Cluster, node: number, token: string): Promise<number> {
  const answer = await cluster.peerRequest(node, 'GET', ROUTES.status, {
    headers: { authorization: `Bearer ${token}`, [PROTOCOL_HEADER]: String(PROTOCOL_VERSION) },
    timeoutMs: 5_000,
  });
  return answer.status;
}

const rereads = (cluster: Cluster, node: number): number => cluster.logText(node).split('cluster token file re-read').length - 1;

describe('cluster token rotation', () => {
  const clusters = clusterHooks();

  it('A -> A+B -> B+A -> B by rewriting files, then to C by rolling restarts, with a writer running', async () => {
    const [a, b, c] = [0, 1, 2].map(() => randomBytes(24).toString('hex'));
    const volumes = new Map<number, SecretVolume>();
    const cluster = await clusters.start({
      nodes: 3,
      name: 'token-rotation',
      electionTimeoutMs: ELECTION_TIMEOUT_MS,
      env: { RAFTLET_CLUSTER_TOKEN: '' },
      nodeEnv: (node, dir) => {
        const volume = new SecretVolume(path.join(dir, `node-${node}-secret`));
        volume.write([a]);
        volumes.set(node, volume);
        return { RAFTLET_CLUSTER_TOKEN_FILE: volume.file };
      },
    });
    const volume = (node: number): SecretVolume => volumes.get(node) as SecretVolume;
    const start = await cluster.waitForLeader();
    await everyMemberReplicates(cluster, 'before the rotation');
    const down = new Set<number>();
    const writer = startWriter(cluster, down);
    const timeline: string[] = [];
    const t0 = performance.now();
    const mark = (what: string): void => {
      timeline.push(`${((performance.now() - t0) / 1000).toFixed(2)} s ${what}`);
    };
    try {
      // ---- rewriting the files, no restart ----
      for (const tokens of [[a, b], [b, a], [b]]) {
        for (const node of cluster.ordinals) {
          const before = rereads(cluster, node);
          volume(node).write(tokens);
          await waitUntil(`node-${node} to re-read its token file`, () => rereads(cluster, node) > before, { timeoutMs: 15_000 });
          mark(`node-${node} re-read its token file (${tokens.length} token(s))`);
        }
        await everyMemberReplicates(cluster, `after the rewrite to ${tokens.length} token(s)`);
      }
      // Streams opened with A were ended by their server when A left its set (and reopened with B).
      const revoked = cluster.ordinals.reduce((sum, node) => sum + (cluster.logText(node).split('is no longer accepted').length - 1), 0);
      assert.ok(revoked > 0, 'no stream opened with the removed token A was ended');
      const afterRewrites = await cluster.waitForLeader();
      assert.equal(afterRewrites.term, start.term, 'rewriting token files caused an election');
      for (const node of cluster.ordinals) {
        assert.equal(await peerAnswer(cluster, node, a), 401, `node-${node} still accepts the old token A`);
        assert.equal(await peerAnswer(cluster, node, b), 200, `node-${node} does not accept B`);
      }

      // ---- rolling restarts: B -> B+C -> C+B -> C, followers first, the leader last ----
      let leaderRestarts = 0;
      const termBefore = afterRewrites.term;
      for (const tokens of [[b, c], [c, b], [c]]) {
        const leader = (await cluster.waitForLeader()).node;
        const order = [...cluster.ordinals.filter((n) => n !== leader), leader];
        for (const node of order) {
          volume(node).write(tokens);
          down.add(node);
          if (node === leader) leaderRestarts++;
          assert.equal(await cluster.sigterm(node), 0, `node-${node} did not stop cleanly`);
          await cluster.start(node);
          down.delete(node);
          await everyMemberReplicates(cluster, `after restarting node-${node} with ${tokens.length} token(s)`);
          mark(`node-${node} restarted with ${tokens.length} token(s)`);
        }
      }
      const end = await cluster.waitForLeader();
      assert.ok(end.term - termBefore <= leaderRestarts,
        `the restarts caused elections beyond the ${leaderRestarts} leader hand-offs (term ${termBefore} -> ${end.term})`);
      for (const node of cluster.ordinals) {
        assert.equal(await peerAnswer(cluster, node, b), 401, `node-${node} still accepts B`);
        assert.equal(await peerAnswer(cluster, node, c), 200, `node-${node} does not accept C`);
      }
    } finally {
      const results = await writer.stop();
      const refusal = longestRefusal(results);
      const accepted = results.filter((r) => r.ok).length;
      process.stderr.write(`token rotation: ${accepted} writes accepted, ${refusal.failures} refused; longest refusal ` +
        `${Number.isFinite(refusal.ms) ? `${refusal.ms.toFixed(0)} ms` : 'until the end'}\n  ${timeline.join('\n  ')}\n`);
      assert.ok(accepted > 0, 'the writer got nothing through');
      assert.ok(refusal.ms <= ELECTION_TIMEOUT_MS,
        `writes were refused for ${refusal.ms.toFixed(0)} ms (> ${ELECTION_TIMEOUT_MS} ms); first: ${refusal.sample}`);
    }
  });
});
