// `npm run bench`: chat-1to1 against Parley and two baselines, same clients, same traffic shape.
//
//   npm run bench -- [--users 1000] [--seconds 15] [--window 4] [--generators 2]
//       [--targets parley,socketio,uws] [--parley-client raw|sdk] [--shards N] [--max-minutes 4]
//   (or, after a build: node dist/loadtest/bench.js [same flags])
//
// Targets, each started as a child process on a free 127.0.0.1 port with a fresh temp data dir:
//  - parley:   `node dist/src/main.js`, DURABILITY=fsync, default shards (= cores), PASSWORD_COST=10;
//  - socketio: loadtest/baselines/socketio-chat-server.ts — what a Node developer would write:
//              Socket.IO + better-sqlite3 (WAL, synchronous=FULL: durable per commit), one event loop;
//  - uws:      loadtest/baselines/uws-echo-server.ts — raw uWebSockets.js relay, no work at all:
//              the ceiling for this traffic shape.
// For each: U users in U/2 pairs, both users of a pair in the same generator process (one clock),
// split over G forked generators (baselines/bench-generator.ts). After a warm-up message each way,
// every user keeps `window` sends unanswered to its partner for `seconds`; the body carries the
// send time and a per-sender number, the receiver computes send→receive latency and counts lost /
// duplicated / out-of-order messages; after the window the benchmark drains (every send answered,
// every acked message received). The server's CPU (utime+stime from /proc/<pid>/stat) and RSS
// (VmRSS) are sampled over the window, with the generators' CPU and the machine's, to tell what
// limits each target. Prints a markdown table, the Parley/Socket.IO and Parley/uWS ratios, and
// writes loadtest/results/bench-<timestamp>.json.
// The server and the load generators share this machine's cores (2 here): the generators' CPU is
// CPU the server does not get; the figures say how much.
// Every phase is time-bounded; a failing target is reported with its reason and the server's
// output tail, and the next target still runs; exit 1 if any target failed or lost/duplicated
// messages. All children are killed at the end, on error and on SIGINT/SIGTERM.
import { fork, spawn, execSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { login, register } from '../client/index.js';
import type { BenchUser, FromGen, GenStats, ParleyClientKind, TargetKind, ToGen } from './baselines/bench-ipc.js';
import { LogHistogram } from './k6/histogram.js';
import { pool } from './k6/helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url)); // <repo>/dist/loadtest
const repo = path.resolve(here, '..', '..');
const resultsDir = path.join(repo, 'loadtest', 'results');
const generatorMain = path.join(here, 'baselines', 'bench-generator.js');
const SERVER_MAIN: Record<TargetKind, string> = {
  parley: path.join(repo, 'dist', 'src', 'main.js'),
  socketio: path.join(here, 'baselines', 'socketio-chat-server.js'),
  uws: path.join(here, 'baselines', 'uws-echo-server.js'),
};
const LABEL: Record<TargetKind, string> = {
  parley: 'Parley (fsync)',
  socketio: 'Socket.IO + SQLite (WAL, FULL)',
  uws: 'uWS relay (ceiling)',
};
const PASSWORD = 'bench-password-1';
const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));
const round = (x: number, d = 1) => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : NaN);

function log(msg: string): void {
  process.stdout.write(`[${new Date().toISOString().slice(11, 23)}] ${msg}\n`);
}

function die(msg: string): never {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(2);
}

// ------------------------------------------------------------------ options

function parseOptions() {
  const { values } = parseArgs({
    options: {
      users: { type: 'string', default: '1000' },
      seconds: { type: 'string', default: '15' },
      window: { type: 'string', default: '4' },
      generators: { type: 'string', default: '2' },
      targets: { type: 'string', default: 'parley,socketio,uws' },
      'parley-client': { type: 'string', default: 'raw' },
      shards: { type: 'string' },
      'max-minutes': { type: 'string', default: '4' },
      'http-concurrency': { type: 'string', default: '16' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    const src = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n');
    process.stdout.write(src.slice(0, src.findIndex((l) => l.startsWith('import'))).join('\n') + '\n');
    process.exit(0);
  }
  const int = (name: string, raw: string | undefined, min: number, max: number): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) die(`--${name} must be an integer from ${min} to ${max}, got ${raw}`);
    return n;
  };
  const users = int('users', values.users, 2, 8000);
  if (users % 2 !== 0) die('--users must be even (users are paired)');
  const targets = values.targets.split(',').map((t) => t.trim()).filter(Boolean) as TargetKind[];
  for (const t of targets) if (!(t in SERVER_MAIN)) die(`--targets: unknown target ${t} (parley, socketio, uws)`);
  if (targets.length === 0 || new Set(targets).size !== targets.length) die('--targets must list each target at most once');
  const parleyClient = values['parley-client'];
  if (parleyClient !== 'raw' && parleyClient !== 'sdk') die(`--parley-client must be raw or sdk, got ${parleyClient}`);
  return {
    users,
    seconds: int('seconds', values.seconds, 2, 120),
    window: int('window', values.window, 1, 64),
    generators: int('generators', values.generators, 1, 8),
    targets,
    parleyClient: parleyClient as ParleyClientKind,
    shards: values.shards === undefined ? undefined : int('shards', values.shards, 1, 64),
    maxMinutes: int('max-minutes', values['max-minutes'], 1, 30),
    httpConcurrency: int('http-concurrency', values['http-concurrency'], 1, 128),
  };
}
type Options = ReturnType<typeof parseOptions>;

// ------------------------------------------------------------------ children and cleanup

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();

function alive(p: ChildProcess): boolean {
  return p.exitCode === null && p.signalCode === null;
}

/** Synchronous last resort (process exit): SIGKILL every child we started, remove temp dirs. */
function killEverythingSync(): void {
  for (const p of children) if (alive(p)) p.kill('SIGKILL');
  children.clear();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}
process.on('exit', killEverythingSync);

/** SIGTERM, wait up to `ms`, then SIGKILL. */
async function stopProcess(p: ChildProcess, ms: number): Promise<{ exitCode: number | null; signal: string | null; ms: number; killed: boolean }> {
  const t0 = Date.now();
  if (alive(p)) {
    const exited = new Promise<void>((res) => p.once('exit', () => res()));
    p.kill('SIGTERM');
    const inTime = await Promise.race([exited.then(() => true), sleep(ms).then(() => false)]);
    if (!inTime) {
      p.kill('SIGKILL');
      await Promise.race([exited, sleep(3000)]);
      children.delete(p);
      return { exitCode: p.exitCode, signal: p.signalCode, ms: Date.now() - t0, killed: true };
    }
  }
  children.delete(p);
  return { exitCode: p.exitCode, signal: p.signalCode, ms: Date.now() - t0, killed: false };
}

/** Aborts the phases of the running target (server died, generator failed, watchdog, signal). */
class Abort {
  reason?: Error;
  private rejecters = new Set<(e: Error) => void>();
  fire(reason: Error): void {
    if (this.reason) return;
    this.reason = reason;
    for (const r of this.rejecters) r(reason);
    this.rejecters.clear();
  }
  /** Rejects with a clear message when `p` takes longer than ms, or when aborted. */
  phase<T>(name: string, ms: number, p: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.reason) return reject(new Error(`phase "${name}": ${this.reason.message}`));
      const onAbort = (e: Error) => {
        clearTimeout(t);
        reject(new Error(`phase "${name}": ${e.message}`));
      };
      this.rejecters.add(onAbort);
      const t = setTimeout(() => {
        this.rejecters.delete(onAbort);
        reject(new Error(`phase "${name}" exceeded its time bound of ${ms / 1000} s`));
      }, ms);
      p.then(
        (v) => {
          clearTimeout(t);
          this.rejecters.delete(onAbort);
          resolve(v);
        },
        (e: unknown) => {
          clearTimeout(t);
          this.rejecters.delete(onAbort);
          reject(new Error(`phase "${name}": ${(e as Error)?.message ?? String(e)}`));
        },
      );
    });
  }
}
let currentAbort: Abort | undefined;

