// What `npm run bench` found, as markdown: the main table, the ratios between targets, the detail
// table (what limited each target), the idle phase, and the list of suspicious findings.
import os from 'node:os';
import type { ThreadProfile } from '../profile-summary.js';
import type { StopResult } from './children.js';
import type { IdleResult } from './idle.js';
import type { GenStats, TargetKind } from './ipc.js';
import type { Latency } from './latency.js';
import type { Options } from './options.js';
import { round, type CpuUse } from './proc.js';

export interface TargetResult {
  target: TargetKind;
  label: string;
  ok: boolean;
  error?: string;
  serverPid?: number;
  serverStop?: StopResult;
  usersMs?: number;
  connectMs?: number;
  warmupMs?: number;
  quietBeforePct?: number;
  deliveredPerSec?: number;
  /** partner messages received per second over the interval the CPU was sampled in (the window without its first and last ~0.5 s) */
  deliveredPerSecSampled?: number;
  ackedPerSec?: number;
  /** open loop: sends due per second (issued + dropped) */
  offeredPerSec?: number;
  latencyMs?: Latency;
  ackLatencyMs?: Latency;
  /** open loop: issue time − scheduled time */
  scheduleLagMs?: Latency;
  cpu?: CpuUse;
  /** server CPU time (all threads) per partner message delivered, µs, both over the sampled interval */
  serverCpuUsPerMessage?: number;
  /** per second of the window: server CPU %, generators CPU % (sum), server RSS MiB */
  timeline?: Array<{ t: number; serverPct: number; generatorsPct: number; rssMiB: number }>;
  rssMiB?: { beforeLoad: number; endOfWindow: number; peak: number };
  /** RSS split at the end of the window: anonymous (heaps) vs file-backed/shared (e.g. mapped LMDB pages) */
  memoryMiB?: { anonEndOfWindow: number; fileEndOfWindow: number };
  /** busiest threads of the server over the window, percent of one core */
  serverThreads?: Record<string, number>;
  /** processes other than the server and this benchmark that used CPU during the window (kernel threads included) */
  otherProcesses?: Array<{ pid: number; comm: string; pct: number; cmdline: string }>;
  totals?: Omit<GenStats, 'latency' | 'ackLatency' | 'scheduleLag' | 'errorSamples' | 'recvPer100ms'>;
  /** baselines: their GET /stats over the window; Parley: /metrics counters over the window */
  serverCounters?: Record<string, number>;
  /**
   * Parley over the window: batches the shards took in and LMDB write transactions, per second and
   * per delivered message, and envelopes per batch (how much each thread hop and commit carries).
   */
  coalescing?: { shardBatchesPerSec: number; envelopesPerShardBatch: number; shardBatchesPerMessage: number; transactionsPerSec: number; transactionsPerMessage: number };
  /** Parley: the server counted no connections within 20 s of the clients closing */
  connectionsGone?: boolean;
  /** Parley: allocated size of the data directory after the window */
  dataDirKiB?: number;
  /** Parley with --retained: memory before the load and after it (clients gone) */
  retained?: {
    gc: 'inspector' | 'none';
    gcNotes: string[];
    beforeKiB: { rss: number; anon: number; heapUsed: number };
    afterKiB: { rss: number; anon: number; heapUsed: number };
    anonBytesPerMessage: number;
    mainHeapBytesPerMessage: number;
  };
  /** Parley with --cpu-prof: where the profiles are and what they say about the window */
  profiles?: { dir: string; window: { fromUs: number; toUs: number }; threads: ThreadProfile[] };
  /** socketio: share of the window the server's single thread spent inside SQLite commits */
  commitSharePct?: number;
  /** socketio: event-loop utilization over the window (a synchronous fsync counts as busy) */
  eventLoopUtilizationPct?: number;
  limitedBy?: string;
  serverLog?: { warnLines: number; errorLines: number; stderrLines: number; samples: string[] };
  errorSamples?: string[];
  outputTail?: string;
}

