// Shapes of frames, events and results from docs/protocol.md §3–6, as the client sees them.
import type { ServerFrame } from '../protocol/codes.js';
import type { ParleyError } from './errors.js';

/** An uploaded file attached to a message (§4 `media`). */
export interface Media {
  id: string;
  mime: string;
  size: number;
  sha256: string;
  name?: string;
}

/** A message as stored in a thread (§4 `msg`). */
export interface Msg {
  thread: string;
  seq: number;
  id: string;
  from: string;
  device: string;
  body?: string;
  media?: Media;
  /** the replied-to message's id */
  reply?: string;
  /** the replied-to message's seq, when the reply named a seq */
  replySeq?: number;
  /** copied from another message by `forward` */
  forwarded?: true;
  /** history (and re-sent messages): when the body was last edited */
  edited?: number;
  /** history: deleted for everyone at this time (a tombstone: no body, no media) */
  deleted?: number;
  /** history: reaction counts by emoji */
  reactions?: Record<string, number>;
  /** history: your own reaction */
  myReaction?: string;
  /** history: a short quote of the replied-to message */
  quote?: Quote;
  /** sent by a bot account through the server API */
  bot?: true;
  /** history: your own messages carry the cid they were sent with */
  cid?: string;
  ts: number;
}

/** What history shows of a replied-to message (docs/protocol.md "Message lifecycle"). */
export interface Quote {
  seq: number;
  from: string;
  /** its first 100 characters */
  body?: string;
  /** the media's type, when it carries one */
  mime?: string;
  /** it was deleted for everyone (then no body) */
  deleted?: number;
}

/** A thread as listed by `inbox` / `thread.get` (§4 `threadRow`). */
export interface ThreadRow {
  thread: string;
  kind: 'direct' | 'group';
  title: string;
  nickname?: string;
  members: string[];
  admins?: string[];
  muted: boolean;
  unread: number;
  last?: Msg;
  updated: number;
  readSeq: number;
  /** false once you left the group or were removed (the row stays) */
  member?: boolean;
}

// ---- events (§5) ----

export interface MsgEvent extends Msg {
  t: typeof ServerFrame.msg;
  u: number;
  /** Only on the sender's own devices. */
  cid?: string;
}

export interface ReceiptEvent {
  t: typeof ServerFrame.receipt;
  u: number;
  thread: string;
  user: string;
  delivered?: number;
  read?: number;
}

export type ThreadEventKind = 'created' | 'added' | 'removed' | 'left' | 'title';

export interface ThreadEvent {
  t: typeof ServerFrame.thread;
  u: number;
  thread: string;
  event: ThreadEventKind;
  by: string;
  users?: string[];
  title?: string;
}

export interface EditEvent {
  t: typeof ServerFrame.edit;
  u: number;
  thread: string;
  seq: number;
  body: string;
  edited: number;
}

export interface DeletedEvent {
  t: typeof ServerFrame.deleted;
  u: number;
  thread: string;
  seq: number;
  deleted: number;
  /** false: you deleted it for yourself (only your devices get this) */
  forEveryone: boolean;
}

export interface ReactionEvent {
  t: typeof ServerFrame.reaction;
  u: number;
  thread: string;
  seq: number;
  user: string;
  /** null: the user took their reaction back */
  emoji: string | null;
}

export interface PresenceEvent {
  t: typeof ServerFrame.presence;
  user: string;
  online: boolean;
  last: number;
}

export interface TypingEvent {
  t: typeof ServerFrame.typing;
  thread: string;
  user: string;
}

export interface CmsgEvent {
  t: typeof ServerFrame.cmsg;
  channel: string;
  seq: number;
  id: string;
  from: string;
  body?: string;
  media?: Media;
  ts: number;
}

