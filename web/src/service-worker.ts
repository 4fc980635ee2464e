// The web app's service worker (README "Web app"), built by web/build.mjs into /sw.js:
// - shows the server's Web Push notifications (web/src/push-payload.ts); a click opens that
//   conversation in an open window of the app, or a new one;
// - keeps the app shell (index.html and this build's hashed assets) in a cache, so the app starts
//   without the server; what it then shows comes from IndexedDB (web/src/history-cache.ts and the
//   SDK's persistence), and the banner says it is reconnecting.
// The API (/v1/...), the socket and the admin dashboard are never touched by it.
/// <reference lib="webworker" />
import { conversationPath, notificationFor, readPayload, type NotificationData } from './push-payload.js';

/** Set by web/build.mjs: the shell's URLs, and a name that changes with them. */
declare const APP_SHELL: string[];
declare const SHELL_CACHE: string;

const sw = self as unknown as ServiceWorkerGlobalScope;

sw.addEventListener('install', (event) => {
  // A new build takes over at once: its index.html names only its own assets, which it caches first.
  event.waitUntil(caches.open(SHELL_CACHE).then((cache) => cache.addAll(APP_SHELL)).then(() => sw.skipWaiting()));
});

sw.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name.startsWith('parley-shell-') && name !== SHELL_CACHE) await caches.delete(name);
    await sw.clients.claim();
  })());
});

sw.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== sw.location.origin) return;
  if (req.mode === 'navigate' && url.pathname === '/') event.respondWith(networkFirst(req));
  else if (url.pathname.startsWith('/assets/')) event.respondWith(cacheFirst(req));
});

/** index.html: the server's when it answers (it names the newest build), else the cached one. */
async function networkFirst(req: Request): Promise<Response> {
  try {
    return await fetch(req);
  } catch (err) {
    const cached = await caches.match('/', { cacheName: SHELL_CACHE });
    if (cached) return cached;
    throw err;
  }
}

/** Hashed assets never change: the cached copy when there is one. */
async function cacheFirst(req: Request): Promise<Response> {
  return (await caches.match(req, { cacheName: SHELL_CACHE })) ?? fetch(req);
}

sw.addEventListener('push', (event) => {
  let raw: unknown;
  try {
    raw = event.data?.json();
  } catch {
    raw = undefined;
  }
  const payload = readPayload(raw);
  // Chrome requires a notification for every push (userVisibleOnly); an unreadable one says little.
  if (!payload) {
    event.waitUntil(sw.registration.showNotification('Parley', { body: 'New activity', tag: 'parley' }));
    return;
  }
  event.waitUntil((async () => {
    // Web Push has no idempotency header: the same id again is a repeat of what is on screen.
    const shown = await sw.registration.getNotifications({ tag: `thread:${payload.thread}` });
    if (shown.some((n) => (n.data as NotificationData | undefined)?.id === payload.id)) return;
    const { title, options } = notificationFor(payload);
    await sw.registration.showNotification(title, options);
  })());
});

sw.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const data = event.notification.data as NotificationData | undefined;
  const opening = openConversation(data?.thread);
  // Only a real click can extend the event (a script-made one, as in the tests, cannot).
  if (event.isTrusted) event.waitUntil(opening);
});

/** Focuses a window of the app and tells it to show the thread; opens one when there is none. */
async function openConversation(thread: string | undefined): Promise<void> {
  const path = thread ? conversationPath(thread) : '/';
  const windows = await sw.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const win = windows.find((c) => new URL(c.url).origin === sw.location.origin);
  if (!win) {
    await sw.clients.openWindow(path);
    return;
  }
  if (thread) win.postMessage({ t: 'open', thread });
  // Focusing needs a real click; without one the window just shows the thread.
  await win.focus().catch(() => undefined);
}
