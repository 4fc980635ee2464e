// GET /v1/users/me/export (docs/protocol.md "Sessions"): a person's own data as one JSON document,
// read straight from LMDB on the gateway's thread. Bounded: at most EXPORT_MAX_MESSAGES of their
// messages, newest threads first, reading at most EXPORT_SCAN_MESSAGES log entries in all (a
// message in a big group costs a scan of the group's log); past either, `messagesTruncated`.
import type { StorageEnv, ThreadMeta, UserRecord } from '../../storage/env.js';
import type { DeviceInfo } from './accounts.js';

export const EXPORT_MAX_MESSAGES = 10_000;
export const EXPORT_SCAN_MESSAGES = 200_000;

export function exportAccount(storage: StorageEnv, user: string, devices: DeviceInfo[], defaultLastSeen: string): object {
  storage.refresh(); // written by the user's and threads' actors in the shards
  const { db } = storage;
  const record = db.users.get(user);
  const prefix = { start: [user, ''], end: [user, '\uffff'] };
  const contacts = [...db.contacts.getRange(prefix)].map(({ key, value }) => {
    const contact = (key as [string, string])[1];
    return { user: contact, name: db.users.get(contact)?.name ?? contact, added: value.added };
  });
  const blocks = [...db.blocks.getRange(prefix)].map(({ key, value }) => ({ user: (key as [string, string])[1], at: value.at }));
  const rows = [...db.inbox.getRange(prefix)].map(({ value }) => value).filter((r) => r.lastSeq > 0 || r.lastEvent > 0);
  rows.sort((a, b) => b.updated - a.updated);
  const threads = rows.map((row) => {
    const meta = db.threads.get(row.thread) as ThreadMeta | undefined;
    const out: Record<string, unknown> = {
      thread: row.thread, kind: meta?.kind ?? 'direct', members: meta?.members ?? [], updated: row.updated,
      unread: row.unread, readSeq: row.readSeq, muted: row.muted, member: row.member,
    };
    if (meta?.kind === 'group') out.title = meta.title;
    if (row.nickname !== undefined) out.nickname = row.nickname;
    return out;
  });
  const messages: object[] = [];
  let scanned = 0;
  let truncated = false;
  for (const row of rows) {
    if (truncated) break;
    const joined = (db.threads.get(row.thread) as ThreadMeta | undefined)?.joined[user] ?? 0;
    for (const { value: m } of db.threadLog.getRange({ start: [row.thread, joined + 1], end: [row.thread, row.lastSeq + 1] })) {
      if (++scanned > EXPORT_SCAN_MESSAGES || messages.length >= EXPORT_MAX_MESSAGES) {
        truncated = true;
        break;
      }
      if (m.from !== user) continue;
      const out: Record<string, unknown> = { thread: row.thread, seq: m.seq, id: m.id, ts: m.ts, device: m.device };
      if (m.body !== undefined) out.body = m.body;
      if (m.media !== undefined) out.media = m.media;
      if (m.reply !== undefined) out.reply = m.reply;
      messages.push(out);
    }
  }
  return {
    exported: Date.now(),
    profile: record ? profileOf(user, record) : { user },
    devices,
    contacts,
    blocks,
    privacy: { lastSeen: db.privacy.get(user)?.lastSeen ?? defaultLastSeen },
    threads,
    messages,
    messagesTruncated: truncated,
  };
}

/** The account itself; an application's user also shows its app id and whether it is a bot. */
function profileOf(user: string, record: UserRecord): object {
  const out: Record<string, unknown> = { user, username: record.username, name: record.name, created: record.created };
  if (record.appId !== undefined) out.id = record.appId;
  if (record.bot === true) out.bot = true;
  return out;
}
