// A node joining its cluster at start: one control connection to NATS, the node's ownership
// lease (its epoch), and the directory replica caught up, all before any shard starts. What it
// returns is what the actor runtime needs (the NodeLink) and what the gateway writes through.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { NodeLink } from '../../actors/node-link.js';
import type { StorageEnv } from '../../storage/env.js';
import type { Config } from '../config.js';
import { DirectoryReplica } from './directory.js';
import { NodeLease, type LeaseError } from './node-lease.js';

export interface ClusterMembership {
  link: NodeLink;
  directory: DirectoryReplica;
  nc: NatsConnection;
  /** Stops the replica, gives the lease back, closes the connection (after the shards stopped). */
  leave(): Promise<void>;
}

/** A restarted node waits this many leases at most for its earlier run's lease to expire. */
const LEASE_WAIT_FACTOR = 3;

export async function joinCluster(config: Config, storage: StorageEnv, log: Logger, onLost: (err: LeaseError) => void): Promise<ClusterMembership> {
  const { clusterNatsUrl, nodeId: node, clusterName: cluster, clusterNodes: nodes, clusterLeaseMs: ttlMs } = config;
  const nc = await connect({ servers: clusterNatsUrl.split(',').map((s) => s.trim()), name: `parley ${node} control`, maxReconnectAttempts: -1 });
  try {
    const lease = await NodeLease.acquire(nc, { cluster, node, nodes, shards: config.shards, ttlMs, waitMs: LEASE_WAIT_FACTOR * ttlMs }, log, onLost);
    const directory = await DirectoryReplica.start(nc, cluster, node, storage, log);
    log.info({ node, nodes, epoch: lease.epoch }, 'joined the cluster');
    return {
      link: { node, nodes, natsUrl: clusterNatsUrl, cluster, epoch: lease.epoch },
      directory,
      nc,
      async leave() {
        directory.stop();
        await lease.release();
        await nc.drain().catch(() => nc.close());
      },
    };
  } catch (err) {
    await nc.close();
    throw err;
  }
}
