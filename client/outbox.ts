// Outbox: unanswered `send`s by cid, resent with the same cid until an ok or a terminal err.
import { ErrorCode } from '../protocol/codes.js';
import type { Pending } from './pending.js';

/** Errors after which a send is tried again (same cid, so never a duplicate message). */
const RETRYABLE: ReadonlySet<string> = new Set([ErrorCode.unavailable, ErrorCode.internal, ErrorCode.rate_limited]);

export function isRetryable(code: string): boolean {
  return RETRYABLE.has(code);
}

export class Outbox {
  private readonly byCid = new Map<string, Pending>();

  get size(): number {
    return this.byCid.size;
  }

  get(cid: string): Pending | undefined {
    return this.byCid.get(cid);
  }

  add(p: Pending & { cid: string }): void {
    this.byCid.set(p.cid, p);
  }

  /** Removes the entry only if it is still `p` (a later send may reuse the cid once p settled). */
  remove(p: Pending): void {
    if (p.cid !== undefined && this.byCid.get(p.cid) === p) this.byCid.delete(p.cid);
  }

  /** Snapshot in insertion (issue) order. */
  entries(): Pending[] {
    return Array.from(this.byCid.values());
  }
}
