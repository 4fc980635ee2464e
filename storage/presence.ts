// Presence as last announced by each user actor. `online` is trusted only if it was written by
// this run of the server (boot id): after a crash nobody is online until they reconnect.
import type { LastSeenVisibility, StorageEnv } from './env.js';

export interface PresenceState { user: string; online: boolean; last: number }

export function presenceOf(storage: StorageEnv, boot: string, user: string): PresenceState {
  const p = storage.db.presence.get(user);
  if (!p) return { user, online: false, last: 0 };
  return { user, online: p.online && p.boot === boot, last: p.last };
}


/**
 * May `viewer` see `owner`'s presence? The owner always; nobody the owner blocked; else by the
 * owner's lastSeen setting: everyone, their contacts, or nobody.
 */
export function presenceVisible(storage: StorageEnv, owner: string, viewer: string, defaultLastSeen: LastSeenVisibility): boolean {
  if (owner === viewer) return true;
  const { db } = storage;
  if (db.blocks.get([owner, viewer])) return false;
  const lastSeen = db.privacy.get(owner)?.lastSeen ?? defaultLastSeen;
  if (lastSeen === 'everyone') return true;
  if (lastSeen === 'nobody') return false;
  return db.contacts.get([owner, viewer]) !== undefined;
}

/** What someone who may not see a user's presence is told: never online, never seen. */
export const hiddenPresence = (user: string): PresenceState => ({ user, online: false, last: 0 });
