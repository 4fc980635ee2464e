// chat-1to1: VUs in pairs (1↔2, 3↔4, ...) chat over their 1:1 thread. Each VU connects once and keeps
// its client across iterations; one iteration sends one message (stamped with the send time) to the
// partner and awaits the ok. The partner's 'msg' listener measures delivery latency end to end
// (sender and receiver share this machine's clock).
//
//   npm run loadtest -- loadtest/chat-1to1.ts --spawn --vus 200 --duration 20s
//   -e THINK_MS=100   pause between a VU's sends (default 0: closed loop, as fast as the server acks)
import { WebSocket } from 'ws';
import { ParleyClient, type MsgEvent } from '../client/index.js';
import { Counter, Trend, check, createUsers, now, sleep, withTimeout, type LoadUser, type Options, type SetupEnv, type VuContext } from './k6/index.js';

export const options: Options = {
  scenarios: {
    chat: { executor: 'constant-vus', vus: 100, duration: '30s', gracefulStop: '5s' },
  },
  thresholds: {
    delivery_latency: ['p(99)<1000'],
    send_ack: ['p(99)<1000'],
    checks: ['rate>0.999'],
    messages_delivered: ['count>0'],
  },
  setupTimeout: '300s',
};

const delivery = new Trend('delivery_latency');
const sendAck = new Trend('send_ack');
const delivered = new Counter('messages_delivered');
const sent = new Counter('messages_sent');
const gaps = new Counter('delivery_gaps');
const connectTime = new Trend('connect_time');

const THINK_MS = Number(process.env.THINK_MS ?? 0);

interface Data {
  users: LoadUser[];
}

export async function setup(env: SetupEnv): Promise<Data> {
  if (env.vus < 2) throw new Error('chat-1to1 needs at least 2 VUs');
  const users = await createUsers(env.base, { count: env.vus, prefix: 'c', concurrency: 16, log: (m) => console.error(`setup: ${m}`) });
  return { users };
}

interface Session {
  client: ParleyClient;
  signal: AbortSignal;
  partner: LoadUser;
  /** per sender: the last message number seen, and the last thread seq seen */
  lastN: number;
  lastSeq: number;
}

const sessions = new Map<number, Session>();

function partnerOf(vu: number, vus: number): number {
  if (vu % 2 === 1) return vu + 1 <= vus ? vu + 1 : vu - 1; // an odd last VU talks to its left neighbour
  return vu - 1;
}

async function open(ctx: VuContext): Promise<Session> {
  const data = ctx.data as Data;
  const me = data.users[ctx.vu - 1]!;
  const partner = data.users[partnerOf(ctx.vu, ctx.vus) - 1]!;
  const client = new ParleyClient({ url: ctx.url, token: me.token, WebSocket, requestTimeoutMs: 30_000 });
  const s: Session = { client, signal: ctx.signal, partner, lastN: -1, lastSeq: 0 };
  client.on('msg', (m: MsgEvent) => {
    if (m.from !== partner.user) return; // our own sends, echoed to our devices
    const t = now();
    let body: { t?: number; n?: number };
    try {
      body = JSON.parse(m.body ?? '{}');
    } catch {
      body = {};
    }
    if (typeof body.t === 'number') delivery.add(t - body.t);
    delivered.add(1);
    const n = typeof body.n === 'number' ? body.n : -1;
    if (n > s.lastN + 1 && s.lastN >= 0) gaps.add(n - s.lastN - 1);
    check(m, { 'delivered once, in order': (x) => x.seq > s.lastSeq && n > s.lastN });
    if (m.seq > s.lastSeq) s.lastSeq = m.seq;
    if (n > s.lastN) s.lastN = n;
  });
  client.on('error', () => undefined); // protocol complaints show up as failed sends
  sessions.set(ctx.vu, s);
  ctx.signal.addEventListener(
    'abort',
    () => {
      sessions.delete(ctx.vu);
      // Give messages already on their way a moment to land, then leave.
      setTimeout(() => void client.close(), 300);
    },
    { once: true },
  );
  const t0 = now();
  await withTimeout(client.connect(), 30_000, 'connect');
  connectTime.add(now() - t0);
  return s;
}

export default async function (ctx: VuContext): Promise<void> {
  let s = sessions.get(ctx.vu);
  if (!s || s.signal !== ctx.signal) s = await open(ctx);
  const t0 = now();
  const res = await s.client.send({ to: s.partner.user, body: JSON.stringify({ t: t0, n: ctx.iteration, vu: ctx.vu }) });
  sendAck.add(now() - t0);
  sent.add(1);
  check(res, { 'send ok': (r) => typeof r.seq === 'number' && typeof r.id === 'string' });
  if (THINK_MS > 0) await sleep(THINK_MS / 1000);
}
