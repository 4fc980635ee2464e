// The `webpush` push provider: RFC 8030 (Web Push), RFC 8291 (aes128gcm message encryption) and
// RFC 8292 (VAPID). The `web-push` library encrypts and signs (generateRequestDetails); the request
// itself goes out on our own agent so that it honours the AbortSignal and close() frees its sockets
// (the library's sendNotification has neither, and speaks https only).
//
// Token: the browser's PushSubscription as JSON, `{endpoint, keys: {p256dh, auth}}`: endpoint an
// https URL (http only with WEBPUSH_ALLOW_HTTP, for a local push service in tests or development;
// browsers never hand out http endpoints, and allowing it would let any user make the server POST
// to plain-HTTP services), p256dh a base64url uncompressed P-256 point (65 bytes), auth 16 bytes.
//
// Request: payload the device JSON {id, u, thread, from, name, unread, preview?} (the service worker
// drops a repeated id: Web Push has no idempotency header); `TTL: 86400` (a day-old chat
// notification is noise); `Urgency: normal` (RFC 8030's class for a chat message); `Topic:` the
// first 32 base64url characters of sha256(thread), so a later notification for the same thread
// replaces one the push service still holds for an offline browser (the unread count carries).
// Answers: 2xx ok; 404/410 gone (the subscription expired or was unsubscribed); 429 retry with
// Retry-After; 408, 5xx, network errors and timeouts retry; other 4xx (400, 413, 401/403 VAPID
// trouble) failed.
import { ECDH, createECDH, createHash } from 'node:crypto';

import webpush from 'web-push';

import { HttpClient, devicePayload, failureReason, fitPreview, retryAfterMs } from './push-http.js';
import { MAX_PUSH_TOKEN_BYTES, type PushNotification, type PushOutcome, type PushProvider } from './push-provider.js';

export interface WebPushOptions {
  /** the VAPID key pair, base64url: public 65 bytes (uncompressed P-256 point), private 32 bytes */
  publicKey: string;
  privateKey: string;
  /** a mailto: or https: URL the push service can contact the operator at */
  subject: string;
  /** accept http: endpoints (tests, development) */
  allowHttp?: boolean;
  maxSockets?: number;
}

interface Subscription { endpoint: string; keys: { p256dh: string; auth: string } }

/** How long a push service keeps an undelivered notification (seconds). */
export const WEBPUSH_TTL_SECONDS = 86_400;
/** The largest plaintext we send: 4096 bytes of record less the aes128gcm header (86), tag (16) and padding delimiter (1), with room to spare. */
const MAX_PLAINTEXT_BYTES = 3_800;

const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/;

function base64urlBytes(s: unknown): Buffer | null {
  if (typeof s !== 'string' || !BASE64URL.test(s)) return null;
  return Buffer.from(s.replace(/=+$/, ''), 'base64url');
}

/** The Topic header for a thread: later notifications for it replace a pending one. */
export function webPushTopic(thread: string): string {
  return createHash('sha256').update(thread).digest('base64url').slice(0, 32);
}

export class WebPushProvider implements PushProvider {
  readonly name = 'webpush' as const;
  private readonly http: HttpClient;
  private readonly vapid: { subject: string; publicKey: string; privateKey: string };

  constructor(private readonly options: WebPushOptions) {
    const pub = base64urlBytes(options.publicKey);
    const priv = base64urlBytes(options.privateKey);
    if (!pub || pub.length !== 65 || pub[0] !== 4) throw new Error('VAPID_PUBLIC_KEY must be a base64url uncompressed P-256 public key (65 bytes)');
    if (!priv || priv.length !== 32) throw new Error('VAPID_PRIVATE_KEY must be a base64url P-256 private key (32 bytes)');
    const ecdh = createECDH('prime256v1');
    try {
      ecdh.setPrivateKey(priv);
    } catch {
      throw new Error('VAPID_PRIVATE_KEY is not a valid P-256 private key');
    }
    if (!ecdh.getPublicKey().equals(pub)) throw new Error('VAPID_PUBLIC_KEY is not the public key of VAPID_PRIVATE_KEY');
    if (!/^(mailto:.+|https:\/\/.+)$/.test(options.subject)) throw new Error('VAPID_SUBJECT must be a mailto: or https: URL');
    this.vapid = { subject: options.subject, publicKey: pub.toString('base64url'), privateKey: priv.toString('base64url') };
    this.http = new HttpClient(options.maxSockets);
  }

