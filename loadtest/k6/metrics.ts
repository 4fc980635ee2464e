// Custom metrics (Counter, Rate, Trend, Gauge), check() and sleep(), and the per-process registry that
// aggregates samples into one interval (flushed to the runner once a second) — never one message per
// sample. The same module serves the runner process (setup/teardown) and every generator process.
import { AsyncLocalStorage } from 'node:async_hooks';
import { LogHistogram, type HistWire } from './histogram.js';

export type MetricType = 'counter' | 'rate' | 'trend' | 'gauge';

export interface MetricDef {
  type: MetricType;
  /** Trend values are milliseconds (formatted as durations). */
  isTime: boolean;
}

/** One metric's samples over one interval (or over the whole test), as JSON. */
export type AggWire =
  | { type: 'counter'; sum: number; n: number }
  | { type: 'rate'; trues: number; total: number }
  | ({ type: 'trend' } & HistWire)
  | { type: 'gauge'; value: number; t: number; min: number; max: number; n: number };

/** Mutable aggregate; `trend` keeps its histogram object. */
export type Agg =
  | { type: 'counter'; sum: number; n: number }
  | { type: 'rate'; trues: number; total: number }
  | { type: 'trend'; h: LogHistogram }
  | { type: 'gauge'; value: number; t: number; min: number; max: number; n: number };

export interface Snapshot {
  defs: Record<string, MetricDef>;
  metrics: Record<string, AggWire>;
  /** per check name: [passes, fails] */
  checks: Record<string, [number, number]>;
  /** error message → count, for iterations that threw */
  errors: Record<string, number>;
}

export function newAgg(type: MetricType): Agg {
  switch (type) {
    case 'counter':
      return { type, sum: 0, n: 0 };
    case 'rate':
      return { type, trues: 0, total: 0 };
    case 'trend':
      return { type, h: new LogHistogram() };
    case 'gauge':
      return { type, value: NaN, t: 0, min: Infinity, max: -Infinity, n: 0 };
  }
}

export function aggToWire(a: Agg): AggWire {
  if (a.type === 'trend') return { type: 'trend', ...a.h.toWire() };
  return { ...a };
}

/** Merges a wire aggregate into a mutable one of the same type (a type mismatch is ignored). */
export function mergeAgg(into: Agg, w: AggWire): void {
  if (into.type !== w.type) return;
  switch (into.type) {
    case 'counter': {
      const x = w as Extract<AggWire, { type: 'counter' }>;
      into.sum += x.sum;
      into.n += x.n;
      return;
    }
    case 'rate': {
      const x = w as Extract<AggWire, { type: 'rate' }>;
      into.trues += x.trues;
      into.total += x.total;
      return;
    }
    case 'trend':
      into.h.merge(w as HistWire);
      return;
    case 'gauge': {
      const x = w as Extract<AggWire, { type: 'gauge' }>;
      if (x.n === 0) return;
      if (x.t >= into.t) {
        into.value = x.value;
        into.t = x.t;
      }
      into.min = Math.min(into.min, x.min);
      into.max = Math.max(into.max, x.max);
      into.n += x.n;
      return;
    }
  }
}

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$/;
const MAX_ERROR_KINDS = 50;

export const BUILTIN: Record<string, MetricDef> = {
  iterations: { type: 'counter', isTime: false },
  iteration_duration: { type: 'trend', isTime: true },
  vus: { type: 'gauge', isTime: false },
  vus_max: { type: 'gauge', isTime: false },
  checks: { type: 'rate', isTime: false },
  errors: { type: 'counter', isTime: false },
  dropped_iterations: { type: 'counter', isTime: false },
};

export class Registry {
  readonly defs = new Map<string, MetricDef>();
  private cur = new Map<string, Agg>();
  private checks = new Map<string, [number, number]>();
  private errors = new Map<string, number>();

  constructor() {
    for (const [name, def] of Object.entries(BUILTIN)) this.defs.set(name, def);
  }

  define(name: string, type: MetricType, isTime: boolean): void {
    if (typeof name !== 'string' || !NAME_RE.test(name)) {
      throw new TypeError(`invalid metric name ${JSON.stringify(name)}: use letters, digits and _ (at most 128 characters)`);
    }
    const old = this.defs.get(name);
    if (old) {
      if (old.type !== type) throw new TypeError(`metric "${name}" is already defined as a ${old.type}, not a ${type}`);
      return;
    }
    this.defs.set(name, { type, isTime });
  }

  private agg(name: string): Agg {
    let a = this.cur.get(name);
    if (!a) {
      const def = this.defs.get(name);
      if (!def) throw new Error(`metric "${name}" is not defined`);
      a = newAgg(def.type);
      this.cur.set(name, a);
    }
    return a;
  }

