// The Transport between nodes: batches travel as NATS messages, one per (this endpoint,
// destination) per flush, with the sender, the receiver and their epochs in the subject (no
// header to parse, no copy of the batch to prefix it). Liveness and fencing are its own: hellos,
// heartbeats and byes on a shared subject. docs/cluster.md ("NATS transport") has the design.
//
// Order (contract rule 2): NATS delivers the messages one connection publishes to one
// subscription in publish order, and never resends them. Each endpoint publishes every batch and
// fragment on its own single connection, and receives every batch through one subscription, so
// a (sender, destination) pair is exactly one such stream. What a disconnect loses is lost
// (at most once, rule 3); a fragment sequence with a hole is a decode failure (rule 7).
import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import type { Logger } from 'pino';
import { BatchingTransport } from './batching-transport.js';
import type { PeerId, TransportEvents, Undeliverable } from './transport.js';

export interface NatsTransportOptions {
  /** owned by the caller, who closes it after close() (after stop(), to be sure the bye left) */
  nc: NatsConnection;
  /** subject prefix, e.g. `parley.test`: NATS tokens of letters, digits, `_` and `-` */
  prefix: string;
  /** this endpoint's fencing token (its node's lease revision), an integer > 0 */
  epoch: number;
  /** default 1000; a peer not heard from for MISSED_BEATS heartbeats is gone */
  heartbeatMs?: number;
}

/** Heartbeat rounds in a row without a word from a peer before it is declared gone. */
export const MISSED_BEATS = 3;
/** A fragmented batch announcing more fragments than this is refused on receipt (rule 7). */
export const MAX_FRAGMENTS = 256;
const DEFAULT_MAX_PAYLOAD = 1024 * 1024; // the server's default, until it says otherwise

/**
 * What travels on `${prefix}.peers` (and, for `here`, `${prefix}.peers.<dest>`):
 * hello (at start; every live peer answers `here`), here, beat (each heartbeat), bye (at close).
 */
type Signal = 'hello' | 'here' | 'beat' | 'bye';
const SIGNAL = /^(hello|here|beat|bye) (\d{1,15}) (\d{1,15})$/;

/** The subject of a batch (or, with `fragment`, of one of its fragments). */
export function batchSubject(
  prefix: string, dest: PeerId, destEpoch: number, from: PeerId, fromEpoch: number,
  fragment?: { index: number; count: number },
): string {
  const subject = `${prefix}.b.${dest}.${destEpoch}.${from}.${fromEpoch}`;
  return fragment ? `${subject}.${fragment.index}.${fragment.count}` : subject;
}

interface Peer {
  /** the highest epoch seen from it: anything older is a zombie's, fenced */
  epoch: number;
  up: boolean;
  /** heard from since the last heartbeat round, and rounds in a row it was not */
  heard: boolean;
  missed: number;
  /** the fragmented batch being put together, or the rest of a broken one being skipped */
  partial?: Reassembly;
}

interface Reassembly {
  count: number;
  /** the fragments so far; undefined while skipping what is left of a broken sequence */
  parts?: Uint8Array[];
  next: number;
}

export class NatsTransport extends BatchingTransport {
  /** messages dropped because they came from an older epoch of their peer than one seen (a zombie) */
  fenced = 0;
  private readonly nc: NatsConnection;
  private readonly prefix: string;
  private readonly epoch: number;
  private readonly heartbeatMs: number;
  private readonly batchHead: string;
  private readonly peers = new Map<PeerId, Peer>();
  private readonly subs: Subscription[] = [];
  private heartbeat: NodeJS.Timeout | undefined;
  private started = false;
  private ncClosedLogged = false;
  /** (peer, epoch) pairs whose fenced traffic was logged already */
  private readonly fencedLogged = new Set<string>();

