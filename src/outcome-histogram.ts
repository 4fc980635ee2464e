// Counts and latencies of something done often (a command, an HTTP route), by key and result, kept
// in plain maps and arrays and turned into Prometheus series only when /metrics is scraped:
// `<count>{key, result}` (a counter) and `<seconds>{key}` (a histogram). prom-client's own
// labelled Counter and Histogram cost ~5 µs per message on the send path (label hashing), this
// a few hundred ns.
import type { Registry } from 'prom-client';

interface Entry { results: Map<string, number>; buckets: number[]; sum: number; count: number }

export interface OutcomeHistogramOptions {
  countName: string; countHelp: string;
  secondsName: string; secondsHelp: string;
  keyLabel: string; resultLabel: string;
  /** upper bounds in seconds, ascending */
  buckets: readonly number[];
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
      e = { results: new Map(), buckets: new Array<number>(this.o.buckets.length).fill(0), sum: 0, count: 0 };
      this.entries.set(key, e);
    }
    e.results.set(result, (e.results.get(result) ?? 0) + 1);
    const b = this.o.buckets;
    let i = 0;
    while (i < b.length && seconds > b[i]) i++;
    if (i < b.length) e.buckets[i]++;
    e.sum += seconds;
    e.count++;
  }

  /** The latency bounds (seconds, ascending). */
  get bounds(): readonly number[] {
    return this.o.buckets;
  }

  /** One key's figures so far, read-only (the metrics history samples them: src/metrics-history.ts). */
  entry(key: string): Readonly<{ results: ReadonlyMap<string, number>; buckets: readonly number[]; count: number }> | undefined {
    return this.entries.get(key);
  }

  forEachEntry(fn: (key: string, e: Readonly<{ results: ReadonlyMap<string, number>; buckets: readonly number[]; count: number }>) => void): void {
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
    const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
    const name = this.o.secondsName;
    for (const [key, e] of this.entries) {
      let cumulative = 0;
      this.o.buckets.forEach((le, i) => {
        cumulative += e.buckets[i];
        values.push({ metricName: `${name}_bucket`, labels: { le, [this.o.keyLabel]: key }, value: cumulative });
      });
      values.push({ metricName: `${name}_bucket`, labels: { le: '+Inf', [this.o.keyLabel]: key }, value: e.count });
      values.push({ metricName: `${name}_sum`, labels: { [this.o.keyLabel]: key }, value: e.sum });
      values.push({ metricName: `${name}_count`, labels: { [this.o.keyLabel]: key }, value: e.count });
    }
    return values;
  }
}
