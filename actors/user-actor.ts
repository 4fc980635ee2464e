// The user actor: the user's event log (u) and everything that hangs off it — device cursors,
// online sockets, inbox rows (unread, mute, nickname), contacts, presence and its watchers, and
// the delivered receipts that acks imply. Every durable event for the user is appended here,
// then pushed live.
import { CloseCode, Command, ErrorCode, ServerFrame } from '../protocol/codes.js';
import { fail, ProtocolError } from '../protocol/errors.js';
import { newDeviceId } from '../protocol/ids.js';
import { decodeFrame, encodeFrame, encodeShared, wireTime, withU } from '../protocol/wire.js';
import type { BanRecord, InboxRow, LastSeenVisibility, PushRegistration, StoredMessage, ThreadEvent, ThreadMeta } from '../storage/env.js';
import { messageView } from './message-view.js';
import { hiddenPresence, presenceOf, presenceVisible, type PresenceState } from '../storage/presence.js';
import { readUserLog, userLogFirst, userLogHead } from '../storage/user-log.js';
import type { Actor, ActorContext } from './actor.js';
import type { ActorMessage } from './envelope.js';
import type {
  Ack, Attach, AttachResult, ClientCommand, Login, LoginResult, Deliver, Detach, EventDeliver, Expire, Receipt, Replay, ReplayResult, Revoke, Typing, UserActorMessage, Watch, PushRegister, PushUnregister,
  ChangePassword, SessionExpired, Touch, Ban, PresenceNow,
} from './messages.js';
import { AccountDeletion, goOn, liveUser, tombstone } from './account-deletion.js';
import { cancelScheduled, listScheduled, schedule, type ScheduleFrame } from './scheduled-messages.js';
import { searchMessages, type SearchQuery } from './message-search.js';
import { logFloor } from '../storage/retention.js';
import { threadAddress, userAddress } from './router.js';
import type { EventOutbox } from '../src/webhooks/events.js';

interface Socket { gateway: number; conn: number; device: string }
/** A logged frame not known to be committed; thread and seq for a message from someone else. */
interface Unflushed { u: number; bytes: Uint8Array; thread?: string; seq?: number }
/** A socket watching this user's presence; `visible`: may its user see it (privacy, blocks)? */
interface Watcher { gateway: number; conn: number; viewer: string; visible: boolean }

/** Going offline is announced only after this long without a socket (a reconnect within it is no event). */
export const PRESENCE_COALESCE_MS = 1000;
/** Unacked messages from others tracked for delivered receipts (beyond, the log is read back). */
const MAX_TRACKED_FROM_OTHERS = 4096;
/** A replay answer carries at most this many bytes of frames (the rest comes with the next ask). */
const REPLAY_BYTES = 256 * 1024;

export class UserActor implements Actor {
  private head: number;
  private readonly address: string;
  private readonly sockets: Socket[] = [];
  private readonly watchers: Watcher[] = [];
  private readonly inbox = new Map<string, InboxRow>();
  private readonly cursors = new Map<string, number>();
  /** Rows changed in this batch. */
  private readonly dirty = new Set<string>();
  /**
   * The inbox order (thread → updated), read from the rows at the first `inbox` of this
   * activation and kept up to date from then on. Kept in memory rather than as an index in
   * LMDB: that index cost two more writes per message per member, for a query a device makes
   * when it opens.
   */
  private order: Map<string, number> | null = null;
  /** Per thread, the newest seq/eseq logged in this batch: confirmed to the thread at its end. */
  private readonly toConfirm = new Map<string, { seq: number; eseq: number }>();
  /** The highest u any device acked: delivered receipts are sent up to here. */
  private deliveredU: number;
  private announcedOnline: boolean;
  private lastOffline: number;
  private presenceTimer: NodeJS.Timeout | null = null;
  /** Appended frames whose commit has not been seen yet: replay serves them from here. */
  private readonly unflushed: Unflushed[] = [];
  /**
   * Messages from others logged since `fromOthersSince`, oldest first, not yet acked by any
   * device: an ack turns them into delivered receipts without reading the log back. Bounded;
   * past the bound (a device that never acks) the log is read instead.
   */
  private readonly fromOthers: { u: number; thread: string; seq: number }[] = [];
  private fromOthersSince: number;
  /** Devices logged out by this activation: refused at once, before their removal is committed. */
  private readonly revoked = new Set<string>();
  /** This user's lastSeen setting (lazily read). */
  private privacy: LastSeenVisibility | null = null;
  /** Devices with a push registration (lazily read; see pushDevices). */
  private pushRegistered: Map<string, PushRegistration> | null = null;
  /** The account is deleted (or being deleted): nothing is logged or stored for it any more. */
  private deleted: boolean;
  private deletion: AccountDeletion | null = null;
  /** Banned through the server API (read at activation): attach and login are refused. */
  private ban: BanRecord | undefined;

  /** @param outbox webhook events (null: WEBHOOK_URL unset) */
  constructor(private readonly user: string, private readonly ctx: ActorContext, private readonly outbox: EventOutbox | null = null) {
    this.address = userAddress(user);
    this.head = userLogHead(ctx.storage, user);
    let acked = 0;
    for (const { value } of ctx.storage.db.cursors.getRange({ start: [user, ''], end: [user, '\uffff'] })) acked = Math.max(acked, value.u);
    this.deliveredU = acked;
    this.fromOthersSince = this.head + 1;
    const p = presenceOf(ctx.storage, ctx.boot, user);
    this.announcedOnline = p.online;
    this.lastOffline = p.last;
    this.deleted = ctx.storage.db.users.get(user)?.deleted !== undefined || ctx.storage.db.deletions.get(user) !== undefined;
    this.ban = ctx.storage.db.bans.get(user);
  }

