// The search index's blocks (storage/search-blocks.ts) on a real LMDB directory: a filter never
// misses a term it was given and rarely claims one it was not; blocks hold consecutive seqs and
// close when full; reading them newest first, by seq and by floor; building them from a log; and
// the upgrade of a data directory holding the per-term index of earlier versions.
import t from 'tap';
import type { Database } from 'lmdb';
import { indexTerms } from '../protocol/search-words.js';
import { openStorage, type StorageEnv, type StoredMessage } from '../storage/env.js';
import {
  BLOCK_MESSAGES, BLOCK_TERMS, BlockBuilder, blockHolding, blocksAtOrBelow, blocksBelow, mayHoldAll, messageMayHold, newestBlock, signatureOf, termProbes, type Block,
} from '../storage/search-blocks.js';
import { reindexThread, upgradeSearchIndex } from '../storage/search-reindex.js';
import { tempDataDir } from './helpers/server.js';

const asBlock = (b: BlockBuilder): Block => {
  const value = b.encode();
  return { firstSeq: b.firstSeq, lastSeq: value.readUInt32BE(0), value };
};
const holds = (block: Block, ...terms: string[]) => mayHoldAll(block, terms.map(termProbes));

t.test('a full filter holds every term it was given and few others', async (t) => {
  const b = new BlockBuilder(1);
  const given: string[] = [];
  for (let seq = 1; b.terms < BLOCK_TERMS - 10; seq++) {
    const terms = Array.from({ length: 8 }, (_, i) => `w${seq}x${i}`);
    b.add(seq, terms);
    given.push(...terms);
  }
  const block = asBlock(b);
  t.ok(given.every((term) => holds(block, term)), `all ${given.length} terms are held (no false negative)`);
  let claimed = 0;
  const others = 20_000;
  for (let i = 0; i < others; i++) if (holds(block, `absent${i}`)) claimed++;
  t.ok(claimed / others < 0.02, `false positives ${(100 * claimed / others).toFixed(2)} % of terms never given (< 2 %)`);
  t.ok(holds(block, 'w1x0', 'w2x3'), 'two terms given: held');
  const absent = Array.from({ length: 200 }, (_, i) => `absent${i}`).find((term) => !holds(block, term))!;
  t.notOk(holds(block, 'w1x0', absent), 'a term given AND one not given: not held');
  const empty = asBlock(new BlockBuilder(1));
  t.notOk(holds(empty, 'w1x0'), 'an empty filter holds nothing');
});

t.test("each message's signature holds its own terms, and seldom another's", async (t) => {
  const b = new BlockBuilder(101);
  for (let seq = 101; seq < 101 + BLOCK_MESSAGES; seq++) b.add(seq, [`only${seq}`, 'shared']);
  const block = asBlock(b);
  const sig = (...terms: string[]) => signatureOf(terms.map(termProbes));
  let own = 0;
  let others = 0;
  for (let seq = 101; seq < 101 + BLOCK_MESSAGES; seq++) {
    if (messageMayHold(block, seq, sig(`only${seq}`))) own++;
    for (let other = 101; other < 101 + BLOCK_MESSAGES; other++) if (other !== seq && messageMayHold(block, other, sig(`only${seq}`))) others++;
  }
  t.equal(own, BLOCK_MESSAGES, 'every message: its own term (no false negative)');
  const pairs = BLOCK_MESSAGES * (BLOCK_MESSAGES - 1);
  t.ok(others / pairs < 0.05, `another message's term: ${(100 * others / pairs).toFixed(1)} % of pairs (< 5 %)`);
  t.ok(messageMayHold(block, 150, sig('shared', 'only150')), 'both of its terms');
  t.equal([...Array(BLOCK_MESSAGES).keys()].filter((i) => messageMayHold(block, 101 + i, sig('shared'))).length, BLOCK_MESSAGES, 'a term of every message: every message');
});

t.test('a block takes consecutive seqs only, up to its message and term bounds', async (t) => {
  const b = new BlockBuilder(10);
  t.ok(b.fits(10, 3), 'its first seq');
  t.notOk(b.fits(11, 3), 'not a gap before it');
  b.add(10, ['a', 'b', 'c']);
  t.ok(b.fits(11, 3));
  t.notOk(b.fits(12, 3), 'not a gap after the last');
  for (let seq = 11; seq < 10 + BLOCK_MESSAGES; seq++) b.add(seq, [`t${seq}`]);
  t.equal(b.messages, BLOCK_MESSAGES);
  t.notOk(b.fits(10 + BLOCK_MESSAGES, 1), `full at ${BLOCK_MESSAGES} messages`);

  const wide = new BlockBuilder(1);
  wide.add(1, Array.from({ length: BLOCK_TERMS - 5 }, (_, i) => `x${i}`));
  t.notOk(wide.fits(2, 6), 'no room for more terms than BLOCK_TERMS');
  t.ok(wide.fits(2, 5));
  const alone = new BlockBuilder(1);
  t.ok(alone.fits(1, BLOCK_TERMS * 2), 'a message with more terms than a block holds opens one of its own');
  const repeats = new BlockBuilder(1);
  repeats.add(1, ['same', 'words']);
  repeats.add(2, ['same', 'words']);
  t.equal(repeats.terms, 2, 'terms already held are not counted again');
  const back = BlockBuilder.from(1, repeats.encode());
  t.same([back.firstSeq, back.lastSeq, back.messages, back.terms], [1, 2, 2, 2], 'read back, it goes on where it was');
});

