// Generator child of core-bench.ts (forked with an IPC channel). Two roles, chosen by the first
// control message:
//  - throughput: ParleyClient per user, both users of a pair in this process (one clock for the
//    send timestamp in the body and the receive time), a bounded window of sends per direction;
//  - idle: raw `ws` sockets speaking the wire codec, hello → synced, then a ping every 20 s.
// Every wait is bounded; the process exits if the parent goes away or after its own deadline.
import { performance } from 'node:perf_hooks';
import { WebSocket } from 'ws';
import { ParleyClient } from '../client/index.js';
import type { MsgEvent } from '../client/index.js';
import { decodeFrame, encodeFrame } from '../protocol/wire.js';
import type { Account, FromWorker, IdleStats, ToWorker, TpStats } from './core-bench-ipc.js';
import { LogHistogram } from './k6/histogram.js';
import { pool, withTimeout } from './k6/helpers.js';

const MAX_LIFETIME_MS = Number(process.env.CORE_BENCH_WORKER_MAX_MS ?? 6 * 60_000);
const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));

function post(msg: FromWorker): void {
  process.send?.(msg);
}

class Fatal extends Error {}
let fatalSent = false;

/** Reports a fatal error to the parent once, exits shortly after, and throws to stop the caller. */
function fatal(error: string): never {
  if (!fatalSent) {
    fatalSent = true;
    post({ type: 'fatal', error });
    // Let the IPC message go out before exiting.
    setTimeout(() => process.exit(1), 200);
  }
  throw new Fatal(error);
}

const lifetime = setTimeout(() => {
  process.stderr.write(`core-bench-worker ${process.pid}: lifetime of ${MAX_LIFETIME_MS} ms exceeded, exiting\n`);
  process.exit(3);
}, MAX_LIFETIME_MS);
lifetime.unref();
process.on('disconnect', () => process.exit(2));

/** Polls cond every `everyMs` until true or `timeoutMs` passed; returns whether it became true. */
async function waitFor(cond: () => boolean, timeoutMs: number, everyMs = 25): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() >= deadline) return false;
    await sleep(everyMs);
  }
  return true;
}

// ------------------------------------------------------------------ throughput

interface Side {
  account: Account;
  partner: string;
  client: ParleyClient;
  thread?: string;
  inflight: number;
  /** highest seq of an ok for our own sends */
  maxOkSeq: number;
  acked: number;
  /** seqs of the pair's thread this member has received (own echoes and the partner's) */
  seen: Set<number>;
  maxSeen: number;
  fromPartner: number;
}

interface Pair {
  a: Side;
  b: Side;
}

const tp = {
  pairs: [] as Pair[],
  sides: [] as Side[],
  running: false,
  closing: false,
  windowStart: 0,
  windowEnd: Infinity,
  latency: new LogHistogram(),
  ackLatency: new LogHistogram(),
  sendsIssued: 0,
  sendsAcked: 0,
  sendsAckedInWindow: 0,
  sendErrors: {} as Record<string, number>,
  recvInWindow: 0,
  recvTotal: 0,
  duplicates: 0,
  outOfOrder: 0,
  unexpectedCloses: 0,
  clientErrors: 0,
  errorSamples: [] as string[],
};

function sample(msg: string): void {
  if (tp.errorSamples.length < 20) tp.errorSamples.push(msg);
}

function onMsg(side: Side, m: MsgEvent): void {
  const t = now();
  if (side.thread === undefined || m.thread !== side.thread) {
    // Before the warm-up answer told us the thread id: the only possible thread is the pair's.
    if (side.thread === undefined) side.thread = m.thread;
    else {
      sample(`${side.account.username}: msg in unexpected thread ${m.thread}`);
      return;
    }
  }
  if (side.seen.has(m.seq)) {
    tp.duplicates++;
    sample(`${side.account.username}: duplicate seq ${m.seq} (u ${m.u})`);
    return;
  }
  side.seen.add(m.seq);
  if (m.seq < side.maxSeen) tp.outOfOrder++;
  if (m.seq > side.maxSeen) side.maxSeen = m.seq;
  if (m.from !== side.partner) return;
  side.fromPartner++;
  tp.recvTotal++;
  if (t >= tp.windowStart && t <= tp.windowEnd) tp.recvInWindow++;
  const body = m.body ?? '';
  if (body.startsWith('b ')) {
    const sp = body.indexOf(' ', 2);
    const sent = Number(sp < 0 ? body.slice(2) : body.slice(2, sp));
    if (Number.isFinite(sent)) tp.latency.add(t - sent);
  }
}

