// Webhook events (docs/protocol.md "Event webhooks"): the kinds there are, WEBHOOK_EVENTS parsing, and
// the per-shard outbox the actors append to in the commit of what an event describes. The gateway's
// WebhookDispatcher moves the outbox into the global log and delivers it.
import type { Database, Key } from 'lmdb';
import type { MediaObject, MessageEventKind, OutboxEvent, StorageEnv, StoredMessage, ThreadEvent, ThreadEventKind } from '../../storage/env.js';

/**
 * Every event kind, in the order the docs list them. A new kind is added HERE (and emitted where
 * it happens, with `outbox?.emit(...)`).
 */
export const WEBHOOK_EVENT_TYPES = [
  'message.created', 'message.edited', 'message.deleted', 'message.reaction',
  'group.created', 'group.member_added', 'group.member_removed', 'group.member_left', 'group.renamed',
  'channel.created', 'channel.posted',
  'user.online', 'user.offline',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** WEBHOOK_EVENTS: kinds separated by spaces or commas; `all` or empty for every kind. Throws on an unknown kind. */
export function parseEventTypes(raw: string): WebhookEventType[] {
  const names = raw.split(/[\s,]+/).filter((s) => s !== '');
  if (names.length === 0 || (names.length === 1 && names[0] === 'all')) return [...WEBHOOK_EVENT_TYPES];
  const known = new Set<string>(WEBHOOK_EVENT_TYPES);
  for (const n of names) if (!known.has(n)) throw new Error(`unknown event "${n}"; known: all, ${WEBHOOK_EVENT_TYPES.join(', ')}`);
  return [...new Set(names)] as WebhookEventType[];
}

/** A membership or title change's webhook kind. */
export const GROUP_EVENT_TYPES: Record<Exclude<ThreadEventKind, MessageEventKind>, WebhookEventType> = {
  created: 'group.created', added: 'group.member_added', removed: 'group.member_removed', left: 'group.member_left', title: 'group.renamed',
};

/** The writes an outbox needs: the actor context's put (joins the turn's transaction). */
interface Writer { put<V, K extends Key>(db: Database<V, K>, key: K, value: V): void }

/**
 * A shard's outbox: entries keyed [shard, n] with n increasing per shard, so the dispatcher takes
 * them in commit order (a thread, channel or user lives on one shard: their order is kept). The
 * shard writes; the dispatcher deletes what it moved. Only created when WEBHOOK_URL is set.
 */
export class EventOutbox {
  private n: number;
  private readonly types: ReadonlySet<string>;
  private readonly db: StorageEnv['db'];

  constructor(private readonly shard: number, storage: StorageEnv, types: readonly string[]) {
    this.types = new Set(types);
    this.db = storage.db;
    // After a restart, on from the newest entry still there (the dispatcher may have moved all: then
    // from 0 again, which is safe — it deletes exactly the keys it moved, in a transaction).
    let last = 0;
    for (const key of storage.db.webhookOutbox.getKeys({ start: [shard, Number.MAX_SAFE_INTEGER], end: [shard, 0], reverse: true, limit: 1 })) last = (key as [number, number])[1];
    this.n = last;
  }

  /**
   * Appends the event in the current turn's transaction, so it is durable exactly when what it
   * describes is. Nothing (not even `data()`) when `type` is not subscribed.
   */
  emit(ctx: Writer, type: WebhookEventType, ts: number, data: () => Record<string, unknown>): void {
    if (!this.types.has(type)) return;
    const event: OutboxEvent = { type, ts, data: data() };
    ctx.put(this.db.webhookOutbox, [this.shard, ++this.n], event);
  }
}

// ---- payloads: what each kind carries besides id, type and ts ----

export function messageData(thread: string, msg: StoredMessage): Record<string, unknown> {
  const message: Record<string, unknown> = { seq: msg.seq, id: msg.id, from: msg.from, device: msg.device, ts: msg.ts };
  if (msg.body !== undefined) message.body = msg.body;
  if (msg.media !== undefined) message.media = msg.media;
  if (msg.reply !== undefined) message.reply = msg.reply;
  if (msg.forwarded) message.forwarded = true;
  if (msg.bot) message.bot = true;
  return { thread, message };
}

/** A change to one message's webhook kind (a delete for the caller only is theirs alone: no event). */
export const MESSAGE_EVENT_TYPES: Record<MessageEventKind, WebhookEventType> = {
  edit: 'message.edited', deleted: 'message.deleted', reaction: 'message.reaction',
};

/** message.edited {thread, seq, by, body}, message.deleted {thread, seq, by}, message.reaction {thread, seq, by, emoji (null: taken back)}. */
export function messageEventData(thread: string, e: ThreadEvent): Record<string, unknown> {
  const data: Record<string, unknown> = { thread, seq: e.seq, by: e.by };
  if (e.event === 'edit') data.body = e.body;
  if (e.event === 'reaction') data.emoji = e.emoji ?? null;
  return data;
}

export function groupEventData(thread: string, e: ThreadEvent): Record<string, unknown> {
  const data: Record<string, unknown> = { thread, eseq: e.eseq, by: e.by };
  if (e.users !== undefined) data.users = e.users;
  if (e.title !== undefined) data.title = e.title;
  return data;
}

export function channelPostData(channel: string, post: { seq: number; id: string; from: string; ts: number; body?: string; media?: MediaObject }): Record<string, unknown> {
  const p: Record<string, unknown> = { seq: post.seq, id: post.id, from: post.from, ts: post.ts };
  if (post.body !== undefined) p.body = post.body;
  if (post.media !== undefined) p.media = post.media;
  return { channel, post: p };
}
