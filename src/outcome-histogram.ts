// Counts and latencies of something done often (a command, an HTTP route), by key and result, kept
// in plain maps and arrays and turned into Prometheus series only when /metrics is scraped:
// `<count>{key, result}` (a counter) and `<seconds>{key}` (a histogram). prom-client's own
// labelled Counter and Histogram cost ~5 µs per message on the send path (label hashing), this
// a few hundred ns.
import type { Registry } from 'prom-client';
import { histogramSeries, LATENCY_BUCKETS, LatencyStats, type LatencySnapshot, type SeriesValue } from '../actors/latency-stats.js';

interface Entry { results: Map<string, number>; latency: LatencyStats }
/** What readers get of one key: its results and its latency so far. */
export type OutcomeEntry = Readonly<{ results: ReadonlyMap<string, number>; latency: Readonly<LatencySnapshot> }>;

export interface OutcomeHistogramOptions {
  countName: string; countHelp: string;
  secondsName: string; secondsHelp: string;
  keyLabel: string; resultLabel: string;
}

export class OutcomeHistogram {
  private readonly entries = new Map<string, Entry>();

  constructor(registry: Registry, private readonly o: OutcomeHistogramOptions) {
    const self = this;
    registry.registerMetric({
      name: o.countName,
      get: async () => ({ name: o.countName, help: o.countHelp, type: 'counter', aggregator: 'sum', values: self.countValues() }),
      reset: () => self.entries.clear(),
    } as never);
    registry.registerMetric({
      name: o.secondsName,
      get: async () => ({ name: o.secondsName, help: o.secondsHelp, type: 'histogram', aggregator: 'sum', values: self.histogramValues() }),
      reset: () => self.entries.clear(),
    } as never);
  }

  record(key: string, result: string, seconds: number): void {
    let e = this.entries.get(key);
    if (!e) {
      e = { results: new Map(), latency: new LatencyStats() };
      this.entries.set(key, e);
    }
    e.results.set(result, (e.results.get(result) ?? 0) + 1);
    e.latency.record(seconds);
  }

  /** The latency bounds (seconds, ascending). */
  get bounds(): readonly number[] {
    return LATENCY_BUCKETS;
  }

  /** One key's figures so far, read-only (the metrics history samples them: src/metrics-history.ts). */
  entry(key: string): OutcomeEntry | undefined {
    return this.entries.get(key);
  }

  forEachEntry(fn: (key: string, e: OutcomeEntry) => void): void {
    for (const [key, e] of this.entries) fn(key, e);
  }

  private countValues() {
    const values: { labels: Record<string, string>; value: number }[] = [];
    for (const [key, e] of this.entries) {
      for (const [result, n] of e.results) values.push({ labels: { [this.o.keyLabel]: key, [this.o.resultLabel]: result }, value: n });
    }
    return values;
  }

  private histogramValues() {
    const values: SeriesValue[] = [];
    for (const [key, e] of this.entries) histogramSeries(values, this.o.secondsName, { [this.o.keyLabel]: key }, e.latency);
    return values;
  }
}
