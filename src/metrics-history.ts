// The embedded metrics history (issue 12, docs/architecture.md "Metrics history"): every second
// the gateway samples a fixed set of series from figures it already keeps in plain numbers (no
// new work on the hot path), and keeps them at three resolutions: 1 s buckets for an hour, 1 min
// for a day, 1 h for 30 days. Buckets are aggregated in memory as the samples arrive (each sample
// goes into its second, its minute and its hour at once), written to LMDB in one batch every
// FLUSH_MS when they close, and expired in the same batch. Memory: one open bucket per resolution
// plus the closed points not yet written (bounded by MAX_PENDING).
//
// Values, per series kind:
// - rate (messages, frames_out, errors, rate_limited): events in the bucket ÷ its length in
//   seconds, so a 1 s point is the count itself and points × resolution sum to the events.
// - gauge (connections, cpu_percent): the mean of the bucket's samples.
// - latency (send_p50_ms, send_p99_ms): from the send histogram's bucket counts gained over the
//   bucket (prom-client-style bounds, 0.5 ms … 10 s), the quantile interpolated linearly within
//   its histogram bucket: an approximation as fine as those bounds. No point when nothing was sent.
import { countsWithOverflow } from '../actors/latency-stats.js';
import type { ShardStats } from '../actors/shard.js';
import type { StorageEnv } from '../storage/env.js';
import type { OutcomeHistogram } from './outcome-histogram.js';

export type SeriesKind = 'rate' | 'gauge' | 'latency';

export const SERIES = {
  connections: { kind: 'gauge', help: 'open WebSocket connections' },
  messages: { kind: 'rate', help: 'sends answered ok per second' },
  frames_out: { kind: 'rate', help: 'WebSocket frames written per second (answers and deliveries)' },
  channel_deliveries: { kind: 'rate', help: 'channel posts delivered to subscriber sockets per second' },
  errors: { kind: 'rate', help: 'commands answered with an error code, and HTTP answers 5xx, per second' },
  rate_limited: { kind: 'rate', help: 'requests, connections and commands refused by a rate limit, per second' },
  send_p50_ms: { kind: 'latency', help: 'median send latency (ms), from the histogram buckets' },
  send_p99_ms: { kind: 'latency', help: '99th percentile send latency (ms), from the histogram buckets' },
  cpu_percent: { kind: 'gauge', help: 'CPU used by the whole process (all threads, shards included), % of one core' },
  shard_cpu_max_percent: { kind: 'gauge', help: 'CPU of the busiest shard thread, % of one core (a shard at 100 % is the limit)' },
  commit_p50_ms: { kind: 'latency', help: 'median commit latency, seal to durable (fsync included), all shards (ms)' },
  commit_p99_ms: { kind: 'latency', help: '99th percentile commit latency, seal to durable (fsync included), all shards (ms)' },
} as const satisfies Record<string, { kind: SeriesKind; help: string }>;
export type SeriesName = keyof typeof SERIES;
export const SERIES_NAMES = Object.keys(SERIES) as SeriesName[];

/** Bucket lengths (ms) and how long each is kept. */
export const RESOLUTIONS = [
  { ms: 1_000, keepMs: 3_600_000 },
  { ms: 60_000, keepMs: 86_400_000 },
  { ms: 3_600_000, keepMs: 30 * 86_400_000 },
] as const;
/** At most this many points in one answer: the finest resolution that fits is chosen. */
export const MAX_POINTS = 4_000;
const FLUSH_MS = 15_000;
/** Closed points waiting for their batch; beyond (storage failing), the oldest are dropped. */
const MAX_PENDING = 50_000;

/** One second's figures, as the sampler reads them. */
export interface Sample {
  connections: number;
  messages: number; framesOut: number; channelDeliveries: number; errors: number; rateLimited: number;
  cpuPercent: number;
  /** the busiest shard thread's CPU this second (% of one core; NaN when unknown) */
  shardCpuMax: number;
  /** send and commit latency histogram counts gained this second (bounds: SampleSource.latencyBounds) */
  sendLatency: number[];
  commitLatency: number[];
}

/** Where the sampler reads the in-process figures (cumulative counters; it takes the deltas). */
export interface SampleSource {
  latencyBounds: readonly number[];
  read(): {
    connections: number; messages: number; framesOut: number; channelDeliveries: number; errors: number; rateLimited: number;
    sendBuckets: readonly number[]; cpuMicros: number;
    /** commit latency counts summed over the shards (same bounds); per shard CPU µs by shard index */
    commitBuckets: readonly number[]; shardCpuMicros: ReadonlyMap<number, number>;
  };
}

