// The Parley load-test runner: runs a k6-style script (loadtest/k6/API.md) against a server.
//
//   npm run loadtest -- loadtest/<script>.ts [--vus N] [--duration 30s] [--url ws://127.0.0.1:8080/v1/ws]
//       [--spawn [--shards N] [--durability fsync|relaxed]] [--out DIR] [--generators N]
//       [--threshold 'metric=expr']... [--no-thresholds] [-e KEY=VALUE]... [--quiet]
//
// - loadtest/x.ts runs dist/loadtest/x.js (npm run loadtest builds first).
// - --vus / --duration override the script's options: constant-vus vus/duration, ramping-vus stages
//   scaled to peak at --vus and to last --duration, constant-arrival-rate maxVUs/duration,
//   per-vu-iterations / shared-iterations vus/maxDuration.
// - --spawn starts `node dist/src/main.js` on a free 127.0.0.1 port with a temporary DATA_DIR,
//   PASSWORD_COST=10, LOG_LEVEL=warn and RATE_LIMITS=off, and stops it (SIGTERM) at the end.
// - setup() runs here; the VUs run in G generator processes (default 2, more for many VUs: at most
//   ~9,000 VUs per process), which report aggregated samples once a second.
// - --threshold adds a threshold (repeatable), --no-thresholds drops the script's own;
//   -e/--env sets an environment variable for the script (here and in the generators).
// - Prints live progress on stderr, a k6-like summary on stdout, writes <out>/summary.json and
//   <out>/report.html (default out: loadtest/results/<script>-<timestamp>/).
// - Exit code: 0 ok, 99 a threshold failed, 1 runner error (bad arguments, setup failed, a
//   generator or the spawned server died).
// Every phase is bounded in time: the test ends at its duration + gracefulStop, then VUs abort.
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { parseDuration } from './k6/duration.js';
import type { FromGenerator, ToGenerator } from './k6/ipc.js';
import { registry } from './k6/metrics.js';
import { buildPlan, describeScenario, splitPlan, type Options, type Plan } from './k6/options.js';
import { renderReport, type ServerPoint } from './k6/report.js';
import { Collector, buildMetrics, evaluateThresholds, fmtNum, fmtTime, renderSummary, type SummaryJson } from './k6/summary.js';
import { parseThresholdArg, parseThresholds, type Threshold } from './k6/thresholds.js';
import { withTimeout } from './k6/helpers.js';
import { stopProcess } from './bench/children.js';
import { CLK_TCK, cpuTicks, memKiB, systemTicks } from './bench/proc.js';

const here = path.dirname(fileURLToPath(import.meta.url)); // <repo>/dist/loadtest
const repo = path.resolve(here, '..', '..');
const workerJs = path.join(here, 'k6', 'worker.js');
const serverMain = path.join(repo, 'dist', 'src', 'main.js');

/** Sockets per generator process: the fd limit here is ~20,000 and a VU may hold two. */
const VUS_PER_GENERATOR = 9000;
const READY_TIMEOUT_MS = 60_000;
const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));

class UsageError extends Error {}

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

// ------------------------------------------------------------------ arguments

interface Args {
  script: string;
  scriptJs: string;
  vus?: number;
  durationMs?: number;
  url: string;
  spawn: boolean;
  shards?: string;
  durability?: string;
  out?: string;
  generators?: number;
  thresholds: Threshold[];
  noThresholds: boolean;
  quiet: boolean;
}

function usage(): string {
  const src = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n');
  return src
    .slice(0, src.findIndex((l) => l.startsWith('import')))
    .map((l) => l.replace(/^\/\/ ?/, ''))
    .join('\n');
}

