// Rate limits with several windows at once (e.g. 2/s, 5/min, 10/h, 100/day) per key, behind an
// interface: in memory here; cluster-wide in src/limits/nats-rate-limiter.ts (this counter, with the
// other nodes' hits added in the background: no round trip on the hot path, so the interface is
// synchronous).
//
// The bucketed counter (BucketedRateLimiter): every hit is counted in one bucket per granularity
// (second, minute, hour). A window is read as the second buckets back to the last whole minute, the
// minute buckets back to the last whole hour, the hour buckets before that, and the oldest bucket
// that straddles the window's start weighted by the part of it inside (the usual sliding-window
// estimate). So a day reads at most ~60 + 59 + 23 + 1 buckets, not 86,400; and only non-empty
// buckets are stored (a key's buckets are sparse arrays), so a key costs what its hits cost.
//
// Memory: a bucket older than every window that could still read it is dropped when its key is
// next written; a key whose newest hit is older than the longest window (plus one hour bucket) is
// dropped by sweep() (a timer, every SWEEP_MS). Beyond `maxKeys` the least recently hit keys are
// forgotten (the Map is kept in hit order): that can only make a limit laxer, never refuse anyone
// wrongly.

export interface RateWindow { limit: number; windowMs: number }

export interface RateLimiter {
  /** Counts `cost` hits for `key` when every window has room: 0. Else nothing is counted and the
   *  answer is the ms until the hits would fit (≥ 1). */
  consume(key: string, cost?: number): number;
  /** As consume, without counting. */
  peek(key: string, cost?: number): number;
  /** Takes back `cost` hits from the key's newest buckets (a login that turned out right). */
  refund(key: string, cost?: number): void;
  /** Keys tracked now. */
  readonly size: number;
  /** Drops what no window can read any more. */
  sweep(): void;
  stop(): void;
}

export type Clock = () => number;

/** Bucket sizes, finest first; each divides the next. */
export const GRANULARITIES: readonly number[] = [1000, 60_000, 3_600_000];
const SWEEP_MS = 60_000;

/** One granularity of one key: bucket indices (time / unit), ascending, and their counts. */
interface Level { idx: number[]; n: number[] }
interface Entry { levels: Level[]; last: number }

/** The part of a window read at one granularity: buckets lo..hi fully, and maybe one weighted tail. */
interface Span { lo: number; hi: number }
interface Plan { spans: Span[]; tailLevel: number; tailIdx: number; tailWeight: number; tailEnd: number }

export class BucketedRateLimiter implements RateLimiter {
  private readonly keys = new Map<string, Entry>();
  private readonly units: readonly number[];
  /** how far back each granularity's buckets can be read */
  private readonly keep: number[];
  private readonly longest: number;
  private readonly sweeper: NodeJS.Timeout | null;

  constructor(
    private readonly windows: readonly RateWindow[],
    private readonly opts: { clock?: Clock; maxKeys?: number; units?: readonly number[]; sweep?: boolean } = {},
  ) {
    if (windows.length === 0) throw new Error('a rate limiter needs at least one window');
    this.units = opts.units ?? GRANULARITIES;
    for (const w of windows) {
      if (!(w.limit >= 1) || !(w.windowMs >= this.units[0])) throw new Error(`a window needs a limit ≥ 1 and a length ≥ ${this.units[0]} ms`);
    }
    this.longest = Math.max(...windows.map((w) => w.windowMs));
    // A granularity is read back at most two of the next one's buckets (see plan()); the coarsest
    // back to the longest window.
    this.keep = this.units.map((u, i) => (i + 1 < this.units.length ? Math.min(this.longest, 2 * this.units[i + 1]) : this.longest) + u);
    this.sweeper = opts.sweep === false ? null : setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper?.unref();
  }

  get size(): number {
    return this.keys.size;
  }

  private now(): number {
    return (this.opts.clock ?? Date.now)();
  }

  consume(key: string, cost = 1): number {
    const now = this.now();
    const e = this.keys.get(key);
    if (e) {
      const wait = this.check(e, now, cost);
      if (wait > 0) return wait;
      // Re-inserted: the Map's order is the order of last hits (oldest first, evicted first).
      this.keys.delete(key);
      this.keys.set(key, e);
      this.add(e, now, cost);
      return 0;
    }
    for (const w of this.windows) if (cost > w.limit) return w.windowMs;
    this.add(this.create(key, now), now, cost);
    return 0;
  }

