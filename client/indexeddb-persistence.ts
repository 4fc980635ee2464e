// IndexedDbPersistence: the persistence adapter of browsers, on the plain IndexedDB API (no
// wrapper library). One database per device of one user; each batch is one readwrite transaction.
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

export interface IndexedDbPersistenceOptions extends CacheBounds {
  /** the database's name; default "parley". Use one per signed-in account, e.g. `parley-${user}`. */
  name?: string;
  /** default globalThis.indexedDB */
  indexedDB?: IDBFactory;
}

const VERSION = 1;
/** key 'cursor' → PersistedCursor */
const META = 'meta';
/** keyPath [thread, seq] → Msg */
const MESSAGES = 'messages';
/** keyPath thread → {thread, newest: ts of its newest message}; index 'newest' finds the stalest */
const THREADS = 'threads';
const CURSOR_KEY = 'cursor';

interface ThreadRow { thread: string; newest: number }

export class IndexedDbPersistence implements Persistence {
  private readonly name: string;
  private readonly factory: IDBFactory;
  private readonly maxPerThread: number;
  private readonly maxThreads: number;
  private db?: Promise<IDBDatabase>;

  constructor(opts: IndexedDbPersistenceOptions = {}) {
    this.name = opts.name ?? 'parley';
    const factory = opts.indexedDB ?? (globalThis as { indexedDB?: IDBFactory }).indexedDB;
    if (!factory) throw new TypeError('IndexedDbPersistence: no indexedDB here (use MemoryPersistence outside browsers)');
    this.factory = factory;
    this.maxPerThread = opts.maxPerThread ?? DEFAULT_MAX_PER_THREAD;
    this.maxThreads = opts.maxThreads ?? DEFAULT_MAX_THREADS;
  }

  async loadCursor(): Promise<PersistedCursor | undefined> {
    const db = await this.open();
    return request<PersistedCursor | undefined>(db.transaction(META).objectStore(META).get(CURSOR_KEY));
  }

  async loadHistory(thread: string, limit: number): Promise<Msg[]> {
    const db = await this.open();
    const store = db.transaction(MESSAGES).objectStore(MESSAGES);
    return new Promise((resolve, reject) => {
      const out: Msg[] = [];
      const req = store.openCursor(threadRange(thread), 'prev');
      req.onerror = () => reject(req.error);
      req.onsuccess = () => {
        const cur = req.result;
        if (!cur || out.length >= limit) return resolve(out);
        out.push(cur.value as Msg);
        cur.continue();
      };
    });
  }

  async write(batch: PersistenceBatch): Promise<void> {
    const db = await this.open();
    const tx = db.transaction([META, MESSAGES, THREADS], 'readwrite');
    const done = new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
    });
    const meta = tx.objectStore(META);
    const messages = tx.objectStore(MESSAGES);
    const threads = tx.objectStore(THREADS);
    if (batch.clear) {
      meta.clear();
      messages.clear();
      threads.clear();
    }
    const newest = new Map<string, number>();
    for (const m of batch.messages) {
      messages.put(m);
      newest.set(m.thread, Math.max(newest.get(m.thread) ?? 0, m.ts));
    }
    for (const p of batch.patches) {
      const req = messages.get([p.thread, p.seq]);
      req.onsuccess = () => {
        if (req.result) messages.put(applyPatch(req.result as Msg, p));
      };
    }
    for (const r of batch.removed) messages.delete([r.thread, r.seq]);
    if (batch.cursor) {
      const next = batch.cursor;
      const req = meta.get(CURSOR_KEY);
      req.onsuccess = () => {
        const keep = laterCursor(req.result as PersistedCursor | undefined, next);
        if (keep === next) meta.put(next, CURSOR_KEY);
      };
    }
    let rowsLeft = newest.size;
    for (const [thread, ts] of newest) {
      const req = threads.get(thread);
      req.onsuccess = () => {
        const row = req.result as ThreadRow | undefined;
        if (!row || row.newest < ts) threads.put({ thread, newest: ts } satisfies ThreadRow);
        // Counted once every thread row of the batch is in (requests run in the order issued).
        if (--rowsLeft === 0) this.dropOldestThreads(threads, messages);
      };
      this.trimThread(messages, thread);
    }
    await done;
  }

  async close(): Promise<void> {
    const db = this.db;
    this.db = undefined;
    if (db) (await db).close();
  }

  /** Deletes the database (sign-out): the next use starts empty. */
  async destroy(): Promise<void> {
    await this.close();
    await request(this.factory.deleteDatabase(this.name));
  }

  /** Keeps the newest maxPerThread messages of the thread, inside the batch's transaction. */
  private trimThread(messages: IDBObjectStore, thread: string): void {
    const req = messages.openCursor(threadRange(thread), 'prev');
    let kept = 0;
    req.onsuccess = () => {
      const cur = req.result;
      if (!cur) return;
      if (kept < this.maxPerThread) {
        kept++;
        cur.continue();
      } else {
        // Everything below is older than the kept ones: one range delete.
        messages.delete(IDBKeyRange.bound([thread, 0], cur.primaryKey));
      }
    };
  }

  private dropOldestThreads(threads: IDBObjectStore, messages: IDBObjectStore): void {
    const count = threads.count();
    count.onsuccess = () => {
      let excess = count.result - this.maxThreads;
      if (excess <= 0) return;
      const req = threads.index('newest').openCursor();
      req.onsuccess = () => {
        const cur = req.result;
        if (!cur || excess <= 0) return;
        const thread = (cur.value as ThreadRow).thread;
        messages.delete(threadRange(thread));
        cur.delete();
        excess--;
        cur.continue();
      };
    };
  }

  private open(): Promise<IDBDatabase> {
    if (!this.db) {
      this.db = new Promise<IDBDatabase>((resolve, reject) => {
        const req = this.factory.open(this.name, VERSION);
        req.onupgradeneeded = () => {
          const db = req.result;
          db.createObjectStore(META);
          db.createObjectStore(MESSAGES, { keyPath: ['thread', 'seq'] });
          db.createObjectStore(THREADS, { keyPath: 'thread' }).createIndex('newest', 'newest');
        };
        req.onsuccess = () => {
          const db = req.result;
          // Another tab upgrading the schema: let it, this connection reopens on next use.
          db.onversionchange = () => {
            db.close();
            this.db = undefined;
          };
          resolve(db);
        };
        req.onerror = () => reject(req.error);
        req.onblocked = () => reject(new Error(`IndexedDB ${this.name}: open blocked by another tab`));
      });
      this.db.catch(() => {
        this.db = undefined;
      });
    }
    return this.db;
  }
}

function threadRange(thread: string): IDBKeyRange {
  return IDBKeyRange.bound([thread, 0], [thread, Infinity]);
}

function request<T>(req: IDBRequest): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result as T);
    req.onerror = () => reject(req.error);
  });
}
