// The thread actor: one conversation (1:1 or group) — members, admins and title, the message log
// (seq), the event log of membership changes (eseq), client-id dedupe, delivered/read
// watermarks, and fan-out of messages, events and receipts to the members' user actors.
// A fan-out is recorded as pending in the same transaction as what it fans out, and cleared once
// every member's log has it, so a crash between the two commits is repaired on restart.
// Edits, deletes and reactions rewrite the message in place and go out as thread events of their
// own kinds (edit, deleted, reaction), so the same fan-out and recovery carry them. The search
// index (actors/thread-search-index.ts) follows every write of a body in the same transaction.
import { Command, ErrorCode } from '../protocol/codes.js';
import { ProtocolError, fail } from '../protocol/errors.js';
import { directMembers, MessageIdGenerator } from '../protocol/ids.js';
import { MAX_GROUP_MEMBERS } from '../protocol/validate.js';
import { wireTime } from '../protocol/wire.js';
import type { DedupeRecord, MediaObject, MessageEventKind, StoredMessage, ThreadEvent, ThreadEventKind, ThreadMeta, Watermarks } from '../storage/env.js';
import { logFloor } from '../storage/retention.js';
import { readThreadLog, threadLogHead } from '../storage/thread-log.js';
import { threadEventsHead } from '../storage/thread-events.js';
import type { Actor, ActorContext } from './actor.js';
import type { ActorMessage } from './envelope.js';
import { liveUser } from './account-deletion.js';
import type { Caller, ClientCommand, DeliveredTo, InviteOp, Logged, Recover, ThreadActorMessage } from './messages.js';
import { InviteBook } from './invite-book.js';
import { ThreadSearchIndex } from './thread-search-index.js';
import { threadAddress, userAddress } from './router.js';
import { messageView, quoteOf } from './message-view.js';
import { GROUP_EVENT_TYPES, groupEventData, MESSAGE_EVENT_TYPES, messageData, messageEventData, type EventOutbox } from '../src/webhooks/events.js';

export class ThreadActor implements Actor {
  /** 1:1 threads: was the other member's account deleted? (null: not looked up in this activation) */
  private partnerDeleted: boolean | null = null;
  private meta: ThreadMeta | undefined;
  /** meta.members as a set (a group has up to MAX_GROUP_MEMBERS: no scan per receipt or send). */
  private memberSet: ReadonlySet<string> = new Set();
  private lastSeq: number;
  private lastEseq: number;
  /** First seq / eseq whose fan-out some member has not confirmed; 0 when none. */
  private pending: { seq: number; eseq: number };
  /**
   * The fan-out mark LMDB holds (null: none): at or before `pending`, so recovery after a crash
   * re-sends at least everything unconfirmed. It is cleared lazily — when it lags MARK_SLACK
   * entries behind, or when the shard quiesces the idle thread (before passivation and at stop) —
   * so a busy thread writes it about once per MARK_SLACK messages, not twice per message.
   */
  private mark: { seq: number; eseq: number } | null;
  /** Authors of the newest messages (seq authorsFrom + i), for receipts without a log scan. */
  private readonly authors: string[] = [];
  private authorsFrom: number;
  private readonly logged = new Map<string, { seq: number; eseq: number }>();
  /** Members whose log does not yet confirm the newest seq/eseq: cleared one by one, O(1) each. */
  private awaiting = new Set<string>();
  /** Sends not yet committed, by user + cid: a resend racing its original must not fork. */
  private readonly uncommitted = new Map<string, DedupeRecord>();
  private readonly marks = new Map<string, Watermarks>();
  /** Receipt changes of this batch, sent once at its end (coalesced per member): did read move,
   * and from which seq on are messages newly covered (their authors are told). */
  private readonly receiptsDue = new Map<string, { readMoved: boolean; from: number }>();
  /** Invite links to this group, made on first use (actors/invite-book.ts). */
  private invites: InviteBook | null = null;
  /** Messages written (appended or rewritten) and not yet committed, by seq: LMDB reads do not see them yet. */
  private readonly unsaved = new Map<number, StoredMessage>();
  /** Reaction changes of this batch, by seq + user, with the reaction before it: one event each at its end. */
  private readonly reactionsDue = new Map<string, { seq: number; user: string; before: string | null }>();
  /** The thread's search blocks (kept up to date on edits, deletes and retention even while SEARCH=off). */
  private readonly search: ThreadSearchIndex;

