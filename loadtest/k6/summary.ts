// The runner's side of the metrics: merges the generators' one-second snapshots into totals and a
// per-second series (bounded: a second is reduced to a few numbers once all its samples are in),
// evaluates thresholds, and renders the k6-like text summary and summary.json.
import { formatDuration } from './duration.js';
import { mergeAgg, newAgg, type Agg, type MetricDef, type Snapshot } from './metrics.js';
import { checkApplies, compare, type Threshold } from './thresholds.js';

export interface TrendPoint {
  n: number;
  avg: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface SecondRow {
  /** test second (0-based) */
  t: number;
  vus: number;
  counters: Record<string, number>;
  trends: Record<string, TrendPoint>;
  rates: Record<string, number>;
  gauges: Record<string, number>;
}

interface OpenSecond {
  metrics: Map<string, Agg>;
  vusByGen: Map<number, number>;
}

/** How many seconds a second stays open for late snapshots before it is reduced. */
const OPEN_SECONDS = 3;
const MAX_ERROR_KINDS = 100;

export class Collector {
  readonly defs = new Map<string, MetricDef>();
  readonly totals = new Map<string, Agg>();
  readonly checks = new Map<string, [number, number]>();
  readonly errors = new Map<string, number>();
  readonly rows: SecondRow[] = [];
  private readonly open = new Map<number, OpenSecond>();
  private reducedUpTo = -1;

  /** Adds a snapshot; `second` undefined = outside the timed part (setup, teardown): totals only. */
  add(snap: Snapshot, second?: number, gen?: number, vus?: number): void {
    for (const [name, def] of Object.entries(snap.defs)) if (!this.defs.has(name)) this.defs.set(name, def);
    let sec: OpenSecond | undefined;
    if (second !== undefined) {
      // Late for a reduced second: count it in the oldest open one rather than drop it from the plots.
      const s = Math.max(second, this.reducedUpTo + 1);
      sec = this.open.get(s);
      if (!sec) {
        sec = { metrics: new Map(), vusByGen: new Map() };
        this.open.set(s, sec);
      }
      if (gen !== undefined && vus !== undefined) sec.vusByGen.set(gen, vus);
    }
    for (const [name, w] of Object.entries(snap.metrics)) {
      let tot = this.totals.get(name);
      if (!tot) {
        tot = newAgg(w.type);
        this.totals.set(name, tot);
      }
      mergeAgg(tot, w);
      if (sec) {
        let a = sec.metrics.get(name);
        if (!a) {
          a = newAgg(w.type);
          sec.metrics.set(name, a);
        }
        mergeAgg(a, w);
      }
    }
    for (const [name, [p, f]] of Object.entries(snap.checks)) {
      const c = this.checks.get(name) ?? [0, 0];
      c[0] += p;
      c[1] += f;
      this.checks.set(name, c);
    }
    for (const [msg, n] of Object.entries(snap.errors)) {
      const key = this.errors.has(msg) || this.errors.size < MAX_ERROR_KINDS ? msg : '(other errors)';
      this.errors.set(key, (this.errors.get(key) ?? 0) + n);
    }
  }

  /** The latest second that has data (open or reduced). */
  peek(second: number): { vus: number; counters: Record<string, number>; errors: number; checks?: number } | undefined {
    const sec = this.open.get(second);
    if (sec) {
      const counters: Record<string, number> = {};
      let checks: number | undefined;
      for (const [name, a] of sec.metrics) {
        if (a.type === 'counter') counters[name] = a.sum;
        if (name === 'checks' && a.type === 'rate' && a.total > 0) checks = a.trues / a.total;
      }
      return { vus: sumOf(sec.vusByGen), counters, errors: counters.errors ?? 0, checks };
    }
    const row = this.rows.find((r) => r.t === second);
    if (!row) return undefined;
    return { vus: row.vus, counters: row.counters, errors: row.counters.errors ?? 0, checks: row.rates.checks };
  }

