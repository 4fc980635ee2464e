// The `apns` push provider: Apple's HTTP/2 API with token authentication.
// - One HTTP/2 session to APNS_HOST, reused for every notification (Apple asks for long-lived
//   connections); dropped on GOAWAY, an error or close, and opened again by the next send.
// - Authorization: an ES256 JWT, header {alg: ES256, kid: APNS_KEY_ID}, claims {iss: APNS_TEAM_ID,
//   iat}, signed with the .p8 key (node:crypto, dsaEncoding ieee-p1363: JOSE wants r||s, not DER).
//   Apple refuses tokens older than an hour and throttles ones renewed more often than every 20
//   minutes, so one is made every 50 minutes, and again at once after ExpiredProviderToken.
// - POST /3/device/<token> with apns-topic (APNS_TOPIC), apns-push-type alert, apns-priority 10,
//   apns-expiration a day ahead, apns-id a UUID derived from the notification id (the idempotency
//   key: a retry carries the same apns-id), apns-collapse-id from the thread (later notifications
//   replace the earlier one on the device; ≤ 64 bytes: the thread itself or its hash).
// - Body: {aps: {alert: {title: name, body: preview or "New message"}, thread-id, sound,
//   mutable-content}, parley: {id, u, thread, from, name, unread, preview?}} (≤ 4 KiB: the preview
//   is shortened to fit). No badge: the unread count here is one thread's, not the app's total.
// Answers: 200 ok; 410 (Unregistered) and 400 BadDeviceToken / DeviceTokenNotForTopic gone; 429,
// 500, 503, network errors and timeouts retry (Retry-After if Apple sends one); 403
// ExpiredProviderToken retry with a new JWT; anything else failed (e.g. 413 PayloadTooLarge, 403
// InvalidProviderToken, 400 BadCollapseId).
//
// APNS_CA_FILE adds PEM CA certificates to the trusted roots for APNS_HOST: a private CA, or the
// self-signed test server; Apple's own certificate chains to the system roots.
import { createHash, createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import { rootCertificates } from 'node:tls';

import { devicePayload, failureReason, fitPreview, GENERIC_BODY, retryAfterMs } from './push-http.js';
import type { PushNotification, PushOutcome, PushProvider } from './push-provider.js';

export interface ApnsOptions {
  /** path of the .p8 key (PKCS#8 PEM, EC P-256) */
  keyFile: string;
  keyId: string;
  teamId: string;
  /** the app's bundle id */
  topic: string;
  /** https://api.push.apple.com, https://api.sandbox.push.apple.com, or a test server */
  host: string;
  /** PEM file of extra trusted CA certificates ('' = the system roots only) */
  caFile?: string;
}

/** A JWT is made again after this long (Apple: valid for an hour, renew at most every 20 minutes). */
export const APNS_JWT_REFRESH_MS = 50 * 60_000;
const MAX_PAYLOAD_BYTES = 4096;
const EXPIRATION_SECONDS = 86_400;
const GONE_REASONS = new Set(['BadDeviceToken', 'Unregistered', 'DeviceTokenNotForTopic']);

/** A UUID (RFC 9562 version 8: name-based, our own hash) from the notification id, so a retry carries the same apns-id. */
export function apnsId(id: string): string {
  const h = createHash('sha256').update(id).digest();
  h[6] = (h[6] & 0x0f) | 0x80;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** apns-collapse-id for a thread: the thread id when it fits in 64 bytes, else its hash. */
export function apnsCollapseId(thread: string): string {
  return Buffer.byteLength(thread) <= 64 ? thread : createHash('sha256').update(thread).digest('base64url');
}

function readOrFail(option: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`${option}: cannot read "${path}": ${(err as Error).message}`);
  }
}

export class ApnsProvider implements PushProvider {
  readonly name = 'apns' as const;
  private readonly key: KeyObject;
  private readonly ca: string[] | undefined;
  private readonly origin: string;
  private session: http2.ClientHttp2Session | null = null;
  private jwt: { token: string; madeAt: number } | null = null;
  private closed = false;

  constructor(private readonly options: ApnsOptions) {
    const pem = readOrFail('APNS_KEY_FILE', options.keyFile);
    try {
      this.key = createPrivateKey(pem);
    } catch (err) {
      throw new Error(`APNS_KEY_FILE: "${options.keyFile}" is not a PEM private key: ${(err as Error).message}`);
    }
    if (this.key.asymmetricKeyType !== 'ec' || this.key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new Error(`APNS_KEY_FILE: "${options.keyFile}" must be an EC P-256 key (the .p8 file from Apple)`);
    }
    this.ca = options.caFile ? [...rootCertificates, readOrFail('APNS_CA_FILE', options.caFile).toString('utf8')] : undefined;
    const url = new URL(options.host);
    if (url.protocol !== 'https:') throw new Error('APNS_HOST must be an https URL');
    this.origin = url.origin;
    this.makeJwt(); // a key that cannot sign fails at start-up, not at the first notification
  }

