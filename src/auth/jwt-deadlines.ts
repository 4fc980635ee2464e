// When sockets signed in with an application JWT need a `refresh` frame or a close (docs/protocol.md
// §3 "Application tokens"): one bucket per second, swept by the gateway's existing timer, so an
// idle connection costs a set entry, not a timer, and a sweep touches only what is due.

export class TokenDeadlines<T> {
  private readonly buckets = new Map<number, Set<T>>();
  /** every bucket up to this second has been taken */
  private swept: number;

  constructor(now = Date.now()) {
    this.swept = Math.floor(now / 1000);
  }

  /** Files `item` for `dueMs` (never taken before it); returns its slot, for remove(). */
  add(item: T, dueMs: number): number {
    const slot = Math.max(Math.ceil(dueMs / 1000), this.swept + 1);
    let bucket = this.buckets.get(slot);
    if (!bucket) this.buckets.set(slot, (bucket = new Set()));
    bucket.add(item);
    return slot;
  }

  remove(item: T, slot: number): void {
    const bucket = this.buckets.get(slot);
    if (!bucket) return;
    bucket.delete(item);
    if (bucket.size === 0) this.buckets.delete(slot);
  }

  /** Calls `visit` once for each item whose deadline has passed, oldest slot first, and forgets it. */
  takeDue(now: number, visit: (item: T) => void): void {
    const last = Math.floor(now / 1000);
    while (this.swept < last) {
      const slot = ++this.swept; // before visiting: what a visit files again lands in a later slot
      const bucket = this.buckets.get(slot);
      if (!bucket) continue;
      this.buckets.delete(slot);
      for (const item of bucket) visit(item);
    }
  }

  get size(): number {
    let n = 0;
    for (const b of this.buckets.values()) n += b.size;
    return n;
  }
}
