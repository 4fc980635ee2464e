// idle-hold: ramp up to N idle authenticated connections and hold them; measure the server's RSS per
// connection from its GET /metrics (parley_process_resident_memory_bytes before the test vs while
// holding, divided by parley_connections). Raw `ws` sockets speaking the wire codec keep the
// generators light: hello → synced, then one ping per socket every 20 s (heartbeat is 25 s).
//
//   npm run loadtest -- loadtest/idle-hold.ts --spawn --vus 5000
import { WebSocket } from 'ws';
import { decodeFrame, encodeFrame } from '../protocol/wire.js';
import { Counter, Gauge, Trend, check, createUsers, now, serverMetrics, sleep, type LoadUser, type Options, type SetupEnv, type VuContext } from './k6/index.js';

export const options: Options = {
  scenarios: {
    hold: {
      executor: 'ramping-vus',
      startVUs: 0,
      stages: [
        { duration: '15s', target: 1000 },
        { duration: '15s', target: 1000 },
      ],
      gracefulStop: '1s',
    },
  },
  thresholds: {
    checks: ['rate>0.999'],
    connect_time: ['p(99)<5000'],
    server_rss_per_conn_kib: ['value<256'],
  },
  setupTimeout: '600s',
};

const connectTime = new Trend('connect_time');
const connections = new Counter('connections');
const closedEarly = new Counter('closed_by_server');
const rssPerConn = new Gauge('server_rss_per_conn_kib');
const serverConns = new Gauge('server_connections');
const serverRss = new Gauge('server_rss_mib');

interface Data {
  users: LoadUser[];
  rssBefore: number;
}

export async function setup(env: SetupEnv): Promise<Data> {
  const users = await createUsers(env.base, { count: env.vus, prefix: 'i', concurrency: 16, log: (m) => console.error(`setup: ${m}`) });
  await sleep(1); // let the login burst settle
  const m = await serverMetrics(env.base);
  const rssBefore = m.parley_process_resident_memory_bytes ?? NaN;
  console.error(`setup: server RSS before the connections: ${(rssBefore / 2 ** 20).toFixed(1)} MiB`);
  return { users, rssBefore };
}

// One keep-alive timer per process for every open socket.
const open = new Set<WebSocket>();
let keepAlive: ReturnType<typeof setInterval> | undefined;
const PING = encodeFrame({ t: 'ping' });

function track(ws: WebSocket): void {
  open.add(ws);
  keepAlive ??= setInterval(() => {
    for (const s of open) if (s.readyState === WebSocket.OPEN) s.send(PING);
  }, 20_000).unref();
}

let monitoring = false;

/** VU 1 samples the server every 2 s; the per-connection figure is updated whenever the count is at its peak. */
async function monitor(ctx: VuContext, data: Data): Promise<void> {
  monitoring = true;
  let peak = 0;
  for (let i = 0; i < 100_000 && !ctx.signal.aborted; i++) {
    try {
      const m = await serverMetrics(ctx.base, 3000);
      const conns = m.parley_connections ?? 0;
      const rss = m.parley_process_resident_memory_bytes ?? NaN;
      if (conns >= peak && conns > 0) {
        peak = conns;
        serverConns.add(conns);
        serverRss.add(rss / 2 ** 20);
        rssPerConn.add((rss - data.rssBefore) / conns / 1024);
      }
    } catch {
      // busy server: next time
    }
    await sleep(2, ctx.signal);
  }
  monitoring = false;
}

export default async function (ctx: VuContext): Promise<void> {
  const data = ctx.data as Data;
  if (ctx.vu === 1 && !monitoring) void monitor(ctx, data);
  const me = data.users[ctx.vu - 1]!;
  const t0 = now();
  const ws = new WebSocket(ctx.url, { perMessageDeflate: false });
  ws.binaryType = 'nodebuffer';
  let synced = false;
  const result = await new Promise<{ code: number; reason: string } | 'aborted'>((resolve) => {
    const onAbort = () => resolve('aborted');
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    const handshake = setTimeout(() => ws.terminate(), 30_000);
    ws.on('open', () => ws.send(encodeFrame({ t: 'hello', token: me.token })));
    ws.on('message', (raw: Buffer) => {
      if (synced) return; // idle: nothing should come but pongs
      let f: { t?: string };
      try {
        f = decodeFrame(raw) as { t?: string };
      } catch {
        return;
      }
      if (f.t === 'synced') {
        synced = true;
        clearTimeout(handshake);
        connectTime.add(now() - t0);
        connections.add(1);
        track(ws);
      }
    });
    ws.on('error', () => undefined); // a close follows
    ws.on('close', (code, reason) => {
      clearTimeout(handshake);
      ctx.signal.removeEventListener('abort', onAbort);
      resolve({ code, reason: reason.toString() });
    });
  });
  open.delete(ws);
  if (result === 'aborted') {
    check(synced, { 'connected and synced': (x) => x });
    ws.close(1000);
    return;
  }
  // The server (or the handshake timer) ended the socket before the test did.
  check(synced, { 'connected and synced': (x) => x });
  if (synced) closedEarly.add(1);
  throw new Error(`socket closed ${synced ? 'while idle' : 'before synced'}: ${result.code} ${result.reason}`);
}
