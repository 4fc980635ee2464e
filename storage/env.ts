// The LMDB environment: one data directory, opened by every thread, with one named database
// per log or table. Also owns the commit barrier that output commit waits on.
import { mkdirSync } from 'node:fs';
import { open, type Database, type RootDatabase } from 'lmdb';

/** fsync: a commit is flushed to disk before outputs go; relaxed: committed only (OS page cache). */
export type Durability = 'fsync' | 'relaxed';

/** Every named database. Keys are lmdb-js ordered keys; values msgpack unless noted. */
export interface Databases {
  /** user → UserRecord */
  users: Database<UserRecord, string>;
  /** username → user */
  usernames: Database<string, string>;
  /** the operator's application's user id (JWT `sub`) → AppUserRecord (src/auth/app-users.ts; the deletion tombstone by the user actor) */
  appUsers: Database<AppUserRecord, string>;
  /** user → Credential */
  credentials: Database<Credential, string>;
  /** sha256(token) as hex → SessionRecord (written by the user actor; read by the edge to authenticate) */
  sessions: Database<SessionRecord, string>;
  /** [user, device] → DeviceRecord (written by the user actor: login, logout) */
  devices: Database<DeviceRecord, [string, string]>;
  /** [user, device] → CursorRecord (written by the user actor only) */
  cursors: Database<CursorRecord, [string, string]>;
  /** [user, u] → the encoded event frame, exactly the bytes a device receives (binary) */
  userLog: Database<Buffer, [string, number]>;
  /** [thread, seq] → StoredMessage */
  threadLog: Database<StoredMessage, [string, number]>;
  /**
   * [thread, first seq] → a block of the search index: the last seq and a Bloom filter of the
   * terms of the messages first…last (binary; storage/search-blocks.ts; written by the thread
   * actor only). Empty when SEARCH=off.
   */
  searchBlocks: Database<Buffer, [string, number]>;
  /** thread → ThreadMeta */
  threads: Database<ThreadMeta, string>;
  /** [thread, user, cid] → SendResult: client-id dedupe, per sender per thread (written by the thread actor only) */
  dedupe: Database<DedupeRecord, [string, string, string]>;
  /** thread → the first message seq and event eseq whose fan-out is not yet confirmed */
  fanout: Database<PendingFanout, string>;
  /** [thread, eseq] → ThreadEvent: membership and title changes, in order */
  threadEvents: Database<ThreadEvent, [string, number]>;
  /** [thread, user] → Watermarks: delivered and read receipts (written by the thread actor) */
  watermarks: Database<Watermarks, [string, string]>;
  /** [user, thread] → InboxRow (written by the user actor only) */
  inbox: Database<InboxRow, [string, string]>;
  /** [user, contact] → ContactRecord (written by the user actor) */
  contacts: Database<ContactRecord, [string, string]>;
  /** user → PresenceRecord: last announced presence (written by the user actor) */
  presence: Database<PresenceRecord, string>;
  /** channel → ChannelMeta (written by the channel actor only) */
  channels: Database<ChannelMeta, string>;
  /** [channel, seq] → the encoded `cmsg` frame, exactly the bytes a subscriber receives (binary) */
  channelLog: Database<Buffer, [string, number]>;
  /** [channel, user, cid] → ChannelPostResult: client-id dedupe of posts (written by the channel actor only) */
  channelDedupe: Database<ChannelPostResult, [string, string, string]>;
  /** media id → MediaRecord: an upload's metadata (written by the gateway's media routes) */
  media: Database<MediaRecord, string>;
  /** [sha256 hex, media id] → null: the media records whose bytes are the blob named by that hash */
  mediaBlobs: Database<null, [string, string]>;
  /** [media id, thread or channel id, seq] → null: the messages and posts that carry a media (read access, retention) */
  mediaRefs: Database<null, [string, string, number]>;
  /** [log, id] → RetentionRecord: what the retention sweeper deleted of one log (storage/retention.ts) */
  retention: Database<RetentionRecord, [RetainedLog, string]>;
  /** user → PrivacyRecord: who may see their presence (written by the user actor; absent = the default) */
  privacy: Database<PrivacyRecord, string>;
  /** [user, blocked user] → BlockRecord (written by the blocker's user actor) */
  blocks: Database<BlockRecord, [string, string]>;
  /** [user, device] → PushRegistration: where a device's notifications go (written by the user actor) */
  pushRegistrations: Database<PushRegistration, [string, string]>;
  /** [user, device, thread] → PushJob: the pending notification of a thread for an offline device */
  pushJobs: Database<PushJob, [string, string, string]>;
  /** [due, user, device, thread] → null: pending notifications by when they are due (src/push/push-dispatcher.ts) */
  pushQueue: Database<null, [number, string, string, string]>;
  /** [user, job] → ScheduledJob: a user's scheduled messages (written by the user actor; run and marked failed by src/scheduler/) */
  scheduledJobs: Database<ScheduledJob, [string, string]>;
  /** [at, user, job] → null: pending scheduled messages by when they are due (src/scheduler/message-scheduler.ts) */
  scheduleQueue: Database<null, [number, string, string]>;
  /** user → DeletionRecord: an account deletion under way (actors/account-deletion.ts; resumed at start-up) */
  deletions: Database<DeletionRecord, string>;
  /** [metric, resolution ms, bucket start ms] → value: the gateway's metrics history (src/metrics-history.ts) */
  metricSeries: Database<number, [string, number, number]>;
  /**
   * invite code → InviteRecord (actors/invite-book.ts). Each record is written only by the actor
   * that owns its target — the thread actor of its group or the channel actor of its channel —
   * so no key has two writers; the gateway reads it to route invite.join and GET /i/:code.
   */
  invites: Database<InviteRecord, string>;
  /** [thread or channel id, code] → null: a target's invites (invite.list, pruning); same writer as `invites` */
  inviteIndex: Database<null, [string, string]>;
  /** [code, user] → when: who joined a channel through a limited-use invite (a second join uses none); written by the channel actor */
  inviteJoins: Database<number, [string, string]>;
  /** facts about the data directory itself, e.g. `epoch` (storage/epoch.ts) */
  meta: Database<string, string>;
  /** API key id → ApiKeyRecord: server API keys created over HTTP (written by the gateway: src/server-api/api-keys.ts) */
  apiKeys: Database<ApiKeyRecord, string>;
  /** [API key id, Idempotency-Key] → IdempotencyRecord: stored answers of the server API (written by the gateway: src/server-api/idempotency.ts) */
  idempotency: Database<IdempotencyRecord, [string, string]>;
  /** user → BanRecord: banned by the server API (written by the user actor) */
  bans: Database<BanRecord, string>;
  /**
   * [shard, n] → OutboxEvent: webhook events (src/webhooks/events.ts) appended by a shard's actors in
   * the commit of what they describe; the gateway's dispatcher moves them to webhookLog and deletes them.
   * Empty when WEBHOOK_URL is unset.
   */
  webhookOutbox: Database<OutboxEvent, [number, number]>;
  /** global event id → OutboxEvent: the replayable event log (written by the gateway's webhook dispatcher only) */
  webhookLog: Database<OutboxEvent, number>;
  /** `next` (the next global id), `delivered` (the newest id the receiver accepted) (webhook dispatcher only) */
  webhookState: Database<number, string>;
}

