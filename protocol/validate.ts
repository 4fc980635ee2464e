// Validation of client frames and HTTP bodies with TypeBox schemas compiled once at start-up
// into plain checking functions: no parse-and-allocate on the hot path. Unknown fields are
// allowed and ignored (docs/protocol.md §2): `knownFields` copies a valid frame's known fields into a
// new object, so nothing unvalidated travels further than the gateway.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Command, MAX_USERS_GET } from './codes.js';
import { ID_PATTERN } from './ids.js';
import { queryTerms } from './search-words.js';

const MAX_INT = Number.MAX_SAFE_INTEGER;
const Id = Type.String({ pattern: ID_PATTERN });
const UInt = Type.Integer({ minimum: 0, maximum: MAX_INT });
const Seq = Type.Integer({ minimum: 1, maximum: MAX_INT });
const open = { additionalProperties: true } as const;
const frame = <T extends string, P extends Record<string, TSchema>>(t: T, props: P) =>
  Type.Object({ t: Type.Literal(t), r: Type.Optional(UInt), ...props }, open);

/**
 * Body text: ≤ 16 KiB of UTF-8, checked by bodyTooLarge after the schema so that a long body
 * answers too_large, not bad_frame; the frame size limit bounds what the schema lets through.
 */
export const MAX_BODY_BYTES = 16 * 1024;
export const MAX_CID_CHARS = 64;
/** A reaction: 1–16 bytes of UTF-8, no control characters or white space (checkEmoji). */
export const MAX_EMOJI_BYTES = 16;
/** search: the query's length, and results per page (docs/protocol.md "Search"). */
export const MAX_SEARCH_QUERY_CHARS = 256;
export const MAX_SEARCH_LIMIT = 50;
/** A group, creator included (docs/protocol.md §4). */
export const MAX_GROUP_MEMBERS = 1024;
/** Users one socket may watch with presence.sub (docs/protocol.md §4). */
export const MAX_PRESENCE_SUBS = 1000;
/** Push providers a device may register with (docs/protocol.md §8.5). */
export const PUSH_PROVIDER_NAMES = ['webhook', 'webpush', 'apns', 'fcm'] as const;
/** Usernames, as registered and as looked up (docs/protocol.md §11, §8.8). */
export const USERNAME_PATTERN = '^[a-z0-9_.]{3,32}$';
const Username = Type.String({ pattern: USERNAME_PATTERN });
/** Channel names: the same alphabet as usernames (docs/protocol.md §8.3). */
export const CHANNEL_NAME_PATTERN = USERNAME_PATTERN;
const ChannelName = Type.String({ pattern: CHANNEL_NAME_PATTERN });
/** Channels one socket may have joined at once (docs/protocol.md §8.3). */
export const MAX_CHANNELS_PER_SOCKET = 1000;
/** Admins of one channel, owner excluded. */
export const MAX_CHANNEL_ADMINS = 100;
const Cid = Type.String({ minLength: 1, maxLength: MAX_CID_CHARS });
/** An application JWT (src/auth/jwt-verifier.ts MAX_JWT_CHARS). */
export const MAX_JWT_CHARS = 8192;
const Jwt = Type.String({ minLength: 1, maxLength: MAX_JWT_CHARS });
const DisplayName = Type.String({ minLength: 1, maxLength: 64 });
const Title = Type.String({ minLength: 1, maxLength: 100 });
/** Invite codes: 12 base62 characters, ~71 bits from crypto randomness (actors/invite-book.ts). */
export const INVITE_CODE_PATTERN = '^[A-Za-z0-9]{12}$';
const InviteCode = Type.String({ pattern: INVITE_CODE_PATTERN });
/** invite.create: expires is seconds from now; the default and the bounds (docs/protocol.md "Invite links"). */
export const INVITE_DEFAULT_EXPIRES_S = 7 * 24 * 3600;
export const INVITE_MAX_EXPIRES_S = 365 * 24 * 3600;
export const INVITE_MAX_USES = 1_000_000;
/** channel.trending: windows and the largest limit. */
export const TRENDING_WINDOWS = ['1h', '24h'] as const;
export const MAX_TRENDING_LIMIT = 50;
const Users = (max: number) => Type.Array(Id, { minItems: 1, maxItems: max });