  canPassivate(): boolean {
    return this.sockets.length === 0 && this.watchers.length === 0 && this.presenceTimer === null && this.dirty.size === 0 && this.unflushed.length === 0;
  }

  registrations(): { sockets: number; watchers: number } {
    return { sockets: this.sockets.length, watchers: this.watchers.length };
  }

  receive(message: ActorMessage): unknown {
    const msg = message as UserActorMessage;
    if (this.deleted) return this.receiveDeleted(msg);
    switch (msg.op) {
      case 'deliver': return this.deliver(msg);
      case 'event': return this.threadEvent(msg);
      case 'receipt': return this.receipt(msg);
      case 'typing': return this.typing(msg);
      case 'attach': return this.attach(msg);
      case 'replay': return this.replay(msg);
      case 'detach': return this.detach(msg);
      case 'ack': return this.ack(msg);
      case 'login': return this.login(msg);
      case 'app-device': return this.appDevice(msg.device, msg.name);
      case 'revoke': return this.revoke(msg);
      case 'watch': return this.watch(msg);
      case 'unwatch': return this.unwatch(msg);
      case 'presence-flush': return this.flushPresence();
      case 'expire': return this.expire(msg);
      case 'push-register': return this.pushRegister(msg);
      case 'push-unregister': return this.pushUnregister(msg);
      case 'touch': return this.touchDevice(msg);
      case 'session-expired': return this.expireSession(msg);
      case 'password': return this.changePassword(msg);
      case 'delete-account': return this.deleteAccount();
      case 'delete-continue': return undefined;
      case 'cmd': return this.command(msg);
      case 'ban': return this.setBan(msg);
      case 'unban': return this.setBan(msg);
      case 'disconnect': return { sockets: this.kickAll(CloseCode.disconnected, 'disconnected by the server') };
      case 'presence': return { ...this.presenceNow(), sockets: this.sockets.length } satisfies PresenceNow;
      default: throw new ProtocolError(ErrorCode.bad_frame, `user actor: unknown op ${(msg as ActorMessage).op}`);
    }
  }

  private command({ caller, frame }: ClientCommand): unknown {
    switch (frame.t) {
      case Command.inbox: return this.inboxPage(frame.before as string | undefined, (frame.limit as number | undefined) ?? 50);
      case Command.threadGet: return this.threadRow(this.existingRow(frame.thread as string));
      case Command.threadSet: return this.setThread(frame.thread as string, frame.muted as boolean | undefined, frame.nickname as string | undefined);
      case Command.contactsAdd: return this.addContact(frame.user as string);
      case Command.contactsRemove: return this.removeContact(frame.user as string);
      case Command.contactsList: return this.listContacts();
      case Command.privacySet: return this.setPrivacy(frame.lastSeen as LastSeenVisibility);
      case Command.block: return this.block(frame.user as string);
      case Command.unblock: return this.unblock(frame.user as string);
      case Command.blocksList: return this.listBlocks();
      case Command.schedule: return schedule(this.ctx, caller, frame as unknown as ScheduleFrame);
      case Command.scheduleList: return listScheduled(this.ctx, this.user);
      case Command.scheduleCancel: return cancelScheduled(this.ctx, this.user, frame.job as string);
      case Command.search: return searchMessages(this.ctx.storage, this.user, frame as unknown as SearchQuery, () => this.inboxOrder());
      default: throw new ProtocolError(ErrorCode.bad_frame, `unknown command ${frame.t}`);
    }
  }

  // ---- the log ----

  /** Appends a thread message once (by thread + seq) and pushes it to online devices. */
  private deliver({ thread, msg }: Deliver): void {
    const row = this.inboxRow(thread);
    if (msg.seq > row.lastSeq) {
      const fromOther = msg.from !== this.user;
      const u = this.appendEncoded(msgFrame(thread, msg, !fromOther), fromOther ? thread : undefined, msg.seq);
      row.lastSeq = msg.seq;
      row.last = msg;
      if (fromOther) {
        row.unread++;
        this.trackFromOthers(u, thread, msg.seq);
        if (!row.muted) this.queuePush(thread, u, msg, row.unread);
      }
      this.touch(row, msg.ts);
    }
    // Re-deliveries after a restart are confirmed again, so the thread can clear its mark.
    this.confirm(thread, msg.seq, 0);
  }

  /** Appends a membership or title change once (by thread + eseq). */
  private threadEvent({ thread, event }: EventDeliver): void {
    if (event.seq !== undefined) return this.messageEvent(thread, event);
    const row = this.inboxRow(thread);
    if (event.eseq > row.lastEvent) {
      const frame: Record<string, unknown> = { t: ServerFrame.thread, thread, event: event.event, by: event.by };
      if (event.users) frame.users = event.users;
      if (event.title !== undefined) frame.title = event.title;
      this.append(frame);
      row.lastEvent = event.eseq;
      if (event.event === 'left' && event.by === this.user) row.member = false;
      else if (event.event === 'removed' && event.users?.includes(this.user)) row.member = false;
      else if ((event.event === 'added' || event.event === 'created') && event.users?.includes(this.user)) row.member = true;
      this.touch(row, event.ts);
    }
    this.confirm(thread, 0, event.eseq);
  }

