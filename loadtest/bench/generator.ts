// Load generator child of bench.ts (forked with an IPC channel). One process holds both users of
// each of its pairs (one clock for the send stamp in the body and the receive time) and drives the
// chat-1to1 traffic shape against one target:
//  - parley:   raw `ws` + the wire codec (hello → synced, `send` by thread, one coalesced ack per
//              ~50 ms like the SDK), or the client SDK (ParleyClient) with --parley-client sdk;
//  - socketio: socket.io-client, websocket transport only, auth {user}, `send` with an ack callback;
//  - uws:      raw `ws`, binary frames [u32 request number][body], the 4-byte ack echoed back.
// Closed loop: every sender keeps at most `window` sends unanswered. Open loop (--rate): sends are
// issued on a schedule of absolute times, at most `maxInflight` unanswered per sender (a send due
// beyond that is dropped and counted). Every receiver checks what it gets by the sender's message
// number in the body (lost / duplicated / out of order).
// Or, for the idle phase (Parley): raw sockets that only say hello, wait for synced and ping.
// Every wait is bounded; the process exits when the parent goes away or after its own deadline.
import { WebSocket } from 'ws';
import { ParleyClient } from '../../client/index.js';
import { decodeFrame, encodeFrame } from '../../protocol/wire.js';
import { LogHistogram } from '../k6/histogram.js';
import type { BenchUser, FromGen, GenStats, IdleStats, OpenLoad, ParleyClientKind, TargetKind, ToGen } from './ipc.js';
import { now, pool, withTimeout } from '../k6/helpers.js';
import { baselineRequire } from '../baselines/install.js';

const MAX_LIFETIME_MS = Number(process.env.BENCH_GENERATOR_MAX_MS ?? 5 * 60_000);
const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));

function post(msg: FromGen): void {
  process.send?.(msg);
}

class Fatal extends Error {}
let fatalSent = false;
function fatal(error: string): never {
  if (!fatalSent) {
    fatalSent = true;
    post({ type: 'fatal', error });
    setTimeout(() => process.exit(1), 200);
  }
  throw new Fatal(error);
}

const lifetime = setTimeout(() => {
  process.stderr.write(`bench-generator ${process.pid}: lifetime of ${MAX_LIFETIME_MS} ms exceeded, exiting\n`);
  process.exit(3);
}, MAX_LIFETIME_MS);
lifetime.unref();
process.on('disconnect', () => process.exit(2));

async function waitFor(cond: () => boolean, timeoutMs: number, everyMs = 25): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() >= deadline) return false;
    await sleep(everyMs);
  }
  return true;
}

// ------------------------------------------------------------------ shared state

const st = {
  running: false,
  closing: false,
  windowStart: 0,
  windowEnd: Infinity,
  requestTimeoutMs: 30_000,
  latency: new LogHistogram(),
  ackLatency: new LogHistogram(),
  scheduleLag: new LogHistogram(),
  sendsOffered: 0,
  sendsIssued: 0,
  sendsDropped: 0,
  sendsAcked: 0,
  sendsAckedInWindow: 0,
  sendErrors: {} as Record<string, number>,
  recvInWindow: 0,
  /** partner messages received per 100 ms of the window */
  recvPer100ms: [] as number[],
  recvTotal: 0,
  duplicates: 0,
  outOfOrder: 0,
  strayMessages: 0,
  unexpectedCloses: 0,
  clientErrors: 0,
  errorSamples: [] as string[],
};

function sample(msg: string): void {
  if (st.errorSamples.length < 20) st.errorSamples.push(msg);
}

class SendError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

interface PendingSend {
  resolve: () => void;
  reject: (e: SendError) => void;
  deadline: number;
}

/** One user's connection to the target. `send` resolves on the server's ack. */
interface Conn {
  open(): Promise<void>;
  send(body: string, n: number): Promise<void>;
  close(): Promise<void>;
  /** unanswered requests, swept for timeouts */
  readonly pending: Map<number, PendingSend>;
}

interface Side {
  me: BenchUser;
  partner: BenchUser;
  conn: Conn;
  warm: boolean;
  inflight: number;
  nextN: number;
  /** numbers of my sends the server acked */
  acked: number[];
  /** numbers of the partner's messages I received */
  seen: Set<number>;
  maxSeen: number;
}