async function tpConnect(msg: Extract<ToWorker, { type: 'tp-connect' }>): Promise<void> {
  const t0 = Date.now();
  const makeSide = (account: Account, partner: Account): Side => {
    const client = new ParleyClient({ url: msg.url, token: account.token, WebSocket, requestTimeoutMs: 30_000 });
    const side: Side = { account, partner: partner.user, client, inflight: 0, maxOkSeq: 0, acked: 0, seen: new Set(), maxSeen: 0, fromPartner: 0 };
    client.on('msg', (m) => onMsg(side, m));
    client.on('close', (c) => {
      if (!tp.closing) {
        tp.unexpectedCloses++;
        sample(`${account.username}: socket closed ${c.code} ${c.reason} (reconnect: ${c.willReconnect})`);
      }
    });
    client.on('error', (e) => {
      tp.clientErrors++;
      sample(`${account.username}: client error ${e.code}: ${e.message}`);
    });
    return side;
  };
  for (const [a, b] of msg.pairs) {
    const pair = { a: makeSide(a, b), b: makeSide(b, a) };
    tp.pairs.push(pair);
    tp.sides.push(pair.a, pair.b);
  }
  try {
    await withTimeout(
      pool(tp.sides, msg.concurrency, async (s) => {
        await s.client.connect();
      }),
      msg.timeoutMs,
      `connecting ${tp.sides.length} clients`,
    );
  } catch (err) {
    const live = tp.sides.filter((s) => s.client.state === 'live').length;
    fatal(`${(err as Error).message} (${live} live) ${tp.errorSamples.slice(0, 3).join(' | ')}`);
  }
  post({ type: 'tp-connected', clients: tp.sides.length, ms: Date.now() - t0 });
}

async function tpWarmup(msg: Extract<ToWorker, { type: 'tp-warmup' }>): Promise<void> {
  const t0 = Date.now();
  try {
    await withTimeout(
      pool(tp.pairs, 256, async ({ a, b }) => {
        const ra = await a.client.send({ to: b.account.user, body: 'warmup' });
        const rb = await b.client.send({ to: a.account.user, body: 'warmup' });
        a.thread = ra.thread;
        b.thread = rb.thread;
        a.maxOkSeq = ra.seq;
        b.maxOkSeq = rb.seq;
        if (ra.thread !== rb.thread) throw new Error(`pair ${a.account.username}/${b.account.username}: two threads ${ra.thread} ${rb.thread}`);
      }),
      msg.timeoutMs,
      'warm-up sends',
    );
  } catch (err) {
    fatal(`warm-up failed: ${(err as Error).message}`);
  }
  // Every member should hold both warm-up messages before the clock starts.
  const ok = await waitFor(() => tp.sides.every((s) => s.seen.size >= 2), msg.timeoutMs);
  if (!ok) {
    const behind = tp.sides.filter((s) => s.seen.size < 2).length;
    fatal(`warm-up: ${behind} members did not receive both warm-up messages within ${msg.timeoutMs} ms`);
  }
  post({ type: 'tp-warm', ms: Date.now() - t0 });
}

function pump(side: Side, window: number): void {
  // Bounded: at most `window` sends outstanding per direction, and only while running.
  while (tp.running && side.inflight < window) {
    side.inflight++;
    tp.sendsIssued++;
    const t0 = now();
    side.client.send({ thread: side.thread, body: `b ${t0.toFixed(3)} ${side.account.username}` }).then(
      (r) => {
        const t1 = now();
        side.inflight--;
        side.acked++;
        tp.sendsAcked++;
        if (t1 <= tp.windowEnd) tp.sendsAckedInWindow++;
        if (r.seq > side.maxOkSeq) side.maxOkSeq = r.seq;
        tp.ackLatency.add(t1 - t0);
        pump(side, window);
      },
      (err: { code?: string; message?: string }) => {
        side.inflight--;
        const code = err?.code ?? 'exception';
        tp.sendErrors[code] = (tp.sendErrors[code] ?? 0) + 1;
        sample(`${side.account.username}: send failed ${code}: ${err?.message}`);
        if (tp.running) setTimeout(() => pump(side, window), 100);
      },
    );
  }
}