  /**
   * An edit, delete or reaction of a message: its own frame (docs/protocol.md "Message lifecycle"),
   * once by eseq like other thread events. Members who cannot see the message only confirm it.
   */
  private messageEvent(thread: string, event: ThreadEvent): void {
    if ((event.only && !event.only.includes(this.user)) || event.except?.includes(this.user)) return this.confirm(thread, 0, event.eseq);
    const row = this.inboxRow(thread);
    if (event.eseq > row.lastEvent) {
      const seq = event.seq!;
      if (event.event === 'edit') {
        this.append({ t: ServerFrame.edit, thread, seq, body: event.body, edited: wireTime(event.ts) });
        if (row.last?.seq === seq) row.last = { ...row.last, body: event.body, edited: event.ts };
      } else if (event.event === 'deleted') {
        this.append({ t: ServerFrame.deleted, thread, seq, deleted: wireTime(event.ts), forEveryone: !event.mine });
        if (row.last?.seq === seq) {
          const { body: _b, media: _m, reactions: _r, edited: _e, reply: _rp, replySeq: _rs, ...kept } = row.last;
          if (event.mine) delete row.last;
          else row.last = { ...kept, deleted: event.ts };
        }
      } else {
        this.append({ t: ServerFrame.reaction, thread, seq, user: event.by, emoji: event.emoji ?? null });
      }
      row.lastEvent = event.eseq;
      this.touch(row, row.updated); // the row is stored again; it does not move up the inbox
    }
    this.confirm(thread, 0, event.eseq);
  }

  private receipt({ thread, user, delivered, read }: Receipt): void {
    this.append({ t: ServerFrame.receipt, thread, user, delivered, read });
    if (user !== this.user) return;
    // Our own read on some device: every device's row shows it.
    const row = this.inboxRow(thread);
    if (read > row.readSeq) {
      row.readSeq = read;
      row.unread = this.countUnread(thread, read, row.lastSeq);
      this.touch(row, row.updated);
    }
  }

  /** Encodes the event with the next u, logs it, and pushes it after the commit. */
  private append(frame: Record<string, unknown>): number {
    const u = ++this.head;
    frame.u = u;
    return this.log(u, encodeFrame(frame));
  }

  /**
   * Like append, for a frame encoded once for every member (see msgFrame). `otherThread`: the
   * thread of a message from someone else, which an unread count must see before its commit.
   */
  private appendEncoded(shared: Uint8Array, otherThread: string | undefined, seq: number): number {
    const u = ++this.head;
    return this.log(u, withU(shared, u), otherThread, seq);
  }

  private log(u: number, bytes: Uint8Array, otherThread?: string, seq?: number): number {
    this.ctx.put(this.ctx.storage.db.userLog, [this.user, u], bytes as Buffer);
    this.unflushed.push(otherThread === undefined ? { u, bytes } : { u, bytes, thread: otherThread, seq });
    this.ctx.afterCommit(() => this.committed(u));
    this.pushTo(this.sockets, bytes, u);
    return u;
  }

  private trackFromOthers(u: number, thread: string, seq: number): void {
    if (this.fromOthers.length >= MAX_TRACKED_FROM_OTHERS) {
      // Nobody acks: forget them; an ack reads the log back instead.
      this.fromOthers.length = 0;
      this.fromOthersSince = u + 1;
      return;
    }
    this.fromOthers.push({ u, thread, seq });
  }

  private committed(u: number): void {
    let n = 0;
    while (n < this.unflushed.length && this.unflushed[n].u <= u) n++;
    this.unflushed.splice(0, n);
  }

  /**
   * The log after `after`, oldest first, up to a byte budget: committed entries from LMDB, then
   * the ones still committing from memory. The answer is released after their commit (output
   * commit), so a socket never sees an entry that could still be lost, and pushes of later
   * entries always arrive after it.
   */
  private replay({ after: since }: Replay): ReplayResult {
    // Below the floor retention deleted everything: the log goes on after it.
    const after = Math.max(since, logFloor(this.ctx.storage, 'user', this.user));
    const frames: Uint8Array[] = [];
    let bytes = 0;
    let last = after;
    let from = 0;
    const full = () => bytes >= REPLAY_BYTES;
    while (!full() && last < this.head) {
      const entries = readUserLog(this.ctx.storage, this.user, last, 256);
      for (const e of entries) {
        if (from === 0) from = e.u;
        frames.push(e.frame);
        bytes += e.frame.length;
        last = e.u;
        if (full()) break;
      }
      if (entries.length < 256) break;
    }
    for (const e of this.unflushed) {
      if (full()) break;
      if (e.u !== last + 1) continue;
      if (from === 0) from = e.u;
      frames.push(e.bytes);
      bytes += e.bytes.length;
      last = e.u;
    }
    return { frames, from: from || after + 1, head: this.head };
  }

  private typing({ thread, user }: Typing): void {
    if (this.sockets.length > 0) this.pushTo(this.sockets, encodeFrame({ t: ServerFrame.typing, thread, user }), 0);
  }

  // ---- sockets and cursors ----

  private attach({ device, gateway, conn, appDevice }: Attach): AttachResult {
    this.refuseIfBanned();
    // An application JWT's device exists from its first token on (created here: not readable before the commit).
    if (appDevice !== undefined) this.appDevice(device, appDevice);
    else if (this.revoked.has(device) || !this.ctx.storage.db.devices.get([this.user, device])) fail(ErrorCode.unauthorized, 'session revoked');
    this.sockets.push({ gateway, conn, device });
    this.dropPushJobs(device); // online first: its pending notifications are moot
    // Online is announced at once; a pending offline announcement is called off, so the next
    // close waits a whole debounce again.
    if (this.sockets.length === 1) {
      if (this.presenceTimer) clearTimeout(this.presenceTimer);
      this.presenceTimer = null;
      if (!this.announcedOnline) this.announce(true);
    }
    return { head: this.head, cursor: this.cursorOf(device), first: userLogFirst(this.ctx.storage, this.user) };
  }

  private detach({ gateway, conn, device }: Detach): void {
    const i = this.sockets.findIndex((s) => s.gateway === gateway && s.conn === conn);
    if (i < 0) return;
    this.sockets.splice(i, 1);
    this.saveCursor(device, this.cursorOf(device));
    if (this.sockets.length === 0) {
      this.lastOffline = Date.now();
      this.offlineSoon();
    }
  }

