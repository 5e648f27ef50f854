// A peer port that is not the leader's, for bench/abuse.ts: the same server code (the same limits,
// TLS and refusals) in a process of its own, at the same priority as the cluster, with no Raft
// behind it. Abusing it loads the machine as abusing the leader does, but none of the work lands
// in the leader: the writer's p99 then shows what the machine's load alone costs.
//   node bench/lib/decoy-peer.ts [CA CERT KEY]     (IPC: sends its port, runs until killed)
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { startPeerServer } from '../../src/transport/server.ts';
import { staticTls } from '../../src/transport/tls.ts';

const [caFile, certFile, keyFile] = process.argv.slice(2);
const tls = caFile === undefined ? null : staticTls({ ca: readFileSync(caFile), cert: readFileSync(certFile ?? ''), key: readFileSync(keyFile ?? '') }, true);
const refuse = async (): Promise<never> => {
  throw new Error('the decoy serves no Raft');
};
const server = await startPeerServer('127.0.0.1', 0, {
  token: randomBytes(32).toString('hex'),
  nodeId: 'decoy',
  tls,
  memberUrl: () => undefined,
  handlers: { onMessages: () => undefined, onPropose: refuse, onReadIndex: refuse, onTransfer: refuse, onStatus: refuse },
  onRefused: () => undefined,
});
process.send?.({ port: server.port });
process.on('SIGTERM', () => {
  void server.close().then(() => process.exit(0));
});
