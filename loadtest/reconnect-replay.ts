// reconnect-replay: users go offline, messages pile up for them, they come back. setup() registers
// N receivers and a few senders, connects each receiver once (its cursor at the log's end) and
// closes it, then the senders send M messages to each receiver (in order per receiver). The timed
// part: all N receivers reconnect at once with `since` = their stored cursor; each measures the time
// from opening the socket to `synced` (the replay) and checks it got all M exactly once, in order.
// Counter replayed_messages: its rate over the timed part is the server's replay rate.
//
//   npm run loadtest -- loadtest/reconnect-replay.ts --spawn --vus 100 -e MESSAGES=50
import { WebSocket } from 'ws';
import { ParleyClient, type MsgEvent } from '../client/index.js';
import { Counter, Trend, check, createUsers, now, pool, withTimeout, type LoadUser, type Options, type SetupEnv, type VuContext } from './k6/index.js';

const M = Math.max(1, Number(process.env.MESSAGES ?? 50));
const SENDERS = 16;

export const options: Options = {
  scenarios: {
    replay: { executor: 'per-vu-iterations', vus: 100, iterations: 1, maxDuration: '120s', gracefulStop: '10s' },
  },
  thresholds: {
    checks: ['rate>0.999'],
    replay_time: ['p(99)<30000'],
    replayed_messages: ['count>0'],
  },
  setupTimeout: '900s',
};

const replayTime = new Trend('replay_time');
const replayed = new Counter('replayed_messages');
const perUserRate = new Trend('replay_msgs_per_s', false);

interface Data {
  receivers: LoadUser[];
  senders: string[];
  since: number[];
  m: number;
}

export async function setup(env: SetupEnv): Promise<Data> {
  const say = (m: string) => console.error(`setup: ${m}`);
  const receivers = await createUsers(env.base, { count: env.vus, prefix: 'rr', log: say });
  const senders = await createUsers(env.base, { count: Math.min(SENDERS, env.vus), prefix: 'rs', log: say });
  // Online once, then offline: the cursor a real device would have stored.
  const since = await pool(receivers, 16, async (r) => {
    const c = new ParleyClient({ url: env.url, token: r.token, WebSocket, reconnect: false });
    try {
      await withTimeout(c.connect(), 30_000, 'receiver connect');
      return c.lastU;
    } finally {
      await c.close();
    }
  });
  const clients = senders.map((s) => new ParleyClient({ url: env.url, token: s.token, WebSocket, requestTimeoutMs: 60_000 }));
  try {
    await Promise.all(clients.map((c) => withTimeout(c.connect(), 30_000, 'sender connect')));
    const t0 = Date.now();
    let sent = 0;
    // Sequential per receiver (so the order is the send order), 32 receivers at a time.
    await pool(receivers, 32, async (r, i) => {
      const c = clients[i % clients.length]!;
      for (let k = 0; k < M; k++) {
        await c.send({ to: r.user, body: JSON.stringify({ k, i }) });
        sent++;
      }
    });
    say(`piled up ${sent} messages (${M} per receiver) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
  return { receivers, senders: senders.map((s) => s.user), since, m: M };
}

export default async function (ctx: VuContext): Promise<void> {
  const data = ctx.data as Data;
  const me = data.receivers[ctx.vu - 1]!;
  const sender = data.senders[(ctx.vu - 1) % data.senders.length]!;
  const got: number[] = [];
  const client = new ParleyClient({ url: ctx.url, token: me.token, WebSocket, since: data.since[ctx.vu - 1], reconnect: false, requestTimeoutMs: 60_000 });
  client.on('error', () => undefined);
  client.on('msg', (m: MsgEvent) => {
    if (m.from !== sender) return;
    try {
      got.push(JSON.parse(m.body ?? '{}').k);
    } catch {
      got.push(-1);
    }
  });
  const onAbort = () => void client.close();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  try {
    const t0 = now();
    await withTimeout(client.connect(), 60_000, 'reconnect');
    const ms = now() - t0;
    replayTime.add(ms);
    replayed.add(got.length);
    perUserRate.add(got.length / (ms / 1000));
    check(got, {
      'all M replayed before synced': (g) => g.length === data.m,
      'exactly once, in order': (g) => g.every((k, i) => k === i),
    });
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    await client.close();
  }
}