function parseCli(argv: string[]): Args {
  try {
    return parseCliOrThrow(argv);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${(err as Error).message} (--help for the options)`);
  }
}

function parseCliOrThrow(argv: string[]): Args {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      vus: { type: 'string', short: 'u' },
      duration: { type: 'string', short: 'd' },
      url: { type: 'string' },
      spawn: { type: 'boolean', default: false },
      shards: { type: 'string' },
      durability: { type: 'string' },
      out: { type: 'string', short: 'o' },
      generators: { type: 'string' },
      threshold: { type: 'string', multiple: true },
      'no-thresholds': { type: 'boolean', default: false },
      env: { type: 'string', short: 'e', multiple: true },
      quiet: { type: 'boolean', short: 'q', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(usage() + '\n');
    process.exit(0);
  }
  if (positionals.length !== 1) throw new UsageError('give exactly one script, e.g. loadtest/chat-1to1.ts (--help for the options)');
  const script = positionals[0]!;
  for (const kv of values.env ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new UsageError(`-e ${kv}: use KEY=VALUE`);
    process.env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const int = (v: string | undefined, name: string, min: number): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got ${v}`);
    return n;
  };
  let durationMs: number | undefined;
  if (values.duration !== undefined) {
    try {
      durationMs = parseDuration(values.duration, '--duration');
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    if (!(durationMs > 0)) throw new UsageError('--duration must be > 0');
  }
  const url = values.url ?? 'ws://127.0.0.1:8080/v1/ws';
  if (!/^wss?:\/\/[^/]+/.test(url)) throw new UsageError(`--url ${url}: expected ws://host:port/v1/ws`);
  if (values.durability !== undefined && values.durability !== 'fsync' && values.durability !== 'relaxed') {
    throw new UsageError('--durability must be fsync or relaxed');
  }
  let thresholds: Threshold[];
  try {
    thresholds = (values.threshold ?? []).map(parseThresholdArg);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return {
    script,
    scriptJs: resolveScript(script),
    vus: int(values.vus, 'vus', 1),
    durationMs,
    url,
    spawn: values.spawn ?? false,
    shards: values.shards,
    durability: values.durability,
    out: values.out,
    generators: int(values.generators, 'generators', 1),
    thresholds,
    noThresholds: values['no-thresholds'] ?? false,
    quiet: values.quiet ?? false,
  };
}

/** loadtest/x.ts → <repo>/dist/loadtest/x.js; a .js path is taken as is. */
function resolveScript(arg: string): string {
  const candidates: string[] = [];
  for (const abs of [path.resolve(arg), path.resolve(repo, arg)]) {
    if (/\.(m?js|cjs)$/.test(abs)) candidates.push(abs);
    const rel = path.relative(repo, abs);
    if (!rel.startsWith('..') && !rel.startsWith('dist' + path.sep)) {
      candidates.push(path.join(repo, 'dist', rel.replace(/\.(ts|mts|js)$/, '') + '.js'));
    }
  }
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new UsageError(`script ${arg}: ${Array.from(new Set(candidates)).join(' / ')} does not exist (npm run build first?)`);
  return found;
}

// ------------------------------------------------------------------ spawned server

interface Spawned {
  proc: ChildProcess;
  pid: number;
  port: number;
  tmp: string;
  planned: boolean;
  exit?: { code: number | null; signal: string | null };
  log: { tail: string; warn: number; error: number; samples: string[] };
}

let spawned: Spawned | undefined;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function captureServer(sp: Spawned, chunk: Buffer): void {
  const text = chunk.toString('utf8');
  sp.log.tail = (sp.log.tail + text).slice(-8000);
  for (const line of text.split('\n')) {
    const m = /"level":(\d+)/.exec(line);
    const level = m ? Number(m[1]) : line.trim() ? 50 : 0; // unstructured output (a stack trace): an error
    if (level >= 50) sp.log.error++;
    else if (level >= 40) sp.log.warn++;
    if (level >= 40 && sp.log.samples.length < 20) sp.log.samples.push(line.slice(0, 600));
  }
}

async function startServer(a: Args): Promise<Spawned> {
  if (!existsSync(serverMain)) throw new UsageError(`${serverMain} does not exist (npm run build first)`);
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    // No dot in the last path component: LMDB would take "x.y" for a file name.
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'parley-loadtest-'));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      DATA_DIR: path.join(tmp, 'data'),
      PASSWORD_COST: '10',
      LOG_LEVEL: 'warn',
      RATE_LIMITS: 'off', // a load test from one address would hit every per-IP limit
    };
    if (a.shards !== undefined) env.SHARDS = a.shards;
    if (a.durability !== undefined) env.DURABILITY = a.durability;
    const proc = spawn(process.execPath, [serverMain], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const sp: Spawned = { proc, pid: proc.pid!, port, tmp, planned: false, log: { tail: '', warn: 0, error: 0, samples: [] } };
    proc.stdout!.on('data', (c: Buffer) => captureServer(sp, c));
    proc.stderr!.on('data', (c: Buffer) => captureServer(sp, c));
    proc.once('exit', (code, signal) => {
      sp.exit = { code, signal };
      if (!sp.planned && phase !== 'starting') {
        notes.push(`the spawned server exited unexpectedly during ${phase}: code ${code} signal ${signal}`);
        runnerError = true;
        log(`\nthe spawned server exited unexpectedly (code ${code}, signal ${signal}); last output:\n${sp.log.tail}`);
        stopGenerators();
      }
    });
    const base = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && !sp.exit) {
      try {
        const res = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(2000) });
        await res.text();
        if (res.status === 200) return sp;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    if (!sp.exit) {
      sp.planned = true;
      proc.kill('SIGKILL');
    }
    rmSync(tmp, { recursive: true, force: true });
    // Someone took the port between freePort() and listen(): try another.
    if (attempt < 3 && /listen/i.test(sp.log.tail)) continue;
    throw new Error(`the server did not become ready (GET /readyz) within 30 s; its output:\n${sp.log.tail}`);
  }
}

