// The core benchmark of the Parley server.
//
//   npm run build && node dist/loadtest/core-bench.js [--users 1000] [--seconds 20] [--idle 10000]
//       [--durability fsync|relaxed] [--shards 2] [--generators 2] [--window 8] [--devices 10]
//       [--http-concurrency 16] [--max-minutes 5] [--gc inspector|none]
//
// 1. Starts `node dist/src/main.js` on a free 127.0.0.1 port with a fresh temp DATA_DIR.
// 2. Throughput/latency: U users in U/2 pairs, each direction keeps `window` sends in flight for
//    `seconds`; the recipient measures send→receive from the timestamp in the body. The clients
//    are spread over `generators` forked processes (both users of a pair in one process: one clock).
// 3. Idle (on a second, fresh server): N authenticated idle sockets (users × `devices` sessions
//    each), server RSS before/after → bytes per connection. With --gc inspector (default) that
//    server runs with --inspect=127.0.0.1:0 and every isolate is GC'd before each RSS reading.
// 4. Prints a markdown summary and writes loadtest/results/core-bench-<timestamp>.json.
// Every phase is time-bounded; a failing phase exits non-zero with the reason and the server's
// output tail. The server and the load generators share this machine's cores.
import { fork, spawn, execSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { login, register } from '../client/index.js';
import type { Account, FromWorker, IdleStats, ToWorker, TpStats } from './core-bench-ipc.js';
import { LogHistogram } from './k6/histogram.js';
import { collectGarbageEverywhere } from './inspector-gc.js';
import { pool } from './k6/helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url)); // <repo>/dist/loadtest
const repo = path.resolve(here, '..', '..');
const serverMain = path.join(repo, 'dist', 'src', 'main.js');
const workerMain = path.join(here, 'core-bench-worker.js');
const resultsDir = path.join(repo, 'loadtest', 'results');

const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));
const PASSWORD = 'bench-password-1';
const IDLE_PER_PROCESS_MAX = 9000;

// ------------------------------------------------------------------ options

function parseOptions() {
  const { values } = parseArgs({
    options: {
      users: { type: 'string', default: '1000' },
      seconds: { type: 'string', default: '20' },
      idle: { type: 'string', default: '10000' },
      durability: { type: 'string', default: 'fsync' },
      shards: { type: 'string', default: '2' },
      generators: { type: 'string', default: '2' },
      window: { type: 'string', default: '8' },
      devices: { type: 'string', default: '10' },
      'http-concurrency': { type: 'string', default: '16' },
      'max-minutes': { type: 'string', default: '5' },
      gc: { type: 'string', default: 'inspector' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    const src = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n');
    process.stdout.write(src.slice(0, src.findIndex((l) => l.startsWith('import'))).join('\n') + '\n');
    process.exit(0);
  }
  const int = (name: keyof typeof values, min: number, max: number): number => {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < min || n > max) die(`--${name} must be an integer from ${min} to ${max}, got ${values[name]}`);
    return n;
  };
  const users = int('users', 2, 20_000);
  if (users % 2 !== 0) die('--users must be even (users are paired)');
  const gc = values.gc;
  if (gc !== 'inspector' && gc !== 'none') die(`--gc must be inspector or none, got ${gc}`);
  const durability = values.durability;
  if (durability !== 'fsync' && durability !== 'relaxed') die(`--durability must be fsync or relaxed, got ${durability}`);
  return {
    users,
    seconds: int('seconds', 1, 120),
    idle: int('idle', 0, 60_000),
    durability: durability as 'fsync' | 'relaxed',
    shards: int('shards', 1, 64),
    generators: int('generators', 1, 16),
    window: int('window', 1, 256),
    devices: int('devices', 1, 100),
    httpConcurrency: int('http-concurrency', 1, 256),
    maxMinutes: int('max-minutes', 1, 30),
    /** idle RSS readings: force a GC in every server isolate first (through --inspect), or not */
    gc: gc as 'inspector' | 'none',
  };
}
type Options = ReturnType<typeof parseOptions>;

// ------------------------------------------------------------------ failure and cleanup

let server: ChildProcess | undefined;
let dataDir: string | undefined;
/** Servers we are stopping on purpose: their exit is not a failure. */
const plannedStops = new WeakSet<ChildProcess>();
let inspectorUrl: string | undefined;
const workers = new Set<ChildProcess>();
const serverOut = { tail: '', warnLines: 0, errorLines: 0, samples: [] as string[] };

function die(msg: string): never {
  process.stderr.write(`core-bench: ${msg}\n`);
  process.exit(2);
}

async function stopServer(): Promise<{ exitCode: number | null; signal: string | null; ms: number; killed: boolean }> {
  const s = server;
  const t0 = Date.now();
  if (!s || s.exitCode !== null || s.signalCode !== null) {
    return { exitCode: s?.exitCode ?? null, signal: s?.signalCode ?? null, ms: 0, killed: false };
  }
  plannedStops.add(s);
  const exited = new Promise<void>((res) => s.once('exit', () => res()));
  s.kill('SIGTERM');
  let killed = false;
  const inTime = await Promise.race([exited.then(() => true), sleep(15_000).then(() => false)]);
  if (!inTime) {
    killed = true;
    s.kill('SIGKILL');
    await Promise.race([exited, sleep(5000)]);
  }
  return { exitCode: s.exitCode, signal: s.signalCode, ms: Date.now() - t0, killed };
}

function killWorkers(): void {
  for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
  workers.clear();
}

function removeDataDir(): void {
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  dataDir = undefined;
}

let failing = false;
let stopping = false;
async function fail(msg: string): Promise<never> {
  // A second failure while the first is being handled (e.g. a generator's exit after its fatal) waits.
  if (failing) return new Promise<never>(() => undefined);
  failing = true;
  stopping = true;
  process.stderr.write(`\ncore-bench FAILED: ${msg}\n`);
  killWorkers();
  if (server) {
    const alive = server.exitCode === null && server.signalCode === null;
    if (!alive) process.stderr.write(`server had exited: code ${server.exitCode} signal ${server.signalCode}\n`);
    const stop = await stopServer();
    if (alive) process.stderr.write(`server stopped: ${JSON.stringify(stop)}\n`);
  }
  process.stderr.write(`--- server output (last ${serverOut.tail.length} chars) ---\n${serverOut.tail}\n--- end ---\n`);
  removeDataDir();
  process.exit(1);
}

/** Rejects with a clear message when `p` takes longer than ms. */
function phase<T>(name: string, ms: number, p: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`phase "${name}" exceeded its time bound of ${ms / 1000} s`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? new Error(`phase "${name}": ${e.message}`) : e);
      },
    );
  });
}

