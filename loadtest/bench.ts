// `npm run bench`: THE benchmark of the Parley server — chat-1to1 against Parley and two
// baselines, same clients, same traffic shape, measured the same way for every server change.
//
//   npm run bench -- [--users 1000] [--seconds 15] [--window 4 | --rate R [--max-inflight 64]]
//       [--generators 2] [--targets parley,socketio,uws] [--parley-client raw|sdk]
//       [--durability fsync|relaxed] [--shards N] [--max-minutes 4] [--http-concurrency 16]
//       [--idle N [--devices 10]] [--gc inspector|none] [--retained] [--cpu-prof] [--unloaded]
//   (or, after a build: node dist/loadtest/bench.js [same flags])
//
// Targets, each started as a child process on a free 127.0.0.1 port with a fresh temp data dir:
//  - parley:   `node dist/src/main.js`, DURABILITY=fsync (--durability), default shards (= cores;
//              --shards), PASSWORD_COST=10;
//  - socketio: loadtest/baselines/socketio-chat-server.ts — what a Node developer would write:
//              Socket.IO + better-sqlite3 (WAL, synchronous=FULL: durable per commit), one event loop;
//  - uws:      loadtest/baselines/uws-echo-server.ts — raw uWebSockets.js relay, no work at all:
//              the ceiling for this traffic shape.
// For each: U users in U/2 pairs, both users of a pair in the same generator process (one clock),
// split over G forked generators (bench/generator.ts; at most 9,000 sockets each). Parley clients
// ack what they receive like the SDK (one coalesced ack per ~50 ms: delivered receipts on). After
// a warm-up message each way, for `seconds`:
//  - closed loop (default): every user keeps `window` sends unanswered to its partner;
//  - open loop (--rate R): R messages/s in total, spread evenly over every sender of every
//    generator, each send scheduled at an absolute time (a slow server does not slow the
//    arrivals: no coordinated omission); latency counts from the scheduled time; a send due while
//    its sender has --max-inflight (64) unanswered is dropped and counted (dropped sends).
// The body carries the send time and a per-sender number; the receiver (same process: same clock)
// computes send→receive latency and counts lost / duplicated / out-of-order messages; after the
// window the benchmark drains (every send answered, every acked message received). The server's
// CPU (utime+stime from /proc/<pid>/stat, all threads) and RSS are sampled over the window, with
// the generators' CPU and the machine's, to tell what limits each target; server CPU µs per
// delivered message = server CPU time ÷ messages delivered.
// --unloaded = --users 2 --window 1 (one pair, one message in flight each way: the latency floor);
// --users 200 --window 1 is the 200×1 case.
// Parley only:
//  - --idle N: afterwards, on a fresh server, N idle authenticated sockets (N/devices users ×
//    --devices sessions each): server RSS per idle connection. --gc inspector (default) runs that
//    server with --inspect=127.0.0.1:0 and forces a GC in every isolate before each reading.
//  - --retained: server memory before the load and after it (clients gone; forced GC with --gc
//    inspector): bytes retained per message.
//  - --push: the server gets a webhook push provider (a local endpoint in this process) and every
//    device registers for push before the load: the cost of push on the send path. The devices
//    are online, so no notification is sent; the per-message work is the registration lookup.
//  - --webhooks: the server gets WEBHOOK_URL (a local receiver in this process answering 200, every
//    event kind): the cost of the webhook outbox on the send path (one more put per message in the
//    thread's commit, and the gateway's dispatcher moving and POSTing them). Prints the events received.
//  - --rate-limits: the Parley server runs with RATE_LIMITS=on and every limit too high to refuse
//    (loadtest/bench/server.ts), so each check runs: the limiter's cost on the send path. Without
//    it the server has RATE_LIMITS=off.
//  - --cpu-prof: the server runs with --cpu-prof (one .cpuprofile per thread under
//    loadtest/results/profiles/<run>/, written at its SIGTERM exit); prints each thread's top 15
//    functions by self time over the measured window (loadtest/profile-summary.ts).
// Prints markdown tables, the Parley/Socket.IO and Parley/uWS ratios, and writes
// loadtest/results/bench-<timestamp>.json. The server and the load generators share this machine's
// cores (2 here): the generators' CPU is CPU the server does not get; the figures say how much.
// Every phase is time-bounded; a failing target is reported with its reason and the server's
// output tail, and the next target still runs; exit 1 if any target failed or lost/duplicated
// messages. All children are killed at the end, on error and on SIGINT/SIGTERM.
import { createServer as createHttpServer } from 'node:http';
import { registerPush } from '../client/index.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createUsers, now } from './k6/helpers.js';
import { Abort, Gen, alive, closeGenerators, killEverythingSync } from './bench/children.js';
import { SOCKETS_PER_GENERATOR, idlePhase, type IdleResult } from './bench/idle.js';
import type { BenchUser, FromGen, ToGen, TargetKind } from './bench/ipc.js';
import { summarizeAll } from './bench/latency.js';
import { ensureBaselineInstall } from './baselines/install.js';
import { parseOptions, type Options } from './bench/options.js';
import { allProcTicks, cmdlineOf, cpuBetween, CLK_TCK, dirSizeKiB, memKiB, round, sleep, snap, threadTicks, waitQuiet, type Snap } from './bench/proc.js';
import { coalescingReport, idleReport, limitedBy, problemsOf, report, type TargetResult } from './bench/report.js';
import { baselineStats, connectionsGone, parleyCounters, repo, SERVER_MAIN, settledReading, startServer, stopServer, type Reading, type Server } from './bench/server.js';
import { profileFiles, renderProfiles, summarizeProfile } from './profile-summary.js';