class Bucket {
  n = 0;
  connections = 0; cpu = 0; shardCpu = 0; shardCpuN = 0;
  messages = 0; framesOut = 0; channelDeliveries = 0; errors = 0; rateLimited = 0;
  latency: number[];
  commit: number[];
  constructor(readonly start: number, readonly ms: number, bounds: number) {
    this.latency = new Array<number>(bounds + 1).fill(0);
    this.commit = new Array<number>(bounds + 1).fill(0);
  }
  add(s: Sample): void {
    this.n++;
    this.connections += s.connections; this.cpu += s.cpuPercent;
    if (Number.isFinite(s.shardCpuMax)) {
      this.shardCpu += s.shardCpuMax;
      this.shardCpuN++;
    }
    this.messages += s.messages; this.framesOut += s.framesOut; this.channelDeliveries += s.channelDeliveries;
    this.errors += s.errors; this.rateLimited += s.rateLimited;
    for (let i = 0; i < s.sendLatency.length; i++) this.latency[i] += s.sendLatency[i];
    for (let i = 0; i < s.commitLatency.length; i++) this.commit[i] += s.commitLatency[i];
  }
  points(bounds: readonly number[]): [SeriesName, number][] {
    const sec = this.ms / 1000;
    const out: [SeriesName, number][] = [
      ['connections', this.connections / this.n], ['cpu_percent', round(this.cpu / this.n)],
      ['messages', this.messages / sec], ['frames_out', this.framesOut / sec], ['channel_deliveries', this.channelDeliveries / sec],
      ['errors', this.errors / sec], ['rate_limited', this.rateLimited / sec],
    ];
    const p50 = quantile(this.latency, bounds, 0.5);
    const p99 = quantile(this.latency, bounds, 0.99);
    if (p50 !== null) out.push(['send_p50_ms', round(p50 * 1000)]);
    if (p99 !== null) out.push(['send_p99_ms', round(p99 * 1000)]);
    if (this.shardCpuN > 0) out.push(['shard_cpu_max_percent', round(this.shardCpu / this.shardCpuN)]);
    const c50 = quantile(this.commit, bounds, 0.5);
    const c99 = quantile(this.commit, bounds, 0.99);
    if (c50 !== null) out.push(['commit_p50_ms', round(c50 * 1000)]);
    if (c99 !== null) out.push(['commit_p99_ms', round(c99 * 1000)]);
    return out;
  }
}

const round = (v: number) => Math.round(v * 1000) / 1000;

/**
 * The q-quantile (seconds) of a histogram: `counts[i]` values in (bounds[i-1], bounds[i]], the
 * last count above the last bound; linear within a bucket (the overflow reads as the last bound).
 */
export function quantile(counts: readonly number[], bounds: readonly number[], q: number): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    if (counts[i] === 0) continue;
    if (seen + counts[i] >= rank) {
      if (i >= bounds.length) return bounds[bounds.length - 1];
      const lo = i === 0 ? 0 : bounds[i - 1];
      return lo + (bounds[i] - lo) * ((rank - seen) / counts[i]);
    }
    seen += counts[i];
  }
  return bounds[bounds.length - 1];
}

type Key = [string, number, number];
type Point = [number, number];

export interface HistoryOptions {
  clock?: () => number;
  /** false: no timers (tests drive tick() and flush()) */
  timers?: boolean;
}

export class MetricsHistory {
  private readonly clock: () => number;
  private readonly open: (Bucket | null)[] = RESOLUTIONS.map(() => null);
  /** closed points not yet in LMDB, by `${metric} ${res}` → (bucket start → value) */
  private readonly pending = new Map<string, Map<number, number>>();
  private pendingCount = 0;
  private last: ReturnType<SampleSource['read']> | null = null;
  private lastAt = 0;
  private tickTimer: NodeJS.Timeout | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();

  constructor(private readonly storage: StorageEnv, private readonly source: SampleSource, private readonly o: HistoryOptions = {}) {
    this.clock = o.clock ?? Date.now;
  }