// ------------------------------------------------------------------ /proc sampling

const CLK_TCK = (() => {
  try {
    return Number(execSync('getconf CLK_TCK', { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime in clock ticks of /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat. */
function cpuTicks(statPath: string): number {
  try {
    const s = readFileSync(statPath, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(rest[11]) + Number(rest[12]);
  } catch {
    return NaN;
  }
}

function rssKiB(pid: number): number {
  try {
    return Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

function memKiB(pid: number): { rss: number; anon: number; file: number } {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
    return { rss: field('VmRSS'), anon: field('RssAnon'), file: field('RssFile') + field('RssShmem') };
  } catch {
    return { rss: NaN, anon: NaN, file: NaN };
  }
}

/** CPU ticks of every process on the machine (kernel threads included), to name what else ran. */
function allProcTicks(): Map<number, { comm: string; ticks: number }> {
  const out = new Map<number, { comm: string; ticks: number }>();
  let names: string[] = [];
  try {
    names = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const st = readFileSync(`/proc/${name}/stat`, 'utf8');
      const comm = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
      const rest = st.slice(st.lastIndexOf(')') + 2).split(' ');
      out.set(Number(name), { comm, ticks: Number(rest[11]) + Number(rest[12]) });
    } catch {
      // gone
    }
  }
  return out;
}

function cmdlineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ').slice(0, 90);
  } catch {
    return '';
  }
}

/** CPU ticks per thread of a process (Node names its worker threads "node" too: label by tid). */
function threadTicks(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      out.set(tid === String(pid) ? 'main' : `${name}:${tid}`, cpuTicks(`/proc/${pid}/task/${tid}/stat`));
    } catch {
      // ended
    }
  }
  return out;
}

function systemTicks(): { busy: number; total: number; iowait: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - (f[3] ?? 0) - (f[4] ?? 0), total, iowait: f[4] ?? 0 };
}

interface Snap {
  at: number;
  server: number;
  serverMain: number;
  gens: number[];
  parent: number;
  system: { busy: number; total: number; iowait: number };
  rssKiB: number;
}

function snap(serverPid: number, genPids: number[]): Snap {
  return {
    at: performance.now(),
    server: cpuTicks(`/proc/${serverPid}/stat`),
    serverMain: cpuTicks(`/proc/${serverPid}/task/${serverPid}/stat`),
    gens: genPids.map((p) => cpuTicks(`/proc/${p}/stat`)),
    parent: cpuTicks(`/proc/${process.pid}/stat`),
    system: systemTicks(),
    rssKiB: rssKiB(serverPid),
  };
}

interface CpuUse {
  seconds: number;
  /** percent of one core */
  serverPct: number;
  serverMainThreadPct: number;
  generatorsPct: number[];
  benchParentPct: number;
  /** whole machine, percent of all cores */
  machineBusyPct: number;
  machineIowaitPct: number;
  /** CPU of processes that are neither the server nor this benchmark, percent of one core */
  otherProcessesPct: number;
}

function cpuBetween(a: Snap, b: Snap): CpuUse {
  const secs = (b.at - a.at) / 1000;
  const pct = (d: number) => round((d / CLK_TCK / secs) * 100);
  const cores = os.cpus().length;
  const sysTotal = Math.max(1, b.system.total - a.system.total);
  const machineBusy = (b.system.busy - a.system.busy) / sysTotal;
  const ours = b.server - a.server + b.gens.reduce((s, t, i) => s + (t - a.gens[i]), 0) + (b.parent - a.parent);
  return {
    seconds: round(secs, 2),
    serverPct: pct(b.server - a.server),
    serverMainThreadPct: pct(b.serverMain - a.serverMain),
    generatorsPct: b.gens.map((t, i) => pct(t - a.gens[i])),
    benchParentPct: pct(b.parent - a.parent),
    machineBusyPct: round(machineBusy * 100),
    machineIowaitPct: round(((b.system.iowait - a.system.iowait) / sysTotal) * 100),
    otherProcessesPct: Math.max(0, round(machineBusy * cores * 100 - (ours / CLK_TCK / secs) * 100)),
  };
}

async function machineBusy(ms: number): Promise<number> {
  const a = systemTicks();
  await sleep(ms);
  const b = systemTicks();
  return round(((b.busy - a.busy) / Math.max(1, b.total - a.total)) * 100);
}

/** Waits (at most maxMs) for the machine to be under 15 % busy over 1 s; returns the last reading. */
async function waitQuiet(maxMs: number): Promise<number> {
  const deadline = Date.now() + maxMs;
  let busy = await machineBusy(1000);
  if (busy > 15) log(`machine ${busy}% busy before the measurement (other jobs?); waiting up to ${maxMs / 1000} s for it to quiet down`);
  while (busy > 15 && Date.now() < deadline) busy = await machineBusy(1000);
  return busy;
}

// ------------------------------------------------------------------ servers

interface Server {
  kind: TargetKind;
  proc: ChildProcess;
  pid: number;
  base: string;
  port: number;
  dataDir: string;
  out: { tail: string; warnLines: number; errorLines: number; stderrLines: number; samples: string[] };
}

async function startServer(kind: TargetKind, opts: Options, abort: Abort): Promise<Server> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), `bench-${kind}-`));
  tempDirs.add(dataDir);
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir };
  if (kind === 'parley') {
    Object.assign(env, { DURABILITY: 'fsync', LOG_LEVEL: 'info', PASSWORD_COST: '10' });
    if (opts.shards !== undefined) env.SHARDS = String(opts.shards);
    else delete env.SHARDS; // the server's default: one shard per core
  } else {
    env.BENCH_EXIT_ON_STDIN_END = '1';
  }
  const proc = spawn(process.execPath, [SERVER_MAIN[kind]], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(proc);
  const out: Server['out'] = { tail: '', warnLines: 0, errorLines: 0, stderrLines: 0, samples: [] };
  let readyPort = 0;
  let buf = '';
  const onReady: Array<() => void> = [];
  proc.stdout!.on('data', (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    out.tail = (out.tail + text).slice(-8000);
    buf += text;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.startsWith('{')) continue;
      try {
        const j = JSON.parse(line) as { msg?: string; port?: number; level?: number };
        if (j.msg === 'ready' && typeof j.port === 'number' && !readyPort) {
          readyPort = j.port;
          for (const f of onReady.splice(0)) f();
        }
        if (typeof j.level === 'number' && j.level >= 40) {
          if (j.level >= 50) out.errorLines++;
          else out.warnLines++;
          if (out.samples.length < 10) out.samples.push(line.slice(0, 400));
        }
      } catch {
        // not JSON
      }
    }
  });
  proc.stderr!.on('data', (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    out.tail = (out.tail + text).slice(-8000);
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      out.stderrLines++;
      if (out.samples.length < 10) out.samples.push(`stderr: ${line.slice(0, 400)}`);
    }
  });
  proc.stdin!.on('error', () => undefined);
  const server: Server = { kind, proc, pid: proc.pid!, base: '', port: 0, dataDir, out };
  proc.once('exit', (code, signal) => abort.fire(new Error(`${kind} server exited unexpectedly: code ${code} signal ${signal}`)));

  await abort.phase(`${kind} server start (ready line on stdout)`, 20_000, new Promise<void>((res) => (readyPort ? res() : onReady.push(res))));
  server.port = readyPort;
  server.base = `http://127.0.0.1:${readyPort}`;
  await abort.phase(`${kind} server GET /readyz = 200`, 10_000, (async () => {
    for (;;) {
      try {
        const res = await fetch(`${server.base}/readyz`);
        await res.text();
        if (res.status === 200) return;
      } catch {
        // not yet
      }
      await sleep(100);
    }
  })());
  return server;
}

