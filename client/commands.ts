// The typed command table: every WebSocket command's parameters and `ok` result
// (docs/protocol.md §4), so `request(t, params)` is typed for each `t` the server implements.
import type { Command } from '../protocol/codes.js';
import type {
  ChannelAdminParams,
  ChannelCreateParams,
  ChannelGetParams,
  ChannelHistoryParams,
  ChannelHistoryResult,
  ChannelInfo,
  ChannelJoinResult,
  ChannelPostResult,
  ContactRow,
  DeleteResult,
  EditResult,
  HistoryParams,
  HistoryResult,
  InboxResult,
  Msg,
  Invite,
  InviteJoinResult,
  InviteListItem,
  PresenceRow,
  ScheduledMessage,
  SendResult,
  ThreadRow,
  TrendingChannel,
} from './types.js';

/** Who sees your online state and last seen (docs/protocol.md "Contacts, presence"). */
export type LastSeenVisibility = 'everyone' | 'contacts' | 'nobody';

/** An account as `user.find` and `GET /v1/users/…` show it. */
export interface UserInfo {
  user: string;
  username: string;
  name: string;
}

/** `users.get`: an account as `UserInfo`, or a deleted one (its name went with it). */
export type UserLookup = UserInfo | { user: string; deleted: true };

export interface ReadParams { thread: string; seq: number }
export interface InboxParams {
  /** the `cursor` of the previous page */
  before?: string;
  /** 1–100, default 50 */
  limit?: number;
}
export interface ThreadSetParams {
  thread: string;
  muted?: boolean;
  /** at most 64 characters; "" clears it */
  nickname?: string;
}
export interface GroupCreateParams {
  /** 1–100 characters */
  title: string;
  /** the other members (the creator is added and made admin); up to 1023 */
  members: string[];
  /** idempotency key: a retry with the same cid answers the same group (generated when absent) */
  cid?: string;
}
export interface GroupCreateResult { thread: string }
export interface SearchParams {
  /** 1–256 characters holding at least one word; every word must be in a result (docs/protocol.md "Search") */
  q: string;
  /** only this thread (else every thread in the inbox) */
  thread?: string;
  /** the `cursor` of the previous page */
  before?: string;
  /** 1–50, default 20 */
  limit?: number;
}
/** A message as history shows it, with where the query's words are in its body: [start, end) UTF-16 offsets. */
export type SearchHit = Msg & { highlights: [number, number][] };
export interface SearchResult {
  messages: SearchHit[];
  more: boolean;
  /** with more: the `before` of the next page */
  cursor?: string;
}
export interface GroupMembersParams { thread: string; users: string[] }
export interface GroupTitleParams { thread: string; title: string }
/** A group's members and admins, from its thread row. */
export interface GroupMembers { members: string[]; admins: string[] }

type Empty = Record<string, never>;
type ThreadOnly = { thread: string };
type UserOnly = { user: string };
type UsersOnly = { users: string[] };

/** t → {params, result} of every command a client sends with `r` (hello, ack and ping are the session's own). */
export interface Commands {
  [Command.send]: { params: { cid: string; thread?: string; to?: string; body?: string; media?: string; reply?: number | string }; result: Omit<SendResult, 'cid'> };
  [Command.history]: { params: HistoryParams; result: HistoryResult };
  [Command.read]: { params: ReadParams; result: Empty };
  [Command.typing]: { params: ThreadOnly; result: Empty };
  [Command.inbox]: { params: InboxParams; result: InboxResult };
  [Command.threadGet]: { params: ThreadOnly; result: ThreadRow };
  [Command.threadSet]: { params: ThreadSetParams; result: Empty };
  [Command.groupCreate]: { params: GroupCreateParams; result: GroupCreateResult };
  [Command.groupAdd]: { params: GroupMembersParams; result: Empty };
  [Command.groupRemove]: { params: GroupMembersParams; result: Empty };
  [Command.groupLeave]: { params: ThreadOnly; result: Empty };
  [Command.groupTitle]: { params: GroupTitleParams; result: Empty };
  [Command.contactsAdd]: { params: UserOnly; result: Empty };
  [Command.contactsRemove]: { params: UserOnly; result: Empty };
  [Command.contactsList]: { params: Empty; result: { contacts: ContactRow[] } };
  [Command.privacySet]: { params: { lastSeen: LastSeenVisibility }; result: Empty };
  [Command.block]: { params: UserOnly; result: Empty };
  [Command.unblock]: { params: UserOnly; result: Empty };
  [Command.blocksList]: { params: Empty; result: UsersOnly };
  [Command.presenceSub]: { params: UsersOnly; result: { presence: PresenceRow[] } };
  [Command.presenceUnsub]: { params: UsersOnly; result: Empty };
  [Command.userFind]: { params: { username: string }; result: UserInfo };
  [Command.usersGet]: { params: { users: string[] }; result: { users: UserLookup[] } };
  [Command.refresh]: { params: { jwt: string }; result: { exp: number } };
  [Command.channelCreate]: { params: ChannelCreateParams; result: { channel: string } };
  [Command.channelGet]: { params: ChannelGetParams; result: ChannelInfo };
  [Command.channelAdmin]: { params: ChannelAdminParams; result: Empty };
  [Command.channelJoin]: { params: { channel: string; since?: number; epoch?: string }; result: ChannelJoinResult };
  [Command.channelLeave]: { params: { channel: string }; result: Empty };
  [Command.channelPost]: { params: { channel: string; cid: string; body?: string; media?: string }; result: ChannelPostResult };
  [Command.channelHistory]: { params: ChannelHistoryParams; result: ChannelHistoryResult };
  [Command.channelTrending]: { params: { window: '1h' | '24h'; limit?: number }; result: { channels: TrendingChannel[] } };
  [Command.schedule]: { params: { cid: string; thread?: string; to?: string; body: string; reply?: string | number; at: number }; result: ScheduledMessage };
  [Command.scheduleList]: { params: Empty; result: { jobs: ScheduledMessage[] } };
  [Command.scheduleCancel]: { params: { job: string }; result: Empty };
  [Command.inviteCreate]: { params: ({ thread: string } | { channel: string }) & { expires?: number; uses?: number }; result: Invite };
  [Command.inviteRevoke]: { params: { code: string }; result: Empty };
  [Command.inviteList]: { params: { thread: string } | { channel: string }; result: { invites: InviteListItem[] } };
  [Command.inviteJoin]: { params: { code: string }; result: InviteJoinResult };
  [Command.edit]: { params: { thread: string; seq: number; body: string }; result: EditResult };
  [Command.delete]: { params: { thread: string; seq: number; forEveryone: boolean }; result: DeleteResult };
  [Command.react]: { params: { thread: string; seq: number; emoji: string }; result: Empty };
  [Command.unreact]: { params: { thread: string; seq: number }; result: Empty };
  [Command.search]: { params: SearchParams; result: SearchResult };
  [Command.forward]: { params: { from: { thread: string; seq: number }; to: { thread: string } | { to: string }; cid: string }; result: Omit<SendResult, 'cid'> };
}
export type CommandName = keyof Commands;
export type CommandParams<T extends CommandName> = Commands[T]['params'];
export type CommandResult<T extends CommandName> = Commands[T]['result'];
