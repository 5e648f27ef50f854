// Peer TLS in the chart: the generated CA and certificate really work for mutual TLS between
// members (a handshake with node:tls), are kept across upgrades and never invented without lookup;
// cert-manager's objects are valid for cert-manager.io/v1 and name every member; an existing Secret
// is used as it is; the members get the files, the env vars and an https:// advertise URL.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { Certificate, Issuer } from '@kubernetes-models/cert-manager/cert-manager.io/v1';
import { renderChart, renderChartText, rootCaConfigMap } from './render.ts';
import type { RenderOptions, RenderedObject } from './render.ts';

type Obj = Record<string, unknown>;
const NAMESPACE = 'shop';
const base: RenderOptions = { releaseName: 'orders', namespace: NAMESPACE, set: { 'tls.enabled': true } };

function find(objects: readonly RenderedObject[], kind: string, name?: string): Obj {
  const found = objects.filter((o) => o.object.kind === kind && (name === undefined || o.object.metadata?.name === name));
  assert.equal(found.length, 1, `one ${kind} ${name ?? ''}`);
  return found[0].object as unknown as Obj;
}

interface PeerTls { readonly ca: string; readonly cert: string; readonly key: string; readonly secret: Obj }

async function generated(options: RenderOptions = base): Promise<PeerTls> {
  const secret = find(await renderChart(options), 'Secret', 'orders-raftlet-peer-tls');
  assert.equal(secret.type, 'kubernetes.io/tls');
  const data = secret.data as Record<string, string>;
  const text = (key: string): string => Buffer.from(data[key], 'base64').toString('utf8');
  return { ca: text('ca.crt'), cert: text('tls.crt'), key: text('tls.key'), secret };
}

/** A mutual-TLS handshake: a member's server asks for a client certificate from the CA. */
async function handshake(server: PeerTls, client: PeerTls, servername: string): Promise<string | null> {
  const listener = createServer({ cert: server.cert, key: server.key, ca: server.ca, requestCert: true, rejectUnauthorized: true }, (socket) => {
    socket.end('ok');
  });
  listener.on('tlsClientError', () => {});
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  try {
    const socket = connect({ host: '127.0.0.1', port: (listener.address() as AddressInfo).port, servername, cert: client.cert, key: client.key, ca: client.ca });
    try {
      const outcome = await Promise.race([
        once(socket, 'data').then(([chunk]) => String(chunk)),
        once(socket, 'error').then(([err]) => { throw err as Error; }),
        once(socket, 'end').then(() => { throw new Error('closed by the server'); }),
      ]);
      return outcome === 'ok' ? null : outcome;
    } catch (err) {
      return (err as Error).message;
    } finally {
      socket.destroy();
    }
  } finally {
    listener.close();
  }
}

