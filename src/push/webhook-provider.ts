// The `webhook` push provider: the operator's own push gateway (as Matrix servers use Sygnal). Each
// notification is one POST of JSON to PUSH_WEBHOOK_URL, signed with PUSH_WEBHOOK_SECRET:
//   X-Parley-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>
//   Idempotency-Key: <id>            (the gateway drops repeats after a retry)
// Body: {id, user, device, token, u, thread, from, name, unread, preview?}; the token is whatever the
// client registered, passed through. Answers: 2xx ok; 410 gone; 429 retry (Retry-After, seconds or
// an HTTP date); 408, 5xx, network errors and timeouts retry; any other status failed.
import { createHmac } from 'node:crypto';

import { HttpClient, failureReason, retryAfterMs } from './push-http.js';
import { MAX_PUSH_TOKEN_BYTES, type PushNotification, type PushOutcome, type PushProvider } from './push-provider.js';

export interface WebhookOptions {
  url: string;
  secret: string;
  /** sockets kept to the gateway (default 64) */
  maxSockets?: number;
}

export class WebhookProvider implements PushProvider {
  readonly name = 'webhook' as const;
  private readonly http: HttpClient;
  private readonly url: URL;

  constructor(private readonly options: WebhookOptions) {
    this.url = new URL(options.url);
    if (options.secret === '') throw new Error('the webhook push provider needs a secret');
    this.http = new HttpClient(options.maxSockets);
  }

  checkToken(token: string): string | null {
    if (typeof token !== 'string' || token === '') return 'token must be a non-empty string';
    if (Buffer.byteLength(token) > MAX_PUSH_TOKEN_BYTES) return `token must be at most ${MAX_PUSH_TOKEN_BYTES} bytes`;
    return null;
  }

  /** The body's signature as sent in X-Parley-Signature (exported for gateways and tests). */
  static sign(secret: string, body: Buffer | string): string {
    return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
  }

  async send(token: string, n: PushNotification, signal: AbortSignal): Promise<PushOutcome> {
    const payload: Record<string, unknown> = {
      id: n.id, user: n.user, device: n.device, token, u: n.u, thread: n.thread, from: n.from, name: n.name, unread: n.unread,
    };
    if (n.preview !== undefined) payload.preview = n.preview;
    const body = Buffer.from(JSON.stringify(payload));
    let answer;
    try {
      answer = await this.http.request(this.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'parley-push',
          'x-parley-signature': WebhookProvider.sign(this.options.secret, body),
          'idempotency-key': n.id,
        },
        body,
        signal,
      });
    } catch (err) {
      return { kind: 'retry', reason: failureReason(err, signal) };
    }
    const { status } = answer;
    if (status >= 200 && status < 300) return { kind: 'ok' };
    if (status === 410) return { kind: 'gone', reason: 'webhook answered 410' };
    if (status === 429 || status === 408 || status >= 500) {
      const afterMs = retryAfterMs(answer.headers['retry-after']);
      return afterMs === undefined ? { kind: 'retry', reason: `webhook answered ${status}` } : { kind: 'retry', reason: `webhook answered ${status}`, afterMs };
    }
    return { kind: 'failed', reason: `webhook answered ${status}` };
  }

  async close(): Promise<void> {
    this.http.close();
  }
}