export type ChannelMode = 'broadcast' | 'open';
export interface ChannelCreateParams { name: string; title: string; mode?: ChannelMode }
export type ChannelGetParams = { channel: string } | { name: string };
export interface ChannelInfo {
  channel: string; name: string; title: string; mode: ChannelMode; owner: string; admins: string[];
  /** sockets and SSE viewers following it now */
  subscribers: number;
  /** newest post, 0 before the first */
  seq: number;
  created: number;
}
export interface ChannelAdminParams { channel: string; user: string; admin: boolean }
export interface ChannelJoinParams {
  channel: string;
  /** replay the posts after this seq first; default: the newest seq this client saw in the channel, if any */
  since?: number;
}
export interface ChannelJoinResult { seq: number; epoch: string; reset?: boolean }
/** At least one of `body` / `media` (a media id from `upload`). */
export interface ChannelPostParams { channel: string; body?: string; media?: string; cid?: string }
export interface ChannelPostResult { seq: number; id: string; ts: number }
/** schedule (docs/sdk.md "Scheduled messages"): exactly one of thread or to; `at` in ms since the epoch. */
export interface ScheduleParams { thread?: string; to?: string; body: string; reply?: string | number; at: number; cid?: string }
export interface ScheduledMessage {
  job: string; thread: string; to?: string; body: string; reply?: string | number; at: number; created: number;
  /** the send was refused for good when it ran (e.g. forbidden: blocked, or no longer a member) */
  failed?: { code: string; message: string; at: number };
}
export interface ChannelHistoryParams { channel: string; before?: number; after?: number; limit?: number }
/** A post in history: a cmsg without t. */
export type ChannelPost = Omit<CmsgEvent, 't'>;
export interface ChannelHistoryResult { messages: ChannelPost[]; more: boolean }
/** invite.create (docs/protocol.md "Invite links"): a group (`thread`) or a channel; `expires` in seconds from now. */
export type InviteCreateParams = ({ thread: string } | { channel: string }) & { expires?: number; uses?: number };
/** `expires`: ms since the epoch; `uses` absent: unlimited. */
export interface Invite { code: string; url: string; expires: number; uses?: number }
export interface InviteListItem extends Invite { by: string; created: number; used: number }
/** invite.join: groups — the caller is a member; channels — joinInvite also joined it (`seq`, `epoch` as channelJoin). */
export type InviteJoinResult =
  | { kind: 'group'; thread: string; title: string; already: boolean }
  | ({ kind: 'channel'; channel: string; title: string; already: boolean } & Partial<ChannelJoinResult>);
export type TrendingWindow = '1h' | '24h';
export interface TrendingParams { window: TrendingWindow; limit?: number }
export interface TrendingChannel { channel: string; name: string; title: string; posts: number; joins: number; score: number }

/** A rejoin found the channel's log of another lineage (or behind the client): start over from `seq`. */
export interface ChannelResetEvent { channel: string; seq: number }

export interface KickEvent {
  t: typeof ServerFrame.kick;
  code: number;
  reason: string;
}

/** Events that carry `u` and are replayed after reconnection. */
export type DurableEvent = MsgEvent | ReceiptEvent | ThreadEvent | EditEvent | DeletedEvent | ReactionEvent;
export type ServerEvent = DurableEvent | PresenceEvent | TypingEvent | CmsgEvent | KickEvent;
/** What the 'event' listener gets: any server event, loosely typed (unknown fields are allowed, §2). */
export type AnyServerEvent = ServerEvent & Record<string, any>;

// ---- session frames (§3) ----

export interface WelcomeFrame {
  t: typeof ServerFrame.welcome;
  user: string;
  device: string;
  u: number;
  heartbeat: number;
  /** the server's log lineage (§8.1); store it with the cursor */
  epoch?: string;
  /** the oldest u still stored: a replay starts here at the earliest */
  first?: number;
  /** the epoch sent in hello was not the server's: the cursor was dropped, replay starts at `first` */
  reset?: boolean;
}

/** The server's logs are not the ones the stored cursor belongs to: drop the local copy of the log. */
export interface ResetEvent {
  epoch: string;
  first: number;
}

export interface SyncedFrame {
  t: typeof ServerFrame.synced;
  u: number;
}

export interface CloseInfo {
  code: number;
  reason: string;
  willReconnect: boolean;
}