/** A MIME type as `type/subtype` with optional parameters: what Content-Type will say on download. */
const Mime = Type.String({ minLength: 3, maxLength: 255, pattern: '^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*( *;[ -~]*)?$' });
const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$' });
/** A file name shown to receivers: no path separators or control characters. */
const FileName = Type.String({ minLength: 1, maxLength: 255, pattern: '^[^/\\\\\\u0000-\\u001f\\u007f]+$' });

export const Frames = {
  // exactly one of token (a session token) and jwt (an application JWT): checkHello
  [Command.hello]: frame(Command.hello, {
    token: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
    jwt: Type.Optional(Jwt),
    since: Type.Optional(UInt),
    // the log lineage the device's cursor belongs to (docs/protocol.md §3); same alphabet as ids
    epoch: Type.Optional(Type.String({ pattern: ID_PATTERN })),
  }),
  [Command.refresh]: frame(Command.refresh, { jwt: Jwt }),
  [Command.ping]: frame(Command.ping, {}),
  [Command.ack]: frame(Command.ack, { u: UInt }),
  [Command.send]: frame(Command.send, {
    cid: Cid,
    thread: Type.Optional(Id),
    to: Type.Optional(Id),
    body: Type.Optional(Type.String()),
    // the id of a media uploaded by the sender (docs/protocol.md §8.4)
    media: Type.Optional(Id),
    // a seq of the thread (validated, quoted in history) or, as in v1, a message id (kept as given)
    reply: Type.Optional(Type.Union([Seq, Id])),
  }),
  [Command.history]: frame(Command.history, {
    thread: Id,
    before: Type.Optional(Seq),
    after: Type.Optional(UInt),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
  }),
  [Command.read]: frame(Command.read, { thread: Id, seq: Seq }),
  [Command.typing]: frame(Command.typing, { thread: Id }),
  [Command.inbox]: frame(Command.inbox, {
    before: Type.Optional(Type.String({ minLength: 3, maxLength: 64 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
  }),
  [Command.threadGet]: frame(Command.threadGet, { thread: Id }),
  [Command.threadSet]: frame(Command.threadSet, {
    thread: Id,
    muted: Type.Optional(Type.Boolean()),
    nickname: Type.Optional(Type.String({ maxLength: 64 })),
  }),
  [Command.groupCreate]: frame(Command.groupCreate, {
    title: Title,
    members: Type.Array(Id, { maxItems: MAX_GROUP_MEMBERS }),
    // idempotency key like send's: a retry with the same cid reaches the same group
    cid: Type.Optional(Cid),
  }),
  [Command.groupAdd]: frame(Command.groupAdd, { thread: Id, users: Users(MAX_GROUP_MEMBERS) }),
  [Command.groupRemove]: frame(Command.groupRemove, { thread: Id, users: Users(MAX_GROUP_MEMBERS) }),
  [Command.groupLeave]: frame(Command.groupLeave, { thread: Id }),
  [Command.groupTitle]: frame(Command.groupTitle, { thread: Id, title: Title }),
  [Command.contactsAdd]: frame(Command.contactsAdd, { user: Id }),
  [Command.contactsRemove]: frame(Command.contactsRemove, { user: Id }),
  [Command.contactsList]: frame(Command.contactsList, {}),
  [Command.privacySet]: frame(Command.privacySet, { lastSeen: Type.Union([Type.Literal('everyone'), Type.Literal('contacts'), Type.Literal('nobody')]) }),
  [Command.block]: frame(Command.block, { user: Id }),
  [Command.unblock]: frame(Command.unblock, { user: Id }),
  [Command.blocksList]: frame(Command.blocksList, {}),
  [Command.presenceSub]: frame(Command.presenceSub, { users: Users(MAX_PRESENCE_SUBS) }),
  [Command.presenceUnsub]: frame(Command.presenceUnsub, { users: Users(MAX_PRESENCE_SUBS) }),
  [Command.userFind]: frame(Command.userFind, { username: Username }),
  [Command.usersGet]: frame(Command.usersGet, { users: Users(MAX_USERS_GET) }),
  [Command.channelCreate]: frame(Command.channelCreate, {
    name: ChannelName,
    title: Title,
    mode: Type.Optional(Type.Union([Type.Literal('broadcast'), Type.Literal('open')])),
  }),
  [Command.channelGet]: frame(Command.channelGet, { channel: Type.Optional(Id), name: Type.Optional(ChannelName) }),
  [Command.channelAdmin]: frame(Command.channelAdmin, { channel: Id, user: Id, admin: Type.Boolean() }),
  [Command.channelJoin]: frame(Command.channelJoin, {
    channel: Id,
    since: Type.Optional(UInt),
    epoch: Type.Optional(Type.String({ pattern: ID_PATTERN })),
  }),
  [Command.channelLeave]: frame(Command.channelLeave, { channel: Id }),
  [Command.channelPost]: frame(Command.channelPost, { channel: Id, cid: Cid, body: Type.Optional(Type.String()), media: Type.Optional(Id) }),
  [Command.channelHistory]: frame(Command.channelHistory, {
    channel: Id,
    before: Type.Optional(Seq),
    after: Type.Optional(UInt),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
  }),
  [Command.schedule]: frame(Command.schedule, {
    // like send's: a retry with the same cid answers the same job
    cid: Cid,
    thread: Type.Optional(Id),
    to: Type.Optional(Id),
    body: Type.String({ minLength: 1 }),
    // as send's: a seq of the thread or a message id
    reply: Type.Optional(Type.Union([Seq, Id])),
    // when to send, ms since the epoch (checked against the server's clock by the user actor)
    at: UInt,
  }),
  [Command.scheduleList]: frame(Command.scheduleList, {}),
  [Command.scheduleCancel]: frame(Command.scheduleCancel, { job: Id }),
  [Command.channelTrending]: frame(Command.channelTrending, {
    window: Type.Union(TRENDING_WINDOWS.map((w) => Type.Literal(w))),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_TRENDING_LIMIT })),
  }),
  [Command.inviteCreate]: frame(Command.inviteCreate, {
    thread: Type.Optional(Id),
    channel: Type.Optional(Id),
    expires: Type.Optional(Type.Integer({ minimum: 1, maximum: INVITE_MAX_EXPIRES_S })),
    uses: Type.Optional(Type.Integer({ minimum: 1, maximum: INVITE_MAX_USES })),
  }),
  [Command.inviteRevoke]: frame(Command.inviteRevoke, { code: InviteCode }),
  [Command.inviteList]: frame(Command.inviteList, { thread: Type.Optional(Id), channel: Type.Optional(Id) }),
  // Any string up to 64: a malformed code is a failed guess like an unknown one (rate-limited), not bad_frame.
  [Command.inviteJoin]: frame(Command.inviteJoin, { code: Type.String({ minLength: 1, maxLength: 64 }) }),
  // Message lifecycle (docs/protocol.md "Message lifecycle"); edit's body is also checked by bodyTooLarge
  [Command.edit]: frame(Command.edit, { thread: Id, seq: Seq, body: Type.String({ minLength: 1 }) }),
  [Command.delete]: frame(Command.delete, { thread: Id, seq: Seq, forEveryone: Type.Boolean() }),
  [Command.react]: frame(Command.react, { thread: Id, seq: Seq, emoji: Type.String({ minLength: 1, maxLength: MAX_EMOJI_BYTES }) }),
  [Command.unreact]: frame(Command.unreact, { thread: Id, seq: Seq }),
  [Command.forward]: frame(Command.forward, {
    from: Type.Object({ thread: Id, seq: Seq }, open),
    to: Type.Object({ thread: Type.Optional(Id), to: Type.Optional(Id) }, open),
    cid: Cid,
  }),
  // Search (docs/protocol.md "Search"); a q without a single word is refused by checkSearch
  [Command.search]: frame(Command.search, {
    q: Type.String({ minLength: 1, maxLength: MAX_SEARCH_QUERY_CHARS }),
    thread: Type.Optional(Id),
    before: Type.Optional(Id),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_SEARCH_LIMIT })),
  }),
} as const;

