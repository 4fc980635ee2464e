// cluster-connections (issue 17): a local nats-server and N Parley node processes (default 5) on
// this machine, idle authenticated connections spread evenly over them by generator processes
// (≤ 9,000 sockets each, bound to several source addresses in 127.0.0.0/8), held past the
// heartbeat; then 1:1 traffic between pairs of users on the same node and on two different nodes,
// side by side. Reports connections held (each node's parley_connections), each node's RSS before
// and while holding, RSS per connection, its open files against its limit, the ramp time, failures
// by reason, and the generators' RSS. Bounded in count and time everywhere; 127.0.0.0/8 only.
//
//   npm run build && node dist/loadtest/cluster-connections.js [--conns 100000] [--cluster] [--shards 1]
//
// Without --cluster the nodes are independent servers (a user exists only on the node it signed
// in on): the connection part is the same, the cross-node traffic needs --cluster.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startNats } from '../test/helpers/nats-server.js';
import { Abort, closeGenerators, Gen, removeDir } from './bench/children.js';
import { memKiB, round, sleep } from './bench/proc.js';
import { settledReading, startServer, stopServer, type Server } from './bench/server.js';
import type { FromGen, HoldStats, ToGen, TrafficMode, TrafficStats } from './cluster-generator.js';
import { LogHistogram } from './k6/histogram.js';
import { now, runTag, serverMetrics } from './k6/helpers.js';

const HELP = `node dist/loadtest/cluster-connections.js [options]
  --conns N            idle authenticated connections in all (default 100000)
  --nodes N            Parley node processes (default 5)
  --shards N           SHARDS of every node (default 1)
  --cluster            run the nodes as one cluster over the local nats-server (CLUSTER_* env);
                       without it they are independent servers and cross-node traffic is not run
  --per-generator N    sockets per generator process, at most 9000 (default 9000)
  --sources N          source addresses 127.1.0.1… the sockets bind to (default: one per 10,000 sockets)
  --concurrency N      hellos in flight per generator (default 16)
  --ramp-minutes M     bound of the ramp (default 20)
  --hold-seconds S     hold after the ramp before the "holding" reading, > 2 heartbeats (default 60)
  --pairs N            1:1 pairs per traffic run, same-node and cross-node each (default 500)
  --window W           sends unanswered per sender (default 4)
  --seconds S          measured window of each traffic run (default 10)
  --durability D       fsync (default) or relaxed
  --overfill           open every socket even beyond a node's file headroom (limit − open at idle − 32):
                       the node answers them 503 at MAX_SOCKETS (its file limit − 64)
  --max-minutes M      watchdog for the whole run (default 45)
  --out FILE           JSON results (default loadtest/results/cluster-connections-<time>.json)`;

const { values: a } = parseArgs({
  options: {
    conns: { type: 'string' }, nodes: { type: 'string' }, shards: { type: 'string' }, cluster: { type: 'boolean' },
    'per-generator': { type: 'string' }, sources: { type: 'string' }, concurrency: { type: 'string' },
    'ramp-minutes': { type: 'string' }, 'hold-seconds': { type: 'string' }, pairs: { type: 'string' }, window: { type: 'string' },
    seconds: { type: 'string' }, durability: { type: 'string' }, 'max-minutes': { type: 'string' }, out: { type: 'string' }, overfill: { type: 'boolean' }, help: { type: 'boolean' },
  },
});
if (a.help) {
  console.log(HELP);
  process.exit(0);
}
function int(v: string | undefined, def: number, min: number, max: number, name: string): number {
  const n = v === undefined ? def : Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer in [${min}, ${max}]`);
  return n;
}
const CONNS = int(a.conns, 100_000, 1, 200_000, 'conns');
const NODES = int(a.nodes, 5, 1, 12, 'nodes');
const SHARDS = int(a.shards, 1, 1, 8, 'shards');
const CLUSTER = a.cluster === true;
const PER_GEN = int(a['per-generator'], 9000, 1, 9000, 'per-generator');
/** A generator process may open 20,000 files; one (source, destination) pair has ~28k ephemeral ports. */
const PORT_RANGE = (() => {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return hi! - lo! + 1;
  } catch {
    return 28_232;
  }
})();
const PER_SOURCE = 10_000;
const SOURCES = int(a.sources, Math.ceil(CONNS / PER_SOURCE), 1, 250, 'sources');
const CONCURRENCY = int(a.concurrency, 16, 1, 1000, 'concurrency');
const RAMP_MS = int(a['ramp-minutes'], 20, 1, 120, 'ramp-minutes') * 60_000;
const HOLD_MS = int(a['hold-seconds'], 60, 0, 3600, 'hold-seconds') * 1000;
const PAIRS = int(a.pairs, 500, 0, 20_000, 'pairs');
const WINDOW = int(a.window, 4, 1, 64, 'window');
const SECONDS = int(a.seconds, 10, 1, 300, 'seconds');
const DURABILITY = (a.durability ?? 'fsync') as 'fsync' | 'relaxed';
if (DURABILITY !== 'fsync' && DURABILITY !== 'relaxed') throw new Error('--durability must be fsync or relaxed');
/** files a node keeps free below its limit: /metrics, the inspector, NATS reconnects, LMDB */
const FILE_RESERVE = 32;
const MAX_MS = int(a['max-minutes'], 45, 1, 240, 'max-minutes') * 60_000;

const here = path.dirname(fileURLToPath(import.meta.url)); // <repo>/dist/loadtest
const repo = path.resolve(here, '..', '..');
const GENERATOR = path.join(here, 'cluster-generator.js');
/** one name for every node of the run (the NATS subjects' prefix) */
const CLUSTER_NAME = `load${runTag()}`.slice(0, 16);
const SECRET = `cluster-loadtest-${runTag()}-${runTag()}-${runTag()}`;
const log = (m: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${m}`);

