// MemoryPersistence: the persistence adapter kept in a JavaScript object — for Node processes and
// tests, and for a page that wants the cache without storage. Outlives the clients that use it.
import {
  DEFAULT_MAX_PER_THREAD,
  DEFAULT_MAX_THREADS,
  applyPatch,
  laterCursor,
  type CacheBounds,
  type PersistedCursor,
  type Persistence,
  type PersistenceBatch,
} from './persistence.js';
import type { Msg } from './types.js';

export class MemoryPersistence implements Persistence {
  private cursor?: PersistedCursor;
  /** thread → seq → message */
  private readonly threads = new Map<string, Map<number, Msg>>();
  private readonly maxPerThread: number;
  private readonly maxThreads: number;
  /** Batches written so far (tests and diagnostics: the client coalesces events into few writes). */
  writes = 0;

  constructor(bounds: CacheBounds = {}) {
    this.maxPerThread = bounds.maxPerThread ?? DEFAULT_MAX_PER_THREAD;
    this.maxThreads = bounds.maxThreads ?? DEFAULT_MAX_THREADS;
  }

  async loadCursor(): Promise<PersistedCursor | undefined> {
    return this.cursor && { ...this.cursor };
  }

  async loadHistory(thread: string, limit: number): Promise<Msg[]> {
    const msgs = this.threads.get(thread);
    if (!msgs) return [];
    return [...msgs.values()].sort((a, b) => b.seq - a.seq).slice(0, limit).map((m) => structuredClone(m));
  }

  async write(batch: PersistenceBatch): Promise<void> {
    this.writes++;
    if (batch.clear) {
      this.cursor = undefined;
      this.threads.clear();
    }
    const touched = new Set<string>();
    for (const m of batch.messages) {
      let msgs = this.threads.get(m.thread);
      if (!msgs) this.threads.set(m.thread, (msgs = new Map()));
      msgs.set(m.seq, structuredClone(m));
      touched.add(m.thread);
    }
    for (const p of batch.patches) {
      const msgs = this.threads.get(p.thread);
      const m = msgs?.get(p.seq);
      if (m) msgs!.set(p.seq, applyPatch(m, p));
    }
    for (const r of batch.removed) this.threads.get(r.thread)?.delete(r.seq);
    if (batch.cursor) this.cursor = { ...laterCursor(this.cursor, batch.cursor) };
    for (const thread of touched) this.trim(this.threads.get(thread)!);
    if (this.threads.size > this.maxThreads) this.dropOldestThreads();
  }

  private trim(msgs: Map<number, Msg>): void {
    if (msgs.size <= this.maxPerThread) return;
    const seqs = [...msgs.keys()].sort((a, b) => a - b);
    for (const seq of seqs.slice(0, seqs.length - this.maxPerThread)) msgs.delete(seq);
  }

  private dropOldestThreads(): void {
    const newest = (msgs: Map<number, Msg>) => Math.max(0, ...[...msgs.values()].map((m) => m.ts));
    const byAge = [...this.threads].sort(([, a], [, b]) => newest(a) - newest(b));
    for (const [thread] of byAge.slice(0, this.threads.size - this.maxThreads)) this.threads.delete(thread);
  }
}
