// The channel actor: one broadcast channel or live-comment stream (docs/protocol.md §8.3) — its
// name, title, mode, owner and admins, the append-only post log (seq) with cid dedupe, and the
// gateways that have subscribers, with their counts (never the sockets: a million viewers are one
// entry per gateway). A post is encoded once as the `cmsg` subscribers get; after its commit the
// batch's posts go to each gateway with subscribers as one publish, fanned out there by uWS.
import { Command, ErrorCode, ServerFrame } from '../protocol/codes.js';
import { ProtocolError, fail } from '../protocol/errors.js';
import { channelIdFor, type MessageIdGenerator } from '../protocol/ids.js';
import { MAX_CHANNEL_ADMINS } from '../protocol/validate.js';
import { decodeFrame, encodeFrame, wireTime } from '../protocol/wire.js';
import { channelLogHead, readChannelFrames, readChannelPage } from '../storage/channel-log.js';
import type { ChannelMeta, ChannelMode, ChannelPostResult, MediaObject } from '../storage/env.js';
import type { Actor, ActorContext, Registrations } from './actor.js';
import type { ActorMessage } from './envelope.js';
import type { Caller, ChannelActorMessage, ClientCommand, Follow, FollowResult, InviteOp, Page, ReadPosts, Trimmed, Unfollow } from './messages.js';
import { InviteBook } from './invite-book.js';
import { TRENDING_ADDRESS } from './trending-actor.js';
import { logFloor } from '../storage/retention.js';
import { channelPostData, type EventOutbox } from '../src/webhooks/events.js';

/** Posts a replay page carries at most, and about how many bytes. */
const PAGE_POSTS = 256;
const PAGE_BYTES = 256 * 1024;
/** The newest posts kept encoded in memory (replay without LMDB, and posts not yet committed). */
const RECENT_POSTS = 512;

export class ChannelActor implements Actor {
  private meta: ChannelMeta | undefined;
  private admins: ReadonlySet<string> = new Set();
  private lastSeq: number;
  /** Newest seq deleted by retention: posts (floor, lastSeq] remain; nothing at or below is served. */
  private floor: number;
  /** Newest seq known to be committed: the recent window never drops a post above it. */
  private committedSeq: number;
  /** gateway → its subscribers (joined sockets and SSE viewers) */
  private readonly gateways = new Map<number, number>();
  /** Encoded posts recentFrom, recentFrom + 1, … up to lastSeq. */
  private readonly recent: Uint8Array[] = [];
  private recentFrom: number;
  /** Posts of this batch, published once at its end: seq unpublishedFrom, … */
  private unpublished: Uint8Array[] = [];
  private unpublishedFrom = 0;
  /** Posts not yet committed, by user + cid: a resend racing its original must not fork. */
  private readonly uncommitted = new Map<string, ChannelPostResult>();
  /** Invite links to this channel, made on first use (actors/invite-book.ts). */
  private invites: InviteBook | null = null;
  /** Posts and joins since the last report to the trending actor (sent once per batch). */
  private activity = { posts: 0, joins: 0 };

  /** @param outbox webhook events (null: WEBHOOK_URL unset) */
  constructor(private readonly channel: string, private readonly ctx: ActorContext, private readonly ids: MessageIdGenerator, private readonly outbox: EventOutbox | null = null) {
    this.meta = ctx.storage.db.channels.get(channel);
    if (this.meta) this.admins = new Set(this.meta.admins);
    this.lastSeq = this.meta ? channelLogHead(ctx.storage, channel) : 0;
    this.floor = this.meta ? logFloor(ctx.storage, 'channel', channel) : 0;
    this.committedSeq = this.lastSeq;
    this.recentFrom = this.lastSeq + 1;
  }

  canPassivate(): boolean {
    return this.gateways.size === 0 && this.uncommitted.size === 0 && this.unpublished.length === 0;
  }

  registrations(): Registrations {
    let followers = 0;
    for (const n of this.gateways.values()) followers += n;
    return { sockets: 0, watchers: 0, followers };
  }

