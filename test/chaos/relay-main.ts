// The delay relay as a process, for `ip netns exec NS node relay-main.ts --listen H:P --target H:P`.
// It prints "ready <port>" once listening, then reads one JSON object per line on stdin:
// {"delays": {"<peer address>": <ms>, ...}} replaces the delays. It exits when stdin closes, so it
// never outlives the harness that started it.
import { createInterface } from 'node:readline';
import { DelayRelay } from './relay.ts';

function hostPort(text: string | undefined, flag: string): { host: string; port: number } {
  const match = text === undefined ? null : /^(.+):(\d+)$/.exec(text);
  if (match === null) {
    process.stderr.write(`relay: ${flag} HOST:PORT is required\n`);
    process.exit(2);
  }
  return { host: match[1], port: Number(match[2]) };
}

const args = process.argv.slice(2);
const listen = hostPort(args[args.indexOf('--listen') + 1], '--listen');
const target = hostPort(args[args.indexOf('--target') + 1], '--target');
const relay = new DelayRelay({ listenHost: listen.host, listenPort: listen.port, targetHost: target.host, targetPort: target.port });
const port = await relay.start();
process.stdout.write(`ready ${port}\n`);

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line.trim() === '') return;
  try {
    const message = JSON.parse(line) as { delays?: Record<string, number> };
    relay.setDelays(message.delays ?? {});
    process.stdout.write('ok\n');
  } catch (error) {
    process.stderr.write(`relay: bad control line ${JSON.stringify(line)}: ${String(error)}\n`);
  }
});
lines.on('close', () => {
  void relay.close().then(() => process.exit(0));
});
