// Load generator child of cluster-connections.ts (forked with an IPC channel). It holds a slice of
// the idle connections: raw `ws` sockets speaking the wire codec (as idle-hold.ts), each bound to a
// source address in 127.0.0.0/8 (`localAddress`) and signed in with its own application JWT
// (`hello {jwt}`: the user is created on first sight, no scrypt), then pinging within the heartbeat.
// Later some of its held sockets chat in 1:1 pairs (both users of a pair in this process, so send
// and receive times share one clock), pairs on one node or on two, closed loop like bench.ts.
// Every wait is bounded; the process exits when the parent goes away or after its own lifetime.
import { SignJWT } from 'jose';
import { WebSocket } from 'ws';
import { decodeFrame, encodeFrame } from '../protocol/wire.js';
import { LogHistogram, type HistWire } from './k6/histogram.js';
import { now, pool } from './k6/helpers.js';

// ------------------------------------------------------------------ IPC (the parent imports these types)

export interface ConnectJob {
  type: 'connect';
  /** global index of this generator's first socket, and how many it opens */
  first: number;
  count: number;
  /** node ports on 127.0.0.1; socket i goes to nodes[i % nodes.length] */
  nodes: number[];
  /** sockets per node at most: socket i is the floor(i / nodes)-th of its node; beyond this it is not opened */
  capPerNode: number;
  /** source addresses; socket i binds to sources[i % sources.length] */
  sources: string[];
  secret: string;
  /** prefix of the JWT subs (distinct users per run) */
  tag: string;
  /** hellos in flight at once in this process */
  concurrency: number;
  /** one socket's open → synced bound */
  handshakeTimeoutMs: number;
  /** stop opening new sockets after this (epoch ms) */
  deadline: number;
}

export type TrafficMode = 'same' | 'cross';

export interface TrafficJob {
  type: 'traffic';
  mode: TrafficMode;
  pairs: number;
  window: number;
  warmupTimeoutMs: number;
}

/** After every generator is warm: the measured window, from startAt (epoch ms) for `seconds`. */
export interface GoJob {
  type: 'go';
  startAt: number;
  seconds: number;
  drainTimeoutMs: number;
}

export type ToGen = ConnectJob | TrafficJob | GoJob | { type: 'status' } | { type: 'close' };

export interface HoldStats {
  synced: number;
  /** sockets that did not reach synced, by reason */
  failed: Record<string, number>;
  /** synced sockets the server closed later, by close code */
  closedWhileHeld: Record<string, number>;
  /** epoch ms of the first and last synced */
  firstSyncedAt: number;
  lastSyncedAt: number;
  /** open → synced, ms */
  connect: HistWire;
  perNode: number[];
  samples: string[];
}

export interface TrafficStats {
  mode: TrafficMode;
  pairs: number;
  /** why fewer pairs than asked, if so */
  shortfall?: string;
  windowMs: number;
  recvInWindow: number;
  latency: HistWire;
  ackLatency: HistWire;
  sendsAcked: number;
  sendErrors: Record<string, number>;
  lost: number;
  duplicates: number;
  warmupFailed: number;
  samples: string[];
}

export type FromGen =
  | { type: 'progress'; synced: number; failed: number; pending: number }
  | { type: 'held'; stats: HoldStats }
  | { type: 'warm'; pairs: number; failed: number }
  /** after the hold: held sockets still open, and those the server closed since synced (by code) */
  | { type: 'status'; open: number; closedWhileHeld: Record<string, number> }
  | { type: 'traffic-done'; stats: TrafficStats }
  | { type: 'closed' }
  | { type: 'fatal'; error: string };

// ------------------------------------------------------------------ process

const MAX_LIFETIME_MS = Number(process.env.CLUSTER_GENERATOR_MAX_MS ?? 60 * 60_000);
const PING_EVERY_MS = 20_000; // the server's heartbeat is 25 s; silent for 50 s closes
const PING = encodeFrame({ t: 'ping' });
const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));

function post(msg: FromGen): void {
  process.send?.(msg);
}

setTimeout(() => {
  process.stderr.write(`cluster-generator ${process.pid}: lifetime of ${MAX_LIFETIME_MS} ms exceeded, exiting\n`);
  process.exit(3);
}, MAX_LIFETIME_MS).unref();
process.on('disconnect', () => process.exit(2));

const samples: string[] = [];
function sample(s: string): void {
  if (samples.length < 20) samples.push(s);
}
function bump(m: Record<string, number>, k: string): void {
  m[k] = (m[k] ?? 0) + 1;
}

async function waitFor(cond: () => boolean, timeoutMs: number, everyMs = 25): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() >= deadline) return false;
    await sleep(everyMs);
  }
  return true;
}

// ------------------------------------------------------------------ sockets