  receive(message: ActorMessage): unknown {
    const msg = message as ChannelActorMessage;
    switch (msg.op) {
      case 'cmd': return this.command(msg);
      case 'follow': return this.follow(msg);
      case 'unfollow': return this.unfollow(msg);
      case 'page': return this.page(msg);
      case 'read-posts': return this.readPosts(msg);
      case 'trimmed': return this.trimmed(msg);
      case 'invite': return this.invite(msg);
      default: throw new ProtocolError(ErrorCode.bad_frame, `channel actor: unknown op ${(msg as ActorMessage).op}`);
    }
  }

  private command(cmd: ClientCommand): unknown {
    const { caller, frame } = cmd;
    switch (frame.t) {
      case Command.channelCreate: return this.create(caller, frame.name as string, frame.title as string, (frame.mode as ChannelMode | undefined) ?? 'broadcast');
      case Command.channelGet: return this.get();
      case Command.channelAdmin: return this.setAdmin(caller, frame.user as string, frame.admin as boolean);
      case Command.channelPost: return this.post(caller, frame.cid as string, frame.body as string | undefined, frame.media as MediaObject | undefined, cmd.joined === true);
      case Command.channelHistory:
        return this.history(frame.before as number | undefined, frame.after as number | undefined, (frame.limit as number | undefined) ?? 50);
      default: throw new ProtocolError(ErrorCode.bad_frame, `unknown command ${frame.t}`);
    }
  }

  // ---- the channel ----

  private create(caller: Caller, name: string, title: string, mode: ChannelMode): { channel: string } {
    // The gateway routes by the name's id; a frame naming another id is a wiring bug, not a client's.
    if (channelIdFor(name) !== this.channel) fail(ErrorCode.internal, 'channel.create reached the wrong actor');
    if (this.meta) {
      // The owner asking again is a retry of a create whose answer was lost.
      if (this.meta.owner === caller.user) return { channel: this.channel };
      fail(ErrorCode.conflict, 'a channel with this name exists');
    }
    const created = Date.now();
    this.saveMeta({ channel: this.channel, name, title, mode, owner: caller.user, admins: [], created });
    this.outbox?.emit(this.ctx, 'channel.created', created, () => ({ channel: this.channel, name, title, mode, owner: caller.user }));
    return { channel: this.channel };
  }

  private get(): object {
    const meta = this.requireChannel();
    let subscribers = 0;
    for (const n of this.gateways.values()) subscribers += n;
    return {
      channel: this.channel, name: meta.name, title: meta.title, mode: meta.mode, owner: meta.owner, admins: meta.admins,
      subscribers, seq: this.lastSeq, created: wireTime(meta.created),
    };
  }

  private setAdmin(caller: Caller, user: string, admin: boolean): void {
    const meta = this.requireChannel();
    if (caller.user !== meta.owner) fail(ErrorCode.forbidden, 'only the owner may change admins');
    if (user === meta.owner) fail(ErrorCode.bad_frame, 'the owner is always allowed to post');
    if (admin === this.admins.has(user)) return;
    if (admin) {
      if (!this.ctx.storage.db.users.get(user)) fail(ErrorCode.not_found, 'no such user');
      if (meta.admins.length >= MAX_CHANNEL_ADMINS) fail(ErrorCode.too_large, `a channel has at most ${MAX_CHANNEL_ADMINS} admins`);
      this.saveMeta({ ...meta, admins: [...meta.admins, user] });
    } else this.saveMeta({ ...meta, admins: meta.admins.filter((a) => a !== user) });
  }

  // ---- posts ----

