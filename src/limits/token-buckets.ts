// Token buckets by key (e.g. posts per user): `rate` tokens a second, up to `burst`. A key whose
// bucket is full again holds nothing worth keeping, so sweep() forgets it: memory stays bounded
// by the keys active within the last burst / rate seconds.
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
    const tokens = b ? Math.min(this.burst, b.tokens + ((now - b.at) * this.rate) / 1000) : this.burst;
    if (tokens < 1) {
      if (b) (b.tokens = tokens), (b.at = now);
      return Math.ceil(((1 - tokens) * 1000) / this.rate);
    }
    if (b) (b.tokens = tokens - 1), (b.at = now);
    else this.buckets.set(key, { tokens: tokens - 1, at: now });
    return 0;
  }

  sweep(now = Date.now()): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((now - b.at) * this.rate) / 1000 >= this.burst) this.buckets.delete(key);
    }
  }

  stop(): void {
    clearInterval(this.sweeper);
  }
}
