// Moves envelopes between threads: one MessagePort per peer thread, envelopes buffered per
// destination and flushed once per tick as one msgpack buffer, transferred rather than copied.
import type { MessagePort } from 'node:worker_threads';
import { Packr } from 'msgpackr';
import type { Envelope } from './envelope.js';

// Internal traffic only: records make repeated message shapes compact. Both ends use this module.
const packr = new Packr({ useRecords: true, mapsAsObjects: true, encodeUndefinedAsNil: true });

export interface TransportStats {
  batchesOut: number;
  envelopesOut: number;
  batchesIn: number;
  envelopesIn: number;
}

export class Transport {
  private readonly ports = new Map<number, MessagePort>();
  private readonly outbox = new Map<number, Envelope[]>();
  private flushScheduled = false;
  private closed = false;
  readonly stats: TransportStats = { batchesOut: 0, envelopesOut: 0, batchesIn: 0, envelopesIn: 0 };

  /**
   * @param self this thread's index (0 = gateway, 1.. = shards)
   * @param onBatch called once per incoming batch with its envelopes, in send order
   */
  constructor(
    readonly self: number,
    private readonly onBatch: (from: number, envelopes: Envelope[]) => void,
  ) {}

  connect(peer: number, port: MessagePort): void {
    this.ports.set(peer, port);
    port.on('message', (data: Uint8Array) => {
      const envelopes = packr.unpack(data) as Envelope[];
      this.stats.batchesIn++;
      this.stats.envelopesIn += envelopes.length;
      this.onBatch(peer, envelopes);
    });
  }

  /** Queues an envelope for `dest`; it leaves with the rest of this tick's batch. */
  send(dest: number, envelope: Envelope): void {
    // After close (shutdown) there is nobody to deliver to; the logs hold what matters.
    if (this.closed) return;
    // To ourselves it is queued too: a turn never re-enters the dispatcher.
    this.queue(dest, envelope);
  }

  private queue(dest: number, envelope: Envelope): void {
    let list = this.outbox.get(dest);
    if (!list) this.outbox.set(dest, (list = []));
    list.push(envelope);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Sends every queued batch now. */
  readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.closed) return;
    for (const [dest, envelopes] of this.outbox) {
      if (envelopes.length === 0) continue;
      this.outbox.set(dest, []);
      if (dest === this.self) {
        this.onBatch(dest, envelopes);
        continue;
      }
      const port = this.ports.get(dest);
      if (!port) throw new Error(`transport: no port to thread ${dest}`);
      // pack() writes into msgpackr's shared scratch buffer: copy once into a buffer we own,
      // then transfer it so the receiver takes it without a second copy.
      const packed = packr.pack(envelopes);
      const owned = new Uint8Array(packed.length);
      owned.set(packed);
      port.postMessage(owned, [owned.buffer]);
      this.stats.batchesOut++;
      this.stats.envelopesOut += envelopes.length;
    }
  };

  close(): void {
    this.closed = true;
    this.outbox.clear();
    for (const port of this.ports.values()) port.close();
    this.ports.clear();
  }
}
