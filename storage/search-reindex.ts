// Building a thread's search blocks (storage/search-blocks.ts) from its log, all at once: the
// upgrade from the per-term index of earlier versions, `parley reindex`, bulk loads (loadtest/search.ts).
// Runs where no thread actor writes (before the shards start, or in a tool of its own).
import { BlockBuilder, MAX_INDEXED_SEQ, messageTerms } from './search-blocks.js';
import type { StorageEnv } from './env.js';
import { logFloor } from './retention.js';

/** Replaces `thread`'s blocks with blocks of every message its log holds; returns how many. */
export function reindexThread(storage: StorageEnv, thread: string): number {
  const { threadLog, searchBlocks } = storage.db;
  let block: BlockBuilder | null = null;
  let blocks = 0;
  const save = (b: BlockBuilder) => {
    searchBlocks.putSync([thread, b.firstSeq], b.encode());
    blocks++;
  };
  storage.root.transactionSync(() => {
    const old = [...searchBlocks.getKeys({ start: [thread, 0], end: [thread, MAX_INDEXED_SEQ + 1] })];
    for (const key of old) searchBlocks.removeSync(key as [string, number]);
    const start: [string, number] = [thread, logFloor(storage, 'thread', thread) + 1];
    for (const { key, value } of threadLog.getRange({ start, end: [thread, MAX_INDEXED_SEQ + 1] })) {
      const seq = (key as [string, number])[1];
      const terms = messageTerms(seq, value.deleted === undefined ? value.body : undefined);
      if (block && !block.fits(seq, terms.length)) {
        save(block);
        block = null;
      }
      block ??= new BlockBuilder(seq);
      block.add(seq, terms);
    }
    if (block) save(block);
  });
  return blocks;
}

/**
 * Data directories of earlier versions hold a per-term index (the `search-index` table): its
 * threads get blocks built from their logs, then the table goes. Returns the threads reindexed.
 */
export function upgradeSearchIndex(storage: StorageEnv): number {
  // Its own flags (dupSort + dupFixed: LMDB refuses others); with `create: false` (lmdb-js,
  // untyped) an absent table is undefined rather than made.
  const old = storage.root.openDB<unknown, [string, string]>({ name: 'search-index', dupSort: true, ...({ dupFixed: true, create: false } as object) }) as
    import('lmdb').Database<unknown, [string, string]> | undefined;
  if (!old) return 0;
  const threads = new Set<string>();
  for (const key of old.getKeys()) threads.add((key as [string, string])[0]);
  for (const thread of threads) reindexThread(storage, thread);
  old.dropSync();
  return threads.size;
}