const sides: Side[] = [];
const pairs: Array<[Side, Side]> = [];

/** A message body arrived at `side`, claimed to be from `from` (undefined: the transport cannot say). */
function onBody(side: Side, body: unknown, from: string | undefined): void {
  const t = now();
  if (typeof body !== 'string' || (from !== undefined && from !== side.partner.user)) {
    st.strayMessages++;
    sample(`${side.me.name}: stray message from ${from}: ${String(body).slice(0, 60)}`);
    return;
  }
  if (body.charCodeAt(0) === 119 /* w */) {
    side.warm = true;
    return;
  }
  // "b <send time ms> <n> <sender name>"
  const s1 = body.indexOf(' ', 2);
  const s2 = body.indexOf(' ', s1 + 1);
  const sent = Number(body.slice(2, s1));
  const n = Number(body.slice(s1 + 1, s2 < 0 ? undefined : s2));
  if (body.charCodeAt(0) !== 98 /* b */ || !Number.isFinite(sent) || !Number.isInteger(n)) {
    st.strayMessages++;
    sample(`${side.me.name}: unparsable body ${body.slice(0, 60)}`);
    return;
  }
  if (side.seen.has(n)) {
    st.duplicates++;
    sample(`${side.me.name}: duplicate message ${n} from ${side.partner.name}`);
    return;
  }
  side.seen.add(n);
  if (n < side.maxSeen) st.outOfOrder++;
  else side.maxSeen = n;
  st.recvTotal++;
  if (t >= st.windowStart && t <= st.windowEnd) {
    st.recvInWindow++;
    const b = Math.floor((t - st.windowStart) / 100);
    st.recvPer100ms[b] = (st.recvPer100ms[b] ?? 0) + 1;
  }
  st.latency.add(t - sent);
}

function onUnexpectedClose(side: Side, what: string): void {
  if (st.closing) return;
  st.unexpectedCloses++;
  sample(`${side.me.name}: ${what}`);
}

function failAll(pending: Map<number, PendingSend>, code: string, message: string): void {
  for (const p of pending.values()) p.reject(new SendError(code, message));
  pending.clear();
}

// Request timeouts: one sweep for every connection instead of a timer per send.
setInterval(() => {
  const t = Date.now();
  for (const s of sides) {
    for (const [r, p] of s.conn.pending) {
      if (p.deadline <= t) {
        s.conn.pending.delete(r);
        p.reject(new SendError('timeout', `no answer within ${st.requestTimeoutMs} ms`));
      }
    }
  }
}, 500).unref();

// ------------------------------------------------------------------ connections

/**
 * What every connection shares: its side and URL, numbered requests answered through `pending`
 * (swept for timeouts), and, for the raw-ws ones, the socket and its polite close.
 */
abstract class BaseConn implements Conn {
  readonly pending = new Map<number, PendingSend>();
  protected ws?: WebSocket;
  private r = 0;

  constructor(
    protected readonly url: string,
    protected readonly side: () => Side,
  ) {}

  abstract open(): Promise<void>;
  abstract send(body: string, n: number): Promise<void>;

  /** Closes politely (1000), terminates after 3 s. */
  close(): Promise<void> {
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      ws.close(1000, 'bench done');
      setTimeout(() => {
        ws.terminate();
        resolve();
      }, 3000).unref();
    });
  }

  /** A new request: refused at once unless `open`; else numbered, registered and written. */
  protected request(open: boolean, write: (r: number) => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (!open) return reject(new SendError('closed', 'socket not open'));
      const r = ++this.r >>> 0;
      this.pending.set(r, { resolve, reject, deadline: Date.now() + st.requestTimeoutMs });
      write(r);
    });
  }

  /** Settles request r (failed with `err`, if given); false when it is not pending (timed out, or not ours). */
  protected answer(r: unknown, err?: SendError): boolean {
    const p = typeof r === 'number' ? this.pending.get(r) : undefined;
    if (!p) return false;
    this.pending.delete(r as number);
    if (err) p.reject(err);
    else p.resolve();
    return true;
  }

  /** The transport went away: pending requests fail; before `ready` open() rejects, after it that is unexpected. */
  protected gone(ready: boolean, reject: (e: Error) => void, what: string): void {
    failAll(this.pending, 'closed', what);
    if (!ready) reject(new Error(`${this.side().me.name}: ${what} before it was ready`));
    else onUnexpectedClose(this.side(), what);
  }

  protected socketError(err: Error): void {
    st.clientErrors++;
    sample(`${this.side().me.name}: socket error ${err.message}`);
  }
}

