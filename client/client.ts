// ParleyClient: one device's WebSocket session — hello/welcome/replay/synced, exactly-once durable
// events by `u`, acks, heartbeat, request/answer matching, the send outbox and reconnection.
import { CloseCode, Command, ErrorCode, MAX_USERS_GET, ServerFrame } from '../protocol/codes.js';
import { decodeFrame, encodeFrame } from '../protocol/wire.js';
import { DEFAULT_BACKOFF, backoffDelay, type BackoffOptions } from './backoff.js';
import { Emitter } from './emitter.js';
import { ClientErrorCode, ParleyError, errorFromFrame } from './errors.js';
import { randomId } from './ids.js';
import type { CommandName, CommandParams, CommandResult, GroupCreateParams, GroupMembers, GroupMembersParams, GroupTitleParams, InboxParams, LastSeenVisibility, ReadParams, SearchParams, SearchResult, ThreadSetParams, UserInfo, UserLookup } from './commands.js';
import { getMe, listSessions, logout as logoutSession, revokeSession, updateMe } from './http.js';
import { downloadMedia, uploadMedia, type Downloaded, type UploadData, type UploadOptions } from './media.js';
import type { Persistence } from './persistence.js';
import { PersistenceWriter } from './persistence-writer.js';
import { Outbox, isRetryable } from './outbox.js';
import { cleanFields, newPending, type Pending, type PendingKind, type Timer } from './pending.js';
import type {
  ChannelAdminParams,
  ChannelCreateParams,
  ChannelGetParams,
  ChannelHistoryParams,
  ChannelHistoryResult,
  ChannelInfo,
  ChannelJoinParams,
  ChannelJoinResult,
  ChannelPostParams,
  ScheduledMessage,
  ScheduleParams,
  ChannelPostResult,
  ClientEvents,
  ClientState,
  CloseInfo,
  ConnectResult,
  ContactRow,
  InboxResult,
  Msg,
  PresenceRow,
  SessionRow,
  ThreadRow,
  DeleteParams,
  DeleteResult,
  EditParams,
  EditResult,
  ForwardParams,
  HistoryParams,
  HistoryResult,
  Invite,
  InviteCreateParams,
  InviteJoinResult,
  InviteListItem,
  KickEvent,
  TrendingChannel,
  TrendingParams,
  MessageRef,
  ReactParams,
  SendParams,
  SendResult,
} from './types.js';

export interface ClientOptions {
  /** ws://host:port/v1/ws */
  url: string;
  /** A session token from login(); or sign in with the application's tokens: `jwt` and/or `getToken`. */
  token?: string;
  /** An application JWT (docs/sdk.md "Application tokens"): hello {jwt}, and Bearer on HTTP. */
  jwt?: string;
  /**
   * Fetches a new application JWT from the app's backend: called when the server asks for a
   * `refresh`, before reconnecting with a token that has expired (or is within 5 s of it), and
   * for the first hello when `jwt` is not given.
   */
  getToken?: () => Promise<string>;
  /** WebSocket constructor; default globalThis.WebSocket. Node tests pass `ws`'s WebSocket. */
  WebSocket?: typeof globalThis.WebSocket | any;
  /** Stored cursor to resume from; omitted → the server's per-device cursor. */
  since?: number;
  /** The epoch the stored cursor belongs to (`client.epoch` when it was stored); a different server epoch resets it. */
  epoch?: string;
  /** Default true: exponential backoff with jitter, 250 ms .. 10 s. */
  reconnect?: boolean | { minMs?: number; maxMs?: number };
  /** Default 15000. */
  requestTimeoutMs?: number;
  /** Default true: ack dispatched durable events, coalesced (one ack per ~50 ms). */
  autoAck?: boolean;
  /** Base of the HTTP API for upload/download; default: `url` with http(s) and without /v1/ws. */
  httpUrl?: string;
  /**
   * Keeps the cursor and recent history across restarts (docs/sdk.md "Persistence"): restored by
   * connect() (unless `since` is given), saved as the client acks. MemoryPersistence or IndexedDbPersistence.
   */
  persistence?: Persistence;
}

/** The subset of the WebSocket API we use; both the DOM WebSocket and `ws` provide it. */
interface SocketLike {
  binaryType: string;
  readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  /** `ws` only: drop at once, without waiting up to 30 s for a close handshake from a dead peer. */
  terminate?(): void;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: any) => void) | null;
}

const OPEN = 1; // WebSocket.OPEN; the injected constructor may not carry the static
/** Standard "closed abnormally" code, reported for sockets we drop ourselves. */
const ABNORMAL_CLOSE = 1006;
const DEFAULT_HEARTBEAT_S = 25;
const DEFAULT_TIMEOUT_MS = 15_000;
const ACK_DELAY_MS = 50;
/** How long close() waits for the close handshake before dropping the socket. */
const CLOSE_GRACE_MS = 3_000;
/** A reconnect with an application JWT this close to its exp asks getToken for a new one first. */
const RENEW_BEFORE_MS = 5_000;
/** Resyncs at the same cursor before accepting a gap (e.g. a log trimmed by retention) instead of looping. */
const MAX_GAP_RESYNCS = 3;
/** Users per presence.sub frame (MAX_PRESENCE_SUBS of protocol/validate.ts). */
const PRESENCE_SUB_CHUNK = 1000;
/** What a message deleted for everyone no longer has (docs/protocol.md "Message lifecycle"). */
const TOMBSTONE_DROPS: Array<keyof Msg> = ['body', 'media', 'reply', 'replySeq', 'edited', 'reactions', 'myReaction', 'quote'];
/** Events emitted under their own name as well as 'event'. */
const NAMED_EVENTS: ReadonlySet<string> = new Set([
  ServerFrame.msg,
  ServerFrame.receipt,
  ServerFrame.thread,
  ServerFrame.presence,
  ServerFrame.typing,
  ServerFrame.cmsg,
  ServerFrame.kick,
  ServerFrame.edit,
  ServerFrame.deleted,
  ServerFrame.reaction,
]);

type Frame = { t: string; [k: string]: any };

export class ParleyClient {
  private readonly url: string;
  /** the session token, or the current application JWT (both are the HTTP bearer) */
  private token: string;
  private readonly usesJwt: boolean;
  private readonly getToken?: () => Promise<string>;
  private readonly httpUrl: string;
  private readonly Ctor: new (url: string) => SocketLike;
  private readonly backoff: BackoffOptions | undefined;
  private readonly timeoutMs: number;
  private readonly autoAck: boolean;
  private readonly em = new Emitter<ClientEvents>();