const here = path.dirname(fileURLToPath(import.meta.url)); // <repo>/dist/loadtest
const resultsDir = path.join(repo, 'loadtest', 'results');
const generatorMain = path.join(here, 'bench', 'generator.js');
const PASSWORD = 'bench-password-1';

function label(kind: TargetKind, opts: Options): string {
  if (kind === 'parley') return `Parley (${opts.durability})${opts.webhooks ? ' + webhooks' : ''}`;
  return kind === 'socketio' ? 'Socket.IO + SQLite (WAL, FULL)' : 'uWS relay (ceiling)';
}

function log(msg: string): void {
  process.stdout.write(`[${new Date().toISOString().slice(11, 23)}] ${msg}\n`);
}

/** Monotonic µs, the clock of the V8 CPU profiles (CLOCK_MONOTONIC). */
const monoUs = () => Number(process.hrtime.bigint() / 1000n);

let currentAbort: Abort | undefined;

interface Run {
  opts: Options;
  deadline: number;
  /** loadtest/results/profiles/<run> */
  profileDir: string;
}

function forkGenerator(label: string, abort: Abort, deadline: number): Gen<ToGen, FromGen> {
  return new Gen<ToGen, FromGen>(label, generatorMain, abort, { BENCH_GENERATOR_MAX_MS: String(Math.max(60_000, deadline - Date.now())) });
}

/** --push: a local webhook endpoint for the server's push provider (it answers every call 204). */
async function startPushEndpoint(): Promise<void> {
  const endpoint = createHttpServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(204).end());
  });
  await new Promise<void>((r) => endpoint.listen(0, '127.0.0.1', r));
  endpoint.unref();
  process.env.PUSH_WEBHOOK_URL = `http://127.0.0.1:${(endpoint.address() as { port: number }).port}/push`;
  process.env.PUSH_WEBHOOK_SECRET = 'bench-push-webhook-secret-0123456789abcdef';
}