  /**
   * @param outbox webhook events (null: WEBHOOK_URL unset)
   * @param indexed maintain the search index (SEARCH=on)
   */
  constructor(
    private readonly thread: string, private readonly ctx: ActorContext, private readonly ids: MessageIdGenerator,
    private readonly outbox: EventOutbox | null = null, private readonly indexed = true,
  ) {
    this.meta = ctx.storage.db.threads.get(thread);
    if (this.meta) this.memberSet = new Set(this.meta.members);
    this.lastSeq = threadLogHead(ctx.storage, thread);
    this.lastEseq = threadEventsHead(ctx.storage, thread);
    this.mark = ctx.storage.db.fanout.get(thread) ?? null;
    this.pending = this.mark ? { ...this.mark } : { seq: 0, eseq: 0 };
    this.authorsFrom = this.lastSeq + 1;
    this.search = new ThreadSearchIndex(thread, ctx, (seq) => this.stored(seq));
  }

  canPassivate(): boolean {
    return this.pending.seq === 0 && this.pending.eseq === 0 && this.mark === null
      && this.uncommitted.size === 0 && this.receiptsDue.size === 0 && this.unsaved.size === 0 && this.reactionsDue.size === 0;
  }

  /** Idle, or the shard stops: a mark whose fan-out every member confirmed goes now. */
  quiesce(): void {
    if (this.pending.seq === 0 && this.pending.eseq === 0) this.clearMark();
  }

  receive(message: ActorMessage): unknown {
    const msg = message as ThreadActorMessage;
    switch (msg.op) {
      case 'cmd': return this.command(msg);
      case 'logged': return this.onLogged(msg);
      case 'delivered-to': return this.onDelivered(msg);
      case 'recover': return this.recover(msg);
      case 'forget': return this.forget(msg.user);
      case 'invite': return this.invite(msg);
      case 'trimmed': return this.search.trimmed(msg.floor);
      default: throw new ProtocolError(ErrorCode.bad_frame, `thread actor: unknown op ${(msg as ActorMessage).op}`);
    }
  }

  private command(cmd: ClientCommand): unknown {
    const { caller, frame } = cmd;
    switch (frame.t) {
      case Command.send: return this.send(cmd);
      case Command.history: return this.history(caller, frame);
      case Command.read: return this.read(caller, frame.seq as number);
      case Command.typing: return this.typing(caller);
      case Command.groupCreate: return this.createGroup(caller, frame.title as string, frame.members as string[], frame.cid as string | undefined);
      case Command.groupAdd: return this.addMembers(caller, frame.users as string[]);
      case Command.groupRemove: return this.removeMembers(caller, frame.users as string[]);
      case Command.groupLeave: return this.leave(caller);
      case Command.groupTitle: return this.retitle(caller, frame.title as string);
      case Command.edit: return this.edit(caller, frame.seq as number, frame.body as string, windowOf(cmd));
      case Command.delete: return this.deleteMessage(caller, frame.seq as number, frame.forEveryone as boolean, windowOf(cmd));
      case Command.react: return this.react(caller, frame.seq as number, frame.emoji as string);
      case Command.unreact: return this.react(caller, frame.seq as number, null);
      case Command.forward: return this.forward(cmd);
      default: throw new ProtocolError(ErrorCode.bad_frame, `unknown command ${frame.t}`);
    }
  }

  // ---- messages ----

  private send(cmd: ClientCommand): object {
    const { thread, seq, id, ts } = this.append(cmd);
    return { thread, seq, id, ts: wireTime(ts) };
  }

  /** Appends a message once per user + cid; a resend gets the first result. */
  private append({ caller, frame, bot }: ClientCommand): DedupeRecord {
    const cid = frame.cid as string;
    const dedupeKey = `${caller.user}\u0000${cid}`;
    const seen = this.uncommitted.get(dedupeKey) ?? this.ctx.storage.db.dedupe.get([this.thread, caller.user, cid]);
    if (seen) return seen;

    this.refuseIfBlocked(caller.user);
    const meta = this.meta ?? this.createDirect(caller.user, frame.to as string | undefined);
    this.requireMember(caller.user);

    // A reply to a seq must name a message the sender can see (before the seq is taken).
    const replied = typeof frame.reply === 'number' ? this.visibleMessage(caller.user, frame.reply) : undefined;
    const ts = Date.now();
    const msg: StoredMessage = { seq: ++this.lastSeq, id: this.ids.next(ts), from: caller.user, device: caller.device, ts, cid };
    if (frame.body !== undefined) msg.body = frame.body as string;
    if (frame.media !== undefined) msg.media = frame.media as MediaObject;
    if (typeof frame.reply === 'string') msg.reply = frame.reply; // v1: a message id, kept as given
    else if (replied) {
      msg.reply = replied.id;
      msg.replySeq = replied.seq;
    }
    if (frame.forwarded === true) msg.forwarded = true;
    if (bot === true) msg.bot = true;
    const result: DedupeRecord = { thread: this.thread, seq: msg.seq, id: msg.id, ts };

    const { db } = this.ctx.storage;
    this.ctx.put(db.threadLog, [this.thread, msg.seq], msg);
    if (this.indexed) this.search.added(msg.seq, msg.body);
    this.ctx.put(db.dedupe, [this.thread, caller.user, cid], result);
    // Who may download the media: the thread's members (src/media/media-library.ts, readable).
    if (msg.media !== undefined) this.ctx.put(db.mediaRefs, [msg.media.id, this.thread, msg.seq], null);
    this.outbox?.emit(this.ctx, 'message.created', ts, () => messageData(this.thread, msg));
    this.uncommitted.set(dedupeKey, result);
    this.unsaved.set(msg.seq, msg);
    // From the commit on, the dedupe table and the log answer.
    this.ctx.afterCommit(() => {
      this.uncommitted.delete(dedupeKey);
      if (this.unsaved.get(msg.seq) === msg) this.unsaved.delete(msg.seq);
    });
    this.markPending(msg.seq, 0);
    this.rememberAuthor(msg.seq, msg.from);
    this.ctx.tellMany(meta.members.map(userAddress), { op: 'deliver', thread: this.thread, msg });
    return result;
  }