  private ack({ device, u }: Ack): void {
    // A device cannot have stored what does not exist yet.
    const upTo = Math.min(u, this.head);
    if (upTo > this.cursorOf(device)) this.saveCursor(device, upTo);
    if (upTo > this.deliveredU) this.sendDeliveredReceipts(upTo);
  }

  /** Messages from others in the newly acked part of the log are delivered: tell their threads. */
  private sendDeliveredReceipts(upTo: number): void {
    const newest = new Map<string, number>();
    const note = (thread: string, seq: number) => newest.set(thread, Math.max(newest.get(thread) ?? 0, seq));
    // The part logged before what is tracked in memory is read back from the log.
    const readTo = Math.min(upTo, this.fromOthersSince - 1);
    if (readTo > this.deliveredU) {
      for (const { frame } of readUserLog(this.ctx.storage, this.user, this.deliveredU, readTo - this.deliveredU)) {
        const f = decodeFrame(frame) as { t: string; thread: string; seq: number; from: string };
        if (f.t === ServerFrame.msg && f.from !== this.user) note(f.thread, f.seq);
      }
    }
    let n = 0;
    while (n < this.fromOthers.length && this.fromOthers[n].u <= upTo) {
      note(this.fromOthers[n].thread, this.fromOthers[n].seq);
      n++;
    }
    this.fromOthers.splice(0, n);
    this.deliveredU = upTo;
    for (const [thread, seq] of newest) this.ctx.tell(threadAddress(thread), { op: 'delivered-to', user: this.user, seq });
  }

  // ---- bans and disconnects (the server API) ----

  private refuseIfBanned(): void {
    if (this.ban) fail(ErrorCode.forbidden, this.ban.reason === undefined ? 'banned' : `banned: ${this.ban.reason}`);
  }

  /** A ban is stored (durable: refused after a restart too) and closes every socket with 4004. */
  private setBan({ op, reason }: Ban): void {
    const { db } = this.ctx.storage;
    if (op === 'unban') {
      this.ban = undefined;
      this.ctx.remove(db.bans, this.user);
      return;
    }
    this.ban = reason === undefined ? { at: Date.now() } : { at: Date.now(), reason };
    this.ctx.put(db.bans, this.user, this.ban);
    this.kickAll(CloseCode.banned, reason === undefined ? 'banned' : `banned: ${reason}`);
  }

  /** Closes every socket of the user (their detach follows from the gateway); how many there were. */
  private kickAll(code: number, reason: string): number {
    for (const s of this.sockets) this.ctx.kick(s.gateway, s.conn, code, reason);
    return this.sockets.length;
  }

  /** The user's devices and sessions are this actor's keys: the edge only checks the password. */
  private login({ name, tokenHash }: Login): LoginResult {
    this.refuseIfBanned();
    const { db } = this.ctx.storage;
    const device = newDeviceId();
    const created = Date.now();
    this.ctx.put(db.devices, [this.user, device], { name, created, tokenHash });
    this.ctx.put(db.sessions, tokenHash, { user: this.user, device, created });
    return { device };
  }

  /**
   * A device of an application JWT (docs/operator-guide.md): it has no session row — the token is
   * checked at each hello — and exists from the first token naming it. A revoked one comes back,
   * with a fresh cursor, at the next valid token: the application decides who may sign in.
   */
  private appDevice(device: string, name: string): void {
    if (!this.revoked.has(device) && this.ctx.storage.db.devices.get([this.user, device])) return;
    this.revoked.delete(device);
    this.ctx.put(this.ctx.storage.db.devices, [this.user, device], { name, created: Date.now(), tokenHash: '' });
  }

  private revoke({ device }: Revoke): void {
    const record = (this.revoked.has(device) ? undefined : this.ctx.storage.db.devices.get([this.user, device])) ?? fail(ErrorCode.not_found, 'no such device');
    this.dropDevice(device, record.tokenHash, CloseCode.revoked, 'session revoked');
  }

  /** A device goes with its session, cursor and push registration; its sockets close with `code`. */
  private dropDevice(device: string, tokenHash: string, code: number, reason: string): void {
    const { db } = this.ctx.storage;
    if (tokenHash !== '') this.ctx.remove(db.sessions, tokenHash); // '': an application-token device has none
    this.ctx.remove(db.devices, [this.user, device]);
    this.revoked.add(device);
    for (const s of this.sockets) {
      if (s.device === device) this.ctx.kick(s.gateway, s.conn, code, reason);
    }
    this.cursors.delete(device);
    this.ctx.remove(db.cursors, [this.user, device]);
    this.pushUnregister({ op: 'push-unregister', device });
  }

  // ---- sessions and the account (docs/protocol.md "Sessions") ----

  /** The session authenticated (throttled by the gateway): the device record's `used`. */
  private touchDevice({ device, at }: Touch): void {
    if (this.revoked.has(device)) return;
    const record = this.ctx.storage.db.devices.get([this.user, device]);
    if (!record || (record.used ?? 0) >= at) return;
    this.ctx.put(this.ctx.storage.db.devices, [this.user, device], { ...record, used: at });
  }

  /** Lazy clean-up of a session idle past the TTL (checked again: a use may have been recorded since). */
  private expireSession({ device, ttl }: SessionExpired): void {
    if (this.revoked.has(device)) return;
    const record = this.ctx.storage.db.devices.get([this.user, device]);
    if (!record || Date.now() - (record.used ?? record.created) <= ttl) return;
    this.dropDevice(device, record.tokenHash, CloseCode.notAuthenticated, 'session expired');
  }

