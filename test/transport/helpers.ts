// Shared test helpers: a peer server with recording handlers, and polling instead of sleeping.
import { once } from 'node:events';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { ClientError } from '../../src/api/ops.ts';
import type { NodeStatus } from '../../src/api/ops.ts';
import type { KvCommand, KvResult } from '../../src/kv/types.ts';
import type { Message, NodeId } from '../../src/raft/types.ts';
import type { PeerHandlers } from '../../src/transport/server.ts';

export const TOKEN = 'test-cluster-token';

/** Polls until condition() holds; fails after a generous bound, naming what it waited for. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(5);
  }
}

export interface Recorder {
  readonly handlers: PeerHandlers;
  /** Every onMessages call, one array per request. */
  readonly batches: Message[][];
  /** Every onPropose call; encoded: the bytes a propose-bytes call passed along with cmd. */
  readonly proposals: { cmd: KvCommand; deadlineMs: number; encoded: Uint8Array | undefined }[];
  readonly calls: string[];
  /** What onPropose does; default: ok at index 7, term 2. */
  propose: (cmd: KvCommand, deadlineMs: number) => Promise<KvResult>;
  messages: (messages: Message[]) => void | Promise<void>;
}

export const sampleStatus: NodeStatus = {
  id: 'b',
  role: 'follower',
  term: 4,
  leader: 'a',
  commitIndex: 10,
  appliedIndex: 9,
  lastLogIndex: 11,
  members: [
    { id: 'a', url: 'http://127.0.0.1:1', voter: true },
    { id: 'b', url: 'http://127.0.0.1:2', voter: true },
    { id: 'c', url: 'http://127.0.0.1:3', voter: false },
  ],
};

export function recorder(): Recorder {
  const r: Recorder = {
    batches: [],
    proposals: [],
    calls: [],
    propose: async () => ({ ok: true, index: 7, term: 2 }),
    messages: () => undefined,
    handlers: {
      onMessages: (messages) => {
        r.calls.push('messages');
        r.batches.push(messages);
        return r.messages(messages);
      },
      onPropose: (cmd, deadlineMs, encoded) => {
        r.calls.push('propose');
        r.proposals.push({ cmd, deadlineMs, encoded });
        return r.propose(cmd, deadlineMs);
      },
      onReadIndex: async () => {
        r.calls.push('readIndex');
        return { index: 42, term: 3 };
      },
      onTransfer: async (to: NodeId | null) => {
        r.calls.push('transfer');
        if (to === 'nobody') throw new ClientError('bad_request', 'nobody is not a member');
        return { leader: to ?? 'c', term: 5 };
      },
      onStatus: () => {
        r.calls.push('status');
        return sampleStatus;
      },
    },
  };
  return r;
}

export function heartbeat(seq: number, to: NodeId = 'b'): Message {
  return { kind: 'heartbeat', from: 'a', to, term: 3, commit: seq, seq };
}

/** A URL whose port nothing listens on: bound once, then released, so a connection is refused. */
export async function deadPort(): Promise<string> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return `http://127.0.0.1:${port}`;
}