  private history(caller: Caller, frame: ClientCommand['frame']): { messages: unknown[]; more: boolean } {
    const meta = this.meta ?? fail(ErrorCode.not_found, 'no such thread');
    this.requireMember(caller.user);
    const limit = (frame.limit as number | undefined) ?? 50;
    let after = frame.after as number | undefined;
    let before = after === undefined ? (frame.before as number | undefined) : undefined;
    const messages: unknown[] = [];
    let more = false;
    // Messages the caller deleted for themselves are skipped; the page is filled from beyond them.
    for (;;) {
      const page = readThreadLog(this.ctx.storage, this.thread, { before, after, limit: limit - messages.length, floor: meta.joined[caller.user] ?? 0 });
      for (const stored of page.messages) {
        const m = this.unsaved.get(stored.seq) ?? stored;
        if (m.hiddenFor?.includes(caller.user)) continue;
        const view = messageView(this.thread, m, caller.user);
        if (m.replySeq !== undefined) {
          const original = this.stored(m.replySeq);
          if (original) view.quote = quoteOf(original);
        }
        messages.push(view);
      }
      more = page.more;
      const last = page.messages[page.messages.length - 1];
      if (!more || messages.length >= limit || !last) break;
      if (after !== undefined) after = last.seq;
      else before = last.seq;
    }
    return { messages, more };
  }

  // ---- message lifecycle (docs/protocol.md "Message lifecycle") ----

  /** A message as the thread has it now, this batch's rewrites included; undefined if never written or swept. */
  private stored(seq: number): StoredMessage | undefined {
    if (seq > this.lastSeq || seq <= logFloor(this.ctx.storage, 'thread', this.thread)) return undefined;
    return this.unsaved.get(seq) ?? this.ctx.storage.db.threadLog.get([this.thread, seq]);
  }

  /** The message, if `user` can see it: after their join, not deleted for them (nor for everyone, unless `tombstones`). */
  private visibleMessage(user: string, seq: number, tombstones = false): StoredMessage {
    const m = seq > (this.meta?.joined[user] ?? 0) ? this.stored(seq) : undefined;
    if (!m || m.hiddenFor?.includes(user) || (m.deleted !== undefined && !tombstones)) return fail(ErrorCode.not_found, `no message ${seq} in this thread`);
    return m;
  }

  /** Writes a new version of a message (messages are never mutated: fan-out shares them read-only). */
  private rewrite(msg: StoredMessage): void {
    this.ctx.put(this.ctx.storage.db.threadLog, [this.thread, msg.seq], msg);
    this.unsaved.set(msg.seq, msg);
    this.ctx.afterCommit(() => {
      if (this.unsaved.get(msg.seq) === msg) this.unsaved.delete(msg.seq);
    });
  }

  private requireWithinWindow(m: StoredMessage, windowMs: number, what: string): void {
    if (Date.now() - m.ts >= windowMs) fail(ErrorCode.forbidden, `too late to ${what}: the window (EDIT_WINDOW, ${Math.round(windowMs / 1000)} s after sending) has passed`);
  }

  private edit(caller: Caller, seq: number, body: string, windowMs: number): { edited: number } {
    this.meta ?? fail(ErrorCode.not_found, 'no such thread');
    this.requireMember(caller.user);
    const m = this.visibleMessage(caller.user, seq);
    if (m.from !== caller.user) fail(ErrorCode.forbidden, 'only its author may edit a message');
    this.requireWithinWindow(m, windowMs, 'edit this message');
    const edited = Date.now();
    this.rewrite({ ...m, body, edited });
    this.search.changed(seq);
    this.emitMessageEvent('edit', caller.user, seq, edited, { body });
    return { edited: wireTime(edited) };
  }