describe('peer TLS from the chart', () => {
  it('generates a CA and a certificate for every member name, usable for mutual TLS', async () => {
    const tls = await generated({ ...base, set: { ...base.set, replicas: 5 } });
    const ca = new X509Certificate(tls.ca);
    const cert = new X509Certificate(tls.cert);
    assert.equal(ca.ca, true);
    assert.ok(cert.verify(ca.publicKey), 'signed by the CA');
    assert.ok(cert.checkPrivateKey(createPrivateKey(tls.key)), 'tls.key belongs to tls.crt');
    for (let i = 0; i < 5; i++) {
      for (const name of [`orders-raftlet-${i}.orders-raftlet.shop.svc`, `orders-raftlet-${i}.orders-raftlet.shop.svc.cluster.local`]) {
        assert.equal(cert.checkHost(name), name, name);
      }
    }
    assert.ok(cert.checkHost('orders-raftlet-9.orders-raftlet.shop.svc.cluster.local'), 'a member past replicas (kubectl scale)');
    assert.ok(cert.checkHost('orders-raftlet.shop.svc.cluster.local'), 'the headless Service');
    assert.equal(cert.checkHost('orders-raftlet-0.other.shop.svc.cluster.local'), undefined);
    const years = (Date.parse(cert.validTo) - Date.now()) / (365 * 24 * 3600 * 1000);
    assert.ok(years > 9 && years < 11, `valid for about 10 years (validityDays 3650), not ${years}`);

    assert.equal(await handshake(tls, tls, 'orders-raftlet-2.orders-raftlet.shop.svc.cluster.local'), null);
    // A member of another release (another CA) is refused both ways.
    const stranger = await generated();
    assert.notEqual(await handshake(tls, stranger, 'orders-raftlet-2.orders-raftlet.shop.svc.cluster.local'), null);
    assert.notEqual(await handshake(stranger, tls, 'orders-raftlet-2.orders-raftlet.shop.svc.cluster.local'), null);
  });

  it('keeps the certificate on upgrade (lookup), and refuses to make one without lookup', async () => {
    const first = await generated();
    const cluster = [rootCaConfigMap(NAMESPACE), { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'orders-raftlet-peer-tls', namespace: NAMESPACE }, data: first.secret.data }];
    const again = await generated({ ...base, cluster, isUpgrade: true, values: { auth: { token: 'x'.repeat(32) } } });
    assert.deepEqual(again.secret.data, first.secret.data);
    await assert.rejects(
      renderChartText({ ...base, cluster: null, values: { auth: { existingSecret: 'token' } } }),
      /cannot look up Secret orders-raftlet-peer-tls in namespace shop, so the peer certificate and CA it holds cannot be kept.*tls\.source=certManager, or tls\.source=existingSecret/s,
    );
  });

  it('mounts the files, sets the RAFTLET_PEER_TLS_* variables and advertises https; probes stay plain HTTP', async () => {
    for (const options of [base, { ...base, values: { tls: { source: 'existingSecret', existingSecret: 'corp-peer-tls' } } }]) {
      const objects = await renderChart(options);
      const spec = ((find(objects, 'StatefulSet').spec as Obj).template as Obj).spec as Obj;
      const raftlet = (spec.containers as Obj[]).find((c) => c.name === 'raftlet') as Obj;
      const env = new Map((raftlet.env as Obj[]).map((e) => [e.name, e.value]));
      assert.equal(env.get('RAFTLET_PEER_TLS_CERT_FILE'), '/etc/raftlet/tls/tls.crt');
      assert.equal(env.get('RAFTLET_PEER_TLS_KEY_FILE'), '/etc/raftlet/tls/tls.key');
      assert.equal(env.get('RAFTLET_PEER_TLS_CA_FILE'), '/etc/raftlet/tls/ca.crt');
      assert.match(String(env.get('RAFTLET_ADVERTISE_URL')), /^https:\/\/\$\(POD_NAME\)\.orders-raftlet\.\$\(POD_NAMESPACE\)\.svc\.cluster\.local:7070$/);
      assert.ok(env.has('RAFTLET_CLUSTER_TOKEN_FILE'), 'the token stays (defence in depth)');
      const mount = (raftlet.volumeMounts as Obj[]).find((m) => m.mountPath === '/etc/raftlet/tls') as Obj;
      assert.equal(mount.readOnly, true);
      assert.equal(mount.subPath, undefined, 'a directory mount, so renewals reach the container');
      const volume = (spec.volumes as Obj[]).find((v) => v.name === mount.name) as Obj;
      const expected = options === base ? 'orders-raftlet-peer-tls' : 'corp-peer-tls';
      assert.equal((volume.secret as Obj).secretName, expected);
      for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
        const httpGet = (raftlet[probe] as Obj).httpGet as Obj;
        assert.equal(httpGet.port, 'metrics');
        assert.equal(httpGet.scheme, undefined, `${probe} stays plain HTTP`);
      }
      if (options !== base) assert.ok(!objects.some((o) => o.object.kind === 'Secret' && o.object.metadata?.name?.includes('tls')), 'an existing Secret: none rendered');
    }
    await assert.rejects(renderChartText({ ...base, values: { tls: { source: 'existingSecret' } } }), /tls\.existingSecret must name a Secret with tls\.crt, tls\.key and ca\.crt/);
  });

  it('with cert-manager: its own CA chain or a given issuer, valid cert-manager.io/v1 objects naming every member', async () => {
    const options = { ...base, set: { ...base.set, 'tls.source': 'certManager', replicas: 4 }, apiVersions: ['cert-manager.io/v1'] };
    const objects = await renderChart(options);
    const certManager = objects.filter((o) => o.object.apiVersion === 'cert-manager.io/v1');
    assert.deepEqual(certManager.map((o) => `${o.object.kind}/${String(o.object.metadata?.name)}`).sort(), [
      'Certificate/orders-raftlet-peer', 'Certificate/orders-raftlet-peer-ca', 'Issuer/orders-raftlet-peer-ca', 'Issuer/orders-raftlet-selfsigned',
    ]);
    for (const { object } of certManager) {
      const model = object.kind === 'Issuer' ? new Issuer(object as never) : new Certificate(object as never);
      assert.doesNotThrow(() => model.validate(), `${object.kind}/${String(object.metadata?.name)}`);
    }
    const peer = find(certManager, 'Certificate', 'orders-raftlet-peer').spec as Obj;
    assert.equal(peer.secretName, 'orders-raftlet-peer-tls');
    assert.deepEqual(peer.issuerRef, { name: 'orders-raftlet-peer-ca', kind: 'Issuer', group: 'cert-manager.io' });
    assert.deepEqual([...(peer.usages as string[])].sort(), ['client auth', 'digital signature', 'key encipherment', 'server auth']);
    const names = peer.dnsNames as string[];
    for (let i = 0; i < 4; i++) assert.ok(names.includes(`orders-raftlet-${i}.orders-raftlet.shop.svc.cluster.local`) && names.includes(`orders-raftlet-${i}.orders-raftlet.shop.svc`), `member ${i}`);
    assert.ok(names.includes('*.orders-raftlet.shop.svc.cluster.local'));
    const caCert = find(certManager, 'Certificate', 'orders-raftlet-peer-ca').spec as Obj;
    assert.equal(caCert.isCA, true);
    assert.equal((find(certManager, 'Issuer', 'orders-raftlet-peer-ca').spec as Obj).ca !== undefined, true);

    const given = await renderChart({ ...options, values: { tls: { certManager: { issuerRef: { name: 'corp-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' } } } } });
    const own = given.filter((o) => o.object.apiVersion === 'cert-manager.io/v1');
    assert.deepEqual(own.map((o) => o.object.kind), ['Certificate'], 'no CA of its own with a given issuer');
    assert.deepEqual((own[0].object.spec as Obj).issuerRef, { name: 'corp-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' });
    assert.doesNotThrow(() => new Certificate(own[0].object as never).validate());
    // The validator itself refuses a bad Certificate.
    assert.throws(() => new Certificate({ ...own[0].object, spec: { ...(own[0].object.spec as Obj), usages: ['server auth', 'telepathy'] } } as never).validate());

    await assert.rejects(renderChartText({ ...base, set: { ...base.set, 'tls.source': 'certManager' } }), /needs cert-manager's CRDs \(API cert-manager\.io\/v1\)/);
  });

  it('the backup job speaks TLS to the members too', async () => {
    const objects = await renderChart({ ...base, set: { ...base.set, 'backup.enabled': true } });
    const pod = (((find(objects, 'CronJob').spec as Obj).jobTemplate as Obj).spec as Obj).template as Obj;
    const container = ((pod.spec as Obj).containers as Obj[])[0];
    const env = new Map((container.env as Obj[]).map((e) => [e.name, e.value]));
    assert.equal(env.get('PEER_SCHEME'), 'https');
    assert.equal(env.get('RAFTLET_PEER_TLS_CA_FILE'), '/etc/raftlet/tls/ca.crt');
    assert.ok(((pod.spec as Obj).volumes as Obj[]).some((v) => (v.secret as Obj | undefined)?.secretName === 'orders-raftlet-peer-tls'));
  });
});
