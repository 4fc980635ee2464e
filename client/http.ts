// HTTP account calls (docs/protocol.md §11): JSON over fetch; failures throw ParleyError from {error, message}.
import { ErrorCode } from '../protocol/codes.js';
import { ParleyError, codeForStatus } from './errors.js';
import type { UserInfo } from './commands.js';
import type { LoginBody, LoginResult, RegisterBody, SessionRow } from './types.js';

export interface ApiCallOptions {
  token?: string;
  body?: unknown;
}

/** One JSON call; resolves with the parsed body (undefined for 204 / empty). Shared by every account call. */
export async function apiCall(baseUrl: string, method: string, path: string, opts: ApiCallOptions = {}): Promise<any> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  let res: Response;
  try {
    res = await fetch(joinUrl(baseUrl, path), { method, headers, body });
  } catch (err) {
    // Network failure: no status, same meaning as a 503 for the caller (retry later).
    throw new ParleyError(ErrorCode.unavailable, `${method} ${path}: ${(err as Error)?.message ?? err}`);
  }
  const text = await res.text();
  if (res.ok) return text ? JSON.parse(text) : undefined;
  throw errorFromResponse(res, text);
}

/** POST /v1/users → {user}. */
export async function register(baseUrl: string, body: RegisterBody): Promise<{ user: string }> {
  return apiCall(baseUrl, 'POST', '/v1/users', { body });
}

/** POST /v1/sessions → {token, user, device}. */
export async function login(baseUrl: string, body: LoginBody): Promise<LoginResult> {
  return apiCall(baseUrl, 'POST', '/v1/sessions', { body });
}

/** DELETE /v1/sessions/current: this device's sockets close with 4003. */
export async function logout(baseUrl: string, token: string): Promise<void> {
  await apiCall(baseUrl, 'DELETE', '/v1/sessions/current', { token });
}

/** GET /v1/sessions → {devices}. */
export async function listSessions(baseUrl: string, token: string): Promise<{ devices: SessionRow[] }> {
  return apiCall(baseUrl, 'GET', '/v1/sessions', { token });
}

/** DELETE /v1/sessions/:device: logs another own device out. */
export async function revokeSession(baseUrl: string, token: string, device: string): Promise<void> {
  await apiCall(baseUrl, 'DELETE', `/v1/sessions/${encodeURIComponent(device)}`, { token });
}

/** GET /v1/users/me → your own {user, username, name}. */
export async function getMe(baseUrl: string, token: string): Promise<UserInfo> {
  return apiCall(baseUrl, 'GET', '/v1/users/me', { token });
}

/** PATCH /v1/users/me {name} → the updated {user, username, name}. */
export async function updateMe(baseUrl: string, token: string, body: { name: string }): Promise<UserInfo> {
  return apiCall(baseUrl, 'PATCH', '/v1/users/me', { token, body });
}

/** GET /v1/users/:username → {user, username, name}; not_found (404) otherwise. The same as `client.userFind`. */
export async function findUser(baseUrl: string, token: string, username: string): Promise<UserInfo> {
  return apiCall(baseUrl, 'GET', `/v1/users/${encodeURIComponent(username)}`, { token });
}

/** POST /v1/users/me/password: every other device is logged out (4003); this token stays valid. A wrong `old`: 403 forbidden. */
export async function changePassword(baseUrl: string, token: string, body: { old: string; new: string }): Promise<void> {
  await apiCall(baseUrl, 'POST', '/v1/users/me/password', { token, body });
}

/** DELETE /v1/users/me: deletes the account (docs/protocol.md "Sessions"); every session ends. */
export async function deleteAccount(baseUrl: string, token: string): Promise<void> {
  await apiCall(baseUrl, 'DELETE', '/v1/users/me', { token });
}

/** GET /v1/users/me/export: the account's own data as JSON (profile, devices, contacts, blocks, privacy, threads, messages sent). */
export async function exportAccount(baseUrl: string, token: string): Promise<any> {
  return apiCall(baseUrl, 'GET', '/v1/users/me/export', { token });
}

/**
 * POST /v1/push: this device's notifications go to `provider` while it has no open socket
 * (docs/protocol.md "Push"); replaces an earlier registration of the device.
 */
export async function registerPush(baseUrl: string, token: string, registration: { provider: 'webhook' | 'webpush' | 'apns' | 'fcm'; token: string }): Promise<void> {
  await apiCall(baseUrl, 'POST', '/v1/push', { token, body: registration });
}

/** DELETE /v1/push: no more notifications for this device. */
export async function unregisterPush(baseUrl: string, token: string): Promise<void> {
  await apiCall(baseUrl, 'DELETE', '/v1/push', { token });
}

/** GET /v1/push/vapid: the server's VAPID public key for `pushManager.subscribe({applicationServerKey})`. */
export async function vapidKey(baseUrl: string): Promise<string> {
  return (await apiCall(baseUrl, 'GET', '/v1/push/vapid')).publicKey;
}

export function joinUrl(baseUrl: string, path: string): string {
  return baseUrl.replace(/\/+$/, '') + path;
}

/** ParleyError from a non-2xx answer: code/message from the body, retry from Retry-After. */
export function errorFromResponse(res: Response, text: string): ParleyError {
  let code = codeForStatus(res.status);
  let message = res.statusText || `HTTP ${res.status}`;
  let retry = retryAfterMs(res.headers.get('retry-after'));
  try {
    const b = text ? JSON.parse(text) : undefined;
    if (b && typeof b === 'object') {
      if (typeof b.error === 'string') code = b.error;
      if (typeof b.message === 'string') message = b.message;
      if (retry === undefined && typeof b.retry === 'number') retry = b.retry;
    }
  } catch {
    if (text) message = text.slice(0, 200); // not JSON (e.g. a proxy's error page)
  }
  return new ParleyError(code, message, res.status, retry);
}

/** Retry-After is seconds or an HTTP date; ParleyError.retry is milliseconds like the wire's `retry`. */
function retryAfterMs(h: string | null): number | undefined {
  if (!h) return undefined;
  const s = Number(h);
  if (Number.isFinite(s)) return Math.max(0, Math.round(s * 1000));
  const at = Date.parse(h);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}
