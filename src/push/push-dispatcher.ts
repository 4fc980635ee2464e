// Sends the pending push notifications (docs/architecture.md "Push"), on the gateway thread, off
// the shards. The user actors write a job per offline device and thread in the commit that logs
// the message, with its due time in the push queue; this loop takes due jobs in order, at most
// `concurrency` at once, and for each one: drops it if the device came online, lost its
// registration or went over its caps; else builds the notification from the current state (sender
// name, unread count, preview) and hands it to the device's provider. Outcomes: ok deletes the job
// (or, when a newer message replaced it meanwhile, gives that one a fresh window); retry puts it
// back with exponential backoff and jitter, or the provider's Retry-After; gone unregisters the
// device through its user actor; failed drops it. Every job is sent at least once; its id
// `<device>:<u>` lets a provider drop repeats.
import type { Logger } from 'pino';
import { Gauge } from 'prom-client';
import type { ShardCluster } from '../../actors/cluster.js';
import { userAddress } from '../../actors/router.js';
import type { PushJob, StorageEnv } from '../../storage/env.js';
import type { Metrics } from '../metrics.js';
import type { PushNotification, PushOutcome, PushProvider } from './push-provider.js';

export interface PushDispatcherOptions {
  coalesceMs: number;
  timeoutMs: number;
  concurrency: number;
  maxPerHour: number;
  maxPerDay: number;
  preview: boolean;
}

/** Tries of one notification before it is dropped (about 10 min of backoff in all). */
export const MAX_PUSH_ATTEMPTS = 10;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 5 * 60_000;
/** How often the queue is looked at when nothing woke the loop (new jobs come from other threads). */
const POLL_MS = 250;
const PREVIEW_CHARS = 100;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

type JobKey = [string, string, string];

export class PushDispatcher {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** jobs being sent now, by `user\0device\0thread` */
  private readonly inflight = new Map<string, Promise<void>>();
  /** sends per device in the current hour and day (in memory: a restart forgives) */
  private readonly budgets = new Map<string, { hour: number; hourCount: number; day: number; dayCount: number }>();

  constructor(
    private readonly storage: StorageEnv,
    private readonly providers: ReadonlyMap<string, PushProvider>,
    private readonly cluster: ShardCluster,
    private readonly isOnline: (user: string, device: string) => boolean,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly opts: PushDispatcherOptions,
  ) {
    const dispatcher = this;
    new Gauge({
      name: 'parley_push_queued', help: 'push notifications waiting (coalescing, due, or backing off)', registers: [metrics.registry],
      collect() { this.set(storage.db.pushQueue.getCount()); },
    });
    new Gauge({
      name: 'parley_push_inflight', help: 'push deliveries in progress', registers: [metrics.registry],
      collect() { this.set(dispatcher.inflight.size); },
    });
  }

