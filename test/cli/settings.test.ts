import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { SETTINGS, SETTING_KEYS, SettingsError, parseSettings, settingsHelp } from '../../src/config/settings.ts';
import type { Env, Settings, SettingsHost } from '../../src/config/settings.ts';

const TOKEN = 'a-test-token-of-32-characters-xx';
const TLS_FILES = { '/tls/c.pem': 'CERT', '/tls/k.pem': 'KEY-BYTES', '/tls/ca.pem': 'CA' };
const TLS_ENV = { RAFTLET_CLUSTER_TOKEN: TOKEN, RAFTLET_PEER_TLS_CERT_FILE: '/tls/c.pem', RAFTLET_PEER_TLS_KEY_FILE: '/tls/k.pem', RAFTLET_PEER_TLS_CA_FILE: '/tls/ca.pem' };

function host(files: Record<string, string> = {}, hostname = 'test-host'): SettingsHost {
  return {
    hostname: () => hostname,
    cwd: () => '/srv/raftlet',
    readFile: (file) => {
      const text = files[file];
      if (text === undefined) throw Object.assign(new Error(`ENOENT: ${file}`), { code: 'ENOENT' });
      return text;
    },
  };
}

function parse(argv: readonly string[], env: Env, h: SettingsHost = host()): Settings {
  return parseSettings(argv, env, h);
}

function errorOf(argv: readonly string[], env: Env, h: SettingsHost = host()): string {
  try {
    parseSettings(argv, env, h);
  } catch (err) {
    assert.ok(err instanceof SettingsError, `expected a SettingsError, got ${String(err)}`);
    assert.doesNotMatch(err.message, /\n/, 'the message must be one line');
    return err.message;
  }
  assert.fail(`expected ${JSON.stringify({ argv, env })} to be refused`);
}

describe('settings: defaults', () => {
  it('fills every setting from SPEC §3 with its default', () => {
    const s = parse([], { RAFTLET_CLUSTER_TOKEN: TOKEN });
    assert.deepEqual({ ...s, warnings: [] }, {
      nodeId: 'test-host',
      peerListen: { host: '0.0.0.0', port: 7070 },
      apiListen: { host: '127.0.0.1', port: 7071 },
      metricsListen: { host: '0.0.0.0', port: 9102 },
      advertiseUrl: 'http://test-host:7070',
      membersFrom: 'self',
      peers: [{ id: 'test-host', url: 'http://test-host:7070' }],
      discoveryService: null,
      dnsServer: null,
      bootstrapExpect: 3,
      dataDir: '/srv/raftlet/raftlet-data/test-host',
      heartbeatMs: 100,
      electionTimeoutMs: 1000,
      requestTimeoutMs: 5000,
      maxValueBytes: 1048576,
      snapshotEntries: 10000,
      rehearsal: true,
      clusterToken: TOKEN,
      clusterTokens: [TOKEN],
      clusterTokenFile: null,
      peerTls: null,
      peerTlsVerifyName: false,
      peerAuth: 'both',
      insecure: false,
      kubernetes: false,
      podName: 'test-host',
      podNamespace: 'default',
      roleLabel: 'raftlet.io/role',
      leaseName: null,
      logLevel: 'info',
      warnings: [],
      leaseDriftRatio: 0.1,
      appHealthUrl: null,
      appHealthIntervalMs: 1000,
      appHealthThreshold: 2,
      watchHistory: 10000,
      watchMaxWatchers: 1000,
      watchMaxBuffered: 1000,
    });
    assert.deepEqual(s.warnings, ['neither RAFTLET_PEERS nor RAFTLET_DISCOVERY_SERVICE is set: running a one-member cluster of test-host']);
  });

  it('takes the node id and pod from POD_NAME and POD_NAMESPACE (the downward API)', () => {
    const s = parse([], { RAFTLET_CLUSTER_TOKEN: TOKEN, POD_NAME: 'raftlet-2', POD_NAMESPACE: 'prod' });
    assert.equal(s.nodeId, 'raftlet-2');
    assert.equal(s.podName, 'raftlet-2');
    assert.equal(s.podNamespace, 'prod');
    assert.equal(s.dataDir, '/srv/raftlet/raftlet-data/raftlet-2');
  });

  it('makes an id of the first label of a mixed-case host name', () => {
    assert.equal(parse([], { RAFTLET_CLUSTER_TOKEN: TOKEN }, host({}, 'My-Laptop.local')).nodeId, 'my-laptop');
  });

  it('returns a deeply frozen object', () => {
    const s = parse([], { RAFTLET_CLUSTER_TOKEN: TOKEN, RAFTLET_PEERS: 'test-host=http://a:1' });
    assert.ok(Object.isFrozen(s));
    assert.ok(Object.isFrozen(s.peers));
    assert.ok(Object.isFrozen(s.peers[0]));
    assert.ok(Object.isFrozen(s.apiListen));
  });

  it('treats an empty variable as unset', () => {
    const s = parse([], { RAFTLET_CLUSTER_TOKEN: TOKEN, RAFTLET_HEARTBEAT_MS: '', RAFTLET_PEERS: '  ' });
    assert.equal(s.heartbeatMs, 100);
    assert.equal(s.membersFrom, 'self');
  });
});