function withStorage(t: { teardown(fn: () => unknown): void }): StorageEnv {
  const storage = openStorage(tempDataDir(t), 'relaxed');
  t.teardown(() => storage.close());
  return storage;
}

const message = (seq: number, body: string | undefined, extra: Partial<StoredMessage> = {}): StoredMessage =>
  ({ seq, id: `m${String(seq).padStart(6, '0')}`, from: 'ann', device: 'd', ts: seq, ...(body === undefined ? {} : { body }), ...extra });

async function writeLog(storage: StorageEnv, thread: string, bodies: (string | undefined)[], extra: (seq: number) => Partial<StoredMessage> = () => ({})) {
  await storage.writeBatch(() => {
    bodies.forEach((body, i) => void storage.db.threadLog.put([thread, i + 1], message(i + 1, body, extra(i + 1))));
  });
}

t.test('blocks built from a log, read newest first, by seq and by floor', async (t) => {
  const storage = withStorage(t);
  const bodies = Array.from({ length: 150 }, (_, i) => `message number${i + 1} ${i % 50 === 0 ? 'rare' : 'common'}`);
  await writeLog(storage, 'g:one', bodies, (seq) => (seq === 101 ? { deleted: 1 } : {}));
  await writeLog(storage, 'g:one-other', ['rare elsewhere']);
  const made = reindexThread(storage, 'g:one');
  t.equal(made, 3, `150 messages make 3 blocks of up to ${BLOCK_MESSAGES}`);
  reindexThread(storage, 'g:one-other');
  storage.refresh();

  const all = [...blocksBelow(storage, 'g:one', Number.MAX_SAFE_INTEGER)];
  t.same(all.map((b) => [b.firstSeq, b.lastSeq]), [[129, 150], [65, 128], [1, 64]], 'newest first, consecutive, this thread only');
  t.same(all.map((b) => holds(b, 'rare')), [false, false, true], 'rare (seqs 1, 51, 101 — 101 deleted) is in the first block only');
  t.same([...blocksBelow(storage, 'g:one', 65)].map((b) => b.firstSeq), [1], 'below 65: the first block');
  t.same([...blocksBelow(storage, 'g:one', 66)].map((b) => b.firstSeq), [65, 1], 'below 66: it holds 65');
  t.same(blockHolding(storage, 'g:one', 100)?.firstSeq, 65);
  t.equal(blockHolding(storage, 'g:one', 151), undefined, 'beyond the last seq: none');
  t.equal(newestBlock(storage, 'g:one')?.firstSeq, 129);
  t.same([...blocksAtOrBelow(storage, 'g:one', 127)].map((b) => b.firstSeq), [1], 'only blocks whose every seq is at or below the floor');
  t.same([...blocksAtOrBelow(storage, 'g:one', 128)].map((b) => b.firstSeq), [1, 65]);
  t.equal(newestBlock(storage, 'g:none'), undefined);
  t.ok(holds(newestBlock(storage, 'g:one-other')!, 'elsewhere'));
  t.ok(indexTerms('message number1 rare').every((term) => holds(all[2], term)));
});

t.test('a data directory with the per-term index of earlier versions is upgraded to blocks', async (t) => {
  const dir = tempDataDir(t);
  let storage = openStorage(dir, 'relaxed');
  // The table as earlier versions made it: dupSort + dupFixed, [thread, term] → 4-byte seq.
  const old = storage.root.openDB({ name: 'search-index', dupSort: true, ...({ dupFixed: true } as object) }) as unknown as Database<Buffer, [string, string]>;
  await writeLog(storage, 'g:old', ['hello old world', 'second message']);
  await storage.writeBatch(() => {
    for (const [term, seq] of [['hello', 1], ['old', 1], ['world', 1], ['second', 2], ['message', 2]] as const) {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(seq);
      void old.put(['g:old', term], b);
    }
  });
  await storage.close();

  storage = openStorage(dir, 'relaxed');
  t.teardown(() => storage.close());
  t.equal(upgradeSearchIndex(storage), 1, 'one thread reindexed');
  storage.refresh();
  const block = newestBlock(storage, 'g:old')!;
  t.same([block.firstSeq, block.lastSeq], [1, 2]);
  t.ok(holds(block, 'hello', 'second'), 'its messages are in the block');
  t.equal(upgradeSearchIndex(storage), 0, 'the old table is gone: nothing more to do');
  t.equal(upgradeSearchIndex(withStorage(t)), 0, 'a new data directory has nothing to upgrade');
});
