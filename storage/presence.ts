// Presence as last announced by each user actor. `online` is trusted only if it was written by
// this run of the server (boot id): after a crash nobody is online until they reconnect.
import type { StorageEnv } from './env.js';

export interface PresenceState { user: string; online: boolean; last: number }

export function presenceOf(storage: StorageEnv, boot: string, user: string): PresenceState {
  const p = storage.db.presence.get(user);
  if (!p) return { user, online: false, last: 0 };
  return { user, online: p.online && p.boot === boot, last: p.last };
}
