// Group fan-out (issue 3): GROUP_COUNT groups of GROUP_SIZE members, every member online on its
// own connection (one VU = one member). VU 1 of each group is its sender: from a common start time
// it sends for SEND_SECONDS with at most WINDOW sends awaiting their `ok`, the send time in the
// body. Every other member measures send→receive latency of each `msg`, and after a drain period
// compares what it received with the thread's newest seq (history limit 1) to count lost,
// duplicated and out-of-order deliveries.
//
//   npm run loadtest -- loadtest/group-fanout.ts --spawn -e GROUP_SIZE=100
//
// Rates: the runner's "/s" column divides by the whole test (connect + send + drain); the
// sustained rates are group_messages_in_window / SEND_SECONDS and deliveries_in_window / SEND_SECONDS.
//
// Environment (all optional):
//   GROUP_SIZE      members per group, creator included (2..1024; default 100)
//   GROUP_COUNT     number of groups (default max(1, floor(1024 / GROUP_SIZE)): ~1000 connections)
//   WINDOW          sends in flight per sender (default 4)
//   MSG_RATE        total messages/s over all senders, paced (default 0: closed loop, each sender
//                   sends as fast as its WINDOW of unanswered sends allows = the saturation rate)
//   SEND_SECONDS    length of the send phase (default 20)
//   READY_SECONDS   time from the end of setup to the start of sending, for every VU to connect
//                   (default 5 + VUs / 200)
//   DRAIN_SECONDS   wait after the send phase before counting losses (default 5); a member that
//                   still misses messages then keeps polling history every 2 s for its backlog,
//                   up to DRAIN_MAX_SECONDS after the send phase (default 60)
//   BODY_BYTES      message body size (default 100)
//   ACK             1 (default): members ack like the SDK does (drives delivered receipts);
//                   0: autoAck off, to measure the message fan-out without receipts
//   SETUP_CONCURRENCY  parallel register/login calls in setup (default 32)
//   PREFIX          username prefix (default random per run); with a fixed prefix a re-run logs
//                   the existing users in instead of registering them
//   PASSWORD        default 'loadtest-password'
import { WebSocket } from 'ws';
import { ParleyClient } from '../client/index.js';
import { Counter, Rate, Trend, check, createUsers, pool, sleep, type Options, type VuContext } from './k6/index.js';

// ---- configuration ----

