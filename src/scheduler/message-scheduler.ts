// Sends scheduled messages when they are due (docs/architecture.md "Scheduled messages"), on the
// gateway thread like the push dispatcher. User actors write each job with its place in the
// time-ordered queue; this loop looks at the queue's head every POLL_MS, and sends each due job as
// its owner (`send` with cid "sched:<job>") through the thread actor, at most `concurrency` at once.
// Sent: the job and its queue entry go. Refused for good (blocked, no longer a member): the job
// stays, marked failed, for the owner to see in schedule.list. Unanswered (a shard restarting,
// overload): tried again after a backoff. A crash between the send's commit and the job's removal
// runs it again after the restart; the thread's cid dedupe answers the first message, so each
// job's message is stored and delivered exactly once.
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ShardCluster } from '../../actors/cluster.js';
import { histogramSeries, LatencyStats, type SeriesValue } from '../../actors/latency-stats.js';
import { scheduledCid } from '../../actors/scheduled-messages.js';
import { threadAddress } from '../../actors/router.js';
import { Command, ErrorCode } from '../../protocol/codes.js';
import { ProtocolError } from '../../protocol/errors.js';
import { answerErrorCode, decodeFrame } from '../../protocol/wire.js';
import type { ScheduledJob, StorageEnv } from '../../storage/env.js';
import { backoff } from '../push/push-dispatcher.js';

/** How often the queue's head is read (jobs come from other threads): lateness is at most about this. */
export const SCHEDULER_POLL_MS = 250;
/** Answers that will not change by trying again: the job fails and stays for its owner to see. */
const FINAL = new Set<string>([ErrorCode.forbidden, ErrorCode.not_found, ErrorCode.bad_frame, ErrorCode.too_large]);

type JobKey = [number, string, string];

export class MessageScheduler {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** jobs being sent now, by job id */
  private readonly inflight = new Map<string, Promise<void>>();
  /** jobs whose send went unanswered: not before then (in memory: a restart tries at once) */
  private readonly retryAt = new Map<string, { at: number; attempts: number }>();
  private readonly lateness = new LatencyStats();
  /** writes asked for in this turn, and the commit that will carry them */
  private writes: (() => void)[] = [];
  private flushing: Promise<void> | null = null;
  private readonly runs: Counter<'outcome'>;

  constructor(
    private readonly storage: StorageEnv,
    private readonly cluster: ShardCluster,
    registry: Registry,
    private readonly log: Logger,
    private readonly concurrency = 256,
  ) {
    const self = this;
    this.runs = new Counter({ name: 'parley_scheduled_runs_total', help: 'scheduled messages run, by outcome (sent, failed, retry)', labelNames: ['outcome'], registers: [registry] });
    new Gauge({
      name: 'parley_scheduled_pending', help: 'scheduled messages waiting for their time (or a retry)', registers: [registry],
      collect() { this.set(storage.db.scheduleQueue.getCount()); },
    });
    registry.registerMetric({
      name: 'parley_scheduled_lateness_seconds',
      get: async () => {
        const values: SeriesValue[] = [];
        histogramSeries(values, 'parley_scheduled_lateness_seconds', {}, self.lateness);
        return { name: 'parley_scheduled_lateness_seconds', help: 'from a scheduled message\'s time to its send being stored', type: 'histogram', aggregator: 'sum', values };
      },
      reset: () => undefined,
    } as never);
  }

  start(): void {
    this.arm(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.allSettled([...this.inflight.values()]);
  }

  private arm(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.tick(), ms);
    this.timer.unref();
  }

  /** Starts due jobs, the earliest first, as far as the concurrency allows. */
  private tick(): void {
    this.timer = null;
    if (this.stopped) return;
    this.storage.refresh(); // see what the shards committed since
    const now = Date.now();
    let free = this.concurrency - this.inflight.size;
    if (free > 0) {
      // Skipped entries (in flight, backing off) are bounded by those two maps.
      const limit = free + this.inflight.size + this.retryAt.size;
      for (const { key } of this.storage.db.scheduleQueue.getRange({ start: [0], end: [now, '\uffff'], limit })) {
        const [, user, job] = key;
        if (this.inflight.has(job) || (this.retryAt.get(job)?.at ?? 0) > now) continue;
        const run = this.run(key).catch((err: unknown) => this.log.error({ err, user, job }, 'scheduled message failed'))
          .finally(() => {
            this.inflight.delete(job);
            this.arm(0);
          });
        this.inflight.set(job, run);
        if (--free === 0) break;
      }
    }
    this.arm(SCHEDULER_POLL_MS);
  }

  private async run(key: JobKey): Promise<void> {
    const [at, user, id] = key;
    const job = this.storage.db.scheduledJobs.get([user, id]);
    // Cancelled (or failed) since the queue was read: its entry is a leftover.
    if (!job || job.at !== at || job.failed) return this.write(() => void this.storage.db.scheduleQueue.remove(key));
    const frame: Record<string, unknown> = { t: Command.send, cid: scheduledCid(id), body: job.body };
    if (job.to !== undefined) frame.to = job.to;
    else frame.thread = job.thread;
    if (job.reply !== undefined) frame.reply = job.reply;
    let code: string | null;
    let message = '';
    try {
      const answer = await this.cluster.ask<Uint8Array>(threadAddress(job.thread), { op: 'cmd', caller: { user, device: job.device, r: 0 }, frame });
      code = answerErrorCode(answer);
      if (code !== null) message = String((decodeFrame(answer) as { message?: unknown }).message ?? code);
    } catch (err) {
      code = err instanceof ProtocolError ? err.code : ErrorCode.internal;
      message = (err as Error).message;
    }
    if (code === null) {
      this.lateness.record(Math.max(0, Date.now() - at) / 1000);
      this.runs.inc({ outcome: 'sent' });
      this.retryAt.delete(id);
      return this.write(() => {
        void this.storage.db.scheduleQueue.remove(key);
        void this.storage.db.scheduledJobs.remove([user, id]);
      });
    }
    if (FINAL.has(code)) {
      this.runs.inc({ outcome: 'failed' });
      this.retryAt.delete(id);
      this.log.info({ user, job: id, code, message }, 'scheduled message refused');
      return this.fail(key, job, code, message);
    }
    this.runs.inc({ outcome: 'retry' });
    const attempts = (this.retryAt.get(id)?.attempts ?? 0) + 1;
    this.retryAt.set(id, { at: Date.now() + backoff(attempts), attempts });
  }

  /** Marks the job failed and takes it off the queue, unless its owner cancelled it meanwhile. */
  private fail(key: JobKey, sent: ScheduledJob, code: string, message: string): Promise<void> {
    const { db } = this.storage;
    const [, user, id] = key;
    return this.write(() => {
      void db.scheduleQueue.remove(key);
      const now = db.scheduledJobs.get([user, id]);
      if (now && now.at === sent.at) void db.scheduledJobs.put([user, id], { ...now, failed: { code, message, at: Date.now() } });
    });
  }

  /**
   * A read-modify-write of the schedule tables (the user actors write them too), in one
   * transaction with every other one asked for in this turn of the event loop: a burst of due
   * jobs costs one commit per turn, not one per job.
   */
  private write(fn: () => void): Promise<void> {
    this.writes.push(fn);
    return (this.flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
      const writes = this.writes;
      this.writes = [];
      this.flushing = null;
      await this.storage.db.scheduledJobs.transaction(() => {
        for (const w of writes) w();
      });
    }));
  }
}
