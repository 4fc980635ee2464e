// Windowed activity counts per channel and a maintained top list per window (docs/architecture.md
// "Trending channels"): exact counters in time buckets, so the error is 0 within the window's
// bucket granularity. Between bucket rolls counts only grow, so the top list is kept exact by
// moving one entry per increment (O(TOP_KEEP)); when a bucket leaves the window, counts shrink
// and the list is rebuilt once (one pass over the C channels counted in the window, once per bucket).
// A query reads the first k entries: O(k). Pure: time comes in as an argument.

export interface Activity { posts: number; joins: number }

export interface TrendingRow { channel: string; name: string; title: string; posts: number; joins: number; score: number }

/** A window: how far back it reaches, counted in buckets of bucketMs. */
export interface WindowSpec { spanMs: number; bucketMs: number }

/** Entries each window's top list keeps: the largest limit a query may ask for. */
export const TOP_KEEP = 50;

/** Score of a channel's activity: posts and joins weigh the same (docs/protocol.md "Trending channels"). */
export const scoreOf = (a: Activity): number => a.posts + a.joins;

interface Bucket { index: number; counts: Map<string, Activity> }

interface TopEntry { channel: string; score: number; posts: number }

/** Higher score first, then more posts, then channel id: a total order, so the list is deterministic. */
const before = (a: TopEntry, b: TopEntry): boolean =>
  a.score !== b.score ? a.score > b.score : a.posts !== b.posts ? a.posts > b.posts : a.channel < b.channel;

class Window {
  /** Buckets oldest first, each index = floor(time / bucketMs). */
  private readonly buckets: Bucket[] = [];
  readonly totals = new Map<string, Activity>();
  /** The TOP_KEEP best of totals, best first. Invariant: no channel outside it comes before its last entry. */
  private top: TopEntry[] = [];
  private readonly bucketCount: number;

  constructor(readonly spec: WindowSpec) {
    this.bucketCount = Math.ceil(spec.spanMs / spec.bucketMs);
  }

  add(channel: string, delta: Activity, now: number): void {
    this.roll(now);
    const index = Math.floor(now / this.spec.bucketMs);
    let bucket = this.buckets[this.buckets.length - 1];
    // A clock that went back counts into the newest bucket.
    if (!bucket || bucket.index < index) {
      bucket = { index, counts: new Map() };
      this.buckets.push(bucket);
    }
    addTo(bucket.counts, channel, delta);
    const total = addTo(this.totals, channel, delta);
    this.raise({ channel, score: scoreOf(total), posts: total.posts });
  }

  /** The window covers buckets (current - bucketCount, current]; older ones leave, and their counts with them. */
  roll(now: number): void {
    const oldest = Math.floor(now / this.spec.bucketMs) - this.bucketCount + 1;
    let gone = 0;
    while (gone < this.buckets.length && this.buckets[gone].index < oldest) {
      for (const [channel, a] of this.buckets[gone].counts) {
        const t = this.totals.get(channel)!;
        t.posts -= a.posts;
        t.joins -= a.joins;
        if (t.posts === 0 && t.joins === 0) this.totals.delete(channel);
      }
      gone++;
    }
    if (gone === 0) return;
    this.buckets.splice(0, gone);
    this.rebuild();
  }

  /** The first `limit` of the top list (limit ≤ TOP_KEEP). */
  first(limit: number): { channel: string; activity: Activity }[] {
    return this.top.slice(0, limit).map((e) => ({ channel: e.channel, activity: this.totals.get(e.channel)! }));
  }

  /** One pass over the totals, each offered to the list: O(C) when most fail the comparison with its last entry. */
  private rebuild(): void {
    this.top = [];
    for (const [channel, a] of this.totals) this.raise({ channel, score: scoreOf(a), posts: a.posts }, false);
  }

  /** A channel's counts grew: move it up (or into the list, pushing the last out). listed false: it is not in the list. */
  private raise(entry: TopEntry, listed = true): void {
    const top = this.top;
    let i = listed ? top.findIndex((e) => e.channel === entry.channel) : -1;
    if (i < 0) {
      if (top.length < TOP_KEEP) i = top.push(entry) - 1;
      else if (before(entry, top[top.length - 1])) {
        i = top.length - 1;
        top[i] = entry;
      } else return;
    } else top[i] = entry;
    while (i > 0 && before(top[i], top[i - 1])) {
      [top[i - 1], top[i]] = [top[i], top[i - 1]];
      i--;
    }
  }
}

function addTo(map: Map<string, Activity>, channel: string, delta: Activity): Activity {
  let a = map.get(channel);
  if (!a) {
    a = { posts: 0, joins: 0 };
    map.set(channel, a);
  }
  a.posts += delta.posts;
  a.joins += delta.joins;
  return a;
}

/** The windows channel.trending answers: the last hour in minutes, the last day in quarter hours. */
export const TRENDING_WINDOW_SPECS = {
  '1h': { spanMs: 3_600_000, bucketMs: 60_000 },
  '24h': { spanMs: 86_400_000, bucketMs: 900_000 },
} as const satisfies Record<string, WindowSpec>;

export type TrendingWindow = keyof typeof TRENDING_WINDOW_SPECS;

export class TrendingCounts {
  private readonly windows = new Map<TrendingWindow, Window>();
  /** name and title of every channel counted in some window */
  private readonly names = new Map<string, { name: string; title: string }>();

  constructor(specs: Record<TrendingWindow, WindowSpec> = TRENDING_WINDOW_SPECS) {
    for (const [w, spec] of Object.entries(specs)) this.windows.set(w as TrendingWindow, new Window(spec));
  }

  add(channel: string, name: string, title: string, delta: Activity, now: number): void {
    this.names.set(channel, { name, title });
    for (const w of this.windows.values()) w.add(channel, delta, now);
  }

  /** The `limit` busiest channels of the window, busiest first: O(limit) (plus a roll when a bucket left). */
  top(window: TrendingWindow, limit: number, now: number): TrendingRow[] {
    for (const w of this.windows.values()) w.roll(now);
    this.forgetNames();
    const rows: TrendingRow[] = [];
    for (const { channel, activity } of this.windows.get(window)!.first(Math.min(limit, TOP_KEEP))) {
      const n = this.names.get(channel)!;
      rows.push({ channel, name: n.name, title: n.title, posts: activity.posts, joins: activity.joins, score: scoreOf(activity) });
    }
    return rows;
  }

  /** Channels counted in some window now. */
  get size(): number {
    return this.names.size;
  }

  /** Names of channels no window counts any more go (the longest window decides; checked lazily). */
  private forgetNames(): void {
    if (this.names.size <= 2 * Math.max(...[...this.windows.values()].map((w) => w.totals.size))) return;
    for (const channel of this.names.keys()) {
      if (![...this.windows.values()].some((w) => w.totals.has(channel))) this.names.delete(channel);
    }
  }
}