  /** The new credential and the logout of every other device, in one commit. */
  private changePassword({ keep, cred }: ChangePassword): void {
    const { db } = this.ctx.storage;
    if (this.revoked.has(keep) || !db.devices.get([this.user, keep])) fail(ErrorCode.unauthorized, 'session revoked');
    this.ctx.put(db.credentials, this.user, cred);
    for (const { key, value } of db.devices.getRange({ start: [this.user, ''], end: [this.user, '\uffff'] })) {
      const device = (key as [string, string])[1];
      if (device !== keep && !this.revoked.has(device)) this.dropDevice(device, value.tokenHash, CloseCode.revoked, 'password changed');
    }
  }

  /**
   * DELETE /v1/users/me: in this one commit nobody can log in or authenticate as the account any
   * more; the rest is removed in bounded turns after it (actors/account-deletion.ts).
   */
  private deleteAccount(): void {
    const { db } = this.ctx.storage;
    const at = Date.now();
    const record = db.users.get(this.user);
    this.ctx.put(db.deletions, this.user, { at });
    if (record && db.usernames.get(record.username) === this.user) this.ctx.remove(db.usernames, record.username);
    this.ctx.put(db.users, this.user, tombstone(record, this.user, at));
    // A still-valid token of the application must not bring the account back (src/auth/app-users.ts).
    if (record?.appId !== undefined) this.ctx.put(db.appUsers, record.appId, { user: this.user, deleted: at });
    this.ctx.remove(db.credentials, this.user);
    this.ctx.remove(db.bans, this.user);
    this.ban = undefined;
    for (const { key, value } of db.devices.getRange({ start: [this.user, ''], end: [this.user, '\uffff'] })) {
      const device = (key as [string, string])[1];
      if (!this.revoked.has(device)) this.dropDevice(device, value.tokenHash, CloseCode.revoked, 'account deleted');
    }
    // Whoever watched their presence sees them offline, never seen, and hears no more.
    const told = this.watchers.filter((w) => w.visible);
    if (told.length > 0) this.pushTo(told, encodeFrame({ t: ServerFrame.presence, user: this.user, online: false, last: 0 }), 0);
    this.watchers.length = 0;
    if (this.presenceTimer) clearTimeout(this.presenceTimer);
    this.presenceTimer = null;
    this.inbox.clear();
    this.dirty.clear();
    this.order = null;
    this.deleted = true;
    goOn(this.ctx, this.user);
  }

  /** A deleted account: fan-out is confirmed (so threads clear their marks) and nothing is stored. */
  private receiveDeleted(msg: UserActorMessage): unknown {
    switch (msg.op) {
      case 'deliver': return this.confirm(msg.thread, msg.msg.seq, 0);
      case 'event': return this.confirm(msg.thread, 0, msg.event.eseq);
      case 'detach': {
        const i = this.sockets.findIndex((s) => s.gateway === msg.gateway && s.conn === msg.conn);
        if (i >= 0) this.sockets.splice(i, 1);
        return undefined;
      }
      case 'watch': return hiddenPresence(this.user);
      case 'delete-account': return undefined; // again (a retry): already done
      case 'delete-continue':
        if ((this.deletion ??= new AccountDeletion(this.user, this.ctx)).step()) this.deletion = null;
        return undefined;
      case 'cmd': case 'attach': case 'login': case 'push-register': case 'password': case 'revoke': case 'app-device':
        return fail(ErrorCode.unauthorized, 'account deleted');
      default: return undefined; // receipts, typing, acks, touches, presence timers: nothing to keep
    }
  }

  // ---- push notifications (docs/architecture.md "Push") ----

  /** This user's devices with a push registration, read at first use and kept in step here. */
  private pushDevices(): Map<string, PushRegistration> {
    if (this.pushRegistered) return this.pushRegistered;
    this.pushRegistered = new Map();
    for (const { key, value } of this.ctx.storage.db.pushRegistrations.getRange({ start: [this.user], end: [this.user, '\uffff'] })) {
      this.pushRegistered.set(key[1], value);
    }
    return this.pushRegistered;
  }

  private pushRegister({ device, provider, token }: PushRegister): void {
    if (this.revoked.has(device) || !this.ctx.storage.db.devices.get([this.user, device])) fail(ErrorCode.unauthorized, 'session revoked');
    const registration: PushRegistration = { provider, token, created: Date.now() };
    this.ctx.put(this.ctx.storage.db.pushRegistrations, [this.user, device], registration);
    this.pushDevices().set(device, registration);
  }

  private pushUnregister({ device, token }: PushUnregister): void {
    const current = this.pushDevices().get(device) ?? this.ctx.storage.db.pushRegistrations.get([this.user, device]);
    if (!current || (token !== undefined && current.token !== token)) return;
    this.dropPushJobs(device);
    this.ctx.remove(this.ctx.storage.db.pushRegistrations, [this.user, device]);
    this.pushDevices().delete(device);
  }

  /**
   * A message from someone else was logged at `u`: every registered device without an open
   * socket gets (or has updated) its pending notification for the thread, in this same commit,
   * so a crash after the `ok` cannot lose it. A later message within the coalescing window
   * replaces the pending one and keeps its due time: one notification per thread per window.
   */
  private queuePush(thread: string, u: number, msg: StoredMessage, unread: number): void {
    const devices = this.pushDevices();
    if (devices.size === 0) return;
    const { db } = this.ctx.storage;
    for (const device of devices.keys()) {
      if (this.sockets.some((s) => s.device === device)) continue;
      const key: [string, string, string] = [this.user, device, thread];
      const pending = db.pushJobs.get(key);
      if (pending) {
        this.ctx.put(db.pushJobs, key, { ...pending, u, seq: msg.seq, from: msg.from, unread });
        // Again, in case the dispatcher has just finished the job this read still shows: the
        // updated job must stay findable (it then goes at once, being past due).
        this.ctx.put(db.pushQueue, [pending.due, this.user, device, thread], null);
        continue;
      }
      const due = Date.now() + this.ctx.pushCoalesceMs;
      this.ctx.put(db.pushJobs, key, { u, seq: msg.seq, from: msg.from, unread, due, attempts: 0 });
      this.ctx.put(db.pushQueue, [due, this.user, device, thread], null);
    }
  }

