// A user's scheduled messages (docs/protocol.md "Scheduled messages"), kept by their user actor:
// `schedule` stores the job and its place in the time-ordered queue in one commit, `schedule.list`
// reads them, `schedule.cancel` removes both. The gateway's scheduler (src/scheduler/) sends due
// jobs as the user; the thread's cid dedupe makes every job's message appear exactly once.
import { ErrorCode } from '../protocol/codes.js';
import { fail } from '../protocol/errors.js';
import { directMembers, directThreadId, scheduledJobIdFor } from '../protocol/ids.js';
import { wireTime } from '../protocol/wire.js';
import type { ScheduledJob } from '../storage/env.js';
import type { ActorContext } from './actor.js';
import { liveUser } from './account-deletion.js';
import type { Caller } from './messages.js';

/** Jobs one user may have at once, pending or failed (a failed one counts until cancelled). */
export const MAX_SCHEDULED_PER_USER = 100;
/** How far ahead a message may be scheduled. */
export const MAX_SCHEDULE_AHEAD_MS = 366 * 24 * 3_600_000;
/** An `at` this far in the past is still taken (clock skew between a device and the server): it runs at once. */
export const SCHEDULE_PAST_SLACK_MS = 60_000;

/** The cid of a job's message: what makes a second run of it answer the first. */
export const scheduledCid = (job: string): string => `sched:${job}`;

export interface ScheduleFrame { cid: string; thread?: string; to?: string; body: string; reply?: string | number; at: number }

/** What schedule.list and schedule answer of a job. */
export function publicJob(j: ScheduledJob): Record<string, unknown> {
  const out: Record<string, unknown> = { job: j.job, thread: j.thread, body: j.body, at: wireTime(j.at), created: wireTime(j.created) };
  if (j.to !== undefined) out.to = j.to;
  if (j.reply !== undefined) out.reply = j.reply;
  if (j.failed) out.failed = { code: j.failed.code, message: j.failed.message, at: wireTime(j.failed.at) };
  return out;
}

export function schedule(ctx: ActorContext, caller: Caller, f: ScheduleFrame): Record<string, unknown> {
  const { db } = ctx.storage;
  const user = caller.user;
  const job = scheduledJobIdFor(user, f.cid);
  const existing = db.scheduledJobs.get([user, job]);
  if (existing) return publicJob(existing);

  const now = Date.now();
  const at = Number(f.at);
  if (at < now - SCHEDULE_PAST_SLACK_MS) fail(ErrorCode.bad_frame, 'at is in the past');
  if (at > now + MAX_SCHEDULE_AHEAD_MS) fail(ErrorCode.bad_frame, 'at is more than 366 days ahead');
  const thread = f.thread ?? directThreadId(user, f.to!);
  refuseUnreachable(ctx, user, thread, f.to);
  if (db.scheduledJobs.getCount({ start: [user, ''], end: [user, '\uffff'] }) >= MAX_SCHEDULED_PER_USER) {
    fail(ErrorCode.too_large, `at most ${MAX_SCHEDULED_PER_USER} scheduled messages at once`);
  }
  const record: ScheduledJob = { job, device: caller.device, thread, body: f.body, at, created: now };
  if (f.to !== undefined) record.to = f.to;
  if (f.reply !== undefined) record.reply = f.reply;
  ctx.put(db.scheduledJobs, [user, job], record);
  ctx.put(db.scheduleQueue, [at, user, job], null);
  return publicJob(record);
}

/**
 * The early answer a user expects: a thread they are not in, or nobody to send to, fails now,
 * not at `at`. (Whatever changes until then — a block, a removal — fails the run: `failed`.)
 */
function refuseUnreachable(ctx: ActorContext, user: string, thread: string, to: string | undefined): void {
  const { db } = ctx.storage;
  if (to !== undefined) {
    if (to === user || thread.length > 40 || !liveUser(db.users.get(to))) fail(ErrorCode.not_found, 'no such user');
    return;
  }
  const meta = db.threads.get(thread);
  const pair = directMembers(thread);
  if (meta ? !meta.members.includes(user) : !(pair && pair.includes(user))) fail(ErrorCode.forbidden, 'not a member of this thread');
}

export function listScheduled(ctx: ActorContext, user: string): { jobs: Record<string, unknown>[] } {
  const jobs: ScheduledJob[] = [];
  for (const { value } of ctx.storage.db.scheduledJobs.getRange({ start: [user, ''], end: [user, '\uffff'] })) jobs.push(value);
  jobs.sort((a, b) => a.at - b.at);
  return { jobs: jobs.map(publicJob) };
}

/** Cancels a job not yet sent (or forgets a failed one); not_found once it ran. */
export function cancelScheduled(ctx: ActorContext, user: string, job: string): void {
  const { db } = ctx.storage;
  const record = db.scheduledJobs.get([user, job]) ?? fail(ErrorCode.not_found, 'no such scheduled message');
  ctx.remove(db.scheduledJobs, [user, job]);
  ctx.remove(db.scheduleQueue, [record.at, user, job]);
}
