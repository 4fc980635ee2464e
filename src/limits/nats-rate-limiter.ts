// A rate limit that holds across the cluster (issue 17, CLUSTER-PLAN "Cluster-wide rate limits"):
// every node counts in its own BucketedRateLimiter at once (the RateLimiter interface stays
// synchronous: no round trip on the hot path) and keeps the net hits per key since its last sync;
// every `syncMs` (only when there are any) it publishes them as one msgpack message on
// `<prefix>.rl.<limit name>`, and adds what the other nodes publish to its own counters, counted
// without checking (they were allowed there).
//
// Consistency: a user spreading over nodes gets at most the limit, plus what the other nodes
// allowed before their hits reached this one: one sync interval plus the NATS delay (~syncMs + a
// millisecond on a LAN). A peer's hits count here from when they arrive, so they also leave this
// node's windows that much later (within the second buckets' granularity). While NATS is down (or
// this node's connection closed) each node limits alone: the hits counted then are never sent
// (they would arrive late and be counted as new), so the limit is only laxer — at most N times the
// limit over N nodes — and never refuses anyone a node alone would have allowed.
//
// Memory: at most `maxPendingKeys` keys wait for a sync (beyond, a new key's hits are not shared:
// counted in stats.unshared); a sync sends at most `maxKeysPerFlush` keys, the longest waiting
// first (the rest go in the next one, at once), split into messages under the server's
// max_payload (1 MiB by default). Keys tracked: the local limiter's `maxKeys`, peers' keys too.
//
// What arrives is validated: a message that is not `{v: 1, from, at, d: [key, delta, …]}` with
// sane values is dropped whole, counted (stats.dropped) and logged once; one whose clock is more
// than `maxSkewMs` off ours (delayed, or a peer with a wrong clock) likewise (stats.stale).
import { randomBytes } from 'node:crypto';
import type { NatsConnection, Status, Subscription } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { MAX_KEYS_PER_LIMIT, type LimitName } from './edge-limits.js';
import { BucketedRateLimiter, type Clock, type RateLimiter, type RateWindow } from './rate-limiter.js';

export const DEFAULT_SYNC_MS = 100;
/** The server's max_payload when it does not say (nats-server's default). */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;
/** Room in a message for everything but the deltas (v, from, at, the array's header). */
const HEADER_BYTES = 256;
/** A delta's worst-case msgpack size besides its key's bytes: str32 header (5) + float64 (9). */
const ENTRY_OVERHEAD = 14;
/** Keys longer than this are counted locally only (none of ours comes near: ids, usernames). */
export const MAX_SHARED_KEY_LENGTH = 512;
/** A delta beyond this is not a count of hits (a bug or a forgery): the message is dropped. */
const MAX_DELTA = 2 ** 31;
const MAX_FROM_LENGTH = 128;
/** A subject of plain tokens (as actors/nats-transport.ts): no wildcard, no space. */
const SUBJECT_TOKENS = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

// Plain msgpack, no records or extensions (as protocol/wire.ts): any node of any version reads it.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, encodeUndefinedAsNil: true, int64AsType: 'number' });

/** What this needs of a logger (pino's fits). */
export interface WarnLog { warn(obj: object, msg: string): void }

/** One sync: the sender, its clock, and the net hits per key since its previous one. */
export interface SyncMessage { v: 1; from: string; at: number; d: (string | number)[] }

export interface NatsRateLimiterStats {
  /** messages published, and the keys and bytes in them */
  published: number; publishedKeys: number; publishedBytes: number;
  /** peers' messages applied, and the keys in them */
  applied: number; appliedKeys: number;
  /** messages dropped as malformed */
  dropped: number;
  /** messages dropped because their clock was more than maxSkewMs off ours */
  stale: number;
  /** deltas (a key's hits of one sync) counted here but never sent: NATS down, over maxPendingKeys, key too long, publish failed */
  unshared: number;
  /** false while the connection is down or closed */
  connected: boolean;
}