async function tpGo(msg: Extract<ToWorker, { type: 'tp-go' }>): Promise<void> {
  tp.windowStart = now();
  tp.windowEnd = tp.windowStart + msg.seconds * 1000;
  tp.running = true;
  for (const s of tp.sides) pump(s, msg.window);
  await sleep(msg.seconds * 1000);
  tp.running = false;
  const stopAt = now();
  const drainStart = Date.now();
  // Every send answered, then every member holds its thread up to the last acked seq.
  const answered = await waitFor(() => tp.sides.every((s) => s.inflight === 0), msg.drainTimeoutMs, 20);
  const left = Math.max(1000, msg.drainTimeoutMs - (Date.now() - drainStart));
  const threadLen = (p: Pair) => Math.max(p.a.maxOkSeq, p.b.maxOkSeq);
  const complete = (p: Pair) => p.a.maxSeen >= threadLen(p) && p.b.maxSeen >= threadLen(p) && p.a.seen.size >= threadLen(p) && p.b.seen.size >= threadLen(p);
  await waitFor(() => tp.pairs.every(complete), left, 20);
  if (!answered) sample(`drain: ${tp.sides.reduce((n, s) => n + s.inflight, 0)} sends unanswered after ${msg.drainTimeoutMs} ms`);

  let missing = 0;
  let missingFromPartner = 0;
  let pairsIncomplete = 0;
  for (const p of tp.pairs) {
    const len = threadLen(p);
    if (!complete(p)) pairsIncomplete++;
    for (const [me, other] of [[p.a, p.b], [p.b, p.a]] as const) {
      for (let seq = 1; seq <= len; seq++) if (!me.seen.has(seq)) missing++;
      // +1: the partner's warm-up message is acked but not counted in `acked`.
      missingFromPartner += Math.max(0, other.acked + 1 - me.fromPartner);
    }
  }
  const stats: TpStats = {
    clients: tp.sides.length,
    pairs: tp.pairs.length,
    windowMs: stopAt - tp.windowStart,
    sendsIssued: tp.sendsIssued,
    sendsAcked: tp.sendsAcked,
    sendsAckedInWindow: tp.sendsAckedInWindow,
    sendErrors: tp.sendErrors,
    recvInWindow: tp.recvInWindow,
    // The warm-up messages are not part of the measurement.
    recvTotal: tp.recvTotal - tp.pairs.length * 2,
    latency: tp.latency.toWire(),
    ackLatency: tp.ackLatency.toWire(),
    duplicates: tp.duplicates,
    outOfOrder: tp.outOfOrder,
    missing,
    missingFromPartner,
    pairsIncomplete,
    inflightAtEnd: tp.sides.reduce((n, s) => n + s.inflight, 0),
    drainMs: Date.now() - drainStart,
    unexpectedCloses: tp.unexpectedCloses,
    clientErrors: tp.clientErrors,
    errorSamples: tp.errorSamples,
  };
  post({ type: 'tp-stats', stats });
}

// ------------------------------------------------------------------ idle

const idle = {
  sockets: [] as WebSocket[],
  synced: 0,
  failed: 0,
  dropped: 0,
  pingsSent: 0,
  pongs: 0,
  closing: false,
  connectMs: 0,
  errorSamples: [] as string[],
  pinger: undefined as NodeJS.Timeout | undefined,
};

function idleSample(msg: string): void {
  if (idle.errorSamples.length < 20) idle.errorSamples.push(msg);
}

function idleStats(): IdleStats {
  return {
    sockets: idle.sockets.length,
    synced: idle.synced,
    failed: idle.failed,
    connectMs: idle.connectMs,
    dropped: idle.dropped,
    pingsSent: idle.pingsSent,
    pongs: idle.pongs,
    errorSamples: idle.errorSamples,
  };
}

