// What every Transport implementation shares: one outbox per destination flushed once per tick,
// delivery to itself, and the failure rules of the contract (actors/transport.ts, rules 5-9).
// A subclass only moves encoded batches over its links.
import type { Logger } from 'pino';
import { ErrorCode } from '../protocol/codes.js';
import { decodeBatch, encodeBatch } from './batch-codec.js';
import { Kind, type AskEnvelope, type Envelope } from './envelope.js';
import { emptyStats, type PeerId, type Transport, type TransportEvents, type Undeliverable } from './transport.js';

export abstract class BatchingTransport implements Transport {
  readonly stats = emptyStats();
  private readonly outbox = new Map<PeerId, Envelope[]>();
  private flushScheduled = false;
  private closed = false;
  /** destinations whose undeliverable batches were already logged (once per peer and reason) */
  private readonly reported = new Set<string>();
  /** envelopes handed to and taken from each peer since it was (re)connected */
  private readonly sentTo = new Map<PeerId, number>();
  private readonly receivedFrom = new Map<PeerId, number>();

  constructor(
    readonly self: PeerId,
    private readonly events: TransportEvents,
    protected readonly log: Logger,
  ) {}

  /** Whether `dest` can take a batch now; checked before encoding, so a dead peer costs nothing. */
  protected abstract reach(dest: PeerId): Undeliverable | undefined;
  /** Hands one encoded batch, which it may take ownership of, to a reachable peer. Never throws. */
  protected abstract post(dest: PeerId, bytes: Uint8Array): Undeliverable | undefined;
  /** Closes every link. */
  protected abstract closeLinks(): void;

  get isClosed(): boolean {
    return this.closed;
  }

  envelopesTo(peer: PeerId): number {
    return this.sentTo.get(peer) ?? 0;
  }

  envelopesFrom(peer: PeerId): number {
    return this.receivedFrom.get(peer) ?? 0;
  }