async function stopServer(s: Server): Promise<Awaited<ReturnType<typeof stopProcess>>> {
  s.proc.removeAllListeners('exit');
  const r = await stopProcess(s.proc, 12_000);
  rmSync(s.dataDir, { recursive: true, force: true });
  tempDirs.delete(s.dataDir);
  return r;
}

/** Counters the baselines expose on GET /stats (Parley: none here). */
async function serverStats(s: Server): Promise<Record<string, number> | undefined> {
  if (s.kind === 'parley') return undefined;
  try {
    const res = await fetch(`${s.base}/stats`, { signal: AbortSignal.timeout(10_000) });
    return (await res.json()) as Record<string, number>;
  } catch {
    return undefined;
  }
}

// ------------------------------------------------------------------ users

async function withRetry<T>(what: string, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (attempt >= 3 || (code !== 'unavailable' && code !== 'rate_limited' && code !== 'internal')) {
        throw new Error(`${what}: ${code ?? ''} ${(err as Error).message}`);
      }
      await sleep(200 * attempt);
    }
  }
}

/** Parley: register + log in every user (one device each). Baselines: ids only. */
async function makeUsers(kind: TargetKind, server: Server, opts: Options): Promise<BenchUser[]> {
  const names = Array.from({ length: opts.users }, (_, i) => `bench_${i}`);
  if (kind !== 'parley') return names.map((name) => ({ user: name, name }));
  return pool(names, opts.httpConcurrency, async (name) => {
    const { user } = await withRetry(`register ${name}`, () => register(server.base, { username: name, password: PASSWORD }));
    const { token } = await withRetry(`login ${name}`, () => login(server.base, { username: name, password: PASSWORD, device: 'bench' }));
    return { user, name, token };
  });
}