  /** Reduces every open second ≤ upTo (all of them when upTo is Infinity) to a row. */
  reduce(upTo: number): void {
    const keys = Array.from(this.open.keys())
      .filter((k) => k <= upTo)
      .sort((a, b) => a - b);
    for (const k of keys) {
      const sec = this.open.get(k)!;
      this.open.delete(k);
      // Seconds nobody reported (a stalled generator) become empty rows, so the x axis stays linear.
      for (let gap = this.reducedUpTo + 1; gap < k; gap++) this.rows.push(emptyRow(gap));
      const row = emptyRow(k);
      row.vus = sumOf(sec.vusByGen);
      for (const [name, a] of sec.metrics) {
        switch (a.type) {
          case 'counter':
            row.counters[name] = a.sum;
            break;
          case 'rate':
            if (a.total > 0) row.rates[name] = Math.round((a.trues / a.total) * 1e6) / 1e6;
            break;
          case 'gauge':
            if (a.n > 0) row.gauges[name] = a.value;
            break;
          case 'trend':
            if (a.h.count > 0) {
              row.trends[name] = {
                n: a.h.count,
                avg: r3(a.h.avg),
                p50: r3(a.h.quantile(0.5)),
                p90: r3(a.h.quantile(0.9)),
                p99: r3(a.h.quantile(0.99)),
                max: r3(a.h.max),
              };
            }
            break;
        }
      }
      this.rows.push(row);
      this.reducedUpTo = Math.max(this.reducedUpTo, k);
    }
  }