export interface NatsRateLimiterOptions {
  nc: NatsConnection;
  /** the limit's name: its subject is `<prefix>.rl.<name>` */
  name: string;
  /** the cluster's subject prefix, `parley.<CLUSTER_NAME>` */
  prefix: string;
  /** this node's id (NODE_ID), sent with every message */
  nodeId: string;
  syncMs?: number;
  clock?: Clock;
  maxKeys?: number;
  maxPendingKeys?: number;
  maxKeysPerFlush?: number;
  /** messages are split under this (default: the server's max_payload) */
  maxMessageBytes?: number;
  maxSkewMs?: number;
  /** the local limiter's sweep timer (tests turn it off) */
  sweep?: boolean;
  log?: WarnLog;
}

export class NatsRateLimiter implements RateLimiter {
  private readonly local: BucketedRateLimiter;
  private readonly nc: NatsConnection;
  readonly subject: string;
  /** node id plus a per-instance nonce: a restarted node's old messages are not taken for ours */
  readonly from: string;
  private readonly syncMs: number;
  private readonly maxPendingKeys: number;
  private readonly maxKeysPerFlush: number;
  private readonly maxSkewMs: number;
  private readonly maxMessageBytes: number | undefined;
  private readonly clock: Clock;
  private readonly log: WarnLog | undefined;
  /** net hits per key since the last sync, in the order keys first got one (oldest first); a box
   *  so that a key's later hits cost one lookup; 0 (a hit and its refund) is not sent */
  private readonly pending = new Map<string, { n: number }>();
  private timer: NodeJS.Timeout | null = null;
  private readonly sub: Subscription;
  private readonly statusIter: AsyncIterable<Status> & { stop?: () => void };
  private connected: boolean;
  private stopped = false;
  private readonly warned = new Set<string>();
  private readonly waiters: { ready: (s: NatsRateLimiterStats) => boolean; resolve: () => void }[] = [];
  private readonly counts = { published: 0, publishedKeys: 0, publishedBytes: 0, applied: 0, appliedKeys: 0, dropped: 0, stale: 0, unshared: 0 };

  constructor(windows: readonly RateWindow[], opts: NatsRateLimiterOptions) {
    if (!SUBJECT_TOKENS.test(opts.prefix) || !SUBJECT_TOKENS.test(opts.name)) {
      throw new RangeError(`NatsRateLimiter: prefix and name must be dot-separated tokens of [A-Za-z0-9_-], got '${opts.prefix}', '${opts.name}'`);
    }
    this.clock = opts.clock ?? Date.now;
    this.local = new BucketedRateLimiter(windows, { clock: this.clock, maxKeys: opts.maxKeys ?? MAX_KEYS_PER_LIMIT, sweep: opts.sweep });
    this.nc = opts.nc;
    this.subject = `${opts.prefix}.rl.${opts.name}`;
    this.from = `${opts.nodeId}/${randomBytes(4).toString('hex')}`;
    this.syncMs = opts.syncMs ?? DEFAULT_SYNC_MS;
    this.maxPendingKeys = opts.maxPendingKeys ?? 200_000;
    this.maxKeysPerFlush = Math.max(1, opts.maxKeysPerFlush ?? 50_000);
    this.maxSkewMs = opts.maxSkewMs ?? 10_000;
    this.maxMessageBytes = opts.maxMessageBytes;
    this.log = opts.log;
    this.connected = !this.nc.isClosed();
    this.sub = this.nc.subscribe(this.subject, {
      callback: (err, msg) => {
        if (err) this.warnOnce('subscription', { err: err.message }, 'rate limit sync: the subscription failed; limiting on this node alone');
        else this.receive(msg.data);
      },
    });
    // Connection state: while it is down, nothing is sent (see the header).
    const status = this.nc.status() as AsyncIterable<Status> & { stop?: () => void };
    this.statusIter = status;
    void (async () => {
      for await (const s of status) {
        if (s.type === 'disconnect' || s.type === 'close') this.setConnected(false);
        else if (s.type === 'reconnect') this.setConnected(true);
      }
    })().catch(() => undefined);
    void this.nc.closed().then(() => this.setConnected(false), () => this.setConnected(false));
  }

