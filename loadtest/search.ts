// Search at a million messages (issue 14): what the index costs on disk per message, and how long
// queries take through the real server and SDK.
//
// One searcher is in THREADS groups (default 100) of MESSAGES messages each (default 10,000:
// 1,000,000 in all). The groups are made through the server; the messages are then written into
// its data directory with the server stopped, and their search blocks built from the logs by
// storage/search-reindex.ts (the blocks the thread actor would have written, message by message)
// — a million sends through the server would take minutes of these two cores and measure
// sending, which `bench.js` with SEARCH on and off does. Bodies are 4–16 words
// drawn from a 20,000-word vocabulary with Zipf-like frequencies (word k about as frequent as
// 1/k), so there are common words, rare words, and everything in between.
//
// Index bytes per message: the size of a compacted copy of the data directory with the index,
// minus one without it (the same messages), divided by the messages. Queries: each kind QUERIES
// times in a row from one client, after one warm-up; p50/p99 of the round trip (ms).
// Server and client share this machine's 2 cores.
//
//   npm run build && node dist/loadtest/search.js [--threads 100] [--messages 10000] [--queries 200]
import { mkdtempSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { login, ParleyClient, register } from '../client/index.js';
import { MessageIdGenerator } from '../protocol/ids.js';
import { openStorage, type StorageEnv, type StoredMessage } from '../storage/env.js';
import { reindexThread } from '../storage/search-reindex.js';
import { searchMessages, type SearchQuery } from '../actors/message-search.js';
import { Rng } from '../test/helpers/fuzz-frames.js';
import { Abort, killEverythingSync, removeDir, stopProcess } from './bench/children.js';
import { round } from './bench/proc.js';
import { startServer, type Server } from './bench/server.js';

const { values } = parseArgs({ options: {
  threads: { type: 'string', default: '100' },
  messages: { type: 'string', default: '10000' },
  queries: { type: 'string', default: '200' },
} });
const THREADS = Number(values.threads);
const MESSAGES = Number(values.messages);
const QUERIES = Number(values.queries);
const VOCABULARY = 20_000;
const BATCH = 20_000;

/** The fuzzer's seeded generator (mulberry32): the same bodies on every pass and every run. */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

/** Pronounceable words of 3–10 letters, word k the k-th most frequent. */
const words: string[] = (() => {
  const r = rng(7);
  const c = 'bcdfghjklmnprstvwz';
  const v = 'aeiou';
  const seen = new Set<string>();
  while (seen.size < VOCABULARY) {
    let w = '';
    const len = 3 + Math.floor(r() * 8);
    for (let i = 0; i < len; i++) w += (i % 2 === 0 ? c : v)[Math.floor(r() * (i % 2 === 0 ? c.length : v.length))];
    seen.add(w);
  }
  return [...seen];
})();
// Zipf (s = 1) by inverse transform on the harmonic numbers.
const harmonic: number[] = [];
for (let k = 1, h = 0; k <= VOCABULARY; k++) harmonic.push((h += 1 / k));
function zipfWord(r: () => number): string {
  const x = r() * harmonic[harmonic.length - 1];
  let lo = 0;
  let hi = harmonic.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (harmonic[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return words[lo];
}
function body(r: () => number): string {
  const n = 4 + Math.floor(r() * 13);
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(zipfWord(r));
  return out.join(' ');
}

/** The messages of every thread, in seq order, the same each time. */
function* messages(threads: string[], from: string): Generator<{ thread: string; msg: StoredMessage }> {
  const r = rng(42);
  const ids = new MessageIdGenerator(0);
  const start = Date.now() - THREADS * MESSAGES; // one ms apart, all in the past
  let ts = start;
  for (let seq = 1; seq <= MESSAGES; seq++) {
    for (const thread of threads) {
      ts++;
      yield { thread, msg: { seq, id: ids.next(ts), from, device: 'bench', ts, body: body(r) } };
    }
  }
}

async function populate(storage: StorageEnv, threads: string[], from: string): Promise<void> {
  let batch: { thread: string; msg: StoredMessage }[] = [];
  const flush = async () => {
    const items = batch;
    batch = [];
    await storage.writeBatch(() => {
      for (const { thread, msg } of items) void storage.db.threadLog.put([thread, msg.seq], msg);
    });
  };
  for (const item of messages(threads, from)) {
    batch.push(item);
    if (batch.length >= BATCH) await flush();
  }
  await flush();
}

async function compactedBytes(storage: StorageEnv): Promise<number> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'search-compact-'));
  try {
    await storage.root.backup(dir, true); // a directory: the copy is its data.mdb
    return statSync(path.join(dir, 'data.mdb')).size;
  } finally {
    removeDir(dir);
  }
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function main(): Promise<void> {
  const abort = new Abort();
  let server: Server = await startServer('parley', { durability: 'fsync' }, abort);
  const dataDir = server.dataDir;
  const password = 'correct horse battery';
  const names = ['searcher', ...Array.from({ length: 10 }, (_, i) => `partner${i}`)].map((n) => `${n}_${process.pid}`);
  const users: string[] = [];
  for (const username of names) users.push((await register(server.base, { username, password })).user);
  const { token } = await login(server.base, { username: names[0], password, device: 'bench' });
  let c = new ParleyClient({ url: `${server.base.replace('http', 'ws')}/v1/ws`, token, WebSocket, reconnect: false });
  await c.connect();
  const threads: string[] = [];
  for (let i = 0; i < THREADS; i++) {
    threads.push((await c.request<{ thread: string }>('group.create', { title: `group ${i}`, members: [users[1 + (i % 10)]] })).thread);
  }
  await c.close();
  server.proc.removeAllListeners('exit');
  await stopProcess(server.proc, 15_000);

  // The messages, then their index, each pass measured by a compacted copy.
  const storage = openStorage(dataDir, 'relaxed');
  let t0 = performance.now();
  await populate(storage, threads, users[0]);
  const messagesMs = performance.now() - t0;
  const withoutIndex = await compactedBytes(storage);
  t0 = performance.now();
  for (const thread of threads) reindexThread(storage, thread);
  const indexMs = performance.now() - t0;
  const withIndex = await compactedBytes(storage);
  // The searcher's inbox rows: last activity at the newest message (as delivery would have left them).
  await storage.writeBatch(() => {
    for (const thread of threads) {
      const row = storage.db.inbox.get([users[0], thread]);
      if (row) void storage.db.inbox.put([users[0], thread], { ...row, lastSeq: MESSAGES, updated: Date.now() });
    }
  });
  const total = THREADS * MESSAGES;
  const kinds = queryKinds(threads);
  // The query alone, in this process on the same data (what the user actor spends), before the round trips.
  const inbox = threads.map((th) => [th, Date.now()] as [string, number]);
  const alone = kinds.map(([name, fields]) => {
    const ms: number[] = [];
    for (let i = 0; i <= QUERIES; i++) {
      const t = performance.now();
      searchMessages(storage, users[0], fields() as SearchQuery, () => inbox);
      if (i > 0) ms.push(performance.now() - t); // the first warms the caches
    }
    return ms.sort((a, b) => a - b);
  });
  await storage.close();
  console.log(`messages: ${total.toLocaleString('en')} in ${THREADS} threads; written in ${round(messagesMs / 1000)} s, indexed in ${round(indexMs / 1000)} s (${Math.round(total / (indexMs / 1000)).toLocaleString('en')} messages/s)`);
  console.log(`data (compacted): ${round(withoutIndex / 2 ** 20)} MiB without the index, ${round(withIndex / 2 ** 20)} MiB with it: index ${round((withIndex - withoutIndex) / total)} bytes per message, ${round((withIndex - withoutIndex) / withoutIndex * 100)} % of the rest`);

  server = await startServer('parley', { durability: 'fsync', dataDir }, abort);
  c = new ParleyClient({ url: `${server.base.replace('http', 'ws')}/v1/ws`, token, WebSocket, reconnect: false });
  await c.connect();
  console.log(`queries: ${QUERIES} of each kind, limit 20, one after another from one client; the search alone (in process) and the round trip through the server`);
  for (const [k, [name, fields]] of kinds.entries()) {
    await c.request('search', fields());
    const ms: number[] = [];
    let results = 0;
    let more = 0;
    for (let i = 0; i < QUERIES; i++) {
      const t = performance.now();
      const r = await c.request<{ messages: unknown[]; more: boolean }>('search', fields());
      ms.push(performance.now() - t);
      results += r.messages.length;
      if (r.more) more++;
    }
    ms.sort((a, b) => a - b);
    console.log(`  ${name}: alone p50 ${round(quantile(alone[k], 0.5), 2)} ms, p99 ${round(quantile(alone[k], 0.99), 2)} ms; round trip p50 ${round(quantile(ms, 0.5), 2)} ms, p99 ${round(quantile(ms, 0.99), 2)} ms; ${round(results / QUERIES)} results per page, more on ${more} of ${QUERIES}`);
  }
  // Paging deep: the next pages of a common word.
  const deep: number[] = [];
  let before: string | undefined;
  for (let page = 0; page < 50; page++) {
    const t = performance.now();
    const r: { more: boolean; cursor?: string } = await c.request('search', { q: words[9], limit: 50, ...(before ? { before } : {}) });
    deep.push(performance.now() - t);
    if (!r.more) break;
    before = r.cursor;
  }
  deep.sort((a, b) => a - b);
  console.log(`  paging a common word 50 at a time, ${deep.length} pages: p50 ${round(quantile(deep, 0.5), 2)} ms, max ${round(deep[deep.length - 1], 2)} ms`);
  await c.close();
  server.proc.removeAllListeners('exit');
  await stopProcess(server.proc, 15_000);
  removeDir(dataDir);
}

function queryKinds(threads: string[]): [string, () => object][] {
  const q = (rank: number) => words[rank - 1];
  return [
    ['a common word (rank 10), all threads', () => ({ q: q(10) })],
    ['a mid word (rank 1,000), all threads', () => ({ q: q(1_000) })],
    ['a rare word (rank 15,000), all threads', () => ({ q: q(15_000) })],
    ['two words (ranks 10 and 500), all threads', () => ({ q: `${q(10)} ${q(500)}` })],
    ['two rare words (ranks 5,000 and 8,000), all threads', () => ({ q: `${q(5_000)} ${q(8_000)}` })],
    ['a mid word in one thread', () => ({ q: q(1_000), thread: threads[7] })],
    ['an absent word, all threads', () => ({ q: 'zzzzzzzz' })],
  ];
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  killEverythingSync();
  process.exit(1);
});