  reduceOld(current: number): void {
    this.reduce(current - OPEN_SECONDS);
  }
}

function r3(v: number): number {
  return Math.round(v * 1000) / 1000;
}

function emptyRow(t: number): SecondRow {
  return { t, vus: 0, counters: {}, trends: {}, rates: {}, gauges: {} };
}

function sumOf(m: Map<number, number>): number {
  let s = 0;
  for (const v of m.values()) s += v;
  return s;
}

// ------------------------------------------------------------------ final statistics

export interface MetricSummary {
  type: 'counter' | 'rate' | 'trend' | 'gauge';
  contains: 'time' | 'default';
  values: Record<string, number>;
  thresholds?: Record<string, { ok: boolean; actual: number | null }>;
}

export interface SummaryJson {
  script: string;
  startedAt: string;
  /** timed part: from the start to the last VU's end (ms) */
  durationMs: number;
  url: string;
  spawnedServer: boolean;
  generators: number;
  scenarios: Array<{ name: string; executor: string; description: string }>;
  maxVUs: number;
  thresholdsOk: boolean;
  /** a generator or the spawned server died, or teardown failed: exit code 1 */
  runnerError: boolean;
  metrics: Record<string, MetricSummary>;
  checks: Array<{ name: string; passes: number; fails: number }>;
  errors: Array<{ message: string; count: number }>;
  notes: string[];
  server?: Record<string, unknown>;
  machine: Record<string, unknown>;
  series: SecondRow[];
}

const TREND_STATS = ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'];

export function trendValue(a: Extract<Agg, { type: 'trend' }>, stat: string): number {
  const h = a.h;
  switch (stat) {
    case 'avg':
      return h.avg;
    case 'min':
      return h.count ? h.min : NaN;
    case 'max':
      return h.count ? h.max : NaN;
    case 'med':
      return h.quantile(0.5);
    case 'count':
      return h.count;
  }
  const m = /^p\((\d+(?:\.\d+)?)\)$/.exec(stat);
  return m ? h.quantile(Number(m[1]) / 100) : NaN;
}

export function valuesOf(a: Agg, durationS: number, extraStats: string[] = []): Record<string, number> {
  switch (a.type) {
    case 'counter':
      return { count: a.sum, rate: durationS > 0 ? a.sum / durationS : NaN };
    case 'rate':
      return { rate: a.total > 0 ? a.trues / a.total : NaN, passes: a.trues, fails: a.total - a.trues };
    case 'gauge':
      return a.n > 0 ? { value: a.value, min: a.min, max: a.max } : { value: NaN, min: NaN, max: NaN };
    case 'trend': {
      const out: Record<string, number> = {};
      for (const s of [...TREND_STATS, ...extraStats]) out[s] = trendValue(a, s);
      out.count = a.h.count;
      return out;
    }
  }
}

/** Evaluates thresholds into `metrics` (creating entries for metrics without samples); true if all pass. */
export function evaluateThresholds(
  thresholds: Threshold[],
  col: Collector,
  metrics: Record<string, MetricSummary>,
  durationS: number,
  notes: string[],
): boolean {
  let ok = true;
  for (const t of thresholds) {
    const def = col.defs.get(t.metric);
    let entry = metrics[t.metric];
    let actual = NaN;
    if (!def) {
      notes.push(`threshold ${t.metric}: '${t.source}' failed: no metric named ${t.metric} was defined`);
    } else {
      const bad = checkApplies(t, def.type);
      if (bad) notes.push(`threshold ${t.metric}: ${bad}`);
      const agg = col.totals.get(t.metric) ?? newAgg(def.type);
      if (!entry) {
        entry = { type: def.type, contains: def.isTime ? 'time' : 'default', values: valuesOf(agg, durationS) };
        metrics[t.metric] = entry;
      }
      if (!bad) {
        if (agg.type === 'trend') actual = trendValue(agg, t.stat);
        else actual = entry.values[t.stat] ?? NaN;
        // Counters without samples are 0; other metrics without samples fail (a dead hot path must not pass).
        if (agg.type === 'counter' && t.stat === 'count' && Number.isNaN(actual)) actual = 0;
        if (Number.isNaN(actual)) notes.push(`threshold ${t.metric}: '${t.source}' failed: no samples`);
      }
    }
    const pass = compare(actual, t.op, t.value);
    if (!pass) ok = false;
    if (entry) {
      entry.thresholds ??= {};
      entry.thresholds[t.source] = { ok: pass, actual: Number.isFinite(actual) ? actual : null };
    }
  }
  return ok;
}

export function buildMetrics(col: Collector, durationS: number, thresholds: Threshold[]): Record<string, MetricSummary> {
  const extra = Array.from(new Set(thresholds.map((t) => t.stat).filter((s) => s.startsWith('p(') && !TREND_STATS.includes(s))));
  const out: Record<string, MetricSummary> = {};
  for (const name of Array.from(col.totals.keys()).sort()) {
    const def = col.defs.get(name);
    const agg = col.totals.get(name)!;
    if (!def) continue;
    out[name] = { type: def.type, contains: def.isTime ? 'time' : 'default', values: valuesOf(agg, durationS, extra) };
  }
  return out;
}

// ------------------------------------------------------------------ text

export function fmtTime(ms: number): string {
  if (!Number.isFinite(ms)) return 'n/a';
  const a = Math.abs(ms);
  if (a === 0) return '0s';
  if (a < 1) return `${round(ms * 1000, 2)}µs`;
  if (a < 1000) return `${round(ms, 2)}ms`;
  if (a < 60_000) return `${round(ms / 1000, 2)}s`;
  return formatDuration(ms);
}

export function fmtNum(v: number): string {
  if (!Number.isFinite(v)) return 'n/a';
  const a = Math.abs(v);
  if (a >= 1e6) return `${round(v / 1e6, 2)}M`;
  if (a >= 100_000) return `${round(v / 1e3, 1)}k`;
  if (Number.isInteger(v)) return String(v);
  if (a >= 100) return round(v, 1);
  return round(v, a >= 1 ? 2 : 4);
}

function round(v: number, digits: number): string {
  return String(Number(v.toFixed(digits)));
}

export function fmtStat(m: MetricSummary, stat: string, v: number): string {
  if (m.type === 'trend' && m.contains === 'time' && stat !== 'count') return fmtTime(v);
  if (m.type === 'rate' && stat === 'rate') return Number.isFinite(v) ? `${(v * 100).toFixed(2)}%` : 'n/a';
  if (m.type === 'counter' && stat === 'rate') return `${fmtNum(v)}/s`;
  return fmtNum(v);
}

/** The value part of a metric's summary line. */
export function metricLine(m: MetricSummary): string {
  const v = m.values;
  switch (m.type) {
    case 'trend':
      return [...TREND_STATS.map((s) => `${s}=${fmtStat(m, s, v[s]!)}`), `count=${fmtNum(v.count!)}`].join(' ');
    case 'rate':
      return `${fmtStat(m, 'rate', v.rate!).padEnd(8)} ✓ ${fmtNum(v.passes!).padEnd(8)} ✗ ${fmtNum(v.fails!)}`;
    case 'counter':
      return `${fmtNum(v.count!).padEnd(10)} ${fmtStat(m, 'rate', v.rate!)}`;
    case 'gauge':
      return `${fmtNum(v.value!).padEnd(10)} min=${fmtNum(v.min!)} max=${fmtNum(v.max!)}`;
  }
}

export function renderSummary(s: SummaryJson): string {
  const L: string[] = [];
  L.push('');
  L.push(`  script: ${s.script}`);
  L.push(`  target: ${s.url}${s.spawnedServer ? ' (server spawned by the runner)' : ''}`);
  L.push(`  generators: ${s.generators} processes · ${s.maxVUs} max VUs · machine: ${s.machine.cores} cores (server and generators share them)`);
  L.push(`  scenarios: ${s.scenarios.length}`);
  for (const sc of s.scenarios) L.push(`    * ${sc.name}: ${sc.description}`);
  L.push('');

  const withThresholds = Object.entries(s.metrics).filter(([, m]) => m.thresholds && Object.keys(m.thresholds).length > 0);
  if (withThresholds.length > 0) {
    L.push('  █ THRESHOLDS');
    L.push('');
    for (const [name, m] of withThresholds) {
      L.push(`    ${name}`);
      for (const [src, r] of Object.entries(m.thresholds!)) {
        const stat = /^\s*([a-z]+(?:\([\d.]+\))?)/i.exec(src)?.[1] ?? '';
        const actual = r.actual === null ? 'no samples' : `${stat}=${fmtStat(m, stat, r.actual)}`;
        L.push(`    ${r.ok ? '✓' : '✗'} '${src}' ${actual}`);
      }
      L.push('');
    }
  }

  L.push('  █ TOTAL RESULTS');
  L.push('');
  if (s.checks.length > 0) {
    const c = s.metrics.checks;
    L.push(`    checks_total.......: ${fmtNum((c?.values.passes ?? 0) + (c?.values.fails ?? 0))}`);
    for (const ch of s.checks) {
      const total = ch.passes + ch.fails;
      if (ch.fails === 0) L.push(`    ✓ ${ch.name}`);
      else {
        L.push(`    ✗ ${ch.name}`);
        L.push(`     ↳  ${((ch.passes / total) * 100).toFixed(2)}% — ✓ ${ch.passes} / ✗ ${ch.fails}`);
      }
    }
    L.push('');
  }
  const names = Object.keys(s.metrics);
  const width = Math.max(32, ...names.map((n) => n.length + 4));
  for (const name of names) {
    const m = s.metrics[name]!;
    const th = m.thresholds ? Object.values(m.thresholds) : [];
    const mark = th.length === 0 ? ' ' : th.every((r) => r.ok) ? '✓' : '✗';
    L.push(`  ${mark} ${(name + ' ').padEnd(width, '.')}: ${metricLine(m)}`);
  }
  L.push('');
  L.push(`  running ${formatDuration(s.durationMs)} (timed part), ${fmtNum(s.metrics.iterations?.values.count ?? 0)} complete iterations`);
  if (s.errors.length > 0) {
    L.push('');
    L.push('  █ ERRORS (iterations that threw, by message)');
    for (const e of s.errors.slice(0, 20)) L.push(`    ${String(e.count).padStart(8)} × ${e.message}`);
  }
  if (s.server) {
    L.push('');
    L.push('  █ SERVER');
    for (const [k, v] of Object.entries(s.server)) {
      if (k === 'logSamples') continue;
      L.push(`    ${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
    }
    const samples = s.server.logSamples as string[] | undefined;
    if (samples?.length) {
      L.push('    warn/error log lines (first ones):');
      for (const line of samples.slice(0, 10)) L.push(`      ${line.slice(0, 300)}`);
    }
  }
  L.push('');
  L.push('  █ MACHINE (timed part; the server and the generators share these cores)');
  for (const [k, v] of Object.entries(s.machine)) L.push(`    ${k}: ${Array.isArray(v) ? v.join(', ') : String(v)}`);
  if (s.notes.length > 0) {
    L.push('');
    for (const n of s.notes) L.push(`  note: ${n}`);
  }
  L.push('');
  L.push(s.thresholdsOk ? '  thresholds: all passed' : '  thresholds: SOME FAILED (exit code 99)');
  if (s.runnerError) L.push('  RUNNER ERROR (see the notes above): exit code 1');
  L.push('');
  return L.join('\n');
}