  constructor(self: PeerId, events: TransportEvents, log: Logger, opts: NatsTransportOptions) {
    super(self, events, log);
    if (!Number.isSafeInteger(self) || self < 0) throw new RangeError(`NatsTransport: peer id must be an integer >= 0, got ${self}`);
    if (!Number.isSafeInteger(opts.epoch) || opts.epoch < 1) throw new RangeError(`NatsTransport: epoch must be an integer > 0, got ${opts.epoch}`);
    if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(opts.prefix)) throw new RangeError(`NatsTransport: prefix must be dot-separated tokens of [A-Za-z0-9_-], got '${opts.prefix}'`);
    const heartbeatMs = opts.heartbeatMs ?? 1000;
    if (!Number.isInteger(heartbeatMs) || heartbeatMs < 1 || heartbeatMs > 2 ** 31 - 1) throw new RangeError(`NatsTransport: heartbeatMs must be an integer of 1..2^31-1, got ${heartbeatMs}`);
    this.nc = opts.nc;
    this.prefix = opts.prefix;
    this.epoch = opts.epoch;
    this.heartbeatMs = heartbeatMs;
    this.batchHead = `${opts.prefix}.b.${self}.${opts.epoch}.`;
  }

  /** Subscribes, says hello, starts the heartbeat; resolves once the server has all of it. */
  async start(): Promise<void> {
    if (this.started || this.isClosed) throw new Error('NatsTransport: start() is called once, before close()');
    this.started = true;
    // This incarnation's epoch is in the subscription: batches meant for an older or newer one
    // of this peer (a zombie, a successor) are not even delivered here.
    this.subs.push(this.nc.subscribe(`${this.batchHead}>`, { callback: (err, msg) => this.onBatchMessage(err, msg) }));
    for (const subject of [`${this.prefix}.peers`, `${this.prefix}.peers.${this.self}`]) {
      this.subs.push(this.nc.subscribe(subject, { callback: (err, msg) => this.onSignal(err, msg) }));
    }
    this.signal('hello');
    this.heartbeat = setInterval(this.beat, this.heartbeatMs);
    this.heartbeat.unref();
    await this.nc.flush();
  }

  /** close(), then waits until the bye has reached the server: the caller may close nc after. */
  async stop(): Promise<void> {
    this.close();
    if (this.nc.isClosed()) return;
    await this.nc.flush().catch(() => {});
  }

  protected reach(dest: PeerId): Undeliverable | undefined {
    const peer = this.peers.get(dest);
    if (!peer) return 'unknown';
    return peer.up ? undefined : 'gone';
  }

  protected post(dest: PeerId, bytes: Uint8Array): Undeliverable | undefined {
    if (this.nc.isClosed()) return 'gone'; // logged by the base, once per peer
    const subject = batchSubject(this.prefix, dest, this.peers.get(dest)!.epoch, this.self, this.epoch);
    try {
      const max = this.nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
      if (bytes.length <= max) {
        this.nc.publish(subject, bytes);
        return undefined;
      }
      // Over max_payload: consecutive slices (views, not copies), put back together on receipt.
      const count = Math.ceil(bytes.length / max);
      if (count > MAX_FRAGMENTS) {
        // The receiver would drop it: spare the wire, and answer its asks now (rule 5).
        this.log.error({ dest, bytes: bytes.length, fragments: count, limit: MAX_FRAGMENTS }, 'transport: batch too big for the NATS transport (MAX_FRAGMENTS x max_payload); dropped');
        return 'gone';
      }
      for (let index = 0; index < count; index++) {
        this.nc.publish(`${subject}.${index}.${count}`, bytes.subarray(index * max, (index + 1) * max));
      }
      return undefined;
    } catch (err) {
      // Draining: no peer is reachable through this connection any more.
      this.log.error({ err, dest }, 'transport: NATS publish failed');
      return 'gone';
    }
  }

  protected closeLinks(): void {
    clearInterval(this.heartbeat);
    if (this.started) this.signal('bye');
    for (const sub of this.subs) {
      try {
        sub.unsubscribe();
      } catch {
        // the connection is closed already: so is the subscription
      }
    }
    this.subs.length = 0;
    for (const peer of this.peers.values()) peer.partial = undefined;
  }

  private readonly beat = (): void => {
    this.signal('beat');
    for (const [id, peer] of this.peers) {
      if (!peer.up) continue;
      if (peer.heard) {
        peer.heard = false;
        peer.missed = 0;
      } else if (++peer.missed >= MISSED_BEATS) {
        // Rounds, not a clock: a stall of this thread is one round, and what arrived meanwhile
        // is read before the next one.
        this.log.info({ peer: id, epoch: peer.epoch, heartbeats: MISSED_BEATS, heartbeatMs: this.heartbeatMs }, 'transport: peer silent for too many heartbeats; gone');
        this.down(id, peer);
      }
    }
  };

  private signal(kind: Signal, to?: PeerId): void {
    if (this.nc.isClosed()) {
      // Closed under it (a kill, or the owner closed it first): peers will see this endpoint
      // fall silent instead. Said once, not at every heartbeat.
      if (!this.ncClosedLogged) this.log.warn({ kind }, 'transport: NATS connection closed; signals not sent');
      this.ncClosedLogged = true;
      return;
    }
    const subject = to === undefined ? `${this.prefix}.peers` : `${this.prefix}.peers.${to}`;
    try {
      this.nc.publish(subject, `${kind} ${this.self} ${this.epoch}`);
    } catch (err) {
      // Draining: peers will see this endpoint fall silent instead.
      this.log.warn({ err, kind }, 'transport: NATS signal not sent');
    }
  }

  private onSignal(err: Error | null, msg: Msg): void {
    if (err) {
      this.log.error({ err }, 'transport: NATS peers subscription failed');
      return;
    }
    if (this.isClosed) return;
    const match = SIGNAL.exec(msg.string());
    if (!match) {
      this.log.error({ subject: msg.subject, bytes: msg.data.length }, 'transport: malformed NATS peer signal; dropped');
      return;
    }
    const kind = match[1] as Signal;
    const from = Number(match[2]);
    const epoch = Number(match[3]);
    const peer = this.admit(from, epoch, kind);
    if (!peer) return;
    if (kind === 'hello') this.signal('here', from); // every hello is a new incarnation, which knows nobody
    if (kind === 'bye' && peer.up) this.down(from, peer);
  }

  private onBatchMessage(err: Error | null, msg: Msg): void {
    if (err) {
      this.log.error({ err }, 'transport: NATS batch subscription failed');
      return;
    }
    if (this.isClosed) return;
    // `${prefix}.b.<self>.<epoch>.<from>.<fromEpoch>[.<index>.<count>]`
    const tail = msg.subject.slice(this.batchHead.length).split('.');
    const from = token(tail[0]);
    const epoch = token(tail[1]);
    if (from === undefined || epoch === undefined || epoch < 1 || (tail.length !== 2 && tail.length !== 4)) {
      this.decodeFailed(-1, new Error(`malformed batch subject '${msg.subject}'`));
      return;
    }
    const peer = this.admit(from, epoch, 'batch');
    if (!peer) return;
    if (tail.length === 2) {
      if (peer.partial) this.brokenSequence(from, peer, 'a whole batch arrived before the last fragment');
      peer.partial = undefined;
      this.receive(from, msg.data);
      return;
    }
    const index = token(tail[2]);
    const count = token(tail[3]);
    if (index === undefined || count === undefined || count < 2 || index >= count) {
      this.decodeFailed(from, new Error(`fragment ${tail[2]} of ${tail[3]} is not valid`));
      peer.partial = undefined;
      return;
    }
    this.fragment(from, peer, index, count, msg.data);
  }

  /** Puts a fragmented batch back together; a hole, a repeat or a mix-up breaks it (one decode failure). */
  private fragment(from: PeerId, peer: Peer, index: number, count: number, data: Uint8Array): void {
    const partial = peer.partial;
    if (index === 0) {
      if (partial) this.brokenSequence(from, peer, 'a new fragmented batch began before the last fragment');
      if (count > MAX_FRAGMENTS) {
        this.decodeFailed(from, new Error(`a batch of ${count} fragments is over the limit of ${MAX_FRAGMENTS}; the batch is dropped`));
        peer.partial = { count, next: 1 }; // skip the rest, without holding it
        return;
      }
      peer.partial = { count, parts: [data], next: 1 };
      return;
    }
    if (!partial || partial.count !== count || partial.next !== index) {
      if (!partial || partial.parts) {
        // Counted once per broken batch: skip, silently, what is left of its sequence.
        this.decodeFailed(from, new Error(`fragment ${index} of ${count} arrived out of sequence (expected ${partial ? `${partial.next} of ${partial.count}` : 'a first fragment'}); the batch is lost`));
      }
      peer.partial = index + 1 < count ? { count, next: index + 1 } : undefined;
      return;
    }
    partial.next++;
    if (partial.parts) partial.parts.push(data);
    if (partial.next < count) return;
    peer.partial = undefined;
    if (partial.parts) this.receive(from, concat(partial.parts));
  }

  private brokenSequence(from: PeerId, peer: Peer, why: string): void {
    if (peer.partial?.parts) this.decodeFailed(from, new Error(`${why}: fragment ${peer.partial.next} of ${peer.partial.count} missing; the batch is lost`));
    peer.partial = undefined;
  }

  /**
   * Fencing and liveness for anything received from (`from`, `epoch`): returns the peer, up if
   * it should be, or undefined when the message is to be dropped (a zombie's, or this one's own).
   */
  private admit(from: PeerId, epoch: number, kind: Signal | 'batch'): Peer | undefined {
    if (from === this.self) {
      // Its own signals come back (NATS echoes them); an older epoch of itself is a zombie.
      if (epoch < this.epoch) this.fence(from, epoch);
      return undefined;
    }
    let peer = this.peers.get(from);
    if (!peer) {
      peer = { epoch, up: false, heard: true, missed: 0 };
      this.peers.set(from, peer);
      if (kind !== 'bye') this.up(from, peer);
      return peer;
    }
    if (epoch < peer.epoch) {
      this.fence(from, epoch);
      return undefined;
    }
    peer.heard = true;
    if (epoch > peer.epoch) {
      // It restarted: what was in flight with the old incarnation is gone with it.
      if (peer.up) this.down(from, peer);
      peer.epoch = epoch;
      if (kind !== 'bye') this.up(from, peer);
    } else if (kind === 'hello' && peer.up) {
      // Same epoch, a new incarnation (its thread restarted on the same node lease).
      this.down(from, peer);
      this.up(from, peer);
    } else if (!peer.up && kind !== 'bye') {
      this.up(from, peer); // back after falling silent (or after a bye, restarted)
    }
    return peer;
  }

  private up(id: PeerId, peer: Peer): void {
    peer.up = true;
    peer.heard = true;
    peer.missed = 0;
    peer.partial = undefined;
    this.log.info({ peer: id, epoch: peer.epoch }, 'transport: peer up');
    this.peerUp(id);
  }

  private down(id: PeerId, peer: Peer): void {
    peer.up = false;
    peer.partial = undefined;
    this.peerDown(id);
  }

  private fence(from: PeerId, epoch: number): void {
    this.fenced++;
    const key = `${from}:${epoch}`;
    if (this.fencedLogged.has(key)) return;
    this.fencedLogged.add(key);
    this.log.warn({ peer: from, epoch, known: from === this.self ? this.epoch : this.peers.get(from)?.epoch }, 'transport: traffic from an older epoch of a peer (a zombie); dropped (logged once per epoch)');
  }
}

/** A subject token that is a non-negative integer, or undefined. */
function token(s: string | undefined): number | undefined {
  if (s === undefined || !/^\d{1,15}$/.test(s)) return undefined;
  return Number(s);
}

function concat(parts: Uint8Array[]): Uint8Array {
  let size = 0;
  for (const part of parts) size += part.length;
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  return bytes;
}