export type FrameOf<T extends keyof typeof Frames> = Static<(typeof Frames)[T]>;

export interface Checker {
  /** null when valid, else a short reason naming the first bad field */
  (value: unknown): string | null;
}

function compile(schema: TSchema): Checker {
  const c = TypeCompiler.Compile(schema);
  return (value) => {
    if (c.Check(value)) return null;
    const first = c.Errors(value).First();
    return first ? `${first.path || '/'}: ${first.message}` : 'invalid';
  };
}

/** Compiled checkers for every command this server implements, by `t`. */
export const frameCheckers: ReadonlyMap<string, Checker> = new Map(Object.entries(Frames).map(([t, s]) => [t, compile(s)]));

type Copier = (value: any) => any;

/**
 * A function copying what `schema` knows of a value that passed it: objects become new plain
 * objects holding only the schema's properties (recursively), arrays of objects are copied item
 * by item; strings, numbers and arrays of them are immutable or validated whole, so kept as they
 * are. Null where the value itself may be kept.
 */
function copierOf(schema: TSchema): Copier | null {
  if (schema.type === 'object' && schema.properties) {
    const keys = Object.keys(schema.properties as Record<string, TSchema>);
    const copiers = keys.map((k) => copierOf((schema.properties as Record<string, TSchema>)[k]));
    return (value: Record<string, unknown>) => {
      const out: Record<string, unknown> = {};
      for (let i = 0; i < keys.length; i++) {
        const v = value[keys[i]];
        if (v === undefined) continue;
        const copy = copiers[i];
        out[keys[i]] = copy === null ? v : copy(v);
      }
      return out;
    };
  }
  if (schema.type === 'array' && schema.items) {
    const item = copierOf(schema.items as TSchema);
    return item === null ? null : (value: unknown[]) => value.map(item);
  }
  return null;
}

