// The persistence adapter: where a client keeps its cursor and a bounded cache of recent history
// across restarts and page reloads (docs/sdk.md "Persistence"). Two implementations:
// MemoryPersistence (memory-persistence.ts) and IndexedDbPersistence (indexeddb-persistence.ts).
import type { Msg } from './types.js';

/** Where this device stands in its user's event log: `lastU` of the log of lineage `epoch`. */
export interface PersistedCursor {
  user: string;
  device: string;
  /** the server's log epoch the cursor belongs to (welcome.epoch) */
  epoch?: string;
  /** every durable event up to here was dispatched to the app */
  lastU: number;
}

/** A change to a cached message that may not be in this batch (an edit, a delete for everyone). */
export interface MessagePatch {
  thread: string;
  seq: number;
  /** fields to set */
  set: Partial<Msg>;
  /** fields to remove (a tombstone has no body or media) */
  unset?: Array<keyof Msg>;
}

/** What one write stores; the client builds it from many events (see the contract below). */
export interface PersistenceBatch {
  /** drop every cursor and message stored before applying the rest (a reset, another account) */
  clear?: boolean;
  /** the new cursor; absent: unchanged */
  cursor?: PersistedCursor;
  /** messages to store by (thread, seq), replacing a stored copy */
  messages: Msg[];
  /** changes to stored messages; a patch of a message that is not stored is ignored */
  patches: MessagePatch[];
  /** messages to forget (deleted for me) */
  removed: Array<{ thread: string; seq: number }>;
}

/**
 * The contract every adapter keeps (one test suite, test/sdk-persistence*.test.ts, runs against both):
 *
 * - `write(batch)` applies the batch **atomically**, in this order: `clear`, `messages`,
 *   `patches`, `removed`, `cursor` — a cursor is never stored without the messages dispatched up
 *   to it. The client never has two writes in flight: it calls `write` again only after the last
 *   one settled, with everything that happened meanwhile coalesced into one batch, so writes cost
 *   one transaction per batch, not per event, and never block the client's frame loop. A write
 *   that rejects is reported as a client `error` event and its batch is merged into the next.
 * - A cursor never moves backwards within its lineage: a batch's cursor of the same user, device
 *   and epoch as the stored one with a lower `lastU` leaves the stored one (two tabs of one device
 *   share a store; the slower must not pull it back). After `clear`, any cursor is taken.
 * - Each thread keeps at most `maxPerThread` messages, the newest by `seq`: older ones are dropped
 *   as newer ones arrive. A bound on threads (`maxThreads`) drops the threads whose newest message
 *   is oldest.
 * - `loadHistory(thread, limit)` answers newest first, at most `limit`, what is stored now.
 * - One adapter instance (one IndexedDB database, one memory store) belongs to one device of one
 *   user; the client checks the stored cursor's user and device against `welcome` and clears the
 *   store when they differ.
 */
export interface Persistence {
  loadCursor(): Promise<PersistedCursor | undefined>;
  loadHistory(thread: string, limit: number): Promise<Msg[]>;
  write(batch: PersistenceBatch): Promise<void>;
  /** releases what the adapter holds (the database connection); optional */
  close?(): Promise<void>;
}

/** Bounds shared by the adapters. */
export interface CacheBounds {
  /** newest messages kept per thread; default 200 */
  maxPerThread?: number;
  /** threads kept; default 500 (those with the oldest newest message go first) */
  maxThreads?: number;
}

export const DEFAULT_MAX_PER_THREAD = 200;
export const DEFAULT_MAX_THREADS = 500;

/** A message as cached: without the event's `t` and `u`. */
export function cachedMessage(m: Msg & { t?: string; u?: number }): Msg {
  const { t: _t, u: _u, ...msg } = m;
  return msg;
}

/** The cursor to keep when `next` arrives and `stored` is there (the no-backwards rule above). */
export function laterCursor(stored: PersistedCursor | undefined, next: PersistedCursor): PersistedCursor {
  const sameLineage = stored && stored.user === next.user && stored.device === next.device && stored.epoch === next.epoch;
  return sameLineage && stored.lastU > next.lastU ? stored : next;
}

/** Applies a patch to a stored copy, returning the new copy. */
export function applyPatch(m: Msg, p: MessagePatch): Msg {
  const out: Record<string, unknown> = { ...m, ...p.set };
  for (const k of p.unset ?? []) delete out[k];
  return out as unknown as Msg;
}
