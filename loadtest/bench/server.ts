// The servers a benchmark measures: Parley (`node dist/src/main.js`) or a baseline, each a child
// process on a free 127.0.0.1 port (PORT=0; the port comes from its JSON "ready" line) with a
// fresh temp data dir; its log is scanned for warnings and errors. Parley can run with an inspector
// on 127.0.0.1 (forced GCs before memory readings) and with --cpu-prof.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { collectGarbageEverywhere } from '../inspector-gc.js';
import { serverMetrics } from '../k6/helpers.js';
import { Abort, removeDir, stopProcess, track, trackDir, type StopResult } from './children.js';
import type { TargetKind } from './ipc.js';
import { memKiB, sleep, type Mem } from './proc.js';

const here = path.dirname(fileURLToPath(import.meta.url)); // <repo>/dist/loadtest/bench
export const repo = path.resolve(here, '..', '..', '..');
export const SERVER_MAIN: Record<TargetKind, string> = {
  parley: path.join(repo, 'dist', 'src', 'main.js'),
  socketio: path.join(repo, 'dist', 'loadtest', 'baselines', 'socketio-chat-server.js'),
  uws: path.join(repo, 'dist', 'loadtest', 'baselines', 'uws-echo-server.js'),
};

export interface ServerOptions {
  durability: 'fsync' | 'relaxed';
  shards?: number;
  /** Parley: --inspect=127.0.0.1:0, for forced GCs in every isolate */
  inspect?: boolean;
  /** Parley: --cpu-prof into this directory (one .cpuprofile per thread, written at exit) */
  cpuProfDir?: string;
  /** Parley: RATE_LIMITS=on with every limit too high to refuse (the checks' cost); default off */
  rateLimits?: boolean;
  /** an existing data directory (e.g. of an earlier start) instead of a fresh temp one */
  dataDir?: string;
  /** Parley: more environment, set last (cluster-connections.ts: JWT sign-in, cluster settings) */
  env?: NodeJS.ProcessEnv;
}

export interface Server {
  kind: TargetKind;
  proc: ChildProcess;
  pid: number;
  base: string;
  port: number;
  dataDir: string;
  inspectorUrl?: string;
  out: { tail: string; warnLines: number; errorLines: number; stderrLines: number; samples: string[] };
}

/** Lines Node itself prints on stderr for --inspect: not the server's complaints. */
const NODE_NOISE = /^(Debugger listening on |Debugger ending on |For help, see: https:\/\/nodejs\.org|Debugger attached\.|Waiting for the debugger to disconnect)/;

/** --rate-limits: every check runs (four windows each), none refuses: what the limiter adds. */
const HIGH = '1000000/s,1000000/m,1000000/h,1000000/d';
const BENCH_RATE_LIMITS: NodeJS.ProcessEnv = {
  RATE_LIMITS: 'on', RL_HTTP_PER_IP: HIGH, RL_REGISTER_PER_IP: HIGH, RL_LOGIN_PER_IP: HIGH, RL_LOGIN_FAILURES_PER_USERNAME: HIGH,
  RL_WS_CONNECTS_PER_IP: HIGH, RL_WS_PER_IP: '1000000', RL_SOCKET_COMMANDS: '1000000', RL_SOCKET_SENDS: '1000000', RL_SENDS_PER_USER: HIGH, RL_COSTLY_PER_USER: HIGH,
};

export async function startServer(kind: TargetKind, opts: ServerOptions, abort: Abort): Promise<Server> {
  const dataDir = trackDir(opts.dataDir ?? mkdtempSync(path.join(os.tmpdir(), `bench-${kind}-`)));
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir };
  const execArgv: string[] = [];
  if (kind === 'parley') {
    Object.assign(env, { DURABILITY: opts.durability, LOG_LEVEL: 'info', PASSWORD_COST: '10', RATE_LIMITS: 'off' });
    if (opts.rateLimits) Object.assign(env, BENCH_RATE_LIMITS);
    if (opts.shards !== undefined) env.SHARDS = String(opts.shards);
    else delete env.SHARDS; // the server's default: one shard per core
    if (opts.inspect) execArgv.push('--inspect=127.0.0.1:0');
    if (opts.cpuProfDir) {
      mkdirSync(opts.cpuProfDir, { recursive: true });
      execArgv.push('--cpu-prof', '--cpu-prof-dir', opts.cpuProfDir);
    }
    Object.assign(env, opts.env);
  } else {
    env.BENCH_EXIT_ON_STDIN_END = '1';
  }
  const proc = track(spawn(process.execPath, [...execArgv, SERVER_MAIN[kind]], { env, stdio: ['pipe', 'pipe', 'pipe'] }));
  const out: Server['out'] = { tail: '', warnLines: 0, errorLines: 0, stderrLines: 0, samples: [] };
  const server: Server = { kind, proc, pid: proc.pid!, base: '', port: 0, dataDir, out };
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
      const dbg = /^Debugger listening on (ws:\/\/\S+)/.exec(line);
      if (dbg) server.inspectorUrl ??= dbg[1];
      if (NODE_NOISE.test(line)) continue;
      out.stderrLines++;
      if (out.samples.length < 10) out.samples.push(`stderr: ${line.slice(0, 400)}`);
    }
  });
  proc.stdin!.on('error', () => undefined);
  proc.once('exit', (code, signal) => abort.fire(new Error(`${kind} server exited unexpectedly: code ${code} signal ${signal}`)));

  await abort.phase(`${kind} server start (ready line on stdout)`, 20_000, new Promise<void>((res) => (readyPort ? res() : onReady.push(res))));
  server.port = readyPort;
  server.base = `http://127.0.0.1:${readyPort}`;
  await abort.phase(`${kind} server GET /readyz = 200`, 10_000, (async () => {
    for (;;) {
      try {
        const res = await fetch(`${server.base}/readyz`, { signal: AbortSignal.timeout(2000) });
        await res.text();
        if (res.status === 200) return;
      } catch {
        // not yet
      }
      await sleep(100);
    }
  })());
  if (opts.inspect && kind === 'parley' && !server.inspectorUrl) throw new Error('server started with --inspect but printed no "Debugger listening on ws://..." line');
  return server;
}