describe('settings: sources', () => {
  it('lets a flag win over the environment', () => {
    const s = parse(['--heartbeat-ms', '50'], { RAFTLET_CLUSTER_TOKEN: TOKEN, RAFTLET_HEARTBEAT_MS: '70' });
    assert.equal(s.heartbeatMs, 50);
  });

  it('reads both --x=v and --x v, and the last of a repeated flag', () => {
    const s = parse(['--heartbeat-ms=20', '--election-timeout-ms', '200', '--heartbeat-ms', '30'], { RAFTLET_CLUSTER_TOKEN: TOKEN });
    assert.equal(s.heartbeatMs, 30);
    assert.equal(s.electionTimeoutMs, 200);
  });

  it('takes a bare switch as 1 and a switch with a value as that value', () => {
    assert.equal(parse(['--insecure'], {}).insecure, true);
    assert.equal(parse(['--insecure', '--heartbeat-ms=10'], {}).heartbeatMs, 10);
    assert.equal(parse(['--insecure', '0'], { RAFTLET_CLUSTER_TOKEN: TOKEN }).insecure, false);
    assert.equal(parse(['--insecure=1'], {}).clusterToken, null);
  });

  it('takes true/false for a boolean setting as well as 1/0 (what Helm renders)', () => {
    assert.equal(parse([], { RAFTLET_INSECURE: 'true' }).insecure, true);
    assert.equal(parse(['--insecure=false'], { RAFTLET_CLUSTER_TOKEN: TOKEN }).insecure, false);
    const base = { RAFTLET_CLUSTER_TOKEN: TOKEN, RAFTLET_DISCOVERY_SERVICE: 'raftlet.ns.svc.cluster.local' };
    assert.equal(parse([], { ...base, RAFTLET_KUBERNETES: 'true' }).kubernetes, true);
    assert.equal(parse([], { ...base, RAFTLET_KUBERNETES: 'false', KUBERNETES_SERVICE_HOST: '10.0.0.1' }).kubernetes, false);
  });

  it('reads the token file relative to the working directory, without surrounding whitespace', () => {
    const s = parse([], { RAFTLET_CLUSTER_TOKEN_FILE: 'secret/token' }, host({ '/srv/raftlet/secret/token': `  ${TOKEN}\n` }));
    assert.deepEqual(s.clusterTokens, [TOKEN]);
    assert.equal(s.clusterTokenFile, '/srv/raftlet/secret/token');
    assert.equal(s.clusterToken, TOKEN);
  });

  it('accepts a token set: one per line in the file, comma-separated in the variable; the first is sent', () => {
    const a = 'a'.repeat(20);
    const b = 'b'.repeat(20);
    const fromFile = parse([], { RAFTLET_CLUSTER_TOKEN_FILE: '/t' }, host({ '/t': `${b}\n\n  ${a}  \n` }));
    assert.deepEqual(fromFile.clusterTokens, [b, a]);
    assert.equal(fromFile.clusterToken, b);
    const fromVariable = parse([], { RAFTLET_CLUSTER_TOKEN: ` ${a}, ${b},` });
    assert.deepEqual(fromVariable.clusterTokens, [a, b]);
    assert.equal(fromVariable.clusterTokenFile, null);
  });

  it('accepts 1/0 and true/false for every boolean setting (SPEC §3)', () => {
    assert.equal(parse([], { RAFTLET_INSECURE: 'true' }).insecure, true);
    assert.equal(parse([], { RAFTLET_INSECURE: 'false', RAFTLET_CLUSTER_TOKEN: TOKEN }).insecure, false);
    assert.equal(parse(['--kubernetes=false'], { RAFTLET_CLUSTER_TOKEN: TOKEN, KUBECONFIG: '/k' }).kubernetes, false);
    assert.equal(parse([], { RAFTLET_REHEARSAL: '0', RAFTLET_CLUSTER_TOKEN: TOKEN }).rehearsal, false);
    assert.equal(parse(['--rehearsal=false'], { RAFTLET_CLUSTER_TOKEN: TOKEN }).rehearsal, false);
  });

  it('turns Kubernetes on when KUBECONFIG or KUBERNETES_SERVICE_HOST is set, unless told otherwise', () => {
    const base = { RAFTLET_CLUSTER_TOKEN: TOKEN, RAFTLET_DISCOVERY_SERVICE: 'raftlet.ns.svc.cluster.local' };
    assert.equal(parse([], base).kubernetes, false);
    assert.equal(parse([], { ...base, KUBECONFIG: '/k/config' }).kubernetes, true);
    assert.equal(parse([], { ...base, KUBERNETES_SERVICE_HOST: '10.0.0.1' }).kubernetes, true);
    assert.equal(parse(['--kubernetes=0'], { ...base, KUBERNETES_SERVICE_HOST: '10.0.0.1' }).kubernetes, false);
    assert.equal(parse(['--kubernetes'], base).kubernetes, true);
  });

  it("falls back to the service account's namespace inside a pod", () => {
    const files = { '/var/run/secrets/kubernetes.io/serviceaccount/namespace': 'team-a\n' };
    const s = parse([], { RAFTLET_CLUSTER_TOKEN: TOKEN, RAFTLET_DISCOVERY_SERVICE: 'raftlet', KUBERNETES_SERVICE_HOST: '10.0.0.1' }, host(files));
    assert.equal(s.podNamespace, 'team-a');
  });
});