  /** Deletes a device's pending notifications (it came online, or lost its registration). */
  private dropPushJobs(device: string): void {
    if (!this.pushDevices().has(device)) return; // only registered devices get jobs
    const { db } = this.ctx.storage;
    for (const { key, value } of db.pushJobs.getRange({ start: [this.user, device], end: [this.user, device, '\uffff'] })) {
      this.ctx.remove(db.pushJobs, key);
      this.ctx.remove(db.pushQueue, [value.due, key[0], key[1], key[2]]);
    }
  }

  private cursorOf(device: string): number {
    let u = this.cursors.get(device);
    if (u === undefined) {
      u = this.ctx.storage.db.cursors.get([this.user, device])?.u ?? 0;
      this.cursors.set(device, u);
    }
    return u;
  }

  private saveCursor(device: string, u: number): void {
    this.cursors.set(device, u);
    this.ctx.put(this.ctx.storage.db.cursors, [this.user, device], { u, lastSeen: Date.now() });
  }

  // ---- presence ----

  /** Registers the watcher and answers the state it has been told so far (events follow from here). */
  private watch({ gateway, conn, viewer = '' }: Watch): PresenceState {
    let w = this.watchers.find((x) => x.gateway === gateway && x.conn === conn);
    if (!w) {
      w = { gateway, conn, viewer, visible: this.visibleTo(viewer) };
      this.watchers.push(w);
    }
    return w.visible ? this.presenceNow() : hiddenPresence(this.user);
  }

  private presenceNow(): PresenceState {
    return { user: this.user, online: this.announcedOnline, last: this.lastOffline };
  }

  /**
   * May `viewer` see this user's presence (storage/presence.ts, presenceVisible)? `changed`
   * overrides what this tick wrote and LMDB does not show yet.
   */
  private visibleTo(viewer: string, changed: { lastSeen?: LastSeenVisibility; blocked?: boolean; contact?: boolean } = {}): boolean {
    if (viewer === this.user) return true;
    const { db } = this.ctx.storage;
    if (changed.blocked ?? db.blocks.get([this.user, viewer]) !== undefined) return false;
    const lastSeen = changed.lastSeen ?? this.lastSeen();
    if (lastSeen !== 'contacts') return lastSeen === 'everyone';
    return changed.contact ?? db.contacts.get([this.user, viewer]) !== undefined;
  }

  private lastSeen(): LastSeenVisibility {
    return (this.privacy ??= this.ctx.storage.db.privacy.get(this.user)?.lastSeen ?? this.ctx.defaultLastSeen);
  }

  /**
   * Visibility changed for some watchers: those who lose it are told "offline, never seen" once and
   * get no more events; those who gain it get the current state.
   */
  private revisit(which: (w: Watcher) => boolean, changed: Parameters<UserActor['visibleTo']>[1]): void {
    for (const w of this.watchers) {
      if (!which(w)) continue;
      const visible = this.visibleTo(w.viewer, changed);
      if (visible === w.visible) continue;
      w.visible = visible;
      const p = visible ? this.presenceNow() : hiddenPresence(this.user);
      this.pushTo([w], encodeFrame({ t: ServerFrame.presence, user: this.user, online: p.online, last: wireTime(p.last) }), 0);
    }
  }

  private setPrivacy(lastSeen: LastSeenVisibility): void {
    this.ctx.put(this.ctx.storage.db.privacy, this.user, { lastSeen });
    this.privacy = lastSeen;
    this.revisit(() => true, { lastSeen });
  }

  private block(user: string): void {
    if (user === this.user) fail(ErrorCode.bad_frame, 'you cannot block yourself');
    if (!liveUser(this.ctx.storage.db.users.get(user))) fail(ErrorCode.not_found, 'no such user');
    this.ctx.put(this.ctx.storage.db.blocks, [this.user, user], { at: Date.now() });
    this.revisit((w) => w.viewer === user, { blocked: true });
  }

  private unblock(user: string): void {
    this.ctx.remove(this.ctx.storage.db.blocks, [this.user, user]);
    this.revisit((w) => w.viewer === user, { blocked: false });
  }

  private listBlocks(): { users: string[] } {
    const users: string[] = [];
    for (const key of this.ctx.storage.db.blocks.getKeys({ start: [this.user, ''], end: [this.user, '\uffff'] })) users.push((key as [string, string])[1]);
    return { users };
  }

  private unwatch({ gateway, conn }: Watch): void {
    const i = this.watchers.findIndex((w) => w.gateway === gateway && w.conn === conn);
    if (i >= 0) this.watchers.splice(i, 1);
  }

  /** The last socket closed: announce offline after the debounce, if nobody came back by then. */
  private offlineSoon(): void {
    if (this.presenceTimer) return;
    this.presenceTimer = setTimeout(() => this.ctx.tell(this.address, { op: 'presence-flush' }), PRESENCE_COALESCE_MS);
  }

  private flushPresence(): void {
    this.presenceTimer = null;
    const online = this.sockets.length > 0;
    if (online !== this.announcedOnline) this.announce(online);
  }

