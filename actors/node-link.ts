// How the threads of one node reach the other nodes of a cluster: the static layout (every node
// runs the same shard count, listed in the same order everywhere), and one NATS connection and
// NatsTransport per thread. Absent (no cluster), a node is alone and nothing here runs.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { NatsTransport } from './nats-transport.js';
import { Router } from './router.js';
import type { PeerId, TransportEvents } from './transport.js';

export interface NodeLink {
  /** this node's id */
  node: string;
  /** every node's id, in the same order on all of them: the ring's layout */
  nodes: string[];
  natsUrl: string;
  /** the cluster's name: its subjects start `parley.<cluster>.`, its KV buckets `parley-<cluster>-` */
  cluster: string;
  /** this node's fencing token: the revision its ownership lease was created with */
  epoch: number;
  /** the transports' heartbeat (ms); a peer silent for three is gone */
  heartbeatMs?: number;
}

/** The ring over every shard of every node (or of this node alone). */
export function routerFor(shards: number, link: NodeLink | undefined): Router {
  if (!link) return new Router(shards);
  return new Router(link.nodes.map((node) => ({ node, shards })), link.node);
}

export interface RemoteLink {
  transport: NatsTransport;
  /** the thread's connection, for whatever else it sends to the cluster (directory rows) */
  nc: NatsConnection;
  /** Closes the transport (peers see it go), then the connection. */
  close(): Promise<void>;
}

/** Connects thread `self` to the cluster: its own NATS connection, its transport started. */
export async function openRemote(self: PeerId, events: TransportEvents, log: Logger, link: NodeLink): Promise<RemoteLink> {
  const nc: NatsConnection = await connect({ servers: link.natsUrl.split(',').map((u) => u.trim()), name: `parley ${link.node} peer ${self}`, maxReconnectAttempts: -1 });
  const transport = new NatsTransport(self, events, log, { nc, prefix: `parley.${link.cluster}`, epoch: link.epoch, heartbeatMs: link.heartbeatMs });
  await transport.start();
  return {
    transport,
    nc,
    async close() {
      transport.close();
      await nc.drain().catch(() => nc.close());
    },
  };
}