// ------------------------------------------------------------------ generators

interface Gen {
  label: string;
  proc: ChildProcess;
  inbox: FromGen[];
  waiters: Array<() => void>;
  closing: boolean;
}

function forkGenerator(label: string, abort: Abort, maxMs: number): Gen {
  const proc = fork(generatorMain, [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, BENCH_GENERATOR_MAX_MS: String(maxMs) },
  });
  children.add(proc);
  const gen: Gen = { label, proc, inbox: [], waiters: [], closing: false };
  proc.on('message', (m: unknown) => {
    const msg = m as FromGen;
    if (msg.type === 'fatal') abort.fire(new Error(`generator ${label} (pid ${proc.pid}): ${msg.error}`));
    gen.inbox.push(msg);
    for (const w of gen.waiters.splice(0)) w();
  });
  proc.on('exit', (code, signal) => {
    children.delete(proc);
    if (!gen.closing && code !== 0) abort.fire(new Error(`generator ${label} (pid ${proc.pid}) exited: code ${code} signal ${signal}`));
    for (const w of gen.waiters.splice(0)) w();
  });
  return gen;
}

function tell(gen: Gen, msg: ToGen): void {
  if (gen.proc.connected) gen.proc.send(msg);
}

async function expect<T extends FromGen['type']>(gen: Gen, type: T): Promise<Extract<FromGen, { type: T }>> {
  for (;;) {
    const i = gen.inbox.findIndex((m) => m.type === type);
    if (i >= 0) return gen.inbox.splice(i, 1)[0] as Extract<FromGen, { type: T }>;
    if (!alive(gen.proc)) throw new Error(`generator ${gen.label} exited before sending ${type}`);
    await new Promise<void>((res) => gen.waiters.push(res));
  }
}

async function closeGenerators(gens: Gen[]): Promise<void> {
  for (const g of gens) {
    g.closing = true;
    tell(g, { type: 'close', timeoutMs: 8000 });
  }
  await Promise.race([Promise.all(gens.map((g) => expect(g, 'closed').catch(() => undefined))), sleep(10_000)]);
  await Promise.all(gens.map((g) => (alive(g.proc) ? Promise.race([new Promise((res) => g.proc.once('exit', res)), sleep(2000)]) : undefined)));
  for (const g of gens) {
    if (alive(g.proc)) g.proc.kill('SIGKILL');
    children.delete(g.proc);
  }
}

// ------------------------------------------------------------------ one target

interface Latency {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
  samples: number;
}

function summarize(h: LogHistogram): Latency {
  return { p50: round(h.quantile(0.5), 2), p90: round(h.quantile(0.9), 2), p99: round(h.quantile(0.99), 2), max: round(h.max, 2), mean: round(h.avg, 2), samples: h.count };
}

interface TargetResult {
  target: TargetKind;
  label: string;
  ok: boolean;
  error?: string;
  serverPid?: number;
  serverStop?: Awaited<ReturnType<typeof stopProcess>>;
  usersMs?: number;
  connectMs?: number;
  warmupMs?: number;
  quietBeforePct?: number;
  deliveredPerSec?: number;
  ackedPerSec?: number;
  latencyMs?: Latency;
  ackLatencyMs?: Latency;
  cpu?: CpuUse;
  /** per second of the window: server CPU %, generators CPU % (sum), server RSS MiB */
  timeline?: Array<{ t: number; serverPct: number; generatorsPct: number; rssMiB: number }>;
  rssMiB?: { beforeLoad: number; endOfWindow: number; peak: number };
  /** RSS split at the end of the window: anonymous (heaps) vs file-backed/shared (e.g. mapped LMDB pages) */
  memoryMiB?: { anonEndOfWindow: number; fileEndOfWindow: number };
  /** busiest threads of the server over the window, percent of one core */
  serverThreads?: Record<string, number>;
  /** processes other than the server and this benchmark that used CPU during the window (kernel threads included) */
  otherProcesses?: Array<{ pid: number; comm: string; pct: number; cmdline: string }>;
  totals?: Omit<GenStats, 'latency' | 'ackLatency' | 'errorSamples' | 'windowMs' | 'drainMs'> & { drainMs: number; windowMs: number };
  serverCounters?: Record<string, number>;
  /** socketio: share of the window the server's single thread spent inside SQLite commits */
  commitSharePct?: number;
  /** socketio: event-loop utilization over the window (a synchronous fsync counts as busy) */
  eventLoopUtilizationPct?: number;
  limitedBy?: string;
  serverLog?: { warnLines: number; errorLines: number; stderrLines: number; samples: string[] };
  errorSamples?: string[];
  outputTail?: string;
}

