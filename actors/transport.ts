// The seam between threads, and later nodes: batched envelopes (tell, ask, reply, push) to a
// peer. Its contract is below; every implementation runs test/helpers/transport-contract.ts.
import type { Envelope } from './envelope.js';

/**
 * One endpoint of the transport. In one process it is the thread index (0 = gateway, 1..N =
 * shards, see Router.threadOf); a transport between nodes maps each (node, thread) it serves to
 * a PeerId of its own. Numbers, because every ask envelope carries its asker's.
 */
export type PeerId = number;

/**
 * Why a batch was not sent: the peer was never connected (`unknown`), the transport saw it go
 * away (`gone`: its thread exited, its link closed), or this transport is closed (`closed`).
 */
export type Undeliverable = 'unknown' | 'gone' | 'closed';

export interface TransportStats {
  batchesOut: number;
  envelopesOut: number;
  /** encoded bytes sent and received (not counting batches to itself, which are not encoded) */
  bytesOut: number;
  batchesIn: number;
  envelopesIn: number;
  bytesIn: number;
  /** envelopes not sent because their peer was unknown, gone, or this transport closed */
  undeliverable: number;
  /** envelopes dropped because they could not be encoded */
  encodeFailures: number;
  /** received batches dropped whole because they could not be decoded */
  decodeFailures: number;
  /** batches whose onBatch handler threw */
  handlerFailures: number;
}

export interface TransportEvents {
  /** Called once per batch, with its envelopes in send order. */
  onBatch(from: PeerId, envelopes: Envelope[]): void;
  /** A batch was not sent (after its asks were answered, see rule 5). For logs and metrics. */
  onUndeliverable?(dest: PeerId, envelopes: Envelope[], reason: Undeliverable): void;
  /** The transport saw `peer` go away; from now on batches to it are undeliverable (`gone`). */
  onPeerDown?(peer: PeerId): void;
  /**
   * `peer` is connected (again): a new link with fresh counts (see envelopesTo). Called for each
   * new link, the first one included: a restarted peer gets one again (after its onPeerDown when
   * the transport saw the old link go first).
   */
  onPeerUp?(peer: PeerId): void;
}

/**
 * Batched, ordered, at-most-once delivery of envelopes between peers.
 *
 * 1. Batching. `send` only queues. Everything queued for one destination before the next flush
 *    (once per event-loop tick, or at an explicit `flush()`) leaves as one batch, encoded once,
 *    and arrives as one `onBatch` call.
 * 2. Ordering. For each (sender, destination) pair, envelopes arrive in the order they were
 *    sent, across batches too, never duplicated. Nothing is promised across different senders.
 * 3. At most once, no timeouts. A batch handed to a peer that dies with it in flight is lost
 *    without notice; the transport never retries. Asks lost this way are their asker's to time
 *    out (PendingAsks); `onPeerDown` lets the asker fail them at once.
 * 4. To itself. `send(self, …)` is queued and delivered by the flush like any batch (a turn never
 *    re-enters its dispatcher), without encoding: the values arrive by reference.
 * 5. Undeliverable batches. A batch for a peer that is unknown or gone is dropped: `send` and
 *    `flush` never throw. Each envelope is counted (`stats.undeliverable`), every ask in it is
 *    answered with an `unavailable` error reply to its asker, then `onUndeliverable` is called.
 * 6. Encoding failures. If a batch cannot be encoded, its envelopes are encoded one at a time;
 *    the ones that fail are dropped, logged with the cause and counted (`stats.encodeFailures`);
 *    a dropped ask is answered with an `internal` error reply to its asker, a dropped reply is
 *    replaced by an `internal` error reply to the same ask; the rest leave as one batch, in order.
 *    So every ask gets exactly one reply unless its peer dies (rule 3).
 * 7. Decoding failures. A received batch that cannot be decoded, or is not a list, is dropped
 *    whole, logged and counted (`stats.decodeFailures`); nothing is thrown.
 * 8. Handler errors. A throw from `onBatch` is logged and counted (`stats.handlerFailures`); the
 *    rest of the traffic carries on.
 * 9. Close. `close()` is final and idempotent: queued envelopes are dropped, links are closed (the
 *    peers see this transport go), later sends are counted as undeliverable (`closed`) without
 *    replies or callbacks: the owner fails its own pending asks before closing.
 * 10. Links. A peer is reachable from its `onPeerUp` to its `onPeerDown`; before the first it is
 *    `unknown`, after the second `gone`, until an `onPeerUp` again (a restarted peer). Between
 *    threads this happens at connect; between nodes it is learnt from the wire, so it comes
 *    asynchronously, after the transport is built.
 */
export interface Transport {
  readonly self: PeerId;
  readonly stats: TransportStats;
  /** Queues an envelope for `dest`; it leaves with the rest of this tick's batch to `dest`. */
  send(dest: PeerId, envelope: Envelope): void;
  /** Sends every queued batch now. */
  flush(): void;
  /**
   * Envelopes handed to `peer` since it was connected (dropped and undeliverable ones excluded),
   * and envelopes received from it. Once traffic stops, A's envelopesTo(B) equals B's
   * envelopesFrom(A) unless one of them died: what a stop protocol compares to know nothing is
   * in flight.
   */
  envelopesTo(peer: PeerId): number;
  envelopesFrom(peer: PeerId): number;
  close(): void;
}

export const emptyStats = (): TransportStats => ({
  batchesOut: 0, envelopesOut: 0, bytesOut: 0, batchesIn: 0, envelopesIn: 0, bytesIn: 0,
  undeliverable: 0, encodeFailures: 0, decodeFailures: 0, handlerFailures: 0,
});