  checkToken(token: string): string | null {
    if (typeof token !== 'string' || Buffer.byteLength(token) > MAX_PUSH_TOKEN_BYTES) return `token must be a PushSubscription JSON of at most ${MAX_PUSH_TOKEN_BYTES} bytes`;
    let sub: unknown;
    try {
      sub = JSON.parse(token);
    } catch {
      return 'token must be the PushSubscription as JSON';
    }
    const s = sub as Partial<Subscription> | null;
    if (typeof s !== 'object' || s === null || typeof s.endpoint !== 'string') return 'token needs an endpoint';
    let url: URL;
    try {
      url = new URL(s.endpoint);
    } catch {
      return 'endpoint must be a URL';
    }
    if (url.protocol !== 'https:' && !(this.options.allowHttp && url.protocol === 'http:')) return 'endpoint must be an https URL';
    if (url.username !== '' || url.password !== '') return 'endpoint must not carry credentials';
    if (typeof s.keys !== 'object' || s.keys === null) return 'token needs keys.p256dh and keys.auth';
    const p256dh = base64urlBytes(s.keys.p256dh);
    if (!p256dh || p256dh.length !== 65 || p256dh[0] !== 4) return 'keys.p256dh must be a base64url uncompressed P-256 point (65 bytes)';
    try {
      ECDH.convertKey(p256dh, 'prime256v1'); // throws for a point not on the curve
    } catch {
      return 'keys.p256dh is not a point on P-256';
    }
    const auth = base64urlBytes(s.keys.auth);
    if (!auth || auth.length !== 16) return 'keys.auth must be 16 bytes, base64url';
    return null;
  }

  async send(token: string, n: PushNotification, signal: AbortSignal): Promise<PushOutcome> {
    let details: ReturnType<typeof webpush.generateRequestDetails>;
    try {
      const sub = JSON.parse(token) as Subscription;
      const payload = fitPreview(n, (m) => JSON.stringify(devicePayload(m)), MAX_PLAINTEXT_BYTES);
      details = webpush.generateRequestDetails({ endpoint: sub.endpoint, keys: { p256dh: sub.keys.p256dh, auth: sub.keys.auth } }, payload, {
        vapidDetails: this.vapid,
        TTL: WEBPUSH_TTL_SECONDS,
        urgency: 'normal',
        topic: webPushTopic(n.thread),
        contentEncoding: 'aes128gcm',
      });
    } catch (err) {
      // checkToken admitted it, so only a subscription the library cannot encrypt to lands here.
      return { kind: 'gone', reason: `unusable subscription: ${(err as Error).message}` };
    }
    let answer;
    try {
      answer = await this.http.request(details.endpoint, {
        method: details.method,
        headers: details.headers as Record<string, string | number>,
        body: details.body ?? undefined,
        signal,
      });
    } catch (err) {
      return { kind: 'retry', reason: failureReason(err, signal) };
    }
    const { status } = answer;
    if (status >= 200 && status < 300) return { kind: 'ok' };
    const reason = `push service answered ${status}${answer.body ? `: ${answer.body.slice(0, 200)}` : ''}`;
    if (status === 404 || status === 410) return { kind: 'gone', reason };
    if (status === 429 || status === 408 || status >= 500) {
      const afterMs = retryAfterMs(answer.headers['retry-after']);
      return afterMs === undefined ? { kind: 'retry', reason } : { kind: 'retry', reason, afterMs };
    }
    return { kind: 'failed', reason };
  }

  async close(): Promise<void> {
    this.http.close();
  }
}
