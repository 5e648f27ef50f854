// The cluster id in the data directory: made once when a cluster is born (by the member that writes
// its first configuration, or by `raftlet snapshot restore`), adopted by every member the cluster
// adds, and compared on every peer request (src/transport/cluster-id.ts). 128 random bits, so two
// clusters, two restores of the same snapshot file included, never share one by chance.
//
// A small file of its own beside the storage files (which ignore it), written atomically with
// fsync: after a crash it is either absent or whole.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLUSTER_ID_PATTERN, type ClusterIdentity } from '../transport/cluster-id.ts';
import { writeFileDurably } from './durable-file.ts';

export const CLUSTER_ID_FILE = 'raftlet-cluster-id';

/** The file is there but does not hold a cluster id: exit code 3, like any damaged data. */
export class ClusterIdFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClusterIdFileError';
  }
}

export function newClusterId(): string {
  return randomBytes(16).toString('hex');
}

export function isClusterId(text: string): boolean {
  return CLUSTER_ID_PATTERN.test(text);
}

/** The data directory's cluster id, or null if it has none (yet). */
export function readClusterId(dataDir: string): string | null {
  const path = join(dataDir, CLUSTER_ID_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const id = text.trim();
  if (!isClusterId(id)) throw new ClusterIdFileError(`${path} does not hold a cluster id (lower-case letters, digits and '-', 8 to 64 characters)`);
  return id;
}

/** Writes the id so that a crash leaves the old file or the whole new one. */
export function writeClusterId(dataDir: string, id: string): void {
  if (!isClusterId(id)) throw new Error(`not a cluster id: ${JSON.stringify(id)}`);
  writeFileDurably(join(dataDir, CLUSTER_ID_FILE), Buffer.from(`${id}\n`, 'utf8'));
}

/** A node's cluster id, as the peer transport asks for it, backed by the file. */
export class FileClusterIdentity implements ClusterIdentity {
  private id: string | null;
  private readonly dataDir: string;
  private readonly onAdopt: (id: string) => void;

  constructor(dataDir: string, id: string | null, onAdopt: (id: string) => void = () => undefined) {
    this.dataDir = dataDir;
    this.id = id;
    this.onAdopt = onAdopt;
  }

  current(): string | null {
    return this.id;
  }

  /** Takes `id` (default: a new random one) as this node's id: a new cluster is born here. A node
   * that already has one keeps it. */
  create(id: string = newClusterId()): string {
    if (this.id !== null) return this.id;
    return this.set(id);
  }

  adopt(id: string): void {
    if (this.id === id) return;
    if (this.id !== null) throw new Error(`this node already belongs to cluster ${this.id}`);
    this.set(id);
    this.onAdopt(id);
  }

  private set(id: string): string {
    writeClusterId(this.dataDir, id);
    this.id = id;
    return id;
  }
}
