// Invite links (docs/protocol.md "Invite links"): the records of one group's or channel's invites,
// kept by the actor that owns the group (thread actor) or channel (channel actor). Because that
// one actor checks and counts every join in its own turns, two racing joins of a 1-use code are
// serialised: the first takes the use, the second finds it used up. A group join adds the member
// in the same turn and commit as the use it takes.
import { randomBytes } from 'node:crypto';
import { ErrorCode } from '../protocol/codes.js';
import { fail } from '../protocol/errors.js';
import { INVITE_DEFAULT_EXPIRES_S } from '../protocol/validate.js';
import type { InviteRecord } from '../storage/env.js';
import type { ActorContext } from './actor.js';
import type { InviteCreated, InviteInfo, InviteJoined, InviteOp, InviteView } from './messages.js';

/** Live invites one group or channel may have at once (dead ones are pruned when counting). */
export const MAX_INVITES_PER_TARGET = 100;
/** 12 base62 characters: 62^12 ≈ 3.2 × 10^21 ≈ 2^71.4 codes. */
export const INVITE_CODE_CHARS = 12;
const BASE62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** Uniform base62 from crypto randomness: bytes ≥ 248 (= 4 × 62) are drawn again, so no character is favoured. */
export function newInviteCode(): string {
  let s = '';
  while (s.length < INVITE_CODE_CHARS) {
    for (const byte of randomBytes(INVITE_CODE_CHARS - s.length + 4)) {
      if (byte < 248 && s.length < INVITE_CODE_CHARS) s += BASE62[byte % 62];
    }
  }
  return s;
}

/** What the book needs of the actor that owns the invites' target. */
export interface InviteTarget {
  kind: 'group' | 'channel';
  id: string;
  title: string;
  /** channels: the handle */
  name?: string;
  /** groups: members; channels: subscribers now */
  members: number;
  /** may create and list invites, and revoke anyone's */
  isAdmin(user: string): boolean;
  /** groups: already a member (joining again takes no use); channels: never (joined per socket) */
  isMember(user: string): boolean;
  /** groups: adds the user as a member (throws before writing anything when it cannot); channels: nothing */
  add(user: string): void;
}

export class InviteBook {
  /** Records written (null: deleted) in turns whose commit is not done: LMDB's reads do not see them yet. */
  private readonly pending = new Map<string, InviteRecord | null>();
  /** Channel joins by limited-use codes not yet committed: code + user. */
  private readonly pendingJoins = new Set<string>();

  constructor(private readonly ctx: ActorContext) {}

  handle(msg: InviteOp, target: InviteTarget, now = Date.now()): unknown {
    const user = msg.caller?.user ?? '';
    switch (msg.action) {
      case 'create': return this.create(user, target, msg.expires ?? INVITE_DEFAULT_EXPIRES_S, msg.uses ?? 0, now);
      case 'revoke': return this.revoke(user, msg.code!, target);
      case 'list': return this.list(user, target, now);
      case 'join': return this.join(user, msg.code!, target, now);
      case 'info': return this.info(msg.code!, target, now);
      default: return fail(ErrorCode.bad_frame, `unknown invite action ${String(msg.action)}`);
    }
  }

  private create(user: string, target: InviteTarget, expiresS: number, uses: number, now: number): InviteCreated {
    if (!target.isAdmin(user)) fail(ErrorCode.forbidden, target.kind === 'group' ? 'only group admins may create invite links' : 'only the owner and admins may create invite links');
    const live = this.records(target.id).filter((r) => {
      if (isLive(r, now)) return true;
      this.erase(r);
      return false;
    });
    if (live.length >= MAX_INVITES_PER_TARGET) fail(ErrorCode.too_large, `at most ${MAX_INVITES_PER_TARGET} live invite links per ${target.kind}; revoke some`);
    let code = newInviteCode();
    while (this.record(code) !== undefined) code = newInviteCode(); // 2^-71 a time: never, but cheap to be sure
    const record: InviteRecord = { code, kind: target.kind, target: target.id, by: user, created: now, expires: now + expiresS * 1000, uses, used: 0 };
    this.write(record);
    this.ctx.put(this.ctx.storage.db.inviteIndex, [target.id, code], null);
    return uses > 0 ? { code, expires: record.expires, uses } : { code, expires: record.expires };
  }