// ------------------------------------------------------------------ processes

const abort = new Abort();
const nodes: Server[] = [];
const gens: Array<Gen<ToGen, FromGen>> = [];
const natsTeardowns: Array<() => unknown> = [];
let natsKill: (() => Promise<void>) | undefined;

/** The test helper's nats-server (free port, JetStream in a temp store); its teardowns run at cleanup. */
async function startLocalNats(): Promise<string> {
  const n = await startNats({ teardown: (fn) => void natsTeardowns.push(fn) });
  let stopping = false;
  n.proc.once('exit', (code, signal) => stopping || abort.fire(new Error(`nats-server exited: code ${code} signal ${signal}`)));
  natsKill = () => {
    stopping = true;
    return n.kill();
  };
  return n.url;
}

function nodeEnv(k: number, natsUrl: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { AUTH_JWT_SECRET: SECRET, RATE_LIMITS: 'off', LOG_LEVEL: 'info' };
  if (CLUSTER) {
    Object.assign(env, {
      CLUSTER_NATS_URL: natsUrl,
      NODE_ID: `n${k + 1}`,
      CLUSTER_NAME,
      CLUSTER_NODES: Array.from({ length: NODES }, (_, j) => `n${j + 1}`).join(','),
    });
  }
  return env;
}

/** Open files of a process and its limit (soft) from /proc. */
function files(pid: number): { open: number; limit: number } {
  let open = NaN;
  let limit = NaN;
  try {
    open = readdirSync(`/proc/${pid}/fd`).length;
    limit = Number(/Max open files\s+(\d+)/.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))?.[1]);
  } catch {
    // gone
  }
  return { open, limit };
}

interface NodeReading {
  node: string;
  pid: number;
  connections: number;
  rssMiB: number;
  openFiles: number;
  fileLimit: number;
}

const notes: string[] = [];

/**
 * Each node's connections, RSS and open files. `settled`: first a forced GC in every isolate of the
 * node (its inspector) and RSS no longer moving (bench's settledReading), one node after the other.
 */
async function readNodes(settled: string | false): Promise<NodeReading[]> {
  const out: NodeReading[] = [];
  for (const [k, n] of nodes.entries()) {
    let rssKiB = memKiB(n.pid).rss;
    if (settled) {
      try {
        rssKiB = (await settledReading(n, abort, `n${k + 1} ${settled}`, notes)).rss;
      } catch (err) {
        if (abort.reason) throw err;
        notes.push(`n${k + 1} ${settled}: no forced GC (${(err as Error).message}); RSS as it was`);
      }
    }
    const m = await serverMetrics(n.base, 10_000).catch(() => ({}) as Record<string, number>);
    const f = files(n.pid);
    out.push({ node: `n${k + 1}`, pid: n.pid, connections: m.parley_connections ?? NaN, rssMiB: rssKiB / 1024, openFiles: f.open, fileLimit: f.limit });
  }
  return out;
}