function log(msg: string): void {
  process.stdout.write(`[${new Date().toISOString().slice(11, 23)}] ${msg}\n`);
}

// ------------------------------------------------------------------ server

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function captureServerOutput(chunk: Buffer): void {
  const text = chunk.toString('utf8');
  const dbg = /Debugger listening on (ws:\/\/\S+)/.exec(text);
  if (dbg) inspectorUrl = dbg[1];
  serverOut.tail = (serverOut.tail + text).slice(-16_000);
  for (const line of text.split('\n')) {
    const m = /"level":(\d+)/.exec(line);
    if (!m) continue;
    const level = Number(m[1]);
    if (level >= 50) serverOut.errorLines++;
    else if (level >= 40) serverOut.warnLines++;
    if (level >= 40 && serverOut.samples.length < 20) serverOut.samples.push(line.slice(0, 600));
  }
}

/** Starts `node dist/src/main.js` on a free port with a fresh data dir; with `inspect`, also an inspector on 127.0.0.1 (for forced GCs). */
async function startServer(opts: Options, inspect: boolean): Promise<{ base: string; port: number; pid: number }> {
  const port = await freePort();
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'parley-core-bench-'));
  const env = {
    ...process.env,
    PORT: String(port),
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    SHARDS: String(opts.shards),
    DURABILITY: opts.durability,
    LOG_LEVEL: 'warn',
    PASSWORD_COST: '10',
  };
  inspectorUrl = undefined;
  const args = inspect ? ['--inspect=127.0.0.1:0', serverMain] : [serverMain];
  const s = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  server = s;
  s.stdout!.on('data', captureServerOutput);
  s.stderr!.on('data', captureServerOutput);
  s.once('exit', (code, signal) => {
    if (!stopping && !plannedStops.has(s)) void fail(`server exited unexpectedly: code ${code} signal ${signal}`);
  });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const res = await fetch(`${base}/readyz`);
      await res.text();
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) await fail('server did not answer GET /readyz = 200 within 20 s');
    await sleep(100);
  }
  if (inspect && !inspectorUrl) await fail('server started with --inspect but printed no "Debugger listening on ws://..." line');
  return { base, port, pid: s.pid! };
}