const frameCopiers: ReadonlyMap<string, Copier> = new Map(Object.entries(Frames).map(([t, s]) => [t, copierOf(s)!]));

/**
 * The fields of a VALID frame (frameCheckers said null) that its schema knows, as a new object:
 * unknown fields, whatever they hold, stay behind. What the gateway routes is this copy.
 */
export function knownFields<T extends keyof typeof Frames>(t: T, frame: unknown): FrameOf<T>;
export function knownFields(t: string, frame: unknown): Record<string, unknown>;
export function knownFields(t: string, frame: unknown): Record<string, unknown> {
  const copy = frameCopiers.get(t);
  if (!copy) throw new Error(`knownFields: no schema for ${t}`);
  return copy(frame);
}

/** Field rules a schema cannot say. */
export function checkHello(f: FrameOf<'hello'>): string | null {
  return (f.token === undefined) === (f.jwt === undefined) ? 'exactly one of token or jwt is required' : null;
}

export function checkSend(f: FrameOf<'send'>): string | null {
  if ((f.thread === undefined) === (f.to === undefined)) return 'exactly one of thread or to is required';
  if (f.body === undefined && f.media === undefined) return 'one of body or media is required';
  return null;
}

export function checkSchedule(f: FrameOf<'schedule'>): string | null {
  return (f.thread === undefined) === (f.to === undefined) ? 'exactly one of thread or to is required' : null;
}