// ------------------------------------------------------------------ Parley, raw ws + wire codec

class ParleyRawConn extends BaseConn {
  private lastU = 0;
  private ackedU = 0;
  private ackTimer?: NodeJS.Timeout;
  thread?: string;

  open(): Promise<void> {
    const side = this.side();
    return new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(this.url, { perMessageDeflate: false });
      this.ws = ws;
      let synced = false;
      ws.on('open', () => ws.send(encodeFrame({ t: 'hello', token: side.me.token })));
      ws.on('message', (data: Buffer) => {
        let f: Record<string, any>;
        try {
          f = decodeFrame(data) as Record<string, any>;
        } catch {
          st.clientErrors++;
          sample(`${side.me.name}: undecodable frame`);
          return;
        }
        if (typeof f.u === 'number' && f.u > this.lastU) {
          this.lastU = f.u;
          this.scheduleAck();
        }
        switch (f.t) {
          case 'msg':
            if (f.from !== side.me.user) onBody(side, f.body, f.from); // own echo: only acked
            break;
          case 'ok':
            if (typeof f.thread === 'string' && this.pending.has(f.r)) this.thread ??= f.thread;
            this.answer(f.r);
            break;
          case 'err':
            if (!this.answer(f.r, new SendError(String(f.code), String(f.msg)))) {
              st.clientErrors++;
              sample(`${side.me.name}: err ${f.code}: ${f.msg}`);
            }
            break;
          case 'synced':
            if (!synced) {
              synced = true;
              resolve();
            }
            break;
          case 'kick':
            sample(`${side.me.name}: kick ${f.code}: ${f.reason}`);
            break;
        }
      });
      ws.on('error', (err) => this.socketError(err));
      ws.on('close', (code, reason) => {
        clearTimeout(this.ackTimer);
        this.gone(synced, reject, `socket closed ${code} ${reason.toString()}`);
      });
    });
  }

  /** Like the SDK: one ack per ~50 ms for everything received. */
  private scheduleAck(): void {
    if (this.ackTimer) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      if (this.lastU > this.ackedU && this.ws?.readyState === WebSocket.OPEN) {
        this.ackedU = this.lastU;
        this.ws.send(encodeFrame({ t: 'ack', u: this.lastU }));
      }
    }, 50);
  }

  ping(): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(encodeFrame({ t: 'ping' }));
  }

  send(body: string, n: number): Promise<void> {
    const side = this.side();
    const cid = `${side.me.name}-${n}`;
    return this.request(this.ws?.readyState === WebSocket.OPEN, (r) =>
      this.ws!.send(encodeFrame(this.thread ? { t: 'send', r, cid, thread: this.thread, body } : { t: 'send', r, cid, to: side.partner.user, body })),
    );
  }
}

// ------------------------------------------------------------------ Parley, client SDK

class ParleySdkConn extends BaseConn {
  // The SDK times its requests out itself: `pending` stays empty.
  private client?: ParleyClient;
  thread?: string;

  async open(): Promise<void> {
    const side = this.side();
    const client = new ParleyClient({ url: this.url, token: side.me.token!, WebSocket, requestTimeoutMs: st.requestTimeoutMs });
    this.client = client;
    client.on('msg', (m) => {
      if (m.from !== side.me.user) onBody(side, m.body, m.from);
    });
    client.on('close', (c) => onUnexpectedClose(side, `socket closed ${c.code} ${c.reason} (reconnect: ${c.willReconnect})`));
    client.on('error', (e) => {
      st.clientErrors++;
      sample(`${side.me.name}: client error ${e.code}: ${e.message}`);
    });
    await client.connect();
  }