  private post(caller: Caller, cid: string, body: string | undefined, media: MediaObject | undefined, joined: boolean): object {
    const meta = this.requireChannel();
    const dedupeKey = `${caller.user}\u0000${cid}`;
    const seen = this.uncommitted.get(dedupeKey) ?? this.ctx.storage.db.channelDedupe.get([this.channel, caller.user, cid]);
    // A cid lasts as long as its post: one whose post retention deleted is a new post (its record
    // is deleted by a later sweep).
    if (seen && seen.seq > this.floor) return { seq: seen.seq, id: seen.id, ts: wireTime(seen.ts) };
    const staff = caller.user === meta.owner || this.admins.has(caller.user);
    if (!staff) {
      if (meta.mode === 'broadcast') fail(ErrorCode.forbidden, 'only the owner and admins post in this channel');
      if (!joined) fail(ErrorCode.forbidden, 'join the channel to post in it');
    }
    const ts = Date.now();
    const seq = ++this.lastSeq;
    const id = this.ids.next(ts);
    const cmsg: Record<string, unknown> = { t: ServerFrame.cmsg, channel: this.channel, seq, id, from: caller.user, ts: wireTime(ts) };
    if (body !== undefined) cmsg.body = body;
    if (media !== undefined) cmsg.media = media;
    const frame = encodeFrame(cmsg);
    const result: ChannelPostResult = { seq, id, ts };
    const { db } = this.ctx.storage;
    this.ctx.put(db.channelLog, [this.channel, seq], frame as Buffer);
    if (media !== undefined) this.ctx.put(db.mediaRefs, [media.id, this.channel, seq], null);
    this.ctx.put(db.channelDedupe, [this.channel, caller.user, cid], result);
    this.outbox?.emit(this.ctx, 'channel.posted', ts, () => channelPostData(this.channel, { seq, id, from: caller.user, ts, body, media }));
    this.uncommitted.set(dedupeKey, result);
    this.ctx.afterCommit(() => {
      this.uncommitted.delete(dedupeKey);
      if (seq > this.committedSeq) this.committedSeq = seq;
    });
    this.remember(seq, frame);
    if (this.unpublished.length === 0) this.unpublishedFrom = seq;
    this.unpublished.push(frame);
    this.ctx.defer(this.publish);
    this.counted('posts');
    return { seq, id, ts: wireTime(ts) };
  }

  /** The batch's posts, once per gateway with subscribers (released after their commit). */
  private readonly publish = (): void => {
    const frames = this.unpublished;
    if (frames.length === 0) return;
    this.unpublished = [];
    for (const [gateway, n] of this.gateways) if (n > 0) this.ctx.publish(gateway, this.channel, this.unpublishedFrom, frames);
  };

  private remember(seq: number, frame: Uint8Array): void {
    if (seq !== this.recentFrom + this.recent.length) {
      this.recent.length = 0;
      this.recentFrom = seq;
    }
    this.recent.push(frame);
    // Drop the oldest half at once (not one per post), never a post that is not committed yet.
    if (this.recent.length > RECENT_POSTS) {
      const drop = Math.min(this.recent.length - RECENT_POSTS / 2, this.committedSeq - this.recentFrom + 1);
      if (drop > 0) {
        this.recent.splice(0, drop);
        this.recentFrom += drop;
      }
    }
  }

  private history(before: number | undefined, after: number | undefined, limit: number): { messages: object[]; more: boolean } {
    this.requireChannel();
    const page = readChannelPage(this.ctx.storage, this.channel, { before, after, limit });
    return { messages: page.frames.map(postOf), more: page.more };
  }

  private readPosts({ before, after, limit }: ReadPosts): { messages: object[]; more: boolean } {
    // An absent field may cross the thread boundary as nil.
    return this.history(before ?? undefined, after ?? undefined, limit);
  }

  // ---- subscribers ----

  private follow({ gateway, since }: Follow): FollowResult {
    this.requireChannel();
    this.gateways.set(gateway, (this.gateways.get(gateway) ?? 0) + 1);
    this.counted('joins');
    if (since == null) return { head: this.lastSeq, frames: [] }; // absent (nil once encoded)
    if (since > this.lastSeq) return { head: this.lastSeq, frames: [], reset: true };
    return this.pageAfter(since);
  }

