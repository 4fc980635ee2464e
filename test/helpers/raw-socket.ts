// A raw WebSocket for tests that must send what the SDK never would (garbage, text, huge frames)
// or read without the SDK's help. Frames are decoded with the wire codec.
import WebSocket from 'ws';
import { decodeFrame, encodeFrame } from '../../protocol/wire.js';

export interface RawSocket {
  ws: WebSocket;
  frames: any[];
  send(frame: object): void;
  sendBytes(bytes: Uint8Array | string): void;
  next(predicate?: (f: any) => boolean, timeoutMs?: number): Promise<any>;
  closed: Promise<{ code: number; reason: string }>;
}

export async function rawSocket(t: { teardown(fn: () => unknown): void }, wsUrl: string): Promise<RawSocket> {
  const ws = new WebSocket(wsUrl);
  ws.binaryType = 'arraybuffer';
  const frames: any[] = [];
  const waiters: { predicate: (f: any) => boolean; resolve: (f: any) => void }[] = [];
  ws.on('message', (data: ArrayBuffer) => {
    const f = decodeFrame(new Uint8Array(data));
    frames.push(f);
    for (const w of [...waiters]) {
      if (w.predicate(f)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(f);
      }
    }
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  t.teardown(() => ws.close());
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return {
    ws,
    frames,
    closed,
    send: (frame) => ws.send(encodeFrame(frame)),
    sendBytes: (bytes) => ws.send(bytes),
    next: (predicate = () => true, timeoutMs = 5000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no matching frame in time')), timeoutMs);
        waiters.push({ predicate, resolve: (f) => { clearTimeout(timer); resolve(f); } });
      }),
  };
}
