// What the HTTP/1.1 push providers (webhook, webpush, fcm) share: one request on the provider's own
// keep-alive agent (so close() can destroy its sockets, which the global fetch's pool would not
// let us do), given up when an AbortSignal aborts, with a capped response body; and Retry-After.
import http from 'node:http';
import https from 'node:https';
import type { DevicePushPayload } from '../../protocol/push-payload.js';

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A provider's answer is read up to this much (errors are small JSON); the rest is dropped. */
const MAX_ANSWER_BYTES = 64 * 1024;

export class HttpClient {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;

  constructor(maxSockets = 64) {
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets });
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets });
  }

  /**
   * Sends one request. Rejects on a network error or when `signal` aborts (the socket is
   * destroyed, not returned to the pool); resolves with any status.
   */
  request(url: string | URL, init: { method: string; headers: Record<string, string | number>; body?: Buffer | string; signal: AbortSignal }): Promise<HttpAnswer> {
    return new Promise((resolve, reject) => {
      const target = typeof url === 'string' ? new URL(url) : url;
      if (init.signal.aborted) return reject(abortError(init.signal));
      const body = init.body === undefined ? undefined : typeof init.body === 'string' ? Buffer.from(init.body) : init.body;
      const headers = { ...init.headers, ...(body ? { 'content-length': body.length } : {}) };
      const secure = target.protocol === 'https:';
      const req = (secure ? https : http).request(target, { method: init.method, headers, agent: secure ? this.httpsAgent : this.httpAgent });
      const onAbort = () => req.destroy(abortError(init.signal));
      init.signal.addEventListener('abort', onAbort, { once: true });
      const done = () => init.signal.removeEventListener('abort', onAbort);
      req.on('error', (err) => { done(); reject(err); });
      req.on('response', (res) => {
        const parts: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          if (size < MAX_ANSWER_BYTES) parts.push(c);
          size += c.length;
        });
        res.on('error', (err) => { done(); reject(err); });
        res.on('end', () => {
          done();
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).subarray(0, MAX_ANSWER_BYTES).toString('utf8') });
        });
      });
      req.end(body);
    });
  }

  /** Destroys every socket, idle or in use (a request in flight then fails: a `retry`). */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error('aborted');
}

/** Retry-After (RFC 9110 §10.2.3) as ms from now: delay-seconds or an HTTP-date; undefined if absent or unreadable. */
export function retryAfterMs(value: string | string[] | null | undefined, now = Date.now()): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined || raw === null) return undefined;
  const s = raw.trim();
  if (/^\d+$/.test(s)) return Math.min(Number(s), 86_400) * 1000;
  const at = Date.parse(s);
  if (Number.isNaN(at)) return undefined;
  return Math.min(Math.max(0, at - now), 86_400_000);
}

/** A network error, a timeout (abort) or anything else thrown while talking to a provider, as a `retry` reason. */
export function failureReason(err: unknown, signal: AbortSignal): string {
  if (signal.aborted) return 'timeout';
  const e = err as NodeJS.ErrnoException;
  return `network: ${e?.code ?? e?.message ?? String(err)}`;
}

/** The notification JSON the device itself receives (webpush payload, apns `parley`, fcm `data`). */
export function devicePayload(n: DevicePushPayload): DevicePushPayload {
  const out: DevicePushPayload = { id: n.id, u: n.u, thread: n.thread, from: n.from, name: n.name, unread: n.unread };
  if (n.preview !== undefined) out.preview = n.preview;
  return out;
}

/**
 * Shortens `preview` until `build` gives at most `maxBytes` (each push service caps its payload:
 * Web Push ~4 KiB of ciphertext, APNs 4 KiB, FCM 4 KiB of data), cutting on a code point and
 * adding "…"; with no room even for an empty preview, the preview is dropped. Returns the body.
 */
export function fitPreview<N extends { preview?: string }>(n: N, build: (n: N) => string, maxBytes: number): string {
  let body = build(n);
  if (Buffer.byteLength(body) <= maxBytes || n.preview === undefined) return body;
  const chars = [...n.preview];
  for (let keep = chars.length; ;) {
    const over = Buffer.byteLength(body) - maxBytes;
    if (over <= 0) return body;
    if (keep === 0) return build({ ...n, preview: undefined });
    keep = Math.max(0, keep - Math.max(1, Math.ceil(over / 4)));
    body = build({ ...n, preview: keep === 0 ? '' : chars.slice(0, keep).join('') + '…' });
  }
}

/** A generic alert text when the preview is off (no message text leaves the server). */
export const GENERIC_BODY = 'New message';
