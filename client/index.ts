// Public entry of the Parley client SDK (browser-safe: fetch, WebSocket, crypto.getRandomValues).
/**
 * Usage:
 *
 *   import { register, login, ParleyClient } from './client/index.js';
 *   await register(base, { username: 'ann', password: 'correct horse' });
 *   const { token } = await login(base, { username: 'ann', password: 'correct horse', device: 'laptop' });
 *   const c = new ParleyClient({ url: 'ws://localhost:8080/v1/ws', token, since: storedCursor });
 *   c.on('msg', (m) => { show(m); saveCursor(c.lastU); });     // durable: exactly once, in order
 *   await c.connect();                                         // resolves after the replay (synced)
 *   const { thread, seq } = await c.send({ to: bobId, body: 'hi' }); // survives reconnects, same cid
 *   const page = await c.history({ thread, before: seq, limit: 50 });
 *   const read = await c.next('receipt', (r) => r.thread === thread && (r.read ?? 0) >= seq);
 *   await c.close();
 *
 * In Node, pass a WebSocket implementation: `new ParleyClient({ url, token, WebSocket: (await import('ws')).WebSocket })`.
 * In a browser, `persistence: new IndexedDbPersistence({ name: 'parley-' + user })` keeps the cursor and
 * recent history across reloads (`cachedHistory(thread)`); every method is listed in docs/sdk.md.
 */
export { ParleyClient, type ClientOptions } from './client.js';
export { ParleyError, ClientErrorCode } from './errors.js';
export { register, login, logout, listSessions, revokeSession, registerPush, unregisterPush, vapidKey, changePassword, deleteAccount, exportAccount, getMe, updateMe, findUser, apiCall } from './http.js';
export { Emitter, type Listener } from './emitter.js';
export { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
export { randomId } from './ids.js';
export { uploadMedia, downloadMedia, type UploadData, type UploadOptions, type Downloaded } from './media.js';
export type * from './types.js';
export type * from './commands.js';
export type { Persistence, PersistenceBatch, PersistedCursor, MessagePatch, CacheBounds } from './persistence.js';
export { MemoryPersistence } from './memory-persistence.js';
export { IndexedDbPersistence, type IndexedDbPersistenceOptions } from './indexeddb-persistence.js';