function intEnv(name: string, dflt: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name}=${raw}: expected an integer in ${min}..${max}`);
  return n;
}

const GROUP_SIZE = intEnv('GROUP_SIZE', 100, 2, 1024);
// Not GROUPS: bash keeps its own GROUPS variable and ignores `GROUPS=2 cmd`.
const GROUPS = intEnv('GROUP_COUNT', Math.max(1, Math.floor(1024 / GROUP_SIZE)), 1, 10_000);
const WINDOW = intEnv('WINDOW', 4, 1, 1000);
const MSG_RATE = intEnv('MSG_RATE', 0, 0, 1_000_000);
const SEND_SECONDS = intEnv('SEND_SECONDS', 20, 1, 3600);
const TOTAL_VUS = GROUP_SIZE * GROUPS;
const READY_SECONDS = intEnv('READY_SECONDS', 5 + Math.ceil(TOTAL_VUS / 200), 1, 3600);
const DRAIN_SECONDS = intEnv('DRAIN_SECONDS', 5, 1, 600);
const DRAIN_MAX_SECONDS = Math.max(DRAIN_SECONDS, intEnv('DRAIN_MAX_SECONDS', 60, 1, 3600));
const BODY_BYTES = intEnv('BODY_BYTES', 100, 24, 16 * 1024);
const ACK = intEnv('ACK', 1, 0, 1) === 1;
const SETUP_CONCURRENCY = intEnv('SETUP_CONCURRENCY', 32, 1, 1024);
const PASSWORD = process.env.PASSWORD || 'loadtest-password';
/** Slack after the drain for the loss check to answer before the VUs close and end. */
const CHECK_SLACK_SECONDS = 3;

export const options: Options = {
  scenarios: {
    fanout: {
      // One iteration per VU: connect, (send,) drain, count, close — on the timetable from setup().
      executor: 'per-vu-iterations',
      vus: TOTAL_VUS,
      iterations: 1,
      // An upper bound only: the VUs end on their own at the end of their timetable.
      maxDuration: `${READY_SECONDS + SEND_SECONDS + DRAIN_MAX_SECONDS + CHECK_SLACK_SECONDS + 60}s`,
    },
  },
  thresholds: { checks: ['rate>0.99'] },
  // Registering users costs two scrypt hashes each on the server.
  setupTimeout: '300s',
  // The VUs hold their sockets until the end on their own timetable: no grace needed.
  gracefulStop: '1s',
};

// ---- metrics ----

/** send (in the body) → receipt of the `msg` by another member; same machine, same wall clock. */
const deliveryLatency = new Trend('delivery_latency');
/** `msg` events received by members other than the sender (G − 1 per message when nothing is lost). */
const deliveries = new Counter('deliveries');
/** Deliveries received inside the send phase: / SEND_SECONDS = sustained deliveries/s. */
const deliveriesInWindow = new Counter('deliveries_in_window');
/** Sends answered `ok`. */
const groupMessages = new Counter('group_messages');
/** `ok`s received inside the send phase: / SEND_SECONDS = sustained messages/s. */
const groupMessagesInWindow = new Counter('group_messages_in_window');
/** send → ok (committed, fsync by default). */
const sendLatency = new Trend('send_ok_latency');
/** After the drain: what each member should have received (newest seq of the thread, minus its own). */
const expectedDeliveries = new Counter('expected_deliveries');
const missingDeliveries = new Counter('missing_deliveries');
/** End of the send phase → the member's last delivery: how long the backlog took to arrive. */
const drainTime = new Trend('drain_time');
const duplicateDeliveries = new Counter('duplicate_deliveries');
/** A seq arrived before an earlier one (per-thread order broken, or an earlier one lost). */
const outOfOrder = new Counter('out_of_order_deliveries');
/** The sender's own `msg` echo (PROTOCOL §5), not a delivery. */
const echoes = new Counter('sender_echoes');
/** Durable `receipt` events members received (delivered receipts fan out to every member). */
const receiptEvents = new Counter('receipt_events');
/** Socket closes seen by the SDK (it reconnects and replays); `resync` = a gap in u. */
const disconnects = new Counter('disconnects');
const disconnectsHandshake = new Counter('disconnects_handshake_timeout');
const disconnectsServer = new Counter('disconnects_by_server');
const resyncs = new Counter('resyncs');
const clientErrors = new Counter('client_errors');
const connectTime = new Trend('connect_time');
/** VU was connected and synced before the send phase started. */
const readyInTime = new Rate('ready_in_time');
const sendErrors = new Counter('send_errors');
/** Paced mode: a send was due while WINDOW sends were unanswered (it went out late). */
const windowFull = new Counter('window_full');

// ---- setup ----

interface SetupEnv { url: string; base: string; vus: number }

interface FanoutData {
  users: string[];
  tokens: string[];
  threads: string[];
  /** epoch ms: senders start */
  startAt: number;
  /** epoch ms: senders stop */
  stopAt: number;
  /** epoch ms: members count what they got */
  checkAt: number;
}

export async function setup(env: SetupEnv): Promise<FanoutData> {
  const prefix = process.env.PREFIX || 'gf';
  console.log(`group-fanout: ${GROUPS} group(s) of ${GROUP_SIZE} = ${TOTAL_VUS} connections, window ${WINDOW}, ` +
    `${MSG_RATE > 0 ? `${MSG_RATE} msg/s paced` : 'closed loop'}, send ${SEND_SECONDS} s, ack ${ACK ? 'on' : 'off'}, users ${prefix}0..${TOTAL_VUS - 1}`);
  if (env.vus < TOTAL_VUS) console.warn(`group-fanout: only ${env.vus} VUs for ${TOTAL_VUS} members: members beyond are offline`);
  const accounts = await createUsers(env.base, { count: TOTAL_VUS, prefix, exact: Boolean(process.env.PREFIX), concurrency: SETUP_CONCURRENCY, password: PASSWORD, log: (m) => console.log(`setup: ${m}`) });
  const users = accounts.map((a) => a.user);
  const tokens = accounts.map((a) => a.token);

  const t0 = Date.now();
  const threads = new Array<string>(GROUPS);
  await pool(Array.from({ length: GROUPS }, (_, g) => g), 4, async (g) => {
    const first = g * GROUP_SIZE;
    const creator = new ParleyClient({ url: env.url, token: tokens[first]!, WebSocket, reconnect: false });
    try {
      await creator.connect();
      const members = users.slice(first + 1, first + GROUP_SIZE);
      const res = await creator.request<{ thread: string }>('group.create', { title: `fanout ${g}`, members });
      threads[g] = res.thread;
    } finally {
      await creator.close();
    }
  });
  console.log(`setup: ${GROUPS} group(s) created in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const startAt = Date.now() + READY_SECONDS * 1000;
  const stopAt = startAt + SEND_SECONDS * 1000;
  return { users, tokens, threads, startAt, stopAt, checkAt: stopAt + DRAIN_SECONDS * 1000 };
}