/**
 * `deleted`: a deleted account's tombstone (no username, name "Deleted account"; keeps the id taken).
 * `username` is '' for an application's user that was given none (not findable by username);
 * `appId`: the application's id for the user (docs/operator-guide.md); `bot`: a bot account.
 */
export interface UserRecord { user: string; username: string; name: string; created: number; deleted?: number; appId?: string; bot?: boolean }
/** An application user id's binding; `deleted` once the account was deleted (refused at sign-in until recreated). */
export interface AppUserRecord { user: string; deleted?: number }
export interface Credential { salt: Buffer; hash: Buffer; cost: number }
export interface SessionRecord { user: string; device: string; created: number }
/**
 * `used`: the session's last use (hello or a 🔒 route), recorded at most once per SessionClock interval.
 * tokenHash '': a device of application JWTs, with no session row (src/auth/jwt-verifier.ts).
 */
export interface DeviceRecord { name: string; created: number; tokenHash: string; used?: number }
export interface CursorRecord { u: number; lastSeen: number }
export interface StoredMessage {
  seq: number; id: string; from: string; device: string; ts: number;
  body?: string; media?: MediaObject; reply?: string;
  /** the sender's client id; shown only to the sender */
  cid?: string;
  /** sent by a bot account through the server API (docs/protocol.md "Server API") */
  bot?: boolean;
  // Message lifecycle (docs/architecture.md "Message lifecycle"): the thread actor rewrites the
  // entry in place; the user logs keep the frames as they were written.
  /** the seq `reply` names, when the sender gave a seq (validated; history quotes it) */
  replySeq?: number;
  /** copied from another message by `forward` */
  forwarded?: true;
  /** when the body was last edited */
  edited?: number;
  /** deleted for everyone at this time: a tombstone without body or media */
  deleted?: number;
  /** user → their reaction (one per user) */
  reactions?: Record<string, string>;
  /** members who deleted it for themselves only: their history skips it */
  hiddenFor?: string[];
}
export interface ThreadMeta {
  thread: string; kind: 'direct' | 'group'; members: string[]; admins: string[];
  title: string; created: number;
  /** per member: the last seq before they joined; history and delivery start after it */
  joined: Record<string, number>;
  /** groups: who created it and with which cid (a retried group.create answers the same thread) */
  createdBy?: string; cid?: string;
}
export interface DedupeRecord { thread: string; seq: number; id: string; ts: number }
export interface PendingFanout { seq: number; eseq: number }
export type ThreadEventKind = 'created' | 'added' | 'removed' | 'left' | 'title' | MessageEventKind;
/** Changes to one message (seq), logged as their own frames: `edit`, `deleted`, `reaction`. */
export type MessageEventKind = 'edit' | 'deleted' | 'reaction';
export interface ThreadEvent {
  eseq: number; event: ThreadEventKind; by: string; ts: number;
  users?: string[]; title?: string;
  /**
   * who is told: the members after the change, plus whoever was removed or left. Absent (message
   * events): the members at the time it is told — they all confirm it, whether they log it or not.
   */
  to?: string[];
  /** message events: the message, its new body (edit), reaction (null: taken back) */
  seq?: number; body?: string; emoji?: string | null;
  /** message events: only these members log it (others only confirm); absent: every member */
  only?: string[];
  /** message events: members who do not log it (they joined after the message; they only confirm) */
  except?: string[];
  /** a `deleted` for the caller only (delete {forEveryone: false}) */
  mine?: true;
}
export interface Watermarks { delivered: number; read: number }
export interface InboxRow {
  thread: string;
  /** newest message seq and event eseq in this user's log (makes delivery idempotent) */
  lastSeq: number; lastEvent: number;
  updated: number; unread: number; readSeq: number;
  muted: boolean; nickname?: string;
  last?: StoredMessage;
  /** false once the user was removed or left: the row stays, as in every chat app */
  member: boolean;
}
export type ChannelMode = 'broadcast' | 'open';
export interface ChannelMeta {
  channel: string; name: string; title: string; mode: ChannelMode;
  owner: string; admins: string[]; created: number;
}
/** An invite link (docs/protocol.md "Invite links"); `uses` 0 = unlimited, `used` counts joins. */
export interface InviteRecord {
  code: string; kind: 'group' | 'channel'; target: string; by: string;
  created: number; expires: number; uses: number; used: number;
}
export interface ChannelPostResult { seq: number; id: string; ts: number }
/** What a message or post carries of a media (docs/protocol.md §5). */
export interface MediaObject { id: string; mime: string; size: number; sha256: string; name?: string }
export interface MediaRecord {
  media: string; owner: string; mime: string; size: number; sha256: string; name?: string;
  created: number;
  /** pending until a PUT's bytes matched size and sha256; then the blob named by sha256 holds them */
  state: 'pending' | 'ready';
}
/** The logs the retention sweeper trims: thread log, thread events, user log, channel log. */
export type RetainedLog = 'thread' | 'events' | 'user' | 'channel';
export interface RetentionRecord {
  /** the newest seq (eseq, u) deleted: the log keeps (floor, head], and its head is at least this */
  floor: number;
  /** user log only: [time, u] — every entry up to u was written by then (taken by the sweeper) */
  marks?: [number, number][];
}
export type LastSeenVisibility = 'everyone' | 'contacts' | 'nobody';
export interface PrivacyRecord { lastSeen: LastSeenVisibility }
export interface BlockRecord { at: number }
export interface PushRegistration { provider: string; token: string; created: number }
/**
 * A notification waiting to go (docs/architecture.md "Push"): written by the user actor in the
 * commit that logs the message; later messages of the thread replace `u`, `seq` and `from` and
 * keep `due`; the dispatcher sends, retries (`attempts`, a later `due`) and deletes it.
 */
