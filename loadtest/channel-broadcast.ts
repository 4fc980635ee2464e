// Broadcast channel fan-out: one `broadcast` channel, SUBSCRIBERS WebSocket sockets that joined it
// (channel.join) and VIEWERS Server-Sent Events streams (GET /v1/channels/:channel/events), all on
// the real server and the real protocol. POSTERS users (the owner and admins) post to it from a
// common start time for SECONDS: closed loop (RATE=0, each poster keeps WINDOW posts awaiting
// their `ok`: the saturation rate) or paced (RATE posts/s in total, on an absolute schedule).
// Every post's body starts with its send time.
//
//   npm run loadtest -- loadtest/channel-broadcast.ts --spawn -e CHANNEL_POSTS_PER_SECOND=100000           # saturation
//   npm run loadtest -- loadtest/channel-broadcast.ts --spawn -e RATE=10                                  # 10 posts/s
//   npm run loadtest -- loadtest/channel-broadcast.ts --spawn -e SUBSCRIBERS=500 -e VIEWERS=50 -e SECONDS=5  # quick look
//
// CHANNEL_POSTS_PER_SECOND is the server's own setting (the spawned server inherits -e): its
// default of 20 posts per user per second caps a closed loop at 20 × POSTERS posts/s; rate_limited
// answers are counted (`post_rate_limited`) and retried after the `retry` they carry.
//
// Cheap clients, so that the generators (which share the cores with the server) are not the limit:
// - subscribers are raw WebSockets on net.Socket (handshake, masked client frames, ping→pong, no
//   per-frame allocation): hello with a token → synced → channel.join. Each `cmsg` is recognised
//   by its first bytes and only its `seq` is read from the msgpack bytes (a bitmap per socket:
//   duplicates, out of order, and after the drain the missing ones against the channel's final
//   seq); every LATENCY_EVERY-th post (staggered over the sockets) is decoded fully for the
//   send time in its body → `ws_latency`.
// - viewers are node:http GETs; each event's `id:` is read (same bookkeeping), every
//   LATENCY_EVERY-th event's `data:` is JSON-parsed → `sse_latency`.
// - posters use the client SDK (ParleyClient.channelPost).
// Several sockets share one account (joining is per socket): SOCKETS_PER_ACCOUNT sockets per user,
// so setup registers ~SUBSCRIBERS / SOCKETS_PER_ACCOUNT users instead of SUBSCRIBERS.
//
// Timetable (absolute times from setup): the sockets connect at CONNECT_RATE per second, then
// READY_SECONDS, then SECONDS of posting, then DRAIN_SECONDS; a socket still missing posts then
// waits (checking locally every 0.5 s) up to DRAIN_MAX_SECONDS after the posting stopped.
//
// Figures (the runner's "/s" column divides by the whole test, connect ramp and drain included):
//   deliveries/s = ws_deliveries_in_window / SECONDS (WebSocket), sse_deliveries_in_window / SECONDS
//   (SSE), their sum the total; posts/s = posts_in_window / SECONDS; `ws_latency` / `sse_latency`
//   post (body stamp) → receipt; lost = `ws_lost` / `sse_lost`, duplicates `ws_duplicates` /
//   `sse_duplicates`; `server_cpu_pct` / `server_rss_mib` are read from the server's /metrics
//   over the posting window without its first and last second (process-wide, 100 = one core);
//   `machine_busy_pct` (all cores) and `machine_softirq_pct` (one core = 100) from /proc/stat over
//   the same interval; `generator_cpu_pct` and `generator_loop_delay_*` per generator process
//   over the posting window (min and max over the processes).
//
// Environment (all optional):
//   SUBSCRIBERS          WebSocket sockets that join the channel (default 10000)
//   VIEWERS              SSE viewers (default 1000)
//   POSTERS              posting users: the channel's owner and POSTERS-1 admins (1..100; default 4)
//   SECONDS              length of the posting phase (default 20)
//   RATE                 posts/s over all posters (default 0: closed loop at saturation)
//   WINDOW               posts awaiting `ok` per poster: the closed loop's window, and the cap of
//                        a paced poster (a post due beyond it is skipped and counted) (default 8)
//   BODY_BYTES           post body size (default 100)
//   LATENCY_EVERY        decode 1 post of N fully for the latency (default: ~20,000 samples/s in
//                        total: RATE × (SUBSCRIBERS + VIEWERS) / 20000, or 50 at saturation; 1 = all)
//   SOCKETS_PER_ACCOUNT  subscriber sockets per user account (default 100)
//   CONNECT_RATE         sockets and viewers opened per second, all generators together (default 1000)
//   READY_SECONDS        after the connect ramp, before posting (default 5)
//   DRAIN_SECONDS        after posting, before counting (default 5); DRAIN_MAX_SECONDS (default 30)
//   SETUP_CONCURRENCY    parallel register/login calls in setup (default 16)
import http from 'node:http';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { cpus } from 'node:os';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { WebSocket } from 'ws';
import { ParleyClient } from '../client/index.js';
import { decodeFrame, encodeFrame } from '../protocol/wire.js';
import { Counter, Gauge, Rate, Trend, check, createUsers, now, runTag, serverMetrics, sleep, type Options, type VuContext } from './k6/index.js';

// ---- configuration ----