/** --webhooks: a local event-webhook receiver (answers 200; counts the events it got). */
let webhookEventsReceived = 0;
async function startWebhookReceiver(): Promise<void> {
  const receiver = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        webhookEventsReceived += (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { events: unknown[] }).events.length;
      } catch { /* counted as nothing; the server's deliveries metric tells */ }
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  receiver.unref();
  process.env.WEBHOOK_URL = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/events`;
  process.env.WEBHOOK_SECRET = 'bench-event-webhook-secret-0123456789abcdef';
}

/** Parley: register + log in every user (one device each). Baselines: ids only. */
async function makeUsers(kind: TargetKind, server: Server, opts: Options): Promise<BenchUser[]> {
  if (kind !== 'parley') return Array.from({ length: opts.users }, (_, i) => ({ user: `bench_${i}`, name: `bench_${i}` }));
  const users = await createUsers(server.base, { count: opts.users, prefix: 'bench_', exact: true, concurrency: opts.httpConcurrency, password: PASSWORD });
  return users.map((u) => ({ user: u.user, name: u.username, token: u.token }));
}

// ------------------------------------------------------------------ one target

async function runTarget(kind: TargetKind, run: Run): Promise<TargetResult> {
  const { opts } = run;
  const abort = new Abort();
  currentAbort = abort;
  const result: TargetResult = { target: kind, label: label(kind, opts), ok: false };
  const parley = kind === 'parley';
  let server: Server | undefined;
  let gens: Array<Gen<ToGen, FromGen>> = [];
  let profileWindow: { fromUs: number; toUs: number } | undefined;
  try {
    log(`[${kind}] starting ${path.relative(repo, SERVER_MAIN[kind])}`);
    if (parley && opts.push) await startPushEndpoint();
    if (parley && opts.webhooks) await startWebhookReceiver();
    server = await startServer(kind, { durability: opts.durability, shards: opts.shards, inspect: parley && opts.retained && opts.gc === 'inspector', cpuProfDir: parley && opts.cpuProf ? run.profileDir : undefined, rateLimits: opts.rateLimits }, abort);
    result.serverPid = server.pid;
    log(`[${kind}] server pid ${server.pid} ready on ${server.base} (data ${server.dataDir})`);

    let t0 = Date.now();
    const users = await abort.phase(`${kind}: create ${opts.users} users`, Math.max(90_000, opts.users * 30), makeUsers(kind, server, opts));
    result.usersMs = Date.now() - t0;
    if (parley) log(`[${kind}] registered + logged in ${users.length} users in ${result.usersMs} ms`);
    if (parley && opts.push) {
      for (const u of users) await registerPush(server.base, u.token!, { provider: 'webhook', token: `bench-${u.user}` });
      log(`[${kind}] registered ${users.length} devices for push`);
    }

    const pairs: Array<[BenchUser, BenchUser]> = [];
    for (let i = 0; i < users.length; i += 2) pairs.push([users[i]!, users[i + 1]!]);
    const g = Math.min(pairs.length, Math.max(opts.generators, Math.ceil(opts.users / SOCKETS_PER_GENERATOR)));
    gens = Array.from({ length: g }, (_, i) => forkGenerator(`g${i}`, abort, run.deadline));
    const url = parley ? `${server.base.replace('http', 'ws')}/v1/ws` : kind === 'socketio' ? server.base : server.base.replace('http', 'ws');
    const share = gens.map((_, i) => pairs.filter((_, k) => k % g === i));
    t0 = Date.now();
    gens.forEach((gen, i) => gen.tell({ type: 'connect', target: kind, parleyClient: opts.parleyClient, url, pairs: share[i]!, concurrency: 64, timeoutMs: 50_000 }));
    await abort.phase(`${kind}: connect ${users.length} clients`, 60_000, Promise.all(gens.map((gen) => gen.expect('connected'))));
    result.connectMs = Date.now() - t0;
    log(`[${kind}] ${users.length} clients connected over ${g} generator processes in ${result.connectMs} ms`);

    t0 = Date.now();
    gens.forEach((gen) => gen.tell({ type: 'warmup', timeoutMs: 25_000 }));
    await abort.phase(`${kind}: warm-up (one message each way per pair)`, 30_000, Promise.all(gens.map((gen) => gen.expect('warm'))));
    result.warmupMs = Date.now() - t0;

    const gcNotes: string[] = [];
    let before: Reading | undefined;
    if (parley && opts.retained) before = await settledReading(server, abort, 'before the load', gcNotes);
    result.quietBeforePct = await abort.phase(`${kind}: wait for a quiet machine`, 20_000, waitQuiet(12_000, log));
    if (result.quietBeforePct > 15) log(`[${kind}] WARNING: machine still ${result.quietBeforePct}% busy with other jobs; measuring anyway`);
    const rssBefore = memKiB(server.pid).rss;
    const loadText = opts.rate === undefined
      ? `${opts.window} sends in flight per user (${opts.users * opts.window} in total)`
      : `open loop at ${opts.rate} msgs/s in total (${round(opts.rate / opts.users, 2)} per sender, at most ${opts.maxInflight} in flight each)`;
    log(`[${kind}] warm-up done in ${result.warmupMs} ms; measuring for ${opts.seconds} s, ${loadText}`);

    // The servers' own counters, read before and after the window; under load a saturated event
    // loop answers late, hence the generous timeout.
    const counters0 = parley ? await parleyCounters(server).catch(() => undefined) : await baselineStats(server);
    const genPids = gens.map((gen) => gen.proc.pid!);
    const lead = 200; // every generator gets the go before the common start
    const startAt = now() + lead;
    const startMono = monoUs() + lead * 1000;
    gens.forEach((gen, i) =>
      gen.tell({
        type: 'go',
        startAt,
        seconds: opts.seconds,
        load: opts.rate === undefined
          ? { kind: 'closed', window: opts.window }
          : { kind: 'open', rate: (opts.rate * share[i]!.length * 2) / opts.users, phase: i / g, maxInflight: opts.maxInflight },
        drainTimeoutMs: 20_000,
        requestTimeoutMs: 30_000,
      }),
    );
    profileWindow = { fromUs: startMono, toUs: startMono + opts.seconds * 1e6 };
    const statsP = Promise.all(gens.map((gen) => gen.expect('stats')));
    statsP.catch(() => undefined);
    // Sample CPU and RSS over the window, skipping its first and last half second.
    const goAt = performance.now() + lead;
    const endAt = goAt + opts.seconds * 1000 - 500;
    await abort.phase(`${kind}: measure`, opts.seconds * 1000 + 5000, sleep(lead + 500));
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
    const first = snaps[0]!;
    const last = snaps[snaps.length - 1]!;
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
      const c = cpuBetween(snaps[i]!, s);
      return { t: round((s.at - goAt) / 1000, 1), serverPct: c.serverPct, generatorsPct: round(c.generatorsPct.reduce((a, b) => a + b, 0)), rssMiB: round(s.rssKiB / 1024) };
    });
    result.rssMiB = { beforeLoad: round(rssBefore / 1024), endOfWindow: round(last.rssKiB / 1024), peak: round(Math.max(...snaps.map((s) => s.rssKiB)) / 1024) };
    await sleep(Math.max(0, goAt + opts.seconds * 1000 - performance.now()));
    const counters1 = parley ? await parleyCounters(server).catch(() => undefined) : await baselineStats(server);
    if (!counters0 || !counters1) log(`[${kind}] WARNING: the server's counters did not answer; none for this target`);

    const stats = (await abort.phase(`${kind}: drain (every send answered, every acked message received)`, 40_000, statsP)).map((m) => m.stats);
    const totals: NonNullable<TargetResult['totals']> = {
      clients: 0, pairs: 0, sendsOffered: 0, sendsIssued: 0, sendsDropped: 0, sendsAcked: 0, sendsAckedInWindow: 0, sendErrors: {}, recvInWindow: 0, recvTotal: 0,
      duplicates: 0, outOfOrder: 0, lost: 0, receivedUnacked: 0, strayMessages: 0, pairsIncomplete: 0, inflightAtEnd: 0,
      unexpectedCloses: 0, clientErrors: 0, drainMs: 0, windowMs: 0,
    };
    const samples: string[] = [];
    const per100ms: number[] = [];
    for (const s of stats) {
      s.recvPer100ms.forEach((n, i) => (per100ms[i] = (per100ms[i] ?? 0) + n));
      for (const k of ['clients', 'pairs', 'sendsOffered', 'sendsIssued', 'sendsDropped', 'sendsAcked', 'sendsAckedInWindow', 'recvInWindow', 'recvTotal', 'duplicates',
        'outOfOrder', 'lost', 'receivedUnacked', 'strayMessages', 'pairsIncomplete', 'inflightAtEnd', 'unexpectedCloses', 'clientErrors'] as const) {
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
    if (opts.rate !== undefined) {
      result.offeredPerSec = round(totals.sendsOffered / opts.seconds, 0);
      result.scheduleLagMs = summarizeAll(stats.map((s) => s.scheduleLag));
    }
    // Messages and CPU over the same interval: the sampled one (100 ms resolution).
    const b0 = Math.max(0, Math.round((first.at - goAt) / 100));
    const b1 = Math.max(b0 + 1, Math.round((last.at - goAt) / 100));
    const sampled = per100ms.slice(b0, b1).reduce((a, n) => a + (n ?? 0), 0);
    result.deliveredPerSecSampled = round(sampled / ((b1 - b0) / 10), 0);
    result.serverCpuUsPerMessage = round((result.cpu.serverPct / 100 / Math.max(1e-9, result.deliveredPerSecSampled)) * 1e6, 1);
    result.latencyMs = summarizeAll(stats.map((s) => s.latency));
    result.ackLatencyMs = summarizeAll(stats.map((s) => s.ackLatency));
    if (counters0 && counters1) {
      const gauges = new Set(['connections', 'rss', 'heapUsed', 'uptimeMs', 'loopActiveMs', 'loopIdleMs', 'parley_connections', 'parley_nodejs_heap_size_used_bytes']);
      result.serverCounters = Object.fromEntries(Object.keys(counters1).map((k) => [k, gauges.has(k) ? counters1[k]! : counters1[k]! - (counters0[k] ?? 0)]));
      const c = result.serverCounters;
      if (parley && c.storageTransactions !== undefined && c.shardBatchesIn !== undefined) {
        const msgs = Math.max(1, totals.recvInWindow);
        result.coalescing = {
          shardBatchesPerSec: round(c.shardBatchesIn / opts.seconds, 0),
          envelopesPerShardBatch: round(c.shardEnvelopesIn! / Math.max(1, c.shardBatchesIn), 1),
          shardBatchesPerMessage: round(c.shardBatchesIn / msgs, 2),
          transactionsPerSec: round(c.storageTransactions / opts.seconds, 0),
          transactionsPerMessage: round(c.storageTransactions / msgs, 3),
        };
      }
      // Both readings are the server's own clock: the share of its wall time spent inside commits.
      if (kind === 'socketio') {
        const wall = Math.max(1, counters1.uptimeMs! - counters0.uptimeMs!);
        result.commitSharePct = round(((counters1.commitMs! - counters0.commitMs!) / wall) * 100);
        const active = counters1.loopActiveMs! - counters0.loopActiveMs!;
        const idle = counters1.loopIdleMs! - counters0.loopIdleMs!;
        result.eventLoopUtilizationPct = round((active / Math.max(1, active + idle)) * 100);
      }
    }
    if (parley) result.dataDirKiB = dirSizeKiB(server.dataDir);
    result.limitedBy = limitedBy(kind, result, opts);
    log(`[${kind}] ${result.deliveredPerSec} msgs/s delivered${opts.rate !== undefined ? ` of ${result.offeredPerSec} offered (${totals.sendsDropped} dropped)` : ''}, p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms; server CPU ${result.cpu.serverPct}% = ${result.serverCpuUsPerMessage} µs per message, generators ${result.cpu.generatorsPct.join('% + ')}%; lost ${totals.lost}, duplicates ${totals.duplicates}`);

    await abort.phase(`${kind}: close clients`, 15_000, closeGenerators(gens, { type: 'close', timeoutMs: 8000 }));
    gens = [];
    if (parley) {
      result.connectionsGone = await abort.phase(`${kind}: server connections back to 0`, 25_000, connectionsGone(server, 20_000));
      if (before) {
        const after = await settledReading(server, abort, 'after the load', gcNotes);
        const msgs = Math.max(1, totals.sendsAcked);
        result.retained = {
          gc: opts.gc,
          gcNotes,
          beforeKiB: { rss: before.rss, anon: before.anon, heapUsed: before.heapUsed },
          afterKiB: { rss: after.rss, anon: after.anon, heapUsed: after.heapUsed },
          anonBytesPerMessage: round(((after.anon - before.anon) * 1024) / msgs, 0),
          mainHeapBytesPerMessage: round((after.heapUsed - before.heapUsed) / msgs, 0),
        };
        log(`[${kind}] retained after the load: anon ${(before.anon / 1024).toFixed(0)} → ${(after.anon / 1024).toFixed(0)} MiB = ${result.retained.anonBytesPerMessage} B per message sent (main-thread heap ${result.retained.mainHeapBytesPerMessage} B)`);
      }
    }
    result.ok = true;
  } catch (err) {
    result.ok = false;
    result.error = (err as Error).message;
    log(`[${kind}] FAILED: ${result.error}`);
  } finally {
    for (const g of gens) g.kill();
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
    if (parley && opts.cpuProf && profileWindow) {
      try {
        const files = profileFiles([run.profileDir]);
        result.profiles = { dir: path.relative(process.cwd(), run.profileDir), window: profileWindow, threads: files.map((file) => summarizeProfile(file, { top: 15, ...profileWindow })) };
        if (files.length === 0) log(`[${kind}] WARNING: --cpu-prof, but the server wrote no profile into ${run.profileDir}`);
      } catch (err) {
        log(`[${kind}] WARNING: could not read the CPU profiles: ${(err as Error).message}`);
      }
    }
    currentAbort = undefined;
  }
  return result;
}