  private _state: ClientState = 'idle';
  private _user?: string;
  private _device?: string;
  /** Highest durable u dispatched; undefined until known (no opts.since, nothing replayed yet). */
  private _lastU?: number;
  private _epoch?: string;
  private syncedU = 0;

  private ws?: SocketLike;
  /** welcome received on this.ws: requests may be written. */
  private ready = false;
  private closing = false;
  private closePromise?: Promise<void>;
  private closeWaiters: Array<() => void> = [];
  private kick?: KickEvent;
  private attempt = 0;
  private gapAt = -1;
  private gapCount = 0;

  private hbMs = DEFAULT_HEARTBEAT_S * 1000;
  private lastRecv = 0;
  private hbTimer?: ReturnType<typeof setInterval>;
  private handshakeTimer?: Timer;
  private reconnectTimer?: Timer;
  private closeGraceTimer?: Timer;
  private ackTimer?: Timer;
  /** Highest u the app wants acked, and highest u acked on the current socket. */
  private ackWanted = -1;
  private ackedU = -1;

  private nextR = 1;
  private nextSeq = 1;
  /** Not yet written, in issue order. */
  private readonly queue: Pending[] = [];
  private readonly inflight = new Map<number, Pending>();
  private readonly outbox = new Outbox();
  /** Pings written on this socket, oldest first; null = a heartbeat ping nobody awaits. */
  private pings: Array<Pending | null> = [];
  private connectWaiter?: { promise: Promise<ConnectResult>; resolve(v: ConnectResult): void; reject(e: Error): void };
  /**
   * Channels the app joined, with the newest seq seen in each (-1: none yet) and the epoch of the
   * join: a cmsg at or below it is a duplicate, and every reconnect joins again from there.
   */
  private readonly followed = new Map<string, { seq: number; epoch?: string }>();
  /** Cancellers of pending next() calls, run when the client closes for good. */
  private readonly waiters = new Set<(err: Error) => void>();
  /** Users watched with presenceSub: subscribed again on every new socket (subscriptions are per socket). */
  private readonly watched = new Set<string>();
  /** A synced was seen: later ones follow a reconnect. */
  private everSynced = false;
  private readonly store?: Persistence;
  private readonly writer?: PersistenceWriter;
  /** The cursor's owner as restored from persistence, checked against welcome. */
  private storedOwner?: { user: string; device: string };
  /** true once persistence was read (or there is none, or opts.since overrides it) */
  private restored: boolean;
  private restoring = false;

  constructor(opts: ClientOptions) {
    this.url = opts.url;
    this.usesJwt = opts.token === undefined;
    if (opts.token !== undefined && (opts.jwt !== undefined || opts.getToken !== undefined)) throw new TypeError('ParleyClient: token, or jwt/getToken, not both');
    if (this.usesJwt && opts.jwt === undefined && opts.getToken === undefined) throw new TypeError('ParleyClient: one of token, jwt or getToken is needed');
    this.token = opts.token ?? opts.jwt ?? '';
    this.getToken = opts.getToken;
    this.httpUrl = opts.httpUrl ?? opts.url.replace(/^ws/, 'http').replace(/\/v1\/ws\/?$/, '');
    const Ctor = opts.WebSocket ?? (globalThis as any).WebSocket;
    if (typeof Ctor !== 'function') throw new TypeError('ParleyClient: no WebSocket implementation; pass opts.WebSocket');
    this.Ctor = Ctor;
    this.backoff =
      opts.reconnect === false
        ? undefined
        : { ...DEFAULT_BACKOFF, ...(typeof opts.reconnect === 'object' ? stripUndefined(opts.reconnect) : {}) };
    this.timeoutMs = opts.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.autoAck = opts.autoAck ?? true;
    this._lastU = opts.since;
    this._epoch = opts.epoch;
    this.store = opts.persistence;
    if (this.store) this.writer = new PersistenceWriter(this.store, (err) => this.em.emit('error', persistenceError(err)));
    this.restored = !this.store || opts.since !== undefined;
  }

  /** The server's log epoch, known from the first welcome on (store it with lastU). */
  get epoch(): string | undefined {
    return this._epoch;
  }

  get user(): string | undefined {
    return this._user;
  }

  get device(): string | undefined {
    return this._device;
  }

  /** Highest durable u dispatched (the cursor to store); 0 until known. */
  get lastU(): number {
    return this._lastU ?? 0;
  }

  get state(): ClientState {
    return this._state;
  }

  /** Every change of `state` is a 'state' event (a "reconnecting…" banner: anything but live after the first connect). */
  private setState(next: ClientState): void {
    if (next === this._state) return;
    this._state = next;
    this.em.emit('state', next);
  }

  /**
   * Sends and forwards not yet answered, oldest first (they are resent after every reconnect):
   * show them as pending. Their promises settle as usual.
   */
  pendingSends(): Array<{ cid: string; t: string; params: Record<string, unknown> }> {
    return this.outbox.entries().map((p) => ({ cid: p.cid!, t: p.t, params: { ...p.fields } }));
  }

  /** Opens the session; resolves at the first `synced` (after the replay). */
  connect(): Promise<ConnectResult> {
    if (this._state === 'live' && this.ready) {
      return Promise.resolve({ user: this._user!, device: this._device!, u: this.syncedU });
    }
    if (this.connectWaiter) return this.connectWaiter.promise;
    // A close() still in progress finishes first, so its waiters see their socket closed.
    if (this.closePromise) return this.closePromise.then(() => this.connect());
    let resolve!: (v: ConnectResult) => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<ConnectResult>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.connectWaiter = { promise, resolve, reject };
    // Otherwise already (re)connecting: the waiter resolves at the next synced.
    if (this._state === 'idle' || this._state === 'closed') {
      this.closing = false;
      this.kick = undefined;
      this.attempt = 0;
      if (this.restored) this.open();
      else this.restoreThenOpen();
    }
    return promise;
  }

  /** Reads the stored cursor (once), then opens the socket with it. */
  private restoreThenOpen(): void {
    this.setState('connecting');
    if (this.restoring) return; // close() and connect() again while reading: the first read opens
    this.restoring = true;
    this.store!.loadCursor().then(
      (cursor) => {
        if (cursor && !this.restored) {
          this._lastU = cursor.lastU;
          this._epoch = cursor.epoch;
          this.storedOwner = { user: cursor.user, device: cursor.device };
        }
      },
      (err: unknown) => this.em.emit('error', persistenceError(err)), // start without: the server's cursor
    ).finally(() => {
      this.restored = true;
      this.restoring = false;
      if (this.closing || this._state !== 'connecting' || this.ws) return;
      this.open();
    });
  }

