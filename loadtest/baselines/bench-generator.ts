// Load generator child of bench.ts (forked with an IPC channel): one process holds both users of
// each of its pairs (one clock for the send stamp in the body and the receive time) and drives
// the chat-1to1 traffic shape against one target:
//  - parley:   raw `ws` + the wire codec (hello → synced, `send` by thread, coalesced acks), or the
//              client SDK (ParleyClient) with --parley-client sdk;
//  - socketio: socket.io-client, websocket transport only, auth {user}, `send` with an ack callback;
//  - uws:      raw `ws`, binary frames [u32 request number][body], the 4-byte ack echoed back.
// Every sender keeps at most `window` sends unanswered; every receiver checks what it gets by the
// sender's message number in the body (lost / duplicated / out of order).
// Every wait is bounded; the process exits when the parent goes away or after its own deadline.
import { performance } from 'node:perf_hooks';
import { io as ioClient, type Socket as IoSocket } from 'socket.io-client';
import { WebSocket } from 'ws';
import { ParleyClient } from '../../client/index.js';
import { decodeFrame, encodeFrame } from '../../protocol/wire.js';
import { LogHistogram } from '../k6/histogram.js';
import type { BenchUser, FromGen, GenStats, ParleyClientKind, TargetKind, ToGen } from './bench-ipc.js';
import { pool, withTimeout } from '../k6/helpers.js';

const MAX_LIFETIME_MS = Number(process.env.BENCH_GENERATOR_MAX_MS ?? 5 * 60_000);
const now = (): number => performance.timeOrigin + performance.now();
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
  sendsIssued: 0,
  sendsAcked: 0,
  sendsAckedInWindow: 0,
  sendErrors: {} as Record<string, number>,
  recvInWindow: 0,
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
  if (t >= st.windowStart && t <= st.windowEnd) st.recvInWindow++;
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

// ------------------------------------------------------------------ Parley, raw ws + wire codec

class ParleyRawConn implements Conn {
  readonly pending = new Map<number, PendingSend>();
  private ws?: WebSocket;
  private r = 0;
  private lastU = 0;
  private ackedU = 0;
  private ackTimer?: NodeJS.Timeout;
  thread?: string;

  constructor(
    private readonly url: string,
    private readonly side: () => Side,
  ) {}

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
          case 'err': {
            const p = typeof f.r === 'number' ? this.pending.get(f.r) : undefined;
            if (p) {
              this.pending.delete(f.r);
              if (f.t === 'ok') {
                if (typeof f.thread === 'string') this.thread ??= f.thread;
                p.resolve();
              } else p.reject(new SendError(String(f.code), String(f.msg)));
            } else if (f.t === 'err') {
              st.clientErrors++;
              sample(`${side.me.name}: err ${f.code}: ${f.msg}`);
            }
            break;
          }
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
      ws.on('error', (err) => {
        st.clientErrors++;
        sample(`${side.me.name}: socket error ${err.message}`);
      });
      ws.on('close', (code, reason) => {
        clearTimeout(this.ackTimer);
        failAll(this.pending, 'closed', `socket closed ${code}`);
        if (!synced) reject(new Error(`${side.me.name}: closed before synced: ${code} ${reason.toString()}`));
        else onUnexpectedClose(side, `socket closed ${code} ${reason.toString()}`);
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
    return new Promise<void>((resolve, reject) => {
      const ws = this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) return reject(new SendError('closed', 'socket not open'));
      const r = ++this.r;
      this.pending.set(r, { resolve, reject, deadline: Date.now() + st.requestTimeoutMs });
      const frame = this.thread
        ? { t: 'send', r, cid: `${side.me.name}-${n}`, thread: this.thread, body }
        : { t: 'send', r, cid: `${side.me.name}-${n}`, to: side.partner.user, body };
      ws.send(encodeFrame(frame));
    });
  }

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
}

// ------------------------------------------------------------------ Parley, client SDK

class ParleySdkConn implements Conn {
  readonly pending = new Map<number, PendingSend>(); // the SDK times requests out itself
  private client?: ParleyClient;
  thread?: string;

  constructor(
    private readonly url: string,
    private readonly side: () => Side,
  ) {}

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

  close(): Promise<void> {
    return this.client ? this.client.close() : Promise.resolve();
  }
}

// ------------------------------------------------------------------ Socket.IO

class SocketIoConn implements Conn {
  readonly pending = new Map<number, PendingSend>();
  private socket?: IoSocket;
  private r = 0;