function intEnv(name: string, dflt: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name}=${raw}: expected an integer in ${min}..${max}`);
  return n;
}

const SUBSCRIBERS = intEnv('SUBSCRIBERS', 10_000, 0, 100_000);
const VIEWERS = intEnv('VIEWERS', 1000, 0, 20_000);
const POSTERS = intEnv('POSTERS', 4, 1, 100);
const SECONDS = intEnv('SECONDS', 20, 1, 600);
const RATE = intEnv('RATE', 0, 0, 100_000);
const WINDOW = intEnv('WINDOW', 8, 1, 64);
const BODY_BYTES = intEnv('BODY_BYTES', 100, 32, 16 * 1024);
const LATENCY_EVERY = intEnv('LATENCY_EVERY', RATE > 0 ? Math.max(1, Math.round((RATE * (SUBSCRIBERS + VIEWERS)) / 20_000)) : 50, 1, 1_000_000);
const SOCKETS_PER_ACCOUNT = intEnv('SOCKETS_PER_ACCOUNT', 100, 1, 10_000);
const CONNECT_RATE = intEnv('CONNECT_RATE', 1000, 10, 100_000);
const READY_SECONDS = intEnv('READY_SECONDS', 5, 1, 600);
const DRAIN_SECONDS = intEnv('DRAIN_SECONDS', 5, 1, 600);
const DRAIN_MAX_SECONDS = Math.max(DRAIN_SECONDS, intEnv('DRAIN_MAX_SECONDS', 30, 1, 600));
const SETUP_CONCURRENCY = intEnv('SETUP_CONCURRENCY', 16, 1, 256);
const PASSWORD = 'loadtest-password';
const ACCOUNTS = Math.max(1, Math.ceil(SUBSCRIBERS / SOCKETS_PER_ACCOUNT));
const TOTAL_VUS = POSTERS + VIEWERS + SUBSCRIBERS;
/** From the end of setup to the first connect: the generators fork and import the script. */
const GENERATOR_START_SECONDS = 5;
const CONNECT_SECONDS = Math.ceil((SUBSCRIBERS + VIEWERS) / CONNECT_RATE);
/** Every request of a subscriber or viewer (handshake, hello, join, GET) is answered within this. */
const REQUEST_TIMEOUT_MS = 30_000;
/** Time after the count for the last VUs to finish before their sockets close. */
const CLOSE_SLACK_SECONDS = 2;

export const options: Options = {
  scenarios: {
    broadcast: {
      // One iteration per VU on the timetable from setup(): connect, join, (post,) drain, count, close.
      executor: 'per-vu-iterations',
      vus: TOTAL_VUS,
      iterations: 1,
      // An upper bound only: the VUs end on their own.
      maxDuration: `${GENERATOR_START_SECONDS + CONNECT_SECONDS + READY_SECONDS + SECONDS + DRAIN_MAX_SECONDS + CLOSE_SLACK_SECONDS + 60}s`,
    },
  },
  thresholds: { checks: ['rate>0.99'] },
  setupTimeout: '300s',
  gracefulStop: '1s',
};

// ---- metrics (the first three counters show in the runner's live line) ----

const wsDeliveriesInWindow = new Counter('ws_deliveries_in_window');
const sseDeliveriesInWindow = new Counter('sse_deliveries_in_window');
const postsInWindow = new Counter('posts_in_window');
/** every `cmsg` / SSE event received (window or not, duplicates included) */
const wsDeliveries = new Counter('ws_deliveries');
const sseDeliveries = new Counter('sse_deliveries');
const wsLatency = new Trend('ws_latency');
const sseLatency = new Trend('sse_latency');
/** the post's `ts` (the channel actor's clock when it took the post) → receipt: the fan-out part */
const wsFromTs = new Trend('ws_ts_to_receive');
const sseFromTs = new Trend('sse_ts_to_receive');
const wsLost = new Counter('ws_lost');
const sseLost = new Counter('sse_lost');
const wsDuplicates = new Counter('ws_duplicates');
const sseDuplicates = new Counter('sse_duplicates');
const wsOutOfOrder = new Counter('ws_out_of_order');
const sseOutOfOrder = new Counter('sse_out_of_order');
/** subscribers / viewers that missed at least one post after the drain */
const wsLossySubscribers = new Counter('ws_lossy_subscribers');
const sseLossyViewers = new Counter('sse_lossy_viewers');
/** posts each subscriber / viewer should have received (final seq − its join seq) */
const wsExpected = new Counter('ws_expected');
const sseExpected = new Counter('sse_expected');
/** end of posting → a subscriber's last post */
const drainTime = new Trend('drain_time');
const posts = new Counter('posts');
const postOkLatency = new Trend('post_ok_latency');
/** send → the `ts` in the post's ok (the channel actor took it) */
const postToTs = new Trend('post_to_ts');
/** event-loop delay of each generator process over the posting window (p99, max) */
const genLoopDelayP99 = new Gauge('generator_loop_delay_p99_ms');
const genLoopDelayMax = new Gauge('generator_loop_delay_max_ms');
/** each generator process's CPU over the posting window, % of one core (min and max of the processes) */
const genCpuPct = new Gauge('generator_cpu_pct');
const postErrors = new Counter('post_errors');
const postRateLimited = new Counter('post_rate_limited');
/** paced: a post due while WINDOW posts of its poster were unanswered (skipped) */
const postsSkipped = new Counter('posts_skipped');
/** paced: issue time − scheduled time */
const scheduleLag = new Trend('schedule_lag');
const connectTime = new Trend('ws_connect_join_time');
const sseConnectTime = new Trend('sse_connect_time');
const readyInTime = new Rate('ready_in_time');
const unexpectedCloses = new Counter('unexpected_closes');
const clientErrors = new Counter('client_errors');
/** frames that looked like a cmsg but whose seq could not be read cheaply (fully decoded instead) */
const slowPathFrames = new Counter('slow_path_frames');
const finalSeq = new Gauge('channel_final_seq');
const serverCpuPct = new Gauge('server_cpu_pct');
const serverRssMiB = new Gauge('server_rss_mib');
const serverRssMiBAfter = new Gauge('server_rss_mib_end_of_window');
const serverLagPauses = new Gauge('server_channel_lag_pauses');
/** the machine over the same window: busy % of all cores, and softirq (kernel network work) in % of one core */
const machineBusyPct = new Gauge('machine_busy_pct');
const machineSoftirqPct = new Gauge('machine_softirq_pct');
const serverSseSlowDisconnects = new Gauge('server_sse_slow_disconnects');

// ---- setup ----

interface SetupEnv { url: string; base: string; vus: number }

interface BroadcastData {
  channel: string;
  posterTokens: string[];
  posterUsers: string[];
  subscriberTokens: string[];
  /** epoch ms: the first socket connects */
  connectAt: number;
  /** epoch ms: posting starts / stops; the count */
  startAt: number;
  stopAt: number;
  checkAt: number;
}

export async function setup(env: SetupEnv): Promise<BroadcastData> {
  const tag = runTag();
  console.log(`channel-broadcast: ${SUBSCRIBERS} WebSocket subscribers (${ACCOUNTS} accounts × ≤ ${SOCKETS_PER_ACCOUNT} sockets), ` +
    `${VIEWERS} SSE viewers, ${POSTERS} posters, ${RATE > 0 ? `${RATE} posts/s paced` : `closed loop, window ${WINDOW}`}, ${SECONDS} s, ` +
    `body ${BODY_BYTES} B, latency from 1 post in ${LATENCY_EVERY}`);
  if (env.vus < TOTAL_VUS) console.warn(`channel-broadcast: only ${env.vus} VUs for ${TOTAL_VUS} roles: the last roles are missing`);
  const t0 = Date.now();
  const log = (m: string) => console.log(`setup: ${m}`);
  const posters = await createUsers(env.base, { count: POSTERS, prefix: 'cbp', concurrency: SETUP_CONCURRENCY, password: PASSWORD, log });
  const subs = SUBSCRIBERS > 0 ? await createUsers(env.base, { count: ACCOUNTS, prefix: 'cbs', concurrency: SETUP_CONCURRENCY, password: PASSWORD, log }) : [];
  console.log(`setup: ${POSTERS + subs.length} users registered and logged in in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const owner = new ParleyClient({ url: env.url, token: posters[0]!.token, WebSocket, reconnect: false });
  let channel: string;
  try {
    await owner.connect();
    channel = (await owner.channelCreate({ name: `lt_${tag}`, title: `load test ${tag}`, mode: 'broadcast' })).channel;
    for (const p of posters.slice(1)) await owner.channelAdmin({ channel, user: p.user, admin: true });
  } finally {
    await owner.close();
  }
  console.log(`setup: channel ${channel} with ${POSTERS - 1} admin(s)`);

  const connectAt = Date.now() + GENERATOR_START_SECONDS * 1000;
  const startAt = connectAt + (CONNECT_SECONDS + READY_SECONDS) * 1000;
  const stopAt = startAt + SECONDS * 1000;
  return {
    channel,
    posterTokens: posters.map((p) => p.token),
    posterUsers: posters.map((p) => p.user),
    subscriberTokens: subs.map((s) => s.token),
    connectAt, startAt, stopAt, checkAt: stopAt + DRAIN_SECONDS * 1000,
  };
}

