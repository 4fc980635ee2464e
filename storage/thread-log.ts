// The thread log: per thread, gap-free seq from 1, each entry a StoredMessage. Appended only by
// the thread actor.
import { logFloor } from './retention.js';
import type { StorageEnv, StoredMessage } from './env.js';

const MAX = Number.MAX_SAFE_INTEGER;

export function threadLogHead(storage: StorageEnv, thread: string): number {
  for (const key of storage.db.threadLog.getKeys({ start: [thread, MAX], end: [thread, 0], reverse: true, limit: 1 })) {
    return (key as [string, number])[1];
  }
  // Retention may have deleted every entry: the head stays where it was.
  return logFloor(storage, 'thread', thread);
}

export interface HistoryPage { messages: StoredMessage[]; more: boolean }

/**
 * A page of history. With `after`: oldest first from after+1. Otherwise newest first, below
 * `before` (or from the newest). `floor` hides everything at or below it (e.g. before a join).
 */
export function readThreadLog(
  storage: StorageEnv,
  thread: string,
  q: { before?: number; after?: number; limit: number; floor?: number },
): HistoryPage {
  const floor = q.floor ?? 0;
  const range =
    q.after !== undefined
      ? { start: [thread, Math.max(q.after, floor) + 1] as [string, number], end: [thread, MAX] as [string, number], limit: q.limit + 1 }
      : { start: [thread, (q.before ?? MAX) - 1] as [string, number], end: [thread, floor] as [string, number], reverse: true, limit: q.limit + 1 };
  const messages: StoredMessage[] = [];
  for (const { value } of storage.db.threadLog.getRange(range)) messages.push(value);
  const more = messages.length > q.limit;
  if (more) messages.pop();
  return { messages, more };
}