async function stopServer(sp: Spawned): Promise<{ exitCode: number | null; signal: string | null; stopMs: number; killed: boolean }> {
  sp.planned = true;
  const r = await stopProcess(sp.proc, 15_000);
  rmSync(sp.tmp, { recursive: true, force: true });
  return { exitCode: sp.exit?.code ?? r.exitCode, signal: sp.exit?.signal ?? r.signal, stopMs: r.ms, killed: r.killed };
}

// ------------------------------------------------------------------ /proc sampling (spawned server, generators): bench/proc.ts

/** RSS split: anonymous (heap, native allocations) vs file-backed and shared (LMDB's memory map, code). */
function rssSplitMiB(pid: number): { anon: number; file: number } {
  const m = memKiB(pid);
  return { anon: round2(m.anon / 1024), file: round2(m.file / 1024) };
}

const rssMiB = (pid: number): number => memKiB(pid).rss / 1024;

async function scrapeMetrics(base: string): Promise<Record<string, number> | undefined> {
  try {
    const res = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(3000) });
    const text = await res.text();
    const out: Record<string, number> = {};
    for (const line of text.split('\n')) {
      const m = /^(parley_[a-z_]+) (\S+)$/.exec(line);
      if (m) out[m[1]!] = Number(m[2]);
    }
    return out;
  } catch {
    return undefined;
  }
}

// ------------------------------------------------------------------ generators

interface Gen {
  index: number;
  proc: ChildProcess;
  ready: boolean;
  done?: { finishedAt: number; stuck: number };
  exited: boolean;
  cpu0: number;
  cpu1: number;
}

const gens: Gen[] = [];
let phase: 'starting' | 'setup' | 'test' | 'teardown' | 'report' = 'starting';
let runnerError = false;
const notes: string[] = [];
let forwardedLines = 0;

function forward(prefix: string, stream: NodeJS.ReadableStream): void {
  let buf = '';
  stream.on('data', (c: Buffer) => {
    buf += c.toString('utf8');
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (++forwardedLines <= 300) process.stderr.write(`${prefix} ${line}\n`);
      else if (forwardedLines === 301) process.stderr.write(`${prefix} (further script output suppressed)\n`);
    }
    if (buf.length > 10_000) buf = buf.slice(-10_000);
  });
}

