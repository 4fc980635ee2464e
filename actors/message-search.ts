// `search` (docs/protocol.md "Search"): the caller's messages holding every word of a query,
// newest first, with highlights — run by the caller's user actor over the committed search blocks
// (storage/search-blocks.ts) of the threads in its inbox, or of one thread.
//
// Per thread, blocks are visited newest first; a block whose Bloom filter lacks any word of the
// query is skipped, and in the others only the messages whose signature has every word are read,
// their bodies deciding.
// Threads are visited newest activity first, so once the page is full a thread whose last
// activity is older than the page's oldest result is never opened. A query does at most
// MAX_SEARCH_SCAN units of work (threads visited, blocks tested, messages read); when it stops
// early, the reply holds only results it has proven to be the newest (see `complete`), and `more`
// with a cursor to go on from — so a page is never out of order and nothing is skipped, however
// large the inbox.
import { ErrorCode } from '../protocol/codes.js';
import { fail } from '../protocol/errors.js';
import { eachWord, highlights, queryTerms } from '../protocol/search-words.js';
import type { StorageEnv, StoredMessage } from '../storage/env.js';
import { logFloor } from '../storage/retention.js';
import { blocksBelow, mayHoldAll, messageMayHold, signatureOf, termProbes } from '../storage/search-blocks.js';
import { threadLogHead } from '../storage/thread-log.js';
import { messageView } from './message-view.js';

export interface SearchQuery { q: string; thread?: string; before?: string; limit?: number }
export interface SearchReply {
  messages: Record<string, unknown>[];
  more: boolean;
  /** with more: the `before` of the next page */
  cursor?: string;
}

/** Work units one query may spend: a thread visited or a block tested is one, a message read READ_UNITS. */
export const MAX_SEARCH_SCAN = 25_000;
const READ_UNITS = 4;
const DEFAULT_LIMIT = 20;
const MAX = Number.MAX_SAFE_INTEGER;

interface Hit { thread: string; msg: StoredMessage }

/**
 * @param threads the caller's threads with their last activity (ms), when no `thread` is given
 */
