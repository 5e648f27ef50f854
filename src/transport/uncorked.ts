// Peer streams hand their bytes to the kernel when they write them, not a tick later.
//
// Node's OutgoingMessage.write (an http.ClientRequest or ServerResponse) corks its socket and
// uncorks it in a process.nextTick callback, so that a chunk's size line, its data and the CRLF
// after it leave in one send. Anything queued on the nextTick queue before that callback runs
// first, and the bytes wait for it. The WAL's fdatasync of a new term or vote runs on the main
// thread from such a callback (WalStore.wait), right after the transport's flush of the messages
// the same Ready handed over: the TimeoutNow of a hand-off and a candidate's vote requests then
// left only once the sender's fsync had ended (0.2-2 ms on the bench's disk; as long as the disk
// takes on a slow one). Uncorking at once sends the corked parts together all the same; Node's own
// uncork then finds nothing to do.
import type { OutgoingMessage } from 'node:http';

/** out.write(bytes), with the socket uncorked at once; returns what write returned. */
export function writeUncorked(out: OutgoingMessage, bytes: Uint8Array): boolean {
  const ok = out.write(bytes);
  const socket = out.socket;
  if (socket !== null && socket.writableCorked > 0) socket.uncork();
  return ok;
}