  private unfollow({ gateway, n }: Unfollow): void {
    const left = (this.gateways.get(gateway) ?? 0) - n;
    if (left > 0) this.gateways.set(gateway, left);
    else this.gateways.delete(gateway);
  }

  private page({ after }: Page): FollowResult {
    this.requireChannel();
    return this.pageAfter(Math.min(after, this.lastSeq));
  }

  /** A page after `after`; below the floor, from the oldest post retention kept (and says so). */
  private pageAfter(after: number): FollowResult {
    // Read from LMDB: its floor is committed with the deletes, so it matches what the read sees.
    if (after + 1 < this.recentFrom) this.floor = Math.max(this.floor, logFloor(this.ctx.storage, 'channel', this.channel));
    if (after >= this.floor) return { head: this.lastSeq, frames: this.framesAfter(after) };
    return { head: this.lastSeq, frames: this.framesAfter(this.floor), from: this.floor + 1 };
  }

  /** Retention deleted the posts up to floor: the recent window no longer serves them. */
  private trimmed({ floor }: Trimmed): void {
    if (floor <= this.floor) return;
    this.floor = floor;
    const drop = Math.min(floor - this.recentFrom + 1, this.recent.length);
    if (drop > 0) {
      this.recent.splice(0, drop);
      this.recentFrom += drop;
    }
  }

  /**
   * Posts after+1, after+2, … (a page): from LMDB below the recent window, then from the window,
   * which holds every post not yet committed (LMDB's snapshot does not see those).
   */
  private framesAfter(after: number): Uint8Array[] {
    if (after >= this.lastSeq) return [];
    if (after + 1 >= this.recentFrom) return this.recent.slice(after + 1 - this.recentFrom, after + 1 - this.recentFrom + PAGE_POSTS);
    const limit = Math.min(PAGE_POSTS, this.recentFrom - 1 - after);
    const frames: Uint8Array[] = readChannelFrames(this.ctx.storage, this.channel, after, limit, PAGE_BYTES);
    if (frames.length === limit && frames.length < PAGE_POSTS) frames.push(...this.recent.slice(0, PAGE_POSTS - frames.length));
    return frames;
  }

  // ---- trending (actors/trending-actor.ts) ----

  private counted(what: 'posts' | 'joins'): void {
    this.activity[what]++;
    this.ctx.defer(this.reportActivity);
  }

  /** This batch's posts and joins, as one tell (crossing shards in the transport's per-tick batch). */
  private readonly reportActivity = (): void => {
    const { posts, joins } = this.activity;
    if ((posts === 0 && joins === 0) || !this.meta) return;
    this.activity = { posts: 0, joins: 0 };
    this.ctx.tell(TRENDING_ADDRESS, { op: 'activity', channel: this.channel, name: this.meta.name, title: this.meta.title, posts, joins });
  };

  // ---- invite links (actors/invite-book.ts) ----

  /** The owner and admins create invites; joining counts a use and the client joins with channel.join. */
  private invite(msg: InviteOp): unknown {
    const meta = this.requireChannel();
    let subscribers = 0;
    for (const n of this.gateways.values()) subscribers += n;
    return (this.invites ??= new InviteBook(this.ctx)).handle(msg, {
      kind: 'channel', id: this.channel, title: meta.title, name: meta.name, members: subscribers,
      isAdmin: (u) => u === meta.owner || this.admins.has(u),
      isMember: () => false,
      add: () => undefined,
    });
  }

  // ---- checks ----

  private requireChannel(): ChannelMeta {
    return this.meta ?? fail(ErrorCode.not_found, 'no such channel');
  }

  private saveMeta(meta: ChannelMeta): void {
    this.meta = meta;
    this.admins = new Set(meta.admins);
    this.ctx.put(this.ctx.storage.db.channels, this.channel, meta);
  }
}

/** A stored cmsg as a history entry: its fields without `t`. */
function postOf(frame: Uint8Array): object {
  const { t: _t, ...post } = decodeFrame(frame) as { t: string };
  return post;
}
