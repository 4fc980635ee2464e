// Script options (k6 style), their validation and normalisation into a plan, the CLI overrides
// (--vus, --duration), and the split of VU ids and rates over the generator processes.
import { formatDuration, parseDuration } from './duration.js';

export interface Stage {
  duration: string;
  target: number;
}

interface ScenarioBase {
  /** Delay from the test start (default '0s'). */
  startTime?: string;
  /** Time given to running iterations after the scenario's end before the VUs' signals abort (default 10s). */
  gracefulStop?: string;
  /** Name of the exported function to run (default: the default export). */
  exec?: string;
}

export interface ConstantVusScenario extends ScenarioBase {
  executor: 'constant-vus';
  vus: number;
  duration: string;
}

export interface RampingVusScenario extends ScenarioBase {
  executor: 'ramping-vus';
  startVUs?: number;
  stages: Stage[];
}

export interface ConstantArrivalRateScenario extends ScenarioBase {
  executor: 'constant-arrival-rate';
  /** Iterations started per timeUnit. */
  rate: number;
  timeUnit?: string;
  duration: string;
  preAllocatedVUs: number;
  maxVUs?: number;
}

/** Extension: each VU runs `iterations` iterations (default 1), bounded by maxDuration (default 10m). */
export interface PerVuIterationsScenario extends ScenarioBase {
  executor: 'per-vu-iterations';
  vus: number;
  iterations?: number;
  maxDuration?: string;
}

/** Extension: `iterations` in total shared by the VUs, bounded by maxDuration (default 10m). */
export interface SharedIterationsScenario extends ScenarioBase {
  executor: 'shared-iterations';
  vus: number;
  iterations: number;
  maxDuration?: string;
}

export type Scenario =
  | ConstantVusScenario
  | RampingVusScenario
  | ConstantArrivalRateScenario
  | PerVuIterationsScenario
  | SharedIterationsScenario;

export type ThresholdSpec = string | { threshold: string; abortOnFail?: boolean };

export interface Options {
  /** Shorthand for one constant-vus scenario (with duration) or ramping-vus (with stages). */
  vus?: number;
  duration?: string;
  stages?: Stage[];
  scenarios?: Record<string, Scenario>;
  thresholds?: Record<string, ThresholdSpec[]>;
  /** Default 60s. */
  setupTimeout?: string;
  /** Default 60s. */
  teardownTimeout?: string;
  /** Default gracefulStop of every scenario (10s). */
  gracefulStop?: string;
}

export type ExecutorName = Scenario['executor'];

/** A scenario with every duration in ms and its VU ids reserved. */
export interface PlanScenario {
  name: string;
  executor: ExecutorName;
  exec: string;
  startMs: number;
  /** main part: duration, sum of stages, or maxDuration */
  durationMs: number;
  gracefulStopMs: number;
  /** VU ids reserved for this scenario: vuOffset+1 .. vuOffset+maxVUs */
  vuOffset: number;
  maxVUs: number;
  // per executor
  vus?: number;
  startVUs?: number;
  stages?: Array<{ durationMs: number; target: number }>;
  rate?: number;
  timeUnitMs?: number;
  preAllocatedVUs?: number;
  iterations?: number;
}

export interface Plan {
  scenarios: PlanScenario[];
  /** total VU ids (= the `vus` a script sees) */
  maxVUs: number;
  /** end of the last scenario's main part, ms from the start */
  endMs: number;
  /** end including graceful stops */
  hardEndMs: number;
}

const DEFAULT_GRACEFUL_STOP_MS = 10_000;
const DEFAULT_MAX_DURATION_MS = 10 * 60_000;