  /**
   * Counts `cost` hits for `key` without checking: hits another node already allowed (a cluster's
   * limiter, src/limits/nats-rate-limiter.ts), so a key may go over its limit and then waits as
   * long as its windows say. A negative cost takes hits back, as refund does; 0 or a non-number
   * does nothing.
   */
  record(key: string, cost: number): void {
    if (cost < 0) return this.refund(key, -cost);
    if (!(cost > 0)) return;
    const now = this.now();
    const e = this.keys.get(key);
    if (!e) return this.add(this.create(key, now), now, cost);
    this.keys.delete(key); // a hit: the key moves to the newest end of the hit order
    this.keys.set(key, e);
    this.add(e, now, cost);
  }

  peek(key: string, cost = 1): number {
    const e = this.keys.get(key);
    if (e) return this.check(e, this.now(), cost);
    for (const w of this.windows) if (cost > w.limit) return w.windowMs;
    return 0;
  }

  refund(key: string, cost = 1): void {
    const e = this.keys.get(key);
    if (!e) return;
    for (const l of e.levels) {
      let left = cost;
      for (let i = l.n.length - 1; i >= 0 && left > 0; i--) {
        const take = Math.min(left, l.n[i]);
        l.n[i] -= take;
        left -= take;
      }
    }
  }

  sweep(): void {
    const horizon = this.now() - this.longest - this.units[this.units.length - 1];
    for (const [key, e] of this.keys) {
      if (e.last >= horizon) break; // hit order: every later key is newer
      this.keys.delete(key);
    }
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
  }

  /** A new key, the newest in hit order; beyond `maxKeys` the least recently hit one is forgotten. */
  private create(key: string, now: number): Entry {
    if (this.keys.size >= (this.opts.maxKeys ?? Infinity)) this.keys.delete(this.keys.keys().next().value as string);
    const fresh: Entry = { levels: this.units.map(() => ({ idx: [], n: [] })), last: now };
    this.keys.set(key, fresh);
    return fresh;
  }

  /** 0 when `cost` more hits fit every window, else the ms until they would. */
  private check(e: Entry, now: number, cost: number): number {
    let wait = 0;
    for (const w of this.windows) {
      const plan = this.plan(now, w.windowMs);
      const count = this.count(e, plan);
      if (count + cost <= w.limit) continue;
      wait = Math.max(wait, this.until(e, plan, now, w, count + cost - w.limit));
    }
    return wait;
  }

  /**
   * Which buckets make up [now - windowMs, now]: at each granularity, from where the finer one
   * stopped back to the last boundary of the next coarser one (when a whole coarser bucket still
   * fits); at the far end one bucket that straddles the start, weighted by its part inside.
   */
  private plan(now: number, windowMs: number): Plan {
    const start = now - windowMs;
    const units = this.units;
    const spans: Span[] = [];
    const b0 = Math.floor(now / units[0]);
    let t = b0 * units[0]; // start of the current finest bucket, which is read whole
    spans.push({ lo: b0, hi: b0 });
    let level = 0;
    for (;;) {
      if (t <= start) return { spans, tailLevel: -1, tailIdx: 0, tailWeight: 0, tailEnd: 0 };
      const u = units[level];
      const next = units[level + 1];
      if (next !== undefined) {
        const boundary = Math.floor(t / next) * next;
        if (boundary - next >= start) {
          // Finer buckets back to the boundary, then whole coarser ones.
          if (boundary < t) extend(spans, level, boundary / u, t / u - 1);
          t = boundary;
          level++;
          spans.push({ lo: t / units[level], hi: t / units[level] - 1 });
          continue;
        }
      }
      const whole = Math.floor((t - start) / u);
      if (whole > 0) extend(spans, level, t / u - whole, t / u - 1);
      t -= whole * u;
      if (t <= start) return { spans, tailLevel: -1, tailIdx: 0, tailWeight: 0, tailEnd: 0 };
      return { spans, tailLevel: level, tailIdx: t / u - 1, tailWeight: (t - start) / u, tailEnd: t };
    }
  }