describe('settings: members and advertise URL', () => {
  it('uses the static list, self included, and advertises its own entry', () => {
    const s = parse([], {
      RAFTLET_CLUSTER_TOKEN: TOKEN,
      RAFTLET_NODE_ID: 'b',
      RAFTLET_PEERS: 'a=http://10.0.0.1:7070, b=http://10.0.0.2:7070/ ,c=https://c.example:443,',
    });
    assert.equal(s.membersFrom, 'peers');
    assert.deepEqual(s.peers, [
      { id: 'a', url: 'http://10.0.0.1:7070' },
      { id: 'b', url: 'http://10.0.0.2:7070' },
      { id: 'c', url: 'https://c.example' },
    ]);
    assert.equal(s.advertiseUrl, 'http://10.0.0.2:7070');
  });

  it('derives <id>.<service> behind a headless Service, the listen host when specific, and brackets IPv6', () => {
    const base = { RAFTLET_CLUSTER_TOKEN: TOKEN, RAFTLET_NODE_ID: 'raftlet-0' };
    const dns = parse([], { ...base, RAFTLET_DISCOVERY_SERVICE: 'raftlet.ns.svc.cluster.local.' });
    assert.equal(dns.membersFrom, 'dns');
    assert.deepEqual(dns.peers, []);
    assert.equal(dns.discoveryService, 'raftlet.ns.svc.cluster.local');
    assert.equal(dns.advertiseUrl, 'http://raftlet-0.raftlet.ns.svc.cluster.local:7070');
    assert.equal(parse([], { ...base, RAFTLET_PEER_LISTEN: '10.1.2.3:8000' }).advertiseUrl, 'http://10.1.2.3:8000');
    const v6 = parse([], { ...base, RAFTLET_PEER_LISTEN: '[::1]:8000' });
    assert.deepEqual(v6.peerListen, { host: '::1', port: 8000 });
    assert.equal(v6.advertiseUrl, 'http://[::1]:8000');
    assert.equal(parse([], { ...base, RAFTLET_ADVERTISE_URL: 'http://me.example:9000/' }).advertiseUrl, 'http://me.example:9000');
  });

  it('parses the DNS server and listen addresses', () => {
    const s = parse([], {
      RAFTLET_CLUSTER_TOKEN: TOKEN, RAFTLET_DISCOVERY_SERVICE: 'raftlet', RAFTLET_DNS_SERVER: '127.0.0.1:15353',
      RAFTLET_API_LISTEN: 'localhost:0', RAFTLET_METRICS_LISTEN: ':9999',
    });
    assert.deepEqual(s.dnsServer, { host: '127.0.0.1', port: 15353 });
    assert.deepEqual(s.apiListen, { host: 'localhost', port: 0 });
    assert.deepEqual(s.metricsListen, { host: '0.0.0.0', port: 9999 });
    assert.deepEqual(parse([], { RAFTLET_CLUSTER_TOKEN: TOKEN, RAFTLET_DISCOVERY_SERVICE: 'x', RAFTLET_DNS_SERVER: '[::1]' }).dnsServer,
      { host: '::1', port: 53 });
  });
});

