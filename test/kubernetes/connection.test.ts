// The Kubernetes client's calls share one kept-alive connection (src/kubernetes/connection.ts):
// client-node 2.x alone opens a new connection (and, in a pod, does a TLS handshake) per call.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { classifyKubeError, KubeClient, loadKubeConfig } from '../../src/kubernetes/client.ts';
import { createThrowawayCa } from '../../src/transport/throwaway-ca.ts';
import { startK8sDouble, type K8sDouble } from '../support/k8s-double/index.ts';
import { writeKubeconfig } from '../support/k8s-double/kubeconfig.ts';

describe('KubeClient connections', () => {
  let api: K8sDouble;
  let client: KubeClient;

  beforeEach(async () => {
    api = await startK8sDouble({ namespace: 'ns1' });
    api.pods.add({ name: 'raftlet-0' });
    client = new KubeClient(loadKubeConfig(api.kubeconfigPath), { timeoutMs: 5000 });
  });
  afterEach(async () => {
    client.close();
    await api.stop();
  });

  it('sequential calls of every kind share one kept-alive connection, each authenticated with the kubeconfig token', async () => {
    for (let i = 0; i < 10; i++) {
      const pod = await client.getPod('ns1', 'raftlet-0');
      await client.mergePatchPod('ns1', 'raftlet-0', { metadata: { resourceVersion: pod.metadata?.resourceVersion, labels: { round: String(i) } } });
      await client.listPods('ns1', 'round');
    }
    assert.equal(api.requests.length, 30);
    assert.ok(api.requests.every((r) => r.status === 200), api.requests.map((r) => `${r.method} ${r.status}`).join(', '));
    // Each call is made right as the previous answer arrives: the connection is free again by then.
    assert.deepEqual([...new Set(api.requests.map((r) => r.connection))], [1], `connections: ${api.requests.map((r) => r.connection).join(', ')}`);
    assert.ok(api.requests.every((r) => r.user === api.user));
    assert.ok(api.requests.every((r) => r.contentType === '' || r.contentType === 'application/merge-patch+json'));
  });

  it('close() ends the connection; a later call opens a new one', async () => {
    await client.getPod('ns1', 'raftlet-0');
    client.close();
    await client.getPod('ns1', 'raftlet-0');
    const [first, second] = api.requests;
    assert.equal(first?.status, 200);
    assert.equal(second?.status, 200);
    assert.notEqual(first?.connection, second?.connection);
  });
});

describe('KubeClient on a kept-alive connection the server has just closed', () => {
  it('sends the call again on a new connection', async () => {
    // A server that answers the first request on each connection and drops the connection when a
    // second one arrives on it: as an API server (or a load balancer) closing an idle connection
    // at the moment the client reuses it.
    const pod = JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'raftlet-0', namespace: 'ns1', resourceVersion: '7' } });
    const answer = `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(pod)}\r\nConnection: keep-alive\r\n\r\n${pod}`;
    let connections = 0;
    const sockets = new Set<Socket>();
    const server = createServer((socket) => {
      connections += 1;
      sockets.add(socket);
      let requests = 0;
      let buffered = '';
      socket.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('latin1');
        while (buffered.includes('\r\n\r\n')) {
          buffered = buffered.slice(buffered.indexOf('\r\n\r\n') + 4);
          requests += 1;
          if (requests === 1) socket.write(answer);
          else socket.destroy();
        }
      });
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const dir = await mkdtemp(join(tmpdir(), 'raftlet-kubeconfig-'));
    const port = (server.address() as AddressInfo).port;
    const path = await writeKubeconfig({ dir, server: `http://127.0.0.1:${port}`, token: 't', namespace: 'ns1' });
    const client = new KubeClient(loadKubeConfig(path), { timeoutMs: 5000 });
    try {
      assert.equal((await client.getPod('ns1', 'raftlet-0')).metadata?.resourceVersion, '7');
      assert.equal((await client.getPod('ns1', 'raftlet-0')).metadata?.resourceVersion, '7');
      assert.equal(connections, 2);
    } finally {
      client.close();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('KubeClient over TLS (as in a pod: the cluster CA, and here also a client certificate)', () => {
  it('verifies the server with the kubeconfig CA, presents the client certificate, and keeps one TLS connection', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'raftlet-kube-tls-'));
    const ca = createThrowawayCa(join(dir, 'ca'), 'kube-ca');
    const apiServer = ca.issue('api-server');
    const user = ca.issue('raftlet-user');
    const strangerCa = createThrowawayCa(join(dir, 'stranger'), 'someone-else');
    const pod = JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'raftlet-0', namespace: 'ns1', resourceVersion: '9' } });
    let handshakes = 0;
    const clientNames: string[] = [];
    const server = createHttpsServer(
      { cert: readFileSync(apiServer.certFile), key: readFileSync(apiServer.keyFile), ca: readFileSync(ca.caFile), requestCert: true, rejectUnauthorized: true },
      (req, res) => {
        const peer = (req.socket as TLSSocket).getPeerCertificate();
        clientNames.push(String(peer.subject?.CN));
        res.writeHead(req.url === '/api/v1/namespaces/ns1/pods/raftlet-0' ? 200 : 404, { 'Content-Type': 'application/json' }).end(pod);
      },
    );
    server.on('secureConnection', () => (handshakes += 1));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const kubeconfig = async (name: string, caFile: string): Promise<string> => {
      const file = join(dir, name);
      const config = {
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server: `https://127.0.0.1:${port}`, 'certificate-authority': caFile } }],
        users: [{ name: 'u', user: { 'client-certificate': user.certFile, 'client-key': user.keyFile } }],
        contexts: [{ name: 'x', context: { cluster: 'c', user: 'u', namespace: 'ns1' } }],
        'current-context': 'x',
      };
      await writeFile(file, JSON.stringify(config), { mode: 0o600 });
      return file;
    };
    const client = new KubeClient(loadKubeConfig(await kubeconfig('good', ca.caFile)), { timeoutMs: 5000 });
    const fooled = new KubeClient(loadKubeConfig(await kubeconfig('wrong-ca', strangerCa.caFile)), { timeoutMs: 5000 });
    try {
      for (let i = 0; i < 3; i++) assert.equal((await client.getPod('ns1', 'raftlet-0')).metadata?.resourceVersion, '9');
      assert.equal(handshakes, 1);
      assert.deepEqual(clientNames, ['raftlet-user', 'raftlet-user', 'raftlet-user']);
      // A server certificate the kubeconfig's CA did not sign is refused.
      const refused = await fooled.getPod('ns1', 'raftlet-0').then(
        () => null,
        (err: unknown) => err,
      );
      assert.ok(refused !== null, 'a server the CA did not sign is refused');
      assert.equal(classifyKubeError(refused).kind, 'unreachable');
      assert.equal(clientNames.length, 3);
    } finally {
      client.close();
      fooled.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await rm(dir, { recursive: true, force: true });
    }
  });
});