async function runTarget(kind: TargetKind, opts: Options, deadline: number): Promise<TargetResult> {
  const abort = new Abort();
  currentAbort = abort;
  const result: TargetResult = { target: kind, label: LABEL[kind], ok: false };
  let server: Server | undefined;
  let gens: Gen[] = [];
  try {
    log(`[${kind}] starting ${path.relative(repo, SERVER_MAIN[kind])}`);
    server = await startServer(kind, opts, abort);
    result.serverPid = server.pid;
    log(`[${kind}] server pid ${server.pid} ready on ${server.base} (data ${server.dataDir})`);

    let t0 = Date.now();
    const users = await abort.phase(`${kind}: create ${opts.users} users`, 90_000, makeUsers(kind, server, opts));
    result.usersMs = Date.now() - t0;
    if (kind === 'parley') log(`[${kind}] registered + logged in ${users.length} users in ${result.usersMs} ms`);

    const pairs: Array<[BenchUser, BenchUser]> = [];
    for (let i = 0; i < users.length; i += 2) pairs.push([users[i], users[i + 1]]);
    const g = Math.min(opts.generators, pairs.length);
    const genMaxMs = Math.max(60_000, deadline - Date.now());
    gens = Array.from({ length: g }, (_, i) => forkGenerator(`g${i}`, abort, genMaxMs));
    const url = kind === 'parley' ? `${server.base.replace('http', 'ws')}/v1/ws` : kind === 'socketio' ? server.base : server.base.replace('http', 'ws');
    t0 = Date.now();
    gens.forEach((gen, i) =>
      tell(gen, { type: 'connect', target: kind, parleyClient: opts.parleyClient, url, pairs: pairs.filter((_, k) => k % g === i), concurrency: 64, timeoutMs: 50_000 }),
    );
    await abort.phase(`${kind}: connect ${users.length} clients`, 60_000, Promise.all(gens.map((gen) => expect(gen, 'connected'))));
    result.connectMs = Date.now() - t0;
    log(`[${kind}] ${users.length} clients connected over ${g} generator processes in ${result.connectMs} ms`);

    t0 = Date.now();
    gens.forEach((gen) => tell(gen, { type: 'warmup', timeoutMs: 25_000 }));
    await abort.phase(`${kind}: warm-up (one message each way per pair)`, 30_000, Promise.all(gens.map((gen) => expect(gen, 'warm'))));
    result.warmupMs = Date.now() - t0;

    result.quietBeforePct = await abort.phase(`${kind}: wait for a quiet machine`, 20_000, waitQuiet(12_000));
    if (result.quietBeforePct > 15) log(`[${kind}] WARNING: machine still ${result.quietBeforePct}% busy with other jobs; measuring anyway`);
    const rssBefore = rssKiB(server.pid);
    log(`[${kind}] warm-up done in ${result.warmupMs} ms; measuring for ${opts.seconds} s, ${opts.window} sends in flight per user (${opts.users * opts.window} in total)`);

    // The baselines' own counters (their clock), read before and after the window; under load a
    // saturated event loop answers late, hence the generous timeout.
    const counters0 = await serverStats(server);
    const genPids = gens.map((gen) => gen.proc.pid!);
    gens.forEach((gen) => tell(gen, { type: 'go', seconds: opts.seconds, window: opts.window, drainTimeoutMs: 20_000, requestTimeoutMs: 30_000 }));
    const statsP = Promise.all(gens.map((gen) => expect(gen, 'stats')));
    statsP.catch(() => undefined);
    // Sample CPU and RSS over the window, skipping its first and last half second.
    const goAt = performance.now();
    const endAt = goAt + opts.seconds * 1000 - 500;
    await abort.phase(`${kind}: measure`, opts.seconds * 1000 + 5000, sleep(500));
    const procsA = allProcTicks();
    const threadsA = threadTicks(server.pid);
    const snaps: Snap[] = [snap(server.pid, genPids)];
    let procsB = procsA;
    let threadsB = threadsA;
    while (performance.now() < endAt - 100) {
      await abort.phase(`${kind}: measure`, 5000, sleep(Math.min(1000, endAt - performance.now())));
      if (performance.now() >= endAt - 100) {
        procsB = allProcTicks();
        threadsB = threadTicks(server.pid);
      }
      snaps.push(snap(server.pid, genPids));
    }
    const first = snaps[0];
    const last = snaps[snaps.length - 1];
    result.cpu = cpuBetween(first, last);
    const secs = (last.at - first.at) / 1000;
    const pctOf = (ticks: number) => round((ticks / CLK_TCK / secs) * 100);
    const ours = new Set([server.pid, process.pid, ...genPids]);
    result.otherProcesses = [...procsB]
      .filter(([pid]) => !ours.has(pid))
      .map(([pid, b]) => ({ pid, comm: b.comm, pct: pctOf(b.ticks - (procsA.get(pid)?.ticks ?? 0)) }))
      .filter((x) => x.pct >= 2)
      .sort((x, y) => y.pct - x.pct)
      .slice(0, 5)
      .map((x) => ({ ...x, cmdline: cmdlineOf(x.pid) }));
    result.serverThreads = Object.fromEntries(
      [...threadsB]
        .map(([k, t]) => [k, pctOf(t - (threadsA.get(k) ?? 0))] as [string, number])
        .filter(([, p]) => p >= 1)
        .sort((x, y) => y[1] - x[1])
        .slice(0, 8),
    );
    const memEnd = memKiB(server.pid);
    result.memoryMiB = { anonEndOfWindow: round(memEnd.anon / 1024), fileEndOfWindow: round(memEnd.file / 1024) };
    result.timeline = snaps.slice(1).map((s, i) => {
      const c = cpuBetween(snaps[i], s);
      return { t: round((s.at - goAt) / 1000, 1), serverPct: c.serverPct, generatorsPct: round(c.generatorsPct.reduce((a, b) => a + b, 0)), rssMiB: round(s.rssKiB / 1024) };
    });
    result.rssMiB = {
      beforeLoad: round(rssBefore / 1024),
      endOfWindow: round(last.rssKiB / 1024),
      peak: round(Math.max(...snaps.map((s) => s.rssKiB)) / 1024),
    };
    const counters1 = await serverStats(server);
    if (kind !== 'parley' && (!counters0 || !counters1)) log(`[${kind}] WARNING: GET /stats did not answer; no server counters for this target`);

    const stats = (await abort.phase(`${kind}: drain (every send answered, every acked message received)`, 40_000, statsP)).map((m) => m.stats);
    const lat = new LogHistogram();
    const ack = new LogHistogram();
    const totals: NonNullable<TargetResult['totals']> = {
      clients: 0, pairs: 0, sendsIssued: 0, sendsAcked: 0, sendsAckedInWindow: 0, sendErrors: {}, recvInWindow: 0, recvTotal: 0,
      duplicates: 0, outOfOrder: 0, lost: 0, receivedUnacked: 0, strayMessages: 0, pairsIncomplete: 0, inflightAtEnd: 0,
      unexpectedCloses: 0, clientErrors: 0, drainMs: 0, windowMs: 0,
    };
    const samples: string[] = [];
    for (const s of stats) {
      lat.merge(s.latency);
      ack.merge(s.ackLatency);
      for (const k of ['clients', 'pairs', 'sendsIssued', 'sendsAcked', 'sendsAckedInWindow', 'recvInWindow', 'recvTotal', 'duplicates', 'outOfOrder',
        'lost', 'receivedUnacked', 'strayMessages', 'pairsIncomplete', 'inflightAtEnd', 'unexpectedCloses', 'clientErrors'] as const) {
        totals[k] += s[k];
      }
      totals.drainMs = Math.max(totals.drainMs, Math.round(s.drainMs));
      totals.windowMs = Math.max(totals.windowMs, Math.round(s.windowMs));
      for (const [code, n] of Object.entries(s.sendErrors)) totals.sendErrors[code] = (totals.sendErrors[code] ?? 0) + n;
      samples.push(...s.errorSamples.slice(0, 10));
    }
    result.totals = totals;
    result.errorSamples = samples.slice(0, 20);
    result.deliveredPerSec = round(totals.recvInWindow / opts.seconds, 0);
    result.ackedPerSec = round(totals.sendsAckedInWindow / opts.seconds, 0);
    result.latencyMs = summarize(lat);
    result.ackLatencyMs = summarize(ack);
    if (counters0 && counters1) {
      result.serverCounters = {};
      for (const k of Object.keys(counters1)) result.serverCounters[k] = k === 'connections' || k === 'rss' || k === 'heapUsed' || k === 'uptimeMs' || k === 'loopActiveMs' || k === 'loopIdleMs' ? counters1[k] : counters1[k] - (counters0[k] ?? 0);
      // Both readings are the server's own clock: the share of its wall time spent inside commits.
      if (kind === 'socketio') {
        const wall = Math.max(1, counters1.uptimeMs - counters0.uptimeMs);
        result.commitSharePct = round(((counters1.commitMs - counters0.commitMs) / wall) * 100);
        const active = counters1.loopActiveMs - counters0.loopActiveMs;
        const idle = counters1.loopIdleMs - counters0.loopIdleMs;
        result.eventLoopUtilizationPct = round((active / Math.max(1, active + idle)) * 100);
      }
    }
    result.limitedBy = limitedBy(kind, result, opts);
    log(`[${kind}] ${result.deliveredPerSec} msgs/s delivered, p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms; server CPU ${result.cpu.serverPct}%, generators ${result.cpu.generatorsPct.join('% + ')}%; lost ${totals.lost}, duplicates ${totals.duplicates}`);

    await abort.phase(`${kind}: close clients`, 15_000, closeGenerators(gens));
    gens = [];
    result.ok = true;
  } catch (err) {
    result.ok = false;
    result.error = (err as Error).message;
    log(`[${kind}] FAILED: ${result.error}`);
  } finally {
    for (const g of gens) {
      g.closing = true;
      if (alive(g.proc)) g.proc.kill('SIGKILL');
      children.delete(g.proc);
    }
    if (server) {
      const wasAlive = alive(server.proc);
      result.serverStop = await stopServer(server);
      if (wasAlive) log(`[${kind}] server stopped: ${JSON.stringify(result.serverStop)}`);
      result.serverLog = { warnLines: server.out.warnLines, errorLines: server.out.errorLines, stderrLines: server.out.stderrLines, samples: server.out.samples };
      if (!result.ok) {
        result.outputTail = server.out.tail.slice(-3000);
        process.stderr.write(`--- ${kind} server output (tail) ---\n${result.outputTail}\n--- end ---\n`);
      }
    }
    currentAbort = undefined;
  }
  return result;
}

