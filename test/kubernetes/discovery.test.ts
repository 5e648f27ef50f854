// SRV discovery against a real DNS server (dnsmasq on a loopback port), including scaling,
// NXDOMAIN / NODATA and a DNS server that stops answering.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { peersFromSrv, SrvDiscovery, type DiscoveryResult, type Peer } from '../../src/kubernetes/discovery.ts';
import { startDnsDouble, type DnsDouble } from '../support/k8s-double/dns.ts';
import { recordingLogger, waitFor } from './helpers.ts';

const SERVICE = 'raftlet.test.svc.cluster.local';
const pods = (n: number): { pod: string }[] => Array.from({ length: n }, (_, i) => ({ pod: `raftlet-${i}` }));

describe('SrvDiscovery against dnsmasq', () => {
  let dns: DnsDouble;
  const running: SrvDiscovery[] = [];

  before(async () => {
    dns = await startDnsDouble(SERVICE, pods(3));
  });
  after(async () => {
    for (const d of running) d.stop();
    await dns.stop();
  });

  function discovery(opts: { expected?: number; intervalMs?: number; fastIntervalMs?: number; service?: string } = {}) {
    const logger = recordingLogger();
    const results: DiscoveryResult[] = [];
    const changes: (readonly Peer[])[] = [];
    const d = new SrvDiscovery({
      service: opts.service ?? SERVICE,
      dnsServer: dns.server,
      expected: opts.expected ?? 3,
      logger,
      onResult: (r) => results.push(r),
      intervalMs: opts.intervalMs ?? 50,
      fastIntervalMs: opts.fastIntervalMs ?? 20,
      maxBackoffMs: 100,
      queryTimeoutMs: 300,
    });
    d.onChange((peers) => changes.push(peers));
    running.push(d);
    return { d, logger, results, changes };
  }

  it('turns SRV targets into member ids (pod names) and peer URLs', async () => {
    const { d, results, changes } = discovery();
    assert.equal(await d.refresh(), 'ok');
    assert.deepEqual(d.current(), [
      { id: 'raftlet-0', url: `http://raftlet-0.${SERVICE}:7070` },
      { id: 'raftlet-1', url: `http://raftlet-1.${SERVICE}:7070` },
      { id: 'raftlet-2', url: `http://raftlet-2.${SERVICE}:7070` },
    ]);
    assert.deepEqual(results, ['ok']);
    assert.equal(changes.length, 1);
    // The same answer again is not a change.
    await d.refresh();
    assert.equal(changes.length, 1);
  });

  it('follows a scale-up from 3 to 5 and back down to 3, emitting each new list', async () => {
    const { d, changes } = discovery();
    d.start();
    await waitFor('3 members', () => d.current()?.length === 3);
    await dns.setPods(pods(5));
    await waitFor('5 members', () => d.current()?.length === 5);
    assert.deepEqual(d.current()?.map((p) => p.id), ['raftlet-0', 'raftlet-1', 'raftlet-2', 'raftlet-3', 'raftlet-4']);
    await dns.setPods(pods(3));
    await waitFor('3 members again', () => d.current()?.length === 3);
    d.stop();
    assert.deepEqual(
      changes.map((c) => c.length),
      [3, 5, 3],
    );
  });

  it('keeps asking at the fast interval while fewer members than expected are seen', async () => {
    // The slow interval is a minute: more lookups within the test can only come from the fast one.
    const { d, results } = discovery({ expected: 5, intervalMs: 60_000, fastIntervalMs: 20 });
    d.start();
    await waitFor('several lookups', () => results.length >= 4);
    d.stop();
    assert.ok(results.every((r) => r === 'ok'));
  });

  it('reports NXDOMAIN as empty, with a log line that says what to check', async () => {
    // dnsmasq is authoritative (--local) under the service: a name below it without records is NXDOMAIN.
    const { d, logger, results, changes } = discovery({ service: `missing.${SERVICE}` });
    assert.equal(await d.refresh(), 'empty');
    assert.deepEqual(d.current(), []);
    assert.deepEqual(results, ['empty']);
    assert.deepEqual(changes, [[]]);
    assert.match(logger.text('warn'), /NXDOMAIN/);
    assert.match(logger.text('warn'), /publishNotReadyAddresses/);
    // The condition is logged when it starts, not on every poll.
    await d.refresh();
    assert.equal(logger.lines.filter((l) => l.level === 'warn').length, 1);
  });

  it('reports NODATA as empty, and a server that stops answering as an error, then recovers', async () => {
    const { d, logger, results } = discovery();
    assert.equal(await d.refresh(), 'ok');
    await dns.setNoData();
    assert.equal(await d.refresh(), 'empty');
    assert.match(logger.text('warn'), /NODATA/);
    assert.deepEqual(d.current(), []);

    await dns.down();
    assert.equal(await d.refresh(), 'error');
    assert.match(logger.text('error'), new RegExp(`failed .* at ${dns.server.replace(/\./g, '\\.')}`));
    // An error is not an answer: the last known list stays.
    assert.deepEqual(d.current(), []);

    await dns.setPods(pods(3));
    assert.equal(await d.refresh(), 'ok');
    assert.equal(d.current()?.length, 3);
    assert.match(logger.text('info'), /works again/);
    assert.deepEqual(results, ['ok', 'empty', 'error', 'ok']);
  });

  it('backs off and keeps retrying while DNS is down', async () => {
    await dns.down();
    try {
      const { d, results } = discovery();
      d.start();
      await waitFor('three failed lookups', () => results.filter((r) => r === 'error').length >= 3);
      await dns.setPods(pods(3));
      await waitFor('recovery', () => results.at(-1) === 'ok');
      d.stop();
      assert.equal(d.current()?.length, 3);
    } finally {
      await dns.setPods(pods(3));
    }
  });
});

describe('SrvDiscovery configuration', () => {
  it('refuses a malformed RAFTLET_DNS_SERVER with a message naming the setting', () => {
    assert.throws(
      () => new SrvDiscovery({ service: SERVICE, dnsServer: 'not a server', expected: 3, logger: recordingLogger() }),
      /RAFTLET_DNS_SERVER must be host:port/,
    );
  });
});

describe('peersFromSrv', () => {
  it('strips the trailing dot, dedupes by pod and sorts by ordinal (10 after 9)', () => {
    const logger = recordingLogger();
    const peers = peersFromSrv(
      [
        { name: 'raftlet-10.svc.', port: 7070 },
        { name: 'raftlet-9.svc.', port: 7070 },
        { name: 'raftlet-9.svc', port: 7000 },
        { name: 'RAFTLET-1.svc', port: 7070 },
      ],
      logger,
    );
    assert.deepEqual(peers, [
      { id: 'raftlet-1', url: 'http://raftlet-1.svc:7070' },
      { id: 'raftlet-9', url: 'http://raftlet-9.svc:7000' },
      { id: 'raftlet-10', url: 'http://raftlet-10.svc:7070' },
    ]);
    assert.match(logger.text('warn'), /more than once/);
  });
});