  private deleteMessage(caller: Caller, seq: number, forEveryone: boolean, windowMs: number): { deleted: number } {
    const meta = this.meta ?? fail(ErrorCode.not_found, 'no such thread');
    this.requireMember(caller.user);
    const m = this.visibleMessage(caller.user, seq, true);
    const now = Date.now();
    if (!forEveryone) {
      this.rewrite({ ...m, hiddenFor: [...(m.hiddenFor ?? []), caller.user] });
      this.emitMessageEvent('deleted', caller.user, seq, now, { only: [caller.user], mine: true });
      return { deleted: wireTime(now) };
    }
    if (m.deleted !== undefined) return { deleted: wireTime(m.deleted) }; // already a tombstone
    const admin = meta.kind === 'group' && meta.admins.includes(caller.user);
    if (m.from !== caller.user && !admin) fail(ErrorCode.forbidden, 'only its author (or a group admin) may delete a message for everyone');
    if (!admin) this.requireWithinWindow(m, windowMs, 'delete this message for everyone');
    // The tombstone keeps what the log's bookkeeping needs: cid (dedupe, swept with it), who hid it.
    const tombstone: StoredMessage = { seq: m.seq, id: m.id, from: m.from, device: m.device, ts: m.ts, deleted: now };
    if (m.cid !== undefined) tombstone.cid = m.cid;
    if (m.hiddenFor) tombstone.hiddenFor = m.hiddenFor;
    this.rewrite(tombstone);
    this.search.changed(seq);
    // No message carries the media any more: the media sweeper treats it as unreferenced.
    if (m.media !== undefined) this.ctx.remove(this.ctx.storage.db.mediaRefs, [m.media.id, this.thread, m.seq]);
    this.emitMessageEvent('deleted', caller.user, seq, now, {});
    return { deleted: wireTime(now) };
  }

  /** One reaction per user per message; null takes it back. Announced once per batch (flushReactions). */
  private react(caller: Caller, seq: number, emoji: string | null): void {
    this.meta ?? fail(ErrorCode.not_found, 'no such thread');
    this.requireMember(caller.user);
    const m = this.visibleMessage(caller.user, seq);
    const before = m.reactions?.[caller.user] ?? null;
    if (before === emoji) return;
    const reactions = { ...m.reactions };
    if (emoji === null) delete reactions[caller.user];
    else reactions[caller.user] = emoji;
    const next: StoredMessage = { ...m };
    if (Object.keys(reactions).length > 0) next.reactions = reactions;
    else delete next.reactions;
    this.rewrite(next);
    const key = `${seq}\u0000${caller.user}`;
    if (!this.reactionsDue.has(key)) this.reactionsDue.set(key, { seq, user: caller.user, before });
    this.ctx.defer(this.flushReactions);
  }

  /** One `reaction` event per changed (message, user) of the batch, with the final state; none if it ended as it began. */
  private readonly flushReactions = (): void => {
    for (const { seq, user, before } of this.reactionsDue.values()) {
      const m = this.stored(seq);
      const now = m?.reactions?.[user] ?? null;
      if (!m || now === before || !this.memberSet.has(user)) continue;
      this.emitMessageEvent('reaction', user, seq, Date.now(), { emoji: now });
    }
    this.reactionsDue.clear();
  };

  /**
   * Copies a message the caller can read (a member, after their join, not deleted) into this
   * thread, as a send with the same cid rules, marked forwarded. The source thread's entries are
   * read from LMDB (committed state); only this thread is written.
   */
  private forward(cmd: ClientCommand): object {
    const { caller, frame } = cmd;
    const from = frame.from as { thread: string; seq: number };
    const to = frame.to as { thread?: string; to?: string };
    const cid = frame.cid as string;
    const seen = this.uncommitted.get(`${caller.user}\u0000${cid}`) ?? this.ctx.storage.db.dedupe.get([this.thread, caller.user, cid]);
    const src = seen ? undefined : this.readableElsewhere(caller.user, from.thread, from.seq);
    const send: ClientCommand['frame'] = { t: Command.send, cid, forwarded: true };
    if (to.to !== undefined) send.to = to.to;
    if (src?.body !== undefined) send.body = src.body;
    if (src?.media !== undefined) send.media = src.media;
    const { thread, seq, id, ts } = this.append({ ...cmd, frame: send });
    return { thread, seq, id, ts: wireTime(ts) };
  }

  /** A message of any thread that `user` may read (forward's source). */
  private readableElsewhere(user: string, thread: string, seq: number): StoredMessage {
    if (thread === this.thread) {
      this.meta ?? fail(ErrorCode.not_found, 'no such thread');
      this.requireMember(user);
      return this.visibleMessage(user, seq);
    }
    const { db } = this.ctx.storage;
    const meta = db.threads.get(thread) ?? fail(ErrorCode.not_found, 'from: no such thread');
    if (!meta.members.includes(user)) fail(ErrorCode.forbidden, 'from: not a member of that thread');
    const m = seq > (meta.joined[user] ?? 0) && seq > logFloor(this.ctx.storage, 'thread', thread) ? db.threadLog.get([thread, seq]) : undefined;
    if (!m || m.deleted !== undefined || m.hiddenFor?.includes(user)) fail(ErrorCode.not_found, `from: no message ${seq} in that thread`);
    return m!;
  }

