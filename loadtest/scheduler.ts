// Scheduled messages under a big queue (issue 14): USERS users (default 1,000) each schedule 100
// messages to the next user — 100,000 jobs pending at once. Of each user's 100: 70 are due in a
// year (they only make the queue long), 10 are due spread over a 10 s window (a steady 1,000
// jobs/s) and 20 at one instant (a burst of 20,000). Reports the steady jobs' lateness (p50/p99,
// from the server's parley_scheduled_lateness_seconds histogram: as fine as its buckets) and the
// burst's jobs/s (its size ÷ the time from its due time to the last one stored). Server and
// client share this machine's 2 cores.
//
//   npm run build && node dist/loadtest/scheduler.js [--users 1000]
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { ParleyClient } from '../client/index.js';
import { Abort, killEverythingSync } from './bench/children.js';
import { round } from './bench/proc.js';
import { startServer, stopServer } from './bench/server.js';
import { createUsers, pool } from './k6/index.js';

const { values } = parseArgs({ options: { users: { type: 'string', default: '1000' } } });
const USERS = Number(values.users);
const FAR = 70;
const STEADY = 10;
const BURST = 20;
const STEADY_WINDOW_MS = 10_000;
const YEAR = 365 * 24 * 3_600_000;

/** The histogram's cumulative counts by bound, and the count of parley_scheduled_runs_total{outcome="sent"}. */
async function scrape(base: string): Promise<{ buckets: [number, number][]; sent: number; pending: number }> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const buckets: [number, number][] = [];
  let sent = 0;
  let pending = 0;
  for (const line of text.split('\n')) {
    const b = /^parley_scheduled_lateness_seconds_bucket\{le="([^"]+)"\} (\S+)$/.exec(line);
    if (b) buckets.push([b[1] === '+Inf' ? Infinity : Number(b[1]), Number(b[2])]);
    const s = /^parley_scheduled_runs_total\{outcome="sent"\} (\S+)$/.exec(line);
    if (s) sent = Number(s[1]);
    const p = /^parley_scheduled_pending (\S+)$/.exec(line);
    if (p) pending = Number(p[1]);
  }
  return { buckets, sent, pending };
}

/** The bound under which fraction q of the counts gained between two scrapes fall. */
function quantile(before: [number, number][], after: [number, number][], q: number): number {
  const gained = after.map(([le, n], i) => [le, n - (before[i]?.[1] ?? 0)] as [number, number]);
  const total = gained[gained.length - 1][1];
  return gained.find(([, n]) => n >= q * total)?.[0] ?? Infinity;
}

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function main(): Promise<void> {
  const abort = new Abort();
  const server = await startServer('parley', { durability: 'fsync' }, abort);
  try {
    const users = await createUsers(server.base, { count: USERS, prefix: 'sch', concurrency: 16 });
    const clients = await pool(users, 32, async (u) => {
      const c = new ParleyClient({ url: `ws://127.0.0.1:${server.port}/v1/ws`, token: u.token, WebSocket, reconnect: false, requestTimeoutMs: 120_000 });
      await c.connect();
      return c;
    });
    const to = (i: number) => users[(i + 1) % USERS].user;
    let t0 = performance.now();
    const inOrder = async (n: number, fn: (k: number) => Promise<unknown>) => {
      // 10 in flight per socket (its limit of commands in flight is higher).
      for (let k = 0; k < n; k += 10) await Promise.all(Array.from({ length: Math.min(10, n - k) }, (_, j) => fn(k + j)));
    };
    await pool(clients, 64, (c, i) => inOrder(FAR, (k) => c.schedule({ to: to(i), body: `far ${k}`, at: Date.now() + YEAR + k })));
    // The due jobs are timed from when they are all stored, so the steady window starts after setup.
    const lead = 30_000;
    const steadyFrom = Date.now() + lead;
    const burstAt = steadyFrom + STEADY_WINDOW_MS + 5_000;
    await pool(clients, 64, async (c, i) => {
      await inOrder(STEADY, (k) => c.schedule({ to: to(i), body: `steady ${k}`, at: steadyFrom + Math.floor(((k * USERS + i) / (STEADY * USERS)) * STEADY_WINDOW_MS) }));
      await inOrder(BURST, (k) => c.schedule({ to: to(i), body: `burst ${k}`, at: burstAt }));
    });
    const setupS = (performance.now() - t0) / 1000;
    if (Date.now() > steadyFrom) throw new Error(`scheduling took ${round(setupS, 1)} s: longer than the ${lead / 1000} s lead`);
    const start = await scrape(server.base);
    console.log(`scheduled ${start.pending} jobs in ${round(setupS, 1)} s (${round(start.pending / setupS)} schedule/s), ${USERS} users; server and client on one 2-core machine, DURABILITY=fsync`);

    await until('the steady jobs', steadyFrom + STEADY_WINDOW_MS + 60_000 - Date.now(), async () => (await scrape(server.base)).sent >= STEADY * USERS);
    const steady = await scrape(server.base);
    console.log(`  steady ${STEADY * USERS} jobs over ${STEADY_WINDOW_MS / 1000} s with ${steady.pending} pending: lateness p50 ≤ ${quantile(start.buckets, steady.buckets, 0.5) * 1000} ms, p99 ≤ ${quantile(start.buckets, steady.buckets, 0.99) * 1000} ms`);

    if (Date.now() > burstAt) console.log('  (the steady jobs ran into the burst\'s time: the burst figure includes them)');
    await until('the burst to be due', burstAt + 1000 - Date.now(), async () => Date.now() >= burstAt);
    let last = Date.now();
    await until('the burst', 300_000, async () => {
      const s = await scrape(server.base);
      last = Date.now();
      return s.sent >= (STEADY + BURST) * USERS;
    });
    const burst = await scrape(server.base);
    const spanS = (last - burstAt) / 1000;
    console.log(`  burst of ${BURST * USERS} due at once: ${round((BURST * USERS) / spanS)} jobs/s (last stored ${round(spanS, 2)} s after the due time, ±0.1 s); lateness p99 ≤ ${quantile(steady.buckets, burst.buckets, 0.99) * 1000} ms`);
    console.log(`  still pending: ${burst.pending} (the far ones: ${FAR * USERS})`);
    await Promise.all(clients.map((c) => c.close()));
  } finally {
    await stopServer(server);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  killEverythingSync();
  process.exit(1);
});