/** After the VUs: the server should hold no connection and no socket registration. */
export async function teardown(_data: unknown, env: { url: string; base: string }): Promise<void> {
  const t0 = Date.now();
  let last = '';
  for (;;) {
    try {
      const text = await (await fetch(`${env.base.replace(/\/+$/, '')}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
      const pick = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
      const conns = pick('parley_connections');
      const attached = pick('parley_attached_sockets');
      last = `connections ${conns}, attached sockets ${attached}`;
      if (conns === 0 && attached === 0) break;
    } catch (err) {
      last = `metrics: ${(err as Error).message}`;
    }
    if (Date.now() > t0 + 30_000) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  console.log(`teardown: ${((Date.now() - t0) / 1000).toFixed(0)} s after the VUs ended the server reports ${last}`);
}

// ---- the VUs ----

let closesLogged = 0;

const now = (): number => performance.timeOrigin + performance.now();

/** Sleeps until the epoch-ms time `at` (or the VU's end); false if the VU ended first. */
async function until(at: number, signal: AbortSignal): Promise<boolean> {
  const ms = at - Date.now();
  if (ms > 0) await sleep(ms / 1000);
  return !signal.aborted;
}

export default async function (ctx: VuContext): Promise<void> {
  const data = ctx.data as FanoutData;
  const index = ctx.vu - 1;
  // One connection per VU for the whole test: later iterations (if any) only idle.
  if (ctx.iteration > 0 || index >= data.tokens.length) return;
  const group = Math.floor(index / GROUP_SIZE);
  const isSender = index % GROUP_SIZE === 0;
  const thread = data.threads[group]!;
  const me = data.users[index]!;

  // Per-member delivery bookkeeping for this thread.
  let expectSeq = 1;
  let received = 0;
  let lastDeliveryAt = 0;
  const seen = new Set<number>();

  // 30 s: under a loaded server a hello may take longer than the SDK's default 15 s.
  const client = new ParleyClient({ url: ctx.url, token: data.tokens[index]!, WebSocket, autoAck: ACK, requestTimeoutMs: 30_000 });
  client.on('msg', (m) => {
    if (m.thread !== thread) return;
    const t = now();
    if (m.from === me) {
      echoes.add(1);
      return;
    }
    if (seen.has(m.seq)) {
      duplicateDeliveries.add(1);
      return;
    }
    seen.add(m.seq);
    if (m.seq !== expectSeq) outOfOrder.add(1);
    expectSeq = Math.max(expectSeq, m.seq + 1);
    received++;
    lastDeliveryAt = Date.now();
    deliveries.add(1);
    if (t >= data.startAt && t <= data.stopAt) deliveriesInWindow.add(1);
    const sent = parseFloat(m.body ?? '');
    if (Number.isFinite(sent)) deliveryLatency.add(t - sent);
  });
  client.on('receipt', () => receiptEvents.add(1));
  client.on('close', (c) => {
    if (!c.willReconnect) return; // our own close() at the end
    disconnects.add(1);
    if (c.reason === 'resync') resyncs.add(1);
    else if (c.reason === 'handshake timeout') disconnectsHandshake.add(1);
    else if (c.code !== 1006) disconnectsServer.add(1);
    if (++closesLogged <= 5) console.log(`group-fanout: a socket closed under the SDK: ${c.code} ${c.reason}`);
  });
  client.on('error', () => clientErrors.add(1));

  const t0 = Date.now();
  try {
    await client.connect();
    connectTime.add(Date.now() - t0);
  } catch (err) {
    check(err, { 'connected': () => false });
    throw err;
  }
  const ready = Date.now() < data.startAt;
  readyInTime.add(ready);
  check(ready, { 'connected before the send phase': (v) => v });

  try {
    if (!(await until(data.startAt, ctx.signal))) return;

    if (isSender) await sendLoop(client, thread, group, data.stopAt, ctx.signal);

    // Drain, then compare with the thread's newest seq — again every 2 s while a backlog is
    // still arriving (an overloaded server is late, which is not the same as lossy), up to
    // DRAIN_MAX_SECONDS after the send phase.
    if (!(await until(data.checkAt, ctx.signal))) return;
    if (!isSender) {
      try {
        const deadline = data.stopAt + DRAIN_MAX_SECONDS * 1000;
        let newest = 0;
        for (;;) {
          const page = await client.history({ thread, limit: 1 });
          newest = page.messages[0]?.seq ?? 0;
          if (received >= newest || Date.now() >= deadline || ctx.signal.aborted) break;
          await sleep(2);
        }
        if (received > 0) drainTime.add(Math.max(0, lastDeliveryAt - data.stopAt));
        expectedDeliveries.add(newest);
        const missing = Math.max(0, newest - received);
        missingDeliveries.add(missing);
        check(missing, { 'every message delivered after the drain': (v) => v === 0 });
      } catch (err) {
        check(err, { 'history after the drain': () => false });
      }
    }
    // Stay a moment so that the other members' last requests are not disturbed by a close storm.
    await until(Math.max(Date.now(), data.checkAt) + CHECK_SLACK_SECONDS * 1000, ctx.signal);
  } finally {
    await client.close();
  }
}

/**
 * Sends until stopAt with at most WINDOW unanswered sends: closed loop (as fast as the window
 * allows), or paced at MSG_RATE / GROUPS per sender. Each body starts with its send time.
 */
async function sendLoop(client: ParleyClient, thread: string, group: number, stopAt: number, signal: AbortSignal): Promise<void> {
  const pad = 'x'.repeat(BODY_BYTES);
  let n = 0;
  const sendOne = async (): Promise<void> => {
    const sent = now();
    let body = `${sent.toFixed(3)} #${n++} `;
    body += pad.slice(0, Math.max(0, BODY_BYTES - body.length));
    try {
      const res = await client.send({ thread, body });
      const t = now();
      sendLatency.add(t - sent);
      groupMessages.add(1);
      if (t <= stopAt) groupMessagesInWindow.add(1);
      check(res, { 'send ok': (r) => typeof r.seq === 'number' });
    } catch (err) {
      sendErrors.add(1);
      check(err, { 'send ok': () => false });
      if (!signal.aborted) await sleep(0.1);
    }
  };

  if (MSG_RATE === 0) {
    const worker = async (): Promise<void> => {
      while (!signal.aborted && Date.now() < stopAt) await sendOne();
    };
    await Promise.all(Array.from({ length: WINDOW }, worker));
    return;
  }

  // Paced: sender g sends at startAt + (g / GROUPS + k) * interval, so the groups interleave.
  const interval = (1000 * GROUPS) / MSG_RATE;
  const first = stopAt - SEND_SECONDS * 1000 + (group / GROUPS) * interval;
  const inflight = new Set<Promise<void>>();
  for (let k = 0; ; k++) {
    const due = first + k * interval;
    if (due >= stopAt || !(await until(due, signal))) break;
    if (inflight.size >= WINDOW) {
      windowFull.add(1);
      await Promise.race(inflight);
      if (signal.aborted) break;
    }
    const p: Promise<void> = sendOne().finally(() => inflight.delete(p));
    inflight.add(p);
  }
  await Promise.all(inflight);
}