export function searchMessages(storage: StorageEnv, user: string, f: SearchQuery, threads: () => Iterable<[string, number]>): SearchReply {
  const terms = queryTerms(f.q);
  if (terms.length === 0) fail(ErrorCode.bad_frame, 'search: q: no words to search for (letters or digits)');
  const wanted = new Set(terms);
  const probes = terms.map(termProbes);
  const signature = signatureOf(probes);
  const limit = f.limit ?? DEFAULT_LIMIT;
  let units = MAX_SEARCH_SCAN;
  /** Results with an id at or above this are proven complete (every thread was searched down to it). */
  let complete = '';
  let hits: Hit[] = [];

  const order: [string, number][] = f.thread !== undefined ? [[f.thread, MAX]] : [...threads()].sort((a, b) => b[1] - a[1]);
  for (let i = 0; i < order.length; i++) {
    const [thread, lastActivity] = order[i];
    // The page is full, and this thread (and every later one) was last active before its oldest result.
    if (hits.length > limit && lastActivity < hits[limit].msg.ts) break;
    if (units-- <= 0) {
      // Out of work for this query: only what is newer than any message of the threads not visited is proven.
      complete = maxId(complete, idAtMs(lastActivity + 1));
      break;
    }
    const meta = storage.db.threads.get(thread);
    if (!meta || !meta.members.includes(user)) {
      if (f.thread !== undefined) fail(meta ? ErrorCode.forbidden : ErrorCode.not_found, meta ? 'not a member of this thread' : 'no such thread');
      continue;
    }
    const floor = meta.joined[user] ?? 0;
    const below = f.before !== undefined ? firstSeqAtOrAfter(storage, thread, f.before, floor) : MAX;
    let found = 0;
    /** Every seq of this thread from here up was searched. */
    let searchedDownTo = below;
    blocks: for (const block of blocksBelow(storage, thread, below)) {
      if (block.lastSeq <= floor) break;
      units--;
      if (mayHoldAll(block, probes)) {
        for (let seq = Math.min(block.lastSeq, below - 1); seq >= block.firstSeq && seq > floor; seq--) {
          searchedDownTo = seq;
          // The message's own signature lacks a word: certainly not it, and not read.
          if (!messageMayHold(block, seq, signature)) continue;
          units -= READ_UNITS;
          const msg = storage.db.threadLog.get([thread, seq]);
          // Older than the page's oldest so far: so is the rest of this thread.
          if (msg && hits.length > limit && msg.id < hits[limit].msg.id) break blocks;
          // The body decides (a filter only says "maybe"): deleted, hidden or not every word: no.
          if (msg && msg.deleted === undefined && !msg.hiddenFor?.includes(user) && holdsAll(msg.body, wanted)) {
            hits.push({ thread, msg });
            // This thread's older matches cannot be among the page's newest.
            if (++found > limit) break blocks;
          }
          if (units <= 0) break blocks;
        }
      }
      searchedDownTo = Math.min(searchedDownTo, block.firstSeq);
      if (units <= 0) break;
    }
    if (units <= 0) complete = maxId(complete, idAtOrAfter(storage, thread, searchedDownTo) ?? idAtMs(lastActivity + 1));
    hits.sort((a, b) => (a.msg.id < b.msg.id ? 1 : a.msg.id > b.msg.id ? -1 : 0));
    if (hits.length > limit + 1) hits = hits.slice(0, limit + 1);
    if (units <= 0) {
      // Threads after this one were not visited: their messages are no newer than their last activity.
      if (i + 1 < order.length) complete = maxId(complete, idAtMs(order[i + 1][1] + 1));
      break;
    }
  }

  const proven = complete === '' ? hits : hits.filter((h) => h.msg.id >= complete);
  const page = proven.slice(0, limit);
  const more = proven.length > limit || complete !== '';
  const reply: SearchReply = { messages: page.map((h) => resultView(h, user, wanted)), more };
  if (more) reply.cursor = page.length === limit ? page[limit - 1].msg.id : complete;
  return reply;
}

function resultView({ thread, msg }: Hit, user: string, terms: ReadonlySet<string>): Record<string, unknown> {
  const view = messageView(thread, msg, user);
  view.highlights = highlights(msg.body ?? '', terms);
  return view;
}

function holdsAll(body: string | undefined, terms: ReadonlySet<string>): boolean {
  if (body === undefined) return false;
  const left = new Set(terms);
  let all = false;
  eachWord(body, (term) => (all = left.delete(term) && left.size === 0));
  return all;
}

/**
 * The first seq of the thread whose message id is `id` or later: ids grow with seq within a
 * thread (one actor, one shard's ordered ids), so a binary search over the log finds it.
 */
function firstSeqAtOrAfter(storage: StorageEnv, thread: string, id: string, floor: number): number {
  let lo = Math.max(floor, logFloor(storage, 'thread', thread)) + 1;
  let hi = threadLogHead(storage, thread) + 1;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const m = storage.db.threadLog.get([thread, mid]);
    if (m !== undefined && m.id < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The id of the thread's first message at or after `seq`: where a search of it stopped. */
function idAtOrAfter(storage: StorageEnv, thread: string, seq: number): string | undefined {
  for (const { value } of storage.db.threadLog.getRange({ start: [thread, seq], end: [thread, MAX], limit: 1 })) return value.id;
  return undefined;
}

const maxId = (a: string, b: string): string => (a > b ? a : b);

/** The smallest message id of millisecond `ms` (protocol/ids.ts: 9 base-36 digits of ms, then shard and counter). */
const idAtMs = (ms: number): string => `${Math.max(0, Math.min(ms, 36 ** 9 - 1)).toString(36).padStart(9, '0')}00000`;
