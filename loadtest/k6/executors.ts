// The executors, run inside a generator process over its share of the VUs. Every loop is bounded:
// no iteration starts after its scenario's end, running ones get gracefulStop, then the VUs' signals
// abort, and an iteration that ignores its signal is abandoned (counted as stuck) a few seconds later.
import { performance } from 'node:perf_hooks';
import { setImmediate as immediate } from 'node:timers/promises';
import { registry, vuStorage } from './metrics.js';
import { rampTarget, type PlanScenario, type Share } from './options.js';

export interface VuContext {
  /** 1-based id, unique across all generator processes */
  vu: number;
  /** 0-based iteration count of this VU */
  iteration: number;
  /** max VUs of the test (so a VU can compute its partner, e.g. vu ^ 1) */
  vus: number;
  /** ws://…/v1/ws */
  url: string;
  /** http://… */
  base: string;
  /** what setup() returned */
  data: any;
  /** aborted when the test (or this VU, on ramp-down) ends: stop waiting, close sockets */
  signal: AbortSignal;
  /** name of the scenario this VU belongs to */
  scenario: string;
}

export interface SetupEnv {
  url: string;
  base: string;
  vus: number;
}

export type VuFunction = (ctx: VuContext) => unknown;

export interface ExecEnv {
  startAt: number;
  url: string;
  base: string;
  data: unknown;
  totalVUs: number;
  fnFor(exec: string): VuFunction;
  /** aborted when the runner asks to end the test now */
  stop: AbortSignal;
  /** Reports the scenario idle here; resolves when every generator is (the runner's release) or at `deadline`. */
  idle(scenario: string, deadline: number): Promise<void>;
}

/** Live bookkeeping of this process: VUs running (and the peak since the last flush), iterations abandoned after their abort. */
export const activity = {
  active: 0,
  peak: 0,
  allocated: 0,
  stuck: 0,
  up(): void {
    if (++this.active > this.peak) this.peak = this.active;
  },
  /** The most VUs active since the last call. */
  takePeak(): number {
    const p = Math.max(this.peak, this.active);
    this.peak = this.active;
    return p;
  },
};

/** How long an aborted iteration may take to notice before it is abandoned. */
const STUCK_MS = 3000;
const RAMP_TICK_MS = 100;

class Vu {
  iteration = 0;
  ac = new AbortController();
  constructor(readonly id: number) {}
}

