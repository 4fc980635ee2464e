// A uWS request body as a Node Readable with backpressure: when the consumer falls behind, the
// socket is paused (uWS stops reading it) and resumed once the consumer asks for more. Memory per
// upload stays bounded by the high-water mark, whatever the body's size.
import { Readable } from 'node:stream';
import type { Reply } from './http.js';

const HIGH_WATER_BYTES = 1 << 20;

export function requestStream(reply: Reply): Readable {
  const { res } = reply;
  let paused = false;
  const stream = new Readable({
    highWaterMark: HIGH_WATER_BYTES,
    read() {
      if (paused && !reply.aborted) {
        paused = false;
        res.resume();
      }
    },
  });
  // Whoever reads the stream sees the abort as an error; one that has not started reading yet
  // must not turn it into an uncaught 'error' event.
  stream.on('error', () => undefined);
  reply.onAbort(() => stream.destroy(new Error('the client went away')));
  res.onData((chunk, isLast) => {
    // uWS reuses the chunk's memory after this callback returns: copy it.
    const more = stream.push(Buffer.from(new Uint8Array(chunk)));
    if (isLast) stream.push(null);
    else if (!more && !paused) {
      paused = true;
      res.pause();
    }
  });
  return stream;
}
