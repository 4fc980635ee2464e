// A node's ownership of its partition (the actors hashed to its shards, kept in its LMDB
// directory): a lease in a NATS KV bucket whose entries expire after the lease's TTL. It is
// created with kv.create (refused while another process holds it), renewed with a compare-and-set
// on its last revision every third of the TTL, and its first revision is the node's fencing
// token (epoch): a later holder always has a higher one, and peers drop traffic from an older
// epoch (actors/nats-transport.ts). A holder that cannot renew within the TTL has lost the lease
// and must stop: someone else may own the partition by then.
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';

export interface LeaseTerms {
  cluster: string;
  node: string;
  /** every node's id in layout order, and the shards each runs: must agree across the cluster */
  nodes: string[];
  shards: number;
  ttlMs: number;
  /** how long acquire() waits for an earlier holder's lease to expire (a node restarted after kill -9) */
  waitMs: number;
}

interface LeaseValue {
  node: string;
  epoch: number;
  nodes: string[];
  shards: number;
  pid: number;
}

/** Why a node may not start or go on (the message names the node and what to do). */
export class LeaseError extends Error {
  override name = 'LeaseError';
}

const bucketName = (cluster: string) => `parley-${cluster}-leases`;
const leaseKey = (node: string) => `node.${node}`;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class NodeLease {
  private revision: number;
  private renewedAt: number;
  private readonly timer: NodeJS.Timeout;
  private lost = false;
  private released = false;
  private renewing = false;

  private constructor(
    private readonly kv: KV,
    private readonly terms: LeaseTerms,
    private readonly value: LeaseValue,
    private readonly log: Logger,
    private readonly onLost: (err: LeaseError) => void,
  ) {
    this.revision = value.epoch;
    this.renewedAt = Date.now();
    this.timer = setInterval(() => void this.renew(), Math.max(50, Math.floor(terms.ttlMs / 3)));
    this.timer.unref();
  }

  /** The fencing token of this holding: the revision the lease was created with. */
  get epoch(): number {
    return this.value.epoch;
  }

  /**
   * Takes the node's lease, waiting up to `terms.waitMs` for an earlier holder's to expire.
   * Refuses a layout that disagrees with the other live nodes' (a misconfigured node).
   */
  static async acquire(nc: NatsConnection, terms: LeaseTerms, log: Logger, onLost: (err: LeaseError) => void): Promise<NodeLease> {
    const kv = await new Kvm(nc).create(bucketName(terms.cluster), { ttl: terms.ttlMs, history: 1 });
    await checkLayout(kv, terms);
    const deadline = Date.now() + terms.waitMs;
    let waited = false;
    for (;;) {
      const value: LeaseValue = { node: terms.node, epoch: 0, nodes: terms.nodes, shards: terms.shards, pid: process.pid };
      try {
        const revision = await kv.create(leaseKey(terms.node), encoder.encode(JSON.stringify(value)));
        value.epoch = revision;
        // Written once more with the epoch in it, so the others can read it.
        const next = await kv.update(leaseKey(terms.node), encoder.encode(JSON.stringify(value)), revision);
        const lease = new NodeLease(kv, terms, value, log, onLost);
        lease.revision = next;
        return lease;
      } catch (err) {
        if (!isWrongSequence(err)) throw err;
      }
      if (Date.now() >= deadline) {
        throw new LeaseError(`node ${terms.node} is held by another process (its lease has not expired within ${terms.waitMs} ms): is it running already?`);
      }
      if (!waited) log.warn({ node: terms.node, ttlMs: terms.ttlMs }, 'the lease of this node is held (an earlier run?); waiting for it to expire');
      waited = true;
      // Polling a TTL expiry on the server: there is no event for it (expired entries vanish without a watch notice).
      await new Promise((r) => setTimeout(r, Math.min(250, terms.ttlMs / 4)));
    }
  }

  /** Gives the lease up (a clean stop), so the next start need not wait for it to expire. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearInterval(this.timer);
    if (this.lost) return;
    await this.kv.delete(leaseKey(this.terms.node), { previousSeq: this.revision }).catch((err: unknown) => {
      this.log.warn({ err }, 'lease release failed; it expires by itself');
    });
  }

  private async renew(): Promise<void> {
    if (this.renewing || this.lost || this.released) return;
    this.renewing = true;
    try {
      this.revision = await this.kv.update(leaseKey(this.terms.node), encoder.encode(JSON.stringify(this.value)), this.revision);
      this.renewedAt = Date.now();
    } catch (err) {
      if (this.released) return;
      if (isWrongSequence(err)) return this.lose(`the lease of node ${this.terms.node} was taken by another holder`);
      // NATS unreachable: fine until the TTL runs out, then someone else may own the partition.
      if (Date.now() - this.renewedAt >= this.terms.ttlMs) return this.lose(`the lease of node ${this.terms.node} could not be renewed within ${this.terms.ttlMs} ms`);
      this.log.warn({ err: (err as Error).message }, 'lease renewal failed; retrying');
    } finally {
      this.renewing = false;
    }
  }

  private lose(why: string): void {
    if (this.lost) return;
    this.lost = true;
    clearInterval(this.timer);
    this.onLost(new LeaseError(why));
  }
}

/** The other live nodes must list the same nodes, in the same order, with the same shard count. */
async function checkLayout(kv: KV, terms: LeaseTerms): Promise<void> {
  const mine = JSON.stringify([terms.nodes, terms.shards]);
  for await (const key of await kv.keys('node.*')) {
    const entry = await kv.get(key);
    if (!entry || entry.operation !== 'PUT') continue;
    let other: LeaseValue;
    try {
      other = JSON.parse(decoder.decode(entry.value)) as LeaseValue;
    } catch {
      continue;
    }
    if (other.node === terms.node) continue;
    if (JSON.stringify([other.nodes, other.shards]) !== mine) {
      throw new LeaseError(`node ${other.node} runs the layout ${JSON.stringify(other.nodes)} with ${other.shards} shards, this node ${JSON.stringify(terms.nodes)} with ${terms.shards}: CLUSTER_NODES and SHARDS must be the same on every node`);
    }
  }
}

/** The KV's compare-and-set refused: the key exists (create) or moved on (update). */
function isWrongSequence(err: unknown): boolean {
  return err instanceof Error && /wrong last sequence|key exists/i.test(err.message);
}