describe('settings: warnings', () => {
  it('names unknown RAFTLET_ variables with a suggestion', () => {
    const s = parse([], { RAFTLET_CLUSTER_TOKEN: TOKEN, RAFTLET_HEARTBEAT: '10', RAFTLET_USE_DIST: '1' });
    assert.ok(s.warnings.includes('unknown environment variable RAFTLET_HEARTBEAT is ignored; did you mean RAFTLET_HEARTBEAT_MS?'),
      s.warnings.join('\n'));
    assert.ok(!s.warnings.some((w) => w.includes('RAFTLET_USE_DIST')));
  });

  it('warns loudly in insecure mode and about settings that have no effect', () => {
    const s = parse([], { RAFTLET_INSECURE: '1', RAFTLET_DNS_SERVER: '127.0.0.1', RAFTLET_LEASE_NAME: 'raftlet' });
    assert.ok(s.warnings.some((w) => w.startsWith('RAFTLET_INSECURE=1: peer RPC is NOT authenticated')));
    assert.ok(s.warnings.includes('RAFTLET_DNS_SERVER is ignored: it only serves RAFTLET_DISCOVERY_SERVICE'));
    assert.ok(s.warnings.includes('RAFTLET_LEASE_NAME is ignored: Kubernetes is off (RAFTLET_KUBERNETES)'));
  });
});

