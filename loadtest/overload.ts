// overload: what the server's memory does when clients push it where it has to bound things.
//   MODE=history  every VU floods `history` for random thread ids (each one a fresh, empty actor
//                 activation unless the shard drops it at once), a window of requests in flight;
//   MODE=noread   every VU but one opens a socket that never reads, all in one group; VU 1 posts
//                 16 KiB messages to it: send buffers grow until slow-consumer pauses and the
//                 process-wide MAX_BUFFERED_BYTES bound act.
// Reports the server's RSS, thread-actor activations and connections (last and peak, from GET /metrics).
//
//   npm run loadtest -- loadtest/overload.ts --spawn -e MODE=history --vus 50 --duration 20s
//   npm run loadtest -- loadtest/overload.ts --spawn -e MODE=noread --vus 1000 --duration 30s
import { randomBytes } from 'node:crypto';
import { WebSocket } from 'ws';
import { decodeFrame, encodeFrame } from '../protocol/wire.js';
import { Counter, Gauge, check, createUsers, serverMetrics, sleep, type LoadUser, type Options, type SetupEnv, type VuContext } from './k6/index.js';

const MODE = process.env.MODE === 'noread' ? 'noread' : 'history';
const WINDOW = Number(process.env.WINDOW ?? 16);
const BODY = 'x'.repeat(16 * 1024 - 16);

export const options: Options = {
  scenarios: { flood: { executor: 'constant-vus', vus: MODE === 'noread' ? 1000 : 50, duration: '20s', gracefulStop: '2s' } },
  thresholds: { checks: ['rate>0.99'] },
  setupTimeout: '600s',
};

const answers = new Counter('answers');
const posted = new Counter('posted');
const closedByServer = new Counter('closed_by_server');
// Gauges: the summary shows their last value and their max (the peak).
const rss = new Gauge('server_rss_mib');
const threadActors = new Gauge('server_thread_actors');
const conns = new Gauge('server_connections');

interface Data { users: LoadUser[]; group?: string; rssBefore: number }

export async function setup(env: SetupEnv): Promise<Data> {
  const users = await createUsers(env.base, { count: env.vus, prefix: 'ov', concurrency: 16, log: (m) => console.error(`setup: ${m}`) });
  let group: string | undefined;
  if (MODE === 'noread') group = await createGroup(env.url, users);
  const rssBefore = (await serverMetrics(env.base)).parley_process_resident_memory_bytes ?? NaN;
  console.error(`setup: mode ${MODE}, server RSS before: ${(rssBefore / 2 ** 20).toFixed(1)} MiB`);
  return { users, group, rssBefore };
}

/** One group of every user (≤ 1024), created by the first. */
async function createGroup(url: string, users: LoadUser[]): Promise<string> {
  const ws = await open(url, users[0]!.token);
  const answer = await request(ws, { t: 'group.create', title: 'overload', members: users.slice(1, 1024).map((u) => u.user), cid: `ov-${randomBytes(4).toString('hex')}` });
  ws.close();
  return (answer as { thread: string }).thread;
}

function open(url: string, token: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.binaryType = 'nodebuffer';
    const timer = setTimeout(() => reject(new Error('no synced in 30 s')), 30_000);
    ws.on('open', () => ws.send(encodeFrame({ t: 'hello', token })));
    const onMessage = (raw: Buffer) => {
      if ((decodeFrame(raw) as { t?: string }).t !== 'synced') return;
      clearTimeout(timer);
      ws.off('message', onMessage);
      resolve(ws);
    };
    ws.on('message', onMessage);
    ws.on('error', reject);
  });
}

let nextR = 1;
function request(ws: WebSocket, frame: Record<string, unknown>): Promise<unknown> {
  const r = nextR++;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer to ${frame.t}`)), 30_000);
    const onMessage = (raw: Buffer) => {
      const f = decodeFrame(raw) as { t?: string; r?: number; code?: string };
      if (f.r !== r) return;
      clearTimeout(timer);
      ws.off('message', onMessage);
      if (f.t === 'err' && f.code !== 'not_found' && f.code !== 'rate_limited') reject(new Error(`${frame.t}: ${f.code}`));
      else resolve(f);
    };
    ws.on('message', onMessage);
    ws.send(encodeFrame({ ...frame, r }));
  });
}

let monitoring = false;
async function monitor(ctx: VuContext): Promise<void> {
  monitoring = true;
  for (let i = 0; i < 10_000 && !ctx.signal.aborted; i++) {
    try {
      const m = await serverMetrics(ctx.base, 3000);
      rss.add((m.parley_process_resident_memory_bytes ?? 0) / 2 ** 20);
      threadActors.add(sumLabelled(m, 'parley_actors{', 'kind="thread"'));
      conns.add(m.parley_connections ?? 0);
    } catch {
      // a busy server answers next time
    }
    await sleep(1, ctx.signal);
  }
  monitoring = false;
}

/** Sums a metric over the label sets that include `label` (e.g. every shard's thread actors). */
function sumLabelled(m: Record<string, number>, prefix: string, label: string): number {
  let n = 0;
  for (const [k, v] of Object.entries(m)) if (k.startsWith(prefix) && k.includes(label)) n += v;
  return n;
}

export default async function (ctx: VuContext): Promise<void> {
  const data = ctx.data as Data;
  if (ctx.vu === 1 && !monitoring) void monitor(ctx);
  const ws = await open(ctx.url, data.users[ctx.vu - 1]!.token);
  let closed = false;
  ws.on('close', () => (closed = true));
  if (MODE === 'history') {
    // A bounded window of history requests for thread ids nobody ever created.
    const inFlight = new Set<Promise<unknown>>();
    for (let i = 0; i < 1_000_000 && !ctx.signal.aborted && !closed; i++) {
      const p = request(ws, { t: 'history', thread: `g:${randomBytes(9).toString('base64url')}` }).then(() => answers.add(1));
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
      if (inFlight.size >= WINDOW) await Promise.race(inFlight);
    }
    await Promise.allSettled(inFlight);
  } else if (ctx.vu === 1) {
    for (let i = 0; i < 100_000 && !ctx.signal.aborted && !closed; i++) {
      await request(ws, { t: 'send', thread: data.group, cid: `p${ctx.vu}-${ctx.iteration}-${i}`, body: BODY });
      posted.add(1);
    }
  } else {
    // Never read again: the server's send buffer for this socket only grows.
    ws.pause(); // ws's own pause: pausing its socket alone is undone whenever its parser drains
    await new Promise<void>((resolve) => {
      ctx.signal.addEventListener('abort', () => resolve(), { once: true });
      ws.on('close', () => resolve());
    });
    if (closed && !ctx.signal.aborted) closedByServer.add(1);
  }
  check(true, { 'vu ran': (x) => x });
  ws.terminate();
  if (!ctx.signal.aborted) await sleep(60, ctx.signal); // one iteration per VU
}
