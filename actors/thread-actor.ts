// The thread actor: one conversation (1:1 now, groups later) — members, the message log (seq),
// client-id dedupe and fan-out of each message to the members' user actors. A fan-out is
// recorded as pending in the same transaction as the message and cleared once every member's
// log confirms it, so a crash between the two commits is repaired on restart.
import { Command, ErrorCode } from '../src/protocol/codes.js';
import { directMembers, MessageIdGenerator } from '../src/protocol/ids.js';
import { wireTime } from '../src/protocol/wire.js';
import type { DedupeRecord, StoredMessage, ThreadMeta } from '../storage/env.js';
import { readThreadLog, threadLogHead } from '../storage/thread-log.js';
import type { Actor, ActorContext } from './actor.js';
import type { ActorMessage } from './envelope.js';
import { ProtocolError, fail } from '../src/protocol/errors.js';
import type { ClientCommand, Delivered, ThreadActorMessage } from './messages.js';
import { userAddress } from './router.js';

export class ThreadActor implements Actor {
  private meta: ThreadMeta | undefined;
  private lastSeq: number;
  /** First seq whose fan-out is unconfirmed by some member; 0 when all are confirmed. */
  private pendingFrom: number;
  private readonly confirmed = new Map<string, number>();
  /** Sends not yet committed, by user + cid: a resend racing its original must not fork. */
  private readonly uncommitted = new Map<string, DedupeRecord>();

  constructor(private readonly thread: string, private readonly ctx: ActorContext, private readonly ids: MessageIdGenerator) {
    this.meta = ctx.storage.db.threads.get(thread);
    this.lastSeq = threadLogHead(ctx.storage, thread);
    this.pendingFrom = ctx.storage.db.fanout.get(thread) ?? 0;
  }

  canPassivate(): boolean {
    return this.pendingFrom === 0 && this.uncommitted.size === 0;
  }

  receive(message: ActorMessage): unknown {
    const msg = message as ThreadActorMessage;
    switch (msg.op) {
      case 'cmd': return this.command(msg);
      case 'delivered': return this.delivered(msg);
      case 'recover': return this.recover();
      default: throw new ProtocolError(ErrorCode.bad_frame, `thread actor: unknown op ${(msg as ActorMessage).op}`);
    }
  }

  private command(cmd: ClientCommand): unknown {
    switch (cmd.frame.t) {
      case Command.send: return this.send(cmd);
      case Command.history: return this.history(cmd);
      default: throw new ProtocolError(ErrorCode.bad_frame, `unknown command ${cmd.frame.t}`);
    }
  }

  private send(cmd: ClientCommand): object {
    const { thread, seq, id, ts } = this.append(cmd);
    return { thread, seq, id, ts: wireTime(ts) };
  }

  /** Appends a message once per user + cid; a resend gets the first result. */
  private append({ caller, frame }: ClientCommand): DedupeRecord {
    const cid = frame.cid as string;
    const dedupeKey = `${caller.user}\u0000${cid}`;
    const seen = this.uncommitted.get(dedupeKey) ?? this.ctx.storage.db.dedupe.get([caller.user, cid]);
    if (seen) return seen;

    const meta = this.meta ?? this.createDirect(caller.user, frame.to as string | undefined);
    if (!meta.members.includes(caller.user)) fail(ErrorCode.forbidden, 'not a member of this thread');

    const ts = Date.now();
    const msg: StoredMessage = { seq: ++this.lastSeq, id: this.ids.next(ts), from: caller.user, device: caller.device, ts, cid };
    if (frame.body !== undefined) msg.body = frame.body as string;
    if (frame.media !== undefined) msg.media = frame.media;
    if (frame.reply !== undefined) msg.reply = frame.reply as string;
    const result: DedupeRecord = { thread: this.thread, seq: msg.seq, id: msg.id, ts };

    const { db } = this.ctx.storage;
    this.ctx.put(db.threadLog, [this.thread, msg.seq], msg);
    this.ctx.put(db.dedupe, [caller.user, cid], result);
    this.uncommitted.set(dedupeKey, result);
    // From the commit on, the dedupe table answers.
    this.ctx.afterCommit(() => this.uncommitted.delete(dedupeKey));
    if (this.pendingFrom === 0) {
      this.pendingFrom = msg.seq;
      this.ctx.put(db.fanout, this.thread, msg.seq);
    }
    for (const member of meta.members) {
      this.ctx.tell(userAddress(member), { op: 'deliver', thread: this.thread, msg });
    }
    return result;
  }

  private history({ caller, frame }: ClientCommand): { messages: unknown[]; more: boolean } {
    const meta = this.meta ?? fail(ErrorCode.not_found, 'no such thread');
    if (!meta.members.includes(caller.user)) fail(ErrorCode.forbidden, 'not a member of this thread');
    const page = readThreadLog(this.ctx.storage, this.thread, {
      before: frame.before as number | undefined,
      after: frame.after as number | undefined,
      limit: (frame.limit as number | undefined) ?? 50,
    });
    // A cid is the sender's own business (PROTOCOL.md §5): only the sender sees it.
    const messages = page.messages.map(({ cid, ts, ...m }) =>
      m.from === caller.user ? { thread: this.thread, ...m, ts: wireTime(ts), cid } : { thread: this.thread, ...m, ts: wireTime(ts) });
    return { messages, more: page.more };
  }

  /** A 1:1 thread comes into being with its first message, sent by `to`. */
  private createDirect(sender: string, to: string | undefined): ThreadMeta {
    const pair = directMembers(this.thread);
    if (!pair || to === undefined) return fail(ErrorCode.not_found, 'no such thread');
    const other = pair[0] === sender ? pair[1] : pair[0];
    if (!this.ctx.storage.db.users.get(other)) fail(ErrorCode.not_found, 'no such user');
    const members = pair[0] === pair[1] ? [pair[0]] : [...pair];
    const meta: ThreadMeta = { thread: this.thread, kind: 'direct', members, admins: [], title: '', created: Date.now() };
    this.ctx.put(this.ctx.storage.db.threads, this.thread, meta);
    this.meta = meta;
    return meta;
  }

  private delivered({ user, seq }: Delivered): void {
    if (seq > (this.confirmed.get(user) ?? 0)) this.confirmed.set(user, seq);
    if (this.pendingFrom === 0 || !this.meta) return;
    for (const member of this.meta.members) {
      if ((this.confirmed.get(member) ?? 0) < this.lastSeq) return;
    }
    this.pendingFrom = 0;
    this.ctx.remove(this.ctx.storage.db.fanout, this.thread);
  }

  /** After a restart: deliver again everything from the first unconfirmed seq (members skip dupes). */
  private recover(): void {
    if (this.pendingFrom === 0 || !this.meta) return;
    const page = readThreadLog(this.ctx.storage, this.thread, { after: this.pendingFrom - 1, limit: Number.MAX_SAFE_INTEGER - 1 });
    for (const msg of page.messages) {
      for (const member of this.meta.members) {
        this.ctx.tell(userAddress(member), { op: 'deliver', thread: this.thread, msg });
      }
    }
  }
}
