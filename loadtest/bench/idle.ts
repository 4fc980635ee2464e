// The idle phase of `npm run bench -- --idle N` (Parley only, on a fresh server of its own, so the
// baseline is not blurred by the garbage of the throughput phase): N authenticated sockets that
// only say hello, sync and ping (users × `devices` sessions each), server RSS before and after →
// KiB per connection. With --gc inspector the server runs with an inspector on 127.0.0.1 and every
// isolate is GC'd before each reading.
import { createUsers } from '../k6/helpers.js';
import { Abort, Gen, closeGenerators } from './children.js';
import type { FromGen, ToGen } from './ipc.js';
import { cpuBetween, round, sleep, snap, type CpuUse } from './proc.js';
import { parleyCounters, settledReading, type Server } from './server.js';

/** Sockets per generator process (the fd limit here is ~20,000). */
export const SOCKETS_PER_GENERATOR = 9000;

export interface IdleOptions {
  idle: number;
  devices: number;
  generators: number;
  httpConcurrency: number;
  gc: 'inspector' | 'none';
}

export interface IdleResult {
  connections: number;
  users: number;
  devicesPerUser: number;
  processes: number;
  sessionsMs: number;
  connectMs: number;
  synced: number;
  failed: number;
  /** synced sockets the server closed while they idled */
  dropped: number;
  serverReportedConnections: number;
  rssBeforeKiB: number;
  rssAfterKiB: number;
  anonBeforeKiB: number;
  anonAfterKiB: number;
  rssAfterCloseKiB: number;
  kibPerConnection: number;
  anonKibPerConnection: number;
  /** V8 heap used of the server's main (gateway) thread, per connection */
  mainHeapBytesPerConnection: number;
  /** V8 heap used per connection, per isolate (after forced GCs; empty with --gc none) */
  isolateHeapBytesPerConnection: Record<string, number>;
  gc: 'inspector' | 'none';
  gcNotes: string[];
  serverCpuWhileIdle: CpuUse;
  errorSamples: string[];
}

export async function idlePhase(
  opts: IdleOptions,
  server: Server,
  abort: Abort,
  forkGen: (label: string) => Gen<ToGen, FromGen>,
  log: (msg: string) => void,
): Promise<IdleResult> {
  const url = `${server.base.replace('http', 'ws')}/v1/ws`;
  const n = opts.idle;
  const devices = Math.min(opts.devices, n);
  const nUsers = Math.ceil(n / devices);
  let t0 = Date.now();
  const sessions = (
    await abort.phase(
      `create ${nUsers} idle users × ${devices} sessions`,
      Math.max(60_000, (nUsers + n) * 20),
      createUsers(server.base, { count: nUsers, prefix: 'idle_', exact: true, devices, concurrency: opts.httpConcurrency, password: 'bench-password-1' }),
    )
  ).slice(0, n);
  const sessionsMs = Date.now() - t0;
  log(`[idle] created ${nUsers} users × ${devices} sessions (${sessions.length}) in ${sessionsMs} ms`);

  await sleep(3000); // let the server settle after the HTTP burst
  const gcNotes: string[] = [];
  const before = await settledReading(server, abort, 'before', gcNotes);
  log(`[idle] server RSS before the idle connections: ${(before.rss / 1024).toFixed(1)} MiB (anon ${(before.anon / 1024).toFixed(1)} MiB)${server.inspectorUrl ? ' after a forced GC' : ''}`);

  const procs = Math.max(opts.generators, Math.ceil(n / SOCKETS_PER_GENERATOR));
  const gens = Array.from({ length: procs }, (_, i) => forkGen(`idle${i}`));
  try {
    t0 = Date.now();
    gens.forEach((gen, i) => {
      // Interleaved: every process holds sessions of many users.
      const tokens = sessions.filter((_, k) => k % procs === i).map((s) => s.token);
      gen.tell({ type: 'idle-connect', url, tokens, concurrency: 200, timeoutMs: 120_000 });
    });
    const syncedStats = (await abort.phase(`connect + sync ${n} idle sockets`, 130_000, Promise.all(gens.map((gen) => gen.expect('idle-synced'))))).map((m) => m.stats);
    const connectMs = Date.now() - t0;
    const synced = syncedStats.reduce((a, s) => a + s.synced, 0);
    const failed = syncedStats.reduce((a, s) => a + s.failed, 0);
    log(`[idle] ${synced}/${n} idle sockets synced (${failed} failed) over ${procs} processes in ${connectMs} ms`);
    if (synced < n) throw new Error(`only ${synced} of ${n} idle sockets reached synced; samples: ${syncedStats.flatMap((s) => s.errorSamples.slice(0, 5)).join(' | ')}`);

    const genPids = gens.map((g) => g.proc.pid!);
    const c0 = snap(server.pid, genPids);
    await sleep(3000);
    const c1 = snap(server.pid, genPids);
    const after = await settledReading(server, abort, 'after', gcNotes);
    const counted = (await parleyCounters(server)).parley_connections ?? NaN;
    log(`[idle] server RSS with ${n} idle connections: ${(after.rss / 1024).toFixed(1)} MiB (anon ${(after.anon / 1024).toFixed(1)} MiB); the server counts ${counted} connections`);

    await abort.phase('close idle sockets', 30_000, closeGenerators(gens, { type: 'close', timeoutMs: 10_000 }));
    const idleStats = gens.map((g) => g.peek('idle-stats')?.stats).filter((s) => s !== undefined);
    await sleep(2000);
    const afterClose = await settledReading(server, abort, 'after close', gcNotes);
    return {
      connections: n,
      users: nUsers,
      devicesPerUser: devices,
      processes: procs,
      sessionsMs,
      connectMs,
      synced,
      failed,
      dropped: idleStats.reduce((a, s) => a + s.dropped, 0),
      serverReportedConnections: counted,
      rssBeforeKiB: before.rss,
      rssAfterKiB: after.rss,
      anonBeforeKiB: before.anon,
      anonAfterKiB: after.anon,
      rssAfterCloseKiB: afterClose.rss,
      kibPerConnection: round((after.rss - before.rss) / n, 2),
      anonKibPerConnection: round((after.anon - before.anon) / n, 2),
      mainHeapBytesPerConnection: round((after.heapUsed - before.heapUsed) / n, 0),
      isolateHeapBytesPerConnection: Object.fromEntries(Object.keys(after.isolates).map((k) => [k, round((after.isolates[k]! - (before.isolates[k] ?? 0)) / n, 0)])),
      gc: opts.gc,
      gcNotes,
      serverCpuWhileIdle: cpuBetween(c0, c1),
      errorSamples: [...syncedStats, ...idleStats].flatMap((s) => s.errorSamples.slice(0, 5)).slice(0, 20),
    };
  } finally {
    for (const g of gens) g.kill();
  }
}