interface Chat {
  partner: Sock;
  running: boolean;
  inflight: number;
  nextN: number;
  r: number;
  /** request number → send stamp */
  pending: Map<number, number>;
  acked: number;
  seen: Set<number>;
  warm: boolean;
  warmOk: boolean;
}

interface Sock {
  i: number;
  node: number;
  ws: WebSocket;
  user?: string;
  synced: boolean;
  /** set while the socket is in a traffic pair */
  chat?: Chat;
  lastU: number;
  ackedU: number;
  ackTimer?: NodeJS.Timeout;
  used: boolean;
}

const hold = {
  synced: 0,
  failed: {} as Record<string, number>,
  closedWhileHeld: {} as Record<string, number>,
  firstSyncedAt: 0,
  lastSyncedAt: 0,
  connect: new LogHistogram(),
  pending: 0,
};
const held: Sock[] = [];
let closing = false;

/** Traffic counters of the running phase. */
const tr = {
  windowStart: 0,
  windowEnd: Infinity,
  recvInWindow: 0,
  latency: new LogHistogram(),
  ackLatency: new LogHistogram(),
  sendsAcked: 0,
  sendErrors: {} as Record<string, number>,
  duplicates: 0,
};

/** The n-th socket of the run: hello {jwt} → welcome (its user id) → synced, or a failure reason. */
async function openOne(job: ConnectJob, i: number, jwt: string): Promise<void> {
  const node = i % job.nodes.length;
  const t0 = now();
  const ws = new WebSocket(`ws://127.0.0.1:${job.nodes[node]}/v1/ws`, { perMessageDeflate: false, localAddress: job.sources[i % job.sources.length], handshakeTimeout: job.handshakeTimeoutMs });
  ws.binaryType = 'nodebuffer';
  const s: Sock = { i, node, ws, synced: false, lastU: 0, ackedU: 0, used: false };
  hold.pending++;
  const reason = await new Promise<string | undefined>((resolve) => {
    let settled = false;
    const done = (r: string | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const timer = setTimeout(() => {
      done(s.user ? 'timeout after welcome (no synced)' : ws.readyState === WebSocket.OPEN ? 'timeout after open (no welcome)' : 'timeout before open');
      ws.terminate();
    }, job.handshakeTimeoutMs);
    ws.on('open', () => ws.send(encodeFrame({ t: 'hello', jwt })));
    ws.on('unexpected-response', (_req, res) => {
      done(`http ${res.statusCode} at upgrade`);
      ws.terminate();
    });
    ws.on('message', (raw: Buffer) => {
      if (s.synced && !s.chat) return; // idle: nothing should come but pongs
      let f: Record<string, any>;
      try {
        f = decodeFrame(raw) as Record<string, any>;
      } catch {
        sample(`socket ${i}: undecodable frame`);
        return;
      }
      if (!s.synced) {
        if (f.t === 'welcome') s.user = f.user;
        else if (f.t === 'synced') {
          s.synced = true;
          done(undefined);
        } else if (f.t === 'kick' || f.t === 'err') done(`${f.t} ${f.code}`);
        return;
      }
      onChatFrame(s, f);
    });
    ws.on('error', (err: NodeJS.ErrnoException) => done(`error ${err.code ?? err.message}`));
    ws.on('close', (code) => {
      if (!s.synced) done(`closed ${code} before synced`);
      else if (!closing) {
        bump(hold.closedWhileHeld, String(code));
        sample(`socket ${i} (node ${node}) closed while held: ${code}`);
        if (s.chat) s.chat.running = false;
      }
    });
  });
  hold.pending--;
  if (reason !== undefined) {
    bump(hold.failed, reason);
    sample(`socket ${i} (node ${node}): ${reason}`);
    return;
  }
  const t = Date.now();
  hold.firstSyncedAt ||= t;
  hold.lastSyncedAt = t;
  hold.synced++;
  hold.connect.add(now() - t0);
  held.push(s);
}

let pingTimer: NodeJS.Timeout | undefined;
/** Every second one twentieth of the held sockets ping: each once per 20 s, spread evenly. */
function startPings(): void {
  let tick = 0;
  const slices = PING_EVERY_MS / 1000;
  pingTimer = setInterval(() => {
    const k = tick++ % slices;
    for (let j = k; j < held.length; j += slices) {
      const ws = held[j]!.ws;
      if (ws.readyState === WebSocket.OPEN) ws.send(PING);
    }
  }, 1000);
}

async function connect(job: ConnectJob): Promise<void> {
  startPings();
  const key = new TextEncoder().encode(job.secret);
  const exp = Math.floor(Date.now() / 1000) + 4 * 3600; // beyond the run: no refresh during it
  const progress = setInterval(() => post({ type: 'progress', synced: hold.synced, failed: Object.values(hold.failed).reduce((a, b) => a + b, 0), pending: hold.pending }), 2000);
  const indices = Array.from({ length: job.count }, (_, k) => job.first + k);
  await pool(indices, job.concurrency, async (i) => {
    if (Date.now() >= job.deadline) {
      bump(hold.failed, 'not started: ramp deadline');
      return;
    }
    if (Math.floor(i / job.nodes.length) >= job.capPerNode) {
      bump(hold.failed, "not opened: over the node's file headroom");
      return;
    }
    const jwt = await new SignJWT({ device: 'd1' }).setProtectedHeader({ alg: 'HS256' }).setSubject(`${job.tag}-${i}`).setExpirationTime(exp).sign(key);
    await openOne(job, i, jwt);
  });
  clearInterval(progress);
  const perNode = job.nodes.map(() => 0);
  for (const s of held) perNode[s.node]!++;
  post({
    type: 'held',
    stats: { synced: hold.synced, failed: hold.failed, closedWhileHeld: hold.closedWhileHeld, firstSyncedAt: hold.firstSyncedAt, lastSyncedAt: hold.lastSyncedAt, connect: hold.connect.toWire(), perNode, samples: samples.splice(0) },
  });
}

// ------------------------------------------------------------------ 1:1 traffic

function onChatFrame(s: Sock, f: Record<string, any>): void {
  const c = s.chat;
  if (!c) return;
  if (typeof f.u === 'number' && f.u > s.lastU) {
    s.lastU = f.u;
    scheduleAck(s);
  }
  if (f.t === 'msg') {
    if (f.from !== c.partner.user) return; // our own send, echoed to our device
    const body = String(f.body ?? '');
    if (body.charCodeAt(0) === 119 /* w */) {
      c.warm = true;
      return;
    }
    // "b <stamp ms> <n>"
    const sp = body.indexOf(' ', 2);
    const stamp = Number(body.slice(2, sp));
    const n = Number(body.slice(sp + 1));
    if (c.seen.has(n)) {
      tr.duplicates++;
      return;
    }
    c.seen.add(n);
    const t = now();
    if (t >= tr.windowStart && t <= tr.windowEnd) tr.recvInWindow++;
    tr.latency.add(t - stamp);
  } else if (f.t === 'ok' || f.t === 'err') {
    const stamp = c.pending.get(f.r);
    if (stamp === undefined) return;
    c.pending.delete(f.r);
    c.inflight--;
    if (f.t === 'ok') {
      if (stamp < 0) c.warmOk = true;
      else {
        c.acked++;
        tr.sendsAcked++;
        tr.ackLatency.add(now() - stamp);
      }
      pump(s);
    } else {
      bump(tr.sendErrors, String(f.code));
      sample(`user ${s.user}: send err ${f.code}: ${f.msg}`);
      setTimeout(() => pump(s), 100).unref();
    }
  }
}

/** Like the SDK: one ack per ~50 ms for everything received. */
function scheduleAck(s: Sock): void {
  if (s.ackTimer) return;
  s.ackTimer = setTimeout(() => {
    s.ackTimer = undefined;
    if (s.lastU > s.ackedU && s.ws.readyState === WebSocket.OPEN) {
      s.ackedU = s.lastU;
      s.ws.send(encodeFrame({ t: 'ack', u: s.lastU }));
    }
  }, 50);
}

let windowSize = 1;

/** Writes one send to the partner: body "w" (warm-up, stamp -1) or "b <stamp> <n>". */
function write(s: Sock, warm: boolean): void {
  const c = s.chat!;
  const r = ++c.r;
  const stamp = warm ? -1 : now();
  const n = warm ? 0 : ++c.nextN;
  c.pending.set(r, stamp);
  c.inflight++;
  s.ws.send(encodeFrame({ t: 'send', r, cid: `${s.user}-${warm ? 'w' : n}`, to: c.partner.user, body: warm ? 'w' : `b ${stamp.toFixed(3)} ${n}` }));
}

/** Closed loop: at most `windowSize` sends unanswered per sender, while the window runs. */
function pump(s: Sock): void {
  const c = s.chat!;
  while (c.running && c.inflight < windowSize && s.ws.readyState === WebSocket.OPEN) write(s, false);
}

/** Pairs of unused held sockets: both on one node (same) or on two neighbouring nodes (cross). */
function pickPairs(mode: TrafficMode, want: number, nodes: number): Array<[Sock, Sock]> {
  const byNode: Sock[][] = Array.from({ length: nodes }, () => []);
  for (const s of held) if (!s.used && s.synced && s.ws.readyState === WebSocket.OPEN) byNode[s.node]!.push(s);
  const pairs: Array<[Sock, Sock]> = [];
  for (let k = 0, idle = 0; pairs.length < want && idle < nodes; k = (k + 1) % nodes) {
    const a = byNode[k]!;
    const b = mode === 'same' ? a : byNode[(k + 1) % nodes]!;
    if (a.length < 1 || b.length < (mode === 'same' ? 2 : 1) || (mode === 'cross' && nodes < 2)) {
      idle++;
      continue;
    }
    idle = 0;
    pairs.push([a.pop()!, b.pop()!]);
  }
  return pairs;
}

let chat: { job: TrafficJob; pairs: Array<[Sock, Sock]>; sides: Sock[]; warmupFailed: number } | undefined;

/** Picks the pairs, sends one message each way (the first creates the 1:1 thread), waits for them. */
async function warmUp(job: TrafficJob, nodes: number): Promise<void> {
  windowSize = job.window;
  const pairs = pickPairs(job.mode, job.pairs, nodes);
  const sides: Sock[] = [];
  for (const [a, b] of pairs) {
    for (const [me, other] of [[a, b], [b, a]] as const) {
      me.used = true;
      me.chat = { partner: other, running: false, inflight: 0, nextN: 0, r: 0, pending: new Map(), acked: 0, seen: new Set(), warm: false, warmOk: false };
      sides.push(me);
    }
  }
  Object.assign(tr, { windowStart: Infinity, windowEnd: Infinity, recvInWindow: 0, latency: new LogHistogram(), ackLatency: new LogHistogram(), sendsAcked: 0, sendErrors: {}, duplicates: 0 });
  for (const [a, b] of pairs) {
    write(a, true);
    write(b, true);
  }
  await waitFor(() => sides.every((s) => s.chat!.warm && s.chat!.warmOk), job.warmupTimeoutMs);
  const warmupFailed = sides.filter((s) => !(s.chat!.warm && s.chat!.warmOk)).length;
  if (warmupFailed > 0) sample(`${job.mode}: ${warmupFailed} of ${sides.length} users had no warm-up ok or message within ${job.warmupTimeoutMs} ms`);
  chat = { job, pairs, sides, warmupFailed };
  post({ type: 'warm', pairs: pairs.length, failed: warmupFailed });
}

/** The closed loop over the window, the drain, the report; the users go back to idle. */
async function go(g: GoJob): Promise<void> {
  if (!chat) throw new Error('go before a traffic warm-up');
  const { job, pairs, sides, warmupFailed } = chat;
  chat = undefined;
  tr.windowStart = g.startAt;
  tr.windowEnd = g.startAt + g.seconds * 1000;
  await sleep(Math.max(0, g.startAt - now()));
  for (const s of sides) {
    s.chat!.running = true;
    pump(s);
  }
  await sleep(Math.max(0, tr.windowEnd - now()));
  for (const s of sides) s.chat!.running = false;
  const stopAt = now();
  await waitFor(() => sides.every((s) => s.chat!.inflight === 0) && pairs.every(([a, b]) => a.chat!.seen.size >= b.chat!.acked && b.chat!.seen.size >= a.chat!.acked), g.drainTimeoutMs, 20);
  let lost = 0;
  for (const s of sides) lost += Math.max(0, s.chat!.partner.chat!.acked - s.chat!.seen.size);
  for (const s of sides) s.chat = undefined; // back to idle
  post({
    type: 'traffic-done',
    stats: {
      mode: job.mode,
      pairs: pairs.length,
      shortfall: pairs.length < job.pairs ? `only ${pairs.length} of ${job.pairs} pairs could be formed from this generator's held sockets` : undefined,
      windowMs: stopAt - g.startAt,
      recvInWindow: tr.recvInWindow,
      latency: tr.latency.toWire(),
      ackLatency: tr.ackLatency.toWire(),
      sendsAcked: tr.sendsAcked,
      sendErrors: tr.sendErrors,
      lost,
      duplicates: tr.duplicates,
      warmupFailed,
      samples: samples.splice(0),
    },
  });
}

// ------------------------------------------------------------------ main

let nodeCount = 1;
process.on('message', (m: ToGen) => {
  const run = async () => {
    if (m.type === 'connect') {
      nodeCount = m.nodes.length;
      await connect(m);
    } else if (m.type === 'traffic') await warmUp(m, nodeCount);
    else if (m.type === 'go') await go(m);
    else if (m.type === 'status') post({ type: 'status', open: held.filter((s) => s.ws.readyState === WebSocket.OPEN).length, closedWhileHeld: hold.closedWhileHeld });
    else if (m.type === 'close') {
      closing = true;
      clearInterval(pingTimer);
      for (const s of held) s.ws.terminate();
      post({ type: 'closed' });
      setTimeout(() => process.exit(0), 100);
    }
  };
  run().catch((err: unknown) => {
    post({ type: 'fatal', error: (err as Error)?.stack ?? String(err) });
    setTimeout(() => process.exit(1), 200);
  });
});
