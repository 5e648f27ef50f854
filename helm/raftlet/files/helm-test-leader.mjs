// `helm test` for raftlet, for any application: passes once exactly one member pod is labelled
// leader and every other member follower, the leader Service's ready endpoints (EndpointSlices)
// are exactly that pod, and (only when LEADER_URL is set, i.e. with the demo app) the demo app
// answers through the leader Service from that pod. Plain Node, no packages; the pod's own
// ServiceAccount may only list pods and EndpointSlices.
//
// Environment: NAMESPACE, SELECTOR (the member pods' label selector), ROLE_LABEL, MEMBERS (how many
// member pods to expect), LEADER_SERVICE (optional), LEADER_URL (optional), TIMEOUT_MS (default
// 120000), POLL_MS (default 1000), KUBERNETES_API (default
// https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT), SERVICE_ACCOUNT_DIR (default the
// mounted service account).
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';

const env = process.env;
const saDir = env.SERVICE_ACCOUNT_DIR ?? '/var/run/secrets/kubernetes.io/serviceaccount';
const apiBase = env.KUBERNETES_API ?? `https://${env.KUBERNETES_SERVICE_HOST}:${env.KUBERNETES_SERVICE_PORT}`;
const namespace = env.NAMESPACE ?? readFileSync(`${saDir}/namespace`, 'utf8').trim();
const selector = env.SELECTOR;
const roleLabel = env.ROLE_LABEL ?? 'raftlet.io/role';
const members = Number(env.MEMBERS ?? '0');
const leaderService = env.LEADER_SERVICE ?? '';
const deadline = Date.now() + Number(env.TIMEOUT_MS ?? '120000');
const pollMs = Number(env.POLL_MS ?? '1000');

function get(url, headers) {
  const secure = url.startsWith('https:');
  const options = { headers, timeout: 5000 };
  if (secure && existsSync(`${saDir}/ca.crt`)) options.ca = readFileSync(`${saDir}/ca.crt`);
  return new Promise((resolve, reject) => {
    const req = (secure ? https : http).get(url, options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within 5 s`)));
    req.on('error', reject);
  });
}

// The projected token is rotated by the kubelet: read it for every request.
async function list(path, labelSelector) {
  const headers = { accept: 'application/json' };
  if (existsSync(`${saDir}/token`)) headers.authorization = `Bearer ${readFileSync(`${saDir}/token`, 'utf8').trim()}`;
  const url = `${apiBase}${path}?labelSelector=${encodeURIComponent(labelSelector)}`;
  const { status, body } = await get(url, headers);
  if (status !== 200) throw new Error(`GET ${path} answered ${status}: ${body.slice(0, 300)}`);
  return JSON.parse(body).items;
}

async function memberPods() {
  const items = await list(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`, selector);
  return items.map((pod) => ({ name: pod.metadata.name, role: pod.metadata.labels?.[roleLabel] ?? '(none)' }));
}

// Ready endpoints of a Service over all its EndpointSlices (ready unset counts as ready, as the
// API documents), by the pod they point at.
async function readyEndpointPods(service) {
  const slices = await list(`/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/endpointslices`, `kubernetes.io/service-name=${service}`);
  const pods = new Set();
  for (const slice of slices) {
    for (const endpoint of slice.endpoints ?? []) {
      if (endpoint.conditions?.ready === false) continue;
      pods.add(endpoint.targetRef?.kind === 'Pod' ? endpoint.targetRef.name : `(not a pod: ${endpoint.addresses?.join(' ') ?? '?'})`);
    }
  }
  return [...pods].sort();
}

async function poll(what, check) {
  let last = '';
  for (;;) {
    try {
      const outcome = await check();
      if (outcome.ok) return outcome.value;
      last = outcome.why;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) {
      console.error(`FAIL: ${what}: ${last}`);
      process.exit(1);
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

const leader = await poll(`exactly one pod labelled ${roleLabel}=leader`, async () => {
  const pods = await memberPods();
  const table = pods.map((pod) => `${pod.name}=${pod.role}`).join(', ');
  const leaders = pods.filter((pod) => pod.role === 'leader');
  const followers = pods.filter((pod) => pod.role === 'follower');
  if (leaders.length !== 1) return { ok: false, why: `${leaders.length} leaders among [${table}]` };
  if (members > 0 && pods.length !== members) return { ok: false, why: `${pods.length} of ${members} member pods exist: [${table}]` };
  if (followers.length !== pods.length - 1) return { ok: false, why: `not every other member is a follower: [${table}]` };
  return { ok: true, value: leaders[0].name, why: '' };
});
console.log(`ok: ${leader} is the only pod labelled ${roleLabel}=leader`);

if (leaderService !== '') {
  await poll(`Service ${leaderService} has exactly ${leader} as its ready endpoint`, async () => {
    const pods = await readyEndpointPods(leaderService);
    if (pods.length !== 1 || pods[0] !== leader) return { ok: false, why: `its ready endpoints are [${pods.join(', ')}]` };
    return { ok: true, value: pods, why: '' };
  });
  console.log(`ok: Service ${leaderService} sends traffic to ${leader} only`);
}

if (env.LEADER_URL) {
  const view = await poll(`${env.LEADER_URL} answers from ${leader}`, async () => {
    const { status, body } = await get(env.LEADER_URL, { accept: 'application/json' });
    if (status !== 200) return { ok: false, why: `answered ${status}: ${body.slice(0, 300)}` };
    const answer = JSON.parse(body);
    if (answer.pod !== leader || answer.role !== 'leader') return { ok: false, why: `answered ${body.trim()}` };
    return { ok: true, value: answer, why: '' };
  });
  console.log(`ok: the demo app behind the leader Service answered from ${view.pod} (role ${view.role}, term ${view.term})`);
}
