// The script API of the Parley load-test runner (k6 style); the contract is ./API.md.
//
//   import { Counter, Rate, Trend, Gauge, check, sleep, type Options, type VuContext } from './k6/index.js';
//
// Scripts export `options`, a default function (one iteration of one VU) and optionally
// setup(env) / teardown(data, env); `npm run loadtest -- loadtest/<name>.ts` runs them.
export { Counter, Rate, Trend, Gauge, check, sleep, fail } from './metrics.js';
export type { VuContext, SetupEnv } from './executors.js';
export type {
  Options,
  Scenario,
  Stage,
  ConstantVusScenario,
  RampingVusScenario,
  ConstantArrivalRateScenario,
  PerVuIterationsScenario,
  SharedIterationsScenario,
  ThresholdSpec,
} from './options.js';
export { now, pool, withTimeout, createUsers, runTag, serverMetrics, type LoadUser } from './helpers.js';
