// Validation of client frames and HTTP bodies with TypeBox schemas compiled once at start-up
// into plain checking functions: no parse-and-allocate on the hot path. Unknown fields are
// allowed and ignored (PROTOCOL.md §2).
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Command } from './codes.js';
import { ID_PATTERN } from './ids.js';

const MAX_INT = Number.MAX_SAFE_INTEGER;
const Id = Type.String({ pattern: ID_PATTERN });
const UInt = Type.Integer({ minimum: 0, maximum: MAX_INT });
const Seq = Type.Integer({ minimum: 1, maximum: MAX_INT });
const open = { additionalProperties: true } as const;
const frame = <T extends string, P extends Record<string, TSchema>>(t: T, props: P) =>
  Type.Object({ t: Type.Literal(t), r: Type.Optional(UInt), ...props }, open);

/** Body text: ≤ 16 KiB of UTF-8; the character bound here, the byte bound in checkBody. */
export const MAX_BODY_BYTES = 16 * 1024;
export const MAX_CID_CHARS = 64;
/** A group, creator included (PROTOCOL.md §4). */
export const MAX_GROUP_MEMBERS = 1024;
/** Users one socket may watch with presence.sub (PROTOCOL.md §4). */
export const MAX_PRESENCE_SUBS = 1000;
const Title = Type.String({ minLength: 1, maxLength: 100 });
const Users = (max: number) => Type.Array(Id, { minItems: 1, maxItems: max });

export const Media = Type.Object(
  { id: Id, mime: Type.String({ minLength: 1, maxLength: 255 }), size: UInt, sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }), name: Type.Optional(Type.String({ maxLength: 255 })) },
  open,
);

export const Frames = {
  [Command.hello]: frame(Command.hello, { token: Type.String({ minLength: 1, maxLength: 512 }), since: Type.Optional(UInt) }),
  [Command.ping]: frame(Command.ping, {}),
  [Command.ack]: frame(Command.ack, { u: UInt }),
  [Command.send]: frame(Command.send, {
    cid: Type.String({ minLength: 1, maxLength: MAX_CID_CHARS }),
    thread: Type.Optional(Id),
    to: Type.Optional(Id),
    body: Type.Optional(Type.String({ maxLength: MAX_BODY_BYTES })),
    media: Type.Optional(Media),
    reply: Type.Optional(Id),
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
  [Command.groupCreate]: frame(Command.groupCreate, { title: Title, members: Type.Array(Id, { maxItems: MAX_GROUP_MEMBERS }) }),
  [Command.groupAdd]: frame(Command.groupAdd, { thread: Id, users: Users(MAX_GROUP_MEMBERS) }),
  [Command.groupRemove]: frame(Command.groupRemove, { thread: Id, users: Users(MAX_GROUP_MEMBERS) }),
  [Command.groupLeave]: frame(Command.groupLeave, { thread: Id }),
  [Command.groupTitle]: frame(Command.groupTitle, { thread: Id, title: Title }),
  [Command.contactsAdd]: frame(Command.contactsAdd, { user: Id }),
  [Command.contactsRemove]: frame(Command.contactsRemove, { user: Id }),
  [Command.contactsList]: frame(Command.contactsList, {}),
  [Command.presenceSub]: frame(Command.presenceSub, { users: Users(MAX_PRESENCE_SUBS) }),
  [Command.presenceUnsub]: frame(Command.presenceUnsub, { users: Users(MAX_PRESENCE_SUBS) }),
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

/** Field rules a schema cannot say. */
export function checkSend(f: FrameOf<'send'>): string | null {
  if ((f.thread === undefined) === (f.to === undefined)) return 'exactly one of thread or to is required';
  if (f.body === undefined && f.media === undefined) return 'one of body or media is required';
  return null;
}

export function bodyTooLarge(body: string | undefined): boolean {
  // Cheap bound first: a string of n UTF-16 units takes at most 3n UTF-8 bytes.
  return body !== undefined && body.length * 3 > MAX_BODY_BYTES && Buffer.byteLength(body) > MAX_BODY_BYTES;
}

// ---- HTTP bodies (PROTOCOL.md §7) ----
export const Bodies = {
  createUser: Type.Object(
    {
      username: Type.String({ pattern: '^[a-z0-9_.]{3,32}$' }),
      password: Type.String({ minLength: 8, maxLength: 128 }),
      name: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
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
} as const;

export const bodyCheckers = {
  createUser: compile(Bodies.createUser),
  createSession: compile(Bodies.createSession),
};
export type BodyOf<K extends keyof typeof Bodies> = Static<(typeof Bodies)[K]>;
