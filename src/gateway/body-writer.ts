// Streams a Readable into a uWS response with backpressure: a chunk uWS cannot take now is kept
// (one chunk, never a queue), the source is paused, and the rest is written from onWritable.
import type { Readable } from 'node:stream';
import type { Reply } from './http.js';
import { STATUS_TEXT } from './http.js';

/** Writes status, headers and exactly `length` bytes of `body`; resolves when done or aborted. */
export function streamBody(reply: Reply, status: number, headers: Record<string, string>, body: Readable, length: number, onBytes: (n: number) => void): Promise<void> {
  const { res } = reply;
  return new Promise<void>((resolve) => {
    let finished = false;
    const finish = () => {
      finished = true;
      body.destroy();
      resolve();
    };
    if (reply.aborted) return finish();
    reply.onAbort(finish);
    res.cork(() => {
      res.writeStatus(STATUS_TEXT[status] ?? String(status));
      for (const name in headers) res.writeHeader(name, headers[name]);
    });
    if (length === 0) {
      res.cork(() => res.end());
      return finish();
    }
    let pending: Buffer | null = null;
    let pendingAt = 0; // the response's write offset when `pending` was first tried
    body.on('error', () => {
      if (!finished && !reply.aborted) res.close(); // the length was promised: cut the connection, not the body
      finish();
    });
    body.on('data', (chunk: Buffer) => {
      if (reply.aborted) return;
      pendingAt = res.getWriteOffset();
      let ok = false;
      let done = false;
      res.cork(() => ([ok, done] = res.tryEnd(chunk, length)));
      onBytes(chunk.length);
      if (done) return finish();
      if (!ok) {
        pending = chunk;
        body.pause();
      }
    });
    body.on('end', () => {
      // Every chunk went out without the response completing: the source was shorter than promised.
      if (!finished && !reply.aborted && pending === null) {
        res.close();
        finish();
      }
    });
    res.onWritable((offset) => {
      if (pending === null) return true;
      const [ok, done] = res.tryEnd(pending.subarray(offset - pendingAt), length);
      if (done) {
        finish();
        return true;
      }
      if (ok) {
        pending = null;
        body.resume();
      }
      return ok;
    });
  });
}