export function checkChannelPost(f: FrameOf<'channel.post'>): string | null {
  return f.body === undefined && f.media === undefined ? 'one of body or media is required' : null;
}

/** channel.get names its channel one way. */
export function checkChannelGet(f: FrameOf<'channel.get'>): string | null {
  return (f.channel === undefined) === (f.name === undefined) ? 'exactly one of channel or name is required' : null;
}

/** invite.create and invite.list name a group or a channel. */
export function checkInviteTarget(f: { thread?: string; channel?: string }): string | null {
  return (f.thread === undefined) === (f.channel === undefined) ? 'exactly one of thread or channel is required' : null;
}

/** A query must hold a word: punctuation alone matches nothing, and saying so beats an empty page. */
export function checkSearch(f: FrameOf<'search'>): string | null {
  return queryTerms(f.q).length === 0 ? 'q: no words to search for (letters or digits)' : null;
}

/** forward names its target one way, like send. */
export function checkForward(f: FrameOf<'forward'>): string | null {
  return (f.to.thread === undefined) === (f.to.to === undefined) ? 'to: exactly one of thread or to is required' : null;
}

/**
 * A reaction is a short string — one or a few emoji graphemes — of at most MAX_EMOJI_BYTES bytes
 * of UTF-8, without control characters or white space. Which graphemes are emoji is the clients'
 * business (new emoji arrive every year); the server bounds what it stores.
 */
export function checkEmoji(emoji: string): string | null {
  if (Buffer.byteLength(emoji) > MAX_EMOJI_BYTES) return `emoji: at most ${MAX_EMOJI_BYTES} bytes of UTF-8`;
  if (/[\p{Cc}\p{White_Space}\p{Zl}\p{Zp}]/u.test(emoji)) return 'emoji: no control characters or white space';
  return null;
}

export function bodyTooLarge(body: string | undefined): boolean {
  // Cheap bound first: a string of n UTF-16 units takes at most 3n UTF-8 bytes.
  return body !== undefined && body.length * 3 > MAX_BODY_BYTES && Buffer.byteLength(body) > MAX_BODY_BYTES;
}

/** What a server API key may do (docs/protocol.md "Server API"); admin may do everything. */
export const API_SCOPES = ['messages', 'users', 'channels', 'admin'] as const;
export type ApiScope = (typeof API_SCOPES)[number];
/** API keys, given (API_KEYS) or made: at least 24 characters of the bearer token alphabet. */
export const API_KEY_PATTERN = '^[A-Za-z0-9_-]{24,512}$';
/** A user in the server API: the application's id (printable ASCII, ≤ 128) or Parley's own id. */
const AppUserRef = Type.String({ minLength: 1, maxLength: 128, pattern: '^[\\x21-\\x7e]+$' });