  constructor(
    private readonly url: string,
    private readonly side: () => Side,
  ) {}

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
      socket.on('disconnect', (reason) => {
        failAll(this.pending, 'closed', `disconnected: ${reason}`);
        if (connected) onUnexpectedClose(side, `disconnected: ${reason}`);
      });
    });
  }

  send(body: string, n: number): Promise<void> {
    const side = this.side();
    return new Promise<void>((resolve, reject) => {
      const socket = this.socket;
      if (!socket?.connected) return reject(new SendError('closed', 'socket not connected'));
      const r = ++this.r;
      this.pending.set(r, { resolve, reject, deadline: Date.now() + st.requestTimeoutMs });
      socket.emit('send', { to: side.partner.user, body, cid: `${side.me.name}-${n}` }, (answer: { error?: string } | undefined) => {
        const p = this.pending.get(r);
        if (!p) return; // timed out already
        this.pending.delete(r);
        if (!answer || answer.error) p.reject(new SendError('error', String(answer?.error ?? 'no answer body')));
        else p.resolve();
      });
    });
  }

  close(): Promise<void> {
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

class UwsConn implements Conn {
  readonly pending = new Map<number, PendingSend>();
  private ws?: WebSocket;
  private r = 0;

  constructor(
    private readonly url: string,
    private readonly side: () => Side,
  ) {}

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
        if (data.length === 4) {
          const r = data.readUInt32LE(0);
          const p = this.pending.get(r);
          if (p) {
            this.pending.delete(r);
            p.resolve();
          }
        } else if (data.length > 4) {
          onBody(side, data.toString('utf8', 4), undefined);
        }
      });
      ws.on('error', (err) => {
        st.clientErrors++;
        sample(`${side.me.name}: socket error ${err.message}`);
      });
      ws.on('close', (code) => {
        failAll(this.pending, 'closed', `socket closed ${code}`);
        if (!opened) reject(new Error(`${side.me.name}: closed before open: ${code}`));
        else onUnexpectedClose(side, `socket closed ${code}`);
      });
    });
  }

  send(body: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const ws = this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) return reject(new SendError('closed', 'socket not open'));
      const r = ++this.r >>> 0;
      const len = Buffer.byteLength(body);
      const buf = Buffer.allocUnsafe(4 + len);
      buf.writeUInt32LE(r, 0);
      buf.write(body, 4, 'utf8');
      this.pending.set(r, { resolve, reject, deadline: Date.now() + st.requestTimeoutMs });
      ws.send(buf, { binary: true });
    });
  }

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
}

// ------------------------------------------------------------------ phases

let target: TargetKind = 'parley';
let pingTimer: NodeJS.Timeout | undefined;

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
  if (msg.target === 'parley' && msg.parleyClient === 'raw') {
    // Heartbeat (the server closes sockets silent for 2 × 25 s).
    pingTimer = setInterval(() => {
      for (const s of sides) (s.conn as ParleyRawConn).ping();
    }, 20_000);
  }
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

function pump(side: Side, window: number): void {
  // Bounded: at most `window` sends unanswered per sender, and only while running.
  while (st.running && side.inflight < window) {
    side.inflight++;
    st.sendsIssued++;
    const n = ++side.nextN;
    const t0 = now();
    side.conn.send(`b ${t0.toFixed(3)} ${n} ${side.me.name}`, n).then(
      () => {
        const t1 = now();
        side.inflight--;
        side.acked.push(n);
        st.sendsAcked++;
        if (t1 <= st.windowEnd) st.sendsAckedInWindow++;
        st.ackLatency.add(t1 - t0);
        pump(side, window);
      },
      (err: SendError) => {
        side.inflight--;
        const code = err?.code ?? 'exception';
        st.sendErrors[code] = (st.sendErrors[code] ?? 0) + 1;
        sample(`${side.me.name}: send ${n} failed ${code}: ${err?.message}`);
        if (st.running) setTimeout(() => pump(side, window), 100);
      },
    );
  }
}

async function go(msg: Extract<ToGen, { type: 'go' }>): Promise<void> {
  st.requestTimeoutMs = msg.requestTimeoutMs;
  st.windowStart = now();
  st.windowEnd = st.windowStart + msg.seconds * 1000;
  st.running = true;
  for (const s of sides) pump(s, msg.window);
  await sleep(msg.seconds * 1000);
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
    sendsIssued: st.sendsIssued,
    sendsAcked: st.sendsAcked,
    sendsAckedInWindow: st.sendsAckedInWindow,
    sendErrors: st.sendErrors,
    recvInWindow: st.recvInWindow,
    recvTotal: st.recvTotal,
    latency: st.latency.toWire(),
    ackLatency: st.ackLatency.toWire(),
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

async function closeAll(timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  st.running = false;
  st.closing = true;
  if (pingTimer) clearInterval(pingTimer);
  await withTimeout(Promise.all(sides.map((s) => s.conn.close().catch(() => undefined))), timeoutMs, 'closing clients').catch((e: Error) => sample(e.message));
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
