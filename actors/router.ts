// Actor addresses (`kind:id`) and where each lives: a location (node, shard) picked by the ring
// over every shard of every node; in one process, thread 0 is the gateway and 1..N the shards.
import { HashRing } from './ring.js';

export const GATEWAY_THREAD = 0;

/**
 * Transport PeerIds are global: node ordinal (its place in the layout) × NODE_STRIDE + thread.
 * Alone, a node is ordinal 0, so its PeerIds are its thread indices (0 gateway, 1..N shards).
 */
export const NODE_STRIDE = 256;

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
  /** this node's first PeerId (its gateway's): ordinal × NODE_STRIDE */
  readonly base: number;
  /** ring shard r's node ordinal, and the node ids in layout order */
  private readonly ordinals: number[] = [];
  readonly nodes: readonly string[];
  /** the ring shard index of each node's first shard, in layout order */
  private readonly firsts: number[] = [];

  /**
   * @param layout this node's shard count (one node), or every node's, in the same order on all
   * @param node this node's id
   */
  constructor(layout: number | readonly NodeShards[], readonly node = LOCAL_NODE) {
    const nodes = typeof layout === 'number' ? [{ node, shards: layout }] : layout;
    nodes.forEach((n, ordinal) => {
      if (!Number.isInteger(n.shards) || n.shards < 1 || n.shards >= NODE_STRIDE) throw new RangeError(`Router: node ${n.node} needs 1 <= shards < ${NODE_STRIDE}, got ${n.shards}`);
      this.firsts.push(this.locations.length);
      for (let shard = 0; shard < n.shards; shard++) {
        this.locations.push(Object.freeze({ node: n.node, shard }));
        this.ordinals.push(ordinal);
      }
    });
    this.nodes = nodes.map((n) => n.node);
    if (new Set(nodes.map((n) => n.node)).size !== nodes.length) throw new RangeError('Router: a node is listed twice');
    const mine = nodes.findIndex((n) => n.node === node);
    if (mine < 0) throw new RangeError(`Router: this node ${node} is not in the layout`);
    this.first = nodes.slice(0, mine).reduce((sum, n) => sum + n.shards, 0);
    this.shardCount = nodes[mine].shards;
    this.base = mine * NODE_STRIDE;
    this.ring = new HashRing(this.locations.length);
  }

  /** This node's gateway's PeerId: what its messages to actors give as `gateway`. */
  get gatewayPeer(): number {
    return this.base + GATEWAY_THREAD;
  }

  /** The PeerId of local shard thread `thread` (1..N). */
  localPeer(thread: number): number {
    return this.base + thread;
  }

  /** The ring shard index of local shard thread `thread` (1..N): unique across the nodes. */
  ringShard(thread: number): number {
    return this.first + thread - 1;
  }

  /** The PeerId of the shard thread that owns `address`, on this node or another. Allocation-free. */
  peerOf(address: string): number {
    const r = this.ring.shardOf(placementKey(address));
    const ordinal = this.ordinals[r];
    return ordinal * NODE_STRIDE + (r - this.firsts[ordinal]) + 1;
  }

  /** Whether `peer` is a thread of this node. */
  isLocalPeer(peer: number): boolean {
    return peer >= this.base && peer < this.base + NODE_STRIDE;
  }

  /** The id of the node `peer` belongs to (undefined: no such node in the layout). */
  nodeOfPeer(peer: number): string | undefined {
    return this.nodes[Math.floor(peer / NODE_STRIDE)];
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