let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const g of gens) g.closing = true;
    if (gens.length) await closeGenerators(gens, { type: 'close' }).catch(() => gens.forEach((g) => g.kill()));
    await Promise.all(nodes.map((n) => stopServer(n).catch(() => undefined)));
    await natsKill?.();
    for (const fn of natsTeardowns.splice(0)) await fn();
  })();
  return cleaning;
}
// A signal aborts the running phase; main's finally then stops everything. If that hangs, the
// exit handler of bench/children.ts still SIGKILLs every child.
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log(`${sig}: stopping everything`);
    abort.fire(new Error(`interrupted by ${sig}`));
    setTimeout(() => process.exit(130), 60_000).unref();
  });
}
// A node stopped under a pending inspector or /metrics request: not a reason to skip the cleanup.
process.on('unhandledRejection', (err) => log(`unhandled rejection (ignored): ${(err as Error)?.message ?? String(err)}`));
const watchdog = setTimeout(() => {
  log(`watchdog: the run exceeded --max-minutes (${MAX_MS / 60_000})`);
  abort.fire(new Error('watchdog: --max-minutes exceeded'));
  void cleanup().finally(() => process.exit(124));
}, MAX_MS);
watchdog.unref();

// ------------------------------------------------------------------ phases

const sum = (xs: number[]) => xs.reduce((x, y) => x + y, 0);
const merge = (into: Record<string, number>, from: Record<string, number>) => {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
};

interface TrafficResult {
  mode: TrafficMode;
  skipped?: string;
  pairs?: number;
  msgsPerSecond?: number;
  p50?: number;
  p99?: number;
  ackP50?: number;
  ackP99?: number;
  sendErrors?: Record<string, number>;
  lost?: number;
  duplicates?: number;
  warmupFailed?: number;
  notes?: string[];
}

