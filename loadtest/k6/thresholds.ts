// Thresholds: 'p(99)<50', 'avg<X', 'med<X', 'min>X', 'max<X', 'rate>0.999', 'count>X', 'value<X'
// (any of <, <=, >, >=, ==, !=), parsed before the test and evaluated on the final aggregates.
import type { MetricType } from './metrics.js';
import type { ThresholdSpec } from './options.js';

export interface Threshold {
  metric: string;
  /** the expression as written, e.g. 'p(99)<50' */
  source: string;
  stat: string;
  op: string;
  value: number;
  abortOnFail: boolean;
}

const RE = /^\s*(avg|min|max|med|count|rate|value|p\(\s*(\d+(?:\.\d+)?)\s*\))\s*(<=|>=|==|===|!=|<|>)\s*(-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)\s*$/i;

const ALLOWED: Record<MetricType, (stat: string) => boolean> = {
  trend: (s) => s === 'avg' || s === 'min' || s === 'max' || s === 'med' || s === 'count' || s.startsWith('p('),
  rate: (s) => s === 'rate',
  counter: (s) => s === 'count' || s === 'rate',
  gauge: (s) => s === 'value' || s === 'min' || s === 'max',
};

export function parseThreshold(metric: string, spec: ThresholdSpec): Threshold {
  const source = typeof spec === 'string' ? spec : spec?.threshold;
  if (typeof source !== 'string') throw new Error(`threshold on ${metric}: expected a string like 'p(99)<50', got ${JSON.stringify(spec)}`);
  if (metric.includes('{')) throw new Error(`threshold on ${metric}: tag filters are not supported`);
  const m = RE.exec(source);
  if (!m) throw new Error(`threshold on ${metric}: cannot parse '${source}' (use e.g. 'p(99)<50', 'avg<10', 'rate>0.99', 'count>0')`);
  let stat = m[1]!.toLowerCase();
  if (m[2] !== undefined) {
    const q = Number(m[2]);
    if (!(q >= 0 && q <= 100)) throw new Error(`threshold on ${metric}: percentile ${q} is not in 0..100`);
    stat = `p(${q})`;
  }
  return {
    metric,
    source: source.trim(),
    stat,
    op: m[3] === '===' ? '==' : m[3]!,
    value: Number(m[4]),
    abortOnFail: typeof spec === 'object' && Boolean(spec.abortOnFail),
  };
}

export function parseThresholds(all: Record<string, ThresholdSpec[] | ThresholdSpec> | undefined): Threshold[] {
  const out: Threshold[] = [];
  for (const [metric, specs] of Object.entries(all ?? {})) {
    for (const spec of Array.isArray(specs) ? specs : [specs]) out.push(parseThreshold(metric, spec));
  }
  return out;
}

/** `--threshold 'delivery_latency=p(99)<5000'` */
export function parseThresholdArg(arg: string): Threshold {
  const i = arg.indexOf('=');
  // 'name=expr': the first '=' not part of an operator.
  if (i <= 0 || arg[i + 1] === '=' || '<>!='.includes(arg[i - 1]!)) throw new Error(`--threshold ${arg}: use metric=expression, e.g. delivery_latency=p(99)<50`);
  return parseThreshold(arg.slice(0, i).trim(), arg.slice(i + 1));
}

export function checkApplies(t: Threshold, type: MetricType): string | undefined {
  if (!ALLOWED[type](t.stat)) return `'${t.stat}' does not apply to a ${type} (metric ${t.metric})`;
  return undefined;
}

export function compare(actual: number, op: string, value: number): boolean {
  if (!Number.isFinite(actual)) return false;
  switch (op) {
    case '<':
      return actual < value;
    case '<=':
      return actual <= value;
    case '>':
      return actual > value;
    case '>=':
      return actual >= value;
    case '==':
      return actual === value;
    case '!=':
      return actual !== value;
  }
  return false;
}