// Each row: flags, environment (a valid token is added unless the row sets token variables or
// RAFTLET_INSECURE), and the exact one-line message.
const REFUSED: readonly { argv?: string[]; env?: Record<string, string>; files?: Record<string, string>; hostname?: string; message: string }[] = [
  // timing
  { env: { RAFTLET_HEARTBEAT_MS: '500', RAFTLET_ELECTION_TIMEOUT_MS: '300' },
    message: 'RAFTLET_HEARTBEAT_MS must be below RAFTLET_ELECTION_TIMEOUT_MS (got 500 >= 300)' },
  { argv: ['--heartbeat-ms=500', '--election-timeout-ms', '300'],
    message: '--heartbeat-ms must be below --election-timeout-ms (got 500 >= 300)' },
  { env: { RAFTLET_HEARTBEAT_MS: '1500' }, message: 'RAFTLET_HEARTBEAT_MS must be below RAFTLET_ELECTION_TIMEOUT_MS (got 1500 >= 1000)' },
  { env: { RAFTLET_HEARTBEAT_MS: '200', RAFTLET_ELECTION_TIMEOUT_MS: '300' },
    message: 'RAFTLET_ELECTION_TIMEOUT_MS must be at least 2 x RAFTLET_HEARTBEAT_MS, or a single late heartbeat starts an election (got 300 < 2 x 200)' },
  { env: { RAFTLET_HEARTBEAT_MS: '10ms' }, message: 'RAFTLET_HEARTBEAT_MS must be a whole number (got "10ms")' },
  { env: { RAFTLET_HEARTBEAT_MS: '1.5' }, message: 'RAFTLET_HEARTBEAT_MS must be a whole number (got "1.5")' },
  { argv: ['--heartbeat-ms', '-5'], message: '--heartbeat-ms must be a whole number (got "-5")' },
  { env: { RAFTLET_HEARTBEAT_MS: '0' }, message: 'RAFTLET_HEARTBEAT_MS must be between 1 and 60000 (got "0")' },
  { env: { RAFTLET_ELECTION_TIMEOUT_MS: '1e3' }, message: 'RAFTLET_ELECTION_TIMEOUT_MS must be a whole number (got "1e3")' },
  { env: { RAFTLET_REQUEST_TIMEOUT_MS: '0' }, message: 'RAFTLET_REQUEST_TIMEOUT_MS must be between 1 and 3600000 (got "0")' },
  { env: { RAFTLET_MAX_VALUE_BYTES: '0' }, message: 'RAFTLET_MAX_VALUE_BYTES must be between 1 and 67108864 (got "0")' },
  { env: { RAFTLET_MAX_VALUE_BYTES: '67108865' }, message: 'RAFTLET_MAX_VALUE_BYTES must be between 1 and 67108864 (got "67108865")' },
  { env: { RAFTLET_BOOTSTRAP_EXPECT: '0' }, message: 'RAFTLET_BOOTSTRAP_EXPECT must be between 1 and 1000 (got "0")' },
  // flags
  { argv: ['--heartbeat', '10'], message: 'unknown flag --heartbeat for raftlet run; did you mean --heartbeat-ms? (see raftlet run --help)' },
  { argv: ['--frobnicate'], message: 'unknown flag --frobnicate for raftlet run (see raftlet run --help)' },
  { argv: ['extra'], message: 'raftlet run takes flags only, not "extra" (see raftlet run --help)' },
  { argv: ['-v'], message: 'raftlet run takes flags only, not "-v" (see raftlet run --help)' },
  { argv: ['--heartbeat-ms'], message: '--heartbeat-ms needs a value' },
  // addresses
  { env: { RAFTLET_API_LISTEN: '7071' }, message: 'RAFTLET_API_LISTEN must be HOST:PORT such as 0.0.0.0:7070 or [::1]:7070 (got "7071")' },
  { env: { RAFTLET_API_LISTEN: '127.0.0.1:70000' }, message: 'RAFTLET_API_LISTEN must have a port between 0 and 65535 (got "127.0.0.1:70000")' },
  { env: { RAFTLET_API_LISTEN: '127.0.0.1:http' }, message: 'RAFTLET_API_LISTEN must have a port between 0 and 65535 (got "127.0.0.1:http")' },
  { env: { RAFTLET_PEER_LISTEN: '::1:7070' }, message: 'RAFTLET_PEER_LISTEN must put an IPv6 address in brackets, e.g. [::1]:7070 (got "::1:7070")' },
  { env: { RAFTLET_PEER_LISTEN: '[1.2.3.4]:7070' }, message: 'RAFTLET_PEER_LISTEN must have an IPv6 address inside the brackets (got "[1.2.3.4]:7070")' },
  { env: { RAFTLET_METRICS_LISTEN: 'bad host:1' }, message: 'RAFTLET_METRICS_LISTEN must be HOST:PORT such as 0.0.0.0:7070 or [::1]:7070 (got "bad host:1")' },
  { env: { RAFTLET_API_LISTEN: '0.0.0.0:7070' }, message: 'RAFTLET_API_LISTEN uses port 7070, which RAFTLET_PEER_LISTEN already uses' },
  { env: { RAFTLET_PEER_LISTEN: '127.0.0.1:0' },
    message: 'RAFTLET_PEER_LISTEN has port 0, so peers cannot be told where to reach this node; set RAFTLET_ADVERTISE_URL or a fixed port' },
  { env: { RAFTLET_DISCOVERY_SERVICE: 'raftlet', RAFTLET_DNS_SERVER: 'dns.local:53' },
    message: 'RAFTLET_DNS_SERVER must be IP:PORT such as 127.0.0.1:53 or [::1]:53 (got "dns.local:53")' },
  { env: { RAFTLET_DISCOVERY_SERVICE: 'raftlet_svc' }, message: 'RAFTLET_DISCOVERY_SERVICE must be a DNS name such as raftlet.default.svc.cluster.local (got "raftlet_svc")' },
  { env: { RAFTLET_ADVERTISE_URL: 'raftlet-0:7070' }, message: 'RAFTLET_ADVERTISE_URL must be an http:// or https:// URL (got "raftlet-0:7070")' },
  { env: { RAFTLET_ADVERTISE_URL: 'not a url' }, message: 'RAFTLET_ADVERTISE_URL must be a URL such as http://raftlet-0.raftlet:7070 (got "not a url")' },
  { env: { RAFTLET_ADVERTISE_URL: 'http://a:1/raft' },
    message: 'RAFTLET_ADVERTISE_URL must be scheme://host:port without a path, query or fragment (got "http://a:1/raft")' },
  { env: { RAFTLET_ADVERTISE_URL: 'http://u:p@a:1' },
    message: 'RAFTLET_ADVERTISE_URL must not carry credentials (peer RPC uses the cluster token) (got "http://u:p@a:1")' },
  // members
  { env: { RAFTLET_NODE_ID: 'a', RAFTLET_PEERS: 'a=http://a:1,b' },
    message: 'RAFTLET_PEERS must be id=url,id=url (the entry "b" has no \'=\') (got "a=http://a:1,b")' },
  { env: { RAFTLET_NODE_ID: 'a', RAFTLET_PEERS: 'a=http://a:1,a=http://b:1' }, message: 'RAFTLET_PEERS lists a twice' },
  { env: { RAFTLET_NODE_ID: 'a', RAFTLET_PEERS: 'a=http://a:1,b=http://a:1/' }, message: 'RAFTLET_PEERS gives a and b the same URL http://a:1' },
  { env: { RAFTLET_NODE_ID: 'a', RAFTLET_PEERS: 'a=http://a:1,B_2=http://b:1' },
    message: 'RAFTLET_PEERS must use DNS-1123 labels as ids (lower-case letters, digits, \'-\'), not "B_2" (got "a=http://a:1,B_2=http://b:1")' },
  { env: { RAFTLET_NODE_ID: 'a', RAFTLET_PEERS: 'a=127.0.0.1:7070' },
    message: 'RAFTLET_PEERS entry a must be a URL such as http://raftlet-0.raftlet:7070 (got "127.0.0.1:7070")' },
  { env: { RAFTLET_PEERS: ',,' }, message: 'RAFTLET_PEERS must list at least one member as id=url (got ",,")' },
  { env: { RAFTLET_NODE_ID: 'd', RAFTLET_PEERS: 'a=http://a:1,b=http://b:1' },
    message: 'RAFTLET_PEERS must include this node\'s id "d" (listed: a, b); set RAFTLET_NODE_ID to one of them or add this node' },
  { argv: ['--peers', 'a=http://a:1'], env: { RAFTLET_NODE_ID: 'a', RAFTLET_DISCOVERY_SERVICE: 'raftlet' },
    message: 'set --peers or RAFTLET_DISCOVERY_SERVICE, not both: members come either from a static list or from DNS' },
  { env: { RAFTLET_NODE_ID: 'a', RAFTLET_PEERS: 'a=http://a:1', RAFTLET_ADVERTISE_URL: 'http://other:1' },
    message: "RAFTLET_ADVERTISE_URL (http://other:1) differs from this node's entry in RAFTLET_PEERS (http://a:1); peers would reach it at the wrong address" },
  { env: { KUBERNETES_SERVICE_HOST: '10.0.0.1' },
    message: 'RAFTLET_DISCOVERY_SERVICE (or RAFTLET_PEERS) must be set when Kubernetes is on, or every pod would form a cluster of its own and label itself leader' },
  // ids and names
  { env: { RAFTLET_NODE_ID: 'Node_1' },
    message: 'RAFTLET_NODE_ID must be a DNS-1123 label: 1 to 63 lower-case letters, digits or \'-\', starting and ending with a letter or digit (got "Node_1")' },
  { env: { RAFTLET_NODE_ID: 'x'.repeat(64) },
    message: `RAFTLET_NODE_ID must be a DNS-1123 label: 1 to 63 lower-case letters, digits or '-', starting and ending with a letter or digit (got "${'x'.repeat(64)}")` },
  { env: { POD_NAME: 'raftlet-' },
    message: 'POD_NAME must be a DNS-1123 label: 1 to 63 lower-case letters, digits or \'-\', starting and ending with a letter or digit (got "raftlet-")' },
  { hostname: '_weird_', message: 'RAFTLET_NODE_ID is not set and the host name "_weird_" does not make a valid id; set RAFTLET_NODE_ID' },
  { env: { RAFTLET_POD_NAMESPACE: 'Prod' },
    message: 'RAFTLET_POD_NAMESPACE must be a DNS-1123 label: 1 to 63 lower-case letters, digits or \'-\', starting and ending with a letter or digit (got "Prod")' },
  { env: { RAFTLET_LEASE_NAME: 'my_lease' },
    message: 'RAFTLET_LEASE_NAME must be a DNS-1123 subdomain: lower-case letters, digits, \'-\' and \'.\', at most 253 characters (got "my_lease")' },
  { env: { RAFTLET_ROLE_LABEL: 'raftlet.io/' },
    message: 'RAFTLET_ROLE_LABEL must be a Kubernetes label key: [DNS-subdomain/]name, name at most 63 letters, digits, -, _ or . (got "raftlet.io/")' },
  { env: { RAFTLET_LOG_LEVEL: 'verbose' },
    message: 'RAFTLET_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent (got "verbose")' },
  { env: { RAFTLET_KUBERNETES: 'yes' }, message: 'RAFTLET_KUBERNETES must be auto, 1, 0, true or false (got "yes")' },
  { env: { RAFTLET_KUBERNETES: 'True' }, message: 'RAFTLET_KUBERNETES must be auto, 1, 0, true or false (got "True")' },
  // token
  { env: { RAFTLET_INSECURE: 'yes' }, message: 'RAFTLET_INSECURE must be 1, 0, true or false (got "yes")' },
  { env: { RAFTLET_INSECURE: 'TRUE' }, message: 'RAFTLET_INSECURE must be 1, 0, true or false (got "TRUE")' },
  { env: { RAFTLET_REHEARSAL: 'off' }, message: 'RAFTLET_REHEARSAL must be 1, 0, true or false (got "off")' },
  { env: { RAFTLET_INSECURE: '0' },
    message: 'RAFTLET_CLUSTER_TOKEN or RAFTLET_CLUSTER_TOKEN_FILE is required: a shared secret for peer RPC (e.g. openssl rand -hex 32); RAFTLET_INSECURE=1 runs without one for local experiments' },
  { env: { RAFTLET_CLUSTER_TOKEN: TOKEN, RAFTLET_CLUSTER_TOKEN_FILE: '/t' },
    message: 'RAFTLET_CLUSTER_TOKEN and RAFTLET_CLUSTER_TOKEN_FILE are both set; keep one' },
  { env: { RAFTLET_INSECURE: '1', RAFTLET_CLUSTER_TOKEN_FILE: '/t' },
    message: 'RAFTLET_INSECURE=1 turns peer authentication off, so RAFTLET_CLUSTER_TOKEN_FILE must not be set too; unset one' },
  { env: { RAFTLET_CLUSTER_TOKEN: 'short' }, message: 'RAFTLET_CLUSTER_TOKEN must hold at least 16 characters (got 5); e.g. openssl rand -hex 32' },
  { env: { RAFTLET_CLUSTER_TOKEN: 'with a space in the middle' },
    message: 'RAFTLET_CLUSTER_TOKEN must hold printable ASCII without spaces (it goes into an HTTP header)' },
  { env: { RAFTLET_CLUSTER_TOKEN_FILE: '/run/missing' }, message: 'RAFTLET_CLUSTER_TOKEN_FILE cannot be read (ENOENT: /run/missing)' },
  { env: { RAFTLET_CLUSTER_TOKEN_FILE: 'tok' }, files: { '/srv/raftlet/tok': '\n\n' },
    message: 'the file RAFTLET_CLUSTER_TOKEN_FILE (/srv/raftlet/tok) holds no token' },
  { env: { RAFTLET_CLUSTER_TOKEN_FILE: 'tok' }, files: { '/srv/raftlet/tok': `${'a'.repeat(20)}\nshort\n` },
    message: 'the file RAFTLET_CLUSTER_TOKEN_FILE (/srv/raftlet/tok) (token 2 of 2) must hold at least 16 characters (got 5); e.g. openssl rand -hex 32' },
  { env: { RAFTLET_PEER_TLS_CERT_FILE: '/tls/c.pem', RAFTLET_PEER_TLS_CA_FILE: '/tls/ca.pem' },
    message: 'RAFTLET_PEER_TLS_KEY_FILE must be set too: peer TLS needs this member\'s certificate, its key and the CA (all three or none)' },
  { env: { RAFTLET_PEER_TLS_CERT_FILE: '/tls/c.pem', RAFTLET_PEER_TLS_KEY_FILE: '/tls/k.pem', RAFTLET_PEER_TLS_CA_FILE: '/tls/none.pem' },
    files: { '/tls/c.pem': 'c', '/tls/k.pem': 'k' }, message: 'RAFTLET_PEER_TLS_CA_FILE cannot be read (ENOENT: /tls/none.pem)' },
  { env: { RAFTLET_PEER_AUTH: 'tls' },
    message: 'RAFTLET_PEER_AUTH=tls needs peer TLS: set RAFTLET_PEER_TLS_CERT_FILE, RAFTLET_PEER_TLS_KEY_FILE, RAFTLET_PEER_TLS_CA_FILE' },
  { env: { RAFTLET_PEER_AUTH: 'cert' }, message: 'RAFTLET_PEER_AUTH must be one of both, tls, token (got "cert")' },
  { env: { RAFTLET_PEER_TLS_VERIFY_NAME: 'on' }, message: 'RAFTLET_PEER_TLS_VERIFY_NAME must be 1, 0, true or false (got "on")' },
  { env: { ...TLS_ENV, RAFTLET_ADVERTISE_URL: 'http://raftlet-0.raftlet:7070' }, files: TLS_FILES,
    message: 'RAFTLET_ADVERTISE_URL must be an https:// URL when peer TLS is on (got "http://raftlet-0.raftlet:7070")' },
  { env: { ...TLS_ENV, RAFTLET_NODE_ID: 'a', RAFTLET_PEERS: 'a=https://a:7070,b=http://b:7070' }, files: TLS_FILES,
    message: 'RAFTLET_PEERS must use https:// URLs when peer TLS is on (b is "http://b:7070")' },
  { env: { RAFTLET_CLUSTER_TOKEN: `${'a'.repeat(20)},short` },
    message: 'RAFTLET_CLUSTER_TOKEN (token 2 of 2) must hold at least 16 characters (got 5); e.g. openssl rand -hex 32' },
];