  /** Resolves once the server has this limiter's subscription (peers' messages from then on arrive). */
  async ready(): Promise<void> {
    await this.nc.flush();
  }

  get stats(): NatsRateLimiterStats {
    return { ...this.counts, connected: this.connected };
  }

  /** Resolves when `ready(stats)` holds, checked after every sync sent or received (tests, benches). */
  until(ready: (s: NatsRateLimiterStats) => boolean): Promise<void> {
    if (ready(this.stats)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ ready, resolve }));
  }

  get size(): number {
    return this.local.size;
  }

  consume(key: string, cost = 1): number {
    const wait = this.local.consume(key, cost);
    if (wait === 0) this.note(key, cost);
    return wait;
  }

  peek(key: string, cost = 1): number {
    return this.local.peek(key, cost);
  }

  refund(key: string, cost = 1): void {
    this.local.refund(key, cost);
    this.note(key, -cost);
  }

  sweep(): void {
    this.local.sweep();
  }

  /** Sends what is pending (a clean shutdown loses no hits), then leaves the subject. The connection is the caller's. */
  stop(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    while (this.pending.size > 0 && this.connected) this.flush();
    this.stopped = true;
    this.pending.clear();
    try {
      this.sub.unsubscribe();
    } catch {
      // the connection is already closed: so is the subscription
    }
    this.statusIter.stop?.();
    this.local.stop();
  }

  /** The hot path's only extra work: one Map update, and a timer when the first key waits. */
  private note(key: string, n: number): void {
    if (!this.connected || this.stopped) {
      this.counts.unshared++;
      return;
    }
    const box = this.pending.get(key);
    if (box !== undefined) box.n += n;
    else if (this.pending.size >= this.maxPendingKeys || key.length > MAX_SHARED_KEY_LENGTH) {
      this.counts.unshared++;
      return;
    } else this.pending.set(key, { n });
    if (this.timer === null) {
      this.timer = setTimeout(this.onTimer, this.syncMs);
      this.timer.unref();
    }
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    this.flush();
    if (this.pending.size > 0 && this.timer === null) {
      // More than one flush takes: the rest go at once, not a whole interval later.
      this.timer = setTimeout(this.onTimer, 0);
      this.timer.unref();
    }
  };

  /** Publishes up to maxKeysPerFlush pending keys, oldest first, in messages under the size bound. */
  private flush(): void {
    if (this.pending.size === 0) return;
    if (!this.connected) {
      this.counts.unshared += this.pending.size;
      this.pending.clear();
      this.wake();
      return;
    }
    const budget = (this.maxMessageBytes ?? this.nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD) - HEADER_BYTES;
    let d: (string | number)[] = [];
    let bytes = 0;
    let keys = 0;
    for (const [key, { n }] of this.pending) {
      if (keys >= this.maxKeysPerFlush) break;
      this.pending.delete(key); // deleting the entry being visited is safe in a Map's iteration
      keys++;
      if (n === 0) continue; // a hit and its refund: nothing to tell
      const size = Buffer.byteLength(key) + ENTRY_OVERHEAD;
      if (bytes + size > budget && d.length > 0) {
        this.publish(d);
        d = [];
        bytes = 0;
      }
      d.push(key, n);
      bytes += size;
    }
    if (d.length > 0) this.publish(d);
    this.wake();
  }

  private publish(d: (string | number)[]): void {
    const msg: SyncMessage = { v: 1, from: this.from, at: this.clock(), d };
    // pack() returns a view of msgpackr's scratch buffer, and the client may hold it until it writes.
    const bytes = new Uint8Array(packr.pack(msg));
    try {
      this.nc.publish(this.subject, bytes);
    } catch (err) {
      // Closed (or closing) under us: this node limits alone from now on.
      this.counts.unshared += d.length / 2;
      this.setConnected(!this.nc.isClosed());
      this.warnOnce('publish', { err: (err as Error).message }, 'rate limit sync: publish failed; limiting on this node alone');
      return;
    }
    this.counts.published++;
    this.counts.publishedKeys += d.length / 2;
    this.counts.publishedBytes += bytes.length;
  }

  /** A message on the subject: validated, ours ignored, a peer's deltas added without checking. Never throws. */
  private receive(data: Uint8Array): void {
    try {
      let m: unknown;
      try {
        m = packr.unpack(data);
      } catch {
        return this.drop('not msgpack');
      }
      const why = invalid(m);
      if (why) return this.drop(why);
      const msg = m as SyncMessage;
      if (msg.from === this.from) return;
      if (Math.abs(this.clock() - msg.at) > this.maxSkewMs) {
        this.counts.stale++;
        this.warnOnce('stale', { from: msg.from, skewMs: this.clock() - msg.at }, `rate limit sync: a peer's clock (or its message) is more than ${this.maxSkewMs} ms off ours; its hits are not counted here`);
        return this.wake();
      }
      const d = msg.d;
      for (let i = 0; i < d.length; i += 2) this.local.record(d[i] as string, d[i + 1] as number);
      this.counts.applied++;
      this.counts.appliedKeys += d.length / 2;
      this.wake();
    } catch (err) {
      // Nothing of a peer's may break this node (the client would log and swallow it anyway).
      this.drop(`applying it failed: ${(err as Error).message}`);
    }
  }

  private drop(why: string): void {
    this.counts.dropped++;
    this.warnOnce('malformed', { subject: this.subject, why }, 'rate limit sync: dropped a malformed message (further ones are counted, not logged)');
    this.wake();
  }

  private setConnected(up: boolean): void {
    if (this.nc.isClosed()) up = false;
    if (this.connected === up) return;
    this.connected = up;
    this.wake();
  }

  private warnOnce(kind: string, obj: object, msg: string): void {
    if (this.warned.has(kind)) return;
    this.warned.add(kind);
    this.log?.warn(obj, msg);
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const s = this.stats;
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      if (!this.waiters[i].ready(s)) continue;
      this.waiters[i].resolve();
      this.waiters.splice(i, 1);
    }
  }
}