  /** The creator or an admin; the code is gone at once (GET /i/:code and joins: not_found). */
  private revoke(user: string, code: string, target: InviteTarget): object {
    const record = this.record(code);
    if (!record || record.target !== target.id) return fail(ErrorCode.not_found, 'no such invite');
    if (record.by !== user && !target.isAdmin(user)) fail(ErrorCode.forbidden, 'only its creator or an admin may revoke an invite link');
    this.erase(record);
    return {};
  }

  private list(user: string, target: InviteTarget, now: number): { invites: InviteView[] } {
    if (!target.isAdmin(user)) fail(ErrorCode.forbidden, 'only admins may list invite links');
    const invites: InviteView[] = [];
    for (const r of this.records(target.id)) {
      if (!isLive(r, now)) {
        this.erase(r);
        continue;
      }
      invites.push(r.uses > 0 ? { code: r.code, by: r.by, created: r.created, expires: r.expires, uses: r.uses, used: r.used } : { code: r.code, by: r.by, created: r.created, expires: r.expires, used: r.used });
    }
    invites.sort((a, b) => a.created - b.created || (a.code < b.code ? -1 : 1));
    return { invites };
  }

  private join(user: string, code: string, target: InviteTarget, now: number): InviteJoined {
    const record = this.usable(code, target, now);
    const answer = { kind: target.kind, target: target.id, title: target.title };
    if (target.isMember(user)) return { ...answer, already: true };
    const joinKey = `${code}\u0000${user}`;
    const limited = record.uses > 0;
    if (target.kind === 'channel' && limited && (this.pendingJoins.has(joinKey) || this.ctx.storage.db.inviteJoins.get([code, user]) !== undefined)) {
      return { ...answer, already: true };
    }
    // First the add, which may refuse (a full group) before anything is written; then the use.
    target.add(user);
    this.write({ ...record, used: record.used + 1 });
    if (target.kind === 'channel' && limited) {
      this.ctx.put(this.ctx.storage.db.inviteJoins, [code, user], now);
      this.pendingJoins.add(joinKey);
      this.ctx.afterCommit(() => this.pendingJoins.delete(joinKey));
    }
    return { ...answer, already: false };
  }

  private info(code: string, target: InviteTarget, now: number): InviteInfo {
    const record = this.usable(code, target, now);
    const info: InviteInfo = { code, kind: target.kind, target: target.id, title: target.title, members: target.members, expires: record.expires };
    if (target.name !== undefined) info.name = target.name;
    return info;
  }

  /** The code's record if it may be used now; unknown, expired, revoked and used up are all not_found. */
  private usable(code: string, target: InviteTarget, now: number): InviteRecord {
    const record = this.record(code);
    if (!record || record.target !== target.id || !isLive(record, now)) return fail(ErrorCode.not_found, 'no such invite, or it expired or was used up');
    return record;
  }

  private record(code: string): InviteRecord | undefined {
    const p = this.pending.get(code);
    if (p !== undefined) return p ?? undefined;
    return this.ctx.storage.db.invites.get(code);
  }

  /** The target's invites, committed or not. */
  private records(target: string): InviteRecord[] {
    const codes = new Set<string>();
    for (const key of this.ctx.storage.db.inviteIndex.getKeys({ start: [target, ''], end: [target, '\uffff'] })) codes.add((key as [string, string])[1]);
    for (const [code, r] of this.pending) if (r && r.target === target) codes.add(code);
    const out: InviteRecord[] = [];
    for (const code of codes) {
      const r = this.record(code);
      if (r) out.push(r);
    }
    return out;
  }

  private write(record: InviteRecord): void {
    this.ctx.put(this.ctx.storage.db.invites, record.code, record);
    this.remember(record.code, record);
  }

  private erase(record: InviteRecord): void {
    const { db } = this.ctx.storage;
    this.ctx.remove(db.invites, record.code);
    this.ctx.remove(db.inviteIndex, [record.target, record.code]);
    if (record.kind === 'channel' && record.uses > 0) {
      for (const key of db.inviteJoins.getKeys({ start: [record.code, ''], end: [record.code, '\uffff'] })) this.ctx.remove(db.inviteJoins, key as [string, string]);
    }
    this.remember(record.code, null);
  }

  private remember(code: string, value: InviteRecord | null): void {
    this.pending.set(code, value);
    // Once committed, LMDB answers; a later write of the same code keeps its own entry.
    this.ctx.afterCommit(() => {
      if (this.pending.get(code) === value) this.pending.delete(code);
    });
  }
}

const isLive = (r: InviteRecord, now: number): boolean => r.expires > now && (r.uses === 0 || r.used < r.uses);
