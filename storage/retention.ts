// What retention deleted of each log. The sweeper deletes a prefix of a log (its oldest entries)
// and records the newest seq it deleted as the log's floor: the log keeps (floor, head]. A log's
// head is its last key or, once everything was deleted, the floor — so seq, eseq and u keep
// counting from where they were, also after a restart (docs/architecture.md, Retention).
import type { RetainedLog, RetentionRecord, StorageEnv } from './env.js';

export function logFloor(storage: StorageEnv, log: RetainedLog, id: string): number {
  return storage.db.retention.get([log, id])?.floor ?? 0;
}

export function retentionRecord(storage: StorageEnv, log: RetainedLog, id: string): RetentionRecord | undefined {
  return storage.db.retention.get([log, id]);
}