  /**
   * Any command by its `t`, typed by client/commands.ts: params checked, result typed. The typed
   * methods below are built on it; it stays for commands a newer server adds.
   */
  command<T extends CommandName>(t: T, params: CommandParams<T>): Promise<CommandResult<T>> {
    return this.request(t, params);
  }

  /** Sends a command with `r`; resolves with the ok frame minus t/r (loosely typed: see command()). Waits for a connection if needed. */
  request<T = any>(t: string, fields?: object): Promise<T> {
    if (t === Command.send) return this.send((fields ?? {}) as SendParams) as Promise<any>;
    return this.issue('req', t, cleanFields(fields)).promise;
  }

  /** Sends a message through the outbox: resent with the same cid after reconnections until answered. */
  send(p: SendParams): Promise<SendResult> {
    return this.throughOutbox(Command.send, p);
  }

  /** send and forward: issued with a cid (generated when absent) and resent with it until answered. */
  private throughOutbox(t: string, p: object): Promise<SendResult> {
    const fields = cleanFields(p);
    const cid = typeof fields.cid === 'string' && fields.cid ? fields.cid : randomId();
    fields.cid = cid;
    // Same cid still pending: the server would answer it once anyway; share the answer.
    const existing = this.outbox.get(cid);
    if (existing && !existing.done) return existing.promise;
    const pending = this.issue('send', t, fields, cid);
    if (!pending.done) this.outbox.add(pending as Pending & { cid: string });
    return pending.promise;
  }

  /** A page of a thread's messages (seq cursors; newest first, or oldest first with `after`). Cached when persistence is on. */
  async history(p: HistoryParams): Promise<HistoryResult> {
    const page = await this.request<HistoryResult>(Command.history, p);
    if (this.writer) for (const m of page.messages) this.writer.noteMessage(m);
    return page;
  }

  /**
   * The newest cached messages of a thread, newest first (docs/sdk.md "Persistence"): what a page
   * shows at once after a reload, before history() answers. [] without persistence.
   */
  async cachedHistory(thread: string, limit = 50): Promise<Msg[]> {
    if (!this.store) return [];
    await this.writer!.flush();
    return this.store.loadHistory(thread, limit);
  }

  // ---- receipts and typing ----

  /** Moves your read watermark in a thread (never backwards): the authors get a `receipt` with `read`. */
  async read(p: ReadParams): Promise<void> {
    await this.command(Command.read, p);
  }

  /** An ephemeral `typing` event to the other members' online devices (burst of 5, then 1/s: rate_limited). */
  async typing(thread: string): Promise<void> {
    await this.command(Command.typing, { thread });
  }

  // ---- inbox and threads ----

  /** Messages by their words, newest first (docs/protocol.md "Search"); page on with `before: cursor`. */
  search(p: SearchParams): Promise<SearchResult> {
    return this.command(Command.search, p);
  }

  /** Your threads, the most recently updated first; pass `cursor` as `before` for the next page. */
  inbox(p: InboxParams = {}): Promise<InboxResult> {
    return this.command(Command.inbox, p);
  }

  threadGet(thread: string): Promise<ThreadRow> {
    return this.command(Command.threadGet, { thread });
  }

  /** Your own view of a thread: `muted`, `nickname` ("" clears it). */
  async threadSet(p: ThreadSetParams): Promise<void> {
    await this.command(Command.threadSet, p);
  }

  // ---- groups ----

  /** Creates a group (you are its admin) once per `cid` (generated when absent): a retry with the same cid answers the same group. */
  groupCreate(p: GroupCreateParams): Promise<{ thread: string }> {
    return this.command(Command.groupCreate, { ...p, cid: p.cid ?? randomId() });
  }

  /** Admins only; adding a member already in is a no-op. */
  async groupAdd(p: GroupMembersParams): Promise<void> {
    await this.command(Command.groupAdd, p);
  }

  /** Admins only; removing a non-member is a no-op. */
  async groupRemove(p: GroupMembersParams): Promise<void> {
    await this.command(Command.groupRemove, p);
  }

  async groupLeave(thread: string): Promise<void> {
    await this.command(Command.groupLeave, { thread });
  }

  /** Renames a group (any member). */
  async groupTitle(p: GroupTitleParams): Promise<void> {
    await this.command(Command.groupTitle, p);
  }

  /** A group's members and admins (from its thread row). */
  async groupMembers(thread: string): Promise<GroupMembers> {
    const row = await this.threadGet(thread);
    return { members: row.members, admins: row.admins ?? [] };
  }

  // ---- contacts, privacy, blocks ----

  async contactsAdd(user: string): Promise<void> {
    await this.command(Command.contactsAdd, { user });
  }

  async contactsRemove(user: string): Promise<void> {
    await this.command(Command.contactsRemove, { user });
  }

  /** Your contacts with their presence (as far as each lets you see it). */
  async contactsList(): Promise<ContactRow[]> {
    return (await this.command(Command.contactsList, {})).contacts;
  }

  /** Who sees your online state and last seen. */
  async privacySet(lastSeen: LastSeenVisibility): Promise<void> {
    await this.command(Command.privacySet, { lastSeen });
  }

  /** A blocked user cannot message you 1:1 nor see your presence. */
  async block(user: string): Promise<void> {
    await this.command(Command.block, { user });
  }

  async unblock(user: string): Promise<void> {
    await this.command(Command.unblock, { user });
  }

  async blocksList(): Promise<string[]> {
    return (await this.command(Command.blocksList, {})).users;
  }

  // ---- presence and people ----

  /**
   * Watches users' presence: resolves with their state now, then `presence` events on change.
   * Kept across reconnects: each new socket subscribes again and emits a `presence` event per
   * watched user with the state it answered (so a screen never shows what went stale offline).
   */
  async presenceSub(users: string[]): Promise<PresenceRow[]> {
    for (const u of users) this.watched.add(u);
    const rows: PresenceRow[] = [];
    for (let i = 0; i < users.length; i += PRESENCE_SUB_CHUNK) {
      rows.push(...(await this.command(Command.presenceSub, { users: users.slice(i, i + PRESENCE_SUB_CHUNK) })).presence);
    }
    return rows;
  }

  async presenceUnsub(users: string[]): Promise<void> {
    for (const u of users) this.watched.delete(u);
    for (let i = 0; i < users.length; i += PRESENCE_SUB_CHUNK) {
      await this.command(Command.presenceUnsub, { users: users.slice(i, i + PRESENCE_SUB_CHUNK) });
    }
  }

  /** The users this client watches (presenceSub), subscribed again after every reconnect. */
  get watching(): ReadonlySet<string> {
    return new Set(this.watched);
  }

