// The client side of the kill -9 tests: one raw socket that keeps a window of `send`s with cids in
// flight and records which were answered `ok`. What was acknowledged must survive a crash;
// what was not is resent with the same cid and must never be stored twice.
import WebSocket from 'ws';
import { decodeFrame, encodeFrame } from '../../protocol/wire.js';

export interface Ack { cid: string; thread: string; seq: number; id: string }
export interface Outgoing { cid: string; to: string; body: string }

export interface Session {
  ws: WebSocket;
  welcome: any;
  /** every frame after `welcome`, in arrival order (the replay, `synced`, live events, answers) */
  frames: any[];
  closed: Promise<void>;
  /** Resolves when `predicate` holds over `frames`, checked after each frame; rejects on close or timeout. */
  until(predicate: (frames: any[]) => boolean, timeoutMs?: number): Promise<void>;
  close(): void;
}

/** Opens a socket and says hello (`since`, `epoch` as given); resolves once `synced` arrived. */
export async function openSession(wsUrl: string, token: string, hello: { since?: number; epoch?: string } = {}, timeoutMs = 15_000): Promise<Session> {
  const ws = new WebSocket(wsUrl);
  ws.binaryType = 'arraybuffer';
  const frames: any[] = [];
  let welcome: any;
  const checks = new Set<() => void>();
  const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  ws.on('message', (data: ArrayBuffer) => {
    const f = decodeFrame(new Uint8Array(data)) as any;
    if (f.t === 'welcome' && welcome === undefined) welcome = f;
    else frames.push(f);
    for (const check of [...checks]) check();
  });
  ws.on('error', () => {}); // a killed server resets the connection: `closed` reports it
  const until = (predicate: (frames: any[]) => boolean, ms = timeoutMs) =>
    new Promise<void>((resolve, reject) => {
      if (predicate(frames)) return resolve();
      const done = (err?: Error) => {
        checks.delete(check);
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      const check = () => predicate(frames) && done();
      const timer = setTimeout(() => done(new Error('condition not met in time')), ms);
      checks.add(check);
      void closed.then(() => checks.has(check) && done(new Error('socket closed before the condition held')));
    });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  ws.send(encodeFrame({ t: 'hello', token, ...hello }));
  await until((fs) => fs.some((f) => f.t === 'synced'));
  return { ws, welcome, frames, closed, until, close: () => ws.close() };
}

export interface SendRun {
  acked: Ack[];
  /** cids that got no answer before the socket closed */
  unanswered: string[];
  /** answers `err`: code per cid (none is expected; counted by the callers) */
  errors: Map<string, string>;
}

/**
 * Sends `items` in order with at most `window` unanswered at once, until all are answered or the
 * socket closes (a killed server). `onAck` runs as each `ok` arrives, so a caller can kill the
 * server while the rest are still in flight. The window keeps the gateway's per-socket bound
 * on asks out of play (beyond it the server answers rate_limited).
 */
export function sendWindowed(session: Session, items: Outgoing[], window: number, onAck: (ack: Ack, count: number) => void = () => {}): Promise<SendRun> {
  const { ws } = session;
  const acked: Ack[] = [];
  const errors = new Map<string, string>();
  const byR = new Map<number, string>();
  let next = 0;
  let r = 1_000_000; // clear of other request numbers on the same socket
  return new Promise((resolve) => {
    const finish = () => {
      ws.off('message', onMessage);
      const answered = new Set([...acked.map((a) => a.cid), ...errors.keys()]);
      resolve({ acked, unanswered: items.map((i) => i.cid).filter((c) => !answered.has(c)), errors });
    };
    const fill = () => {
      while (next < items.length && byR.size < window && ws.readyState === WebSocket.OPEN) {
        const item = items[next++];
        byR.set(++r, item.cid);
        ws.send(encodeFrame({ t: 'send', r, cid: item.cid, to: item.to, body: item.body }));
      }
      if (byR.size === 0) finish();
    };
    const onMessage = (data: ArrayBuffer) => {
      const f = decodeFrame(new Uint8Array(data)) as any;
      const cid = typeof f.r === 'number' ? byR.get(f.r) : undefined;
      if (cid === undefined) return;
      byR.delete(f.r);
      if (f.t === 'ok') {
        const ack = { cid, thread: f.thread, seq: f.seq, id: f.id };
        acked.push(ack);
        onAck(ack, acked.length);
      } else errors.set(cid, f.code);
      fill();
    };
    ws.on('message', onMessage);
    void session.closed.then(finish);
    fill();
  });
}

/** Every message of `thread` in seq order, read with `history {after}` pages of 100. */
export async function readWholeThread(session: Session, thread: string): Promise<any[]> {
  const out: any[] = [];
  for (let r = 2_000_000; ; r++) {
    const after = out.length ? out[out.length - 1].seq : 0;
    session.ws.send(encodeFrame({ t: 'history', r, thread, after, limit: 100 }));
    await session.until((fs) => fs.at(-1)?.r === r); // no answer to r can be older than its request
    const page = session.frames.at(-1);
    if (page.t !== 'ok') throw new Error(`history failed: ${page.code} ${page.msg}`);
    out.push(...page.messages);
    if (!page.more) return out;
  }
}