function send(g: Gen, msg: ToGenerator): void {
  if (!g.exited && g.proc.connected) g.proc.send(msg);
}

let stopRequested = false;
function stopGenerators(): void {
  stopRequested = true;
  for (const g of gens) send(g, { type: 'stop' });
}

function killGenerators(): void {
  for (const g of gens) if (!g.exited) g.proc.kill('SIGKILL');
}

// ------------------------------------------------------------------ main

async function main(): Promise<number> {
  const a = parseCli(process.argv.slice(2));
  const scriptName = path.basename(a.scriptJs, '.js');
  const startedAt = new Date();

  // The script: options, setup, teardown (its module-level metrics register here too).
  const mod = (await import(pathToFileURL(a.scriptJs).href)) as Record<string, unknown>;
  const options = (mod.options ?? {}) as Options;
  let plan: Plan;
  try {
    plan = buildPlan(options, { vus: a.vus, durationMs: a.durationMs });
  } catch (err) {
    throw new UsageError(`options: ${(err as Error).message}`);
  }
  for (const s of plan.scenarios) {
    if (typeof mod[s.exec] !== 'function') throw new UsageError(`scenario "${s.name}": the script exports no function "${s.exec}"`);
  }
  let thresholds: Threshold[];
  try {
    thresholds = [...(a.noThresholds ? [] : parseThresholds(options.thresholds)), ...a.thresholds];
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  for (const t of thresholds) {
    if (!registry.defs.has(t.metric)) log(`warning: threshold on "${t.metric}", which the script does not define (yet)`);
  }

  let url = a.url;
  if (a.spawn) {
    log(`starting the server (node dist/src/main.js, PASSWORD_COST=10, LOG_LEVEL=warn${a.shards ? `, SHARDS=${a.shards}` : ''}${a.durability ? `, DURABILITY=${a.durability}` : ''}) ...`);
    spawned = await startServer(a);
    url = `ws://127.0.0.1:${spawned.port}/v1/ws`;
    log(`server pid ${spawned.pid} ready on port ${spawned.port}`);
  }
  const base = url.replace(/^ws/, 'http').replace(/^(https?:\/\/[^/]+).*$/, '$1');
  const host = new URL(base).hostname;
  if (host !== '127.0.0.1' && host !== 'localhost' && host !== '::1') log(`warning: target ${host} is not this machine`);

  phase = 'setup';
  const minGens = Math.ceil((plan.maxVUs * 2) / 18_000);
  const G = Math.max(1, Math.min(plan.maxVUs, Math.max(a.generators ?? 2, minGens, Math.ceil(plan.maxVUs / VUS_PER_GENERATOR))));
  if (a.generators !== undefined && G > a.generators) log(`note: ${plan.maxVUs} VUs need ${G} generator processes (asked for ${a.generators})`);

  const col = new Collector();
  const setupEnv = { url, base, vus: plan.maxVUs };
  let data: unknown = undefined;
  if (typeof mod.setup === 'function') {
    const ms = parseDuration(options.setupTimeout ?? '60s', 'setupTimeout');
    log(`setup() ... (timeout ${fmtTime(ms)})`);
    const t0 = Date.now();
    try {
      data = await withTimeout(Promise.resolve((mod.setup as (e: typeof setupEnv) => unknown)(setupEnv)), ms, 'setup()');
    } catch (err) {
      throw new Error(`setup() failed: ${(err as Error)?.stack ?? err}`);
    }
    log(`setup() done in ${fmtTime(Date.now() - t0)}`);
    try {
      JSON.stringify(data ?? null);
    } catch (err) {
      throw new Error(`setup() returned data that is not JSON-serialisable: ${(err as Error).message}`);
    }
  }
  col.add(registry.take());

  // Scenario ends: once every live generator reports a scenario idle, its VUs are released (they
  // abort and close their connections). The server is read just before the last release: it still
  // holds every VU's connection then.
  const idleBy = new Map<string, Set<number>>();
  const releasedScenarios = new Set<string>();
  let timedEnd: number | undefined;
  let sysAtEnd: { busy: number; total: number } | undefined;
  let serverTicksAtEnd = NaN;
  let serverRssSplitAtEnd: { anon: number; file: number } | undefined;
  let genTicksAtEnd: number[] = [];
  let runnerCpuAtEnd: NodeJS.CpuUsage | undefined;
  let metricsAtEnd: Record<string, number> | undefined;
  const maybeRelease = async (scenario: string): Promise<void> => {
    const set = idleBy.get(scenario) ?? new Set<number>();
    if (releasedScenarios.has(scenario) || !gens.every((g) => g.exited || set.has(g.index))) return;
    releasedScenarios.add(scenario);
    if (releasedScenarios.size === plan.scenarios.length) {
      timedEnd = Date.now();
      sysAtEnd = systemTicks();
      serverTicksAtEnd = spawned ? cpuTicks(spawned.pid) : NaN;
      if (spawned) serverRssSplitAtEnd = rssSplitMiB(spawned.pid);
      genTicksAtEnd = gens.map((g) => cpuTicks(g.proc.pid!));
      runnerCpuAtEnd = process.cpuUsage();
      metricsAtEnd = await scrapeMetrics(base);
    }
    for (const g of gens) send(g, { type: 'release', scenario });
  };
  const recheckReleases = () => {
    for (const s of plan.scenarios) if (idleBy.has(s.name)) void maybeRelease(s.name);
  };

  // Generators.
  const shares = splitPlan(plan, G);
  log(`${plan.maxVUs} VUs over ${G} generator processes; scenarios:`);
  for (const s of plan.scenarios) log(`  * ${s.name}: ${describeScenario(s)}`);
  const readyAll = new Promise<void>((resolveReady, rejectReady) => {
    let readyCount = 0;
    for (let i = 0; i < G; i++) {
      const proc = fork(workerJs, [], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env: process.env, execArgv: [] });
      const g: Gen = { index: i, proc, ready: false, exited: false, cpu0: NaN, cpu1: NaN };
      gens.push(g);
      forward(`[gen ${i + 1}]`, proc.stdout!);
      forward(`[gen ${i + 1}]`, proc.stderr!);
      proc.on('message', (raw: unknown) => {
        const m = raw as FromGenerator;
        switch (m.type) {
          case 'ready':
            g.ready = true;
            g.cpu0 = cpuTicks(proc.pid!);
            if (++readyCount === G) resolveReady();
            return;
          case 'metrics':
            col.add(m.snap, m.second, i, m.vus);
            return;
          case 'idle': {
            let set = idleBy.get(m.scenario);
            if (!set) idleBy.set(m.scenario, (set = new Set()));
            set.add(i);
            void maybeRelease(m.scenario);
            return;
          }
          case 'done':
            g.cpu1 = cpuTicks(proc.pid!);
            g.done = { finishedAt: m.finishedAt, stuck: m.stuck };
            return;
          case 'fatal':
            notes.push(`generator ${i + 1}: ${m.error}`);
            runnerError = true;
            rejectReady(new Error(`generator ${i + 1}: ${m.error}`));
            return;
        }
      });
      proc.once('exit', (code, signal) => {
        g.exited = true;
        recheckReleases();
        if (!g.done) {
          notes.push(`generator ${i + 1} (pid ${proc.pid}) exited before it finished: code ${code} signal ${signal}`);
          runnerError = true;
          rejectReady(new Error(`generator ${i + 1} exited with code ${code} signal ${signal} before it was ready`));
        }
      });
      send(g, { type: 'init', index: i, script: a.scriptJs, url, base, data, plan, shares: shares[i]! });
    }
  });
  await withTimeout(readyAll, READY_TIMEOUT_MS, 'generators ready');

  // The timed part.
  phase = 'test';
  const startAt = Date.now() + 300;
  for (const g of gens) send(g, { type: 'start', startAt });
  const serverPoints: ServerPoint[] = [];
  const metricsBefore = await scrapeMetrics(base);
  const sys0 = systemTicks();
  const runnerCpu0 = process.cpuUsage();
  let serverCpuPrev = spawned ? cpuTicks(spawned.pid) : NaN;
  const serverCpuStart = serverCpuPrev;
  let serverRssPeak = 0;
  const customCounters = Array.from(registry.defs.entries())
    .filter(([n, d]) => d.type === 'counter' && !['iterations', 'errors', 'dropped_iterations'].includes(n))
    .map(([n]) => n);
  const totalPlanned = Math.ceil(plan.endMs / 1000);

  let interrupted = 0;
  const onSigint = () => {
    interrupted++;
    if (interrupted === 1) {
      log('\ninterrupted: stopping the VUs (Ctrl-C again to kill everything)');
      stopGenerators();
    } else {
      killGenerators();
      if (spawned) {
        spawned.planned = true;
        spawned.proc.kill('SIGKILL');
        rmSync(spawned.tmp, { recursive: true, force: true });
      }
      process.exit(1);
    }
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);

  const hardDeadline = startAt + plan.hardEndMs + 20_000;
  let tick = 1;
  while (gens.some((g) => !g.exited && !g.done) && Date.now() < hardDeadline) {
    await sleep(Math.max(0, startAt + tick * 1000 + 400 - Date.now()));
    const sec = tick - 1;
    tick++;
    col.reduceOld(sec);
    if (spawned && !spawned.exit) {
      const c = cpuTicks(spawned.pid);
      const rss = rssMiB(spawned.pid);
      const cpuPct = ((c - serverCpuPrev) / CLK_TCK) * 100;
      serverCpuPrev = c;
      serverPoints.push({ t: sec, cpuPct, rssMiB: rss });
      if (rss > serverRssPeak) serverRssPeak = rss;
    }
    if (!a.quiet) {
      const p = col.peek(sec);
      const parts = [`[${String(sec + 1).padStart(4)}s/${totalPlanned}s]`, `vus ${String(p?.vus ?? 0).padStart(5)}/${plan.maxVUs}`];
      parts.push(`iters ${fmtNum(p?.counters.iterations ?? 0)}/s`);
      parts.push(`errors ${fmtNum(p?.errors ?? 0)}`);
      if (p?.counters.dropped_iterations) parts.push(`dropped ${fmtNum(p.counters.dropped_iterations)}`);
      for (const n of customCounters.slice(0, 3)) parts.push(`${n} ${fmtNum(p?.counters[n] ?? 0)}/s`);
      if (p?.checks !== undefined) parts.push(`checks ${(p.checks * 100).toFixed(2)}%`);
      const sp = serverPoints[serverPoints.length - 1];
      if (sp && sp.t === sec) parts.push(`server cpu ${Math.round(sp.cpuPct)}% rss ${Math.round(sp.rssMiB)}MiB`);
      log(parts.join(' │ '));
    }
  }
  if (gens.some((g) => !g.exited && !g.done)) {
    notes.push('some generators did not finish by the hard deadline (duration + gracefulStop + 20 s) and were killed');
    runnerError = true;
    killGenerators();
  }
  // Let the final snapshots and exits arrive.
  const exitDeadline = Date.now() + 5000;
  while (gens.some((g) => !g.exited) && Date.now() < exitDeadline) await sleep(50);
  killGenerators();
  col.reduce(Infinity);
  const finishedAt = timedEnd ?? Math.max(...gens.map((g) => g.done?.finishedAt ?? Date.now()));
  const durationMs = Math.max(1, finishedAt - startAt);
  const stuck = gens.reduce((s, g) => s + (g.done?.stuck ?? 0), 0);
  if (stuck > 0) notes.push(`${stuck} iterations ignored their aborted signal for 3 s and were abandoned`);
  if (stopRequested && !runnerError) notes.push('the test was stopped early');
  const metricsAfter = await scrapeMetrics(base);

  // Teardown.
  phase = 'teardown';
  if (typeof mod.teardown === 'function') {
    const ms = parseDuration(options.teardownTimeout ?? '60s', 'teardownTimeout');
    try {
      await withTimeout(Promise.resolve((mod.teardown as (d: unknown, e: object) => unknown)(data, { url, base })), ms, 'teardown()');
    } catch (err) {
      notes.push(`teardown() failed: ${(err as Error)?.message ?? err}`);
      runnerError = true;
    }
  }
  col.add(registry.take());

  // Server.
  phase = 'report';
  let server: Record<string, unknown> | undefined;
  if (metricsBefore && metricsAfter) {
    server = {
      cpuSecondsDuringTest: round2((metricsAfter.parley_process_cpu_seconds_total ?? NaN) - (metricsBefore.parley_process_cpu_seconds_total ?? NaN)),
      rssMiBBefore: round2((metricsBefore.parley_process_resident_memory_bytes ?? NaN) / 2 ** 20),
      rssMiBAfter: round2((metricsAfter.parley_process_resident_memory_bytes ?? NaN) / 2 ** 20),
      framesIn: (metricsAfter.parley_frames_in_total ?? NaN) - (metricsBefore.parley_frames_in_total ?? NaN),
      framesOut: (metricsAfter.parley_frames_out_total ?? NaN) - (metricsBefore.parley_frames_out_total ?? NaN),
      slowConsumerPauses: (metricsAfter.parley_slow_consumer_pauses_total ?? NaN) - (metricsBefore.parley_slow_consumer_pauses_total ?? NaN),
      connectionsAtEndOfTimedPart: metricsAtEnd?.parley_connections,
      rssMiBAtEndOfTimedPart: round2((metricsAtEnd?.parley_process_resident_memory_bytes ?? NaN) / 2 ** 20),
      connectionsAfterTest: metricsAfter.parley_connections,
    };
  }
  if (spawned) {
    const cpu = cpuTicks(spawned.pid);
    const diedBefore = Boolean(spawned.exit);
    const stop = await stopServer(spawned);
    server = {
      ...(server ?? {}),
      pid: spawned.pid,
      avgCpuPctOfOneCore: round2((((Number.isFinite(serverTicksAtEnd) ? serverTicksAtEnd : cpu) - serverCpuStart) / CLK_TCK) * 100 / (durationMs / 1000)),
      rssAnonFileMiBAtEndOfTimedPart: serverRssSplitAtEnd,
      rssMiBPeak: round2(Math.max(serverRssPeak, (metricsAtEnd?.parley_process_resident_memory_bytes ?? 0) / 2 ** 20)),
      warnLogLines: spawned.log.warn,
      errorLogLines: spawned.log.error,
      shutdown: stop,
      logSamples: spawned.log.samples,
    };
    if (!diedBefore && stop.exitCode !== 0) notes.push(`the spawned server did not exit 0 on SIGTERM: ${JSON.stringify(stop)}`);
    if (spawned.log.error > 0) notes.push(`the spawned server logged ${spawned.log.error} error lines (see SERVER)`);
  }

  // vus: the gauge comes from the per-second rows.
  // Whole seconds inside the timed part (a partial last second would understate it).
  let vusRows = col.rows.filter((r) => (r.t + 1) * 1000 <= durationMs + 250);
  if (vusRows.length === 0) vusRows = col.rows.filter((r) => r.t * 1000 < durationMs);
  if (vusRows.length > 0) {
    const vs = vusRows.map((r) => r.vus);
    col.totals.set('vus', { type: 'gauge', value: vs[vs.length - 1]!, t: 0, min: Math.min(...vs), max: Math.max(...vs), n: vs.length });
  }
  col.totals.set('vus_max', { type: 'gauge', value: plan.maxVUs, t: 0, min: plan.maxVUs, max: plan.maxVUs, n: 1 });

  const durationS = durationMs / 1000;
  // Who used the cores during the timed part: the server, the generators, this runner, and the rest.
  const cores = os.cpus().length;
  const sys1 = sysAtEnd ?? systemTicks();
  const machineBusyPct = round2(((sys1.busy - sys0.busy) / Math.max(1, sys1.total - sys0.total)) * 100);
  const busyCoreSeconds = ((sys1.busy - sys0.busy) / Math.max(1, sys1.total - sys0.total)) * cores * durationS;
  const genTicks = gens.map((g, i) => (genTicksAtEnd[i] ?? g.cpu1) - g.cpu0);
  const serverTicks = spawned ? (Number.isFinite(serverTicksAtEnd) ? serverTicksAtEnd : NaN) - serverCpuStart : NaN;
  const ru = process.cpuUsage(runnerCpu0);
  const runnerS = runnerCpuAtEnd ? (runnerCpuAtEnd.user + runnerCpuAtEnd.system - runnerCpu0.user - runnerCpu0.system) / 1e6 : (ru.user + ru.system) / 1e6;
  const oursS = genTicks.reduce((x, y) => x + y, 0) / CLK_TCK + (Number.isFinite(serverTicks) ? serverTicks / CLK_TCK : 0) + runnerS;
  const otherPct = spawned ? round2(Math.max(0, ((busyCoreSeconds - oursS) / durationS) * 100)) : undefined;
  if (otherPct !== undefined && otherPct > 20) {
    notes.push(`other processes used ${otherPct}% of a core during the timed part: the figures are disturbed`);
  }
  const metrics = buildMetrics(col, durationS, thresholds);
  const thresholdsOk = evaluateThresholds(thresholds, col, metrics, durationS, notes);
  const genCpu = genTicks.map((t) => round2(((t / CLK_TCK) * 100) / durationS));
  const summary: SummaryJson = {
    script: a.scriptJs.startsWith(path.join(repo, 'dist') + path.sep)
      ? path.relative(path.join(repo, 'dist'), a.scriptJs).replace(/\.js$/, '.ts')
      : a.scriptJs,
    startedAt: startedAt.toISOString(),
    durationMs,
    url,
    spawnedServer: Boolean(spawned),
    generators: G,
    scenarios: plan.scenarios.map((s) => ({ name: s.name, executor: s.executor, description: describeScenario(s) })),
    maxVUs: plan.maxVUs,
    thresholdsOk,
    runnerError,
    metrics,
    checks: Array.from(col.checks.entries()).map(([name, [passes, fails]]) => ({ name, passes, fails })),
    errors: Array.from(col.errors.entries())
      .sort((x, y) => y[1] - x[1])
      .map(([message, count]) => ({ message, count })),
    notes,
    server,
    machine: {
      cores,
      memGiB: round2(os.totalmem() / 2 ** 30),
      node: process.version,
      busyPctOfAllCores: machineBusyPct,
      generatorCpuPctOfOneCore: genCpu,
      runnerCpuPctOfOneCore: round2((runnerS / durationS) * 100),
      ...(otherPct !== undefined ? { otherProcessesCpuPctOfOneCore: otherPct } : {}),
    },
    series: col.rows,
  };

  const outDir = path.resolve(a.out ?? path.join(repo, 'loadtest', 'results', `${scriptName}-${startedAt.toISOString().replace(/[:.]/g, '-')}`));
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  writeFileSync(path.join(outDir, 'report.html'), renderReport(summary, serverPoints));
  process.stdout.write(renderSummary(summary));
  process.stdout.write(`  wrote ${path.join(outDir, 'summary.json')} and report.html\n\n`);
  if (runnerError) return 1;
  return thresholdsOk ? 0 : 99;
}

function round2(v: number): number {
  return Math.round(v * 100) / 100;
}

async function cleanup(): Promise<void> {
  killGenerators();
  if (spawned && !spawned.planned) {
    try {
      await stopServer(spawned);
    } catch {
      // best effort
    }
  }
}

main().then(
  async (code) => {
    await cleanup();
    process.exit(code);
  },
  async (err: unknown) => {
    log(`\nloadtest: ${err instanceof UsageError ? err.message : ((err as Error)?.stack ?? String(err))}`);
    await cleanup();
    process.exit(1);
  },
);