  async send(body: string, n: number): Promise<void> {
    const side = this.side();
    const cid = `${side.me.name}-${n}`;
    try {
      const r = await this.client!.send(this.thread ? { thread: this.thread, body, cid } : { to: side.partner.user, body, cid });
      this.thread ??= r.thread;
    } catch (err) {
      const e = err as { code?: string; message?: string };
      throw new SendError(e.code ?? 'exception', e.message ?? String(err));
    }
  }

  override close(): Promise<void> {
    return this.client ? this.client.close() : Promise.resolve();
  }
}

// ------------------------------------------------------------------ Socket.IO

// socket.io-client comes from the baseline's own install (loadtest/baselines/node_modules, see
// baselines/install.ts; bench.ts installs it before a socketio run), loaded only for that target:
// the calls we use.
interface IoSocket {
  readonly connected: boolean;
  on(event: 'connect', fn: () => void): void;
  on(event: 'connect_error', fn: (err: Error) => void): void;
  on(event: 'disconnect', fn: (reason: string) => void): void;
  on(event: 'msg', fn: (m: { from?: string; body?: unknown }) => void): void;
  once(event: 'disconnect', fn: () => void): void;
  emit(event: string, payload: unknown, ack: (answer: { error?: string } | undefined) => void): void;
  disconnect(): void;
}
type IoConnect = (url: string, opts: { transports: string[]; auth: unknown; forceNew: boolean; reconnection: boolean; timeout: number }) => IoSocket;
let ioConnect: IoConnect | undefined;
const ioClient: IoConnect = (url, opts) => (ioConnect ??= (baselineRequire('socket.io-client') as { io: IoConnect }).io)(url, opts);

class SocketIoConn extends BaseConn {
  private socket?: IoSocket;

  open(): Promise<void> {
    const side = this.side();
    return new Promise<void>((resolve, reject) => {
      const socket = ioClient(this.url, {
        transports: ['websocket'],
        auth: { user: side.me.user },
        forceNew: true,
        reconnection: false,
        timeout: 20_000,
      });
      this.socket = socket;
      let connected = false;
      socket.on('connect', () => {
        connected = true;
        resolve();
      });
      socket.on('connect_error', (err) => {
        if (!connected) reject(new Error(`${side.me.name}: connect_error ${err.message}`));
      });
      socket.on('msg', (m: { from?: string; body?: unknown }) => onBody(side, m?.body, m?.from));
      socket.on('disconnect', (reason) => this.gone(connected, reject, `disconnected: ${reason}`));
    });
  }

  send(body: string, n: number): Promise<void> {
    const side = this.side();
    return this.request(this.socket?.connected === true, (r) =>
      this.socket!.emit('send', { to: side.partner.user, body, cid: `${side.me.name}-${n}` }, (answer: { error?: string } | undefined) => {
        this.answer(r, !answer || answer.error ? new SendError('error', String(answer?.error ?? 'no answer body')) : undefined);
      }),
    );
  }

  override close(): Promise<void> {
    const socket = this.socket;
    if (!socket || !socket.connected) return Promise.resolve();
    return new Promise<void>((resolve) => {
      socket.once('disconnect', () => resolve());
      socket.disconnect();
      setTimeout(resolve, 3000).unref();
    });
  }
}

// ------------------------------------------------------------------ raw uWS relay

class UwsConn extends BaseConn {
  open(): Promise<void> {
    const side = this.side();
    return new Promise<void>((resolve, reject) => {
      const q = `user=${encodeURIComponent(side.me.user)}&peer=${encodeURIComponent(side.partner.user)}`;
      const ws = new WebSocket(`${this.url}/?${q}`, { perMessageDeflate: false });
      this.ws = ws;
      let opened = false;
      ws.on('open', () => {
        opened = true;
        resolve();
      });
      ws.on('message', (data: Buffer) => {
        if (data.length === 4) this.answer(data.readUInt32LE(0));
        else if (data.length > 4) onBody(side, data.toString('utf8', 4), undefined);
      });
      ws.on('error', (err) => this.socketError(err));
      ws.on('close', (code) => this.gone(opened, reject, `socket closed ${code}`));
    });
  }