  /**
   * A change to message `seq`, as a thread event: told to every member (each confirms it, so the
   * fan-out mark clears), logged by those who can see the message (not `except`; `only`, if set).
   */
  private emitMessageEvent(event: MessageEventKind, by: string, seq: number, ts: number, extra: { body?: string; emoji?: string | null; only?: string[]; mine?: true }): void {
    const meta = this.meta!;
    const record: ThreadEvent = { eseq: ++this.lastEseq, event, by, ts, seq, ...extra };
    if (!record.only && meta.kind === 'group') {
      // Usually few or none: the members who joined after the message (listed, not the readers).
      const later = meta.members.filter((u) => (meta.joined[u] ?? 0) >= seq);
      if (later.length > 0) record.except = later;
    }
    this.ctx.put(this.ctx.storage.db.threadEvents, [this.thread, record.eseq], record);
    if (!record.mine) this.outbox?.emit(this.ctx, MESSAGE_EVENT_TYPES[event], ts, () => messageEventData(this.thread, record));
    this.markPending(0, record.eseq);
    this.ctx.tellMany(meta.members.map(userAddress), { op: 'event', thread: this.thread, event: record });
  }

  /** A 1:1 thread comes into being with its first message, sent by `to`. */
  private createDirect(sender: string, to: string | undefined): ThreadMeta {
    const pair = directMembers(this.thread);
    if (!pair || to === undefined) return fail(ErrorCode.not_found, 'no such thread');
    const other = pair[0] === sender ? pair[1] : pair[0];
    if (!liveUser(this.ctx.storage.db.users.get(other))) fail(ErrorCode.not_found, 'no such user');
    const members = pair[0] === pair[1] ? [pair[0]] : [...pair];
    const meta: ThreadMeta = { thread: this.thread, kind: 'direct', members, admins: [], title: '', created: Date.now(), joined: {} };
    this.saveMeta(meta);
    return meta;
  }

  // ---- receipts and typing ----

  private read(caller: Caller, seq: number): void {
    const meta = this.meta ?? fail(ErrorCode.not_found, 'no such thread');
    this.requireMember(caller.user);
    const marks = this.watermarksOf(caller.user);
    const upTo = Math.min(seq, this.lastSeq);
    // Reading implies delivery; neither ever moves backwards.
    if (upTo <= marks.read) return;
    this.saveWatermarks(caller.user, { read: upTo, delivered: Math.max(marks.delivered, upTo) }, true, marks.read);
  }

  /** A member's device acked (stored) messages of this thread up to seq. */
  private onDelivered({ user, seq }: DeliveredTo): void {
    if (!this.memberSet.has(user)) return;
    const marks = this.watermarksOf(user);
    const upTo = Math.min(seq, this.lastSeq);
    if (upTo <= marks.delivered) return;
    this.saveWatermarks(user, { ...marks, delivered: upTo }, false, marks.delivered);
  }

  private saveWatermarks(user: string, marks: Watermarks, readMoved: boolean, coveredFrom: number): void {
    this.marks.set(user, marks);
    this.ctx.put(this.ctx.storage.db.watermarks, [this.thread, user], marks);
    this.ctx.defer(this.flushReceipts);
    const due = this.receiptsDue.get(user);
    this.receiptsDue.set(user, { readMoved: readMoved || (due?.readMoved ?? false), from: Math.min(coveredFrom, due?.from ?? coveredFrom) });
  }

  /**
   * One receipt event per changed member per batch, with the newest watermarks, to the authors
   * of the messages it newly covers (they are the ones who care: a group's receipts stay linear
   * in its size, not quadratic) — and to the member's own devices when `read` moved, so they all
   * clear unread.
   */
  private readonly flushReceipts = (): void => {
    const members = this.memberSet;
    for (const [user, { readMoved, from }] of this.receiptsDue) {
      const { delivered, read } = this.watermarksOf(user);
      const to = this.authorsBetween(from, Math.max(delivered, read), user);
      if (readMoved) to.add(user);
      const addresses = [...to].filter((u) => members.has(u)).map(userAddress);
      if (addresses.length > 0) this.ctx.tellMany(addresses, { op: 'receipt', thread: this.thread, user, delivered, read });
    }
    this.receiptsDue.clear();
  };

