// Pending asks awaiting their reply: correlation ids, and one sweep timer that times out
// overdue ones (a timer per ask would cost an allocation and a heap entry per request).
import { ProtocolError } from '../src/protocol/errors.js';

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  deadline: number;
  what: string;
}

export class PendingAsks {
  private next = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly timeoutMs: number) {
    this.sweeper = setInterval(() => this.sweep(), Math.min(1000, Math.max(50, timeoutMs / 4)));
    this.sweeper.unref();
  }

  /** Registers an ask; returns its id and the promise its reply settles. */
  open<T>(what: string): { id: number; promise: Promise<T> } {
    const id = this.next++;
    const promise = new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, deadline: Date.now() + this.timeoutMs, what });
    });
    return { id, promise };
  }

  settle(id: number, value: unknown, errorCode?: string, errorMessage?: string): void {
    const p = this.pending.get(id);
    if (!p) return; // already timed out: the late reply has nobody to go to
    this.pending.delete(id);
    if (errorCode) p.reject(new ProtocolError(errorCode, errorMessage ?? errorCode));
    else p.resolve(value);
  }

  get size(): number {
    return this.pending.size;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [id, p] of this.pending) {
      if (p.deadline <= now) {
        this.pending.delete(id);
        p.reject(new ProtocolError('unavailable', `no answer to ${p.what} within ${this.timeoutMs} ms`));
      }
    }
  }

  /** Rejects everything still waiting (shutdown). */
  close(reason: string): void {
    clearInterval(this.sweeper);
    for (const p of this.pending.values()) p.reject(new ProtocolError('unavailable', reason));
    this.pending.clear();
  }
}