  send(body: string): Promise<void> {
    return this.request(this.ws?.readyState === WebSocket.OPEN, (r) => {
      const buf = Buffer.allocUnsafe(4 + Buffer.byteLength(body));
      buf.writeUInt32LE(r, 0);
      buf.write(body, 4, 'utf8');
      this.ws!.send(buf, { binary: true });
    });
  }
}

// ------------------------------------------------------------------ phases

let target: TargetKind = 'parley';
let pingTimer: NodeJS.Timeout | undefined;

/** Heartbeat of raw Parley sockets (the server closes sockets silent for 2 × 25 s; the SDK pings itself). */
function startPings(conns: ParleyRawConn[]): void {
  pingTimer = setInterval(() => {
    for (const c of conns) c.ping();
  }, 20_000);
}

function makeConn(kind: TargetKind, parleyClient: ParleyClientKind, url: string, side: () => Side): Conn {
  if (kind === 'socketio') return new SocketIoConn(url, side);
  if (kind === 'uws') return new UwsConn(url, side);
  return parleyClient === 'sdk' ? new ParleySdkConn(url, side) : new ParleyRawConn(url, side);
}

async function connect(msg: Extract<ToGen, { type: 'connect' }>): Promise<void> {
  const t0 = Date.now();
  target = msg.target;
  for (const [a, b] of msg.pairs) {
    const mk = (me: BenchUser, partner: BenchUser): Side => {
      const side: Side = { me, partner, conn: undefined as unknown as Conn, warm: false, inflight: 0, nextN: 0, acked: [], seen: new Set(), maxSeen: 0 };
      side.conn = makeConn(msg.target, msg.parleyClient, msg.url, () => side);
      return side;
    };
    const pair: [Side, Side] = [mk(a, b), mk(b, a)];
    pairs.push(pair);
    sides.push(...pair);
  }
  let opened = 0;
  try {
    await withTimeout(
      pool(sides, msg.concurrency, async (s) => {
        await s.conn.open();
        opened++;
      }),
      msg.timeoutMs,
      `connecting ${sides.length} ${msg.target} clients`,
    );
  } catch (err) {
    fatal(`${(err as Error).message} (${opened} connected) ${st.errorSamples.slice(0, 3).join(' | ')}`);
  }
  if (msg.target === 'parley' && msg.parleyClient === 'raw') startPings(sides.map((s) => s.conn as ParleyRawConn));
  post({ type: 'connected', clients: sides.length, ms: Date.now() - t0 });
}

async function warmup(msg: Extract<ToGen, { type: 'warmup' }>): Promise<void> {
  const t0 = Date.now();
  try {
    // One message each way, one after the other (Parley creates the 1:1 thread on the first).
    await withTimeout(
      pool(pairs, 128, async ([a, b]) => {
        await a.conn.send(`w 0 0 ${a.me.name}`, 0);
        await b.conn.send(`w 0 0 ${b.me.name}`, 0);
      }),
      msg.timeoutMs,
      'warm-up sends',
    );
  } catch (err) {
    const e = err as SendError;
    fatal(`warm-up failed: ${e.code ?? ''} ${e.message} ${st.errorSamples.slice(0, 3).join(' | ')}`);
  }
  if (!(await waitFor(() => sides.every((s) => s.warm), msg.timeoutMs))) {
    fatal(`warm-up: ${sides.filter((s) => !s.warm).length} of ${sides.length} users did not receive their partner's warm-up message within ${msg.timeoutMs} ms`);
  }
  if (target === 'parley') {
    for (const [a, b] of pairs) {
      const ta = (a.conn as ParleyRawConn | ParleySdkConn).thread;
      const tb = (b.conn as ParleyRawConn | ParleySdkConn).thread;
      if (ta !== tb) sample(`pair ${a.me.name}/${b.me.name}: two different threads ${ta} ${tb}`);
    }
  }
  post({ type: 'warm', ms: Date.now() - t0 });
}

