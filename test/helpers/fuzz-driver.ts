// Drives the fuzz generators against a running server, for test/fuzz.test.ts and
// loadtest/fuzz.ts alike: lanes of logged-in raw sockets sending fuzz frames, bounded HTTP fuzz
// traffic, and a well-behaved pair of SDK clients chatting throughout, checked for exactly-once,
// in-order delivery at the end. Every wait is for an event, with a timeout as a safety net only.
import WebSocket from 'ws';
import { ParleyClient } from '../../client/index.js';
import { decodeFrame, encodeFrame } from '../../protocol/wire.js';
import { fuzzFrame, knownKillers, Rng, type FuzzContext, type FuzzFrame } from './fuzz-frames.js';
import { fuzzRequest, sendFetch, sendRaw, type FuzzHttpContext } from './fuzz-http.js';

/** Request numbers of the pings that confirm each frame was handled: far from the fuzz's own r. */
const PING_R_BASE = 2 ** 50;

export interface FrameFuzzOptions {
  wsUrl: string;
  tokens: string[];
  ctx: FuzzContext;
  seed: number;
  frames: number;
  /** sockets sending at once */
  lanes: number;
  /** stop early at this time (ms since the epoch) */
  deadline: number;
  /** longest wait for one answer before the run fails: the server hung */
  answerTimeoutMs: number;
  /** send the four known killers first, each on its own socket */
  killersFirst?: boolean;
  onProgress?: (sent: number) => void;
}

export interface FrameFuzzStats {
  framesSent: number;
  sockets: number;
  /** close codes seen on fuzz sockets, by code */
  closes: Record<string, number>;
  kinds: Record<string, number>;
  /** err frames received on fuzz sockets, by code: `internal` means the server failed, not the frame */
  errCodes: Record<string, number>;
  /** time the lanes spent opening sockets and waiting for frames to be handled, summed */
  openMs: number;
  frameMs: number;
}

/**
 * A logged-in raw socket: resolves once the replay is done (synced). `since` is the newest u a
 * socket of this token saw (fuzz sockets never ack): without it each socket would replay the
 * whole, growing, log of its user, and the run would slow down quadratically.
 */
function openSocket(url: string, token: string, since: Map<string, number>, timeoutMs: number): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.binaryType = 'nodebuffer';
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no synced within ${timeoutMs} ms`));
    }, timeoutMs);
    const fail = (why: string) => {
      clearTimeout(timer);
      reject(new Error(why));
    };
    ws.on('error', (err) => fail(`socket error: ${err.message}`));
    ws.on('close', (code) => fail(`closed with ${code} before synced`));
    ws.on('open', () => ws.send(encodeFrame({ t: 'hello', token, ...(since.has(token) ? { since: since.get(token) } : {}) })));
    ws.on('message', (data: Buffer) => {
      const f = decodeFrame(data) as { t?: string; u?: number };
      if (f.t === 'welcome' && typeof f.u === 'number') since.set(token, Math.max(since.get(token) ?? 0, f.u));
      if (f.t !== 'synced') return;
      clearTimeout(timer);
      ws.removeAllListeners();
      resolve(ws);
    });
  });
}

/**
 * Sends `frame` then a ping; resolves 'handled' at the pong (the server processed the frame, in
 * order) or 'closed' (with the code) when the socket closed instead.
 */
function sendAndConfirm(ws: WebSocket, frame: FuzzFrame, pingR: number, timeoutMs: number): Promise<{ closed: number | null }> {
  return new Promise((resolve, reject) => {
    const done = (result: { closed: number | null }) => {
      clearTimeout(timer);
      ws.off('message', onMessage);
      ws.off('close', onClose);
      resolve(result);
    };
    const onMessage = (data: Buffer) => {
      let f: { t?: string; r?: number };
      try {
        f = decodeFrame(data) as typeof f;
      } catch (err) {
        clearTimeout(timer);
        reject(new Error(`the server sent a frame we cannot decode: ${(err as Error).message}`));
        return;
      }
      if (f.t === 'pong' && f.r === pingR) done({ closed: null });
    };
    const onClose = (code: number) => done({ closed: code });
    const timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms to a ${frame.kind} frame`)), timeoutMs);
    ws.on('message', onMessage);
    ws.on('close', onClose);
    if (ws.readyState !== WebSocket.OPEN) return done({ closed: 1006 });
    ws.send(frame.data, { binary: typeof frame.data !== 'string' });
    ws.send(encodeFrame({ t: 'ping', r: pingR }));
  });
}

