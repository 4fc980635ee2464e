// Actor addresses (`kind:id`) and where each lives: a location (node, shard) picked by the ring
// over every shard of every node; in one process, thread 0 is the gateway and 1..N the shards.
import { HashRing } from './ring.js';

export const GATEWAY_THREAD = 0;

/** The id of the only node until there are several (DESIGN.md "Scale path" step 3). */
export const LOCAL_NODE = 'local';

export type ActorKind = 'user' | 'thread' | 'channel';

export const userAddress = (user: string): string => `user:${user}`;
export const threadAddress = (thread: string): string => `thread:${thread}`;
export const channelAddress = (channel: string): string => `channel:${channel}`;

/** Splits `kind:id` at the first colon (ids may contain colons). */
export function parseAddress(address: string): { kind: string; id: string } {
  const i = address.indexOf(':');
  return { kind: address.slice(0, i), id: address.slice(i + 1) };
}

/**
 * The ring key an actor is placed by. A 1:1 thread (`thread:d:<a>:<b>`, a < b) lives with its
 * first member's user actor: a message and that member's copy of it are written by one shard in
 * one transaction, and with two shards half of all pairs have both members there too.
 */
export function placementKey(address: string): string {
  if (!address.startsWith('thread:d:')) return address;
  const end = address.indexOf(':', 9);
  return end > 9 ? `user:${address.slice(9, end)}` : address;
}

/** Where an actor lives: a shard (0-based) of a node. */
export interface Location {
  readonly node: string;
  readonly shard: number;
}

/** How many shards a node runs; the ring's order of nodes must be the same everywhere. */
export interface NodeShards {
  node: string;
  shards: number;
}

export class Router {
  private readonly ring: HashRing;
  /** ring shard -> location; one frozen object each, so locate() allocates nothing */
  private readonly locations: Location[] = [];
  /** first ring shard of this node: ring shard r is local shard r - first */
  private readonly first: number;
  /** this node's shard count */
  readonly shardCount: number;

  /**
   * @param layout this node's shard count (one node), or every node's, in the same order on all
   * @param node this node's id
   */
  constructor(layout: number | readonly NodeShards[], readonly node = LOCAL_NODE) {
    const nodes = typeof layout === 'number' ? [{ node, shards: layout }] : layout;
    for (const n of nodes) {
      if (!Number.isInteger(n.shards) || n.shards < 1) throw new RangeError(`Router: node ${n.node} needs shards >= 1, got ${n.shards}`);
      for (let shard = 0; shard < n.shards; shard++) this.locations.push(Object.freeze({ node: n.node, shard }));
    }
    if (new Set(nodes.map((n) => n.node)).size !== nodes.length) throw new RangeError('Router: a node is listed twice');
    const mine = nodes.findIndex((n) => n.node === node);
    if (mine < 0) throw new RangeError(`Router: this node ${node} is not in the layout`);
    this.first = nodes.slice(0, mine).reduce((sum, n) => sum + n.shards, 0);
    this.shardCount = nodes[mine].shards;
    this.ring = new HashRing(this.locations.length);
  }

  /** The node and shard that own `address`. */
  locate(address: string): Location {
    return this.locations[this.ring.shardOf(placementKey(address))];
  }

  isLocal(location: Location): boolean {
    return location.node === this.node;
  }

  /**
   * The in-process transport's thread index (1-based) of the shard that owns `address`. Only
   * for actors of this node: a remote one has no thread here, which is a wiring bug.
   */
  threadOf(address: string): number {
    const r = this.ring.shardOf(placementKey(address));
    const local = r - this.first;
    if (local < 0 || local >= this.shardCount) {
      throw new RangeError(`Router: ${address} lives on node ${this.locations[r].node}, not on ${this.node}`);
    }
    return local + 1;
  }
}
