// The channel log: per channel, gap-free seq from 1, each entry the encoded `cmsg` frame that
// subscribers receive. Appended only by the channel actor.
import { logFloor } from './retention.js';
import type { StorageEnv } from './env.js';

const MAX = Number.MAX_SAFE_INTEGER;

export function channelLogHead(storage: StorageEnv, channel: string): number {
  for (const key of storage.db.channelLog.getKeys({ start: [channel, MAX], end: [channel, 0], reverse: true, limit: 1 })) {
    return (key as [string, number])[1];
  }
  // Retention may have deleted every entry: the head stays where it was.
  return logFloor(storage, 'channel', channel);
}

/** Encoded posts after `after`, oldest first: at most `limit` of them and about `maxBytes`. */
export function readChannelFrames(storage: StorageEnv, channel: string, after: number, limit: number, maxBytes: number): Buffer[] {
  const out: Buffer[] = [];
  let bytes = 0;
  for (const { value } of storage.db.channelLog.getRange({ start: [channel, after + 1], end: [channel, MAX], limit })) {
    out.push(value);
    bytes += value.length;
    if (bytes >= maxBytes) break;
  }
  return out;
}

/** A page of history frames: with `after` oldest first from after+1, else newest first below `before`. */
export function readChannelPage(
  storage: StorageEnv,
  channel: string,
  q: { before?: number; after?: number; limit: number },
): { frames: Buffer[]; more: boolean } {
  const range =
    q.after !== undefined
      ? { start: [channel, q.after + 1] as [string, number], end: [channel, MAX] as [string, number], limit: q.limit + 1 }
      : { start: [channel, (q.before ?? MAX) - 1] as [string, number], end: [channel, 0] as [string, number], reverse: true, limit: q.limit + 1 };
  const frames: Buffer[] = [];
  for (const { value } of storage.db.channelLog.getRange(range)) frames.push(value);
  const more = frames.length > q.limit;
  if (more) frames.pop();
  return { frames, more };
}
