// Pending asks awaiting their reply: correlation ids, and one sweep timer that times out
// overdue ones (a timer per ask would cost an allocation and a heap entry per request).
import { ErrorCode } from '../protocol/codes.js';
import { ProtocolError } from '../protocol/errors.js';
import { LatencyStats } from './latency-stats.js';

/**
 * `retry` (ms) of an `unavailable` that says an actor could not be reached (its shard or node is
 * down, the transport dropped the ask, no answer in time): clients try again after it.
 */
export const UNREACHABLE_RETRY_MS = 1000;

/** Called exactly once: with the reply value, or with an error (ProtocolError, or unavailable on timeout). */
export type ReplyCallback<T> = (err: ProtocolError | null, value?: T) => void;

interface Pending {
  done: ReplyCallback<unknown>;
  deadline: number;
  what: string;
  /** the thread the ask went to: if it dies, the ask fails at once */
  to: number;
  opened: number;
}

export class PendingAsks {
  private next = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly sweeper: NodeJS.Timeout;
  /** answered asks by the thread they went to: time from open to answer */
  readonly latency = new Map<number, LatencyStats>();

  constructor(private readonly timeoutMs: number) {
    this.sweeper = setInterval(() => this.sweep(), Math.min(1000, Math.max(50, timeoutMs / 4)));
    this.sweeper.unref();
  }

  /**
   * Registers an ask answered through `done`, synchronously when the reply arrives (so the
   * gateway can write it in the same corked batch as the pushes that came with it).
   */
  open<T>(what: string, done: ReplyCallback<T>, to = 0): number {
    const id = this.next++;
    const opened = performance.now();
    this.pending.set(id, { done: done as ReplyCallback<unknown>, deadline: Date.now() + this.timeoutMs, what, to, opened });
    return id;
  }

  settle(id: number, value: unknown, errorCode?: string, errorMessage?: string): void {
    const p = this.pending.get(id);
    if (!p) return; // already timed out: the late reply has nobody to go to
    this.pending.delete(id);
    let stats = this.latency.get(p.to);
    if (!stats) this.latency.set(p.to, (stats = new LatencyStats()));
    stats.record((performance.now() - p.opened) / 1000);
    if (errorCode) p.done(new ProtocolError(errorCode, errorMessage ?? errorCode, errorCode === ErrorCode.unavailable ? { retry: UNREACHABLE_RETRY_MS } : undefined));
    else p.done(null, value);
  }

  get size(): number {
    return this.pending.size;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [id, p] of this.pending) {
      if (p.deadline <= now) {
        this.pending.delete(id);
        p.done(new ProtocolError(ErrorCode.unavailable, `no answer to ${p.what} within ${this.timeoutMs} ms`, { retry: UNREACHABLE_RETRY_MS }));
      }
    }
  }

  /** Thread `to` died: its asks will never be answered, so they fail now rather than time out. */
  failTo(to: number, reason: string): number {
    let n = 0;
    for (const [id, p] of this.pending) {
      if (p.to !== to) continue;
      this.pending.delete(id);
      p.done(new ProtocolError(ErrorCode.unavailable, `${p.what}: ${reason}`, { retry: UNREACHABLE_RETRY_MS }));
      n++;
    }
    return n;
  }

  /** Rejects everything still waiting (shutdown). */
  close(reason: string): void {
    clearInterval(this.sweeper);
    for (const p of this.pending.values()) p.done(new ProtocolError(ErrorCode.unavailable, reason));
    this.pending.clear();
  }
}
