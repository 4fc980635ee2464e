// The search index (docs/architecture.md "Search"): per thread, per term, the seqs of the
// messages holding that term — an LMDB dupSort table, so a posting costs one sorted duplicate
// (the seq) under its [thread, term] key rather than a key of its own. Written only by the thread
// actor, in the same transaction as the message it indexes (and by the retention sweeper, with
// the messages it deletes); read by searches.
import type { Database } from 'lmdb';
import { indexTerms } from '../protocol/search-words.js';
import type { StorageEnv } from './env.js';

export type SearchIndexTable = Database<number, [string, string]>;

/** How a writer (an actor's context, the sweeper) puts and removes one posting. */
export interface PostingWriter {
  put(db: SearchIndexTable, key: [string, string], seq: number): void;
  remove(db: SearchIndexTable, key: [string, string], seq: number): void;
}

export function indexMessage(w: PostingWriter, storage: StorageEnv, thread: string, seq: number, body: string | undefined): void {
  for (const term of indexTerms(body)) w.put(storage.db.searchIndex, [thread, term], seq);
}

export function unindexMessage(w: PostingWriter, storage: StorageEnv, thread: string, seq: number, body: string | undefined): void {
  for (const term of indexTerms(body)) w.remove(storage.db.searchIndex, [thread, term], seq);
}

/** An edit: only the terms that changed are written. */
export function reindexMessage(w: PostingWriter, storage: StorageEnv, thread: string, seq: number, before: string | undefined, after: string | undefined): void {
  const old = new Set(indexTerms(before));
  const now = new Set(indexTerms(after));
  for (const term of old) if (!now.has(term)) w.remove(storage.db.searchIndex, [thread, term], seq);
  for (const term of now) if (!old.has(term)) w.put(storage.db.searchIndex, [thread, term], seq);
}

/** The seqs of a thread's messages holding `term`, newest first, below `below`. */
export function postings(storage: StorageEnv, thread: string, term: string, below: number): Iterable<number> {
  return storage.db.searchIndex.getValues([thread, term], { reverse: true, start: below - 1 });
}

export function hasPosting(storage: StorageEnv, thread: string, term: string, seq: number): boolean {
  return storage.db.searchIndex.doesExist([thread, term], seq);
}