  /** The account with this username (not_found otherwise). */
  userFind(username: string): Promise<UserInfo> {
    return this.command(Command.userFind, { username });
  }

  /**
   * Usernames and names for ids (a group's members, senders): in the order asked, once each;
   * deleted accounts as `{user, deleted: true}`, unknown ids left out. Any number of ids: asked
   * 100 (MAX_USERS_GET) per frame.
   */
  async usersGet(users: readonly string[]): Promise<UserLookup[]> {
    const ids = [...new Set(users)];
    const pages: Promise<{ users: UserLookup[] }>[] = [];
    for (let i = 0; i < ids.length; i += MAX_USERS_GET) pages.push(this.command(Command.usersGet, { users: ids.slice(i, i + MAX_USERS_GET) }));
    return (await Promise.all(pages)).flatMap((p) => p.users);
  }

  // ---- this account over HTTP (docs/protocol.md §11), with the client's token ----

  /** Your own `{user, username, name}`. */
  me(): Promise<UserInfo> {
    return getMe(this.httpUrl, this.token);
  }

  /** Changes your display name; resolves with the updated account. */
  setName(name: string): Promise<UserInfo> {
    return updateMe(this.httpUrl, this.token, { name });
  }

  /** Your signed-in devices (this one included: compare with `client.device`). */
  async devices(): Promise<SessionRow[]> {
    return (await listSessions(this.httpUrl, this.token)).devices;
  }

  /** Logs another of your devices out (its sockets close with 4003). */
  revokeDevice(device: string): Promise<void> {
    return revokeSession(this.httpUrl, this.token, device);
  }

  /** Ends this device's session on the server, then closes the client (sign in again to use it). */
  async logout(): Promise<void> {
    await logoutSession(this.httpUrl, this.token);
    await this.close();
  }

  // ---- scheduled messages (docs/sdk.md "Scheduled messages") ----

  /** Schedules a message once per `cid` (generated when absent): a retry with the same cid answers the same job. */
  schedule(p: ScheduleParams): Promise<ScheduledMessage> {
    return this.request(Command.schedule, { ...p, cid: p.cid ?? randomId() });
  }

  /** This user's scheduled messages (pending, and failed ones until cancelled), earliest first. */
  async scheduled(): Promise<ScheduledMessage[]> {
    return (await this.request<{ jobs: ScheduledMessage[] }>(Command.scheduleList)).jobs;
  }

  /** Cancels a scheduled message not yet sent (not_found once it was). */
  cancelScheduled(job: string): Promise<void> {
    return this.request(Command.scheduleCancel, { job });
  }

  // ---- message lifecycle (docs/sdk.md "Message lifecycle") ----

  /** Replaces the body of one of your messages (within the server's EDIT_WINDOW); members get an `edit` event. */
  edit(p: EditParams): Promise<EditResult> {
    return this.request<EditResult>(Command.edit, p);
  }

  /** forEveryone: a tombstone for all (author within the window, group admins any time); false: gone from your own devices' history only. */
  deleteMessage(p: DeleteParams): Promise<DeleteResult> {
    return this.request<DeleteResult>(Command.delete, p);
  }

  /** Your one reaction to a message (a new one replaces the old). */
  async react(p: ReactParams): Promise<void> {
    await this.request(Command.react, p);
  }

  async unreact(p: MessageRef): Promise<void> {
    await this.request(Command.unreact, p);
  }

  /** Copies a message you can read into another thread (or a 1:1 thread by `to: {to: user}`); resent with its cid like send. */
  forward(p: ForwardParams): Promise<SendResult> {
    return this.throughOutbox(Command.forward, p);
  }

  // ---- channels (docs/sdk.md "Channels") ----

  channelCreate(p: ChannelCreateParams): Promise<{ channel: string }> {
    return this.request(Command.channelCreate, p);
  }

  channelGet(p: ChannelGetParams): Promise<ChannelInfo> {
    return this.request(Command.channelGet, p);
  }

  channelAdmin(p: ChannelAdminParams): Promise<void> {
    return this.request(Command.channelAdmin, p);
  }

  /**
   * Follows a channel on this connection and after every reconnect: `cmsg` events arrive once
   * each, in order, the ones after `since` first (default: after the newest this client saw).
   */
  async channelJoin(p: ChannelJoinParams): Promise<ChannelJoinResult> {
    const known = this.followed.get(p.channel);
    const since = p.since ?? (known && known.seq >= 0 ? known.seq : undefined);
    const entry = { seq: since ?? -1, epoch: known?.epoch };
    this.followed.set(p.channel, entry);
    try {
      return await this.joinChannel(p.channel, entry, since);
    } catch (err) {
      if (this.followed.get(p.channel) === entry) this.followed.delete(p.channel);
      throw err;
    }
  }

  /** Stops following a channel (here and on later reconnects). */
  channelLeave(p: { channel: string }): Promise<void> {
    this.followed.delete(p.channel);
    return this.request(Command.channelLeave, p);
  }

  /** Posts once per `cid` (generated when absent): a retry with the same cid answers the first post. */
  channelPost(p: ChannelPostParams): Promise<ChannelPostResult> {
    return this.request(Command.channelPost, { ...p, cid: p.cid ?? randomId() });
  }

  channelHistory(p: ChannelHistoryParams): Promise<ChannelHistoryResult> {
    return this.request(Command.channelHistory, p);
  }

  /** The busiest channels of the last hour or day (docs/sdk.md "Trending channels"). */
  async trendingChannels(p: TrendingParams): Promise<TrendingChannel[]> {
    return (await this.request<{ channels: TrendingChannel[] }>(Command.channelTrending, p)).channels;
  }

  // ---- invite links (docs/sdk.md "Invite links") ----

  /** A link to a group (admins) or channel (owner, admins): `{code, url, expires, uses?}`. */
  createInvite(p: InviteCreateParams): Promise<Invite> {
    return this.request(Command.inviteCreate, p);
  }

  revokeInvite(code: string): Promise<void> {
    return this.request(Command.inviteRevoke, { code });
  }

  async listInvites(p: { thread: string } | { channel: string }): Promise<InviteListItem[]> {
    return (await this.request<{ invites: InviteListItem[] }>(Command.inviteList, p)).invites;
  }

  /**
   * Joins by an invite code (or a whole link): a group as a member; a channel is then followed on
   * this connection like channelJoin (and after reconnects).
   */
  async joinInvite(codeOrUrl: string): Promise<InviteJoinResult> {
    const code = codeOrUrl.slice(codeOrUrl.lastIndexOf('/') + 1);
    const joined = await this.request<InviteJoinResult>(Command.inviteJoin, { code });
    if (joined.kind !== 'channel') return joined;
    return { ...joined, ...(await this.channelJoin({ channel: joined.channel })) };
  }