export async function runFrameFuzz(o: FrameFuzzOptions): Promise<FrameFuzzStats> {
  const stats: FrameFuzzStats = { framesSent: 0, sockets: 0, closes: {}, kinds: {}, errCodes: {}, openMs: 0, frameMs: 0 };
  let taken = 0;
  let pings = 0;
  const count = (frame: FuzzFrame, closed: number | null) => {
    stats.framesSent++;
    stats.kinds[frame.kind] = (stats.kinds[frame.kind] ?? 0) + 1;
    if (closed !== null) stats.closes[closed] = (stats.closes[closed] ?? 0) + 1;
    if (stats.framesSent % 1000 === 0) o.onProgress?.(stats.framesSent);
  };
  const since = new Map<string, number>();
  const socket = async (rng: Rng) => {
    stats.sockets++;
    const ws = await openSocket(o.wsUrl, rng.pick(o.tokens), since, o.answerTimeoutMs);
    // Every err the server sends, for the socket's whole life (answers may come after the pong).
    ws.on('message', (data: Buffer) => {
      const f = decodeFrame(data) as { t?: string; code?: unknown };
      if (f.t === 'err') stats.errCodes[String(f.code)] = (stats.errCodes[String(f.code)] ?? 0) + 1;
    });
    return ws;
  };

  if (o.killersFirst) {
    const rng = new Rng(o.seed);
    for (const killer of knownKillers()) {
      const ws = await socket(rng);
      const { closed } = await sendAndConfirm(ws, killer, PING_R_BASE + pings++, o.answerTimeoutMs);
      count(killer, closed);
      taken++;
      ws.close();
    }
  }

  const lane = async (index: number) => {
    const rng = new Rng((o.seed * 7919 + index * 104_729) >>> 0);
    let ws: WebSocket | null = null;
    while (taken < o.frames && Date.now() < o.deadline) {
      taken++; // before any await, so that lanes never overshoot the count
      const frame = fuzzFrame(rng, o.ctx);
      const t0 = performance.now();
      ws ??= await socket(rng);
      const t1 = performance.now();
      const { closed } = await sendAndConfirm(ws, frame, PING_R_BASE + pings++, o.answerTimeoutMs);
      stats.openMs += t1 - t0;
      stats.frameMs += performance.now() - t1;
      count(frame, closed);
      if (closed !== null) ws = null;
    }
    ws?.close();
  };
  await Promise.all(Array.from({ length: o.lanes }, (_, i) => lane(i)));
  return stats;
}

export interface HttpFuzzOptions {
  base: string;
  ctx: FuzzHttpContext;
  seed: number;
  requests: number;
  concurrency: number;
  deadline: number;
  answerTimeoutMs: number;
}

export interface HttpFuzzStats {
  requestsSent: number;
  raw: number;
  /** answers by status; "none" when the server closed without one */
  statuses: Record<string, number>;
}

export async function runHttpFuzz(o: HttpFuzzOptions): Promise<HttpFuzzStats> {
  const stats: HttpFuzzStats = { requestsSent: 0, raw: 0, statuses: {} };
  const { hostname, port } = new URL(o.base);
  let taken = 0;
  const worker = async (index: number) => {
    const rng = new Rng((o.seed * 31 + index * 7_777 + 1) >>> 0);
    while (taken < o.requests && Date.now() < o.deadline) {
      taken++;
      const req = fuzzRequest(rng, o.ctx);
      const status = req.kind === 'raw' ? await sendRaw(hostname, Number(port), req.bytes, o.answerTimeoutMs) : await sendFetch(o.base, req, o.answerTimeoutMs);
      stats.requestsSent++;
      if (req.kind === 'raw') stats.raw++;
      const key = status === null ? 'none' : String(status);
      stats.statuses[key] = (stats.statuses[key] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, (_, i) => worker(i)));
  return stats;
}

export interface Chatter {
  user: string;
  token: string;
}

export interface PairResult {
  /** messages each side sent and got an ok for */
  sent: [number, number];
  /** problems found: a message missing, repeated or out of order; a close */
  problems: string[];
}

/**
 * Two SDK clients chatting 1:1, turn by turn, until `stop` resolves; then each must have
 * received every message of the other exactly once, in order, and neither socket may have closed.
 */
export async function chatPair(wsUrl: string, a: Chatter, b: Chatter, stop: Promise<unknown>, timeoutMs: number): Promise<PairResult> {
  const problems: string[] = [];
  const clients = [a, b].map((c) => new ParleyClient({ url: wsUrl, token: c.token, WebSocket: WebSocket as never, reconnect: false }));
  const got: string[][] = [[], []];
  clients.forEach((c, i) => {
    const other = i === 0 ? b.user : a.user;
    c.on('msg', (m: { from: string; body?: string }) => {
      if (m.from === other) got[i].push(m.body ?? '');
    });
    c.on('close', (e: { code: number }) => problems.push(`client ${i} closed with ${e.code}`));
  });
  await Promise.all(clients.map((c) => c.connect()));
  const sent: [number, number] = [0, 0];
  let stopped = false;
  void stop.then(() => {
    stopped = true;
  });
  try {
    while (!stopped) {
      for (const i of [0, 1] as const) {
        await clients[i].send({ to: i === 0 ? b.user : a.user, body: `${i}:${sent[i]}` });
        sent[i]++;
      }
    }
  } catch (err) {
    problems.push(`a send failed: ${(err as Error).message}`);
  }
  // Every message the other side had an ok for must arrive: wait for the last one.
  await Promise.all(
    clients.map((c, i) => {
      const want = `${1 - i}:${sent[1 - i] - 1}`;
      if (got[i].includes(want)) return undefined;
      return c.next('msg', (m: { body?: string }) => m.body === want, timeoutMs).catch(() => problems.push(`client ${i} never got ${want}`));
    }),
  );
  got.forEach((list, i) => {
    const expected = Array.from({ length: sent[1 - i] }, (_, n) => `${1 - i}:${n}`);
    if (list.join(',') !== expected.join(',')) {
      const dupes = list.length - new Set(list).size;
      problems.push(`client ${i} got ${list.length} of ${expected.length} messages (${dupes} repeated), first difference at ${list.findIndex((x, n) => x !== expected[n])}`);
    }
  });
  await Promise.all(clients.map((c) => c.close()));
  // close() emits a close event of its own (code 1000, ours): not a problem.
  return { sent, problems: problems.filter((p) => !/closed with 1000$/.test(p)) };
}
