// The retention sweeper (docs/architecture.md, Retention): every shard deletes the expired entries
// of the logs its own actors own — thread logs and thread events, user logs, channel logs, and the
// cid dedupe and media-ref keys of what it deletes (thread actors drop their emptied search blocks) — in slices of a bounded number of reads and
// deletes, each slice one write batch, with the event loop free between slices. So a pass never
// holds up a shard's turns for longer than one slice, however much has expired.
//
// Only a prefix of a log is ever deleted (its oldest entries), and the newest deleted seq is
// recorded as the log's floor in the same batch (storage/retention.ts): the log keeps
// (floor, head], and its head — where seq, eseq and u continue — never goes backwards, also when
// everything was deleted and the server restarts.
//
// How an entry's age is known:
// - thread log, thread events, channel log: the entry's own `ts` (a message, an event, a post).
// - user log: its frames do not all carry a time (receipts, thread events do not), so the sweeper
//   takes marks: [time, head] pairs meaning "every entry up to head was written by then", at most
//   one per MARK_SLICES-th of the retention period (and per pass) per user. An entry goes with the
//   first pass after a mark at or above it is older than the period: at most
//   RETENTION / MARK_SLICES + 2 × RETENTION_SWEEP late, never early.
import type { Database, Key } from 'lmdb';
import type { Logger } from 'pino';
import { decodeFrame } from '../protocol/wire.js';
import type { ChannelPostResult, RetainedLog, RetentionRecord, StorageEnv, StoredMessage, ThreadEvent } from '../storage/env.js';
import { userLogHead } from '../storage/user-log.js';
import { channelAddress, threadAddress, userAddress } from './router.js';

const MAX = Number.MAX_SAFE_INTEGER;
/** User-log marks per retention period (the bound on how late a user-log entry is deleted). */
const MARK_SLICES = 32;
/** Ids read from a table at a time. */
const ID_PAGE = 256;

export type SweptKind = 'thread' | 'events' | 'user' | 'channel' | 'dedupe' | 'channelDedupe' | 'mediaRefs';
export const SWEPT_KINDS: readonly SweptKind[] = ['thread', 'events', 'user', 'channel', 'dedupe', 'channelDedupe', 'mediaRefs'];

export interface RetentionStats {
  /** completed passes */
  passes: number;
  /** keys deleted, by database */
  swept: Record<SweptKind, number>;
  /**
   * The last completed pass: how long it took, and when it started (ms since the epoch; 0: none
   * yet) — everything that had expired by then (user logs: see above) is gone.
   */
  lastPassMs: number;
  lastPassAt: number;
  /** slices run, and the longest one (the time it held the shard's thread), ms */
  slices: number;
  worstSliceMs: number;
}

export interface SweeperOptions {
  retentionMs: number;
  sweepMs: number;
  /** Is this actor this shard's (its keys are ours to delete)? */
  owns(address: string): boolean;
  /** A log of this actor lost its entries up to `floor` (entries older than `cutoff`). */
  trimmed(address: string, log: RetainedLog, floor: number, cutoff: number): void;
  /** A sweep write failed: storage is broken, as for any other write. */
  onFatal(err: unknown): void;
  /** Work units (an entry or id read, a key deleted) per slice. */
  sliceUnits?: number;
}

export class RetentionSweeper {
  readonly stats: RetentionStats = {
    passes: 0, swept: Object.fromEntries(SWEPT_KINDS.map((k) => [k, 0])) as Record<SweptKind, number>,
    lastPassMs: 0, lastPassAt: 0, slices: 0, worstSliceMs: 0,
  };
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** The slice being committed (stop waits for it). */
  private inFlight: Promise<unknown> = Promise.resolve();
  private units = 0;
  private readonly sliceUnits: number;
  /** User-log marks are at least this far apart. */
  private readonly markEvery: number;
  private lastDedupeScan = 0;
  private watched: Promise<boolean> | null = null;
  private passSwept: Record<SweptKind, number> | null = null;

  constructor(private readonly storage: StorageEnv, private readonly log: Logger, private readonly o: SweeperOptions) {
    this.sliceUnits = o.sliceUnits ?? 512;
    // A user is visited once per pass: marks are also at least a pass apart.
    this.markEvery = Math.floor(o.retentionMs / MARK_SLICES);
  }

  start(): void {
    if (this.o.retentionMs <= 0 || this.stopped) return;
    this.schedule(this.o.sweepMs);
  }