  private announce(online: boolean): void {
    this.announcedOnline = online;
    this.ctx.put(this.ctx.storage.db.presence, this.user, { online, last: this.lastOffline, boot: this.ctx.boot });
    this.outbox?.emit(this.ctx, online ? 'user.online' : 'user.offline', Date.now(), () => (online ? { user: this.user } : { user: this.user, last: this.lastOffline }));
    const told = this.watchers.filter((w) => w.visible);
    if (told.length > 0) this.pushTo(told, encodeFrame({ t: ServerFrame.presence, user: this.user, online, last: wireTime(this.lastOffline) }), 0);
  }

  // ---- inbox ----

  /** Threads by last update, newest first; `before` is the cursor a previous page returned. */
  private inboxPage(before: string | undefined, limit: number): { threads: object[]; cursor?: string } {
    let after: [number, string] | null = null;
    if (before !== undefined) {
      const dot = before.indexOf('.');
      const updated = Number(before.slice(0, dot));
      if (dot < 1 || !Number.isSafeInteger(updated)) fail(ErrorCode.bad_frame, 'before: not a cursor from inbox');
      after = [updated, before.slice(dot + 1)];
    }
    // Newest first; equal times by thread id, descending (a stable order for the cursor).
    const sorted = [...this.inboxOrder()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? 1 : a[0] > b[0] ? -1 : 0));
    let start = 0;
    if (after) {
      const [updated, thread] = after;
      while (start < sorted.length && (sorted[start][1] > updated || (sorted[start][1] === updated && sorted[start][0] >= thread))) start++;
    }
    const page = sorted.slice(start, start + limit);
    const threads = page.map(([thread]) => this.threadRow(this.inboxRow(thread)));
    if (start + limit >= sorted.length) return { threads };
    const [thread, updated] = page[page.length - 1];
    return { threads, cursor: `${updated}.${thread}` };
  }

  /** thread → updated for every row that has something in it (rows loaded here are not kept). */
  private inboxOrder(): Map<string, number> {
    if (this.order) return this.order;
    const order = new Map<string, number>();
    for (const { value } of this.ctx.storage.db.inbox.getRange({ start: [this.user, ''], end: [this.user, '\uffff'] })) {
      if (value.lastSeq > 0 || value.lastEvent > 0) order.set(value.thread, value.updated);
    }
    // Rows changed in memory and not yet written are newer than what LMDB has.
    for (const [thread, row] of this.inbox) if (row.lastSeq > 0 || row.lastEvent > 0) order.set(thread, row.updated);
    return (this.order = order);
  }

  private threadRow(row: InboxRow): object {
    const meta = this.ctx.storage.db.threads.get(row.thread) as ThreadMeta | undefined;
    const kind = meta?.kind ?? 'direct';
    const members = meta?.members ?? [];
    const out: Record<string, unknown> = {
      thread: row.thread, kind, title: kind === 'group' ? meta?.title ?? '' : this.directTitle(members),
      members, muted: row.muted, unread: row.unread, updated: wireTime(row.updated), readSeq: row.readSeq,
    };
    if (kind === 'group') out.admins = meta?.admins ?? [];
    if (row.nickname !== undefined) out.nickname = row.nickname;
    if (row.last && !this.swept(row.thread, row.last)) out.last = this.messageShape(row.thread, row.last);
    if (!row.member) out.member = false;
    return out;
  }

  /** Has retention deleted this message from its thread's log? (Then a row shows no `last`.) */
  private swept(thread: string, m: StoredMessage): boolean {
    return m.seq <= logFloor(this.ctx.storage, 'thread', thread);
  }

  /**
   * Retention trimmed this user's log: rows whose last message is gone from its thread's log stop
   * keeping a copy of it (the row stays, with its unread count, mute and nickname; docs/protocol.md).
   */
  private expire(_: Expire): void {
    const stale = new Set<string>();
    for (const { value } of this.ctx.storage.db.inbox.getRange({ start: [this.user, ''], end: [this.user, '\uffff'] })) {
      const row = this.inbox.get(value.thread) ?? value;
      if (row.last && this.swept(row.thread, row.last)) stale.add(row.thread);
    }
    for (const row of this.inbox.values()) if (row.last && this.swept(row.thread, row.last)) stale.add(row.thread);
    for (const thread of stale) {
      const row = this.inboxRow(thread);
      delete row.last;
      this.touch(row, row.updated);
    }
  }

  private messageShape(thread: string, m: StoredMessage): object {
    return messageView(thread, m, this.user);
  }

  /** A 1:1 thread is titled by the other person's name (or one's own, for a note to self). */
  private directTitle(members: string[]): string {
    const other = members.find((m) => m !== this.user) ?? this.user;
    return this.ctx.storage.db.users.get(other)?.name ?? other;
  }

  private setThread(thread: string, muted: boolean | undefined, nickname: string | undefined): void {
    const row = this.existingRow(thread);
    if (muted !== undefined) row.muted = muted;
    if (nickname !== undefined) {
      if (nickname === '') delete row.nickname;
      else row.nickname = nickname;
    }
    this.touch(row, row.updated);
  }

  private existingRow(thread: string): InboxRow {
    const row = this.inboxRow(thread);
    if (row.lastSeq === 0 && row.lastEvent === 0) {
      // Its first message or event may still be on its way here from the thread's shard, while
      // the client already has the `ok` of its send or group.create: membership decides.
      const meta = this.ctx.storage.db.threads.get(thread);
      if (!meta?.members.includes(this.user)) fail(ErrorCode.not_found, 'no such thread in your inbox');
    }
    return row;
  }

  private inboxRow(thread: string): InboxRow {
    let row = this.inbox.get(thread);
    if (!row) {
      const stored = this.ctx.storage.db.inbox.get([this.user, thread]);
      row = stored ?? { thread, lastSeq: 0, lastEvent: 0, updated: 0, unread: 0, readSeq: 0, muted: false, member: true };
      this.inbox.set(thread, row);
    }
    return row;
  }

  /** Marks a row changed; its write and index move happen once, at the end of the batch. */
  private touch(row: InboxRow, updated: number): void {
    this.dirty.add(row.thread);
    this.ctx.defer(this.flush);
    row.updated = Math.max(row.updated, updated);
    this.order?.set(row.thread, row.updated);
  }

  private confirm(thread: string, seq: number, eseq: number): void {
    const c = this.toConfirm.get(thread);
    if (c) {
      c.seq = Math.max(c.seq, seq);
      c.eseq = Math.max(c.eseq, eseq);
    } else {
      this.toConfirm.set(thread, { seq, eseq });
      this.ctx.defer(this.flush);
    }
  }

  /** End of batch: one write per changed row, one confirmation per thread. */
  private readonly flush = (): void => {
    const { db } = this.ctx.storage;
    if (this.deleted) this.dirty.clear();
    for (const thread of this.dirty) {
      this.ctx.put(db.inbox, [this.user, thread], this.inbox.get(thread)!);
    }
    this.dirty.clear();
    for (const [thread, { seq, eseq }] of this.toConfirm) this.ctx.tell(threadAddress(thread), { op: 'logged', user: this.user, seq, eseq });
    this.toConfirm.clear();
  };

  private countUnread(thread: string, readSeq: number, lastSeq: number): number {
    let n = 0;
    let seen = readSeq;
    for (const { value } of this.ctx.storage.db.threadLog.getRange({ start: [thread, readSeq + 1], end: [thread, lastSeq + 1] })) {
      if (value.from !== this.user) n++;
      seen = value.seq;
    }
    // A message delivered in this batch may share its thread's transaction, not committed yet:
    // the read above cannot see it, memory can.
    for (const e of this.unflushed) if (e.thread === thread && e.seq! > seen) n++;
    return n;
  }

  // ---- contacts ----

  private addContact(contact: string): void {
    if (contact === this.user) fail(ErrorCode.bad_frame, 'you cannot add yourself');
    if (!liveUser(this.ctx.storage.db.users.get(contact))) fail(ErrorCode.not_found, 'no such user');
    this.ctx.put(this.ctx.storage.db.contacts, [this.user, contact], { added: Date.now() });
    this.revisit((w) => w.viewer === contact, { contact: true });
  }

  private removeContact(contact: string): void {
    this.ctx.remove(this.ctx.storage.db.contacts, [this.user, contact]);
    this.revisit((w) => w.viewer === contact, { contact: false });
  }

  private listContacts(): { contacts: object[] } {
    const { db } = this.ctx.storage;
    const contacts: object[] = [];
    for (const key of db.contacts.getKeys({ start: [this.user, ''], end: [this.user, '\uffff'] })) {
      const contact = (key as [string, string])[1];
      const p = presenceVisible(this.ctx.storage, contact, this.user, this.ctx.defaultLastSeen) ? presenceOf(this.ctx.storage, this.ctx.boot, contact) : hiddenPresence(contact);
      contacts.push({ user: contact, name: db.users.get(contact)?.name ?? contact, online: p.online, last: wireTime(p.last) });
    }
    return { contacts };
  }

  // ---- pushing ----


  private pushTo(targets: readonly { gateway: number; conn: number }[], bytes: Uint8Array, u: number): void {
    const n = targets.length;
    if (n === 0) return;
    if (n === 1) {
      this.ctx.push(targets[0].gateway, targets[0].conn, bytes, u);
      return;
    }
    // One push per gateway, listing its sockets: the bytes cross the thread boundary once.
    const byGateway = new Map<number, number[]>();
    for (const s of targets) {
      const list = byGateway.get(s.gateway);
      if (list) list.push(s.conn);
      else byGateway.set(s.gateway, [s.conn]);
    }
    for (const [gateway, conns] of byGateway) this.ctx.push(gateway, conns, bytes, u);
  }
}