  start(): void {
    if (this.o.timers === false) return;
    this.tick(); // the baseline: no point yet
    // Aligned on the second (20 ms after it), so that each tick closes the second just ended.
    const schedule = () => {
      this.tickTimer = setTimeout(() => {
        this.tick();
        schedule();
      }, 1020 - (this.clock() % 1000));
      this.tickTimer.unref();
    };
    schedule();
    this.flushTimer = setInterval(() => void this.flush(), FLUSH_MS);
    this.flushTimer.unref();
  }

  /** Stops sampling, closes the open buckets (a partial minute and hour are written as they are) and writes them. */
  async stop(): Promise<void> {
    if (this.tickTimer) clearTimeout(this.tickTimer);
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.tickTimer = this.flushTimer = null;
    this.open.forEach((b, i) => {
      if (b) this.close(i, b);
      this.open[i] = null;
    });
    await this.flush();
  }

  /** Reads the source; the gains since the last read are the second that just ended. */
  tick(): void {
    const now = this.clock();
    const cur = this.source.read();
    const prev = this.last;
    const elapsedMs = now - this.lastAt;
    this.last = cur;
    this.lastAt = now;
    if (!prev || elapsedMs <= 0) return;
    // A counter lower than before was reset (registry.resetMetrics): count from zero.
    const gain = (a: number, b: number) => (a >= b ? a - b : a);
    const sample: Sample = {
      connections: cur.connections,
      messages: gain(cur.messages, prev.messages), framesOut: gain(cur.framesOut, prev.framesOut),
      channelDeliveries: gain(cur.channelDeliveries, prev.channelDeliveries),
      errors: gain(cur.errors, prev.errors), rateLimited: gain(cur.rateLimited, prev.rateLimited),
      cpuPercent: (gain(cur.cpuMicros, prev.cpuMicros) / 1000 / elapsedMs) * 100,
      sendLatency: cur.sendBuckets.map((v, i) => gain(v, prev.sendBuckets[i] ?? 0)),
      commitLatency: cur.commitBuckets.map((v, i) => gain(v, prev.commitBuckets[i] ?? 0)),
      shardCpuMax: busiest(cur.shardCpuMicros, prev.shardCpuMicros, elapsedMs),
    };
    this.record(Math.floor(now / 1000) * 1000 - 1000, sample);
  }

  /** Adds one second's sample (`at`: the second's start) to its second, minute and hour. */
  record(at: number, sample: Sample): void {
    RESOLUTIONS.forEach((r, i) => {
      const start = Math.floor(at / r.ms) * r.ms;
      let b = this.open[i];
      if (b && b.start !== start) {
        this.close(i, b);
        b = null;
      }
      if (!b) b = this.open[i] = new Bucket(start, r.ms, this.source.latencyBounds.length);
      b.add(sample);
    });
  }

  private close(i: number, b: Bucket): void {
    for (const [metric, v] of b.points(this.source.latencyBounds)) {
      const k = `${metric} ${RESOLUTIONS[i].ms}`;
      let m = this.pending.get(k);
      if (!m) this.pending.set(k, (m = new Map()));
      if (!m.has(b.start)) this.pendingCount++;
      m.set(b.start, v);
    }
    while (this.pendingCount > MAX_PENDING) this.dropOldest();
  }

  private dropOldest(): void {
    for (const m of this.pending.values()) {
      const first = m.keys().next();
      if (!first.done) {
        m.delete(first.value);
        this.pendingCount--;
        return;
      }
    }
  }

  /** Writes the closed points and deletes the expired ones, in one batch. */
  flush(): Promise<void> {
    return (this.flushing = this.flushing.then(() => this.flushNow()));
  }

  private async flushNow(): Promise<void> {
    const db = this.storage.db.metricSeries;
    const now = this.clock();
    const keep = new Map<number, number>(RESOLUTIONS.map((r) => [r.ms, r.keepMs]));
    const writes: [Key, number][] = [];
    for (const [k, m] of this.pending) {
      const [metric, res] = k.split(' ');
      // A point already past its keeping (closed late, e.g. after a long pause) is not written.
      for (const [t, v] of m) if (t >= now - keep.get(Number(res))!) writes.push([[metric, Number(res), t], v]);
    }
    const expired: Key[] = [];
    for (const metric of SERIES_NAMES) {
      for (const r of RESOLUTIONS) {
        for (const key of db.getKeys({ start: [metric, r.ms, 0], end: [metric, r.ms, now - r.keepMs] })) expired.push(key as Key);
      }
    }
    if (writes.length === 0 && expired.length === 0) return;
    const taken = new Map([...this.pending].map(([k, m]) => [k, new Map(m)]));
    await this.storage.writeBatch(() => {
      for (const [key, v] of writes) void db.put(key, v);
      for (const key of expired) void db.remove(key);
    });
    // Written: forget what was taken, unless a later close replaced it meanwhile.
    for (const [k, m] of taken) {
      const p = this.pending.get(k);
      if (!p) continue;
      for (const [t, v] of m) {
        if (p.get(t) === v) {
          p.delete(t);
          this.pendingCount--;
        }
      }
      if (p.size === 0) this.pending.delete(k);
    }
  }

