// A kubeconfig file for tests: one cluster at the double's URL, one token user, one context with
// the namespace, so that client-node (loadFromFile) and kubectl (--kubeconfig) both use it as is.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';

export interface KubeconfigInput {
  readonly dir: string;
  readonly server: string;
  readonly token: string;
  readonly namespace: string;
  readonly fileName?: string;
}

export async function writeKubeconfig(input: KubeconfigInput): Promise<string> {
  const path = join(input.dir, input.fileName ?? 'kubeconfig');
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    // client-node refuses a plain-HTTP server unless TLS verification is explicitly off.
    clusters: [{ name: 'k8s-double', cluster: { server: input.server, 'insecure-skip-tls-verify': input.server.startsWith('http:') } }],
    users: [{ name: 'raftlet', user: { token: input.token } }],
    contexts: [{ name: 'k8s-double', context: { cluster: 'k8s-double', user: 'raftlet', namespace: input.namespace } }],
    'current-context': 'k8s-double',
    preferences: {},
  };
  await writeFile(path, stringify(config), { mode: 0o600 });
  return path;
}