  /** Who wrote messages in (from, to], other than `reader`. A very long range tells everyone. */
  private authorsBetween(from: number, to: number, reader: string): Set<string> {
    if (to - from > MAX_RECEIPT_SCAN) return new Set(this.meta?.members ?? []);
    const authors = new Set<string>();
    if (from + 1 >= this.authorsFrom && to < this.authorsFrom + this.authors.length) {
      for (let seq = from + 1; seq <= to; seq++) {
        const author = this.authors[seq - this.authorsFrom];
        if (author !== reader) authors.add(author);
      }
      return authors;
    }
    for (const { value } of this.ctx.storage.db.threadLog.getRange({ start: [this.thread, from + 1], end: [this.thread, to + 1] })) {
      if (value.from !== reader) authors.add(value.from);
    }
    return authors;
  }

  /** Keeps the author of the newest AUTHOR_WINDOW messages (seq arrives in order, one by one). */
  private rememberAuthor(seq: number, from: string): void {
    if (seq !== this.authorsFrom + this.authors.length) {
      this.authors.length = 0;
      this.authorsFrom = seq;
    }
    this.authors.push(from);
    if (this.authors.length > AUTHOR_WINDOW) {
      this.authors.splice(0, this.authors.length - AUTHOR_WINDOW / 2);
      this.authorsFrom = seq - this.authors.length + 1;
    }
  }

  private watermarksOf(user: string): Watermarks {
    let marks = this.marks.get(user);
    if (!marks) {
      marks = this.ctx.storage.db.watermarks.get([this.thread, user]) ?? { delivered: 0, read: 0 };
      this.marks.set(user, marks);
    }
    return marks;
  }

  private typing(caller: Caller): void {
    const meta = this.meta ?? fail(ErrorCode.not_found, 'no such thread');
    this.requireMember(caller.user);
    const others = meta.members.filter((m) => m !== caller.user).map(userAddress);
    this.ctx.tellMany(others, { op: 'typing', thread: this.thread, user: caller.user });
  }

  // ---- groups ----

  private createGroup(caller: Caller, title: string, invited: string[], cid: string | undefined): { thread: string } {
    if (this.meta) {
      // The id is derived from creator + cid: this is a retry of a create that already happened.
      if (cid !== undefined && this.meta.createdBy === caller.user && this.meta.cid === cid) return { thread: this.thread };
      fail(ErrorCode.conflict, 'thread exists');
    }
    const members = unique([caller.user, ...invited]);
    if (members.length > MAX_GROUP_MEMBERS) fail(ErrorCode.too_large, `a group has at most ${MAX_GROUP_MEMBERS} members`);
    this.requireUsersExist(members);
    const joined = Object.fromEntries(members.map((m) => [m, 0]));
    const meta: ThreadMeta = { thread: this.thread, kind: 'group', members, admins: [caller.user], title, created: Date.now(), joined, createdBy: caller.user };
    if (cid !== undefined) meta.cid = cid;
    this.saveMeta(meta);
    this.emitEvent('created', caller.user, members, { users: members, title });
    return { thread: this.thread };
  }

  private addMembers(caller: Caller, users: string[]): void {
    const meta = this.requireAdmin(caller.user);
    const added = unique(users).filter((u) => !meta.members.includes(u));
    if (added.length === 0) return;
    if (meta.members.length + added.length > MAX_GROUP_MEMBERS) fail(ErrorCode.too_large, `a group has at most ${MAX_GROUP_MEMBERS} members`);
    this.requireUsersExist(added);
    const joined = { ...meta.joined };
    for (const u of added) joined[u] = this.lastSeq; // they see history from here on
    const members = [...meta.members, ...added];
    this.saveMeta({ ...meta, members, joined });
    this.emitEvent('added', caller.user, members, { users: added });
  }

  private removeMembers(caller: Caller, users: string[]): void {
    const meta = this.requireAdmin(caller.user);
    const removed = unique(users).filter((u) => meta.members.includes(u));
    if (removed.length === 0) return;
    const members = meta.members.filter((m) => !removed.includes(m));
    this.saveMeta(this.withoutMembers(meta, members, removed));
    this.emitEvent('removed', caller.user, [...members, ...removed], { users: removed });
  }

  private leave(caller: Caller): void {
    const meta = this.requireGroup();
    this.requireMember(caller.user);
    const members = meta.members.filter((m) => m !== caller.user);
    this.saveMeta(this.withoutMembers(meta, members, [caller.user]));
    this.emitEvent('left', caller.user, [...members, caller.user], {});
  }

  /** Invite links (actors/invite-book.ts): admins create them; a join adds the caller like group.add, by themselves. */
  private invite(msg: InviteOp): unknown {
    const meta = this.requireGroup();
    return (this.invites ??= new InviteBook(this.ctx)).handle(msg, {
      kind: 'group', id: this.thread, title: meta.title, members: meta.members.length,
      isAdmin: (u) => this.memberSet.has(u) && meta.admins.includes(u),
      isMember: (u) => this.memberSet.has(u),
      add: (u) => {
        if (meta.members.length >= MAX_GROUP_MEMBERS) fail(ErrorCode.too_large, `a group has at most ${MAX_GROUP_MEMBERS} members`);
        const members = [...meta.members, u];
        this.saveMeta({ ...meta, members, joined: { ...meta.joined, [u]: this.lastSeq } }); // history from here on
        this.emitEvent('added', u, members, { users: [u] });
      },
    });
  }

