// Session idle expiry (SESSION_TTL, docs/protocol.md "Sessions"). A session is used when it
// authenticates (hello, or a 🔒 HTTP route); its last use is the device record's `used`, written
// by the user actor. This gateway-side clock keeps that write to at most one per device per
// interval (a minute, or a quarter of a short TTL), not one per request: uses within an interval
// of the last recorded one are not written, and the in-memory time covers what this process has
// told the actor but LMDB may not show yet.
import type { SessionRecord, StorageEnv } from '../../storage/env.js';

/** The longest gap between two recorded uses of one device (shorter for a TTL under 4 minutes). */
export const TOUCH_EVERY_MS = 60_000;

export interface SessionUse {
  /** record a use: the user actor writes `used` on the device record */
  touch(user: string, device: string, at: number): void;
  /** an expired session was seen: the user actor removes it (lazy clean-up) */
  expire(user: string, device: string): void;
}

export class SessionClock {
  readonly everyMs: number;
  /**
   * user + device → last recorded use, in two generations rotated every interval: an entry
   * older than two intervals is forgotten (its next use is recorded again), so memory stays
   * bounded by the devices active in the last two intervals.
   */
  private current = new Map<string, number>();
  private previous = new Map<string, number>();
  private rotated: number;

  constructor(readonly ttlMs: number, private readonly sink: SessionUse, private readonly now: () => number = Date.now) {
    this.everyMs = Math.max(1, Math.min(TOUCH_EVERY_MS, Math.floor(ttlMs / 4)));
    this.rotated = now();
  }

  /** The last use of a device: what LMDB shows (`stored`) or what this process recorded since. */
  lastUse(user: string, device: string, stored: number): number {
    const key = `${user}\u0000${device}`;
    return Math.max(stored, this.current.get(key) ?? this.previous.get(key) ?? 0);
  }

  isExpired(lastUse: number, at = this.now()): boolean {
    return at - lastUse > this.ttlMs;
  }

  /** The session authenticated now: record it if the last recorded use is an interval old. */
  used(user: string, device: string, stored: number): void {
    const at = this.now();
    if (at - this.rotated >= this.everyMs) {
      this.previous = this.current;
      this.current = new Map();
      this.rotated = at;
    }
    if (at - this.lastUse(user, device, stored) < this.everyMs) return;
    this.current.set(`${user}\u0000${device}`, at);
    this.sink.touch(user, device, at);
  }

  expired(user: string, device: string): void {
    const key = `${user}\u0000${device}`;
    this.current.delete(key);
    this.previous.delete(key);
    this.sink.expire(user, device);
  }
}

/**
 * Is this session still within its idle period? A use is recorded when it is. A session that looks
 * expired is checked again on a fresh read snapshot (the shard may have recorded a use since this
 * thread's snapshot) before it is refused and handed to the lazy clean-up.
 */
export function liveSession(storage: StorageEnv, clock: SessionClock, s: SessionRecord): boolean {
  const stored = () => {
    const d = storage.db.devices.get([s.user, s.device]);
    return d?.used ?? d?.created ?? s.created;
  };
  let last = clock.lastUse(s.user, s.device, stored());
  if (clock.isExpired(last)) {
    storage.refresh();
    last = clock.lastUse(s.user, s.device, stored());
    if (clock.isExpired(last)) {
      clock.expired(s.user, s.device);
      return false;
    }
  }
  clock.used(s.user, s.device, last);
  return true;
}