/** Why `m` is not a SyncMessage, or '' when it is one. */
function invalid(m: unknown): string {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return 'not a map';
  const o = m as Record<string, unknown>;
  if (o.v !== 1) return 'unknown version';
  if (typeof o.from !== 'string' || o.from.length === 0 || o.from.length > MAX_FROM_LENGTH) return 'bad from';
  if (typeof o.at !== 'number' || !Number.isFinite(o.at)) return 'bad at';
  const d = o.d;
  if (!Array.isArray(d) || d.length === 0 || d.length % 2 !== 0) return 'd is not [key, delta, …]';
  for (let i = 0; i < d.length; i += 2) {
    const key = d[i];
    const n = d[i + 1];
    if (typeof key !== 'string' || key.length === 0 || key.length > MAX_SHARED_KEY_LENGTH) return `bad key at ${i}`;
    if (typeof n !== 'number' || !Number.isFinite(n) || n === 0 || Math.abs(n) > MAX_DELTA) return `bad delta at ${i + 1}`;
  }
  return '';
}

/**
 * EdgeLimits' `shared` factory for a node of a cluster: each shared limit syncs on its own subject
 * over this connection (the caller's; it outlives the limiters).
 */
export function natsRateLimits(
  nc: NatsConnection,
  opts: Omit<NatsRateLimiterOptions, 'nc' | 'name'>,
): (name: LimitName, windows: RateWindow[]) => NatsRateLimiter {
  return (name, windows) => new NatsRateLimiter(windows, { ...opts, nc, name });
}