describe('settings: peer TLS', () => {
  it('takes all three files, derives an https advertise URL, and turns the token off only with TLS', () => {
    const s = parse([], { ...TLS_ENV }, host(TLS_FILES));
    assert.deepEqual(s.peerTls, { certFile: '/tls/c.pem', keyFile: '/tls/k.pem', caFile: '/tls/ca.pem' });
    assert.equal(s.advertiseUrl, 'https://test-host:7070');
    assert.equal(s.peerAuth, 'both');
    assert.equal(s.clusterToken, TOKEN);
    const tlsOnly = parse([], { ...TLS_ENV, RAFTLET_CLUSTER_TOKEN: '', RAFTLET_PEER_AUTH: 'tls', RAFTLET_PEER_TLS_VERIFY_NAME: 'true' }, host(TLS_FILES));
    assert.equal(tlsOnly.clusterToken, null);
    assert.equal(tlsOnly.clusterTokens, null);
    assert.equal(tlsOnly.peerTlsVerifyName, true);
    const flags = parse(['--peer-tls-cert-file=/tls/c.pem', '--peer-tls-key-file', '/tls/k.pem', '--peer-tls-ca-file=/tls/ca.pem'], { RAFTLET_CLUSTER_TOKEN: TOKEN }, host(TLS_FILES));
    assert.equal(flags.peerTls?.keyFile, '/tls/k.pem');
  });

  it('warns when the key file can be read by others, naming the file and never its contents', () => {
    const h = { ...host(TLS_FILES), fileMode: (file: string) => (file === '/tls/k.pem' ? 0o644 : 0o600) };
    const s = parseSettings([], { ...TLS_ENV }, h);
    const warning = s.warnings.find((w) => w.includes('RAFTLET_PEER_TLS_KEY_FILE'));
    assert.match(String(warning), /\/tls\/k\.pem\) can be read by its group or others \(mode 644\)/);
    assert.doesNotMatch(String(warning), /KEY-BYTES/);
  });
});