  start(): void {
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.allSettled([...this.inflight.values()]);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.tick(), ms);
    this.timer.unref();
  }

  /** Starts as many due jobs as the concurrency allows, oldest due first. */
  private tick(): void {
    this.timer = null;
    if (this.stopped) return;
    const { db } = this.storage;
    this.storage.refresh(); // see what the shards committed since
    const now = Date.now();
    const free = this.opts.concurrency - this.inflight.size;
    let started = 0;
    if (free > 0) {
      for (const { key } of db.pushQueue.getRange({ start: [0], end: [now, '\uffff'], limit: free + this.inflight.size })) {
        const [due, user, device, thread] = key;
        const id = `${user}\u0000${device}\u0000${thread}`;
        if (this.inflight.has(id)) continue;
        const run = this.run([user, device, thread], due).catch((err: unknown) => this.log.error({ err, user, device }, 'push delivery failed'))
          .finally(() => {
            this.inflight.delete(id);
            this.schedule(0);
          });
        this.inflight.set(id, run);
        if (++started >= free) break;
      }
    }
    this.schedule(POLL_MS);
  }

  private async run(key: JobKey, due: number): Promise<void> {
    const { db } = this.storage;
    const [user, device, thread] = key;
    const job = db.pushJobs.get(key);
    // A queue entry left behind by a job that was replaced, rescheduled or deleted.
    if (!job || job.due !== due) return this.removeQueueEntry(due, key);
    const registration = db.pushRegistrations.get([user, device]);
    const provider = registration ? this.providers.get(registration.provider) : undefined;
    const row = db.inbox.get([user, thread]);
    const dropReason = this.isOnline(user, device) ? 'online'
      : !registration ? 'unregistered'
        : !provider ? 'unconfigured'
          : row?.muted ? 'muted'
            : row && row.readSeq >= job.seq ? 'read'
              : !this.withinBudget(device) ? 'capped'
                : null;
    if (dropReason) {
      this.metrics.pushDropped.inc({ reason: dropReason });
      return this.finish(key, job);
    }
    const n: PushNotification = {
      id: `${device}:${job.u}`, user, device, u: job.u, thread, from: job.from,
      name: db.users.get(job.from)?.name ?? job.from, unread: job.unread,
    };
    if (this.opts.preview) {
      const body = db.threadLog.get([thread, job.seq])?.body;
      if (body !== undefined) n.preview = body.length > PREVIEW_CHARS ? `${body.slice(0, PREVIEW_CHARS - 1)}…` : body;
    }
    const outcome = await this.send(provider!, registration!.token, n);
    this.metrics.pushAttempts.inc({ provider: provider!.name, outcome: outcome.kind });
    switch (outcome.kind) {
      case 'ok':
      case 'failed':
        if (outcome.kind === 'failed') this.log.warn({ user, device, provider: provider!.name, reason: outcome.reason }, 'push refused');
        return this.finish(key, job);
      case 'gone':
        this.log.info({ user, device, provider: provider!.name, reason: outcome.reason }, 'push registration is gone: removing it');
        await this.cluster.ask(userAddress(user), { op: 'push-unregister', device, token: registration!.token }).catch(() => undefined);
        return;
      case 'retry': {
        const attempts = job.attempts + 1;
        if (attempts >= MAX_PUSH_ATTEMPTS) {
          this.metrics.pushDropped.inc({ reason: 'attempts' });
          this.log.warn({ user, device, provider: provider!.name, reason: outcome.reason }, 'push given up after retries');
          return this.finish(key, job);
        }
        const wait = outcome.afterMs ?? backoff(attempts);
        return this.reschedule(key, job, { ...job, attempts, due: Date.now() + wait });
      }
    }
  }

  private async send(provider: PushProvider, token: string, n: PushNotification): Promise<PushOutcome> {
    try {
      return await provider.send(token, n, AbortSignal.timeout(this.opts.timeoutMs));
    } catch (err) {
      // The contract says providers do not throw; one that does is retried like a network error.
      return { kind: 'retry', reason: `provider threw: ${(err as Error)?.message ?? err}` };
    }
  }

  /** Done with `sent`: delete it, unless a newer message replaced it meanwhile (that one gets a window of its own). */
  private finish(key: JobKey, sent: PushJob): Promise<void> {
    const { db } = this.storage;
    return this.write(() => {
      const now = db.pushJobs.get(key);
      void db.pushQueue.remove([sent.due, ...key]);
      if (!now) return;
      if (now.u === sent.u) void db.pushJobs.remove(key);
      else {
        const due = Date.now() + this.opts.coalesceMs;
        void db.pushJobs.put(key, { ...now, due, attempts: 0 });
        void db.pushQueue.put([due, ...key], null);
      }
    });
  }

  private reschedule(key: JobKey, was: PushJob, next: PushJob): Promise<void> {
    const { db } = this.storage;
    return this.write(() => {
      const now = db.pushJobs.get(key);
      void db.pushQueue.remove([was.due, ...key]);
      if (!now) return;
      void db.pushJobs.put(key, { ...now, attempts: next.attempts, due: next.due });
      void db.pushQueue.put([next.due, ...key], null);
    });
  }

  private removeQueueEntry(due: number, key: JobKey): Promise<void> {
    return this.write(() => void this.storage.db.pushQueue.remove([due, ...key]));
  }

  /** A read-modify-write of the push tables, in one transaction (the user actors write them too). */
  private async write(fn: () => void): Promise<void> {
    await this.storage.db.pushJobs.transaction(fn);
  }

  private withinBudget(device: string): boolean {
    const now = Date.now();
    const hour = Math.floor(now / HOUR);
    const day = Math.floor(now / DAY);
    let b = this.budgets.get(device);
    if (!b) {
      b = { hour, hourCount: 0, day, dayCount: 0 };
      this.budgets.set(device, b);
    }
    if (b.hour !== hour) [b.hour, b.hourCount] = [hour, 0];
    if (b.day !== day) [b.day, b.dayCount] = [day, 0];
    if (b.hourCount >= this.opts.maxPerHour || b.dayCount >= this.opts.maxPerDay) return false;
    b.hourCount++;
    b.dayCount++;
    if (this.budgets.size > 100_000) this.pruneBudgets(day);
    return true;
  }

  /** Forgets devices not seen today (bounds the table). */
  private pruneBudgets(day: number): void {
    for (const [device, b] of this.budgets) if (b.day !== day) this.budgets.delete(device);
  }
}

/** Exponential backoff with jitter: about 1 s, 2 s, 4 s … up to 5 min, each between half and all of it. */
export function backoff(attempt: number): number {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}