/** After the VUs: the server should hold no connection, viewer or follower. */
export async function teardown(_data: unknown, env: { url: string; base: string }): Promise<void> {
  const t0 = Date.now();
  let last = '';
  for (;;) {
    try {
      const m = await serverMetrics(env.base);
      const conns = m.parley_connections;
      const viewers = m.parley_sse_viewers;
      const followers = m.parley_channel_followers ?? 0;
      last = `connections ${conns}, SSE viewers ${viewers}, channel followers ${followers}`;
      if (conns === 0 && viewers === 0 && followers === 0) break;
    } catch (err) {
      last = `metrics: ${(err as Error).message}`;
    }
    if (Date.now() > t0 + 20_000) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  console.log(`teardown: ${((Date.now() - t0) / 1000).toFixed(0)} s after the VUs ended the server reports ${last}`);
}

// ---- per-process bookkeeping, flushed to the metrics a few times a second ----

const local = { ws: 0, wsWin: 0, sse: 0, sseWin: 0, wsDup: 0, sseDup: 0, wsOoo: 0, sseOoo: 0, slow: 0 };
let windowStart = Infinity;
let windowEnd = -Infinity;

function flushLocal(): void {
  if (local.ws) wsDeliveries.add(local.ws);
  if (local.wsWin) wsDeliveriesInWindow.add(local.wsWin);
  if (local.sse) sseDeliveries.add(local.sse);
  if (local.sseWin) sseDeliveriesInWindow.add(local.sseWin);
  if (local.wsDup) wsDuplicates.add(local.wsDup);
  if (local.sseDup) sseDuplicates.add(local.sseDup);
  if (local.wsOoo) wsOutOfOrder.add(local.wsOoo);
  if (local.sseOoo) sseOutOfOrder.add(local.sseOoo);
  if (local.slow) slowPathFrames.add(local.slow);
  local.ws = local.wsWin = local.sse = local.sseWin = local.wsDup = local.sseDup = local.wsOoo = local.sseOoo = local.slow = 0;
}
setInterval(flushLocal, 200).unref();

/** Seqs received by one subscriber or viewer: a growable bitmap, duplicates and order. */
class SeqTracker {
  private bits = new Uint32Array(256);
  /** distinct seqs received */
  distinct = 0;
  maxSeen = 0;
  lastAt = 0;

  /** Returns 0 (new), 1 (duplicate); `ooo` is set when it came after a higher one. */
  add(seq: number): number {
    const w = seq >>> 5;
    if (w >= this.bits.length) {
      let n = this.bits.length * 2;
      while (n <= w) n *= 2;
      const b = new Uint32Array(n);
      b.set(this.bits);
      this.bits = b;
    }
    const m = 1 << (seq & 31);
    if (this.bits[w]! & m) return 1;
    this.bits[w]! |= m;
    this.distinct++;
    if (seq > this.maxSeen) this.maxSeen = seq;
    return 0;
  }

  /** seqs in (from, to] not received */
  missing(from: number, to: number): number {
    let have = 0;
    for (let s = from + 1; s <= to; s++) if (this.bits[s >>> 5]! & (1 << (s & 31))) have++;
    return to - from - have;
  }
}

/** The channel's final seq, asked once per process after the drain (JSON history, newest first). */
let finalSeqPromise: Promise<number> | undefined;
function channelFinalSeq(base: string, channel: string): Promise<number> {
  finalSeqPromise ??= (async () => {
    const res = await fetch(`${base}/v1/channels/${encodeURIComponent(channel)}/messages?limit=1`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    if (!res.ok) throw new Error(`GET messages: ${res.status}`);
    const page = (await res.json()) as { messages: Array<{ seq: number }> };
    return page.messages[0]?.seq ?? 0;
  })();
  return finalSeqPromise;
}

const sleepUntil = async (at: number, signal: AbortSignal): Promise<boolean> => {
  const ms = at - Date.now();
  if (ms > 0) await sleep(ms / 1000);
  return !signal.aborted;
};

/** Reads the send time at the start of a body ("<ms> <poster>-<n> xxx…"). */
const sentTimeOf = (body: unknown): number => (typeof body === 'string' ? parseFloat(body) : NaN);

// ---- the VUs ----

let loopWatch: Promise<void> | undefined;

/** This generator's event-loop delay over the posting window: how late it read what arrived. */
async function watchLoop(data: BroadcastData, signal: AbortSignal): Promise<void> {
  if (!(await sleepUntil(data.startAt, signal))) return;
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await sleepUntil(data.stopAt, signal);
  h.disable();
  const cpu = process.cpuUsage(cpu0);
  genLoopDelayP99.add(h.percentile(99) / 1e6);
  genLoopDelayMax.add(h.max / 1e6);
  genCpuPct.add(((cpu.user + cpu.system) / 1000 / Math.max(1, performance.now() - t0)) * 100);
}

export default async function (ctx: VuContext): Promise<void> {
  const data = ctx.data as BroadcastData;
  if (ctx.iteration > 0) return;
  windowStart = data.startAt;
  windowEnd = data.stopAt;
  loopWatch ??= watchLoop(data, ctx.signal);
  const i = ctx.vu - 1;
  if (i < POSTERS) return poster(ctx, data, i);
  if (i < POSTERS + VIEWERS) return viewer(ctx, data, i - POSTERS);
  if (i < TOTAL_VUS) return subscriber(ctx, data, i - POSTERS - VIEWERS);
}

/** The count after the drain, shared by subscribers and viewers. */
async function countLosses(ctx: VuContext, data: BroadcastData, seqs: SeqTracker, joinSeq: number, kind: 'ws' | 'sse'): Promise<void> {
  if (!(await sleepUntil(data.checkAt, ctx.signal))) return;
  let last: number;
  try {
    last = await channelFinalSeq(ctx.base, data.channel);
  } catch (err) {
    check(err, { 'final seq read after the drain': () => false });
    return;
  }
  finalSeq.add(last);
  // A backlog still arriving is late, not lost: wait for it (locally) up to DRAIN_MAX_SECONDS.
  const deadline = data.stopAt + DRAIN_MAX_SECONDS * 1000;
  while (seqs.distinct < last - joinSeq && Date.now() < deadline && !ctx.signal.aborted) await sleep(0.5);
  const missing = seqs.missing(joinSeq, last);
  const expected = Math.max(0, last - joinSeq);
  if (kind === 'ws') {
    // Zeros too, so that the summary always lists these counters.
    wsDuplicates.add(0);
    wsOutOfOrder.add(0);
    wsExpected.add(expected);
    wsLost.add(missing);
    if (missing > 0) wsLossySubscribers.add(1);
  } else {
    sseDuplicates.add(0);
    sseOutOfOrder.add(0);
    sseExpected.add(expected);
    sseLost.add(missing);
    if (missing > 0) sseLossyViewers.add(1);
  }
  if (seqs.lastAt > 0) drainTime.add(Math.max(0, seqs.lastAt - data.stopAt));
  check(missing, { [`every post reached every ${kind === 'ws' ? 'subscriber' : 'viewer'}`]: (v) => v === 0 });
}

// ---- WebSocket subscribers: raw frames on net.Socket ----

let closesLogged = 0;
/** The read buffer of every subscriber socket of this process (see RawSubscriber.open). */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

/** One subscriber socket: RFC 6455 client over net.Socket, reading only what it needs. */
class RawSubscriber {
  readonly seqs = new SeqTracker();
  private sock?: net.Socket;
  private rest: Buffer | null = null;
  private upgraded = false;
  private closing = false;
  private r = 0;
  private readonly waiting = new Map<number, { resolve: (f: Record<string, any>) => void; reject: (e: Error) => void }>();
  private onSynced?: () => void;
  private onFail?: (e: Error) => void;
  private pinger?: NodeJS.Timeout;

  constructor(
    private readonly url: URL,
    private readonly token: string,
    /** posts with (seq + phase) % LATENCY_EVERY === 0 are decoded fully */
    private readonly phase: number,
  ) {}

  /** TCP + upgrade + hello → synced. */
  open(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error('no synced within the request timeout')), REQUEST_TIMEOUT_MS);
      const fail = (e: Error) => {
        clearTimeout(timer);
        this.onSynced = this.onFail = undefined;
        this.sock?.destroy();
        reject(e);
      };
      this.onFail = fail;
      this.onSynced = () => {
        clearTimeout(timer);
        this.onSynced = this.onFail = undefined;
        resolve();
      };
      const key = randomBytes(16).toString('base64');
      // onread: the bytes land in one buffer shared by every socket of this process (no Buffer and
      // no stream event per read); whatever must outlive the callback is copied.
      const sock = net.connect({
        host: this.url.hostname, port: Number(this.url.port), noDelay: true,
        onread: { buffer: READ_BUFFER, callback: (n: number, buf: Uint8Array) => (this.onData(buf as Buffer, n), true) },
      });
      this.sock = sock;
      sock.on('connect', () => {
        sock.write(`GET ${this.url.pathname} HTTP/1.1\r\nHost: ${this.url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      });
      sock.on('error', (err) => {
        clientErrors.add(1);
        this.onFail?.(err);
      });
      sock.on('close', () => {
        clearInterval(this.pinger);
        for (const w of this.waiting.values()) w.reject(new Error('socket closed'));
        this.waiting.clear();
        this.onFail?.(new Error('socket closed before synced'));
        if (!this.closing) {
          unexpectedCloses.add(1);
          if (++closesLogged <= 5) console.log('channel-broadcast: a subscriber socket closed unexpectedly');
        }
      });
    });
  }

  /** A command; resolves with its `ok` frame, rejects on `err`. */
  request(frame: Record<string, unknown>): Promise<Record<string, any>> {
    return new Promise((resolve, reject) => {
      const r = ++this.r;
      const timer = setTimeout(() => {
        this.waiting.delete(r);
        reject(new Error(`${String(frame.t)}: no answer within ${REQUEST_TIMEOUT_MS} ms`));
      }, REQUEST_TIMEOUT_MS);
      this.waiting.set(r, {
        resolve: (f) => (clearTimeout(timer), resolve(f)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.write(0x2, encodeFrame({ ...frame, r }));
    });
  }

  /** Polite close (1000), destroyed after 2 s. */
  close(): Promise<void> {
    this.closing = true;
    clearInterval(this.pinger);
    const sock = this.sock;
    if (!sock || sock.destroyed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      sock.once('close', () => resolve());
      if (this.upgraded) this.write(0x8, Buffer.from([0x03, 0xe8]));
      sock.end();
      setTimeout(() => {
        sock.destroy();
        resolve();
      }, 2000).unref();
    });
  }

  /** One masked client frame. */
  private write(opcode: number, payload: Uint8Array): void {
    const sock = this.sock;
    if (!sock || sock.destroyed) return;
    const n = payload.length;
    const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
    const out = Buffer.allocUnsafe(head + 4 + n);
    out[0] = 0x80 | opcode;
    if (n < 126) out[1] = 0x80 | n;
    else if (n < 65536) {
      out[1] = 0x80 | 126;
      out.writeUInt16BE(n, 2);
    } else {
      out[1] = 0x80 | 127;
      out.writeUInt32BE(0, 2);
      out.writeUInt32BE(n, 6);
    }
    const mask = randomBytes(4);
    mask.copy(out, head);
    for (let k = 0; k < n; k++) out[head + 4 + k] = payload[k]! ^ mask[k & 3]!;
    sock.write(out);
  }

  /** `length` bytes read into `chunk` (the shared read buffer: valid during this call only). */
  private onData(chunk: Buffer, length: number): void {
    const buf = this.rest ? Buffer.concat([this.rest, chunk.subarray(0, length)]) : chunk;
    this.rest = null;
    const n = buf === chunk ? length : buf.length;
    let p = 0;
    if (!this.upgraded) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0 || end >= n) {
        this.rest = Buffer.from(buf.subarray(0, n));
        return;
      }
      const status = buf.toString('latin1', 0, Math.min(end, 64));
      if (!status.startsWith('HTTP/1.1 101')) {
        this.onFail?.(new Error(`upgrade refused: ${status.split('\r\n')[0]}`));
        return;
      }
      this.upgraded = true;
      this.write(0x2, encodeFrame({ t: 'hello', token: this.token }));
      // Application pings besides uWS's own (answered below): the server closes a silent socket.
      this.pinger = setInterval(() => this.write(0x2, encodeFrame({ t: 'ping' })), 20_000);
      this.pinger.unref();
      p = end + 4;
    }
    while (p + 2 <= n) {
      const b0 = buf[p]!;
      let len = buf[p + 1]! & 0x7f;
      let h = 2;
      if (len === 126) {
        if (p + 4 > n) break;
        len = buf.readUInt16BE(p + 2);
        h = 4;
      } else if (len === 127) {
        if (p + 10 > n) break;
        len = buf.readUInt32BE(p + 2) * 2 ** 32 + buf.readUInt32BE(p + 6);
        h = 10;
      }
      if (buf[p + 1]! & 0x80) {
        // A server never masks; treat as broken.
        clientErrors.add(1);
        this.sock?.destroy();
        return;
      }
      const s = p + h;
      const e = s + len;
      if (e > n) break;
      const opcode = b0 & 0x0f;
      if (opcode === 0x2) this.onFrame(buf, s, e);
      else if (opcode === 0x9) this.write(0xa, buf.subarray(s, e));
      else if (opcode === 0x8) this.sock?.end(); // the server closes: our 'close' counts it unless we asked else if (opcode !== 0xa) clientErrors.add(1); // text or fragments: not what Parley sends
      p = e;
    }
    if (p < n) this.rest = Buffer.from(buf.subarray(p, n));
  }

  /** One binary frame in buf[s, e). */
  private onFrame(buf: Buffer, s: number, e: number): void {
    const seq = cmsgSeq(buf, s, e);
    if (seq >= 0) {
      const t = now();
      this.countPost(seq, t);
      if ((seq + this.phase) % LATENCY_EVERY === 0) {
        const f = decodeFrame(buf.subarray(s, e)) as { body?: unknown; ts?: number };
        const sent = sentTimeOf(f.body);
        if (Number.isFinite(sent)) wsLatency.add(t - sent);
        if (typeof f.ts === 'number') wsFromTs.add(t - f.ts);
      }
      return;
    }
    let f: Record<string, any>;
    try {
      f = decodeFrame(buf.subarray(s, e)) as Record<string, any>;
    } catch {
      clientErrors.add(1);
      return;
    }
    switch (f.t) {
      case 'cmsg': // a layout cmsgSeq does not know: the slow path
        local.slow++;
        if (typeof f.seq === 'number') {
          const t = now();
          this.countPost(f.seq, t);
          const sent = sentTimeOf(f.body);
          if ((f.seq + this.phase) % LATENCY_EVERY === 0 && Number.isFinite(sent)) wsLatency.add(t - sent);
        }
        return;
      case 'synced':
        this.onSynced?.();
        return;
      case 'ok':
      case 'err': {
        const w = typeof f.r === 'number' ? this.waiting.get(f.r) : undefined;
        if (!w) {
          if (f.t === 'err') clientErrors.add(1);
          return;
        }
        this.waiting.delete(f.r);
        if (f.t === 'ok') w.resolve(f);
        else w.reject(new Error(`${f.code}: ${f.msg}`));
        return;
      }
      case 'kick':
        if (++closesLogged <= 5) console.log(`channel-broadcast: kick ${f.code} ${f.reason}`);
        return;
      default:
        return; // welcome, pong, user-log events (none expected)
    }
  }

  private countPost(seq: number, t: number): void {
    local.ws++;
    if (t >= windowStart && t <= windowEnd) local.wsWin++;
    const prevMax = this.seqs.maxSeen;
    if (this.seqs.add(seq) === 1) local.wsDup++;
    else if (seq < prevMax) local.wsOoo++;
    this.seqs.lastAt = t;
  }
}

/**
 * The seq of a `cmsg` frame read from its msgpack bytes, or -1 when the frame is not a cmsg laid
 * out as the channel actor encodes it: {t: "cmsg", channel: <str>, seq: <uint>, …}.
 */
function cmsgSeq(b: Buffer, s: number, e: number): number {
  let p = s;
  const m = b[p]!;
  if (m === 0xde) p += 3; // map16
  else if ((m & 0xf0) === 0x80) p += 1; // fixmap
  else return -1;
  // "t": "cmsg"
  if (p + 8 > e || b[p] !== 0xa1 || b[p + 1] !== 0x74 || b[p + 2] !== 0xa4 || b[p + 3] !== 0x63 || b[p + 4] !== 0x6d || b[p + 5] !== 0x73 || b[p + 6] !== 0x67) return -1;
  p += 7;
  // "channel": <fixstr | str8>
  if (p + 9 > e || b[p] !== 0xa7 || b[p + 1] !== 0x63 || b[p + 7] !== 0x6c) return -1;
  p += 8;
  const sh = b[p]!;
  if ((sh & 0xe0) === 0xa0) p += 1 + (sh & 0x1f);
  else if (sh === 0xd9) p += 2 + b[p + 1]!;
  else return -1;
  // "seq": <uint>
  if (p + 5 > e || b[p] !== 0xa3 || b[p + 1] !== 0x73 || b[p + 2] !== 0x65 || b[p + 3] !== 0x71) return -1;
  p += 4;
  const v = b[p]!;
  if (v < 0x80) return v;
  if (v === 0xcc && p + 2 <= e) return b[p + 1]!;
  if (v === 0xcd && p + 3 <= e) return b.readUInt16BE(p + 1);
  if (v === 0xce && p + 5 <= e) return b.readUInt32BE(p + 1);
  return -1;
}

async function subscriber(ctx: VuContext, data: BroadcastData, k: number): Promise<void> {
  const token = data.subscriberTokens[k % data.subscriberTokens.length]!;
  // Connect slots interleave with the viewers': slot k of SUBSCRIBERS + VIEWERS.
  const slot = Math.floor((k * (SUBSCRIBERS + VIEWERS)) / Math.max(1, SUBSCRIBERS));
  if (!(await sleepUntil(data.connectAt + (slot * 1000) / CONNECT_RATE, ctx.signal))) return;
  const sub = new RawSubscriber(new URL(ctx.url), token, k % LATENCY_EVERY);
  const t0 = Date.now();
  try {
    let joinSeq: number;
    try {
      await sub.open();
      const ok = await sub.request({ t: 'channel.join', channel: data.channel });
      joinSeq = Number(ok.seq);
      connectTime.add(Date.now() - t0);
    } catch (err) {
      check(err, { 'subscriber connected and joined': () => false });
      if (++closesLogged <= 5) console.log(`channel-broadcast: subscriber ${k}: ${(err as Error).message}`);
      return;
    }
    const ready = Date.now() < data.startAt;
    readyInTime.add(ready);
    check(ready, { 'subscriber joined before the posting': (v) => v });
    await countLosses(ctx, data, sub.seqs, joinSeq, 'ws');
    await sleepUntil(Math.max(Date.now(), data.checkAt) + CLOSE_SLACK_SECONDS * 1000, ctx.signal);
  } finally {
    await sub.close();
  }
}

// ---- SSE viewers ----

async function viewer(ctx: VuContext, data: BroadcastData, k: number): Promise<void> {
  const slot = Math.floor((k * (SUBSCRIBERS + VIEWERS)) / Math.max(1, VIEWERS)) + Math.floor((SUBSCRIBERS + VIEWERS) / Math.max(1, VIEWERS) / 2);
  if (!(await sleepUntil(data.connectAt + (slot * 1000) / CONNECT_RATE, ctx.signal))) return;
  const seqs = new SeqTracker();
  const phase = k % LATENCY_EVERY;
  let closing = false;
  let req: http.ClientRequest | undefined;
  const t0 = Date.now();
  try {
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no SSE response within the request timeout')), REQUEST_TIMEOUT_MS);
        req = http.get(`${ctx.base}/v1/channels/${encodeURIComponent(data.channel)}/events`, { agent: false }, (res) => {
          clearTimeout(timer);
          if (res.statusCode !== 200) {
            res.resume();
            reject(new Error(`SSE: HTTP ${res.statusCode}`));
            return;
          }
          resolve();
          let rest = '';
          res.on('data', (chunk: Buffer) => {
            const text = rest + chunk.toString('latin1');
            const end = text.lastIndexOf('\n\n');
            if (end < 0) {
              rest = text;
              return;
            }
            rest = text.slice(end + 2);
            const t = now();
            const win = t >= windowStart && t <= windowEnd;
            // Events "id: N\ndata: {...}\n\n"; comments (":…") carry no id.
            let p = text.startsWith('id: ') ? 0 : text.indexOf('\nid: ');
            while (p >= 0 && p < end) {
              const idStart = p === 0 && text.startsWith('id: ') ? 4 : p + 5;
              const nl = text.indexOf('\n', idStart);
              const seq = Number(text.slice(idStart, nl));
              if (Number.isInteger(seq)) {
                local.sse++;
                if (win) local.sseWin++;
                const prevMax = seqs.maxSeen;
                if (seqs.add(seq) === 1) local.sseDup++;
                else if (seq < prevMax) local.sseOoo++;
                seqs.lastAt = t;
                if ((seq + phase) % LATENCY_EVERY === 0 && text.startsWith('data: ', nl + 1)) {
                  const dEnd = text.indexOf('\n', nl + 1);
                  try {
                    const post = JSON.parse(text.slice(nl + 7, dEnd)) as { body?: unknown; ts?: number };
                    const sent = sentTimeOf(post.body);
                    if (Number.isFinite(sent)) sseLatency.add(t - sent);
                    if (typeof post.ts === 'number') sseFromTs.add(t - post.ts);
                  } catch {
                    clientErrors.add(1);
                  }
                }
              }
              p = text.indexOf('\nid: ', nl);
            }
          });
          res.on('close', () => {
            if (!closing) {
              unexpectedCloses.add(1);
              if (++closesLogged <= 5) console.log('channel-broadcast: an SSE stream ended unexpectedly');
            }
          });
        });
        req.on('error', (err) => {
          clearTimeout(timer);
          if (!closing) clientErrors.add(1);
          reject(err);
        });
      });
      sseConnectTime.add(Date.now() - t0);
    } catch (err) {
      check(err, { 'viewer connected': () => false });
      if (++closesLogged <= 5) console.log(`channel-broadcast: viewer ${k}: ${(err as Error).message}`);
      return;
    }
    const ready = Date.now() < data.startAt;
    readyInTime.add(ready);
    check(ready, { 'viewer connected before the posting': (v) => v });
    // A stream without a cursor starts with the next post: every post is expected (nothing was posted before).
    await countLosses(ctx, data, seqs, 0, 'sse');
    await sleepUntil(Math.max(Date.now(), data.checkAt) + CLOSE_SLACK_SECONDS * 1000, ctx.signal);
  } finally {
    closing = true;
    req?.destroy();
  }
}

// ---- posters ----

async function poster(ctx: VuContext, data: BroadcastData, k: number): Promise<void> {
  const client = new ParleyClient({ url: ctx.url, token: data.posterTokens[k]!, WebSocket, reconnect: false, requestTimeoutMs: REQUEST_TIMEOUT_MS });
  try {
    await client.connect();
  } catch (err) {
    check(err, { 'poster connected': () => false });
    throw err;
  }
  try {
    if (!(await sleepUntil(data.startAt, ctx.signal))) return;
    if (k === 0) void watchServer(ctx, data);
    const pad = 'x'.repeat(BODY_BYTES);
    let n = 0;
    const postOne = async (): Promise<void> => {
      const sent = now();
      let body = `${sent.toFixed(3)} ${k}-${n++} `;
      body += pad.slice(0, Math.max(0, BODY_BYTES - body.length));
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          const ok = await client.channelPost({ channel: data.channel, body, cid: `${k}-${n}` });
          const t = now();
          postOkLatency.add(t - sent);
          if (typeof ok.ts === 'number') postToTs.add(ok.ts - sent);
          posts.add(1);
          if (t <= data.stopAt) postsInWindow.add(1);
          return;
        } catch (err) {
          const e = err as { code?: string; retry?: number };
          if (e.code === 'rate_limited') {
            postRateLimited.add(1);
            // The same cid again: idempotent on the server.
            await sleep(Math.min(1, Math.max(0.01, (e.retry ?? 100) / 1000)));
            if (ctx.signal.aborted) return;
            continue;
          }
          postErrors.add(1);
          check(err, { 'post ok': () => false });
          if (!ctx.signal.aborted) await sleep(0.1);
          return;
        }
      }
      postErrors.add(1);
    };

    if (RATE === 0) {
      const worker = async (): Promise<void> => {
        while (!ctx.signal.aborted && Date.now() < data.stopAt) await postOne();
      };
      await Promise.all(Array.from({ length: WINDOW }, worker));
    } else {
      // Poster k posts at startAt + (k / POSTERS + j) × interval: the posters interleave.
      const interval = (1000 * POSTERS) / RATE;
      const first = data.startAt + (k / POSTERS) * interval;
      const inflight = new Set<Promise<void>>();
      for (let j = 0; ; j++) {
        const due = first + j * interval;
        if (due >= data.stopAt || !(await sleepUntil(due, ctx.signal))) break;
        scheduleLag.add(Math.max(0, Date.now() - due));
        if (inflight.size >= WINDOW) {
          postsSkipped.add(1);
          continue;
        }
        const p: Promise<void> = postOne().finally(() => inflight.delete(p));
        inflight.add(p);
      }
      await Promise.all(inflight);
    }
    await sleepUntil(data.checkAt + CLOSE_SLACK_SECONDS * 1000, ctx.signal);
  } finally {
    await client.close();
  }
}

/** The machine's CPU ticks from /proc/stat (Linux): busy, softirq (in busy) and total, all cores. */
function procStat(): { busy: number; softirq: number; total: number } | undefined {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    const total = f.slice(0, 8).reduce((x, y) => x + y, 0);
    return { busy: total - f[3]! - f[4]!, softirq: f[6]!, total };
  } catch {
    return undefined;
  }
}

/** Server CPU and RSS over the posting window without its first and last second (/metrics). */
async function watchServer(ctx: VuContext, data: BroadcastData): Promise<void> {
  try {
    if (!(await sleepUntil(data.startAt + 1000, ctx.signal))) return;
    const a = await serverMetrics(ctx.base);
    const ta = Date.now();
    const sa = procStat();
    let rssMax = a.parley_process_resident_memory_bytes ?? 0;
    while (Date.now() < data.stopAt - 2000 && !ctx.signal.aborted) {
      await sleep(1);
      const m = await serverMetrics(ctx.base);
      rssMax = Math.max(rssMax, m.parley_process_resident_memory_bytes ?? 0);
    }
    const b = await serverMetrics(ctx.base);
    const tb = Date.now();
    const sb = procStat();
    const secs = (tb - ta) / 1000;
    if (sa && sb && sb.total > sa.total && secs > 0.5) {
      machineBusyPct.add(((sb.busy - sa.busy) / (sb.total - sa.total)) * 100);
      machineSoftirqPct.add(((sb.softirq - sa.softirq) / (sb.total - sa.total)) * 100 * cpus().length);
    }
    if (secs > 0.5) {
      serverCpuPct.add(((b.parley_process_cpu_seconds_total! - a.parley_process_cpu_seconds_total!) / secs) * 100);
    }
    serverRssMiB.add(Math.max(rssMax, b.parley_process_resident_memory_bytes ?? 0) / 2 ** 20);
    serverRssMiBAfter.add((b.parley_process_resident_memory_bytes ?? 0) / 2 ** 20);
    if (!(await sleepUntil(data.checkAt, ctx.signal))) return;
    const c = await serverMetrics(ctx.base);
    serverLagPauses.add(c.parley_channel_lag_pauses_total ?? NaN);
    serverSseSlowDisconnects.add(c.parley_sse_slow_disconnects_total ?? NaN);
  } catch (err) {
    console.log(`channel-broadcast: reading the server's /metrics failed: ${(err as Error).message}`);
  }
}