/** SIGTERM (a clean exit writes the CPU profiles), SIGKILL after 15 s; removes the data dir. */
export async function stopServer(s: Server): Promise<StopResult> {
  s.proc.removeAllListeners('exit');
  const r = await stopProcess(s.proc, 15_000);
  removeDir(s.dataDir);
  return r;
}

/** Counters the baselines expose on GET /stats (their own clock). */
export async function baselineStats(s: Server): Promise<Record<string, number> | undefined> {
  try {
    const res = await fetch(`${s.base}/stats`, { signal: AbortSignal.timeout(10_000) });
    return (await res.json()) as Record<string, number>;
  } catch {
    return undefined;
  }
}

const PARLEY_COUNTERS = ['parley_connections', 'parley_frames_in_total', 'parley_frames_out_total', 'parley_slow_consumer_pauses_total', 'parley_nodejs_heap_size_used_bytes'];

/**
 * A few of Parley's /metrics (connections, frames, slow-consumer pauses, main-thread heap), the
 * LMDB write transactions, and the batches and envelopes the shards took in (summed over shards).
 */
export async function parleyCounters(s: Server): Promise<Record<string, number>> {
  const m = await serverMetrics(s.base, 10_000);
  const counters = Object.fromEntries(PARLEY_COUNTERS.filter((k) => k in m).map((k) => [k, m[k]!]));
  if ('parley_storage_transactions_total' in m) counters.storageTransactions = m.parley_storage_transactions_total!;
  const intoShards = (name: string) => Object.entries(m)
    .filter(([k]) => k.startsWith(`${name}{`) && k.includes('direction="in"') && !k.includes('thread="gateway"'))
    .reduce((sum, [, v]) => sum + v, 0);
  counters.shardBatchesIn = intoShards('parley_transport_batches_total');
  counters.shardEnvelopesIn = intoShards('parley_transport_envelopes_total');
  return counters;
}

export interface Reading extends Mem {
  /** V8 heap used of the server's main (gateway) thread, bytes */
  heapUsed: number;
  /** V8 heap used per isolate after the forced GC (empty without an inspector) */
  isolates: Record<string, number>;
}

/**
 * A memory reading of a Parley server: with an inspector, first a forced GC in every isolate;
 * then wait until RSS stops moving (≤ 0.5 % over 1 s, at most 10 s).
 */
export async function settledReading(s: Server, abort: Abort, label: string, notes: string[]): Promise<Reading> {
  let isolates: Record<string, number> = {};
  if (s.inspectorUrl) {
    const gc = await abort.phase(`forced GC in every server isolate (${label})`, 30_000, collectGarbageEverywhere(s.inspectorUrl));
    notes.push(`${label}: ${gc.collected} isolates collected${gc.skipped.length ? `, skipped (no answer in 2 s): ${gc.skipped.join(', ')}` : ''}`);
    isolates = gc.heapUsed;
  }
  let prev = memKiB(s.pid).rss;
  for (let i = 0; i < 10; i++) {
    await sleep(1000);
    const cur = memKiB(s.pid).rss;
    if (Math.abs(cur - prev) <= prev * 0.005) break;
    prev = cur;
  }
  const heapUsed = (await parleyCounters(s).catch(() => ({}) as Record<string, number>)).parley_nodejs_heap_size_used_bytes ?? NaN;
  return { ...memKiB(s.pid), heapUsed, isolates };
}

/** Polls /metrics until the server counts no connections (bounded); returns whether it got there. */
export async function connectionsGone(s: Server, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const m = await parleyCounters(s).catch(() => undefined);
    if (m && (m.parley_connections ?? 0) === 0) return true;
    await sleep(200);
  }
  return false;
}