/** What held this target back, from the CPU samples (100% = one core). */
function limitedBy(kind: TargetKind, r: TargetResult, opts: Options): string {
  const c = r.cpu!;
  const cores = os.cpus().length;
  const gens = c.generatorsPct.reduce((a, b) => a + b, 0);
  const parts: string[] = [];
  const inflight = opts.users * opts.window;
  if (c.machineBusyPct >= 90) {
    parts.push(`machine CPU: all ${cores} cores busy (${c.machineBusyPct}%): server ${c.serverPct}% + generators ${round(gens)}%${c.otherProcessesPct > 10 ? ` + other processes ${c.otherProcessesPct}%` : ''}`);
    if (c.serverMainThreadPct >= 85) parts.push(`server main thread ${c.serverMainThreadPct}% of a core (saturated)`);
    else parts.push(`server main thread at ${c.serverMainThreadPct}% of a core`);
    if (gens > c.serverPct) parts.push('the load generators use more CPU than the server: a generator-bound ceiling on this machine');
  } else if (r.eventLoopUtilizationPct !== undefined && r.eventLoopUtilizationPct >= 85) {
    parts.push(`server event loop saturated (utilization ${r.eventLoopUtilizationPct}%) though its CPU is ${c.serverPct}%: synchronous fsync waits block the loop without using CPU; machine ${c.machineBusyPct}% busy`);
  } else if (c.serverMainThreadPct >= 85) {
    parts.push(`server main thread ${c.serverMainThreadPct}% of a core (saturated); machine ${c.machineBusyPct}% busy`);
  } else if (c.generatorsPct.some((p) => p >= 90)) {
    parts.push(`a generator process is saturated (${c.generatorsPct.join('%, ')}%)`);
  } else {
    parts.push(`not CPU-bound (machine ${c.machineBusyPct}% busy): ${inflight} sends in flight ÷ latency bounds the rate`);
  }
  if (kind === 'parley' && r.serverThreads) {
    parts.push(`busiest server threads: ${Object.entries(r.serverThreads).slice(0, 4).map(([k, v]) => `${k} ${v}%`).join(', ')}`);
  }
  if (kind === 'socketio' && r.commitSharePct !== undefined) parts.push(`${r.commitSharePct}% of the window inside SQLite commits (one fsync per message, on the event loop${r.eventLoopUtilizationPct !== undefined ? `; loop utilization ${r.eventLoopUtilizationPct}%` : ''})`);
  if (c.machineIowaitPct >= 5) parts.push(`iowait ${c.machineIowaitPct}%`);
  if (c.otherProcessesPct > 10 && r.otherProcesses?.length) parts.push(`other CPU: ${r.otherProcesses.slice(0, 3).map((p) => `${p.comm}[${p.pid}] ${p.pct}%`).join(', ')}`);
  return parts.join('; ');
}