export interface PushJob {
  u: number; seq: number; from: string; due: number; attempts: number;
  /** the thread's unread count for the user when message `u` was logged */
  unread: number;
}
export interface ContactRecord { added: number }
/**
 * A scheduled message (docs/protocol.md "Scheduled messages"): sent as `send {thread, body,
 * reply, cid: "sched:" + job}` from `device` at `at`, so the thread's cid dedupe makes a run after a
 * crash answer the first one. `failed`: the send was refused for good (kept until cancelled).
 */
export interface ScheduledJob {
  job: string; device: string; thread: string; to?: string; body: string; reply?: string | number;
  at: number; created: number;
  failed?: { code: string; message: string; at: number };
}
export interface DeletionRecord { at: number }
export interface PresenceRecord { online: boolean; last: number; boot: string }
/** A server API key: only the sha256 of the secret is kept (shown once, at creation). */
export interface ApiKeyRecord { id: string; hash: string; name: string; scopes: string[]; created: number }
/** A mutating server API call's answer, replayed for the same Idempotency-Key; `request`: sha256 of route + body. */
export interface IdempotencyRecord { request: string; status: number; body: unknown; at: number }
export interface BanRecord { at: number; reason?: string }
/** One webhook event as stored: its type, when it happened (ms) and its fields (docs/protocol.md "Event webhooks"). */
export interface OutboxEvent { type: string; ts: number; data: Record<string, unknown> }