  add(name: string, value: number | boolean): void {
    const a = this.agg(name);
    switch (a.type) {
      case 'counter': {
        const v = Number(value);
        if (!Number.isFinite(v)) return;
        a.sum += v;
        a.n++;
        return;
      }
      case 'rate':
        a.total++;
        if (value) a.trues++;
        return;
      case 'trend': {
        const v = Number(value);
        if (Number.isFinite(v)) a.h.add(v);
        return;
      }
      case 'gauge': {
        const v = Number(value);
        if (!Number.isFinite(v)) return;
        a.value = v;
        a.t = Date.now();
        if (v < a.min) a.min = v;
        if (v > a.max) a.max = v;
        a.n++;
        return;
      }
    }
  }

  addCheck(name: string, ok: boolean): void {
    const key = this.checks.has(name) || this.checks.size < 200 ? name : '(other checks)';
    let c = this.checks.get(key);
    if (!c) {
      c = [0, 0];
      this.checks.set(key, c);
    }
    if (ok) c[0]++;
    else c[1]++;
    this.add('checks', ok);
  }

  addError(err: unknown): void {
    this.add('errors', 1);
    let msg = err instanceof Error ? `${err.name === 'Error' ? '' : err.name + ': '}${err.message}` : String(err);
    // Numbers (ids, ports, timings) would make every message distinct.
    msg = msg.replace(/\d+/g, 'N').slice(0, 300);
    if (!this.errors.has(msg) && this.errors.size >= MAX_ERROR_KINDS) msg = '(other errors)';
    this.errors.set(msg, (this.errors.get(msg) ?? 0) + 1);
  }

  /** Returns the samples since the last take() and starts a new interval. */
  take(): Snapshot {
    const metrics: Record<string, AggWire> = {};
    for (const [name, a] of this.cur) metrics[name] = aggToWire(a);
    const snap: Snapshot = {
      defs: Object.fromEntries(this.defs),
      metrics,
      checks: Object.fromEntries(this.checks),
      errors: Object.fromEntries(this.errors),
    };
    this.cur = new Map();
    this.checks = new Map();
    this.errors = new Map();
    return snap;
  }
}

/** The one registry of this process. */
export const registry = new Registry();

// ---- the current VU (for sleep() without an explicit signal) ----

export interface VuStore {
  vu: number;
  signal: AbortSignal;
}

export const vuStorage = new AsyncLocalStorage<VuStore>();

// ---- public metric classes ----

abstract class Metric {
  readonly name: string;
  constructor(name: string, type: MetricType, isTime: boolean) {
    registry.define(name, type, isTime);
    this.name = name;
  }
}

/** A cumulative sum; the summary shows the count and the rate per second. */
export class Counter extends Metric {
  constructor(name: string) {
    super(name, 'counter', false);
  }
  add(n = 1): void {
    registry.add(this.name, n);
  }
}

/** The fraction of true (non-zero) samples. */
export class Rate extends Metric {
  constructor(name: string) {
    super(name, 'rate', false);
  }
  add(v: boolean | number): void {
    registry.add(this.name, v ? 1 : 0);
  }
}

/** A distribution (milliseconds when isTime): avg, min, med, p(90), p(95), p(99), max. */
export class Trend extends Metric {
  constructor(name: string, isTime = true) {
    super(name, 'trend', isTime);
  }
  add(v: number): void {
    registry.add(this.name, v);
  }
}

/** The last value (and the min and max seen). */
export class Gauge extends Metric {
  constructor(name: string) {
    super(name, 'gauge', false);
  }
  add(v: number): void {
    registry.add(this.name, v);
  }
}

/** Runs each named check on value, records it in the `checks` Rate; true if all passed. */
export function check<T>(value: T, checks: Record<string, (v: T) => unknown>): boolean {
  let all = true;
  for (const [name, fn] of Object.entries(checks)) {
    let ok: boolean;
    try {
      ok = Boolean(fn(value));
    } catch {
      ok = false;
    }
    registry.addCheck(name, ok);
    if (!ok) all = false;
  }
  return all;
}

/** Waits `seconds`; resolves early when the signal (default: the current VU's) aborts. */
export function sleep(seconds: number, signal?: AbortSignal): Promise<void> {
  const sig = signal ?? vuStorage.getStore()?.signal;
  const ms = Math.min(2 ** 31 - 1, Math.max(0, Number(seconds) * 1000 || 0));
  return new Promise<void>((resolve) => {
    if (sig?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      sig?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    sig?.addEventListener('abort', done, { once: true });
  });
}

/** k6's fail(): throws, so the iteration counts as an error. */
export function fail(msg = 'fail() called'): never {
  throw new Error(msg);
}