// ---- HTTP bodies (docs/protocol.md §11) ----
export const Bodies = {
  createUser: Type.Object(
    {
      username: Username,
      password: Type.String({ minLength: 8, maxLength: 128 }),
      name: Type.Optional(DisplayName),
    },
    open,
  ),
  createSession: Type.Object(
    {
      username: Type.String({ minLength: 1, maxLength: 32 }),
      password: Type.String({ minLength: 1, maxLength: 128 }),
      device: Type.String({ minLength: 1, maxLength: 64 }),
    },
    open,
  ),
  /** PATCH /v1/users/me (docs/protocol.md §4) */
  updateUser: Type.Object({ name: DisplayName }, open),
  /** POST /v1/users/me/password (docs/protocol.md "Sessions"): the new one follows the sign-up rule */
  changePassword: Type.Object(
    { old: Type.String({ minLength: 1, maxLength: 128 }), new: Type.String({ minLength: 8, maxLength: 128 }) },
    open,
  ),
  /** POST /v1/media (docs/protocol.md "Media"); the size limit is the server's MEDIA_MAX_BYTES */
  createMedia: Type.Object(
    { mime: Mime, size: UInt, sha256: Sha256, name: Type.Optional(FileName) },
    open,
  ),
  /** POST /v1/push (docs/protocol.md "Push"); the token's shape is the provider's to check */
  registerPush: Type.Object(
    { provider: Type.Union(PUSH_PROVIDER_NAMES.map((p) => Type.Literal(p))), token: Type.String({ minLength: 1, maxLength: 4096 }) },
    open,
  ),
  // ---- the server API (docs/protocol.md "Server API") ----
  /** POST /v1/server/users: create or update the user bound to an app id */
  serverUser: Type.Object({ id: AppUserRef, name: Type.Optional(DisplayName), bot: Type.Optional(Type.Boolean()) }, open),
  /** PATCH /v1/server/users/:id */
  serverUserPatch: Type.Object({ name: Type.Optional(DisplayName), bot: Type.Optional(Type.Boolean()) }, open),
  /** POST /v1/server/messages: exactly one of thread or to, one of body or media (checkSend's rules) */
  serverMessage: Type.Object(
    { as: AppUserRef, thread: Type.Optional(Id), to: Type.Optional(AppUserRef), body: Type.Optional(Type.String()), media: Type.Optional(Id), reply: Type.Optional(Id) },
    open,
  ),
  /** POST /v1/server/groups */
  serverGroup: Type.Object({ as: AppUserRef, title: Title, members: Type.Array(AppUserRef, { maxItems: MAX_GROUP_MEMBERS }) }, open),
  /** POST /v1/server/groups/:thread/members: at least one of add or remove */
  serverGroupMembers: Type.Object(
    { as: Type.Optional(AppUserRef), add: Type.Optional(Type.Array(AppUserRef, { minItems: 1, maxItems: MAX_GROUP_MEMBERS })), remove: Type.Optional(Type.Array(AppUserRef, { minItems: 1, maxItems: MAX_GROUP_MEMBERS })) },
    open,
  ),
  /** POST /v1/server/channels */
  serverChannel: Type.Object({ as: AppUserRef, name: ChannelName, title: Title, mode: Type.Optional(Type.Union([Type.Literal('broadcast'), Type.Literal('open')])) }, open),
  /** POST /v1/server/channels/:channel/posts */
  serverChannelPost: Type.Object({ as: AppUserRef, body: Type.Optional(Type.String()), media: Type.Optional(Id) }, open),
  /** POST /v1/server/users/:id/ban (the reason goes into the close frame: ≤ 100 bytes, printable ASCII) */
  serverBan: Type.Object({ reason: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: '^[\\x20-\\x7e]+$' })) }, open),
  /** POST /v1/server/keys */
  serverKey: Type.Object({ name: DisplayName, scopes: Type.Array(Type.Union(API_SCOPES.map((sc) => Type.Literal(sc))), { minItems: 1, maxItems: API_SCOPES.length }) }, open),
} as const;

export const bodyCheckers = {
  createUser: compile(Bodies.createUser),
  createSession: compile(Bodies.createSession),
  updateUser: compile(Bodies.updateUser),
  changePassword: compile(Bodies.changePassword),
  createMedia: compile(Bodies.createMedia),
  registerPush: compile(Bodies.registerPush),
  serverUser: compile(Bodies.serverUser),
  serverUserPatch: compile(Bodies.serverUserPatch),
  serverMessage: compile(Bodies.serverMessage),
  serverGroup: compile(Bodies.serverGroup),
  serverGroupMembers: compile(Bodies.serverGroupMembers),
  serverChannel: compile(Bodies.serverChannel),
  serverChannelPost: compile(Bodies.serverChannelPost),
  serverBan: compile(Bodies.serverBan),
  serverKey: compile(Bodies.serverKey),
};
export type BodyOf<K extends keyof typeof Bodies> = Static<(typeof Bodies)[K]>;
