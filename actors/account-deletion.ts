// Account deletion (DELETE /v1/users/me; docs/protocol.md "Sessions"), run by the user's actor.
//
// First, in one commit (UserActor.deleteAccount): the deletion record, the credential, the
// username, every session and device with its cursor and push registration, and the user record
// replaced by a tombstone. From that commit on nobody can log in or authenticate as the account,
// and a crash cannot leave a half-account that can.
//
// Then the rest, in turns of bounded work (STEP_KEYS keys each), each turn telling the actor to go
// on after its commit: the inbox (leaving every group: a `left` event the other members see), the
// user log, contacts, blocks, leftovers of devices, cursors and push, then privacy, presence, the
// retention record and finally the deletion record. A crash midway resumes at start-up
// (Shard.recover tells every user with a deletion record to go on); a key already removed is
// simply not found again.
import type { Key } from 'lmdb';
import type { Database } from 'lmdb';
import type { ActorContext } from './actor.js';
import { threadAddress, userAddress } from './router.js';
import type { UserRecord } from '../storage/env.js';

/** Keys removed per turn: a user with a big log is deleted in many short turns. */
export const STEP_KEYS = 500;

/** What a deleted account still shows where others see its id (1:1 titles, contacts, member lists). */
export const DELETED_NAME = 'Deleted account';

export function tombstone(record: UserRecord | undefined, user: string, at: number): UserRecord {
  return { user, username: '', name: DELETED_NAME, created: record?.created ?? 0, deleted: at };
}

/** An account that exists and is not a deleted account's tombstone. */
export const liveUser = (r: { deleted?: number } | undefined): boolean => r !== undefined && r.deleted === undefined;

interface Stage {
  db: Database<any, any>;
  /** called for each key before its removal */
  each?: (key: Key, value: any) => void;
}

/**
 * The next step, once this turn's writes are committed: a step reads the user's keys from LMDB,
 * which has only committed ones — a log entry written just before (a receipt in the same batch)
 * would otherwise be missed and outlive the account.
 */
export function goOn(ctx: ActorContext, user: string): void {
  ctx.afterCommit(() => ctx.tell(userAddress(user), { op: 'delete-continue' }));
}

export class AccountDeletion {
  private stage = 0;
  /** the last key removed in the current stage (the next turn starts after it) */
  private after: Key | undefined;
  private readonly stages: Stage[];

  constructor(private readonly user: string, private readonly ctx: ActorContext) {
    const { db } = ctx.storage;
    this.stages = [
      {
        db: db.inbox,
        // Every thread they are in hears of it: groups make them leave, 1:1 threads refuse new messages (thread-actor.ts, forget).
        each: (_key, row: { thread: string; member: boolean }) => {
          if (row.member) ctx.tell(threadAddress(row.thread), { op: 'forget', user });
        },
      },
      { db: db.userLog },
      { db: db.contacts },
      { db: db.blocks },
      { db: db.devices },
      { db: db.cursors },
      { db: db.pushRegistrations },
      { db: db.pushJobs, each: (key, job: { due: number }) => ctx.remove(db.pushQueue, [job.due, ...(key as [string, string, string])]) },
      { db: db.scheduledJobs, each: (key, job: { at: number }) => ctx.remove(db.scheduleQueue, [job.at, ...(key as [string, string])]) },
    ];
  }

  /** One turn of bounded work; true when it is finished (the deletion record is gone). */
  step(): boolean {
    // Steps run after the commit of everything this actor wrote before (see goOn): read that.
    this.ctx.storage.refresh();
    const { db } = this.ctx.storage;
    let budget = STEP_KEYS;
    while (this.stage < this.stages.length && budget > 0) {
      const { db: table, each } = this.stages[this.stage];
      const start = this.after ?? [this.user];
      const skip = this.after === undefined ? undefined : JSON.stringify(this.after);
      let n = 0;
      let more = false;
      for (const { key, value } of table.getRange({ start, end: [this.user, '\uffff'], limit: budget + 1 })) {
        if (skip !== undefined && JSON.stringify(key) === skip) continue;
        if (n === budget) {
          more = true;
          break;
        }
        each?.(key, value);
        this.ctx.remove(table, key);
        this.after = key;
        n++;
      }
      budget -= n;
      if (more) break;
      this.stage++;
      this.after = undefined;
    }
    if (this.stage < this.stages.length || budget === 0) {
      goOn(this.ctx, this.user);
      return false;
    }
    this.ctx.remove(db.privacy, this.user);
    this.ctx.remove(db.presence, this.user);
    this.ctx.remove(db.retention, ['user', this.user]);
    this.ctx.remove(db.deletions, this.user);
    this.ctx.log.info({ user: this.user }, 'account deleted');
    return true;
  }
}
