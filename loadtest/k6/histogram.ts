// A sparse log-bucketed histogram for Trend samples: bucket k covers a 2 % wide range of |v|, so a
// quantile is within ±1 % of the true value; exact count/sum/min/max ride along. Memory is bounded
// (|v| from 1e-6 to 1e15 is ~2,400 buckets per sign, in practice a few hundred), it merges across
// processes, and it travels as a flat JSON array. Negative values are kept (clock differences).

const GAMMA = 1.02;
const LOG_GAMMA = Math.log(GAMMA);
const MIN_ABS = 1e-6;
const MAX_KEY = 2600;

export interface HistWire {
  count: number;
  sum: number;
  min: number;
  max: number;
  /** [key, count, key, count, ...] */
  b: number[];
}

function keyOf(v: number): number {
  const a = Math.abs(v);
  if (a < MIN_ABS) return 0;
  const k = Math.min(MAX_KEY, Math.floor(Math.log(a / MIN_ABS) / LOG_GAMMA) + 1);
  return v < 0 ? -k : k;
}

function valueOf(key: number): number {
  if (key === 0) return 0;
  const k = Math.abs(key);
  const v = MIN_ABS * Math.pow(GAMMA, k - 1 + 0.5);
  return key < 0 ? -v : v;
}

export class LogHistogram {
  buckets = new Map<number, number>();
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;

  add(v: number): void {
    if (!Number.isFinite(v)) return;
    const k = keyOf(v);
    this.buckets.set(k, (this.buckets.get(k) ?? 0) + 1);
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  merge(w: HistWire | LogHistogram): void {
    if (w.count === 0) return;
    if (w instanceof LogHistogram) {
      for (const [k, c] of w.buckets) this.buckets.set(k, (this.buckets.get(k) ?? 0) + c);
    } else {
      const b = w.b;
      for (let i = 0; i + 1 < b.length; i += 2) this.buckets.set(b[i]!, (this.buckets.get(b[i]!) ?? 0) + b[i + 1]!);
    }
    this.count += w.count;
    this.sum += w.sum;
    if (w.min < this.min) this.min = w.min;
    if (w.max > this.max) this.max = w.max;
  }

  /** Value at quantile q in [0, 1]; NaN without samples. p(0) and p(100) are the exact min and max. */
  quantile(q: number): number {
    if (this.count === 0) return NaN;
    if (q <= 0) return this.min;
    if (q >= 1) return this.max;
    const rank = Math.max(1, Math.ceil(q * this.count));
    const keys = Array.from(this.buckets.keys()).sort((a, b) => a - b);
    let seen = 0;
    for (const k of keys) {
      seen += this.buckets.get(k)!;
      if (seen >= rank) return Math.min(this.max, Math.max(this.min, valueOf(k)));
    }
    return this.max;
  }

  get avg(): number {
    return this.count === 0 ? NaN : this.sum / this.count;
  }

  toWire(): HistWire {
    const b: number[] = [];
    for (const [k, c] of this.buckets) b.push(k, c);
    return { count: this.count, sum: this.sum, min: this.count ? this.min : 0, max: this.count ? this.max : 0, b };
  }

  static fromWire(w: HistWire): LogHistogram {
    const h = new LogHistogram();
    h.merge(w);
    return h;
  }
}
