// A generator process (forked by run.ts): imports the script, runs its share of the VUs per the plan,
// and sends its samples to the runner aggregated once a second. It exits when the plan is done, when
// the runner goes away, or at its own hard deadline — whichever comes first.
import { pathToFileURL } from 'node:url';
import { activity, runScenario, type ExecEnv, type VuFunction } from './executors.js';
import type { FromGenerator, ToGenerator } from './ipc.js';
import { registry } from './metrics.js';
import type { Plan, Share } from './options.js';

/** After the last VU's signal aborted: time for the scripts' sockets to close and late events to land. */
const LINGER_MS = Number(process.env.K6_LINGER_MS ?? 1000);

let init: Extract<ToGenerator, { type: 'init' }> | undefined;
let mod: Record<string, unknown> | undefined;
const stopAc = new AbortController();
let startAt = 0;
let flushTimer: ReturnType<typeof setTimeout> | undefined;
let lastSecond = -1;
const releases = new Map<string, () => void>();
const released = new Set<string>();

function idle(scenario: string, deadline: number): Promise<void> {
  post({ type: 'idle', scenario });
  if (released.has(scenario) || deadline <= Date.now()) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      stopAc.signal.removeEventListener('abort', done);
      releases.delete(scenario);
      resolve();
    };
    const timer = setTimeout(done, deadline - Date.now());
    stopAc.signal.addEventListener('abort', done, { once: true });
    releases.set(scenario, done);
  });
}

function post(msg: FromGenerator, cb?: () => void): void {
  if (!process.connected) return cb?.();
  process.send!(msg, undefined, {}, () => cb?.());
}

function die(error: string, code = 1): never {
  post({ type: 'fatal', error }, () => process.exit(code));
  setTimeout(() => process.exit(code), 500).unref();
  throw new Error(error);
}

process.on('disconnect', () => process.exit(2));
// A script's stray exception (say, in an event listener) counts as an error instead of killing
// every VU of this process.
process.on('uncaughtException', (err) => registry.addError(new Error(`uncaught: ${(err as Error)?.message ?? err}`)));
process.on('unhandledRejection', (err) => registry.addError(new Error(`unhandled rejection: ${(err as Error)?.message ?? err}`)));

// Nothing may keep this process alive forever, even before the start message.
let lifetime = setTimeout(() => die('generator: no start within 10 minutes', 3), 10 * 60_000);

function flush(final: boolean): void {
  const now = Date.now();
  const second = final ? Math.floor((now - startAt) / 1000) : Math.round((now - startAt) / 1000) - 1;
  const s = Math.max(second, lastSecond + (final ? 0 : 1));
  lastSecond = s;
  post({ type: 'metrics', second: s, vus: activity.takePeak(), snap: registry.take() });
}

function scheduleFlush(): void {
  const k = Math.max(1, Math.floor((Date.now() - startAt) / 1000) + 1);
  flushTimer = setTimeout(
    () => {
      flush(false);
      scheduleFlush();
    },
    startAt + k * 1000 + 5 - Date.now(),
  );
}

async function onInit(m: Extract<ToGenerator, { type: 'init' }>): Promise<void> {
  init = m;
  try {
    mod = (await import(pathToFileURL(m.script).href)) as Record<string, unknown>;
  } catch (err) {
    die(`cannot import ${m.script}: ${(err as Error)?.stack ?? err}`);
  }
  for (const s of m.plan.scenarios) {
    if (typeof mod![s.exec] !== 'function') die(`scenario "${s.name}": the script exports no function "${s.exec}"`);
  }
  post({ type: 'ready', pid: process.pid });
}

async function onStart(at: number): Promise<void> {
  const m = init!;
  const plan: Plan = m.plan;
  startAt = at;
  clearTimeout(lifetime);
  lifetime = setTimeout(() => die('generator: hard deadline passed, exiting', 3), Math.max(0, at - Date.now()) + plan.hardEndMs + 30_000);
  lifetime.unref();
  const env: ExecEnv = {
    startAt: at,
    url: m.url,
    base: m.base,
    data: m.data,
    totalVUs: plan.maxVUs,
    fnFor: (exec) => mod![exec] as VuFunction,
    stop: stopAc.signal,
    idle,
  };
  // Samples recorded while importing (module level) belong to the first second.
  const waitStart = Math.max(0, at - Date.now());
  setTimeout(scheduleFlush, waitStart);
  await Promise.all(
    plan.scenarios.map((s) =>
      runScenario(s, m.shares[s.name] as Share, env).catch((err: unknown) => {
        registry.addError(new Error(`executor ${s.executor} failed: ${(err as Error)?.message ?? err}`));
      }),
    ),
  );
  const finishedAt = Date.now();
  await new Promise((res) => setTimeout(res, LINGER_MS));
  if (flushTimer) clearTimeout(flushTimer);
  flush(true);
  post({ type: 'done', finishedAt, stuck: activity.stuck }, () => {
    // Sockets a script left open must not keep us here.
    setTimeout(() => process.exit(0), 50);
  });
}

process.on('message', (raw: unknown) => {
  const m = raw as ToGenerator;
  switch (m?.type) {
    case 'init':
      void onInit(m);
      return;
    case 'start':
      void onStart(m.startAt);
      return;
    case 'release':
      released.add(m.scenario);
      releases.get(m.scenario)?.();
      return;
    case 'stop':
      stopAc.abort();
      return;
  }
});
