// Identifier formats (docs/protocol.md §1): opaque strings of at most 40 characters from
// [A-Za-z0-9_:-]. Message ids are time-ordered so that sorting them sorts by time.
import { createHash, randomBytes } from 'node:crypto';

export const ID_PATTERN = '^[A-Za-z0-9_:-]{1,40}$';
const ID_RE = new RegExp(ID_PATTERN);
export const isId = (s: unknown): s is string => typeof s === 'string' && ID_RE.test(s);

const b36 = (n: number, width: number) => n.toString(36).padStart(width, '0');
/** Uniform base36 characters: bytes ≥ 252 (= 7 × 36) are drawn again, so no digit is favoured. */
const randomB36 = (chars: number) => {
  let s = '';
  while (s.length < chars) {
    for (const byte of randomBytes(chars - s.length + 4)) {
      if (byte < 252 && s.length < chars) s += (byte % 36).toString(36);
    }
  }
  return s;
};

/** Random characters of a user id: 36^9 ≈ 10^14 per millisecond, and ids are still created check-and-set. */
export const USER_ID_RANDOM_CHARS = 9;
/**
 * `u` + 8 time chars + 9 random = 18 chars: two of them fit a direct thread id
 * (`d:` + 18 + `:` + 18 = 39 ≤ 40, the id limit).
 */
export const newUserId = (): string => `u${b36(Date.now(), 8)}${randomB36(USER_ID_RANDOM_CHARS)}`;
export const newDeviceId = (): string => `d${b36(Date.now(), 8)}${randomB36(4)}`;
/** 32 random bytes, base64url: the bearer secret; only its sha256 is stored. */
export const newToken = (): string => randomBytes(32).toString('base64url');

/** A group thread: `g:` + time + random, unique without coordination. */
export const newGroupId = (): string => `g:${b36(Date.now(), 9)}${randomB36(8)}`;
/** The group a `group.create {cid}` names: derived from creator + cid, so a retry reaches the same thread. */
export const groupIdFor = (creator: string, cid: string): string =>
  `g:${createHash('sha256').update(creator).update('\u0000').update(cid).digest('base64url').slice(0, 24)}`;

/** The job a `schedule {cid}` names: derived from its owner + cid, so a retry answers the same job. */
export const scheduledJobIdFor = (user: string, cid: string): string =>
  `j${createHash('sha256').update(user).update('\u0000').update(cid).digest('base64url').slice(0, 22)}`;

/**
 * A channel's id is derived from its name (docs/protocol.md §8.3): `channel.create` and
 * `channel.get {name}` reach the one actor that owns the name, so names are unique without an index.
 */
export const channelIdFor = (name: string): string => `c:${createHash('sha256').update(name).digest('base64url').slice(0, 24)}`;

/** The 1:1 thread of two users is named by them, so `send {to}` needs no lookup to find it. */
export function directThreadId(a: string, b: string): string {
  return a < b ? `d:${a}:${b}` : `d:${b}:${a}`;
}

/** The two members of a direct thread id, or null when `thread` is not one. */
export function directMembers(thread: string): [string, string] | null {
  if (!thread.startsWith('d:')) return null;
  const parts = thread.split(':');
  if (parts.length !== 3 || !parts[1] || !parts[2]) return null;
  return [parts[1], parts[2]];
}

/** Snowflake-style ids: 9 chars of ms time, 2 of shard, 3 of a per-ms counter (base36). */
export class MessageIdGenerator {
  private lastMs = 0;
  private counter = 0;
  constructor(private readonly shard: number) {}
  next(now = Date.now()): string {
    if (now > this.lastMs) {
      this.lastMs = now;
      this.counter = 0;
    } else if (++this.counter >= 36 ** 3) {
      // More than 46,656 ids in one ms on one shard: borrow the next ms to stay ordered.
      this.lastMs++;
      this.counter = 0;
    }
    return b36(this.lastMs, 9) + b36(this.shard % 1296, 2) + b36(this.counter, 3);
  }
}
