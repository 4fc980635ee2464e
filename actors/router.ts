// Actor addresses (`kind:id`) and which thread hosts each: thread 0 is the gateway,
// threads 1..N are shards; the ring picks the shard.
import { HashRing } from './ring.js';

export const GATEWAY_THREAD = 0;

export type ActorKind = 'user' | 'thread' | 'channel';

export const userAddress = (user: string): string => `user:${user}`;
export const threadAddress = (thread: string): string => `thread:${thread}`;

/** Splits `kind:id` at the first colon (ids may contain colons). */
export function parseAddress(address: string): { kind: string; id: string } {
  const i = address.indexOf(':');
  return { kind: address.slice(0, i), id: address.slice(i + 1) };
}

export class Router {
  private readonly ring: HashRing;
  constructor(readonly shardCount: number) {
    this.ring = new HashRing(shardCount);
  }
  /** The transport thread index (1-based) of the shard that owns `address`. */
  threadOf(address: string): number {
    return this.ring.shardOf(address) + 1;
  }
}