function posInt(v: unknown, what: string, min = 0): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`${what} must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
  return n;
}

export interface Overrides {
  vus?: number;
  durationMs?: number;
}

/** Validates options and turns them into a plan, applying --vus/--duration. */
export function buildPlan(options: Options, ov: Overrides = {}): Plan {
  let scenarios: Record<string, Scenario>;
  if (options.scenarios && Object.keys(options.scenarios).length > 0) {
    scenarios = options.scenarios;
  } else if (options.stages && options.stages.length > 0) {
    scenarios = { default: { executor: 'ramping-vus', startVUs: 0, stages: options.stages } };
  } else {
    scenarios = {
      default: { executor: 'constant-vus', vus: options.vus ?? 1, duration: options.duration ?? (ov.durationMs ? '1s' : '10s') },
    };
  }
  const globalGrace = options.gracefulStop !== undefined ? parseDuration(options.gracefulStop, 'gracefulStop') : DEFAULT_GRACEFUL_STOP_MS;
  const out: PlanScenario[] = [];
  let offset = 0;
  for (const [name, raw] of Object.entries(scenarios)) {
    const w = `scenario "${name}"`;
    if (!raw || typeof raw !== 'object') throw new Error(`${w}: not an object`);
    const sc = { ...raw } as Scenario;
    const base = {
      name,
      executor: sc.executor,
      exec: sc.exec ?? 'default',
      startMs: sc.startTime !== undefined ? parseDuration(sc.startTime, `${w}.startTime`) : 0,
      gracefulStopMs: sc.gracefulStop !== undefined ? parseDuration(sc.gracefulStop, `${w}.gracefulStop`) : globalGrace,
      vuOffset: offset,
    };
    let p: PlanScenario;
    switch (sc.executor) {
      case 'constant-vus': {
        const vus = ov.vus ?? posInt(sc.vus, `${w}.vus`, 1);
        const durationMs = ov.durationMs ?? parseDuration(sc.duration, `${w}.duration`);
        p = { ...base, durationMs, maxVUs: vus, vus };
        break;
      }
      case 'ramping-vus': {
        if (!Array.isArray(sc.stages) || sc.stages.length === 0) throw new Error(`${w}: ramping-vus needs stages`);
        let startVUs = posInt(sc.startVUs ?? 0, `${w}.startVUs`);
        let stages = sc.stages.map((s, i) => ({
          durationMs: parseDuration(s.duration, `${w}.stages[${i}].duration`),
          target: posInt(s.target, `${w}.stages[${i}].target`),
        }));
        const peak = Math.max(startVUs, ...stages.map((s) => s.target));
        if (ov.vus !== undefined && peak > 0) {
          // Scale the shape so that its peak is --vus.
          const f = ov.vus / peak;
          startVUs = Math.round(startVUs * f);
          stages = stages.map((s) => ({ ...s, target: Math.round(s.target * f) }));
        }
        const total = stages.reduce((a, s) => a + s.durationMs, 0);
        if (ov.durationMs !== undefined && total > 0) {
          const f = ov.durationMs / total;
          stages = stages.map((s) => ({ ...s, durationMs: s.durationMs * f }));
        }
        const maxVUs = Math.max(startVUs, ...stages.map((s) => s.target));
        if (maxVUs < 1) throw new Error(`${w}: no stage has a target above 0`);
        p = { ...base, durationMs: stages.reduce((a, s) => a + s.durationMs, 0), maxVUs, startVUs, stages };
        break;
      }
      case 'constant-arrival-rate': {
        const rate = Number(sc.rate);
        if (!(rate > 0)) throw new Error(`${w}.rate must be > 0`);
        const timeUnitMs = parseDuration(sc.timeUnit ?? '1s', `${w}.timeUnit`);
        if (!(timeUnitMs > 0)) throw new Error(`${w}.timeUnit must be > 0`);
        let pre = posInt(sc.preAllocatedVUs, `${w}.preAllocatedVUs`, 1);
        let max = sc.maxVUs !== undefined ? posInt(sc.maxVUs, `${w}.maxVUs`, 1) : pre;
        if (ov.vus !== undefined) {
          max = ov.vus;
          pre = Math.min(pre, max);
        }
        if (max < pre) max = pre;
        const durationMs = ov.durationMs ?? parseDuration(sc.duration, `${w}.duration`);
        p = { ...base, durationMs, maxVUs: max, rate, timeUnitMs, preAllocatedVUs: pre };
        break;
      }
      case 'per-vu-iterations':
      case 'shared-iterations': {
        const vus = ov.vus ?? posInt(sc.vus, `${w}.vus`, 1);
        const iterations = posInt(sc.iterations ?? 1, `${w}.iterations`, 1);
        const durationMs =
          ov.durationMs ?? (sc.maxDuration !== undefined ? parseDuration(sc.maxDuration, `${w}.maxDuration`) : DEFAULT_MAX_DURATION_MS);
        p = { ...base, durationMs, maxVUs: vus, vus, iterations };
        break;
      }
      default:
        throw new Error(
          `${w}: unknown executor ${JSON.stringify((sc as { executor?: unknown }).executor)} ` +
            '(constant-vus, ramping-vus, constant-arrival-rate, per-vu-iterations, shared-iterations)',
        );
    }
    offset += p.maxVUs;
    out.push(p);
  }
  const endMs = Math.max(...out.map((s) => s.startMs + s.durationMs));
  const hardEndMs = Math.max(...out.map((s) => s.startMs + s.durationMs + s.gracefulStopMs));
  return { scenarios: out, maxVUs: offset, endMs, hardEndMs };
}

/** One line per scenario, like k6's header. */
export function describeScenario(s: PlanScenario): string {
  const grace = `gracefulStop: ${formatDuration(s.gracefulStopMs)}`;
  const start = s.startMs > 0 ? `, startTime: ${formatDuration(s.startMs)}` : '';
  const exec = s.exec !== 'default' ? `, exec: ${s.exec}` : '';
  switch (s.executor) {
    case 'constant-vus':
      return `${s.vus} looping VUs for ${formatDuration(s.durationMs)} (${grace}${start}${exec})`;
    case 'ramping-vus':
      return (
        `up to ${s.maxVUs} looping VUs for ${formatDuration(s.durationMs)} over ${s.stages!.length} stages ` +
        `(${s.stages!.map((st) => `${formatDuration(st.durationMs)}→${st.target}`).join(', ')}; ${grace}${start}${exec})`
      );
    case 'constant-arrival-rate':
      return (
        `${s.rate} iterations/${formatDuration(s.timeUnitMs!)} for ${formatDuration(s.durationMs)} ` +
        `(maxVUs: ${s.maxVUs}, preAllocatedVUs: ${s.preAllocatedVUs}; ${grace}${start}${exec})`
      );
    case 'per-vu-iterations':
      return `${s.iterations} iterations for each of ${s.vus} VUs (maxDuration: ${formatDuration(s.durationMs)}; ${grace}${start}${exec})`;
    case 'shared-iterations':
      return `${s.iterations} iterations shared among ${s.vus} VUs (maxDuration: ${formatDuration(s.durationMs)}; ${grace}${start}${exec})`;
  }
}

/** What one generator runs of one scenario. */
export interface Share {
  /** global VU ids, ascending */
  ids: number[];
  /** constant-arrival-rate: how many of `ids` to allocate up front, and this generator's rate */
  preAllocated: number;
  rate: number;
  /** shared-iterations: this generator's part of the iterations */
  iterations: number;
}

/** The generator of a global VU id: pairs (1,2), (3,4), ... stay in one process, pairs round-robin. */
export function generatorOf(vu: number, generators: number): number {
  return Math.floor((vu - 1) / 2) % generators;
}

export function splitPlan(plan: Plan, generators: number): Array<Record<string, Share>> {
  const shares: Array<Record<string, Share>> = Array.from({ length: generators }, () => ({}));
  for (const s of plan.scenarios) {
    for (let g = 0; g < generators; g++) shares[g]![s.name] = { ids: [], preAllocated: 0, rate: 0, iterations: 0 };
    for (let i = 1; i <= s.maxVUs; i++) {
      const id = s.vuOffset + i;
      const sh = shares[generatorOf(id, generators)]![s.name]!;
      sh.ids.push(id);
      if (s.executor === 'constant-arrival-rate' && i <= s.preAllocatedVUs!) sh.preAllocated++;
    }
    let iterLeft = s.iterations ?? 0;
    for (let g = 0; g < generators; g++) {
      const sh = shares[g]![s.name]!;
      const frac = sh.ids.length / s.maxVUs;
      if (s.executor === 'constant-arrival-rate') sh.rate = s.rate! * frac;
      if (s.executor === 'shared-iterations') {
        const n = g === generators - 1 ? iterLeft : Math.round((s.iterations ?? 0) * frac);
        sh.iterations = Math.min(n, iterLeft);
        iterLeft -= sh.iterations;
      }
    }
  }
  return shares;
}

/** VU count a ramping-vus scenario wants at `ms` from its own start. */
export function rampTarget(s: PlanScenario, ms: number): number {
  let prev = s.startVUs ?? 0;
  let t = 0;
  for (const st of s.stages ?? []) {
    if (ms < t + st.durationMs) {
      const f = st.durationMs > 0 ? (ms - t) / st.durationMs : 1;
      return Math.round(prev + (st.target - prev) * f);
    }
    t += st.durationMs;
    prev = st.target;
  }
  return prev;
}