/** What held this target back, from the CPU samples (100% = one core). */
export function limitedBy(kind: TargetKind, r: TargetResult, opts: Options): string {
  const c = r.cpu!;
  const cores = os.cpus().length;
  const gens = c.generatorsPct.reduce((a, b) => a + b, 0);
  const parts: string[] = [];
  const dropped = r.totals?.sendsDropped ?? 0;
  if (opts.rate !== undefined && dropped === 0 && c.machineBusyPct < 90) {
    parts.push(`keeps up with the offered ${opts.rate} msgs/s (machine ${c.machineBusyPct}% busy)`);
  } else if (c.machineBusyPct >= 90) {
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
  } else if (opts.rate !== undefined) {
    parts.push(`not CPU-bound (machine ${c.machineBusyPct}% busy), yet ${dropped} sends were dropped at ${opts.maxInflight} in flight per sender: latency × per-sender rate exceeds the cap`);
  } else {
    parts.push(`not CPU-bound (machine ${c.machineBusyPct}% busy): ${opts.users * opts.window} sends in flight ÷ latency bounds the rate`);
  }
  if (kind === 'parley' && r.serverThreads) {
    parts.push(`busiest server threads: ${Object.entries(r.serverThreads).slice(0, 4).map(([k, v]) => `${k} ${v}%`).join(', ')}`);
  }
  if (kind === 'socketio' && r.commitSharePct !== undefined) parts.push(`${r.commitSharePct}% of the window inside SQLite commits (one fsync per message, on the event loop${r.eventLoopUtilizationPct !== undefined ? `; loop utilization ${r.eventLoopUtilizationPct}%` : ''})`);
  if (c.machineIowaitPct >= 5) parts.push(`iowait ${c.machineIowaitPct}%`);
  if (c.otherProcessesPct > 10 && r.otherProcesses?.length) parts.push(`other CPU: ${r.otherProcesses.slice(0, 3).map((p) => `${p.comm}[${p.pid}] ${p.pct}%`).join(', ')}`);
  return parts.join('; ');
}

export function mdTable(header: string[], rows: string[][]): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (c ?? '').padEnd(w[i]!)).join(' | ')} |`;
  return [line(header), `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

const f = (x: number | undefined, d = 1) => (x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(d));

export function report(results: TargetResult[], opts: Options): { main: string; detail: string; ratios: Record<string, number>; ratioText: string } {
  const open = opts.rate !== undefined;
  const main = mdTable(
    ['target', 'msgs/s', ...(open ? ['offered/s', 'dropped sends'] : []), 'p50 ms', 'p99 ms', 'server CPU %', 'server CPU µs/msg', 'RSS MiB', 'lost / dup / ooo'],
    results.map((r) => {
      if (!r.ok) return [r.label, `FAILED: ${r.error?.slice(0, 80)}`];
      const t = r.totals!;
      return [
        r.label,
        f(r.deliveredPerSec, 0),
        ...(open ? [f(r.offeredPerSec, 0), String(t.sendsDropped)] : []),
        f(r.latencyMs?.p50),
        f(r.latencyMs?.p99),
        f(r.cpu?.serverPct, 0),
        f(r.serverCpuUsPerMessage, 1),
        f(r.rssMiB?.endOfWindow, 0),
        `${t.lost} / ${t.duplicates} / ${t.outOfOrder}`,
      ];
    }),
  );
  const detail = mdTable(
    ['target', 'msgs/s sampled', 'acked/s', 'send→ack p50/p99 ms', ...(open ? ['schedule lag p99 ms'] : []), 'server main thr %', 'generators CPU %', 'machine busy %', 'RSS before → end (anon + file) MiB', 'send errs / closes', 'limited by'],
    results
      .filter((r) => r.ok)
      .map((r) => {
        const t = r.totals!;
        const errs = Object.values(t.sendErrors).reduce((a, b) => a + b, 0);
        return [
          r.label,
          f(r.deliveredPerSecSampled, 0),
          f(r.ackedPerSec, 0),
          `${f(r.ackLatencyMs?.p50)} / ${f(r.ackLatencyMs?.p99)}`,
          ...(open ? [f(r.scheduleLagMs?.p99)] : []),
          f(r.cpu?.serverMainThreadPct, 0),
          r.cpu!.generatorsPct.map((p) => p.toFixed(0)).join(' + '),
          f(r.cpu?.machineBusyPct, 0),
          `${f(r.rssMiB?.beforeLoad, 0)} → ${f(r.rssMiB?.endOfWindow, 0)} (${f(r.memoryMiB?.anonEndOfWindow, 0)} + ${f(r.memoryMiB?.fileEndOfWindow, 0)})`,
          `${errs} / ${t.unexpectedCloses}`,
          r.limitedBy ?? '',
        ];
      }),
  );
  const by = (k: TargetKind) => results.find((r) => r.target === k && r.ok);
  const p = by('parley');
  const s = by('socketio');
  const u = by('uws');
  const ratios: Record<string, number> = {};
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
    ratios.parleyOverUwsCpuPerMessage = round(p.serverCpuUsPerMessage! / u.serverCpuUsPerMessage!, 1);
    lines.push(`Parley / uWS relay ceiling: ${ratios.parleyOverUwsThroughput}× (${round(ratios.parleyOverUwsThroughput * 100, 0)}% of the ceiling's messages/s); p50 ${ratios.parleyOverUwsP50}× the latency; ${ratios.parleyOverUwsCpuPerMessage}× the server CPU per message`);
  }
  if (s && u) {
    ratios.socketioOverUwsThroughput = round(s.deliveredPerSec! / u.deliveredPerSec!, 2);
    lines.push(`Socket.IO+SQLite / uWS relay ceiling: ${ratios.socketioOverUwsThroughput}×`);
  }
  return { main, detail, ratios, ratioText: lines.join('\n') };
}

