// A latency histogram in plain numbers, cheap to record on a hot path and read when /metrics is
// scraped (src/metrics.ts builds the Prometheus series): commits, asks.

/** Upper bounds in seconds: 0.5 ms … 10 s (an fsync here takes ~1–5 ms). */
export const LATENCY_BUCKETS: readonly number[] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

export interface LatencySnapshot { count: number; seconds: number; buckets: number[] }

export class LatencyStats implements LatencySnapshot {
  count = 0;
  seconds = 0;
  readonly buckets: number[] = LATENCY_BUCKETS.map(() => 0);

  record(seconds: number): void {
    this.count++;
    this.seconds += seconds;
    let i = 0;
    while (i < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[i]) i++;
    if (i < LATENCY_BUCKETS.length) this.buckets[i]++;
  }

  /** A copy that can cross threads (structured clone) or be read later. */
  snapshot(): LatencySnapshot {
    return { count: this.count, seconds: this.seconds, buckets: [...this.buckets] };
  }
}