  /** A deleted account leaves its groups like a member who leaves (actors/account-deletion.ts). */
  private forget(user: string): void {
    if (this.meta?.kind === 'direct' && this.memberSet.has(user)) this.partnerDeleted = true;
    if (this.meta?.kind === 'group' && this.memberSet.has(user)) this.leave({ user, device: '' });
  }

  private retitle(caller: Caller, title: string): void {
    const meta = this.requireGroup();
    this.requireMember(caller.user);
    if (title === meta.title) return;
    this.saveMeta({ ...meta, title });
    this.emitEvent('title', caller.user, meta.members, { title });
  }

  /** Drops members; a group never stays without an admin (the longest-standing member gets it). */
  private withoutMembers(meta: ThreadMeta, members: string[], gone: string[]): ThreadMeta {
    const joined = { ...meta.joined };
    for (const u of gone) delete joined[u];
    let admins = meta.admins.filter((a) => !gone.includes(a));
    if (admins.length === 0 && members.length > 0) admins = [members[0]];
    for (const u of gone) this.marks.delete(u);
    return { ...meta, members, admins, joined };
  }

  private emitEvent(event: Exclude<ThreadEventKind, MessageEventKind>, by: string, to: string[], extra: { users?: string[]; title?: string }): void {
    const record: ThreadEvent = { eseq: ++this.lastEseq, event, by, ts: Date.now(), to, ...extra };
    this.ctx.put(this.ctx.storage.db.threadEvents, [this.thread, record.eseq], record);
    this.outbox?.emit(this.ctx, GROUP_EVENT_TYPES[event], record.ts, () => groupEventData(this.thread, record));
    this.markPending(0, record.eseq);
    this.ctx.tellMany(to.map(userAddress), { op: 'event', thread: this.thread, event: record });
  }

  // ---- fan-out bookkeeping ----

  private markPending(seq: number, eseq: number): void {
    // Everyone must confirm the newest entry again (a member who joined after the newest
    // message only owes the events, which onLogged accounts for).
    this.awaiting = new Set(this.meta?.members ?? []);
    const before = this.pending;
    this.pending = { seq: before.seq || seq, eseq: before.eseq || eseq };
    // The mark on disk must be at or before what is pending; an older one covers it already.
    const m = this.mark;
    if (!m || (this.pending.seq && !m.seq) || (this.pending.eseq && !m.eseq)) {
      this.mark = { seq: m?.seq || this.pending.seq, eseq: m?.eseq || this.pending.eseq };
      this.ctx.put(this.ctx.storage.db.fanout, this.thread, this.mark);
    }
  }

  /** Every member confirmed: the mark goes now if it lags far behind, else when the thread is quiesced. */
  private confirmedAll(): void {
    this.pending = { seq: 0, eseq: 0 };
    const m = this.mark;
    if (!m) return;
    const lag = Math.max(m.seq ? this.lastSeq - m.seq : 0, m.eseq ? this.lastEseq - m.eseq : 0);
    if (lag >= MARK_SLACK) this.clearMark();
  }

  private clearMark(): void {
    if (!this.mark) return;
    this.mark = null;
    this.ctx.remove(this.ctx.storage.db.fanout, this.thread);
  }

  /** A member's user actor has these in its log. */
  private onLogged({ user, seq, eseq }: Logged): void {
    const prev = this.logged.get(user) ?? { seq: 0, eseq: 0 };
    this.logged.set(user, { seq: Math.max(prev.seq, seq), eseq: Math.max(prev.eseq, eseq) });
    if ((this.pending.seq === 0 && this.pending.eseq === 0) || !this.meta) return;
    if (this.awaiting.has(user) && this.hasNewest(user)) this.awaiting.delete(user);
    if (this.awaiting.size > 0) return;
    this.confirmedAll();
  }

  /** Does the member's log have the newest message (if it is theirs to have) and event? */
  private hasNewest(user: string): boolean {
    const l = this.logged.get(user) ?? { seq: 0, eseq: 0 };
    const joinedAt = this.meta?.joined[user] ?? 0;
    const seqDone = !this.pending.seq || l.seq >= this.lastSeq || joinedAt >= this.lastSeq;
    const eseqDone = !this.pending.eseq || l.eseq >= this.lastEseq;
    return seqDone && eseqDone;
  }