describe('settings: every mistake is one line naming the setting', () => {
  for (const row of REFUSED) {
    const env = { ...row.env };
    const tokenGiven = 'RAFTLET_CLUSTER_TOKEN' in env || 'RAFTLET_CLUSTER_TOKEN_FILE' in env || 'RAFTLET_INSECURE' in env;
    if (!tokenGiven) env.RAFTLET_CLUSTER_TOKEN = TOKEN;
    it(row.message, () => {
      assert.equal(errorOf(row.argv ?? [], env, host(row.files, row.hostname)), row.message);
    });
  }

  it('never echoes the token', () => {
    const message = errorOf([], { RAFTLET_CLUSTER_TOKEN: 'sekrit sekrit sekrit' });
    assert.doesNotMatch(message, /sekrit/);
  });

  it('refuses any value of any setting with a SettingsError, never another exception', () => {
    fc.assert(fc.property(fc.constantFrom(...SETTING_KEYS), fc.string({ maxLength: 40 }), (key, value) => {
      const env: Record<string, string> = { RAFTLET_INSECURE: '1', [SETTINGS[key].env]: value };
      try {
        parseSettings([], env, host());
      } catch (err) {
        assert.ok(err instanceof SettingsError, String(err));
        assert.doesNotMatch(err.message, /[\n\r]/);
      }
    }), { numRuns: 500 });
  });
});

describe('settings: help', () => {
  it('lists every setting of the table with its flag, variable and default', () => {
    const help = settingsHelp().join('\n');
    for (const key of SETTING_KEYS) {
      const s = SETTINGS[key];
      assert.match(help, new RegExp(`--${s.flag} .*${s.env}`), key);
      assert.equal(`--${s.flag}`, `--${s.env.slice('RAFTLET_'.length).toLowerCase().replaceAll('_', '-')}`);
    }
    assert.match(help, /RAFTLET_HEARTBEAT_MS\n.*default: 100/);
  });
});
