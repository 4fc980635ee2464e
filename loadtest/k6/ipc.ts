// Messages between the runner and its generator processes (small JSON over the fork IPC channel).
import type { Snapshot } from './metrics.js';
import type { Plan, Share } from './options.js';

export type ToGenerator =
  | {
      type: 'init';
      index: number;
      script: string;
      url: string;
      base: string;
      data: unknown;
      plan: Plan;
      shares: Record<string, Share>;
    }
  /** Start the plan at this epoch time (the same instant in every generator). */
  | { type: 'start'; startAt: number }
  /** Every generator reported the scenario idle: abort its VUs' signals now. */
  | { type: 'release'; scenario: string }
  /** End now: no new iterations, abort every VU signal, flush, report done. */
  | { type: 'stop' };

export type FromGenerator =
  | { type: 'ready'; pid: number }
  /** One interval of samples; `second` is the test second it covers (0-based), -1 = before start. */
  | { type: 'metrics'; second: number; vus: number; snap: Snapshot }
  /**
   * No iteration of this scenario runs here any more (or its gracefulStop ran out); its VUs wait for
   * 'release' so that no VU closes its connections before every generator is done (as in k6, a VU
   * lives until its scenario ends).
   */
  | { type: 'idle'; scenario: string }
  /** All VUs done; `finishedAt` is the epoch time when the last iteration settled. */
  | { type: 'done'; finishedAt: number; stuck: number }
  | { type: 'fatal'; error: string };
