// The one table of wire codes (docs/protocol.md §2): frame types, error codes, close codes.
// Everything else imports names from here; no bare strings or numbers for these elsewhere.

/** Commands a client may send (`t` of a client frame). */
export const Command = {
  hello: 'hello',
  /** a new application JWT for this socket (docs/protocol.md §3 "Application tokens") */
  refresh: 'refresh',
  ping: 'ping',
  ack: 'ack',
  send: 'send',
  history: 'history',
  read: 'read',
  typing: 'typing',
  inbox: 'inbox',
  threadGet: 'thread.get',
  threadSet: 'thread.set',
  groupCreate: 'group.create',
  groupAdd: 'group.add',
  groupRemove: 'group.remove',
  groupLeave: 'group.leave',
  groupTitle: 'group.title',
  contactsAdd: 'contacts.add',
  contactsRemove: 'contacts.remove',
  contactsList: 'contacts.list',
  presenceSub: 'presence.sub',
  presenceUnsub: 'presence.unsub',
  /** username → account (docs/protocol.md §4) */
  userFind: 'user.find',
  /** user ids → their usernames and names (docs/protocol.md §4) */
  usersGet: 'users.get',
  privacySet: 'privacy.set',
  block: 'block',
  unblock: 'unblock',
  blocksList: 'blocks.list',
  channelCreate: 'channel.create',
  channelGet: 'channel.get',
  channelAdmin: 'channel.admin',
  channelJoin: 'channel.join',
  channelLeave: 'channel.leave',
  channelPost: 'channel.post',
  channelHistory: 'channel.history',
  /** scheduled messages (docs/protocol.md "Scheduled messages") */
  schedule: 'schedule',
  scheduleList: 'schedule.list',
  scheduleCancel: 'schedule.cancel',
  /** the busiest channels of the last hour or day (docs/protocol.md "Trending channels") */
  channelTrending: 'channel.trending',
  /** invite links to a group or channel (docs/protocol.md "Invite links") */
  inviteCreate: 'invite.create',
  inviteRevoke: 'invite.revoke',
  inviteList: 'invite.list',
  inviteJoin: 'invite.join',
  // Message lifecycle (docs/protocol.md "Message lifecycle")
  edit: 'edit',
  delete: 'delete',
  react: 'react',
  unreact: 'unreact',
  forward: 'forward',
  /** the caller's messages by their words (docs/protocol.md "Search") */
  search: 'search',
} as const;

/** Ids in one users.get (a group of 1024 members is looked up in 11 frames; the SDK pages for you). */
export const MAX_USERS_GET = 100;
export type Command = (typeof Command)[keyof typeof Command];

/** Frames the server sends (`t` of a server frame). */
export const ServerFrame = {
  ok: 'ok',
  err: 'err',
  welcome: 'welcome',
  synced: 'synced',
  pong: 'pong',
  msg: 'msg',
  receipt: 'receipt',
  thread: 'thread',
  presence: 'presence',
  typing: 'typing',
  cmsg: 'cmsg',
  kick: 'kick',
  /** the socket's application JWT expires soon: send `refresh {jwt}` */
  refresh: 'refresh',
  edit: 'edit',
  deleted: 'deleted',
  reaction: 'reaction',
} as const;
export type ServerFrame = (typeof ServerFrame)[keyof typeof ServerFrame];

/** Error codes of `err` frames and HTTP error bodies, with their HTTP status. */
export const ErrorCode = {
  bad_frame: 'bad_frame',
  unauthorized: 'unauthorized',
  forbidden: 'forbidden',
  not_found: 'not_found',
  conflict: 'conflict',
  too_large: 'too_large',
  rate_limited: 'rate_limited',
  unavailable: 'unavailable',
  internal: 'internal',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export const HttpStatusOf: Record<ErrorCode, number> = {
  bad_frame: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  rate_limited: 429,
  unavailable: 503,
  internal: 500,
};

/** WebSocket close codes (docs/protocol.md §2). */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  /** the server part holding this session restarted: reconnect and replay */
  serviceRestart: 1012,
  tooLarge: 1009,
  protocolError: 4000,
  notAuthenticated: 4001,
  /** the operator's backend disconnected this user's sockets (server API); reconnecting is allowed */
  disconnected: 4002,
  revoked: 4003,
  /** the user is banned (server API): do not reconnect until the operator lifts the ban */
  banned: 4004,
  rateLimited: 4008,
  slowConsumer: 4009,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** Events that carry `u` and are stored in the user log. */
export const DurableEvents: ReadonlySet<string> = new Set([
  ServerFrame.msg, ServerFrame.receipt, ServerFrame.thread, ServerFrame.edit, ServerFrame.deleted, ServerFrame.reaction,
]);