/** Parley's hops and commits over the window, one line per target that has them. */
export function coalescingReport(results: TargetResult[]): string {
  return results
    .filter((r) => r.ok && r.coalescing)
    .map(({ label, coalescing: c }) => `${label}, thread hops and commits: ${f(c!.shardBatchesPerSec, 0)} batches/s into the shards (${f(c!.envelopesPerShardBatch, 1)} envelopes each, ${f(c!.shardBatchesPerMessage, 2)} per delivered message); ${f(c!.transactionsPerSec, 0)} LMDB write transactions/s (${f(c!.transactionsPerMessage, 3)} per delivered message)`)
    .join('\n');
}

export function idleReport(idle: IdleResult): string {
  const mib = (k: number) => (k / 1024).toFixed(1);
  return mdTable(
    ['idle phase (Parley, fresh server)', 'value'],
    [
      ['connections synced', `${idle.synced}/${idle.connections} (${idle.users} users × ${idle.devicesPerUser} devices, ${idle.processes} generator processes, ${(idle.connectMs / 1000).toFixed(1)} s)`],
      ['server RSS before → with them → after they closed (MiB)', `${mib(idle.rssBeforeKiB)} → ${mib(idle.rssAfterKiB)} → ${mib(idle.rssAfterCloseKiB)}`],
      ['**server RSS per idle connection**', `**${idle.kibPerConnection} KiB** (anon ${idle.anonKibPerConnection} KiB; main-thread JS heap ${idle.mainHeapBytesPerConnection} B)${idle.gc === 'inspector' ? ', readings after a forced GC in every isolate' : ', no forced GC'}`],
      ['server CPU with the idle connections', `${idle.serverCpuWhileIdle.serverPct}% of a core`],
      ['dropped by the server / server-reported connections', `${idle.dropped} / ${idle.serverReportedConnections}`],
    ],
  );
}

/** Everything that makes a figure doubtful or a target wrong. */
export function problemsOf(results: TargetResult[], idle: IdleResult | undefined, idleError: string | undefined, opts: Options): string[] {
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
    if (Object.keys(t.sendErrors).length) problems.push(`${r.target}: send errors ${JSON.stringify(t.sendErrors)}`);
    if (t.unexpectedCloses || t.clientErrors) problems.push(`${r.target}: ${t.unexpectedCloses} unexpected closes, ${t.clientErrors} client errors`);
    if (t.inflightAtEnd) problems.push(`${r.target}: ${t.inflightAtEnd} sends unanswered after the drain`);
    if (opts.rate !== undefined && t.sendsDropped) problems.push(`${r.target}: ${t.sendsDropped} of ${t.sendsOffered} sends dropped (a sender had ${opts.maxInflight} unanswered): the offered ${opts.rate} msgs/s is more than this target sustains here`);
    if (opts.rate !== undefined && (r.scheduleLagMs?.p99 ?? 0) > 20) problems.push(`${r.target}: the generators issued sends up to ${r.scheduleLagMs!.p99} ms late (p99; max ${r.scheduleLagMs!.max}): their own CPU lag is in the latency figures`);
    if (r.connectionsGone === false) problems.push(`${r.target}: the server still counted open connections 20 s after every client closed`);
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
  if (idleError) problems.push(`idle phase FAILED: ${idleError}`);
  if (idle && (idle.failed || idle.dropped)) problems.push(`idle phase: ${idle.failed} sockets failed to sync, ${idle.dropped} dropped by the server`);
  return problems;
}