  /**
   * Uploads a file (Uint8Array, Blob, or `{path}` in Node) in resumable chunks and resolves with
   * its media id, for `send({media})` and `channelPost({media})`.
   */
  upload(data: UploadData, opts: UploadOptions): Promise<string> {
    return uploadMedia(this.httpUrl, this.token, data, opts);
  }

  /** The bytes and type of a media this user may read (the owner, members, channel readers). */
  download(media: string): Promise<Downloaded> {
    return downloadMedia(this.httpUrl, this.token, media);
  }

  /** The channels this client follows, with the newest seq it saw in each (-1: none yet). */
  get channels(): ReadonlyMap<string, number> {
    return new Map([...this.followed].map(([c, f]) => [c, f.seq]));
  }

  private async joinChannel(channel: string, entry: { seq: number; epoch?: string }, since: number | undefined): Promise<ChannelJoinResult> {
    const fields: Record<string, unknown> = { channel };
    if (since !== undefined) {
      fields.since = since;
      if (entry.epoch !== undefined) fields.epoch = entry.epoch;
    }
    const answer = await this.request<ChannelJoinResult>(Command.channelJoin, fields);
    entry.epoch = answer.epoch;
    if (answer.reset) {
      entry.seq = answer.seq;
      this.em.emit('channelReset', { channel, seq: answer.seq });
    } else if (answer.seq > entry.seq) entry.seq = answer.seq;
    return answer;
  }

  /** After a reconnect: join every followed channel again from the newest seq seen there. */
  private rejoinChannels(): void {
    for (const [channel, entry] of this.followed) {
      this.joinChannel(channel, entry, entry.seq >= 0 ? entry.seq : undefined).catch((err: unknown) => {
        if (this.followed.get(channel) === entry && !this.closing) this.em.emit('error', err as ParleyError);
      });
    }
  }

  /** After a reconnect: watch every watched user again, and show their state now as presence events. */
  private resubscribePresence(): void {
    const users = [...this.watched];
    for (let i = 0; i < users.length; i += PRESENCE_SUB_CHUNK) {
      this.command(Command.presenceSub, { users: users.slice(i, i + PRESENCE_SUB_CHUNK) }).then(
        ({ presence }) => {
          for (const row of presence) if (this.watched.has(row.user)) this.dispatch({ t: ServerFrame.presence, ...row });
        },
        (err: unknown) => {
          if (!this.closing) this.em.emit('error', err as ParleyError);
        },
      );
    }
  }

  /** Sends {t:'ping'}; resolves with the pong's ts. */
  ping(): Promise<number> {
    return this.issue('ping', Command.ping, {}).promise;
  }

  /** Acknowledges every durable event up to u (for autoAck: false; harmless otherwise). */
  ack(u: number): void {
    if (!Number.isSafeInteger(u) || u < 0) throw new TypeError(`ack: bad u ${u}`);
    if (u > this.ackWanted) this.ackWanted = u;
    if (this.ready) this.flushAck();
  }

  on<K extends keyof ClientEvents>(event: K, fn: (ev: ClientEvents[K]) => void): () => void {
    return this.em.on(event, fn);
  }