  /**
   * After a restart: deliver again everything not confirmed (user actors skip what they have).
   * One page per turn, events before messages, each entry told once per shard (tellMany); a
   * tell to itself goes on after the page, so a long unconfirmed tail is never one huge turn.
   */
  private recover({ eseq, seq }: Recover): void {
    const meta = this.meta;
    if (!meta || (this.pending.seq === 0 && this.pending.eseq === 0)) return;
    if (eseq === undefined && seq === undefined) this.awaiting = new Set(meta.members);
    const self = threadAddress(this.thread);
    let eseqDone = eseq ?? (this.pending.eseq ? this.pending.eseq - 1 : this.lastEseq);
    const seqDone = seq ?? (this.pending.seq ? this.pending.seq - 1 : this.lastSeq);
    if (eseqDone < this.lastEseq) {
      let n = 0;
      const range = { start: [this.thread, eseqDone + 1] as [string, number], end: [this.thread, Number.MAX_SAFE_INTEGER] as [string, number], limit: RECOVER_PAGE };
      for (const { value: event } of this.ctx.storage.db.threadEvents.getRange(range)) {
        this.ctx.tellMany((event.to ?? meta.members).map(userAddress), { op: 'event', thread: this.thread, event });
        eseqDone = event.eseq;
        n++;
      }
      if (n === RECOVER_PAGE) return this.ctx.tell(self, { op: 'recover', eseq: eseqDone, seq: seqDone });
      eseqDone = this.lastEseq;
    }
    if (seqDone >= this.lastSeq) return;
    const page = readThreadLog(this.ctx.storage, this.thread, { after: seqDone, limit: RECOVER_PAGE });
    for (const msg of page.messages) {
      const to = meta.members.filter((member) => (meta.joined[member] ?? 0) < msg.seq).map(userAddress);
      if (to.length > 0) this.ctx.tellMany(to, { op: 'deliver', thread: this.thread, msg });
    }
    const last = page.messages[page.messages.length - 1];
    if (page.more && last) this.ctx.tell(self, { op: 'recover', eseq: eseqDone, seq: last.seq });
  }

  // ---- checks ----

  /** Callers hold this.meta (loaded, or just created): its members are memberSet. */
  /** A 1:1 message to someone who blocked the sender is forbidden (docs/protocol.md §8.2); groups are unaffected. */
  private refuseIfBlocked(sender: string): void {
    const pair = directMembers(this.thread);
    if (!pair || pair[0] === pair[1] || (sender !== pair[0] && sender !== pair[1])) return;
    const other = pair[0] === sender ? pair[1] : pair[0];
    if (this.ctx.storage.db.blocks.get([other, sender])) fail(ErrorCode.forbidden, 'this user does not accept your messages');
    // Read once per activation: an account deletion tells its threads (forget), which sets it.
    this.partnerDeleted ??= this.ctx.storage.db.users.get(other)?.deleted !== undefined;
    if (this.partnerDeleted) fail(ErrorCode.forbidden, 'this account was deleted');
  }

  private requireMember(user: string): void {
    if (!this.memberSet.has(user)) fail(ErrorCode.forbidden, 'not a member of this thread');
  }

  private requireGroup(): ThreadMeta {
    const meta = this.meta ?? fail(ErrorCode.not_found, 'no such thread');
    if (meta.kind !== 'group') fail(ErrorCode.bad_frame, 'not a group');
    return meta;
  }

  private requireAdmin(user: string): ThreadMeta {
    const meta = this.requireGroup();
    this.requireMember(user);
    if (!meta.admins.includes(user)) fail(ErrorCode.forbidden, 'only admins may do this');
    return meta;
  }

  private requireUsersExist(users: string[]): void {
    for (const u of users) if (!liveUser(this.ctx.storage.db.users.get(u))) fail(ErrorCode.not_found, `no such user ${u}`);
  }

  private saveMeta(meta: ThreadMeta): void {
    this.meta = meta;
    this.memberSet = new Set(meta.members);
    this.ctx.put(this.ctx.storage.db.threads, this.thread, meta);
  }
}

const unique = (xs: string[]): string[] => [...new Set(xs)];
/** The author's edit (and delete-for-everyone) window, as the gateway passed it (EDIT_WINDOW). */
const windowOf = (cmd: ClientCommand): number => (typeof cmd.editWindowMs === 'number' ? cmd.editWindowMs : DEFAULT_EDIT_WINDOW_MS);
const DEFAULT_EDIT_WINDOW_MS = 48 * 3_600_000;
/** Receipts covering more messages than this go to every member instead of scanning for authors. */
const MAX_RECEIPT_SCAN = 2000;
/** Crash recovery re-sends this many unconfirmed messages (or events) per turn. */
const RECOVER_PAGE = 256;
/** A fan-out mark this many entries behind the newest is cleared (rewritten) without waiting. */
const MARK_SLACK = 256;
/** Authors remembered for receipts (older ranges are read from the log). */
const AUTHOR_WINDOW = 64;
