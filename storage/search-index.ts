// The search index (docs/architecture.md "Search"): per thread, per term, the seqs of the
// messages holding that term — an LMDB dupSort + dupFixed table, so a posting is a packed 4-byte
// duplicate (the seq, big-endian: byte order is number order) under its [thread, term] key, not
// a key of its own. Written only by the thread actor, in the same transaction as the message it
// indexes (and by the retention sweeper, with the messages it deletes); read by searches.
import type { Database } from 'lmdb';
import { indexTerms } from '../protocol/search-words.js';
import type { StorageEnv } from './env.js';

export type SearchIndexTable = Database<number, [string, string]>;

/** Seqs are indexed while they fit the 4 bytes of a posting (4 billion messages in one thread). */
export const MAX_INDEXED_SEQ = 2 ** 32 - 1;

/**
 * The table's value encoder (lmdb-js `encoder`): a seq as 4 bytes big-endian. `writeKey` places a
 * value where lmdb-js positions a cursor among a key's values (getValues' start, doesExist).
 */
export const postingEncoder = {
  encode(seq: number): Buffer {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32BE(seq);
    return b;
  },
  decode: (b: Uint8Array): number => ((b[0] << 24) >>> 0) + (b[1] << 16) + (b[2] << 8) + b[3],
  writeKey(seq: number | Uint8Array, target: Uint8Array, at: number): number {
    if (typeof seq !== 'number') {
      target.set(seq, at); // already encoded (doesExist encodes first)
      return at + seq.length;
    }
    target[at] = seq >>> 24;
    target[at + 1] = (seq >>> 16) & 255;
    target[at + 2] = (seq >>> 8) & 255;
    target[at + 3] = seq & 255;
    return at + 4;
  },
  readKey: (b: Uint8Array, start: number): number => ((b[start] << 24) >>> 0) + (b[start + 1] << 16) + (b[start + 2] << 8) + b[start + 3],
};

/** How a writer (an actor's context, the sweeper) puts and removes one posting. */
export interface PostingWriter {
  put(db: SearchIndexTable, key: [string, string], seq: number): void;
  remove(db: SearchIndexTable, key: [string, string], seq: number): void;
}

export function indexMessage(w: PostingWriter, storage: StorageEnv, thread: string, seq: number, body: string | undefined): void {
  if (seq > MAX_INDEXED_SEQ) return;
  for (const term of indexTerms(body)) w.put(storage.db.searchIndex, [thread, term], seq);
}

export function unindexMessage(w: PostingWriter, storage: StorageEnv, thread: string, seq: number, body: string | undefined): void {
  if (seq > MAX_INDEXED_SEQ) return;
  for (const term of indexTerms(body)) w.remove(storage.db.searchIndex, [thread, term], seq);
}

/** An edit: only the terms that changed are written. */
export function reindexMessage(w: PostingWriter, storage: StorageEnv, thread: string, seq: number, before: string | undefined, after: string | undefined): void {
  if (seq > MAX_INDEXED_SEQ) return;
  const old = new Set(indexTerms(before));
  const now = new Set(indexTerms(after));
  for (const term of old) if (!now.has(term)) w.remove(storage.db.searchIndex, [thread, term], seq);
  for (const term of now) if (!old.has(term)) w.put(storage.db.searchIndex, [thread, term], seq);
}

/** The seqs of a thread's messages holding `term`, newest first, below `below`. */
export function postings(storage: StorageEnv, thread: string, term: string, below: number): Iterable<number> {
  return storage.db.searchIndex.getValues([thread, term], { reverse: true, start: Math.min(below - 1, MAX_INDEXED_SEQ) });
}

export function hasPosting(storage: StorageEnv, thread: string, term: string, seq: number): boolean {
  return storage.db.searchIndex.doesExist([thread, term], seq);
}