  /** The resolution an answer for [from, to] uses: the finest still kept at `from` with at most MAX_POINTS points. */
  resolutionFor(from: number, to: number): number {
    const now = this.clock();
    for (const r of RESOLUTIONS) if (from >= now - r.keepMs && (to - from) / r.ms <= MAX_POINTS) return r.ms;
    return RESOLUTIONS[RESOLUTIONS.length - 1].ms;
  }

  /** One series' points in [from, to] (ms), stored and not yet written; the open bucket is not included. */
  series(metric: SeriesName, from: number, to: number, resolution = this.resolutionFor(from, to)): { metric: SeriesName; resolution: number; points: Point[] } {
    const db = this.storage.db.metricSeries;
    const start = Math.floor(from / resolution) * resolution;
    const byT = new Map<number, number>();
    for (const { key, value } of db.getRange({ start: [metric, resolution, start], end: [metric, resolution, to + 1] })) byT.set((key as Key)[2], value);
    for (const [t, v] of this.pending.get(`${metric} ${resolution}`) ?? []) if (t >= start && t <= to) byT.set(t, v);
    const points = [...byT].sort((a, b) => a[0] - b[0]);
    return { metric, resolution, points };
  }
}

/** The busiest shard's CPU between two reads (% of one core); NaN when no shard was read twice. */
function busiest(cur: ReadonlyMap<number, number>, prev: ReadonlyMap<number, number>, elapsedMs: number): number {
  let max = NaN;
  for (const [shard, micros] of cur) {
    const before = prev.get(shard);
    if (before === undefined || !Number.isFinite(micros) || micros < before) continue;
    const pct = ((micros - before) / 1000 / elapsedMs) * 100;
    if (!(pct <= max)) max = pct;
  }
  return max;
}

/** The figures the gateway keeps, read as the sampler wants them. */
export function gatewaySource(
  m: { counts: { connections: number; framesOut: number; channelDeliveries: number }; commands: OutcomeHistogram; http: OutcomeHistogram },
  rateLimited: () => number,
  /** the shards' figures as last fetched (the sampler is synchronous; they are at most a second old) */
  shards: () => readonly ShardStats[] = () => [],
): SampleSource {
  const bounds = m.commands.bounds;
  return {
    latencyBounds: bounds,
    read() {
      let errors = 0;
      m.commands.forEachEntry((_key, e) => {
        for (const [result, n] of e.results) if (result !== 'ok') errors += n;
      });
      m.http.forEachEntry((_key, e) => {
        for (const [status, n] of e.results) if (status >= '500') errors += n;
      });
      const send = m.commands.entry('send');
      const cpu = process.cpuUsage();
      return {
        connections: m.counts.connections, framesOut: m.counts.framesOut,
        messages: send?.results.get('ok') ?? 0, errors, rateLimited: rateLimited(),
        sendBuckets: send ? countsWithOverflow(send.latency) : new Array<number>(bounds.length + 1).fill(0),
        cpuMicros: cpu.user + cpu.system, channelDeliveries: m.counts.channelDeliveries,
        commitBuckets: commitCounts(shards(), bounds.length),
        shardCpuMicros: new Map(shards().map((s) => [s.shard, s.cpuMicros])),
      };
    },
  };
}

/** Commit latency counts of all shards together, the overflow last (like sendBuckets). */
function commitCounts(shards: readonly ShardStats[], bounds: number): number[] {
  const out = new Array<number>(bounds + 1).fill(0);
  for (const s of shards) {
    countsWithOverflow(s.commit.latency).forEach((n, i) => (out[i] += n));
  }
  return out;
}