/** Opens one socket and resolves when it is synced; rejects on close/error/timeout before that. */
function idleOne(url: string, token: string, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    idle.sockets.push(ws);
    let synced = false;
    const timer = setTimeout(() => {
      reject(new Error(`no synced within ${timeoutMs} ms`));
      ws.terminate();
    }, timeoutMs);
    ws.on('open', () => ws.send(encodeFrame({ t: 'hello', token })));
    ws.on('message', (data) => {
      let f: { t?: string; code?: string | number; msg?: string; reason?: string };
      try {
        f = decodeFrame(data as Buffer) as typeof f;
      } catch {
        idleSample('undecodable frame from server');
        return;
      }
      if (f.t === 'synced' && !synced) {
        synced = true;
        clearTimeout(timer);
        resolve();
      } else if (f.t === 'pong') idle.pongs++;
      else if (f.t === 'err' || f.t === 'kick') idleSample(`${f.t} ${f.code}: ${f.msg ?? f.reason ?? ''}`);
    });
    ws.on('error', (err) => idleSample(`socket error: ${err.message}`));
    ws.on('close', (code, reason) => {
      clearTimeout(timer);
      if (!synced) reject(new Error(`closed before synced: ${code} ${reason.toString()}`));
      else if (!idle.closing) {
        idle.dropped++;
        idleSample(`synced socket closed by server: ${code} ${reason.toString()}`);
      }
    });
  });
}

async function idleConnect(msg: Extract<ToWorker, { type: 'idle-connect' }>): Promise<void> {
  const t0 = Date.now();
  const perSocketTimeout = Math.min(30_000, msg.timeoutMs);
  await withTimeout(
    pool(msg.tokens, msg.concurrency, async (token) => {
      try {
        await idleOne(msg.url, token, perSocketTimeout);
        idle.synced++;
      } catch (err) {
        idle.failed++;
        idleSample((err as Error).message);
      }
    }),
    msg.timeoutMs,
    `connecting ${msg.tokens.length} idle sockets`,
  ).catch((err: Error) => idleSample(err.message));
  idle.connectMs = Date.now() - t0;
  idle.pinger = setInterval(() => {
    for (const ws of idle.sockets) {
      if (ws.readyState === WebSocket.OPEN) {
        ws.send(encodeFrame({ t: 'ping' }));
        idle.pingsSent++;
      }
    }
  }, msg.pingEveryMs);
  post({ type: 'idle-synced', stats: idleStats() });
}

// ------------------------------------------------------------------ close

async function closeAll(timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  tp.running = false;
  tp.closing = true;
  idle.closing = true;
  if (idle.pinger) clearInterval(idle.pinger);
  const idleBefore = idleStats();
  await withTimeout(Promise.all(tp.sides.map((s) => s.client.close())), timeoutMs, 'closing clients').catch((e: Error) => sample(e.message));
  for (const ws of idle.sockets) {
    if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(1000, 'bench done');
  }
  const closed = await waitFor(() => idle.sockets.every((ws) => ws.readyState === WebSocket.CLOSED), Math.min(timeoutMs, 5000), 50);
  if (!closed) for (const ws of idle.sockets) ws.terminate();
  if (idle.sockets.length > 0) post({ type: 'idle-stats', stats: idleBefore });
  post({ type: 'closed', ms: Date.now() - t0 });
  setTimeout(() => process.exit(0), 100);
}

process.on('message', (raw: unknown) => {
  const msg = raw as ToWorker;
  const run = async () => {
    switch (msg.type) {
      case 'tp-connect': return tpConnect(msg);
      case 'tp-warmup': return tpWarmup(msg);
      case 'tp-go': return tpGo(msg);
      case 'idle-connect': return idleConnect(msg);
      case 'close': return closeAll(msg.timeoutMs);
    }
  };
  run().catch((err: unknown) => {
    if (err instanceof Fatal) return; // already reported
    try {
      fatal(`${msg.type}: ${(err as Error)?.stack ?? String(err)}`);
    } catch {
      // fatal throws after posting; the process exits shortly
    }
  });
});
