// Latency figures of the benchmarks, from the runner's log histogram (loadtest/k6/histogram.ts:
// quantiles within ±1 %, mergeable across generator processes).
import { LogHistogram, type HistWire } from '../k6/histogram.js';
import { round } from './proc.js';

export interface Latency {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
  samples: number;
}

export function summarize(h: LogHistogram): Latency {
  return { p50: round(h.quantile(0.5), 2), p90: round(h.quantile(0.9), 2), p99: round(h.quantile(0.99), 2), max: round(h.max, 2), mean: round(h.avg, 2), samples: h.count };
}

/** Merges the histograms of every generator and summarizes them. */
export function summarizeAll(parts: HistWire[]): Latency {
  const h = new LogHistogram();
  for (const p of parts) h.merge(p);
  return summarize(h);
}