  private count(e: Entry, p: Plan): number {
    let total = 0;
    for (let i = 0; i < p.spans.length; i++) {
      const s = p.spans[i];
      if (s.hi < s.lo) continue;
      const l = e.levels[i];
      for (let j = l.idx.length - 1; j >= 0; j--) {
        const idx = l.idx[j];
        if (idx < s.lo) break;
        if (idx <= s.hi) total += l.n[j];
      }
    }
    if (p.tailLevel >= 0) total += p.tailWeight * bucket(e.levels[p.tailLevel], p.tailIdx);
    return total;
  }

  /** ms until `excess` hits have left the window: the oldest buckets leave first. */
  private until(e: Entry, p: Plan, now: number, w: RateWindow, excess: number): number {
    // Oldest first: the weighted tail, then the coarsest span up to the finest.
    let dropped = 0;
    if (p.tailLevel >= 0) {
      dropped += p.tailWeight * bucket(e.levels[p.tailLevel], p.tailIdx);
      if (dropped >= excess) return Math.max(1, p.tailEnd + w.windowMs - now);
    }
    for (let i = p.spans.length - 1; i >= 0; i--) {
      const s = p.spans[i];
      const l = e.levels[i];
      const u = this.units[i];
      for (let j = 0; j < l.idx.length; j++) {
        const idx = l.idx[j];
        if (idx < s.lo || idx > s.hi) continue;
        dropped += l.n[j];
        if (dropped >= excess) return Math.max(1, (idx + 1) * u + w.windowMs - now);
      }
    }
    return w.windowMs; // more hits than the limit itself: a whole window
  }

  private add(e: Entry, now: number, cost: number): void {
    e.last = now;
    for (let i = 0; i < this.units.length; i++) {
      const u = this.units[i];
      const l = e.levels[i];
      const idx = Math.floor(now / u);
      const n = l.idx.length;
      if (n > 0 && l.idx[n - 1] === idx) l.n[n - 1] += cost;
      else {
        l.idx.push(idx);
        l.n.push(cost);
      }
      // Forget what no window reads any more.
      const oldest = Math.floor((now - this.keep[i]) / u);
      let drop = 0;
      while (drop < l.idx.length && l.idx[drop] < oldest) drop++;
      if (drop > 0) {
        l.idx.splice(0, drop);
        l.n.splice(0, drop);
      }
    }
  }
}

/** Widens the span of `level` (created empty by plan) to lo..hi. */
function extend(spans: Span[], level: number, lo: number, hi: number): void {
  const s = spans[level];
  if (s.hi < s.lo) {
    s.lo = lo;
    s.hi = hi;
  } else {
    s.lo = Math.min(s.lo, lo);
    s.hi = Math.max(s.hi, hi);
  }
}

function bucket(l: Level, idx: number): number {
  for (let j = l.idx.length - 1; j >= 0; j--) {
    if (l.idx[j] === idx) return l.n[j];
    if (l.idx[j] < idx) return 0;
  }
  return 0;
}

/** RATE_LIMITS=off: everything allowed, nothing kept. */
export class NoRateLimiter implements RateLimiter {
  readonly size = 0;
  consume(_key?: string, _cost?: number): number {
    return 0;
  }
  peek(): number {
    return 0;
  }
  refund(): void {}
  sweep(): void {}
  stop(): void {}
}

/** "2/s,5/m,10/h,100/d" (also "20/10s", "3/15m") → windows; throws with a message otherwise. */
export function parseWindows(raw: string): RateWindow[] {
  const units: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  const out: RateWindow[] = [];
  for (const part of raw.split(',')) {
    const m = /^\s*(\d+)\/(\d*)(s|m|h|d)\s*$/.exec(part);
    if (!m) throw new Error(`expected windows like 2/s,5/m,10/h,100/d, got "${raw}"`);
    const limit = Number(m[1]);
    const windowMs = (m[2] === '' ? 1 : Number(m[2])) * units[m[3]];
    if (limit < 1 || windowMs < 1000 || windowMs > 30 * 86_400_000) throw new Error(`a window needs a limit ≥ 1 and a length from 1s to 30d, got "${part.trim()}"`);
    out.push({ limit, windowMs });
  }
  return out;
}

export function formatWindows(windows: readonly RateWindow[]): string {
  const unit = (ms: number) => {
    for (const [u, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
      if (ms % size === 0) return ms === size ? u : `${ms / size}${u}`;
    }
    return `${ms / 1000}s`;
  };
  return windows.map((w) => `${w.limit}/${unit(w.windowMs)}`).join(',');
}
