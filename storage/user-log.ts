// The user log: per user, strictly increasing u from 1, each entry the encoded event frame the
// user's devices receive. Appended and read only by the user actor (it serves replay).
import { logFloor } from './retention.js';
import type { StorageEnv } from './env.js';

const MAX = Number.MAX_SAFE_INTEGER;

/** The newest u of `user` (0 when the log is empty). */
export function userLogHead(storage: StorageEnv, user: string): number {
  for (const key of storage.db.userLog.getKeys({ start: [user, MAX], end: [user, 0], reverse: true, limit: 1 })) {
    return (key as [string, number])[1];
  }
  // Retention may have deleted every entry: the head stays where it was.
  return logFloor(storage, 'user', user);
}

/**
 * The oldest u still stored for `user`: 1 while nothing was trimmed. Retention deletes a prefix,
 * so this is the floor + 1 — also when it deleted everything (then the next u to be written).
 */
export function userLogFirst(storage: StorageEnv, user: string): number {
  for (const key of storage.db.userLog.getKeys({ start: [user, 0], end: [user, MAX], limit: 1 })) {
    return (key as [string, number])[1];
  }
  return logFloor(storage, 'user', user) + 1;
}

/** Up to `limit` entries with u > after, oldest first. */
export function readUserLog(storage: StorageEnv, user: string, after: number, limit: number): { u: number; frame: Buffer }[] {
  const out: { u: number; frame: Buffer }[] = [];
  for (const { key, value } of storage.db.userLog.getRange({ start: [user, after + 1], end: [user, MAX], limit })) {
    out.push({ u: (key as [string, number])[1], frame: value });
  }
  return out;
}