/** Issues one send of `side` stamped `stamp`; `then` runs when it is answered (ok or error). */
function issue(side: Side, stamp: number, then?: (ok: boolean) => void): void {
  side.inflight++;
  st.sendsIssued++;
  const n = ++side.nextN;
  side.conn.send(`b ${stamp.toFixed(3)} ${n} ${side.me.name}`, n).then(
    () => {
      const t1 = now();
      side.inflight--;
      side.acked.push(n);
      st.sendsAcked++;
      if (t1 <= st.windowEnd) st.sendsAckedInWindow++;
      st.ackLatency.add(t1 - stamp);
      then?.(true);
    },
    (err: SendError) => {
      side.inflight--;
      const code = err?.code ?? 'exception';
      st.sendErrors[code] = (st.sendErrors[code] ?? 0) + 1;
      sample(`${side.me.name}: send ${n} failed ${code}: ${err?.message}`);
      then?.(false);
    },
  );
}

/** Closed loop: at most `window` sends unanswered per sender, and only while running. */
function pump(side: Side, window: number): void {
  while (st.running && side.inflight < window) {
    issue(side, now(), (ok) => {
      if (ok) pump(side, window);
      else if (st.running) setTimeout(() => pump(side, window), 100);
    });
  }
}

/**
 * Open loop: the j-th send of this process is due at windowStart + (j + phase) / rate, sender
 * j mod n (every sender at rate / n, evenly spread). Each tick issues everything due by now, late
 * or not (its stamp and latency count from the due time: no coordinated omission); a sender with
 * maxInflight unanswered drops its due send. Resolves at the end of the window.
 */
function openLoop(load: OpenLoad): Promise<void> {
  const interval = 1000 / load.rate;
  const n = sides.length;
  let j = 0;
  return new Promise<void>((resolve) => {
    const tick = () => {
      const t = now();
      for (;;) {
        const due = st.windowStart + (j + load.phase) * interval;
        if (due >= st.windowEnd) return resolve();
        if (due > t) break;
        const side = sides[j % n]!;
        j++;
        st.sendsOffered++;
        if (side.inflight >= load.maxInflight) {
          st.sendsDropped++;
          continue;
        }
        st.scheduleLag.add(t - due);
        issue(side, due);
      }
      const next = st.windowStart + (j + load.phase) * interval;
      setTimeout(tick, Math.max(0, Math.min(next, st.windowEnd) - now()));
    };
    tick();
  });
}

async function go(msg: Extract<ToGen, { type: 'go' }>): Promise<void> {
  st.requestTimeoutMs = msg.requestTimeoutMs;
  st.windowStart = msg.startAt;
  st.windowEnd = st.windowStart + msg.seconds * 1000;
  await sleep(Math.max(0, st.windowStart - now()));
  st.running = true;
  if (msg.load.kind === 'closed') {
    for (const s of sides) pump(s, msg.load.window);
    await sleep(Math.max(0, st.windowEnd - now()));
  } else {
    await openLoop(msg.load);
  }
  st.running = false;
  const stopAt = now();
  const drainStart = Date.now();
  const answered = await waitFor(() => sides.every((s) => s.inflight === 0), msg.drainTimeoutMs, 20);
  const left = Math.max(500, msg.drainTimeoutMs - (Date.now() - drainStart));
  const complete = ([a, b]: [Side, Side]) => a.seen.size >= b.acked.length && b.seen.size >= a.acked.length;
  await waitFor(() => pairs.every(complete), left, 20);
  if (!answered) sample(`drain: ${sides.reduce((n, s) => n + s.inflight, 0)} sends unanswered after ${msg.drainTimeoutMs} ms`);

  let lost = 0;
  let receivedUnacked = 0;
  let pairsIncomplete = 0;
  for (const [a, b] of pairs) {
    let pairLost = 0;
    for (const [me, other] of [[a, b], [b, a]] as const) {
      let l = 0;
      for (const n of other.acked) if (!me.seen.has(n)) l++;
      if (l > 0) sample(`${me.me.name} is missing ${l} of ${other.acked.length} acked messages from ${other.me.name}`);
      pairLost += l;
      receivedUnacked += me.seen.size - (other.acked.length - l);
    }
    lost += pairLost;
    if (pairLost > 0) pairsIncomplete++;
  }
  const stats: GenStats = {
    clients: sides.length,
    pairs: pairs.length,
    windowMs: stopAt - st.windowStart,
    sendsOffered: st.sendsOffered,
    sendsIssued: st.sendsIssued,
    sendsDropped: st.sendsDropped,
    sendsAcked: st.sendsAcked,
    sendsAckedInWindow: st.sendsAckedInWindow,
    sendErrors: st.sendErrors,
    recvInWindow: st.recvInWindow,
    recvPer100ms: Array.from(st.recvPer100ms, (x) => x ?? 0),
    recvTotal: st.recvTotal,
    latency: st.latency.toWire(),
    ackLatency: st.ackLatency.toWire(),
    scheduleLag: st.scheduleLag.toWire(),
    duplicates: st.duplicates,
    outOfOrder: st.outOfOrder,
    lost,
    receivedUnacked,
    strayMessages: st.strayMessages,
    pairsIncomplete,
    inflightAtEnd: sides.reduce((n, s) => n + s.inflight, 0),
    drainMs: Date.now() - drainStart,
    unexpectedCloses: st.unexpectedCloses,
    clientErrors: st.clientErrors,
    errorSamples: st.errorSamples,
  };
  post({ type: 'stats', stats });
}

