// PersistenceWriter: the client's side of the persistence contract (persistence.ts). Events only
// note what changed (no I/O in the frame loop); one write at a time carries everything noted since
// the last, after a short delay, so a burst of events costs one transaction.
import { applyPatch, cachedMessage, type MessagePatch, type PersistedCursor, type Persistence, type PersistenceBatch } from './persistence.js';
import type { Msg } from './types.js';

/** How long notes gather before a write (a burst of a replay is one transaction). */
const WRITE_DELAY_MS = 100;

const keyOf = (thread: string, seq: number) => `${thread}\u0000${seq}`;

export class PersistenceWriter {
  private clear = false;
  private cursor?: PersistedCursor;
  private readonly messages = new Map<string, Msg>();
  private readonly patches = new Map<string, MessagePatch>();
  private readonly removed = new Map<string, { thread: string; seq: number }>();
  private timer?: ReturnType<typeof setTimeout>;
  private writing?: Promise<void>;

  constructor(
    private readonly store: Persistence,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Everything stored so far is void (reset, another account): the next write clears first. */
  noteClear(): void {
    this.clear = true;
    this.cursor = undefined;
    this.messages.clear();
    this.patches.clear();
    this.removed.clear();
    this.schedule();
  }

  noteCursor(c: PersistedCursor): void {
    this.cursor = c;
    this.schedule();
  }

  noteMessage(m: Msg): void {
    const k = keyOf(m.thread, m.seq);
    this.removed.delete(k);
    this.patches.delete(k);
    this.messages.set(k, cachedMessage(m));
    this.schedule();
  }

  notePatch(p: MessagePatch): void {
    const k = keyOf(p.thread, p.seq);
    if (this.removed.has(k)) return;
    const pending = this.messages.get(k);
    if (pending) this.messages.set(k, applyPatch(pending, p));
    else {
      const earlier = this.patches.get(k);
      this.patches.set(k, earlier ? mergePatches(earlier, p) : p);
    }
    this.schedule();
  }

  noteRemoved(thread: string, seq: number): void {
    const k = keyOf(thread, seq);
    this.messages.delete(k);
    this.patches.delete(k);
    this.removed.set(k, { thread, seq });
    this.schedule();
  }

  /** Writes everything noted so far; resolves once it is stored (or failed and was reported). */
  async flush(): Promise<void> {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    while (this.writing) await this.writing;
    if (!this.hasNotes()) return;
    const batch = this.take();
    this.writing = this.store.write(batch).then(
      () => undefined,
      (err: unknown) => {
        this.putBack(batch);
        this.onError(err);
      },
    ).finally(() => {
      this.writing = undefined;
    });
    await this.writing;
  }

  /** Stops the timer; notes not written stay (flush() first to keep them). */
  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, WRITE_DELAY_MS);
  }

  private hasNotes(): boolean {
    return this.clear || this.cursor !== undefined || this.messages.size > 0 || this.patches.size > 0 || this.removed.size > 0;
  }

  private take(): PersistenceBatch {
    const batch: PersistenceBatch = {
      messages: [...this.messages.values()],
      patches: [...this.patches.values()],
      removed: [...this.removed.values()],
    };
    if (this.clear) batch.clear = true;
    if (this.cursor) batch.cursor = this.cursor;
    this.clear = false;
    this.cursor = undefined;
    this.messages.clear();
    this.patches.clear();
    this.removed.clear();
    return batch;
  }

  /** A failed batch goes into the next, under what was noted since (newer notes win). */
  private putBack(b: PersistenceBatch): void {
    if (b.clear) this.clear = true;
    if (b.cursor && !this.cursor) this.cursor = b.cursor;
    for (const m of b.messages) {
      const k = keyOf(m.thread, m.seq);
      if (!this.messages.has(k) && !this.removed.has(k)) this.messages.set(k, m);
    }
    for (const p of b.patches) {
      const k = keyOf(p.thread, p.seq);
      if (!this.patches.has(k) && !this.messages.has(k) && !this.removed.has(k)) this.patches.set(k, p);
    }
    for (const r of b.removed) {
      const k = keyOf(r.thread, r.seq);
      if (!this.messages.has(k)) this.removed.set(k, r);
    }
    this.schedule();
  }
}

function mergePatches(a: MessagePatch, b: MessagePatch): MessagePatch {
  const set = { ...a.set, ...b.set };
  const unset = new Set([...(a.unset ?? []), ...(b.unset ?? [])]);
  for (const k of Object.keys(b.set) as Array<keyof Msg>) unset.delete(k);
  for (const k of b.unset ?? []) delete set[k];
  return { thread: a.thread, seq: a.seq, set, unset: [...unset] };
}
