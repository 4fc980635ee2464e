// Token buckets by key (e.g. posts per user): `rate` tokens a second, up to `burst`. A key whose
// bucket is full again holds nothing worth keeping, so sweep() forgets it: memory stays bounded
// by the keys active within the last burst / rate seconds.

/** A bucket's tokens `elapsedMs` after it held `tokens`: refilled at `rate` a second, up to `burst`. */
export const refilled = (tokens: number, elapsedMs: number, rate: number, burst: number): number =>
  Math.min(burst, tokens + (elapsedMs * rate) / 1000);

/** Milliseconds until a bucket holding `tokens` (< 1), refilled at `rate` a second, holds one. */
export const msUntilToken = (tokens: number, rate: number): number => Math.ceil(((1 - tokens) * 1000) / rate);

export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly rate: number, private readonly burst: number) {
    this.sweeper = setInterval(() => this.sweep(), Math.max(1000, (burst / rate) * 1000));
    this.sweeper.unref();
  }

  /** Takes a token for `key`: 0 when allowed, else the milliseconds until one is available. */
  take(key: string, now = Date.now()): number {
    const b = this.buckets.get(key);
    const tokens = b ? refilled(b.tokens, now - b.at, this.rate, this.burst) : this.burst;
    if (tokens < 1) {
      if (b) (b.tokens = tokens), (b.at = now);
      return msUntilToken(tokens, this.rate);
    }
    if (b) (b.tokens = tokens - 1), (b.at = now);
    else this.buckets.set(key, { tokens: tokens - 1, at: now });
    return 0;
  }

  sweep(now = Date.now()): void {
    for (const [key, b] of this.buckets) {
      if (refilled(b.tokens, now - b.at, this.rate, this.burst) >= this.burst) this.buckets.delete(key);
    }
  }

  stop(): void {
    clearInterval(this.sweeper);
  }
}
