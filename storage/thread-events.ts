// The thread event log: per thread, gap-free eseq from 1, each entry a membership or title
// change. Appended only by the thread actor.
import { logFloor } from './retention.js';
import type { StorageEnv, ThreadEvent } from './env.js';

const MAX = Number.MAX_SAFE_INTEGER;

export function threadEventsHead(storage: StorageEnv, thread: string): number {
  for (const key of storage.db.threadEvents.getKeys({ start: [thread, MAX], end: [thread, 0], reverse: true, limit: 1 })) {
    return (key as [string, number])[1];
  }
  // Retention may have deleted every entry: the head stays where it was.
  return logFloor(storage, 'events', thread);
}

export function readThreadEvents(storage: StorageEnv, thread: string, after: number): ThreadEvent[] {
  const out: ThreadEvent[] = [];
  for (const { value } of storage.db.threadEvents.getRange({ start: [thread, after + 1], end: [thread, MAX] })) out.push(value);
  return out;
}
