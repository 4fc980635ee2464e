// A real cluster for tests: a local nats-server and N node processes (`node dist/src/main.js`,
// each its own data directory and port), which a test can kill -9 and start again on the same
// directory. Nodes run one shard each (the machine has 2 cores) and a short lease, so a node
// killed and restarted takes its partition back within a few seconds.
import { routerFor } from '../../actors/node-link.js';
import { userAddress } from '../../actors/router.js';
import { register } from '../../client/index.js';
import { startChildServer, type ChildServer } from './child-server.js';
import { startNats, type LocalNats } from './nats-server.js';
import { tempDataDir } from './server.js';

interface Teardown { teardown(fn: () => unknown): void }

export interface ClusterNode {
  id: string;
  dataDir: string;
  server: ChildServer;
  base: string;
  wsUrl: string;
}

export interface TestCluster {
  nats: LocalNats;
  nodes: ClusterNode[];
  /** Where an actor lives: the node id the ring gives it (every node computes the same). */
  nodeOf(address: string): string;
  /** Ends node i at once (SIGKILL) and resolves when it has exited. */
  kill(i: number): Promise<void>;
  /** Starts node i again on its data directory (after kill or stop). */
  restart(i: number): Promise<ClusterNode>;
  /** A new account (registered through node `via`) whose user actor lives on node `home`. */
  userOn(home: number, via?: number, prefix?: string): Promise<{ user: string; username: string; password: string }>;
}

export const CLUSTER_SHARDS = 1;
export const CLUSTER_LEASE_MS = 2000;

let users = 0;

export async function startCluster(t: Teardown, n = 3, env: Record<string, string> = {}): Promise<TestCluster> {
  const nats = await startNats(t);
  const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  const cluster = `t${process.pid}x${Math.floor(Math.random() * 1e6)}`;
  const router = routerFor(CLUSTER_SHARDS, { node: ids[0], nodes: ids, natsUrl: nats.url, cluster, epoch: 1 });
  const dirs = ids.map(() => tempDataDir(t));
  const nodeEnv = (i: number): Record<string, string> => ({
    SHARDS: String(CLUSTER_SHARDS), CLUSTER_NATS_URL: nats.url, NODE_ID: ids[i], CLUSTER_NODES: ids.join(','),
    CLUSTER_NAME: cluster, CLUSTER_LEASE_MS: String(CLUSTER_LEASE_MS), ...env,
  });
  const nodes: ClusterNode[] = [];
  const start = async (i: number): Promise<ClusterNode> => {
    const server = await startChildServer(dirs[i], nodeEnv(i));
    const node = { id: ids[i], dataDir: dirs[i], server, base: server.base, wsUrl: server.wsUrl };
    nodes[i] = node;
    return node;
  };
  const stopAll = async () => {
    await Promise.all(nodes.map(async (node) => {
      if (node.server.proc.exitCode !== null || node.server.proc.signalCode !== null) return;
      node.server.proc.kill('SIGTERM');
      await node.server.exited;
    }));
  };
  t.teardown(stopAll);
  // One at a time: each start waits for its directory replica and lease; parallel starts race
  // only for the cluster's epoch, which is fine, but serial keeps the logs readable.
  for (let i = 0; i < n; i++) await start(i);
  return {
    nats,
    nodes,
    nodeOf: (address) => router.locate(address).node,
    async kill(i) {
      const { proc, exited } = nodes[i].server;
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
    restart: start,
    async userOn(home, via = 0, prefix = 'u') {
      const password = 'correct horse battery';
      // User ids are random: draw accounts until one lands on `home` (1 in n on average).
      for (let attempt = 0; attempt < 64; attempt++) {
        const username = `${prefix}${process.pid % 1000}_${++users}`;
        const { user } = await register(nodes[via].base, { username, password });
        if (router.locate(userAddress(user)).node === ids[home]) return { user, username, password };
      }
      throw new Error(`no account landed on ${ids[home]} in 64 draws`);
    },
  };
}
