// The `fcm` push provider: Firebase Cloud Messaging's HTTP v1 API.
// - Access token: OAuth 2.0 for service accounts (RFC 7523): a JWT signed RS256 with the service
//   account's private key, {iss: client_email, scope: firebase.messaging, aud: token_uri, iat, exp
//   an hour on}, exchanged at token_uri (grant_type urn:ietf:params:oauth:grant-type:jwt-bearer).
//   Kept until 5 minutes before it expires; one exchange at a time (concurrent sends wait for
//   it); dropped after a 401 so the next send gets a new one. node:crypto signs: one RS256
//   signature is a line, a JWT library would add nothing here.
// - POST {FCM_ENDPOINT}/v1/projects/<project_id>/messages:send with {message: {token, data (the
//   device JSON, every value a string as FCM requires), notification {title: name, body: preview
//   or "New message"}, android {collapse_key and notification.tag from the thread: a later one
//   replaces the earlier; priority high; ttl 1 day}, apns {apns-collapse-id, thread-id}}}. FCM has
//   no idempotency key; `data.id` lets the app drop a repeat.
// Answers: 200 ok; 404, or errorCode UNREGISTERED (error.details[].errorCode), or 403
// SENDER_ID_MISMATCH (the token belongs to another project) gone; 429, 500, 503, network errors and
// timeouts retry (Retry-After honoured); 401 retry with a new access token; other answers (400
// INVALID_ARGUMENT …) failed. A token exchange that fails: 5xx/network retry, 4xx failed (the
// service account is refused; no registration is at fault).
import { createHash, createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { HttpClient, devicePayload, failureReason, fitPreview, GENERIC_BODY, retryAfterMs } from './push-http.js';
import { MAX_PUSH_TOKEN_BYTES, type PushNotification, type PushOutcome, type PushProvider } from './push-provider.js';

export interface FcmOptions {
  /** path of the Google service-account JSON: client_email, private_key, project_id, token_uri */
  serviceAccountFile: string;
  /** https://fcm.googleapis.com or a test server */
  endpoint: string;
  /** how long a token exchange may take (it is shared by concurrent sends, so not theirs to abort) */
  tokenTimeoutMs?: number;
  maxSockets?: number;
}

interface ServiceAccount { client_email: string; private_key: string; project_id: string; token_uri: string }

export const FCM_SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';
const DEFAULT_TOKEN_URI = 'https://oauth2.googleapis.com/token';
/** data values count towards FCM's 4 KiB message limit. */
const MAX_DATA_BYTES = 3_500;

/** Thrown by the token exchange: a retry (5xx, network) or failed (4xx) outcome. */
class TokenError extends Error {
  constructor(readonly outcome: PushOutcome) {
    super(outcome.kind === 'ok' ? 'ok' : outcome.reason);
  }
}

export class FcmProvider implements PushProvider {
  readonly name = 'fcm' as const;
  private readonly http: HttpClient;
  private readonly account: ServiceAccount;
  private readonly key: KeyObject;
  private readonly sendUrl: URL;
  private access: { token: string; refreshAt: number } | null = null;
  private pending: Promise<string> | null = null;
  private readonly closing = new AbortController();

  constructor(private readonly options: FcmOptions) {
    let raw: string;
    try {
      raw = readFileSync(options.serviceAccountFile, 'utf8');
    } catch (err) {
      throw new Error(`FCM_SERVICE_ACCOUNT_FILE: cannot read "${options.serviceAccountFile}": ${(err as Error).message}`);
    }
    let account: Partial<ServiceAccount>;
    try {
      account = JSON.parse(raw) as Partial<ServiceAccount>;
    } catch {
      throw new Error(`FCM_SERVICE_ACCOUNT_FILE: "${options.serviceAccountFile}" is not JSON`);
    }
    for (const field of ['client_email', 'private_key', 'project_id'] as const) {
      if (typeof account[field] !== 'string' || account[field] === '') throw new Error(`FCM_SERVICE_ACCOUNT_FILE: "${options.serviceAccountFile}" has no ${field}`);
    }
    this.account = { ...(account as ServiceAccount), token_uri: account.token_uri || DEFAULT_TOKEN_URI };
    try {
      this.key = createPrivateKey(this.account.private_key);
    } catch (err) {
      throw new Error(`FCM_SERVICE_ACCOUNT_FILE: private_key is not a PEM private key: ${(err as Error).message}`);
    }
    if (this.key.asymmetricKeyType !== 'rsa') throw new Error('FCM_SERVICE_ACCOUNT_FILE: private_key must be an RSA key');
    this.sendUrl = new URL(`${options.endpoint.replace(/\/+$/, '')}/v1/projects/${encodeURIComponent(this.account.project_id)}/messages:send`);
    this.http = new HttpClient(options.maxSockets);
  }

  checkToken(token: string): string | null {
    if (typeof token !== 'string' || Buffer.byteLength(token) > MAX_PUSH_TOKEN_BYTES || !/^[A-Za-z0-9_:.-]{32,}$/.test(token)) {
      return 'token must be an FCM registration token (32 or more of A-Z a-z 0-9 _ : . -)';
    }
    return null;
  }

  /** The signed assertion exchanged for an access token. */
  private assertion(now: number): string {
    const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const iat = Math.floor(now / 1000);
    const input = `${enc({ alg: 'RS256', typ: 'JWT' })}.${enc({ iss: this.account.client_email, scope: FCM_SCOPE, aud: this.account.token_uri, iat, exp: iat + 3600 })}`;
    return `${input}.${sign('sha256', Buffer.from(input), this.key).toString('base64url')}`;
  }

  private accessToken(): Promise<string> {
    if (this.access && Date.now() < this.access.refreshAt) return Promise.resolve(this.access.token);
    if (!this.pending) {
      this.pending = this.exchange().finally(() => { this.pending = null; });
      this.pending.catch(() => {}); // each waiting send handles it; none may be left when all timed out
    }
    return this.pending;
  }

  private async exchange(): Promise<string> {
    const now = Date.now();
    const body = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: this.assertion(now) }).toString();
    const signal = AbortSignal.any([this.closing.signal, AbortSignal.timeout(this.options.tokenTimeoutMs ?? 10_000)]);
    let answer;
    try {
      answer = await this.http.request(this.account.token_uri, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body, signal });
    } catch (err) {
      throw new TokenError({ kind: 'retry', reason: `token exchange: ${failureReason(err, signal)}` });
    }
    const why = `token exchange answered ${answer.status}: ${answer.body.slice(0, 200)}`;
    if (answer.status >= 500 || answer.status === 429 || answer.status === 408) {
      const afterMs = retryAfterMs(answer.headers['retry-after']);
      throw new TokenError(afterMs === undefined ? { kind: 'retry', reason: why } : { kind: 'retry', reason: why, afterMs });
    }
    if (answer.status !== 200) throw new TokenError({ kind: 'failed', reason: why });
    let parsed: { access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(answer.body) as typeof parsed;
    } catch {
      throw new TokenError({ kind: 'retry', reason: 'token exchange answered no JSON' });
    }
    if (typeof parsed.access_token !== 'string' || parsed.access_token === '') throw new TokenError({ kind: 'retry', reason: 'token exchange answered no access_token' });
    const lifetimeMs = (typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : 3600) * 1000;
    // 5 minutes early, or at half the lifetime when that is shorter.
    this.access = { token: parsed.access_token, refreshAt: now + Math.max(lifetimeMs / 2, lifetimeMs - 5 * 60_000) };
    return parsed.access_token;
  }

  private message(token: string, n: PushNotification): string {
    const collapse = n.thread.length <= 64 ? n.thread : createHash('sha256').update(n.thread).digest('base64url');
    return fitPreview(n, (m) => {
      const data = Object.fromEntries(Object.entries(devicePayload(m)).map(([k, v]) => [k, String(v)]));
      return JSON.stringify({
        message: {
          token,
          data,
          notification: { title: m.name, body: m.preview ?? GENERIC_BODY },
          android: { collapse_key: collapse, priority: 'HIGH', ttl: '86400s', notification: { tag: collapse } },
          apns: { headers: { 'apns-collapse-id': collapse, 'apns-priority': '10' }, payload: { aps: { 'thread-id': m.thread } } },
        },
      });
    }, MAX_DATA_BYTES);
  }

  async send(token: string, n: PushNotification, signal: AbortSignal): Promise<PushOutcome> {
    if (signal.aborted) return { kind: 'retry', reason: 'timeout' };
    let bearer: string;
    try {
      bearer = await raceAbort(this.accessToken(), signal);
    } catch (err) {
      if (err instanceof TokenError) return err.outcome;
      return { kind: 'retry', reason: failureReason(err, signal) };
    }
    let answer;
    try {
      answer = await this.http.request(this.sendUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json; charset=utf-8', authorization: `Bearer ${bearer}` },
        body: this.message(token, n),
        signal,
      });
    } catch (err) {
      return { kind: 'retry', reason: failureReason(err, signal) };
    }
    const { status } = answer;
    if (status === 200) return { kind: 'ok' };
    let error: { status?: string; message?: string; details?: { errorCode?: string }[] } = {};
    try {
      error = (JSON.parse(answer.body) as { error?: typeof error }).error ?? {};
    } catch { /* no JSON body */ }
    const code = error.details?.find((d) => typeof d?.errorCode === 'string')?.errorCode ?? error.status ?? '';
    const why = `FCM answered ${status}${code ? ` ${code}` : ''}${error.message ? `: ${error.message.slice(0, 200)}` : ''}`;
    if (status === 404 || code === 'UNREGISTERED' || code === 'SENDER_ID_MISMATCH') return { kind: 'gone', reason: why };
    if (status === 401) {
      this.access = null;
      return { kind: 'retry', reason: why };
    }
    if (status === 429 || status === 500 || status === 503) {
      const afterMs = retryAfterMs(answer.headers['retry-after']);
      return afterMs === undefined ? { kind: 'retry', reason: why } : { kind: 'retry', reason: why, afterMs };
    }
    return { kind: 'failed', reason: why };
  }

  async close(): Promise<void> {
    this.closing.abort(new Error('closed'));
    this.http.close();
  }
}

/** `p`, or a rejection when `signal` aborts first (p itself goes on: it is shared). */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) reject(signal.reason);
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v); },
      (e) => { signal.removeEventListener('abort', onAbort); reject(e); },
    );
  });
}
