// A latency histogram in plain numbers, cheap to record on a hot path and read when /metrics is
// scraped: commits, asks, commands and HTTP routes (src/outcome-histogram.ts). One bucket table for
// every latency series, and one way to write it as Prometheus series.

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

/** The bucket counts with the overflow (above the last bound) appended: what the metrics history keeps. */
export function countsWithOverflow(s: LatencySnapshot): number[] {
  const out = [...s.buckets];
  out.push(s.count - s.buckets.reduce((a, b) => a + b, 0));
  return out;
}

export interface SeriesValue { metricName: string; labels: Record<string, string | number>; value: number }

/** Appends one histogram's Prometheus series (cumulative `_bucket`s, `_sum`, `_count`) to `out`. */
export function histogramSeries(out: SeriesValue[], name: string, labels: Record<string, string>, s: LatencySnapshot): void {
  let cumulative = 0;
  LATENCY_BUCKETS.forEach((le, i) => {
    cumulative += s.buckets[i];
    out.push({ metricName: `${name}_bucket`, labels: { le, ...labels }, value: cumulative });
  });
  out.push({ metricName: `${name}_bucket`, labels: { le: '+Inf', ...labels }, value: s.count });
  out.push({ metricName: `${name}_sum`, labels, value: s.seconds });
  out.push({ metricName: `${name}_count`, labels, value: s.count });
}
