// What a Web Push notification says: the JSON of protocol/push-payload.ts's DevicePushPayload
// (src/push/push-http.ts devicePayload), without PUSH_PREVIEW=on no message text at all; the
// service worker turns it into a notification here.
import type { DevicePushPayload } from '../../protocol/push-payload.js';

/** Web Push may deliver one twice: `id` says so. */
export type PushPayload = DevicePushPayload;

/** What the worker needs to remember on the notification: a click opens `thread`. */
export interface NotificationData { id: string; thread: string }

/** The payload, or undefined when it is not one of ours (then nothing is shown from it). */
export function readPayload(raw: unknown): PushPayload | undefined {
  const p = raw as Partial<PushPayload> | null;
  if (typeof p !== 'object' || p === null) return undefined;
  if (typeof p.id !== 'string' || typeof p.thread !== 'string' || typeof p.name !== 'string') return undefined;
  const unread = typeof p.unread === 'number' && p.unread > 0 ? Math.floor(p.unread) : 1;
  return { id: p.id, u: Number(p.u) || 0, thread: p.thread, from: String(p.from ?? ''), name: p.name, unread, ...(typeof p.preview === 'string' ? { preview: p.preview } : {}) };
}

/** Title and options: one notification per thread (its tag), replaced by the next with the count. */
export function notificationFor(p: PushPayload): { title: string; options: NotificationOptions & { renotify?: boolean } } {
  const more = p.unread > 1 ? `${p.unread} unread messages` : 'New message';
  const body = p.preview !== undefined && p.preview !== '' ? (p.unread > 1 ? `${p.preview}\n(${more})` : p.preview) : more;
  const data: NotificationData = { id: p.id, thread: p.thread };
  return { title: p.name || 'Parley', options: { body, tag: `thread:${p.thread}`, renotify: true, data } };
}

/** The conversation's address in the app (its hash route, web/src/use-store.ts). */
export function conversationPath(thread: string): string {
  return `/#/t/${encodeURIComponent(thread)}`;
}