// ------------------------------------------------------------------ report

function mdTable(header: string[], rows: string[][]): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (c ?? '').padEnd(w[i])).join(' | ')} |`;
  return [line(header), `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

function report(results: TargetResult[], opts: Options, machine: Record<string, unknown>): { main: string; detail: string; ratios: Record<string, number | string>; ratioText: string } {
  const f = (x: number | undefined, d = 1) => (x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(d));
  const main = mdTable(
    ['target', 'msgs/s', 'p50 ms', 'p99 ms', 'server CPU %', 'RSS MiB'],
    results.map((r) =>
      r.ok
        ? [r.label, f(r.deliveredPerSec, 0), f(r.latencyMs?.p50), f(r.latencyMs?.p99), f(r.cpu?.serverPct, 0), f(r.rssMiB?.endOfWindow, 0)]
        : [r.label, `FAILED: ${r.error?.slice(0, 80)}`, '', '', '', ''],
    ),
  );
  const detail = mdTable(
    ['target', 'acked/s', 'send→ack p50/p99 ms', 'server main thr %', 'generators CPU %', 'machine busy %', 'RSS before → end (anon + file) MiB', 'lost / dup / ooo', 'send errs / closes', 'limited by'],
    results
      .filter((r) => r.ok)
      .map((r) => {
        const t = r.totals!;
        const errs = Object.values(t.sendErrors).reduce((a, b) => a + b, 0);
        return [
          r.label,
          f(r.ackedPerSec, 0),
          `${f(r.ackLatencyMs?.p50)} / ${f(r.ackLatencyMs?.p99)}`,
          f(r.cpu?.serverMainThreadPct, 0),
          r.cpu!.generatorsPct.map((p) => p.toFixed(0)).join(' + '),
          f(r.cpu?.machineBusyPct, 0),
          `${f(r.rssMiB?.beforeLoad, 0)} → ${f(r.rssMiB?.endOfWindow, 0)} (${f(r.memoryMiB?.anonEndOfWindow, 0)} + ${f(r.memoryMiB?.fileEndOfWindow, 0)})`,
          `${t.lost} / ${t.duplicates} / ${t.outOfOrder}`,
          `${errs} / ${t.unexpectedCloses}`,
          r.limitedBy ?? '',
        ];
      }),
  );
  const by = (k: TargetKind) => results.find((r) => r.target === k && r.ok);
  const p = by('parley');
  const s = by('socketio');
  const u = by('uws');
  const ratios: Record<string, number | string> = {};
  const lines: string[] = [];
  if (p && s) {
    ratios.parleyOverSocketioThroughput = round(p.deliveredPerSec! / s.deliveredPerSec!, 2);
    ratios.parleyOverSocketioP50 = round(p.latencyMs!.p50 / s.latencyMs!.p50, 2);
    ratios.parleyOverSocketioP99 = round(p.latencyMs!.p99 / s.latencyMs!.p99, 2);
    lines.push(`Parley / Socket.IO+SQLite: ${ratios.parleyOverSocketioThroughput}× the messages/s; p50 ${ratios.parleyOverSocketioP50}×, p99 ${ratios.parleyOverSocketioP99}× the latency`);
  }
  if (p && u) {
    ratios.parleyOverUwsThroughput = round(p.deliveredPerSec! / u.deliveredPerSec!, 2);
    ratios.parleyOverUwsP50 = round(p.latencyMs!.p50 / u.latencyMs!.p50, 2);
    lines.push(`Parley / uWS relay ceiling: ${ratios.parleyOverUwsThroughput}× (${round(ratios.parleyOverUwsThroughput * 100, 0)}% of the ceiling's messages/s); p50 ${ratios.parleyOverUwsP50}× the latency`);
  }
  if (s && u) {
    ratios.socketioOverUwsThroughput = round(s.deliveredPerSec! / u.deliveredPerSec!, 2);
    lines.push(`Socket.IO+SQLite / uWS relay ceiling: ${ratios.socketioOverUwsThroughput}×`);
  }
  void opts;
  void machine;
  return { main, detail, ratios, ratioText: lines.join('\n') };
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const opts = parseOptions();
  const startedAt = new Date();
  const deadline = Date.now() + opts.maxMinutes * 60_000;
  let finishing = false;
  const bail = (why: string, code: number) => {
    if (finishing) return;
    finishing = true;
    process.stderr.write(`\nbench: ${why}; stopping every child process\n`);
    currentAbort?.fire(new Error(why));
    // Give the running target a moment to stop its server politely, then kill everything.
    setTimeout(() => {
      killEverythingSync();
      process.exit(code);
    }, 3000).unref();
  };
  const watchdog = setTimeout(() => bail(`whole run exceeded --max-minutes ${opts.maxMinutes}`, 1), opts.maxMinutes * 60_000);
  watchdog.unref();
  process.once('SIGINT', () => bail('interrupted (SIGINT)', 130));
  process.once('SIGTERM', () => bail('terminated (SIGTERM)', 143));

  const cpus = os.cpus();
  const machine = {
    cores: cpus.length,
    cpuModel: cpus[0]?.model ?? '',
    totalMemGiB: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    tmpdir: os.tmpdir(),
  };
  const shared = `server and load generators share this ${machine.cores}-core machine (${machine.cpuModel}, ${machine.totalMemGiB} GiB): generator CPU is CPU the server does not get`;
  log(`bench: ${JSON.stringify(opts)}`);
  log(`NOTE: ${shared}`);

  const results: TargetResult[] = [];
  for (const kind of opts.targets) {
    if (finishing) break;
    if (Date.now() > deadline - 20_000) {
      results.push({ target: kind, label: LABEL[kind], ok: false, error: 'skipped: not enough time left before --max-minutes' });
      continue;
    }
    results.push(await runTarget(kind, opts, deadline));
  }
  if (finishing) return;

  const rep = report(results, opts, machine);
  const config = `${opts.users} users (${opts.users / 2} pairs) over ${opts.generators} generator processes, ${opts.window} sends in flight per user, ${opts.seconds} s per target; Parley DURABILITY=fsync, shards=${opts.shards ?? 'default (cores)'}, client ${opts.parleyClient === 'raw' ? 'raw ws + wire codec' : 'SDK'}`;
  const out = [
    '',
    `## chat-1to1 benchmark, ${startedAt.toISOString()}`,
    '',
    config,
    `Note: ${shared}. msgs/s = partner messages received end to end per second of the window; latency = send (stamped in the body) → receive by the partner, same clock; server CPU = utime+stime of the server process (100% = one core); RSS = VmRSS at the end of the window. Closed loop (${opts.users * opts.window} sends in flight): at saturation latency ≈ in-flight ÷ throughput, i.e. mostly queueing.`,
    '',
    rep.main,
    '',
    rep.ratioText,
    '',
    rep.detail,
    '',
  ].join('\n');
  process.stdout.write(out + '\n');

  const problems: string[] = [];
  for (const r of results) {
    if (!r.ok) {
      problems.push(`${r.target}: FAILED: ${r.error}`);
      continue;
    }
    const t = r.totals!;
    if (t.lost || t.duplicates) problems.push(`${r.target}: ${t.lost} messages acked but never received, ${t.duplicates} duplicates (${t.pairsIncomplete} pairs affected)`);
    if (t.outOfOrder) problems.push(`${r.target}: ${t.outOfOrder} messages out of order`);
    if (t.strayMessages || t.receivedUnacked) problems.push(`${r.target}: ${t.strayMessages} stray messages, ${t.receivedUnacked} received but never acked`);
    const errs = Object.entries(t.sendErrors);
    if (errs.length) problems.push(`${r.target}: send errors ${JSON.stringify(t.sendErrors)}`);
    if (t.unexpectedCloses || t.clientErrors) problems.push(`${r.target}: ${t.unexpectedCloses} unexpected closes, ${t.clientErrors} client errors`);
    if (t.inflightAtEnd) problems.push(`${r.target}: ${t.inflightAtEnd} sends unanswered after the drain`);
    if (r.serverLog && (r.serverLog.errorLines || r.serverLog.warnLines || r.serverLog.stderrLines)) {
      problems.push(`${r.target}: server logged ${r.serverLog.errorLines} error, ${r.serverLog.warnLines} warn, ${r.serverLog.stderrLines} stderr lines: ${r.serverLog.samples.slice(0, 3).join(' | ')}`);
    }
    if (r.serverStop && (r.serverStop.killed || (r.serverStop.exitCode !== 0 && r.serverStop.signal !== 'SIGTERM'))) problems.push(`${r.target}: server did not exit cleanly on SIGTERM: ${JSON.stringify(r.serverStop)}`);
    if (r.cpu && r.cpu.otherProcessesPct > 20) {
      const who = (r.otherProcesses ?? []).map((p) => `${p.comm}[${p.pid}] ${p.pct}%${p.cmdline ? ` (${p.cmdline})` : ''}`).join(', ');
      problems.push(`${r.target}: other processes used ${r.cpu.otherProcessesPct}% of a core during the window (figures are lower than on a quiet machine): ${who || 'not attributable (short-lived processes or kernel)'}`);
    }
    if (r.errorSamples?.length) problems.push(`${r.target}: samples: ${r.errorSamples.slice(0, 5).join(' | ')}`);
  }
  if (problems.length) process.stdout.write(`Suspicious:\n${problems.map((x) => `- ${x}`).join('\n')}\n\n`);

  const file = path.join(resultsDir, `bench-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(
    file,
    JSON.stringify(
      {
        benchmark: 'chat-1to1 bench (Parley vs Socket.IO+SQLite vs uWS relay)',
        startedAt: startedAt.toISOString(),
        finishedAt: new Date().toISOString(),
        note: shared,
        config: { ...opts, parleyDurability: 'fsync', passwordCost: 10, host: '127.0.0.1', socketioSqlite: 'WAL, synchronous=FULL, one transaction per message' },
        machine,
        results,
        ratios: rep.ratios,
        problems,
        markdown: out,
      },
      null,
      2,
    ) + '\n',
  );
  log(`wrote ${path.relative(process.cwd(), file)}`);
  clearTimeout(watchdog);
  const failed = results.some((r) => !r.ok || (r.totals && (r.totals.lost || r.totals.duplicates)));
  process.exit(failed ? 1 : 0);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error)?.stack ?? String(err)}\n`);
  killEverythingSync();
  process.exit(1);
});