  send(dest: PeerId, envelope: Envelope): void {
    if (this.closed) {
      this.stats.undeliverable++;
      return;
    }
    let list = this.outbox.get(dest);
    if (!list) this.outbox.set(dest, (list = []));
    list.push(envelope);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.closed) return;
    // Envelopes queued while this runs (replies to undeliverable asks, sends from a handler) go
    // into fresh lists: this loop still reaches destinations it has not visited yet, and the
    // flush they scheduled takes the rest, so per-pair order holds either way.
    for (const [dest, envelopes] of this.outbox) {
      if (envelopes.length === 0) continue;
      this.outbox.set(dest, []);
      if (dest === this.self) this.handle(dest, envelopes);
      else this.sendBatch(dest, envelopes);
    }
  };

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.outbox.clear();
    this.closeLinks();
  }

  /** For subclasses: one batch arrived from `from`. Never throws. */
  protected receive(from: PeerId, bytes: unknown): void {
    if (this.closed) return;
    let envelopes: Envelope[];
    try {
      if (!(bytes instanceof Uint8Array)) throw new TypeError(`a batch must be bytes, got ${typeof bytes}`);
      envelopes = decodeBatch(bytes);
    } catch (err) {
      this.decodeFailed(from, err);
      return;
    }
    this.stats.batchesIn++;
    this.stats.envelopesIn += envelopes.length;
    this.stats.bytesIn += bytes.length;
    this.receivedFrom.set(from, (this.receivedFrom.get(from) ?? 0) + envelopes.length);
    this.handle(from, envelopes);
  }

  /** For subclasses: a batch from `from` was lost on the way in (e.g. it failed to deserialize). */
  protected decodeFailed(from: PeerId, err: unknown): void {
    this.stats.decodeFailures++;
    this.log.error({ err, from }, 'transport: a received batch could not be decoded; dropped');
  }

  /** For subclasses: `peer` went away; batches to it are undeliverable until it is connected again. */
  protected peerDown(peer: PeerId): void {
    this.reported.delete(`${peer}:gone`);
    // Info, not warn: at every stop each link closes. A shard that dies is reported (error) by
    // its supervisor; this line only dates it.
    this.log.info({ peer }, 'transport: peer gone');
    this.contain('onPeerDown', () => this.events.onPeerDown?.(peer));
  }

  /** For subclasses: `peer` is (again) connected, a new link with fresh counts. */
  protected peerUp(peer: PeerId): void {
    this.reported.delete(`${peer}:gone`);
    this.reported.delete(`${peer}:unknown`);
    this.sentTo.set(peer, 0);
    this.receivedFrom.set(peer, 0);
    this.contain('onPeerUp', () => this.events.onPeerUp?.(peer));
  }

  private sendBatch(dest: PeerId, envelopes: Envelope[]): void {
    const unreachable = this.reach(dest);
    if (unreachable) {
      this.undeliverable(dest, envelopes, unreachable, envelopes);
      return;
    }
    let dropped: Envelope[] | undefined; // failure path only
    let substitutes = 0;
    const bytes = encodeBatch(envelopes, (envelope, _index, cause) => {
      (dropped ??= []).push(envelope);
      const substitute = this.encodeFailed(dest, envelope, cause);
      if (substitute) substitutes++;
      return substitute;
    });
    if (!bytes) return;
    const size = bytes.length; // post() may transfer (detach) the buffer
    const failed = this.post(dest, bytes);
    if (failed) {
      // Asks dropped by the encoder are answered already: answer the others.
      this.undeliverable(dest, envelopes, failed, dropped ? envelopes.filter((e) => !dropped!.includes(e)) : envelopes);
      return;
    }
    const sent = envelopes.length - (dropped?.length ?? 0) + substitutes;
    this.stats.batchesOut++;
    this.stats.envelopesOut += sent;
    this.stats.bytesOut += size;
    this.sentTo.set(dest, (this.sentTo.get(dest) ?? 0) + sent);
  }

  /** Rule 6: drops an envelope that cannot be encoded; returns what to send in its place, if anything. */
  private encodeFailed(dest: PeerId, envelope: Envelope, cause: unknown): Envelope | undefined {
    this.stats.encodeFailures++;
    this.log.error({ err: cause, dest, ...describe(envelope) }, 'transport: an envelope could not be encoded; dropped');
    if (envelope[0] === Kind.ask) this.answer(envelope, ErrorCode.internal, 'the request could not be encoded');
    if (envelope[0] === Kind.reply) return [Kind.reply, envelope[1], null, ErrorCode.internal, 'the answer could not be encoded'];
    return undefined;
  }

  /** Rule 5: counts, answers the asks in `unanswered`, logs once per peer and reason, tells the owner. */
  private undeliverable(dest: PeerId, envelopes: Envelope[], reason: Undeliverable, unanswered: Envelope[]): void {
    this.stats.undeliverable += envelopes.length;
    for (const envelope of unanswered) {
      if (envelope[0] === Kind.ask) this.answer(envelope, ErrorCode.unavailable, `peer ${dest} is ${reason === 'unknown' ? 'not connected' : reason}`);
    }
    const key = `${dest}:${reason}`;
    if (!this.reported.has(key)) {
      this.reported.add(key);
      // An unknown peer is a wiring bug; a gone one is a crash already logged where it happened.
      const level = reason === 'unknown' ? 'error' : 'warn';
      this.log[level]({ dest, reason, envelopes: envelopes.length }, 'transport: batch undeliverable; dropped (logged once per peer)');
    }
    this.contain('onUndeliverable', () => this.events.onUndeliverable?.(dest, envelopes, reason));
  }

  /** Sends the asker of `ask` an error reply, so it does not wait for its timeout. */
  private answer(ask: AskEnvelope, code: ErrorCode, message: string): void {
    this.send(ask[3], [Kind.reply, ask[4], null, code, message]);
  }

  private handle(from: PeerId, envelopes: Envelope[]): void {
    try {
      this.events.onBatch(from, envelopes);
    } catch (err) {
      this.stats.handlerFailures++;
      this.log.error({ err, from, envelopes: envelopes.length }, 'transport: batch handler failed');
    }
  }

  private contain(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error({ err }, `transport: ${what} handler failed`);
    }
  }
}

/** What a log line may say about an envelope: its kind and address, never its contents. */
function describe(envelope: Envelope): { kind: number; to?: string; op?: string } {
  switch (envelope[0]) {
    case Kind.tell:
    case Kind.ask:
      return { kind: envelope[0], to: envelope[1], op: String(envelope[2]?.op) };
    case Kind.tellMany:
      return { kind: envelope[0], to: `${envelope[1].length} actors`, op: String(envelope[2]?.op) };
    default:
      return { kind: envelope[0] };
  }
}
