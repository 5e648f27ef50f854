// The cluster DNS of a headless Service, played by a real dnsmasq on a loopback port: one SRV
// record `_raft._tcp.<service>` per pod plus the pod's A record, NXDOMAIN for anything else under
// the service. dnsmasq rereads hosts files on SIGHUP but not SRV records, so scaling rewrites the
// configuration and restarts dnsmasq on the same port.
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { releasePorts, reservePorts } from '../ports.ts';

export interface DnsPod {
  /** Pod name, e.g. raftlet-0: the SRV target is <pod>.<service>. */
  readonly pod: string;
  readonly port?: number;
  readonly ip?: string;
}

export interface DnsDouble {
  /** For RAFTLET_DNS_SERVER. */
  readonly server: string;
  readonly port: number;
  readonly service: string;
  /** Replace the published pods (restarts dnsmasq on the same port); resolves once it answers. */
  setPods(pods: readonly DnsPod[]): Promise<void>;
  /** Publish the name with an A record but no SRV record, so SRV lookups get NODATA. */
  setNoData(): Promise<void>;
  /** Stop answering (the port is closed) until setPods / setNoData. */
  down(): Promise<void>;
  stop(): Promise<void>;
}

export async function startDnsDouble(service: string, pods: readonly DnsPod[]): Promise<DnsDouble> {
  const dir = await mkdtemp(join(tmpdir(), 'dns-double-'));
  const confPath = join(dir, 'dnsmasq.conf');
  let child: ChildProcess | null = null;
  let port = 0;

  async function writeConf(lines: readonly string[]): Promise<void> {
    await writeFile(confPath, lines.join('\n') + '\n');
  }

  function recordsFor(list: readonly DnsPod[]): string[] {
    return list.flatMap((p) => [
      `srv-host=_raft._tcp.${service},${p.pod}.${service},${p.port ?? 7070}`,
      `host-record=${p.pod}.${service},${p.ip ?? '127.0.0.1'}`,
    ]);
  }

  async function launch(): Promise<void> {
    const proc = spawn(
      'dnsmasq',
      [
        '--keep-in-foreground',
        `--port=${port}`,
        '--listen-address=127.0.0.1',
        '--bind-interfaces',
        '--no-resolv',
        '--no-hosts',
        '--no-poll',
        '--cache-size=0',
        '--pid-file',
        '--log-facility=-',
        `--local=/${service}/`,
        `--conf-file=${confPath}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    proc.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    proc.once('error', () => {});
    child = proc;
    const ready = await Promise.race([waitAnswering(port).then(() => true), exited.then(() => false)]);
    if (!ready) {
      child = null;
      throw new Error(`dnsmasq did not start on 127.0.0.1:${port}: ${stderr.trim()}`);
    }
  }

  async function kill(): Promise<void> {
    const proc = child;
    child = null;
    if (proc === null || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    await exited;
  }

  // One restart at a time: two overlapping ones would start two dnsmasq on one port (a StatefulSet
  // controller creating pods in parallel publishes for each).
  let restarts: Promise<void> = Promise.resolve();
  function restart(lines: readonly string[]): Promise<void> {
    const next = restarts.then(async () => {
      await kill();
      await writeConf(lines);
      await launch();
    });
    restarts = next.catch(() => undefined);
    return next;
  }

  await writeConf(recordsFor(pods));
  // A port is free when we probe it; another process may take it before dnsmasq binds: retry.
  for (let attempt = 0; ; attempt++) {
    port = await freeUdpTcpPort();
    try {
      await launch();
      break;
    } catch (err) {
      releasePorts([port]);
      if (attempt >= 5) {
        await rm(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }

  return {
    server: `127.0.0.1:${port}`,
    port,
    service,
    setPods: (list) => restart(recordsFor(list)),
    setNoData: () => restart([`host-record=_raft._tcp.${service},127.0.0.1`]),
    down: () => {
      const next = restarts.then(() => kill());
      restarts = next.catch(() => undefined);
      return next;
    },
    async stop() {
      await restarts;
      await kill();
      releasePorts([port]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Polls until dnsmasq answers anything (an answer or NXDOMAIN) on the port. */
async function waitAnswering(port: number): Promise<void> {
  const resolver = new Resolver({ timeout: 200, tries: 1 });
  resolver.setServers([`127.0.0.1:${port}`]);
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      await resolver.resolveSrv('_probe._tcp.invalid');
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTFOUND' || code === 'ENODATA' || code === 'EREFUSED') return;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`dnsmasq on 127.0.0.1:${port} never answered`);
}

/** A reserved port below the ephemeral range (a restart reuses it, and no outgoing socket may take
 * it meanwhile), free for UDP too: dnsmasq binds both. */
async function freeUdpTcpPort(): Promise<number> {
  for (;;) {
    const [port] = await reservePorts(1);
    const udp = createSocket('udp4');
    const udpFree = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, '127.0.0.1', () => resolve(true));
    });
    if (udpFree) {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      return port;
    }
    releasePorts([port]);
  }
}