export type ClientState = 'idle' | 'connecting' | 'syncing' | 'live' | 'closed';

/** Event name → payload for ParleyClient.on / next. */
export interface ClientEvents {
  msg: MsgEvent;
  receipt: ReceiptEvent;
  thread: ThreadEvent;
  edit: EditEvent;
  deleted: DeletedEvent;
  reaction: ReactionEvent;
  presence: PresenceEvent;
  typing: TypingEvent;
  cmsg: CmsgEvent;
  kick: KickEvent;
  welcome: WelcomeFrame;
  synced: SyncedFrame;
  reset: ResetEvent;
  channelReset: ChannelResetEvent;
  close: CloseInfo;
  /** `state` changed (idle → connecting → syncing → live; connecting again while reconnecting; closed) */
  state: ClientState;
  error: ParleyError;
  /** A `send` (or `forward`) the server refused for now is sent again after `delay` ms, by itself. */
  sendRetry: SendRetryEvent;
  event: AnyServerEvent;
  /** The application JWT expires at `exp` (ms): answer with refreshToken(jwt) — done for you with `getToken`. */
  refresh: RefreshEvent;
}

export interface RefreshEvent { t: 'refresh'; exp: number }

/**
 * The server answered a send with an error after which it is tried again (`rate_limited`,
 * `unavailable`, `internal`): the same `cid` goes out again in `delay` ms — for `rate_limited`
 * the server's `retry`, else the client's backoff. `attempt` counts the retries of this send (1, 2, …).
 */
export interface SendRetryEvent { cid: string; t: string; error: ParleyError; delay: number; attempt: number }
export type ClientEventName = keyof ClientEvents;

// ---- command parameters and results (§4) ----

export interface ConnectResult {
  user: string;
  device: string;
  /** `u` of the first `synced`: the user's log position when the replay ended. */
  u: number;
}

export interface SendParams {
  to?: string;
  thread?: string;
  body?: string;
  /** A media id from `upload` (docs/protocol.md §8.4); the receivers' `msg` carries the Media object. */
  media?: string;
  /** the seq of the message replied to (validated; history quotes it), or a message id (v1, kept as given) */
  reply?: number | string;
  /** Client message id (≤ 64 chars); generated when absent. */
  cid?: string;
}

/** One message of a thread. */
export interface MessageRef { thread: string; seq: number }
export interface EditParams extends MessageRef { body: string }
export interface EditResult { edited: number }
export interface DeleteParams extends MessageRef { forEveryone: boolean }
export interface DeleteResult { deleted: number }
export interface ReactParams extends MessageRef { emoji: string }
export interface ForwardParams {
  from: MessageRef;
  /** a thread you may send to, or a user (their 1:1 thread) */
  to: { thread: string } | { to: string };
  /** generated when absent; a retry with the same cid forwards once */
  cid?: string;
}

export interface SendResult {
  thread: string;
  seq: number;
  id: string;
  ts: number;
  cid: string;
}

export interface HistoryParams {
  thread: string;
  before?: number;
  after?: number;
  limit?: number;
}

export interface HistoryResult {
  messages: Msg[];
  more: boolean;
}

export interface InboxResult {
  threads: ThreadRow[];
  cursor?: string;
}

export interface ContactRow {
  user: string;
  name: string;
  online: boolean;
  last: number;
}

export interface PresenceRow {
  user: string;
  online: boolean;
  last: number;
}

// ---- HTTP API (§7) ----

export interface RegisterBody {
  username: string;
  password: string;
  name?: string;
}

export interface LoginBody {
  username: string;
  password: string;
  /** A device name. */
  device: string;
}

export interface LoginResult {
  token: string;
  user: string;
  device: string;
}

export interface SessionRow {
  device: string;
  name: string;
  created: number;
  lastSeen: number;
}

export interface MediaBody {
  mime: string;
  size: number;
  sha256: string;
  name?: string;
}

export interface MediaUpload {
  media: string;
  upload: string;
  expires: number;
}
