// A small HDR-style histogram: log-bucketed counts of integer microseconds (32 buckets per octave,
// quantiles reported as the bucket upper bound: ≤ 3.2 % high), fixed memory (896 buckets), mergeable (plain JSON).

const SUB = 64; // exact buckets below 64 µs; above, 32 sub-buckets per power of two
const HALF = SUB / 2;
const MAX_US = 2 ** 31 - 1; // ~35 minutes: anything larger is clamped
const BUCKETS = SUB + 26 * HALF;

export interface HistJSON {
  counts: number[];
  count: number;
  min: number;
  max: number;
  sum: number;
}

function indexOf(v: number): number {
  if (v < SUB) return v;
  const shift = 31 - Math.clz32(v) - 5; // v >> shift lies in [32, 63]
  return SUB + (shift - 1) * HALF + ((v >>> shift) - HALF);
}

/** Upper bound (inclusive) of the values in bucket i. */
function upperOf(i: number): number {
  if (i < SUB) return i;
  const shift = Math.floor((i - SUB) / HALF) + 1;
  const m = ((i - SUB) % HALF) + HALF;
  return ((m + 1) << shift) - 1;
}

export class Histogram {
  counts: number[] = new Array<number>(BUCKETS).fill(0);
  count = 0;
  min = Infinity;
  max = 0;
  sum = 0;

  /** Records a value in milliseconds (fractional allowed; stored as µs). */
  recordMs(ms: number): void {
    let us = Math.round(ms * 1000);
    if (!(us >= 0)) us = 0; // negative (clock noise) or NaN
    if (us > MAX_US) us = MAX_US;
    this.counts[indexOf(us)]++;
    this.count++;
    if (us < this.min) this.min = us;
    if (us > this.max) this.max = us;
    this.sum += us;
  }

  merge(h: HistJSON): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i] += h.counts[i] ?? 0;
    this.count += h.count;
    if (h.count > 0) {
      this.min = Math.min(this.min, h.min);
      this.max = Math.max(this.max, h.max);
    }
    this.sum += h.sum;
  }

  /** Value at quantile q (0..1) in ms; the bucket's upper bound, capped at the exact max. */
  quantileMs(q: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.min(upperOf(i), this.max) / 1000;
    }
    return this.max / 1000;
  }

  get maxMs(): number {
    return this.count === 0 ? NaN : this.max / 1000;
  }

  get meanMs(): number {
    return this.count === 0 ? NaN : this.sum / this.count / 1000;
  }

  toJSON(): HistJSON {
    return { counts: this.counts, count: this.count, min: this.count ? this.min : 0, max: this.max, sum: this.sum };
  }

  static from(h: HistJSON): Histogram {
    const out = new Histogram();
    out.merge(h);
    return out;
  }
}