export interface StorageEnv {
  readonly root: RootDatabase;
  readonly db: Databases;
  readonly durability: Durability;
  /**
   * Resolves when every write issued so far by this thread is committed (relaxed) or also
   * flushed to disk (fsync). Output commit releases replies only after this.
   */
  barrier(): Promise<unknown>;
  /**
   * Runs `fn`, whose writes all go into one transaction, more cheaply than one by one (lmdb-js
   * `batch`). Resolves once they are committed; rejects if that commit fails.
   */
  writeBatch(fn: () => void): Promise<unknown>;
  /** Moves this thread's read snapshot to the newest commit (writes from other threads). */
  refresh(): void;
  /** Write transactions committed in this data directory since it was made, by every thread (LMDB's last txn id). */
  transactions(): number;
  close(): Promise<void>;
}

/** `readOnly`: for the operator's tools (src/cli/): nothing is created or written. */
export function openStorage(dataDir: string, durability: Durability, options: { readOnly?: boolean } = {}): StorageEnv {
  if (!options.readOnly) mkdirSync(dataDir, { recursive: true });
  const root = open({
    readOnly: options.readOnly ?? false,
    path: dataDir,
    // DATA_DIR is always a directory: lmdb-js would take "/tmp/tmp.AbC" for a file name.
    noSubdir: false,
    maxDbs: 64,
    // A large map: LMDB reserves address space, not memory. 64 GiB is far from any limit here.
    mapSize: 64 * 1024 ** 3,
    // relaxed: no fsync at all. A killed process loses nothing (the OS has the pages); a power
    // loss may lose the last commits. fsync: lmdb-js default overlappingSync + waiting on `flushed`.
    noSync: durability === 'relaxed',
  });
  const sub = <V, K extends import('lmdb').Key>(name: string, encoding?: 'binary') =>
    root.openDB<V, K>({ name, ...(encoding ? { encoding } : {}) });
  const db: Databases = {
    users: sub('users'),
    usernames: sub('usernames'),
    appUsers: sub('app-users'),
    credentials: sub('credentials'),
    sessions: sub('sessions'),
    devices: sub('devices'),
    cursors: sub('cursors'),
    userLog: sub('user-log', 'binary'),
    threadLog: sub('thread-log'),
    searchBlocks: sub('search-blocks', 'binary'),
    threads: sub('threads'),
    dedupe: sub('dedupe'),
    fanout: sub('fanout'),
    threadEvents: sub('thread-events'),
    watermarks: sub('watermarks'),
    inbox: sub('inbox'),
    contacts: sub('contacts'),
    presence: sub('presence'),
    channels: sub('channels'),
    channelLog: sub('channel-log', 'binary'),
    channelDedupe: sub('channel-dedupe'),
    media: sub('media'),
    mediaBlobs: sub('media-blobs'),
    mediaRefs: sub('media-refs'),
    retention: sub('retention'),
    privacy: sub('privacy'),
    blocks: sub('blocks'),
    pushRegistrations: sub('push-registrations'),
    pushJobs: sub('push-jobs'),
    pushQueue: sub('push-queue'),
    scheduledJobs: sub('scheduled-jobs'),
    scheduleQueue: sub('schedule-queue'),
    deletions: sub('deletions'),
    metricSeries: sub('metric-series'),
    invites: sub('invites'),
    inviteIndex: sub('invite-index'),
    inviteJoins: sub('invite-joins'),
    meta: sub('meta'),
    apiKeys: sub('api-keys'),
    idempotency: sub('idempotency'),
    bans: sub('bans'),
    webhookOutbox: sub('webhook-outbox'),
    webhookLog: sub('webhook-log'),
    webhookState: sub('webhook-state'),
  };
  return {
    root,
    db,
    durability,
    barrier: () => (durability === 'fsync' ? root.flushed : root.committed) as unknown as Promise<unknown>,
    writeBatch: (fn) => root.batch(fn) as Promise<unknown>,
    refresh: () => root.resetReadTxn(),
    transactions: () => (root.getStats() as { lastTxnId: number }).lastTxnId,
    close: () => root.close(),
  };
}