/**
 * The `msg` frame of a delivered message without its `u`, encoded once per message and variant
 * (the sender's own copy carries its cid): every member's log gets the same bytes plus its u.
 * A message object is shared by all members of one shard (one tell, or one tellMany envelope).
 */
const encodedMessages = new WeakMap<StoredMessage, { own?: Uint8Array; others?: Uint8Array }>();

function msgFrame(thread: string, msg: StoredMessage, own: boolean): Uint8Array {
  // A 1:1 message has one reader of each variant: caching it would cost more than it saves.
  const cache = !thread.startsWith('d:');
  let cached = cache ? encodedMessages.get(msg) : undefined;
  if (cache && !cached) encodedMessages.set(msg, (cached = {}));
  const hit = own ? cached?.own : cached?.others;
  if (hit) return hit;
  const frame: Record<string, unknown> = {
    t: ServerFrame.msg, thread, seq: msg.seq, id: msg.id, from: msg.from, device: msg.device, ts: wireTime(msg.ts),
  };
  if (msg.body !== undefined) frame.body = msg.body;
  if (msg.media !== undefined) frame.media = msg.media;
  if (msg.reply !== undefined) frame.reply = msg.reply;
  if (msg.replySeq !== undefined) frame.replySeq = msg.replySeq;
  if (msg.forwarded) frame.forwarded = true;
  // A message re-sent by crash recovery carries its state now (docs/architecture.md "Message lifecycle").
  if (msg.edited !== undefined) frame.edited = wireTime(msg.edited);
  if (msg.deleted !== undefined) frame.deleted = wireTime(msg.deleted);
  if (own && msg.cid !== undefined) frame.cid = msg.cid;
  if (msg.bot === true) frame.bot = true;
  const bytes = encodeShared(frame);
  if (cached && own) cached.own = bytes;
  else if (cached) cached.others = bytes;
  return bytes;
}