async function metricsOf(base: string): Promise<Record<string, number>> {
  const res = await fetch(`${base}/metrics`);
  const text = await res.text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^(parley_(?:connections|frames_in_total|frames_out_total|slow_consumer_pauses_total|nodejs_heap_size_used_bytes)) (\S+)$/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

// ------------------------------------------------------------------ /proc sampling

function procStatus(pid: number): { rssKiB: number; anonKiB: number; fileKiB: number; threads: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  return { rssKiB: field('VmRSS'), anonKiB: field('RssAnon'), fileKiB: field('RssFile'), threads: field('Threads') };
}

const CLK_TCK = (() => {
  try {
    return Number(execSync('getconf CLK_TCK', { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a process or thread, in clock ticks. */
function cpuTicks(statPath: string): number {
  try {
    const s = readFileSync(statPath, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
    return Number(rest[11]) + Number(rest[12]); // utime (14), stime (15)
  } catch {
    return NaN;
  }
}

function threadTicks(pid: number): Map<string, { name: string; ticks: number }> {
  const out = new Map<string, { name: string; ticks: number }>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      out.set(tid, { name, ticks: cpuTicks(`/proc/${pid}/task/${tid}/stat`) });
    } catch {
      // thread ended
    }
  }
  return out;
}

function systemTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = line.reduce((a, b) => a + b, 0);
  const idleT = (line[3] ?? 0) + (line[4] ?? 0);
  return { busy: total - idleT, total };
}

interface CpuSnapshot {
  at: number;
  procs: Map<string, number>;
  serverThreads: Map<string, { name: string; ticks: number }>;
  system: { busy: number; total: number };
}

function snapshot(procs: Map<string, number>, serverPid: number): CpuSnapshot {
  const ticks = new Map<string, number>();
  for (const [label, pid] of procs) ticks.set(label, cpuTicks(`/proc/${pid}/stat`));
  return { at: Date.now(), procs: ticks, serverThreads: threadTicks(serverPid), system: systemTicks() };
}

interface CpuReport {
  seconds: number;
  /** percent of one core, per process */
  processes: Record<string, number>;
  /** server threads by name (summed), percent of one core */
  serverThreads: Record<string, number>;
  /** whole machine busy, percent of all cores */
  systemBusyPct: number;
  /** CPU used by processes other than the server and this benchmark, percent of one core */
  otherProcessesPct: number;
}

function cpuBetween(a: CpuSnapshot, b: CpuSnapshot, serverPid: number): CpuReport {
  const secs = (b.at - a.at) / 1000;
  const pct = (ticks: number) => Math.round((ticks / CLK_TCK / secs) * 1000) / 10;
  const processes: Record<string, number> = {};
  let ours = 0;
  for (const [label, t1] of b.procs) {
    const d = t1 - (a.procs.get(label) ?? t1);
    if (Number.isFinite(d)) ours += d;
    processes[label] = pct(d);
  }
  // Node names its worker threads "node" too: label by tid, the main (gateway) thread by name.
  const threads: Array<[string, number]> = [];
  for (const [tid, { name, ticks }] of b.serverThreads) {
    const d = ticks - (a.serverThreads.get(tid)?.ticks ?? 0);
    threads.push([tid === String(serverPid) ? 'main (gateway)' : `${name}:${tid}`, d]);
  }
  threads.sort((x, y) => y[1] - x[1]);
  const serverThreads: Record<string, number> = {};
  for (const [label, d] of threads.slice(0, 8)) if (d > 0) serverThreads[label] = pct(d);
  const sysBusyTicks = b.system.busy - a.system.busy;
  const sysTotalTicks = Math.max(1, b.system.total - a.system.total);
  const cores = os.cpus().length;
  const sys = Math.round((sysBusyTicks / sysTotalTicks) * 1000) / 10;
  // /proc/stat counts ticks of all cores: busy core-seconds = busy/total × cores × secs.
  const busyCorePct = (sysBusyTicks / sysTotalTicks) * cores * 100;
  const other = Math.max(0, Math.round((busyCorePct - (ours / CLK_TCK / secs) * 100) * 10) / 10);
  return { seconds: Math.round(secs * 10) / 10, processes, serverThreads, systemBusyPct: sys, otherProcessesPct: other };
}

/** Waits (at most maxMs) for the machine to be under 15 % busy over 1 s; returns the last reading. */
async function waitQuiet(maxMs: number): Promise<number> {
  const deadline = Date.now() + maxMs;
  let busy = await machineBusy(1000);
  let said = false;
  while (busy > 15 && Date.now() < deadline) {
    if (!said) log(`machine ${busy}% busy before the measurement (other jobs?); waiting up to ${maxMs / 1000} s for it to quiet down`);
    said = true;
    busy = await machineBusy(1000);
  }
  return busy;
}

/** Machine busy (percent of all cores) over `ms`, before the run: other jobs distort the figures. */
async function machineBusy(ms: number): Promise<number> {
  const a = systemTicks();
  await sleep(ms);
  const b = systemTicks();
  return Math.round(((b.busy - a.busy) / Math.max(1, b.total - a.total)) * 1000) / 10;
}

function dirSizeKiB(dir: string | undefined): number {
  if (!dir) return NaN;
  let bytes = 0;
  for (const name of readdirSync(dir)) {
    try {
      // LMDB's data.mdb is sparse: count the blocks actually allocated.
      const st = statSync(path.join(dir, name));
      bytes += st.blocks * 512;
    } catch {
      // gone
    }
  }
  return Math.round(bytes / 1024);
}

// ------------------------------------------------------------------ accounts

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

async function createUsers(base: string, prefix: string, n: number, concurrency: number): Promise<Array<{ username: string; user: string }>> {
  const names = Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  return pool(names, concurrency, async (username) => {
    const { user } = await withRetry(`register ${username}`, () => register(base, { username, password: PASSWORD }));
    return { username, user };
  });
}

async function createSessions(base: string, users: Array<{ username: string }>, devices: number, concurrency: number): Promise<Account[]> {
  const jobs = users.flatMap((u) => Array.from({ length: devices }, (_, d) => ({ username: u.username, device: `bench-${d}` })));
  return pool(jobs, concurrency, async ({ username, device }) => {
    const r = await withRetry(`login ${username}/${device}`, () => login(base, { username, password: PASSWORD, device }));
    return { username, user: r.user, token: r.token };
  });
}

// ------------------------------------------------------------------ generators

interface Gen {
  proc: ChildProcess;
  label: string;
  inbox: FromWorker[];
  waiters: Array<() => void>;
}

function forkGenerator(label: string): Gen {
  const proc = fork(workerMain, [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, CORE_BENCH_WORKER_MAX_MS: String(6 * 60_000) },
  });
  workers.add(proc);
  const gen: Gen = { proc, label, inbox: [], waiters: [] };
  proc.on('message', (m: unknown) => {
    const msg = m as FromWorker;
    if (msg.type === 'fatal') void fail(`generator ${label} (pid ${proc.pid}): ${msg.error}`);
    gen.inbox.push(msg);
    for (const w of gen.waiters.splice(0)) w();
  });
  proc.on('exit', (code, signal) => {
    workers.delete(proc);
    if (!stopping && code !== 0) void fail(`generator ${label} (pid ${proc.pid}) exited: code ${code} signal ${signal}`);
    for (const w of gen.waiters.splice(0)) w();
  });
  return gen;
}

function tell(gen: Gen, msg: ToWorker): void {
  gen.proc.send(msg);
}

/** Next message of `type` from gen (consumed from its inbox). */
async function expect<T extends FromWorker['type']>(gen: Gen, type: T): Promise<Extract<FromWorker, { type: T }>> {
  for (;;) {
    const i = gen.inbox.findIndex((m) => m.type === type);
    if (i >= 0) return gen.inbox.splice(i, 1)[0] as Extract<FromWorker, { type: T }>;
    if (gen.proc.exitCode !== null || gen.proc.signalCode !== null) throw new Error(`generator ${gen.label} exited before sending ${type}`);
    await new Promise<void>((res) => gen.waiters.push(res));
  }
}

async function closeGenerators(gens: Gen[]): Promise<void> {
  for (const g of gens) if (g.proc.connected) tell(g, { type: 'close', timeoutMs: 10_000 });
  await Promise.all(gens.map((g) => expect(g, 'closed').catch(() => undefined)));
  await Promise.all(
    gens.map((g) => (g.proc.exitCode !== null ? undefined : Promise.race([new Promise((res) => g.proc.once('exit', res)), sleep(3000)]))),
  );
  for (const g of gens) if (g.proc.exitCode === null && g.proc.signalCode === null) g.proc.kill('SIGKILL');
}

// ------------------------------------------------------------------ scenarios

/**
 * A memory reading of the server: with --gc inspector first a forced GC in every isolate, then
 * wait until RSS stops moving (≤ 0.5 % over 1 s, at most 10 s).
 */
async function settledReading(opts: Options, base: string, serverPid: number, label: string, notes: string[]) {
  let isolates: Record<string, number> = {};
  if (opts.gc === 'inspector') {
    if (!inspectorUrl) throw new Error('no inspector URL for the forced GC');
    const gc = await phase(`forced GC in every server isolate (${label})`, 30_000, collectGarbageEverywhere(inspectorUrl));
    notes.push(`${label}: ${gc.collected} isolates collected${gc.skipped.length ? `, skipped (no answer in 2 s): ${gc.skipped.join(', ')}` : ''}`);
    isolates = gc.heapUsed;
  }
  let prev = procStatus(serverPid).rssKiB;
  for (let i = 0; i < 10; i++) {
    await sleep(1000);
    const cur = procStatus(serverPid).rssKiB;
    if (Math.abs(cur - prev) <= prev * 0.005) break;
    prev = cur;
  }
  return { ...procStatus(serverPid), heapUsed: (await metricsOf(base)).parley_nodejs_heap_size_used_bytes ?? NaN, isolates };
}

interface TpResult {
  users: number;
  pairs: number;
  generators: number;
  window: number;
  seconds: number;
  windowMs: number;
  connectMs: number;
  warmupMs: number;
  deliveredPerSec: number;
  /** server CPU time (all threads) per delivered message during the window, µs */
  serverCpuUsPerMessage: number;
  ackedPerSec: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number; samples: number };
  sendOkMs: { p50: number; p90: number; p99: number; max: number; mean: number; samples: number };
  totals: Omit<TpStats, 'latency' | 'ackLatency' | 'windowMs' | 'errorSamples' | 'clients' | 'pairs'>;
  errorSamples: string[];
  cpu: CpuReport;
  serverRssKiBAfter: number;
  /** server memory at the start and end of the measured window (file = mapped LMDB pages) */
  serverMemoryKiB: { windowStart: { rss: number; anon: number; file: number }; windowEnd: { rss: number; anon: number; file: number } };
  /** size of the data directory after the throughput phase */
  dataDirKiB: number;
  /** server memory before the load and after it (clients gone), each after a forced GC with --gc inspector */
  retained: {
    gc: 'inspector' | 'none';
    gcNotes: string[];
    before: { rss: number; anon: number; file: number; heapUsed: number; isolates: Record<string, number> };
    after: { rss: number; anon: number; file: number; heapUsed: number; isolates: Record<string, number> };
    anonBytesPerMessage: number;
    mainHeapBytesPerMessage: number;
  };
  serverMetricsDelta: Record<string, number>;
}

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

function summarize(h: LogHistogram) {
  return { p50: round(h.quantile(0.5)), p90: round(h.quantile(0.9)), p99: round(h.quantile(0.99)), max: round(h.max), mean: round(h.avg), samples: h.count };
}

async function throughput(opts: Options, base: string, serverPid: number): Promise<TpResult> {
  const url = base.replace('http', 'ws') + '/v1/ws';
  let t0 = Date.now();
  const users = await phase('create throughput users', 180_000, createUsers(base, 'tp_', opts.users, opts.httpConcurrency));
  const accounts = await phase('create throughput sessions', 180_000, createSessions(base, users, 1, opts.httpConcurrency));
  log(`created ${users.length} users + sessions in ${Date.now() - t0} ms`);

  const pairs: Array<[Account, Account]> = [];
  for (let i = 0; i < accounts.length; i += 2) pairs.push([accounts[i], accounts[i + 1]]);
  const g = Math.min(opts.generators, pairs.length);
  const gens = Array.from({ length: g }, (_, i) => forkGenerator(`tp${i}`));
  t0 = Date.now();
  gens.forEach((gen, i) =>
    tell(gen, { type: 'tp-connect', url, pairs: pairs.filter((_, k) => k % g === i), concurrency: 64, timeoutMs: 90_000 }),
  );
  await phase('connect + sync throughput clients', 100_000, Promise.all(gens.map((gen) => expect(gen, 'tp-connected'))));
  const connectMs = Date.now() - t0;
  log(`${accounts.length} clients connected and synced over ${g} generator processes in ${connectMs} ms`);

  t0 = Date.now();
  gens.forEach((gen) => tell(gen, { type: 'tp-warmup', timeoutMs: 60_000 }));
  await phase('warm-up (first message of each pair creates the thread)', 70_000, Promise.all(gens.map((gen) => expect(gen, 'tp-warm'))));
  const warmupMs = Date.now() - t0;
  log(`warm-up done in ${warmupMs} ms; measuring for ${opts.seconds} s (window ${opts.window} per direction)`);

  const gcNotes: string[] = [];
  const memBeforeLoad = await settledReading(opts, base, serverPid, 'before the load', gcNotes);
  const quiet = await waitQuiet(30_000);
  if (quiet > 15) log(`WARNING: machine still ${quiet}% busy with other jobs after 30 s; measuring anyway`);
  const m0 = await metricsOf(base);
  const procs = new Map<string, number>([['server', serverPid], ['bench (parent)', process.pid]]);
  for (const gen of gens) procs.set(`generator ${gen.label}`, gen.proc.pid!);
  gens.forEach((gen) => tell(gen, { type: 'tp-go', seconds: opts.seconds, window: opts.window, drainTimeoutMs: 30_000 }));
  const before = snapshot(procs, serverPid);
  const memStart = procStatus(serverPid);
  // Sample the CPU over the measured window (skip the first and last half second).
  await sleep(Math.min(500, opts.seconds * 100));
  const a = snapshot(procs, serverPid);
  await sleep(Math.max(500, opts.seconds * 1000 - 1000));
  const b = snapshot(procs, serverPid);
  const cpu = cpuBetween(opts.seconds >= 3 ? a : before, b, serverPid);
  const memEnd = procStatus(serverPid);
  const serverRssKiBAfter = memEnd.rssKiB;
  const stats = (await phase('measure + drain', opts.seconds * 1000 + 45_000, Promise.all(gens.map((gen) => expect(gen, 'tp-stats'))))).map((m) => m.stats);
  const m1 = await metricsOf(base);

  const lat = new LogHistogram();
  const ack = new LogHistogram();
  const totals: TpResult['totals'] = {
    sendsIssued: 0, sendsAcked: 0, sendsAckedInWindow: 0, sendErrors: {}, recvInWindow: 0, recvTotal: 0,
    duplicates: 0, outOfOrder: 0, missing: 0, missingFromPartner: 0, pairsIncomplete: 0, inflightAtEnd: 0,
    drainMs: 0, unexpectedCloses: 0, clientErrors: 0,
  };
  const errorSamples: string[] = [];
  let windowMs = 0;
  for (const s of stats) {
    lat.merge(s.latency);
    ack.merge(s.ackLatency);
    windowMs = Math.max(windowMs, s.windowMs);
    for (const k of ['sendsIssued', 'sendsAcked', 'sendsAckedInWindow', 'recvInWindow', 'recvTotal', 'duplicates', 'outOfOrder', 'missing',
      'missingFromPartner', 'pairsIncomplete', 'inflightAtEnd', 'unexpectedCloses', 'clientErrors'] as const) {
      totals[k] += s[k];
    }
    totals.drainMs = Math.max(totals.drainMs, s.drainMs);
    for (const [code, n] of Object.entries(s.sendErrors)) totals.sendErrors[code] = (totals.sendErrors[code] ?? 0) + n;
    errorSamples.push(...s.errorSamples.slice(0, 10));
  }
  const serverMetricsDelta: Record<string, number> = {};
  for (const k of Object.keys(m1)) if (k !== 'parley_nodejs_heap_size_used_bytes') serverMetricsDelta[k] = k === 'parley_connections' ? m1[k] : m1[k] - (m0[k] ?? 0);

  t0 = Date.now();
  await phase('close throughput clients', 30_000, closeGenerators(gens));
  // The server should see every socket go.
  const gone = await phase('server connections back to 0', 20_000, (async () => {
    for (let i = 0; i < 100; i++) {
      const m = await metricsOf(base);
      if ((m.parley_connections ?? 0) === 0) return true;
      await sleep(200);
    }
    return false;
  })());
  if (!gone) log('WARNING: server still reports open connections 20 s after the clients closed');
  log(`throughput clients closed in ${Date.now() - t0} ms`);
  const memAfterLoad = await settledReading(opts, base, serverPid, 'after the load', gcNotes);
  const messages = totals.sendsAcked;

  return {
    users: accounts.length, pairs: pairs.length, generators: g, window: opts.window, seconds: opts.seconds, windowMs: round(windowMs, 0),
    connectMs, warmupMs,
    deliveredPerSec: round(totals.recvInWindow / opts.seconds, 1),
    serverCpuUsPerMessage: round(((cpu.processes.server ?? NaN) / 100 / Math.max(1, totals.recvInWindow / opts.seconds)) * 1e6, 1),
    ackedPerSec: round(totals.sendsAckedInWindow / opts.seconds, 1),
    latencyMs: summarize(lat), sendOkMs: summarize(ack),
    totals, errorSamples: errorSamples.slice(0, 20), cpu, serverRssKiBAfter, serverMetricsDelta,
    serverMemoryKiB: {
      windowStart: { rss: memStart.rssKiB, anon: memStart.anonKiB, file: memStart.fileKiB },
      windowEnd: { rss: memEnd.rssKiB, anon: memEnd.anonKiB, file: memEnd.fileKiB },
    },
    dataDirKiB: dirSizeKiB(dataDir),
    retained: {
      gc: opts.gc,
      gcNotes,
      before: { rss: memBeforeLoad.rssKiB, anon: memBeforeLoad.anonKiB, file: memBeforeLoad.fileKiB, heapUsed: memBeforeLoad.heapUsed, isolates: memBeforeLoad.isolates },
      after: { rss: memAfterLoad.rssKiB, anon: memAfterLoad.anonKiB, file: memAfterLoad.fileKiB, heapUsed: memAfterLoad.heapUsed, isolates: memAfterLoad.isolates },
      anonBytesPerMessage: round(((memAfterLoad.anonKiB - memBeforeLoad.anonKiB) * 1024) / Math.max(1, messages), 0),
      mainHeapBytesPerMessage: round((memAfterLoad.heapUsed - memBeforeLoad.heapUsed) / Math.max(1, messages), 0),
    },
  };
}

interface IdleResult {
  connections: number;
  users: number;
  devicesPerUser: number;
  processes: number;
  sessionsMs: number;
  connectMs: number;
  synced: number;
  failed: number;
  dropped: number;
  rssBeforeKiB: number;
  rssAfterKiB: number;
  anonBeforeKiB: number;
  anonAfterKiB: number;
  kibPerConnection: number;
  anonKibPerConnection: number;
  rssAfterCloseKiB?: number;
  /** V8 heap used of the server's main (gateway) thread, per connection */
  mainHeapBytesPerConnection: number;
  /** V8 heap used per connection, per isolate (after forced GCs; empty with --gc none) */
  isolateHeapBytesPerConnection: Record<string, number>;
  /** how the readings were taken: after a forced GC in every isolate (inspector) or not (none) */
  gc: 'inspector' | 'none';
  gcNotes: string[];
  serverCpuWhileIdle: CpuReport;
  errorSamples: string[];
}

async function idleScenario(opts: Options, base: string, serverPid: number): Promise<IdleResult> {
  const url = base.replace('http', 'ws') + '/v1/ws';
  const n = opts.idle;
  const devices = Math.min(opts.devices, n);
  const nUsers = Math.ceil(n / devices);
  let t0 = Date.now();
  const users = await phase('create idle users', 180_000, createUsers(base, 'idle_', nUsers, opts.httpConcurrency));
  const sessions = (await phase('create idle sessions', 240_000, createSessions(base, users, devices, opts.httpConcurrency))).slice(0, n);
  const sessionsMs = Date.now() - t0;
  log(`created ${nUsers} idle users × ${devices} sessions (${sessions.length}) in ${sessionsMs} ms`);

  await sleep(3000); // let the server settle after the HTTP burst
  const gcNotes: string[] = [];
  const settle = (label: string) => settledReading(opts, base, serverPid, label, gcNotes);
  const before = await settle('before');
  log(`server RSS before idle connections: ${(before.rssKiB / 1024).toFixed(1)} MiB (anon ${(before.anonKiB / 1024).toFixed(1)} MiB)${opts.gc === 'inspector' ? ' after a forced GC' : ''}`);

  const procsCount = Math.max(opts.generators, Math.ceil(n / IDLE_PER_PROCESS_MAX));
  const gens = Array.from({ length: procsCount }, (_, i) => forkGenerator(`idle${i}`));
  t0 = Date.now();
  gens.forEach((gen, i) => {
    // Interleave so every process holds sessions of many users.
    const tokens = sessions.filter((_, k) => k % procsCount === i).map((s) => s.token);
    tell(gen, { type: 'idle-connect', url, tokens, concurrency: 200, timeoutMs: 120_000, pingEveryMs: 20_000 });
  });
  const syncedStats = (await phase(`connect + sync ${n} idle sockets`, 130_000, Promise.all(gens.map((gen) => expect(gen, 'idle-synced'))))).map((m) => m.stats);
  const connectMs = Date.now() - t0;
  const synced = syncedStats.reduce((a, s) => a + s.synced, 0);
  const failed = syncedStats.reduce((a, s) => a + s.failed, 0);
  log(`${synced}/${n} idle sockets synced (${failed} failed) over ${procsCount} processes in ${connectMs} ms`);
  if (synced < n) {
    const samples = syncedStats.flatMap((s) => s.errorSamples.slice(0, 5));
    await fail(`only ${synced} of ${n} idle sockets reached synced; samples: ${samples.join(' | ')}`);
  }

  const procs = new Map<string, number>([['server', serverPid]]);
  gens.forEach((g) => procs.set(`generator ${g.label}`, g.proc.pid!));
  const c0 = snapshot(procs, serverPid);
  await sleep(3000); // settle
  const c1 = snapshot(procs, serverPid);
  const after = await settle('after');
  const m = await metricsOf(base);
  log(`server RSS with ${n} idle connections: ${(after.rssKiB / 1024).toFixed(1)} MiB (anon ${(after.anonKiB / 1024).toFixed(1)} MiB); server reports ${m.parley_connections} connections`);

  await phase('close idle sockets', 30_000, closeGenerators(gens));
  const idleStats: IdleStats[] = [];
  for (const g of gens) {
    const s = g.inbox.find((x) => x.type === 'idle-stats');
    if (s && s.type === 'idle-stats') idleStats.push(s.stats);
  }
  await sleep(2000);
  const afterClose = await settle('after close');
  return {
    connections: n, users: nUsers, devicesPerUser: devices, processes: procsCount, sessionsMs, connectMs,
    synced, failed,
    dropped: idleStats.reduce((a, s) => a + s.dropped, 0),
    rssBeforeKiB: before.rssKiB, rssAfterKiB: after.rssKiB, anonBeforeKiB: before.anonKiB, anonAfterKiB: after.anonKiB,
    kibPerConnection: round((after.rssKiB - before.rssKiB) / n, 2),
    mainHeapBytesPerConnection: round((after.heapUsed - before.heapUsed) / n, 0),
    isolateHeapBytesPerConnection: Object.fromEntries(Object.keys(after.isolates).map((k) => [k, round((after.isolates[k] - (before.isolates[k] ?? 0)) / n, 0)])),
    gc: opts.gc,
    gcNotes,
    anonKibPerConnection: round((after.anonKiB - before.anonKiB) / n, 2),
    rssAfterCloseKiB: afterClose.rssKiB,
    serverCpuWhileIdle: cpuBetween(c0, c1, serverPid),
    errorSamples: [...syncedStats, ...idleStats].flatMap((s) => s.errorSamples.slice(0, 5)).slice(0, 20),
  };
}

// ------------------------------------------------------------------ report

function table(rows: Array<[string, string]>): string {
  const w = Math.max(...rows.map((r) => r[0].length), 6);
  const v = Math.max(...rows.map((r) => r[1].length), 5);
  const line = (a: string, b: string) => `| ${a.padEnd(w)} | ${b.padEnd(v)} |`;
  return [line('metric', 'value'), `|${'-'.repeat(w + 2)}|${'-'.repeat(v + 2)}|`, ...rows.map(([a, b]) => line(a, b))].join('\n');
}

function summaryTable(opts: Options, tp: TpResult | undefined, idle: IdleResult | undefined, machine: { cpus: number; node: string; busyBeforePct: number }): string {
  const rows: Array<[string, string]> = [
    ['config', `durability=${opts.durability} shards=${opts.shards} users=${opts.users} window=${opts.window}/direction generators=${opts.generators}`],
    ['machine', `${machine.cpus} cores (shared by server and load generators), node ${machine.node}; ${machine.busyBeforePct}% busy before the run`],
  ];
  if (tp) {
    const cpuProcs = Object.entries(tp.cpu.processes).map(([k, v]) => `${k} ${v}%`).join(', ');
    rows.push(
      ['msgs delivered/s (end to end)', `${tp.deliveredPerSec}`],
      ['sends acked/s', `${tp.ackedPerSec}`],
      ['server CPU per delivered msg', `${tp.serverCpuUsPerMessage} µs (robust to other load on the machine)`],
      ['send→receive p50 / p90 / p99 / max (ms)', `${tp.latencyMs.p50} / ${tp.latencyMs.p90} / ${tp.latencyMs.p99} / ${tp.latencyMs.max}`],
      ['send→ok p50 / p99 (ms)', `${tp.sendOkMs.p50} / ${tp.sendOkMs.p99}`],
      ['latency samples', `${tp.latencyMs.samples} (${tp.pairs * 2 * tp.window} sends kept in flight)`],
      ['server RSS start → end of window (MiB)', `${(tp.serverMemoryKiB.windowStart.rss / 1024).toFixed(0)} → ${(tp.serverMemoryKiB.windowEnd.rss / 1024).toFixed(0)} (anon ${(tp.serverMemoryKiB.windowStart.anon / 1024).toFixed(0)} → ${(tp.serverMemoryKiB.windowEnd.anon / 1024).toFixed(0)}); data dir ${(tp.dataDirKiB / 1024).toFixed(0)} MiB`],
      ['server memory retained after the load', `anon ${(tp.retained.before.anon / 1024).toFixed(0)} → ${(tp.retained.after.anon / 1024).toFixed(0)} MiB = ${tp.retained.anonBytesPerMessage} B per message sent (main-thread heap ${tp.retained.mainHeapBytesPerMessage} B)${tp.retained.gc === 'inspector' ? ', after forced GC' : ''}`],
      ['duplicates / missing / out of order', `${tp.totals.duplicates} / ${tp.totals.missing} / ${tp.totals.outOfOrder}`],
      ['send errors', Object.keys(tp.totals.sendErrors).length ? JSON.stringify(tp.totals.sendErrors) : '0'],
      ['unexpected closes / client errors', `${tp.totals.unexpectedCloses} / ${tp.totals.clientErrors}`],
      ['CPU during window (100% = 1 core)', cpuProcs],
      ['server threads during window', Object.entries(tp.cpu.serverThreads).map(([k, v]) => `${k} ${v}%`).join(', ')],
      ['machine busy during window', `${tp.cpu.systemBusyPct}% of ${machine.cpus} cores (other processes: ${tp.cpu.otherProcessesPct}% of a core)`],
    );
  }
  if (idle) {
    rows.push(
      ['idle connections synced', `${idle.synced}/${idle.connections} (${idle.users} users × ${idle.devicesPerUser} devices, ${idle.processes} procs, ${(idle.connectMs / 1000).toFixed(1)} s)`],
      ['server RSS before → after (MiB)', `${(idle.rssBeforeKiB / 1024).toFixed(1)} → ${(idle.rssAfterKiB / 1024).toFixed(1)}`],
      ['server RSS per idle connection', `${idle.kibPerConnection} KiB (anon ${idle.anonKibPerConnection} KiB; main-thread JS heap ${idle.mainHeapBytesPerConnection} B)${idle.gc === 'inspector' ? ', readings after forced GC' : ', no forced GC'}`],
      ['server CPU with idle connections', `${idle.serverCpuWhileIdle.processes.server}%`],
    );
  }
  return table(rows);
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const opts = parseOptions();
  const startedAt = new Date();
  const watchdog = setTimeout(() => void fail(`whole run exceeded ${opts.maxMinutes} minutes`), opts.maxMinutes * 60_000);
  watchdog.unref();
  process.once('SIGINT', () => void fail('interrupted (SIGINT)'));
  process.once('SIGTERM', () => void fail('terminated (SIGTERM)'));

  const busyBeforePct = await machineBusy(2000);
  const machine = { cpus: os.cpus().length, node: process.version, cpuModel: os.cpus()[0]?.model ?? '', totalMemGiB: round(os.totalmem() / 2 ** 30, 1), busyBeforePct };
  log(`core-bench: ${JSON.stringify(opts)}; ${machine.cpus} cores shared by the server and the load generators; machine ${busyBeforePct}% busy before the run`);
  if (busyBeforePct > 15) log(`WARNING: the machine is already ${busyBeforePct}% busy (other jobs): the figures will be lower than on a quiet machine`);
  // One server per scenario, each on a fresh data dir: the idle RSS baseline is then not
  // blurred by the garbage of the throughput phase.
  const servers: Array<{ scenario: string; pid: number; rssStartKiB: number; rssEndKiB: number; threads: number; stop: Awaited<ReturnType<typeof stopServer>> }> = [];
  const runOn = async <T>(scenario: string, inspect: boolean, fn: (base: string, pid: number) => Promise<T>): Promise<T> => {
    const srv = await startServer(opts, inspect);
    log(`[${scenario}] server pid ${srv.pid} ready on ${srv.base} (data ${dataDir}${inspect ? ', inspector on 127.0.0.1 for forced GCs' : ''})`);
    const rssStart = procStatus(srv.pid);
    let out: T;
    try {
      out = await fn(srv.base, srv.pid);
    } catch (err) {
      return fail((err as Error).message);
    }
    const end = procStatus(srv.pid);
    const stop = await stopServer();
    log(`[${scenario}] server stopped: ${JSON.stringify(stop)}`);
    if (stop.killed || stop.exitCode !== 0) log(`WARNING: server did not exit cleanly on SIGTERM`);
    removeDataDir();
    servers.push({ scenario, pid: srv.pid, rssStartKiB: rssStart.rssKiB, rssEndKiB: end.rssKiB, threads: end.threads, stop });
    return out;
  };

  const tp: TpResult | undefined = await runOn('throughput', opts.gc === 'inspector', (base, pid) => throughput(opts, base, pid));
  log(`throughput: ${tp.deliveredPerSec} msgs/s delivered, p50 ${tp.latencyMs.p50} ms, p99 ${tp.latencyMs.p99} ms`);
  const idle: IdleResult | undefined = opts.idle > 0 ? await runOn('idle', opts.gc === 'inspector', (base, pid) => idleScenario(opts, base, pid)) : undefined;
  stopping = true;

  const summary = summaryTable(opts, tp, idle, machine);
  process.stdout.write(`\n${summary}\n\n`);
  const problems: string[] = [];
  if (tp) {
    const t = tp.totals;
    if (t.duplicates || t.missing || t.outOfOrder || t.missingFromPartner) problems.push(`delivery: ${t.duplicates} duplicates, ${t.missing} missing, ${t.outOfOrder} out of order, ${t.missingFromPartner} acked-but-not-received`);
    if (Object.keys(t.sendErrors).length) problems.push(`send errors ${JSON.stringify(t.sendErrors)}`);
    if (t.unexpectedCloses || t.clientErrors) problems.push(`${t.unexpectedCloses} unexpected socket closes, ${t.clientErrors} client errors`);
    if (t.inflightAtEnd || t.pairsIncomplete) problems.push(`${t.inflightAtEnd} sends unanswered, ${t.pairsIncomplete} pairs incomplete after the drain`);
  }
  if (idle && (idle.failed || idle.dropped)) problems.push(`idle: ${idle.failed} failed, ${idle.dropped} dropped`);
  if (serverOut.errorLines || serverOut.warnLines) problems.push(`server logged ${serverOut.errorLines} error and ${serverOut.warnLines} warn lines`);
  for (const sv of servers) if (sv.stop.killed || sv.stop.exitCode !== 0) problems.push(`${sv.scenario} server exit on SIGTERM: ${JSON.stringify(sv.stop)}`);
  if (busyBeforePct > 15) problems.push(`machine was ${busyBeforePct}% busy before the run (other jobs)`);
  if (tp && tp.cpu.otherProcessesPct > 20) problems.push(`other processes used ${tp.cpu.otherProcessesPct}% of a core during the measured window`);
  if (problems.length) process.stdout.write(`Suspicious:\n${problems.map((p) => `- ${p}`).join('\n')}\n`);
  const samples = [...(tp?.errorSamples ?? []), ...(idle?.errorSamples ?? []), ...serverOut.samples];
  if (samples.length) process.stdout.write(`Samples:\n${samples.slice(0, 15).map((s) => `  ${s}`).join('\n')}\n`);

  const result = {
    benchmark: 'core-bench',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    note: "server and load generator share this machine's cores",
    config: { ...opts, passwordCost: 10, logLevel: 'warn', host: '127.0.0.1' },
    machine: { ...machine, cpusLength: os.cpus().length, platform: `${os.platform()} ${os.release()}` },
    servers,
    serverLog: { errorLines: serverOut.errorLines, warnLines: serverOut.warnLines, samples: serverOut.samples },
    throughput: tp,
    idle,
    problems,
    summaryMarkdown: summary,
  };
  mkdirSync(resultsDir, { recursive: true });
  const file = path.join(resultsDir, `core-bench-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  log(`wrote ${path.relative(process.cwd(), file)}`);
  clearTimeout(watchdog);
  process.exit(0);
}

main().catch((err: unknown) => void fail((err as Error)?.stack ?? String(err)));