  /** No new slice starts; resolves once the one being committed is. */
  stop(): Promise<unknown> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    return this.inFlight.then(undefined, () => undefined);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.pass();
    }, ms);
    this.timer.unref();
  }

  /** One pass over every log this shard owns, slice by slice. */
  async pass(): Promise<void> {
    const started = Date.now();
    const work = this.work(started);
    this.passSwept = Object.fromEntries(SWEPT_KINDS.map((k) => [k, 0])) as Record<SweptKind, number>;
    try {
      for (let done = false; !done && !this.stopped;) {
        this.units = this.sliceUnits;
        // Read what the other threads (and our previous slice) committed.
        this.storage.refresh();
        const t0 = performance.now();
        const batch = this.storage.writeBatch(() => {
          done = work.next().done === true;
        });
        const ms = performance.now() - t0;
        this.stats.slices++;
        if (ms > this.stats.worstSliceMs) this.stats.worstSliceMs = ms;
        this.inFlight = batch;
        try {
          await batch;
        } catch (err) {
          this.o.onFatal(err);
          return;
        }
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } catch (err) {
      this.log.error({ err }, 'retention sweep failed; trying again next pass');
    }
    if (this.stopped) return;
    const ms = Date.now() - started;
    this.stats.passes++;
    this.stats.lastPassMs = ms;
    this.stats.lastPassAt = started;
    const swept = this.passSwept;
    const total = SWEPT_KINDS.reduce((n, k) => n + swept[k], 0);
    this.log[total > 0 ? 'info' : 'debug']({ swept, ms, worstSliceMs: Math.round(this.stats.worstSliceMs * 10) / 10 }, 'retention sweep');
    this.schedule(Math.max(0, this.o.sweepMs - ms));
  }

  private *work(now: number): Generator<void, void, void> {
    const { db } = this.storage;
    const cutoff = now - this.o.retentionMs;
    yield* this.eachId(db.threads, threadAddress, (id) => this.sweepThread(id, cutoff));
    yield* this.eachId(db.channels, channelAddress, (id) => this.sweepChannel(id, cutoff));
    yield* this.eachId(db.users, userAddress, (id) => this.sweepUser(id, cutoff));
    // Channel posts do not carry their cid, so their dedupe records are found by a scan of the
    // table, not every pass (the channel actor already ignores one at or below the floor).
    if (now - this.lastDedupeScan >= Math.max(this.markEvery, this.o.sweepMs)) {
      this.lastDedupeScan = now;
      yield* this.sweepChannelDedupe(cutoff);
    }
  }

  /** Out of units: end this slice (its writes commit) and go on in the next. */
  private *tick(): Generator<void, void, void> {
    if (this.units <= 0) yield;
  }

  private *eachId(table: Database<unknown, string>, address: (id: string) => string, sweep: (id: string) => Generator<void, void, void>) {
    let after: string | undefined;
    for (;;) {
      const ids: string[] = [];
      for (const key of table.getKeys(after === undefined ? { limit: ID_PAGE } : { start: after, limit: ID_PAGE + 1 })) {
        if (key !== after) ids.push(key as string);
      }
      if (ids.length === 0) return;
      for (const id of ids) {
        this.units--;
        if (this.o.owns(address(id))) yield* sweep(id);
        yield* this.tick();
      }
      after = ids[ids.length - 1];
    }
  }

  private *sweepThread(thread: string, cutoff: number) {
    const { db } = this.storage;
    yield* this.sweepLog('thread', thread, threadAddress(thread), db.threadLog, cutoff, (m: StoredMessage) => m.ts, (m, seq) => {
      // cid dedupe lasts as long as the message it names (docs/protocol.md §4).
      if (m.cid !== undefined) this.remove(db.dedupe, [thread, m.from, m.cid], 'dedupe');
      this.removeMediaRef(m.media, thread, seq);
    });
    yield* this.sweepLog('events', thread, threadAddress(thread), db.threadEvents, cutoff, (e: ThreadEvent) => e.ts);
  }

  private *sweepChannel(channel: string, cutoff: number) {
    const decoded = new WeakMap<Buffer, { ts: number; media?: unknown }>();
    const post = (frame: Buffer) => {
      let p = decoded.get(frame);
      if (!p) decoded.set(frame, (p = decodeFrame(frame) as { ts: number; media?: unknown }));
      return p;
    };
    yield* this.sweepLog('channel', channel, channelAddress(channel), this.storage.db.channelLog, cutoff, (f) => post(f).ts, (f, seq) =>
      this.removeMediaRef(post(f).media, channel, seq));
  }

  /** Deletes the entries of one log older than cutoff, oldest first, stopping at the first younger one. */
  private *sweepLog<V>(
    log: RetainedLog, id: string, address: string, table: Database<V, [string, number]>, cutoff: number,
    tsOf: (v: V) => number, also?: (v: V, seq: number) => void,
  ) {
    const { retention } = this.storage.db;
    const rec = retention.get([log, id]);
    const from = rec?.floor ?? 0;
    let floor = from;
    let saved = from;
    for (;;) {
      const n = Math.max(1, Math.min(this.units, 256));
      this.units--;
      let read = 0;
      let young = false;
      for (const { key, value } of table.getRange({ start: [id, floor + 1], end: [id, MAX], limit: n })) {
        read++;
        if (tsOf(value) >= cutoff) {
          young = true;
          break;
        }
        const seq = (key as [string, number])[1];
        also?.(value, seq);
        this.remove(table, key as [string, number], log);
        floor = seq;
      }
      // In the same batch as the deletes: the head survives even when nothing is left.
      if (floor > saved) {
        this.put([log, id], { ...rec, floor });
        saved = floor;
      }
      if (young || read < n) break;
      yield* this.tick();
    }
    if (floor > from) this.o.trimmed(address, log, floor, cutoff);
  }

  private *sweepUser(user: string, cutoff: number) {
    const { db } = this.storage;
    const key: [RetainedLog, string] = ['user', user];
    const rec: RetentionRecord = db.retention.get(key) ?? { floor: 0 };
    let marks = rec.marks ?? [];
    let floor = rec.floor;
    let target = floor;
    let used = 0;
    while (used < marks.length && marks[used][0] <= cutoff) target = Math.max(target, marks[used++][1]);
    if (target > floor) {
      for (;;) {
        const n = Math.max(1, Math.min(this.units, 256));
        this.units--;
        let read = 0;
        for (const k of db.userLog.getKeys({ start: [user, floor + 1], end: [user, target + 1], limit: n })) {
          read++;
          this.remove(db.userLog, k as [string, number], 'user');
          floor = (k as [string, number])[1];
        }
        if (read < n) floor = target; // everything up to target is gone
        this.put(key, { floor, marks });
        if (read < n) break;
        yield* this.tick();
      }
      marks = marks.slice(used);
      this.put(key, { floor, marks });
      this.o.trimmed(userAddress(user), 'user', floor, cutoff);
    }
    // A new mark: every entry up to the head as read now was written by now.
    const now = Date.now();
    const head = userLogHead(this.storage, user);
    const last = marks[marks.length - 1];
    if (head > (last?.[1] ?? floor) && (!last || now - last[0] >= this.markEvery)) {
      this.put(key, { floor, marks: [...marks, [now, head]] });
    }
    this.units--;
  }

  private *sweepChannelDedupe(cutoff: number) {
    const { channelDedupe } = this.storage.db;
    let after: [string, string, string] | undefined;
    for (;;) {
      const page: { key: [string, string, string]; value: ChannelPostResult }[] = [];
      for (const e of channelDedupe.getRange(after === undefined ? { limit: ID_PAGE } : { start: after, limit: ID_PAGE + 1 })) {
        const k = e.key as [string, string, string];
        if (after && k[0] === after[0] && k[1] === after[1] && k[2] === after[2]) continue;
        page.push({ key: k, value: e.value });
      }
      if (page.length === 0) return;
      for (const { key, value } of page) {
        this.units--;
        if (value.ts < cutoff && this.o.owns(channelAddress(key[0]))) this.remove(channelDedupe, key, 'channelDedupe');
        yield* this.tick();
      }
      after = page[page.length - 1].key;
    }
  }

  private removeMediaRef(media: unknown, owner: string, seq: number): void {
    const id = typeof media === 'string' ? media : (media as { id?: unknown } | undefined)?.id;
    if (typeof id === 'string') this.remove(this.storage.db.mediaRefs, [id, owner, seq], 'mediaRefs');
  }

  private remove<V, K extends Key>(table: Database<V, K>, key: K, kind: SweptKind): void {
    this.watch(table.remove(key));
    this.units--;
    this.stats.swept[kind]++;
    if (this.passSwept) this.passSwept[kind]++;
  }

  private put(key: [RetainedLog, string], value: RetentionRecord): void {
    this.watch(this.storage.db.retention.put(key, value));
  }

  /** Writes of one batch share a promise; its failure is the batch's (handled in pass). */
  private watch(p: Promise<boolean>): void {
    if (p === this.watched) return;
    this.watched = p;
    p.then(undefined, () => undefined);
  }
}
