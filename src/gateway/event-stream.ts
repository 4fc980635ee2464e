// One Server-Sent Events response (docs/protocol.md §8.3, viewers without an account) on a uWS
// HttpResponse: writes while the client keeps up, queues a bounded amount while it does not, and
// disconnects a viewer that falls further behind (it resumes with Last-Event-ID).
import type { UWS } from './uws.js';

export class EventStream {
  /** newest seq written (or queued) to this viewer */
  sentSeq = 0;
  /** getting live posts (false while its replay is being written) */
  live = false;
  gone = false;
  private blocked = false;
  private queue: string[] = [];
  private queuedBytes = 0;

  constructor(
    private readonly res: UWS.HttpResponse,
    /** bytes queued for a blocked viewer beyond which it is disconnected */
    private readonly maxQueuedBytes: number,
    private readonly onGone: (stream: EventStream, overflowed: boolean) => void,
  ) {
    res.onAborted(() => this.finish(false));
    // Registering onWritable also keeps uWS from arming its 10 s HTTP timeout after a full buffer.
    res.onWritable(() => this.unblock());
  }

  /** The status line and headers, and a first comment so that proxies pass the stream on at once. */
  begin(): void {
    if (this.gone) return;
    this.res.cork(() => {
      this.res.writeStatus('200 OK');
      this.res.writeHeader('Content-Type', 'text/event-stream');
      this.res.writeHeader('Cache-Control', 'no-cache');
      this.res.writeHeader('X-Accel-Buffering', 'no');
      this.writeRaw(':ok\n\n');
    });
  }

  /** Writes SSE text (whole events); queued while the client is not reading. */
  write(text: string): void {
    if (this.gone) return;
    if (this.blocked) {
      this.queuedBytes += text.length;
      if (this.queuedBytes > this.maxQueuedBytes) return this.disconnect();
      this.queue.push(text);
      return;
    }
    this.res.cork(() => this.writeRaw(text));
  }

  /** Keeps proxies from closing an idle stream; skipped while the viewer is behind anyway. */
  keepAlive(): void {
    if (!this.blocked) this.write(':\n\n');
  }

  /** Ends the stream from our side (e.g. the channel's shard restarted). */
  end(): void {
    if (this.gone) return;
    this.res.cork(() => this.res.end());
    this.finish(false);
  }

  private writeRaw(text: string): void {
    if (!this.res.write(text)) this.blocked = true;
  }

  private unblock(): boolean {
    if (this.gone) return true;
    this.blocked = false;
    const text = this.queue.length > 0 ? this.queue.join('') : ':\n\n'; // writing drains uWS's own buffer
    this.queue = [];
    this.queuedBytes = 0;
    this.writeRaw(text);
    return true;
  }

  private disconnect(): void {
    this.queue = [];
    this.finish(true);
    this.res.close();
  }

  private finish(overflowed: boolean): void {
    if (this.gone) return;
    this.gone = true;
    this.onGone(this, overflowed);
  }
}