async function trafficRun(mode: TrafficMode): Promise<TrafficResult> {
  if (mode === 'cross' && !CLUSTER) return { mode, skipped: 'needs --cluster (independent nodes: a user exists only on its own node)' };
  if (mode === 'cross' && NODES < 2) return { mode, skipped: 'needs --nodes ≥ 2' };
  const per = Math.ceil(PAIRS / gens.length);
  const warmupTimeoutMs = 60_000;
  for (const g of gens) g.tell({ type: 'traffic', mode, pairs: per, window: WINDOW, warmupTimeoutMs });
  await abort.phase(`${mode}-node warm-up`, warmupTimeoutMs + 10_000, Promise.all(gens.map((g) => g.expect('warm'))));
  const startAt = now() + 500; // every generator starts its window at one time
  for (const g of gens) g.tell({ type: 'go', startAt, seconds: SECONDS, drainTimeoutMs: 20_000 });
  const stats: TrafficStats[] = await abort.phase(`${mode}-node traffic`, SECONDS * 1000 + 40_000, Promise.all(gens.map((g) => g.expect('traffic-done').then((m) => m.stats))));
  const lat = new LogHistogram();
  const ack = new LogHistogram();
  const errors: Record<string, number> = {};
  const notes: string[] = [];
  for (const s of stats) {
    lat.merge(s.latency);
    ack.merge(s.ackLatency);
    merge(errors, s.sendErrors);
    if (s.shortfall) notes.push(s.shortfall);
    notes.push(...s.samples.slice(0, 3));
  }
  const windowS = Math.max(...stats.map((s) => s.windowMs)) / 1000;
  return {
    mode,
    pairs: sum(stats.map((s) => s.pairs)),
    msgsPerSecond: round(sum(stats.map((s) => s.recvInWindow)) / windowS, 0),
    p50: round(lat.quantile(0.5), 1),
    p99: round(lat.quantile(0.99), 1),
    ackP50: round(ack.quantile(0.5), 1),
    ackP99: round(ack.quantile(0.99), 1),
    sendErrors: errors,
    lost: sum(stats.map((s) => s.lost)),
    duplicates: sum(stats.map((s) => s.duplicates)),
    warmupFailed: sum(stats.map((s) => s.warmupFailed)),
    notes: notes.slice(0, 10),
  };
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const genCount = Math.ceil(CONNS / PER_GEN);
  const perNodeWanted = Math.ceil(CONNS / NODES);
  const sources = Array.from({ length: SOURCES }, (_, k) => `127.1.${Math.floor((k + 1) / 256)}.${(k + 1) % 256}`);
  const perSource = Math.ceil(CONNS / SOURCES);
  log(`plan: ${CONNS} connections over ${NODES} nodes (${perNodeWanted} each, SHARDS=${SHARDS}, ${CLUSTER ? 'one cluster over NATS' : 'independent nodes'}), ${genCount} generators (≤ ${PER_GEN} sockets each)`);
  log(`ports: bind() to a source address reserves an ephemeral port on that address whatever the destination: ${PORT_RANGE} ports per address → at least ${Math.ceil(CONNS / PORT_RANGE)} addresses; using ${SOURCES} (${sources[0]}…${sources.at(-1)}), ≤ ${perSource} sockets each (room for TIME_WAIT of an earlier run)`);
  if (perSource > PORT_RANGE) throw new Error(`--sources ${SOURCES}: ${perSource} sockets per address exceed the ${PORT_RANGE} ephemeral ports`);

  const natsUrl = await startLocalNats();
  log(`nats-server at ${natsUrl}`);
  for (let k = 0; k < NODES; k++) {
    // One at a time: five starting together on 2 shared cores overrun the start bound.
    nodes.push(await startServer('parley', { durability: DURABILITY, shards: SHARDS, inspect: true, env: nodeEnv(k, natsUrl) }, abort));
    log(`node n${k + 1}: pid ${nodes[k]!.pid}, port ${nodes[k]!.port}`);
  }
  const before = await readNodes('before');
  // A node at its file limit could not accept (uWS retried in a busy loop); it now refuses at
  // MAX_SOCKETS (limit − 64) with 503. Stay under both: what is counted is what a node can hold.
  const capPerNode = Math.min(...before.map((r) => r.fileLimit - r.openFiles - FILE_RESERVE));
  if (perNodeWanted > capPerNode) {
    log(`warning: ${perNodeWanted} sockets per node exceed the nodes' file headroom: limit ${before[0]!.fileLimit} − ${before[0]!.openFiles} open at idle − ${FILE_RESERVE} reserve = ${capPerNode}; each node gets at most ${capPerNode} (--overfill to try anyway)`);
  }

  const tag = `cc${runTag()}`;
  const rampStart = Date.now();
  const deadline = rampStart + RAMP_MS;
  const perGen = Math.ceil(CONNS / genCount); // evenly: 100,000 → 12 × 8,334, not 11 × 9,000 + 1,000
  for (let g = 0; g < genCount; g++) {
    const first = g * perGen;
    const count = Math.min(perGen, CONNS - first);
    const gen = new Gen<ToGen, FromGen>(`g${g + 1}`, GENERATOR, abort, {});
    gens.push(gen);
    gen.tell({ type: 'connect', first, count, capPerNode: a.overfill ? Number.MAX_SAFE_INTEGER : capPerNode, nodes: nodes.map((n) => n.port), sources, secret: SECRET, tag, concurrency: CONCURRENCY, handshakeTimeoutMs: 60_000, deadline });
  }
  const lastProgress = new Map<Gen<ToGen, FromGen>, { synced: number; failed: number }>();
  for (const g of gens) {
    g.proc.on('message', (m: FromGen) => {
      if (m.type === 'progress') lastProgress.set(g, m);
      else if (m.type === 'held') lastProgress.set(g, { synced: m.stats.synced, failed: sum(Object.values(m.stats.failed)) });
    });
  }
  const progress = setInterval(() => {
    const ps = [...lastProgress.values()];
    log(`ramp: ${sum(ps.map((p) => p.synced))} synced, ${sum(ps.map((p) => p.failed))} failed, ${round((Date.now() - rampStart) / 1000, 0)} s`);
  }, 10_000);
  let holds: HoldStats[];
  try {
    holds = await abort.phase('ramp', RAMP_MS + 90_000, Promise.all(gens.map((g) => g.expect('held').then((m) => m.stats))));
  } finally {
    clearInterval(progress);
  }
  const synced = sum(holds.map((h) => h.synced));
  const rampEnd = Math.max(...holds.map((h) => h.lastSyncedAt));
  const rampS = (rampEnd - rampStart) / 1000;
  log(`ramp done: ${synced} of ${CONNS} synced in ${round(rampS, 1)} s; holding ${HOLD_MS / 1000} s`);
  const ramped = await readNodes(false);
  await abort.phase('hold', HOLD_MS + 5000, sleep(HOLD_MS));
  const holding = await readNodes('holding');
  for (const g of gens) g.tell({ type: 'status' });
  const status = await abort.phase('generators\' status after the hold', 30_000, Promise.all(gens.map((g) => g.expect('status'))));
  const failed: Record<string, number> = {};
  const closedWhileHeld: Record<string, number> = {};
  const connect = new LogHistogram();
  const perNode = nodes.map(() => 0);
  for (const h of holds) {
    merge(failed, h.failed);
    connect.merge(h.connect);
    h.perNode.forEach((c, k) => (perNode[k]! += c));
  }
  const genRss = gens.map((g) => ({ gen: g.label, pid: g.proc.pid!, sockets: 0, rssMiB: round(memKiB(g.proc.pid!).rss / 1024, 1) }));
  holds.forEach((h, k) => (genRss[k]!.sockets = h.synced));
  for (const st of status) merge(closedWhileHeld, st.closedWhileHeld);
  const openAfterHold = sum(status.map((st) => st.open));
  const nodeRows = holding.map((r, k) => {
    const b = before[k]!;
    const rssDelta = r.rssMiB - b.rssMiB;
    return {
      node: r.node,
      pid: r.pid,
      connectionsAtRampEnd: ramped[k]!.connections,
      connections: r.connections,
      socketsHeldByGenerators: perNode[k],
      rssBeforeMiB: round(b.rssMiB, 1),
      rssHoldingMiB: round(r.rssMiB, 1),
      kibPerConnection: round((rssDelta * 1024) / r.connections, 2),
      openFiles: r.openFiles,
      fileLimit: r.fileLimit,
    };
  });
  const held = sum(holding.map((r) => (Number.isFinite(r.connections) ? r.connections : 0)));
  const totalDeltaMiB = sum(holding.map((r, k) => r.rssMiB - before[k]!.rssMiB));

  const traffic: TrafficResult[] = [];
  if (PAIRS > 0) {
    for (const mode of ['same', 'cross'] as const) {
      log(`traffic: ${mode}-node pairs`);
      traffic.push(await trafficRun(mode));
    }
  }
  const afterTraffic = await readNodes(false);

  const result = {
    date: new Date().toISOString(),
    commit: gitHead(),
    options: { conns: CONNS, nodes: NODES, shards: SHARDS, cluster: CLUSTER, generators: genCount, perGenerator: PER_GEN, sources: SOURCES, concurrency: CONCURRENCY, holdSeconds: HOLD_MS / 1000, pairs: PAIRS, window: WINDOW, seconds: SECONDS, durability: DURABILITY },
    held,
    synced,
    openAfterHold,
    rampSeconds: round(rampS, 1),
    rampPerSecond: round(synced / rampS, 0),
    connectMs: { p50: round(connect.quantile(0.5), 0), p99: round(connect.quantile(0.99), 0), max: round(connect.max, 0) },
    failed,
    closedWhileHeld,
    kibPerConnectionAll: round((totalDeltaMiB * 1024) / held, 2),
    nodes: nodeRows,
    nodesAfterTraffic: afterTraffic.map((r) => ({ node: r.node, connections: r.connections, rssMiB: round(r.rssMiB, 1) })),
    nodeLogs: nodes.map((n, k) => ({ node: `n${k + 1}`, warnLines: n.out.warnLines, errorLines: n.out.errorLines, stderrLines: n.out.stderrLines, samples: n.out.samples.slice(0, 3) })),
    generators: genRss,
    generatorsRssMiB: round(sum(genRss.map((g) => g.rssMiB)), 1),
    generatorSamples: holds.flatMap((h) => h.samples).slice(0, 10),
    readingNotes: notes,
    traffic,
    seconds: round((Date.now() - t0) / 1000, 0),
  };
  print(result);
  const out = a.out ?? path.join(repo, 'loadtest', 'results', `cluster-connections-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2));
  log(`results: ${out}`);
}

function gitHead(): string {
  try {
    const head = readFileSync(path.join(repo, '.git'), 'utf8');
    const gitdir = /gitdir: (.+)/.exec(head)?.[1]?.trim() ?? path.join(repo, '.git');
    const ref = readFileSync(path.join(gitdir, 'HEAD'), 'utf8').trim();
    if (!ref.startsWith('ref: ')) return ref.slice(0, 7);
    const name = ref.slice(5);
    try {
      return readFileSync(path.join(gitdir, name), 'utf8').trim().slice(0, 7);
    } catch {
      const common = readFileSync(path.join(gitdir, 'commondir'), 'utf8').trim();
      return readFileSync(path.resolve(gitdir, common, name), 'utf8').trim().slice(0, 7);
    }
  } catch {
    return 'unknown';
  }
}

/** The JSON report (see main), printed as markdown. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function print(r: Record<string, any>): void {
  const o = r.options;
  const lines: string[] = [];
  lines.push(`## cluster-connections ${r.date.slice(0, 16)}Z (${r.commit}): ${o.conns} connections, ${o.nodes} nodes × SHARDS=${o.shards}, ${o.cluster ? 'cluster' : 'independent nodes'}, ${o.generators} generators, ${o.sources} source addresses`);
  lines.push('');
  lines.push(`held: **${r.held}** (parley_connections summed) of ${o.conns}; synced by the generators ${r.synced}; ramp ${r.rampSeconds} s (${r.rampPerSecond}/s), open→synced p50 ${r.connectMs.p50} ms, p99 ${r.connectMs.p99} ms, max ${r.connectMs.max} ms`);
  lines.push(`RSS per connection (all nodes): **${r.kibPerConnectionAll} KiB**; generators' RSS ${r.generatorsRssMiB} MiB in all`);
  lines.push(`failures: ${Object.keys(r.failed).length ? Object.entries(r.failed).map(([k, v]) => `${k}: ${v}`).join(', ') : 'none'}; after the ${o.holdSeconds} s hold ${r.openAfterHold} still open, closed by the server while held: ${Object.keys(r.closedWhileHeld).length ? JSON.stringify(r.closedWhileHeld) : 'none'}`);
  lines.push('');
  lines.push('| node | connections (ramp end → after hold) | RSS before MiB | RSS holding MiB | KiB / conn | open files / limit |');
  lines.push('|---|---:|---:|---:|---:|---:|');
  for (const n of r.nodes) lines.push(`| ${n.node} | ${n.connectionsAtRampEnd} → ${n.connections} | ${n.rssBeforeMiB} | ${n.rssHoldingMiB} | ${n.kibPerConnection} | ${n.openFiles} / ${n.fileLimit} |`);
  lines.push('');
  lines.push(`generators: ${r.generators.map((g: { gen: string; sockets: number; rssMiB: number }) => `${g.gen} ${g.sockets} sockets ${g.rssMiB} MiB`).join(', ')}`);
  lines.push('');
  lines.push('| 1:1 pairs | pairs | msgs/s | send→receive p50 ms | p99 ms | send→ok p50 / p99 ms | errors | lost / dup | warm-up failed |');
  lines.push('|---|---:|---:|---:|---:|---:|---|---:|---:|');
  for (const t of r.traffic as TrafficResult[]) {
    if (t.skipped) lines.push(`| ${t.mode}-node | — | — | — | — | — | ${t.skipped} | — | — |`);
    else lines.push(`| ${t.mode}-node | ${t.pairs} | ${t.msgsPerSecond} | ${t.p50} | ${t.p99} | ${t.ackP50} / ${t.ackP99} | ${Object.keys(t.sendErrors ?? {}).length ? JSON.stringify(t.sendErrors) : 0} | ${t.lost} / ${t.duplicates} | ${t.warmupFailed} |`);
  }
  for (const n of r.nodeLogs) if (n.warnLines || n.errorLines || n.stderrLines) lines.push(`- ${n.node} log: ${n.warnLines} warn, ${n.errorLines} error, ${n.stderrLines} stderr lines; ${n.samples.join(' | ').slice(0, 600)}`);
  for (const s of r.generatorSamples) lines.push(`- generator: ${s}`);
  for (const t of r.traffic as TrafficResult[]) for (const s of t.notes ?? []) lines.push(`- ${t.mode}: ${s}`);
  console.log(lines.join('\n'));
}

let code = 0;
try {
  await main();
} catch (err) {
  code = 1;
  log(`failed: ${(err as Error)?.stack ?? String(err)}`);
  for (const [k, n] of nodes.entries()) if (n.out.samples.length) log(`node n${k + 1} log: ${n.out.samples.join(' | ').slice(0, 1500)}`);
} finally {
  await cleanup();
  clearTimeout(watchdog);
  for (const n of nodes) removeDir(n.dataDir);
}
process.exit(abort.reason?.message.startsWith('interrupted') ? 130 : code);
