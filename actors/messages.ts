// The messages actors understand: the internal protocol between the gateway and the actors,
// and between actors. Client commands arrive as `ClientCommand`, already validated.
import type { Credential, StoredMessage, ThreadEvent } from '../storage/env.js';

/** Who is asking, for client commands routed by the gateway. */
export interface Caller {
  user: string;
  device: string;
  /** the client's request number, when it wants an answer */
  r?: number;
}

/** A validated client frame routed to an actor, answered with an encoded ok/err frame (or null). */
export interface ClientCommand {
  op: 'cmd';
  caller: Caller;
  frame: { t: string; [field: string]: unknown };
  /** channel.post: the socket has joined the channel (docs/protocol.md §8.3, open mode) */
  joined?: boolean;
  /** send through the server API by a bot account: the message carries bot: true */
  bot?: boolean;
  /** edit, delete: how long after sending the author may still (EDIT_WINDOW, ms) */
  editWindowMs?: number;
  [field: string]: unknown;
}

// ---- to the user actor ----
/**
 * A device socket comes online; answered with AttachResult. With `appDevice` (a socket signed in
 * with an application JWT) the device is created, named so, when the user has no such device.
 */
export interface Attach { op: 'attach'; device: string; gateway: number; conn: number; appDevice?: string; [f: string]: unknown }
/** An application JWT named this device over HTTP: create it (named `name`) if it does not exist (ask). */
export interface AppDevice { op: 'app-device'; device: string; name: string; [f: string]: unknown }
/** head: newest u; cursor: the device's acked u; first: the oldest u still stored. */
export interface AttachResult { head: number; cursor: number; first: number }
/** Replay: log frames after `after`, oldest first, up to a byte budget; answered with ReplayResult. */
export interface Replay { op: 'replay'; after: number; [f: string]: unknown }
/** frames: consecutive entries from u = `from` on (from > after+1 only where retention trimmed); head: the newest u. */
export interface ReplayResult { frames: Uint8Array[]; from: number; head: number }
/** The socket closed. */
export interface Detach { op: 'detach'; device: string; gateway: number; conn: number; [f: string]: unknown }
/** The device has stored every event up to u. */
export interface Ack { op: 'ack'; device: string; u: number; [f: string]: unknown }
/** Log a device out: its session and device record go, its sockets close with 4003 (ask; not_found if unknown). */
export interface Revoke { op: 'revoke'; device: string; [f: string]: unknown }
/** A login: mint a device and store it with its session (token hash only); answered with LoginResult. */
/** A device's push registration (POST /v1/push): replaces any earlier one of the device. */
export interface PushRegister { op: 'push-register'; device: string; provider: string; token: string; [f: string]: unknown }
/** Removes a device's push registration; with `token`, only if it is still that one (a provider said it is dead). */
export interface PushUnregister { op: 'push-unregister'; device: string; token?: string; [f: string]: unknown }
export interface Login { op: 'login'; name: string; tokenHash: string; [f: string]: unknown }
/** The device's session authenticated at `at` (throttled by the gateway's SessionClock): its record's `used`. */
export interface Touch { op: 'touch'; device: string; at: number; [f: string]: unknown }
/** The gateway saw the device's session idle past `ttl` ms: remove it if it still is (lazy clean-up). */
export interface SessionExpired { op: 'session-expired'; device: string; ttl: number; [f: string]: unknown }
/** Store the new password's credential and log out every device but `keep`, in one commit (ask). */
export interface ChangePassword { op: 'password'; keep: string; cred: Credential; [f: string]: unknown }
/** Delete the account (ask: answered once nobody can log in as it; the rest follows in turns). */
export interface DeleteAccount { op: 'delete-account' | 'delete-continue'; [f: string]: unknown }
export interface LoginResult { device: string }
/** Server API: ban (store the ban, close every socket with 4004; attach and login refused) or lift it. */
export interface Ban { op: 'ban' | 'unban'; reason?: string; [f: string]: unknown }
/** Server API: close every socket of the user with 4002; answered with { sockets } (how many). */
export interface Disconnect { op: 'disconnect'; [f: string]: unknown }
/** Server API: the user's presence now; answered with PresenceNow. */
export interface PresenceQuery { op: 'presence'; [f: string]: unknown }
export interface PresenceNow { user: string; online: boolean; last: number; sockets: number }
/** Append a thread message to this user's log (idempotent by thread + seq). */
export interface Deliver { op: 'deliver'; thread: string; msg: StoredMessage; [f: string]: unknown }
/** Append a thread event to this user's log (idempotent by thread + eseq); message events with `only` not naming the user are only confirmed. */
export interface EventDeliver { op: 'event'; thread: string; event: ThreadEvent; [f: string]: unknown }
/** A member's watermarks moved: append a receipt event. */
export interface Receipt { op: 'receipt'; thread: string; user: string; delivered: number; read: number; [f: string]: unknown }
/** Someone is typing in a thread: tell online devices (ephemeral). */
export interface Typing { op: 'typing'; thread: string; user: string; [f: string]: unknown }
/** A socket wants presence events of this user until unwatch or disconnect. */
/** `viewer`: the watching socket's user (whose right to see this presence is checked). */
export interface Watch { op: 'watch' | 'unwatch'; gateway: number; conn: number; viewer?: string; [f: string]: unknown }
/** Timer-driven: announce the presence state if it changed (coalesces flapping). */
export interface PresenceFlush { op: 'presence-flush'; [f: string]: unknown }
/** Retention trimmed this user's log (entries older than cutoff): drop inbox `last`s whose message is gone. */
export interface Expire { op: 'expire'; cutoff: number; [f: string]: unknown }