/** Resolves at epoch time `t`, or earlier when `signal` aborts. */
export function sleepUntil(t: number, signal?: AbortSignal): Promise<void> {
  const ms = Math.min(2 ** 31 - 1, t - Date.now());
  if (ms <= 0 || signal?.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Waits until every promise settled, epoch `deadline` passed, or `signal` aborted; returns the unsettled count. */
async function settleWithin(promises: Iterable<Promise<unknown>>, deadline: number, signal?: AbortSignal): Promise<number> {
  const list = Array.from(promises);
  let pending = list.length;
  if (pending === 0) return 0;
  const all = new Promise<void>((resolve) => {
    for (const p of list)
      void p.finally(() => {
        if (--pending === 0) resolve();
      });
  });
  await Promise.race([all, sleepUntil(deadline, signal)]);
  return pending;
}

async function iterate(vu: Vu, s: PlanScenario, env: ExecEnv, fn: VuFunction): Promise<void> {
  const signal = vu.ac.signal;
  const ctx: VuContext = {
    vu: vu.id,
    iteration: vu.iteration++,
    vus: env.totalVUs,
    url: env.url,
    base: env.base,
    data: env.data,
    signal,
    scenario: s.name,
  };
  const t0 = performance.now();
  try {
    await vuStorage.run({ vu: vu.id, signal }, () => fn(ctx));
    if (!signal.aborted) {
      registry.add('iterations', 1);
      registry.add('iteration_duration', performance.now() - t0);
    }
  } catch (err) {
    // An iteration cut short by its abort is interrupted, not failed.
    if (!signal.aborted) registry.addError(err);
  }
}

/** Runs iterations on one VU while `more()` says so; yields to the event loop between iterations. */
async function loop(vu: Vu, s: PlanScenario, env: ExecEnv, fn: VuFunction, more: () => boolean): Promise<void> {
  const signal = vu.ac.signal;
  activity.up();
  try {
    while (!signal.aborted && !env.stop.aborted && more()) {
      await iterate(vu, s, env, fn);
      await immediate(); // a script without real waits must not starve timers and I/O
    }
  } finally {
    activity.active--;
  }
}

/** How long idle VUs wait for the other generators after their own graceful stop. */
const RELEASE_WAIT_MS = 10_000;

/**
 * End of a scenario: running iterations get until graceDeadline; then the VUs wait until every
 * generator is done with the scenario, and every VU's signal aborts.
 */
async function finish(s: PlanScenario, vus: Iterable<Vu>, loops: Iterable<Promise<unknown>>, graceDeadline: number, env: ExecEnv): Promise<void> {
  const list = Array.from(loops);
  await settleWithin(list, graceDeadline, env.stop);
  if (!env.stop.aborted) await env.idle(s.name, Math.max(graceDeadline, Date.now()) + RELEASE_WAIT_MS);
  for (const vu of vus) vu.ac.abort();
  activity.stuck += await settleWithin(list, Date.now() + STUCK_MS);
}

export async function runScenario(s: PlanScenario, share: Share, env: ExecEnv): Promise<void> {
  const start = env.startAt + s.startMs;
  const end = start + s.durationMs;
  const graceDeadline = end + s.gracefulStopMs;
  const fn = env.fnFor(s.exec);
  if (share.ids.length === 0 || (s.executor === 'constant-arrival-rate' && !(share.rate > 0))) {
    void env.idle(s.name, 0); // nothing to run here
    return;
  }
  await sleepUntil(start, env.stop);
  if (env.stop.aborted) return;
  const within = () => Date.now() < end;

  switch (s.executor) {
    case 'constant-vus': {
      const vus = share.ids.map((id) => new Vu(id));
      activity.allocated += vus.length;
      const loops = vus.map((vu) => loop(vu, s, env, fn, within));
      await finish(s, vus, loops, graceDeadline, env);
      activity.allocated -= vus.length;
      return;
    }

    case 'per-vu-iterations': {
      const n = s.iterations ?? 1;
      const vus = share.ids.map((id) => new Vu(id));
      activity.allocated += vus.length;
      const loops = vus.map((vu) => loop(vu, s, env, fn, () => vu.iteration < n && within()));
      await settleWithin(loops, end, env.stop); // all done, or maxDuration reached
      await finish(s, vus, loops, graceDeadline, env);
      activity.allocated -= vus.length;
      return;
    }

    case 'shared-iterations': {
      let left = share.iterations;
      const vus = share.ids.map((id) => new Vu(id));
      activity.allocated += vus.length;
      const take = () => {
        if (left <= 0 || !within()) return false;
        left--;
        return true;
      };
      const loops = vus.map((vu) => loop(vu, s, env, fn, take));
      await settleWithin(loops, end, env.stop);
      await finish(s, vus, loops, graceDeadline, env);
      activity.allocated -= vus.length;
      return;
    }

    case 'ramping-vus': {
      interface Slot {
        vu: Vu;
        wanted: boolean;
        loop?: Promise<void>;
      }
      const slots = share.ids.map((id): Slot => ({ vu: new Vu(id), wanted: false }));
      const loops = new Set<Promise<void>>();
      while (!env.stop.aborted && within()) {
        const target = rampTarget(s, Date.now() - start);
        for (const slot of slots) {
          const idx = slot.vu.id - s.vuOffset; // 1-based within the scenario: VUs 1..target run
          if (idx <= target) {
            if (!slot.wanted && !slot.loop) {
              slot.wanted = true;
              if (slot.vu.ac.signal.aborted) slot.vu.ac = new AbortController();
              activity.allocated++;
              const p: Promise<void> = loop(slot.vu, s, env, fn, () => slot.wanted && within()).finally(() => {
                loops.delete(p);
                slot.loop = undefined;
                activity.allocated--;
              });
              slot.loop = p;
              loops.add(p);
            }
          } else if (slot.wanted) {
            // Ramp-down: this VU goes away now.
            slot.wanted = false;
            slot.vu.ac.abort();
          }
        }
        await sleepUntil(Math.min(end, Date.now() + RAMP_TICK_MS), env.stop);
      }
      await finish(
        s,
        slots.map((x) => x.vu),
        loops,
        graceDeadline,
        env,
      );
      return;
    }

    case 'constant-arrival-rate': {
      const interval = s.timeUnitMs! / share.rate;
      const all: Vu[] = share.ids.slice(0, share.preAllocated).map((id) => new Vu(id));
      const idle = [...all].reverse();
      activity.allocated += all.length;
      const inflight = new Set<Promise<void>>();
      let next = start;
      while (!env.stop.aborted && within()) {
        const now = Date.now();
        for (let n = 0; next <= now && next < end && n < 100_000; n++) {
          next += interval;
          let vu = idle.pop();
          if (!vu && all.length < share.ids.length) {
            vu = new Vu(share.ids[all.length]!);
            all.push(vu);
            activity.allocated++;
          }
          if (!vu) {
            registry.add('dropped_iterations', 1);
            continue;
          }
          const v = vu;
          activity.up();
          const p: Promise<void> = iterate(v, s, env, fn).finally(() => {
            activity.active--;
            inflight.delete(p);
            idle.push(v);
          });
          inflight.add(p);
        }
        await sleepUntil(Math.min(next, end), env.stop);
      }
      await finish(s, all, inflight, graceDeadline, env);
      activity.allocated -= all.length;
      return;
    }
  }
}
