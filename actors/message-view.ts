// How a stored message looks to a member (history, inbox rows): the wire `msg` fields, the
// lifecycle fields (edited, deleted, forwarded), a bot's mark, reaction counts and the viewer's own reaction.
// Internal fields (who hid it, who reacted with what) never leave the server.
import { wireTime } from '../protocol/wire.js';
import type { StoredMessage } from '../storage/env.js';

/** A reply's quote carries at most this many characters (code points) of the original's body. */
export const QUOTE_CHARS = 100;

export function messageView(thread: string, m: StoredMessage, viewer: string): Record<string, unknown> {
  const out: Record<string, unknown> = { thread, seq: m.seq, id: m.id, from: m.from, device: m.device, ts: wireTime(m.ts) };
  if (m.body !== undefined) out.body = m.body;
  if (m.media !== undefined) out.media = m.media;
  if (m.reply !== undefined) out.reply = m.reply;
  if (m.replySeq !== undefined) out.replySeq = m.replySeq;
  if (m.forwarded) out.forwarded = true;
  if (m.bot) out.bot = true;
  if (m.edited !== undefined) out.edited = wireTime(m.edited);
  if (m.deleted !== undefined) out.deleted = wireTime(m.deleted);
  // A cid is the sender's own business (docs/protocol.md §6): only the sender sees it.
  if (m.from === viewer && m.cid !== undefined) out.cid = m.cid;
  if (m.reactions) {
    const counts: Record<string, number> = {};
    for (const emoji of Object.values(m.reactions)) counts[emoji] = (counts[emoji] ?? 0) + 1;
    out.reactions = counts;
    const mine = m.reactions[viewer];
    if (mine !== undefined) out.myReaction = mine;
  }
  return out;
}

/** The short quote of a replied-to message that history carries (docs/protocol.md "Message lifecycle"). */
export function quoteOf(m: StoredMessage): Record<string, unknown> {
  const q: Record<string, unknown> = { seq: m.seq, from: m.from };
  if (m.deleted !== undefined) {
    q.deleted = wireTime(m.deleted);
    return q;
  }
  if (m.body !== undefined) {
    const chars = Array.from(m.body);
    q.body = chars.length > QUOTE_CHARS ? chars.slice(0, QUOTE_CHARS).join('') : m.body;
  }
  if (m.media !== undefined) q.mime = m.media.mime;
  return q;
}