/** --idle: N idle sockets on a fresh Parley server of their own. */
async function runIdle(run: Run): Promise<{ idle?: IdleResult; error?: string }> {
  const { opts } = run;
  const abort = new Abort();
  currentAbort = abort;
  let server: Server | undefined;
  try {
    server = await startServer('parley', { durability: opts.durability, shards: opts.shards, inspect: opts.gc === 'inspector', rateLimits: opts.rateLimits }, abort);
    log(`[idle] server pid ${server.pid} ready on ${server.base}${server.inspectorUrl ? ' (inspector on 127.0.0.1 for forced GCs)' : ''}`);
    const idle = await idlePhase(opts, server, abort, (l) => forkGenerator(l, abort, run.deadline), log);
    return { idle };
  } catch (err) {
    log(`[idle] FAILED: ${(err as Error).message}`);
    if (server) process.stderr.write(`--- idle server output (tail) ---\n${server.out.tail.slice(-3000)}\n--- end ---\n`);
    return { error: (err as Error).message };
  } finally {
    if (server) {
      const stop = await stopServer(server);
      log(`[idle] server stopped: ${JSON.stringify(stop)}`);
    }
    currentAbort = undefined;
  }
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const opts = parseOptions();
  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  // The socketio target's packages are an install of their own (baselines/install.ts), made once,
  // before --max-minutes starts counting; if it fails, that target fails and the others run.
  const baselineProblem = opts.targets.includes('socketio') ? ensureBaselineInstall(log) : undefined;
  const run: Run = { opts, deadline: Date.now() + opts.maxMinutes * 60_000, profileDir: path.join(resultsDir, 'profiles', `bench-${stamp}`) };
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
    if (Date.now() > run.deadline - 20_000) {
      results.push({ target: kind, label: label(kind, opts), ok: false, error: 'skipped: not enough time left before --max-minutes' });
      continue;
    }
    if (kind === 'socketio' && baselineProblem) {
      log(`[socketio] FAILED: ${baselineProblem}`);
      results.push({ target: kind, label: label(kind, opts), ok: false, error: `the baseline's install (loadtest/baselines): ${baselineProblem}` });
      continue;
    }
    results.push(await runTarget(kind, run));
    if (kind === 'parley' && opts.webhooks) log(`[parley] webhook events received: ${webhookEventsReceived}`);
  }
  const idleRun = opts.idle > 0 && !finishing ? await runIdle(run) : undefined;
  if (finishing) return;

  const rep = report(results, opts);
  const load = opts.rate === undefined
    ? `closed loop, ${opts.window} sends in flight per user`
    : `open loop, ${opts.rate} msgs/s offered in total (${round(opts.rate / opts.users, 2)} per sender, at most ${opts.maxInflight} in flight per sender)`;
  const config = `${opts.users} users (${opts.users / 2} pairs) over ${opts.generators} generator processes, ${load}, ${opts.seconds} s per target; Parley DURABILITY=${opts.durability}, shards=${opts.shards ?? 'default (cores)'}, client ${opts.parleyClient === 'raw' ? 'raw ws + wire codec' : 'SDK'}, receipts on (one coalesced ack per ~50 ms)`;
  const meaning = opts.rate === undefined
    ? `Closed loop (${opts.users * opts.window} sends in flight): at saturation latency ≈ in-flight ÷ throughput, i.e. mostly queueing.`
    : 'Open loop: latency counts from each send\'s scheduled time (coordinated omission corrected); dropped sends = due while the sender had its cap unanswered.';
  const parts = [
    '',
    `## chat-1to1 benchmark, ${startedAt.toISOString()}`,
    '',
    config,
    `Note: ${shared}. msgs/s = partner messages received end to end per second of the window; latency = send (stamped in the body) → receive by the partner, same clock; server CPU = utime+stime of the server process (100% = one core), µs/msg = that CPU time per delivered message, both over the window without its first and last ~0.5 s ("msgs/s sampled"); RSS = VmRSS at the end of the window. ${meaning}`,
    '',
    rep.main,
    '',
    ...(rep.ratioText ? [rep.ratioText, ''] : []),
    rep.detail,
    '',
  ];
  const hops = coalescingReport(results);
  if (hops) parts.push(hops, '');
  if (idleRun?.idle) parts.push(idleReport(idleRun.idle), '');
  const retained = results.find((r) => r.retained)?.retained;
  if (retained) parts.push(`Parley memory retained after the load: anon ${(retained.beforeKiB.anon / 1024).toFixed(0)} → ${(retained.afterKiB.anon / 1024).toFixed(0)} MiB = ${retained.anonBytesPerMessage} B per message sent (main-thread heap ${retained.mainHeapBytesPerMessage} B)${retained.gc === 'inspector' ? ', after forced GCs' : ''}`, '');
  for (const r of results) {
    if (!r.profiles) continue;
    parts.push(`## CPU profile of the ${r.label} server over the measured window (${r.profiles.dir})`, '', renderProfiles(r.profiles.threads));
  }
  const out = parts.join('\n');
  process.stdout.write(out + '\n');

  const problems = problemsOf(results, idleRun?.idle, idleRun?.error, opts);
  if (problems.length) process.stdout.write(`Suspicious:\n${problems.map((x) => `- ${x}`).join('\n')}\n\n`);

  const file = path.join(resultsDir, `bench-${stamp}.json`);
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(
    file,
    JSON.stringify(
      {
        benchmark: 'chat-1to1 bench (Parley vs Socket.IO+SQLite vs uWS relay)',
        startedAt: startedAt.toISOString(),
        finishedAt: new Date().toISOString(),
        note: shared,
        config: { ...opts, mode: opts.rate === undefined ? 'closed' : 'open', passwordCost: 10, host: '127.0.0.1', socketioSqlite: 'WAL, synchronous=FULL, one transaction per message' },
        machine,
        results,
        idle: idleRun?.idle,
        idleError: idleRun?.error,
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
  const failed = results.some((r) => !r.ok || (r.totals && (r.totals.lost || r.totals.duplicates))) || idleRun?.error !== undefined;
  process.exit(failed ? 1 : 0);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error)?.stack ?? String(err)}\n`);
  killEverythingSync();
  process.exit(1);
});