// ------------------------------------------------------------------ idle (Parley)

const idle = { conns: [] as ParleyRawConn[], synced: 0, failed: 0, connectMs: 0 };

function idleStats(): IdleStats {
  return { sockets: idle.conns.length, synced: idle.synced, failed: idle.failed, connectMs: idle.connectMs, dropped: st.unexpectedCloses, errorSamples: st.errorSamples };
}

/** One raw socket per token: hello → synced, nothing else but the heartbeat. */
async function idleConnect(msg: Extract<ToGen, { type: 'idle-connect' }>): Promise<void> {
  const t0 = Date.now();
  const perSocketMs = Math.min(30_000, msg.timeoutMs);
  await withTimeout(
    pool(msg.tokens, msg.concurrency, async (token, i) => {
      const me: BenchUser = { user: '', name: `idle${i}`, token };
      const side: Side = { me, partner: me, conn: undefined as unknown as Conn, warm: false, inflight: 0, nextN: 0, acked: [], seen: new Set(), maxSeen: 0 };
      const conn = new ParleyRawConn(msg.url, () => side);
      side.conn = conn;
      idle.conns.push(conn);
      try {
        await withTimeout(conn.open(), perSocketMs, 'synced');
        idle.synced++;
      } catch (err) {
        idle.failed++;
        sample(`idle socket ${i}: ${(err as Error).message}`);
        void conn.close();
      }
    }),
    msg.timeoutMs,
    `connecting ${msg.tokens.length} idle sockets`,
  ).catch((err: Error) => sample(err.message));
  idle.connectMs = Date.now() - t0;
  startPings(idle.conns);
  post({ type: 'idle-synced', stats: idleStats() });
}

async function closeAll(timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  st.running = false;
  st.closing = true;
  if (pingTimer) clearInterval(pingTimer);
  if (idle.conns.length > 0) post({ type: 'idle-stats', stats: idleStats() }); // drops before our own close
  const conns = [...sides.map((s) => s.conn), ...idle.conns];
  await withTimeout(Promise.all(conns.map((c) => c.close().catch(() => undefined))), timeoutMs, 'closing clients').catch((e: Error) => sample(e.message));
  post({ type: 'closed', ms: Date.now() - t0 });
  setTimeout(() => process.exit(0), 100);
}

process.on('message', (raw: unknown) => {
  const msg = raw as ToGen;
  const run = async () => {
    switch (msg.type) {
      case 'connect':
        return connect(msg);
      case 'warmup':
        return warmup(msg);
      case 'go':
        return go(msg);
      case 'idle-connect':
        return idleConnect(msg);
      case 'close':
        return closeAll(msg.timeoutMs);
    }
  };
  run().catch((err: unknown) => {
    if (err instanceof Fatal) return;
    try {
      fatal(`${msg.type}: ${(err as Error)?.stack ?? String(err)}`);
    } catch {
      // fatal throws after posting; the process exits shortly
    }
  });
});