  checkToken(token: string): string | null {
    if (typeof token !== 'string' || !/^[0-9a-fA-F]{64,200}$/.test(token) || token.length % 2 !== 0) return 'token must be an APNs device token: 64 or more hex digits';
    return null;
  }

  private makeJwt(now = Date.now()): string {
    const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const input = `${enc({ alg: 'ES256', kid: this.options.keyId })}.${enc({ iss: this.options.teamId, iat: Math.floor(now / 1000) })}`;
    const signature = sign('sha256', Buffer.from(input), { key: this.key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
    this.jwt = { token: `${input}.${signature}`, madeAt: now };
    return this.jwt.token;
  }

  private bearer(): string {
    const now = Date.now();
    return this.jwt && now - this.jwt.madeAt < APNS_JWT_REFRESH_MS ? this.jwt.token : this.makeJwt(now);
  }

  private connect(): http2.ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    const session = http2.connect(this.origin, this.ca ? { ca: this.ca } : {});
    const forget = () => { if (this.session === session) this.session = null; };
    session.on('goaway', forget);
    session.on('close', forget);
    session.on('error', forget); // the streams on it fail with the error; the next send reconnects
    this.session = session;
    return session;
  }

  send(token: string, n: PushNotification, signal: AbortSignal): Promise<PushOutcome> {
    if (this.closed) return Promise.resolve({ kind: 'retry', reason: 'provider closed' });
    const body = fitPreview(n, (m) => JSON.stringify({
      aps: { alert: { title: m.name, body: m.preview ?? GENERIC_BODY }, 'thread-id': m.thread, sound: 'default', 'mutable-content': 1 },
      parley: devicePayload(m),
    }), MAX_PAYLOAD_BYTES);
    return new Promise<PushOutcome>((resolve) => {
      if (signal.aborted) return resolve({ kind: 'retry', reason: 'timeout' });
      let stream: http2.ClientHttp2Stream;
      const session = this.connect();
      try {
        stream = session.request({
          ':method': 'POST',
          ':path': `/3/device/${token}`,
          authorization: `bearer ${this.bearer()}`,
          'apns-topic': this.options.topic,
          'apns-push-type': 'alert',
          'apns-priority': '10',
          'apns-expiration': String(Math.floor(Date.now() / 1000) + EXPIRATION_SECONDS),
          'apns-id': apnsId(n.id),
          'apns-collapse-id': apnsCollapseId(n.thread),
          'content-type': 'application/json',
        });
      } catch (err) {
        session.destroy(); // e.g. it got GOAWAY just now: the next send opens a new one
        if (this.session === session) this.session = null;
        return resolve({ kind: 'retry', reason: failureReason(err, signal) });
      }
      let settled = false;
      const finish = (o: PushOutcome) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        resolve(o);
      };
      const onAbort = () => {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        finish({ kind: 'retry', reason: 'timeout' });
      };
      signal.addEventListener('abort', onAbort, { once: true });
      let status = 0;
      let retryAfter: string | undefined;
      const parts: Buffer[] = [];
      stream.on('response', (headers) => {
        status = Number(headers[':status']);
        retryAfter = headers['retry-after'] as string | undefined;
      });
      stream.on('data', (c: Buffer) => parts.push(c));
      stream.on('error', (err) => finish({ kind: 'retry', reason: failureReason(err, signal) }));
      stream.on('close', () => {
        if (status === 0) return finish({ kind: 'retry', reason: signal.aborted ? 'timeout' : `stream closed (code ${stream.rstCode})` });
        finish(this.outcome(status, Buffer.concat(parts).toString('utf8'), retryAfter));
      });
      stream.end(body);
    });
  }

  private outcome(status: number, text: string, retryAfter: string | undefined): PushOutcome {
    if (status === 200) return { kind: 'ok' };
    let reason = '';
    try {
      reason = String((JSON.parse(text) as { reason?: unknown }).reason ?? '');
    } catch { /* no JSON body */ }
    const why = `APNs answered ${status}${reason ? ` ${reason}` : ''}`;
    if (status === 410 || (status === 400 && GONE_REASONS.has(reason))) return { kind: 'gone', reason: why };
    if (status === 403 && reason === 'ExpiredProviderToken') {
      this.jwt = null;
      return { kind: 'retry', reason: why };
    }
    if (status === 429 || status === 500 || status === 503) {
      const afterMs = retryAfterMs(retryAfter);
      return afterMs === undefined ? { kind: 'retry', reason: why } : { kind: 'retry', reason: why, afterMs };
    }
    return { kind: 'failed', reason: why };
  }

  async close(): Promise<void> {
    this.closed = true;
    const session = this.session;
    this.session = null;
    if (!session || session.destroyed) return;
    await new Promise<void>((resolve) => {
      session.close(() => resolve()); // lets streams in flight finish
      setTimeout(() => { session.destroy(); resolve(); }, 1000).unref();
    });
  }
}