// ---- to the thread actor ----
/** The member's log has the thread's messages up to seq and events up to eseq. */
export interface Logged { op: 'logged'; user: string; seq: number; eseq: number; [f: string]: unknown }
/** A device of the member acked messages of the thread up to seq (delivered receipt). */
export interface DeliveredTo { op: 'delivered-to'; user: string; seq: number; [f: string]: unknown }
/**
 * Re-run unconfirmed fan-out (sent to threads with a pending fan-out after a restart). Paged:
 * a turn re-sends one page and tells itself to go on after `eseq` / `seq` (absent: from the mark).
 */
export interface Recover { op: 'recover'; eseq?: number; seq?: number; [f: string]: unknown }

// ---- to the channel actor ----
/**
 * A subscriber on `gateway` follows the channel (a joined socket or an SSE viewer): counted there
 * until unfollow. With `since`, answered with the posts after it (a first page); see FollowResult.
 */
export interface Follow { op: 'follow'; gateway: number; since?: number; [f: string]: unknown }
/**
 * head: the newest seq. frames: encoded posts since+1, since+2, … (possibly fewer than up to head:
 * ask `page` for the rest). reset: since was above head (another lineage of the log): nothing replayed.
 * Publishes of posts after head reach the gateway after this answer.
 */
export interface FollowResult {
  head: number; frames: Uint8Array[]; reset?: boolean;
  /** the seq of frames[0] (or of the next post, with no frames) when retention deleted the posts from since+1 on */
  from?: number;
}
/** `n` subscribers on `gateway` stopped following. */
export interface Unfollow { op: 'unfollow'; gateway: number; n: number; [f: string]: unknown }
/** The next posts after `after` for a catching-up subscriber; answered with a FollowResult. */
export interface Page { op: 'page'; after: number; [f: string]: unknown }
/** History for readers without an account (HTTP); answered with { messages, more }. */
export interface ReadPosts { op: 'read-posts'; before?: number; after?: number; limit: number; [f: string]: unknown }

/** Retention deleted a log's entries up to floor: a channel's posts (to an active actor), a thread's messages (its search blocks go). */
export interface Trimmed { op: 'trimmed'; floor: number; [f: string]: unknown }

/** A deleted account leaves the group (a `left` event); nothing for a 1:1 thread. */
export interface Forget { op: 'forget'; user: string; [f: string]: unknown }

// ---- invite links (actors/invite-book.ts), to the thread actor of a group or the channel actor ----
/**
 * An invite action for `caller`, asked of the actor owning the invite's target. create → InviteCreated;
 * revoke → {}; list → { invites: InviteView[] }; join → InviteJoined; info (GET /i/:code,
 * no caller) → InviteInfo. Unknown, expired, revoked or used-up codes: not_found.
 */
export interface InviteOp {
  op: 'invite'; action: 'create' | 'revoke' | 'list' | 'join' | 'info';
  caller?: Caller; code?: string;
  /** create: seconds from now, and the most joins (absent: unlimited) */
  expires?: number; uses?: number;
  [f: string]: unknown;
}
export interface InviteView { code: string; by: string; created: number; expires: number; uses?: number; used: number }
export interface InviteCreated { code: string; expires: number; uses?: number }
export interface InviteInfo { code: string; kind: 'group' | 'channel'; target: string; title: string; name?: string; members: number; expires: number }
/** already: the caller was a member (or had joined the channel by this code): no use was taken. */
export interface InviteJoined { kind: 'group' | 'channel'; target: string; title: string; already: boolean }

// ---- to the trending actor (actors/trending-actor.ts) ----
/** A channel's posts and joins since its last report (one per channel per batch). */
export interface ChannelActivity { op: 'activity'; channel: string; name: string; title: string; posts: number; joins: number; [f: string]: unknown }

export type ChannelActorMessage = ClientCommand | Follow | Unfollow | Page | ReadPosts | Trimmed | InviteOp;

export type UserActorMessage =
  | ClientCommand | Attach | Replay | Detach | Ack | Login | Revoke | Deliver | EventDeliver | Receipt | Typing | Watch | PresenceFlush | Expire | PushRegister | PushUnregister | Touch | SessionExpired | ChangePassword | DeleteAccount | Ban | Disconnect | PresenceQuery | AppDevice;
export type ThreadActorMessage = ClientCommand | Logged | DeliveredTo | Recover | Forget | InviteOp | Trimmed;
