// Delivers event webhooks (docs/architecture.md "Event webhooks"), on the gateway thread. Each loop:
// moves what the shards committed to their outboxes into the global log (one transaction that
// appends with the next global id and deletes the outbox entries: nothing lost, nothing twice),
// then POSTs the oldest undelivered events, up to WEBHOOK_BATCH at a time, one POST in flight, and
// only on a 2xx moves the durable `delivered` mark past them. A failure is retried with the same
// events after an exponential backoff (capped), so order per thread is kept and nothing is
// dropped; a crash before the mark moved re-sends (at least once: receivers dedupe by id).
// Delivered events are trimmed after WEBHOOK_RETENTION; the global log is what
// GET /v1/server/events reads.
import type { Logger } from 'pino';
import { Gauge } from 'prom-client';
import type { OutboxEvent, StorageEnv } from '../../storage/env.js';
import type { Metrics } from '../metrics.js';
import { HttpClient, retryAfterMs } from '../push/push-http.js';
import { WebhookProvider } from '../push/webhook-provider.js';

export interface WebhookDispatcherOptions {
  url: string;
  secret: string;
  batch: number;
  timeoutMs: number;
  backoffMs: number;
  backoffMaxMs: number;
  retentionMs: number;
}

/** An event as the receiver and the events API see it. */
export interface WebhookEvent { id: number; type: string; ts: number; [field: string]: unknown }

/** How often the outboxes are looked at when the last loop found nothing (they fill from other threads). */
const POLL_MS = 50;
/** Outbox entries moved per shard per loop, and in all (bounds one transaction). */
const MOVE_PER_SHARD = 1000;
const MOVE_MAX = 5000;
/** POSTs per loop at most (then the outboxes are looked at again). */
const POSTS_PER_LOOP = 20;
/** Delivered events deleted per trim pass, and how often a pass runs. */
const TRIM_MAX = 5000;
const TRIM_EVERY_MS = 10_000;

export const NEXT_ID = 'next';
export const DELIVERED = 'delivered';

export function toWebhookEvent(id: number, e: OutboxEvent): WebhookEvent {
  return { ...e.data, id, type: e.type, ts: e.ts };
}

/** The global log after `after`, oldest first, at most `limit` (the events API and the dispatcher). */
export function readEvents(storage: StorageEnv, after: number, limit: number): WebhookEvent[] {
  const out: WebhookEvent[] = [];
  for (const { key, value } of storage.db.webhookLog.getRange({ start: after + 1, limit })) out.push(toWebhookEvent(key as number, value));
  return out;
}

export class WebhookDispatcher {
  private readonly http = new HttpClient(2);
  private readonly url: URL;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private readonly abort = new AbortController();
  /** consecutive failed POSTs, and when the next may go */
  private failures = 0;
  private retryAt = 0;
  private trimmedAt = 0;
  /** the newest id the receiver accepted (written to webhook-state without waiting: a lost mark only re-sends) */
  private delivered: number;

  constructor(
    private readonly storage: StorageEnv,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly opts: WebhookDispatcherOptions,
  ) {
    this.url = new URL(opts.url);
    this.delivered = storage.db.webhookState.get(DELIVERED) ?? 0;
    const dispatcher = this;
    new Gauge({
      name: 'parley_webhook_backlog', help: 'webhook events not yet delivered (in the shards\' outboxes and in the global log after the delivered mark)', registers: [metrics.registry],
      collect() {
        storage.refresh(); // the shards' newest outbox entries
        const { db } = storage;
        const next = db.webhookState.get(NEXT_ID) ?? 1;
        this.set(db.webhookOutbox.getCount() + Math.max(0, next - 1 - dispatcher.delivered));
      },
    });
  }

  start(): void {
    this.schedule(0);
  }

