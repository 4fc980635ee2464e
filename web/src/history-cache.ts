// What the app showed last time, kept in IndexedDB per user: inbox rows and the newest page of
// each loaded thread, so a reload shows them at once, before (or without) the network. The server
// stays the truth: every row and page is fetched again and replaces its cached copy. Forgotten at
// sign-out and when the server's logs were reset. (The SDK's persistence adapter, once it lands,
// is the place for the event cursor; this cache is only what the screen shows.)
import type { Msg, ThreadRow } from '../../client/types.js';

const DB_NAME = 'parley-web';
const STORE = 'screens';
/** Bounds: the newest rows and the newest messages of each thread. */
const MAX_ROWS = 500;
const MAX_MESSAGES = 50;
const SAVE_DELAY_MS = 500;

export interface CachedScreen {
  threads: ThreadRow[];
  messages: Record<string, Msg[]>;
  names: [string, string][];
  /**
   * thread → the other members' receipt watermarks: a reload replays only newer events, so the
   * ticks of older messages come from here (absent in caches of earlier versions).
   */
  receipts?: [string, [string, Watermarks][]][];
}

export interface Watermarks { delivered: number; read: number }

function openDb(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

export class HistoryCache {
  private db?: Promise<IDBDatabase | undefined>;
  private timer?: ReturnType<typeof setTimeout>;

  constructor(private readonly user: string) {}

  private database(): Promise<IDBDatabase | undefined> {
    // No IndexedDB (private mode in some browsers): the app works without the cache.
    return (this.db ??= openDb().catch(() => undefined));
  }

  async load(): Promise<CachedScreen | undefined> {
    const db = await this.database();
    if (!db) return undefined;
    return new Promise((resolve) => {
      const req = db.transaction(STORE, 'readonly').objectStore(STORE).get(this.user);
      req.onsuccess = () => resolve(req.result as CachedScreen | undefined);
      req.onerror = () => resolve(undefined);
    });
  }

  /** Saves soon (many changes in a burst make one write). */
  saveSoon(snapshot: () => CachedScreen): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.write(bounded(snapshot()));
    }, SAVE_DELAY_MS);
  }

  async clear(): Promise<void> {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const db = await this.database();
    if (!db) return;
    await new Promise<void>((resolve) => {
      const tx = db.transaction(STORE, 'readwrite');
      tx.objectStore(STORE).delete(this.user);
      tx.oncomplete = tx.onerror = tx.onabort = () => resolve();
    });
  }

  private async write(screen: CachedScreen): Promise<void> {
    const db = await this.database();
    if (!db) return;
    const tx = db.transaction(STORE, 'readwrite');
    tx.objectStore(STORE).put(screen, this.user);
  }
}

function bounded(s: CachedScreen): CachedScreen {
  const threads = [...s.threads].sort((a, b) => b.updated - a.updated).slice(0, MAX_ROWS);
  const keep = new Set(threads.map((r) => r.thread));
  const messages: Record<string, Msg[]> = {};
  for (const [thread, list] of Object.entries(s.messages)) if (keep.has(thread)) messages[thread] = list.slice(-MAX_MESSAGES);
  return { threads, messages, names: s.names, receipts: s.receipts?.filter(([thread]) => keep.has(thread)) };
}