  /** Resolves with the next matching event emitted after this call; rejects on timeout or final close. */
  next<K extends keyof ClientEvents>(
    event: K,
    predicate?: (ev: ClientEvents[K]) => boolean,
    timeoutMs = 5000,
  ): Promise<ClientEvents[K]> {
    return new Promise((resolve, reject) => {
      const finish = () => {
        clearTimeout(timer);
        off();
        this.waiters.delete(cancel);
      };
      const cancel = (err: Error) => {
        finish();
        reject(err);
      };
      const timer = setTimeout(
        () => cancel(new ParleyError(ClientErrorCode.timeout, `no '${String(event)}' event within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const off = this.em.on(event, (ev) => {
        let match: boolean;
        try {
          match = predicate ? predicate(ev) : true;
        } catch (err) {
          cancel(err as Error);
          return;
        }
        if (!match) return;
        finish();
        resolve(ev);
      });
      this.waiters.add(cancel);
    });
  }

  /** Closes with 1000 and stops reconnecting; pending requests reject with 'unavailable'. Persistence is written out first. */
  close(): Promise<void> {
    return this.closeSocket().then(() => this.writer?.flush());
  }

  private closeSocket(): Promise<void> {
    if (this.closePromise) return this.closePromise;
    this.closing = true;
    this.clearTimer('reconnectTimer');
    const ws = this.ws;
    if (!ws) {
      // Idle, already closed, or waiting to reconnect.
      const wasActive = this._state === 'connecting';
      this.setState('closed');
      if (wasActive) this.em.emit('close', { code: CloseCode.normal, reason: 'client closed', willReconnect: false });
      this.shutdown(closedError());
      return Promise.resolve();
    }
    this.closePromise = new Promise<void>((res) => this.closeWaiters.push(res));
    if (this.ready) this.flushAck(); // leave the server cursor where the app is
    try {
      ws.close(CloseCode.normal, 'client closed');
    } catch {
      // already closing
    }
    this.closeGraceTimer = setTimeout(() => {
      this.closeGraceTimer = undefined;
      if (this.ws === ws) this.drop(ABNORMAL_CLOSE, 'close timeout', true);
    }, CLOSE_GRACE_MS);
    return this.closePromise;
  }

  // ---- socket lifecycle ----

  private open(): void {
    this.setState('connecting');
    let ws: SocketLike;
    try {
      ws = new this.Ctor(this.url);
    } catch (err) {
      // A bad URL will not get better by retrying.
      this.setState('closed');
      this.shutdown(new ParleyError(ErrorCode.unavailable, `cannot open ${this.url}: ${(err as Error)?.message ?? err}`));
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.ready = false;
    this.lastRecv = Date.now();
    ws.onopen = () => {
      if (ws !== this.ws) return;
      if (this.usesJwt && this.getToken && (this.token === '' || jwtExpiresWithin(this.token, RENEW_BEFORE_MS))) {
        // The app's backend first: an expired token would only be refused (4001, no reconnect).
        this.getToken().then(
          (jwt) => {
            this.token = jwt;
            if (ws === this.ws) this.writeHello();
          },
          (err: unknown) => {
            if (ws !== this.ws) return;
            this.em.emit('error', new ParleyError(ErrorCode.unauthorized, `getToken failed: ${(err as Error)?.message ?? err}`));
            this.drop(ABNORMAL_CLOSE, 'getToken failed', true);
          },
        );
        return;
      }
      this.writeHello();
    };
    ws.onmessage = (ev) => {
      if (ws !== this.ws) return;
      this.lastRecv = Date.now();
      this.onData(ev.data);
    };
    ws.onclose = (ev) => {
      if (ws !== this.ws) return; // a socket we already dropped
      this.ws = undefined;
      this.onDisconnected(ev.code, ev.reason ?? '');
    };
    ws.onerror = () => {
      // A close event always follows; `ws` would throw on an error event without a listener.
    };
    // The server closes a silent hello after 10 s, but a stalled network would never tell us.
    this.handshakeTimer = setTimeout(() => {
      this.handshakeTimer = undefined;
      if (this.ws === ws && !this.ready) this.drop(ABNORMAL_CLOSE, 'handshake timeout', true);
    }, this.timeoutMs);
  }

  private writeHello(): void {
    const hello: Frame = this.usesJwt ? { t: Command.hello, jwt: this.token } : { t: Command.hello, token: this.token };
    if (this._lastU !== undefined) hello.since = this._lastU;
    if (this._epoch !== undefined) hello.epoch = this._epoch;
    this.write(hello);
  }

  /**
   * Replaces the application JWT (`refresh` on the open socket; used by the next hello and HTTP
   * call too). Rejects with unauthorized when the server refuses it (another user or device, expired).
   */
  async refreshToken(jwt: string): Promise<void> {
    if (!this.usesJwt) throw new TypeError('ParleyClient: refreshToken is for clients signed in with a jwt');
    this.token = jwt;
    if (this.ready) await this.request(Command.refresh, { jwt });
  }

  /** The server asks for a new token: with getToken the client answers by itself. */
  private onRefresh(f: Frame): void {
    const exp = Number(f.exp);
    this.em.emit('refresh', { t: 'refresh', exp });
    if (!this.getToken) return;
    this.getToken().then(
      (jwt) => this.refreshToken(jwt),
    ).catch((err: unknown) => {
      if (!this.closing) this.em.emit('error', err instanceof ParleyError ? err : new ParleyError(ErrorCode.unauthorized, `getToken failed: ${(err as Error)?.message ?? err}`));
    });
  }

  /** Detaches the current socket now (its late events are ignored) and handles the disconnection. */
  private drop(code: number, reason: string, dead: boolean, reconnectDelay?: number): void {
    const ws = this.ws;
    if (!ws) return;
    this.ws = undefined;
    try {
      if (dead && typeof ws.terminate === 'function') ws.terminate();
      else ws.close(CloseCode.normal, reason);
    } catch {
      // already closing
    }
    this.onDisconnected(code, reason, reconnectDelay);
  }

  private onDisconnected(code: number, reason: string, reconnectDelay?: number): void {
    this.ready = false;
    this.clearTimer('handshakeTimer');
    this.clearTimer('ackTimer');
    this.clearTimer('closeGraceTimer');
    if (this.hbTimer !== undefined) clearInterval(this.hbTimer);
    this.hbTimer = undefined;

    const lost = () => new ParleyError(ErrorCode.unavailable, `connection lost (${code}${reason ? ' ' + reason : ''})`);
    const pings = this.pings;
    this.pings = [];
    for (const p of pings) if (p) this.settle(p, lost());
    // Written but unanswered: sends are idempotent by cid and go again; the rest fail.
    const inflight = Array.from(this.inflight.values());
    this.inflight.clear();
    for (const p of inflight) {
      p.r = undefined;
      if (p.kind === 'send') {
        this.clearPendingTimer(p);
        p.written = false;
        this.enqueue(p, false);
      } else {
        this.settle(p, lost());
      }
    }

    const authFailed = code === CloseCode.notAuthenticated || code === CloseCode.revoked;
    // Banned by the operator: every reconnect would be refused the same way until the ban is lifted.
    const banned = code === CloseCode.banned;
    const willReconnect = !this.closing && !authFailed && !banned && this.backoff !== undefined;
    this.setState(willReconnect ? 'connecting' : 'closed');
    const info: CloseInfo = { code, reason, willReconnect };
    this.em.emit('close', info);

    if (!willReconnect) {
      const err = this.closing
        ? closedError()
        : authFailed
          ? new ParleyError(ErrorCode.unauthorized, this.kick?.reason || reason || `session closed (${code})`)
          : banned
            ? new ParleyError(ErrorCode.forbidden, reason || 'banned')
            : new ParleyError(ErrorCode.unavailable, `connection closed (${code}${reason ? ' ' + reason : ''})`);
      this.shutdown(err);
      return;
    }
    if (this.closing) return; // a 'close' listener called close(), which already shut down
    const delay = reconnectDelay ?? backoffDelay(this.attempt++, this.backoff!);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.closing) this.open();
    }, delay);
  }

  /** Final close: fail everything still waiting, clear every timer. */
  private shutdown(err: Error): void {
    this.ready = false;
    this.setState('closed');
    for (const k of ['reconnectTimer', 'handshakeTimer', 'ackTimer', 'closeGraceTimer'] as const) this.clearTimer(k);
    if (this.hbTimer !== undefined) clearInterval(this.hbTimer);
    this.hbTimer = undefined;

    for (const p of this.queue.splice(0)) this.settle(p, err);
    for (const p of Array.from(this.inflight.values())) this.settle(p, err);
    this.inflight.clear();
    for (const p of this.pings) if (p) this.settle(p, err);
    this.pings = [];
    for (const p of this.outbox.entries()) this.settle(p, err); // those waiting to retry
    const cw = this.connectWaiter;
    this.connectWaiter = undefined;
    cw?.reject(err);
    for (const cancel of Array.from(this.waiters)) cancel(err);
    const closed = this.closeWaiters.splice(0);
    this.closePromise = undefined;
    for (const res of closed) res();
  }

  // ---- incoming frames ----

  private onData(data: unknown): void {
    let bytes: Uint8Array;
    if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
    else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    else return this.protocolError('non-binary frame from server');
    let f: any;
    try {
      f = decodeFrame(bytes);
    } catch (err) {
      return this.protocolError(`undecodable frame: ${(err as Error)?.message ?? err}`);
    }
    if (!f || typeof f !== 'object' || typeof f.t !== 'string') return this.protocolError('frame without t');
    this.onFrame(f as Frame);
  }

  private protocolError(msg: string): void {
    this.em.emit('error', new ParleyError(ErrorCode.bad_frame, msg));
  }

  private onFrame(f: Frame): void {
    switch (f.t) {
      case ServerFrame.ok:
      case ServerFrame.err:
        return this.onReply(f);
      case ServerFrame.welcome:
        return this.onWelcome(f);
      case ServerFrame.synced:
        return this.onSynced(f);
      case ServerFrame.pong:
        return this.onPong(f);
      case ServerFrame.kick:
        this.kick = f as KickEvent;
        return this.dispatch(f);
      case ServerFrame.refresh:
        return this.onRefresh(f);
      case ServerFrame.cmsg: {
        const entry = this.followed.get(f.channel);
        if (entry && typeof f.seq === 'number') {
          if (f.seq <= entry.seq) return; // seen before this reconnect's replay
          entry.seq = f.seq;
        }
        return this.dispatch(f);
      }
    }
    // Any frame with `u` is durable (§2), even a kind this client version does not know:
    // skipping its u would look like a gap.
    if (typeof f.u === 'number') this.onDurable(f);
    else this.dispatch(f);
  }

  private onWelcome(f: Frame): void {
    this.clearTimer('handshakeTimer');
    this.ready = true;
    this.ackedU = -1; // a new socket: whatever was acked on the old one may not have arrived
    this._user = f.user;
    this._device = f.device;
    this.hbMs = (typeof f.heartbeat === 'number' && f.heartbeat > 0 ? f.heartbeat : DEFAULT_HEARTBEAT_S) * 1000;
    this.setState('syncing');
    if (typeof f.epoch === 'string') this._epoch = f.epoch;
    const first = typeof f.first === 'number' && f.first > 0 ? f.first : 1;
    const reset = f.reset === true;
    // After a reset the old cursor means nothing; below `first` the log was trimmed: no gap to chase.
    if (reset || (this._lastU !== undefined && this._lastU < first - 1)) this._lastU = first - 1;
    if (reset) this.ackWanted = -1;
    if (this.writer && this.storedOwner && (this.storedOwner.user !== f.user || this.storedOwner.device !== f.device)) {
      // The stored cursor is another account's or device's: its `since` means nothing in this log.
      this.storedOwner = undefined;
      this.writer.noteClear();
      this._lastU = undefined;
      this.ackWanted = -1;
      this.em.emit('reset', { epoch: this._epoch ?? '', first });
      this.drop(CloseCode.normal, 'stored cursor of another device', false, 0);
      return;
    }
    this.storedOwner = undefined;
    if (reset) this.writer?.noteClear();
    this.startHeartbeat();
    this.flush();
    this.em.emit('welcome', f as ClientEvents['welcome']);
    if (reset) this.em.emit('reset', { epoch: this._epoch ?? '', first });
  }

  private onSynced(f: Frame): void {
    const u = typeof f.u === 'number' ? f.u : 0;
    // Nothing replayed from the server-side cursor: we stand at the log's end.
    if (this._lastU === undefined) this._lastU = u;
    this.syncedU = u;
    this.attempt = 0;
    this.setState('live');
    if (this.autoAck && this._lastU > this.ackWanted) this.ackWanted = this._lastU;
    if (this.ackWanted > 0) this.scheduleAck(); // re-ack on every new socket
    const cw = this.connectWaiter;
    this.connectWaiter = undefined;
    this.rejoinChannels();
    if (this.everSynced) this.resubscribePresence();
    this.everSynced = true;
    cw?.resolve({ user: this._user!, device: this._device!, u });
    this.em.emit('synced', f as ClientEvents['synced']);
  }

  private onDurable(f: Frame): void {
    const u: number = f.u;
    const last = this._lastU;
    if (last !== undefined) {
      if (u <= last) return; // already dispatched (replay/live overlap, or a resend)
      if (u > last + 1) {
        if (this.gapAt === last && this.gapCount >= MAX_GAP_RESYNCS) {
          this.em.emit(
            'error',
            new ParleyError(ErrorCode.internal, `event gap after u=${last} (got ${u}) persists after ${this.gapCount} resyncs; accepting`),
          );
        } else {
          this.gapCount = this.gapAt === last ? this.gapCount + 1 : 1;
          this.gapAt = last;
          // Reconnect with since=lastU so the server replays what is missing; immediately the first time.
          this.drop(CloseCode.normal, 'resync', false, this.gapCount === 1 ? 0 : undefined);
          return;
        }
      }
    }
    this._lastU = u;
    this.dispatch(f);
    if (this.writer) this.cacheEvent(f);
    if (this.autoAck) {
      if (u > this.ackWanted) this.ackWanted = u;
      this.scheduleAck();
    }
  }

  /** What a durable event changes in the cached history (reaction counts are left to history pages). */
  private cacheEvent(f: Frame): void {
    const w = this.writer!;
    switch (f.t) {
      case ServerFrame.msg:
        return w.noteMessage(f as unknown as Msg);
      case ServerFrame.edit:
        return w.notePatch({ thread: f.thread, seq: f.seq, set: { body: f.body, edited: f.edited } });
      case ServerFrame.deleted:
        if (f.forEveryone === false) return w.noteRemoved(f.thread, f.seq);
        return w.notePatch({ thread: f.thread, seq: f.seq, set: { deleted: f.deleted }, unset: TOMBSTONE_DROPS });
      case ServerFrame.reaction:
        if (f.user !== this._user) return;
        return w.notePatch(f.emoji === null
          ? { thread: f.thread, seq: f.seq, set: {}, unset: ['myReaction'] }
          : { thread: f.thread, seq: f.seq, set: { myReaction: f.emoji } });
    }
  }

  private dispatch(f: Frame): void {
    if (NAMED_EVENTS.has(f.t)) this.em.emit(f.t as keyof ClientEvents, f as any);
    this.em.emit('event', f as ClientEvents['event']);
  }

  private onReply(f: Frame): void {
    if (typeof f.r !== 'number') {
      // Failure of a command sent without r (ack, typing, ...), or a protocol complaint.
      if (f.t === ServerFrame.err) this.em.emit('error', errorFromFrame(f));
      return;
    }
    const p = this.inflight.get(f.r);
    if (!p) return; // timed out already
    this.inflight.delete(f.r);
    p.r = undefined;
    if (f.t === ServerFrame.ok) {
      const { t: _t, r: _r, ...result } = f;
      this.settle(p, undefined, p.kind === 'send' ? { ...result, cid: p.cid } : result);
      return;
    }
    const err = errorFromFrame(f);
    if (p.kind === 'send' && isRetryable(err.code)) this.retryLater(p, err);
    else this.settle(p, err);
  }

  private onPong(f: Frame): void {
    const p = this.pings.shift(); // the server answers pings in order
    if (p) this.settle(p, undefined, typeof f.ts === 'number' ? f.ts : Date.now());
  }

  // ---- outgoing ----

  private issue(kind: PendingKind, t: string, fields: Record<string, unknown>, cid?: string): Pending {
    const p = newPending(this.nextSeq++, kind, t, fields);
    if (cid !== undefined) p.cid = cid;
    if (this._state === 'closed' || this.closing) {
      this.settle(p, new ParleyError(ErrorCode.unavailable, 'client is closed'));
      return p;
    }
    // A send's clock runs per write (it may wait out an outage); others time out from the call.
    if (kind !== 'send') p.timer = setTimeout(() => this.settle(p, timeoutError(t, this.timeoutMs)), this.timeoutMs);
    this.enqueue(p, true);
    return p;
  }

  /** Queues p in issue order and writes what can be written. */
  private enqueue(p: Pending, flush: boolean): void {
    let i = this.queue.length;
    while (i > 0 && this.queue[i - 1]!.seq > p.seq) i--;
    this.queue.splice(i, 0, p);
    if (flush) this.flush();
  }

  private flush(): void {
    if (!this.ready || this.queue.length === 0) return;
    // Sends keep their order: none is written while an earlier one waits out a retry (the
    // server's `retry` differs per refusal, so independent timers would let a later one overtake).
    const held = this.firstRetryWaiting();
    const keep: Pending[] = [];
    for (const p of this.queue.splice(0)) {
      if (p.kind === 'send' && p.seq > held) keep.push(p);
      else this.writePending(p);
    }
    this.queue.push(...keep);
  }

  /** The seq of the oldest send waiting on its retry timer (Infinity: none). */
  private firstRetryWaiting(): number {
    let first = Infinity;
    for (const p of this.outbox.entries()) if (p.retryTimer !== undefined && p.seq < first) first = p.seq;
    return first;
  }

  private writePending(p: Pending): void {
    p.written = true;
    if (p.kind === 'ping') {
      this.pings.push(p);
      this.write({ t: Command.ping });
      return;
    }
    const r = this.nextR++;
    p.r = r;
    this.inflight.set(r, p);
    if (p.kind === 'send') p.timer = setTimeout(() => this.settle(p, timeoutError(p.t, this.timeoutMs)), this.timeoutMs);
    this.write({ ...p.fields, t: p.t, r });
  }

  /** rate_limited: wait `retry`; unavailable/internal: back off; then resend with the same cid. */
  private retryLater(p: Pending, err: ParleyError): void {
    this.clearPendingTimer(p);
    p.written = false;
    const delay = err.retry ?? backoffDelay(p.attempts, this.backoff ?? DEFAULT_BACKOFF);
    p.attempts++;
    // Said, so an app can show why the message waits ("try again in N s") instead of a silent clock.
    if (p.cid !== undefined) this.em.emit('sendRetry', { cid: p.cid, t: p.t, error: err, delay, attempt: p.attempts });
    p.retryTimer = setTimeout(() => {
      p.retryTimer = undefined;
      if (!p.done) this.enqueue(p, true);
    }, delay);
  }

  private write(frame: Frame): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return; // lost; onclose will requeue or fail what needs it
    try {
      ws.send(encodeFrame(frame));
    } catch (err) {
      this.em.emit('error', new ParleyError(ErrorCode.internal, `cannot send: ${(err as Error)?.message ?? err}`));
    }
  }

  private scheduleAck(): void {
    if (this.ackTimer !== undefined || !this.ready) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      this.flushAck();
    }, ACK_DELAY_MS);
  }

  private flushAck(): void {
    this.clearTimer('ackTimer');
    if (!this.ready || this.ackWanted <= this.ackedU || this.ackWanted < 0) return;
    this.ackedU = this.ackWanted;
    this.write({ t: Command.ack, u: this.ackWanted });
    if (this.writer && this._user !== undefined && this._device !== undefined) {
      this.writer.noteCursor({ user: this._user, device: this._device, epoch: this._epoch, lastU: this.ackWanted });
    }
  }

  private startHeartbeat(): void {
    if (this.hbTimer !== undefined) clearInterval(this.hbTimer);
    this.lastRecv = Date.now();
    this.hbTimer = setInterval(() => {
      // Every ping gets a pong, so silence this long means a dead peer or network.
      if (Date.now() - this.lastRecv > 2 * this.hbMs) {
        this.drop(ABNORMAL_CLOSE, 'heartbeat timeout', true);
        return;
      }
      this.pings.push(null);
      this.write({ t: Command.ping });
    }, this.hbMs);
  }

  // ---- bookkeeping ----

  private settle(p: Pending, err?: Error, value?: unknown): void {
    if (p.done) return;
    p.done = true;
    this.clearPendingTimer(p);
    const wasWaiting = p.retryTimer !== undefined;
    if (wasWaiting) clearTimeout(p.retryTimer);
    p.retryTimer = undefined;
    if (p.r !== undefined) {
      this.inflight.delete(p.r);
      p.r = undefined;
    }
    if (!p.written) {
      const i = this.queue.indexOf(p);
      if (i >= 0) this.queue.splice(i, 1);
    }
    if (p.kind === 'ping') {
      const i = this.pings.indexOf(p);
      if (i >= 0) this.pings[i] = null; // keep the slot: pongs match pings by position
    }
    this.outbox.remove(p);
    if (wasWaiting) this.flush(); // the sends held behind it may go
    if (err) p.reject(err);
    else p.resolve(value);
  }

  private clearPendingTimer(p: Pending): void {
    if (p.timer !== undefined) clearTimeout(p.timer);
    p.timer = undefined;
  }

  private clearTimer(k: 'reconnectTimer' | 'handshakeTimer' | 'ackTimer' | 'closeGraceTimer'): void {
    const t = this[k];
    if (t !== undefined) clearTimeout(t);
    this[k] = undefined;
  }
}

function persistenceError(err: unknown): ParleyError {
  return new ParleyError(ClientErrorCode.persistence, `persistence: ${(err as Error)?.message ?? err}`);
}

function closedError(): ParleyError {
  return new ParleyError(ErrorCode.unavailable, 'client closed');
}

function timeoutError(t: string, ms: number): ParleyError {
  return new ParleyError(ClientErrorCode.timeout, `'${t}' not answered within ${ms} ms`);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The JWT's exp is within `ms` (or unreadable): its payload read without verifying (the server verifies). */
function jwtExpiresWithin(jwt: string, ms: number): boolean {
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const exp = (JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4))) as { exp?: unknown }).exp;
    return typeof exp !== 'number' || exp * 1000 - Date.now() < ms;
  } catch {
    return true;
  }
}