  /** Stops the loop; a POST in flight is abandoned (its events go again after a restart). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.abort.abort(new Error('stopping'));
    await this.loop;
    this.http.close();
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.loop = this.tick().finally(() => (this.loop = null));
    }, ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    let busy = false;
    try {
      const moved = await this.move();
      this.storage.refresh();
      busy = moved > 0;
      // Several POSTs per move (one in flight at a time): the move's commit is the costly part under load.
      for (let i = 0; i < POSTS_PER_LOOP && !this.stopped && Date.now() >= this.retryAt; i++) {
        if (!(await this.deliver())) break;
        busy = true;
      }
      if (Date.now() - this.trimmedAt >= TRIM_EVERY_MS) await this.trim();
    } catch (err) {
      this.log.error({ err }, 'webhook dispatch failed');
    }
    const wait = busy ? 0 : this.retryAt > Date.now() ? Math.min(POLL_MS, this.retryAt - Date.now()) : POLL_MS;
    this.schedule(wait);
  }

  /** Moves committed outbox entries into the global log; returns how many. */
  private async move(): Promise<number> {
    const { db } = this.storage;
    // Cheap look first, outside a write transaction: most loops find nothing.
    this.storage.refresh();
    if (db.webhookOutbox.getKeysCount({ limit: 1 }) === 0) return 0;
    let moved = 0;
    await db.webhookLog.transaction(() => {
      let next = db.webhookState.get(NEXT_ID) ?? 1;
      let from: [number, number] = [0, 0];
      while (moved < MOVE_MAX) {
        let shard = -1;
        let taken = 0;
        for (const { key, value } of db.webhookOutbox.getRange({ start: from, limit: MOVE_PER_SHARD })) {
          const k = key as [number, number];
          if (shard === -1) shard = k[0];
          if (k[0] !== shard) break;
          void db.webhookLog.put(next++, value);
          void db.webhookOutbox.remove(k);
          taken++;
        }
        if (taken === 0) break;
        moved += taken;
        from = [shard + 1, 0];
      }
      void db.webhookState.put(NEXT_ID, next);
    });
    return moved;
  }

  /** POSTs the oldest undelivered events; true when it delivered some (there may be more). */
  private async deliver(): Promise<boolean> {
    const events = readEvents(this.storage, this.delivered, this.opts.batch);
    if (events.length === 0) return false;
    const body = Buffer.from(JSON.stringify({ events }));
    const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.opts.timeoutMs)]);
    let outcome: 'ok' | 'http_error' | 'network' | 'timeout';
    let wait: number | undefined;
    let status = 0;
    try {
      const answer = await this.http.request(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'parley-webhooks', 'x-parley-signature': WebhookProvider.sign(this.opts.secret, body) },
        body,
        signal,
      });
      status = answer.status;
      outcome = status >= 200 && status < 300 ? 'ok' : 'http_error';
      if (status === 429 || status === 503) wait = retryAfterMs(answer.headers['retry-after']);
    } catch (err) {
      if (this.stopped) return false;
      outcome = signal.aborted ? 'timeout' : 'network';
      this.log.debug({ err }, 'webhook POST failed');
    }
    this.metrics.webhookDeliveries.inc({ outcome });
    if (outcome === 'ok') {
      this.failures = 0;
      this.retryAt = 0;
      this.delivered = events[events.length - 1].id;
      // Not awaited: it joins the next commit; a crash before it re-sends this batch (same ids).
      this.storage.db.webhookState.put(DELIVERED, this.delivered).catch((err: unknown) => this.log.error({ err }, 'webhook delivered mark not written'));
      return true;
    }
    this.failures++;
    const backoff = Math.min(this.opts.backoffMaxMs, this.opts.backoffMs * 2 ** Math.min(this.failures - 1, 30));
    this.retryAt = Date.now() + (wait ?? Math.round(backoff / 2 + Math.random() * (backoff / 2)));
    if (this.failures === 1 || this.failures % 10 === 0) this.log.warn({ outcome, status, failures: this.failures, first: events[0].id }, 'webhook delivery failed; retrying');
    return false;
  }

  /** Deletes delivered events older than the retention, oldest first. */
  private async trim(): Promise<void> {
    this.trimmedAt = Date.now();
    const { db } = this.storage;
    const cutoff = Date.now() - this.opts.retentionMs;
    const doomed: number[] = [];
    for (const { key, value } of db.webhookLog.getRange({ start: 0, end: this.delivered + 1, limit: TRIM_MAX })) {
      if (value.ts >= cutoff) break;
      doomed.push(key as number);
    }
    if (doomed.length === 0) return;
    await db.webhookLog.transaction(() => {
      for (const id of doomed) void db.webhookLog.remove(id);
    });
  }
}
