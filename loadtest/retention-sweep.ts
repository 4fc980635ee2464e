// Sweep rate of the retention sweeper (actors/retention.ts) and its worst slice — the longest it
// holds a shard's thread in one go, i.e. the shard's worst turn time while sweeping. Fills a temp
// LMDB directory with expired entries (thread messages with their cid dedupe, user-log entries
// with an old mark, channel posts), then runs one pass as a shard would and reports both.
// Run: npx tsc -p tsconfig.json --outDir dist-x && node dist-x/loadtest/retention-sweep.js [entries] [durability]
//   entries: thread messages (as many user-log entries and a tenth as many posts); default 200000
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createLogger } from '../actors/log.js';
import { RetentionSweeper, SWEPT_KINDS } from '../actors/retention.js';
import { encodeFrame, wireTime } from '../protocol/wire.js';
import { openStorage, type Durability } from '../storage/env.js';

const entries = Number(process.argv[2] ?? 200_000);
const durability = (process.argv[3] ?? 'fsync') as Durability;
const PER_LOG = 100;
const dir = mkdtempSync(join(tmpdir(), 'parley-sweep-'));
const storage = openStorage(dir, durability);
const { db } = storage;
const old = Date.now() - 3_600_000;

async function fill(n: number, put: (i: number) => void): Promise<void> {
  for (let i = 0; i < n; i += 10_000) {
    await storage.writeBatch(() => {
      for (let j = i; j < Math.min(n, i + 10_000); j++) put(j);
    });
  }
}

const t0 = performance.now();
await fill(entries, (i) => {
  const thread = `g:t${Math.floor(i / PER_LOG)}`;
  const seq = (i % PER_LOG) + 1;
  if (seq === 1) db.threads.put(thread, { thread, kind: 'group', members: [], admins: [], title: 't', created: old, joined: {} });
  db.threadLog.put([thread, seq], { seq, id: `m${i}`, from: 'u1', device: 'd1', ts: old, body: 'hello there', cid: `c${i}` });
  db.dedupe.put([thread, 'u1', `c${i}`], { thread, seq, id: `m${i}`, ts: old });
});
await fill(entries, (i) => {
  const user = `u${Math.floor(i / PER_LOG)}`;
  const u = (i % PER_LOG) + 1;
  if (u === 1) db.users.put(user, { user, username: user, name: user, created: old });
  if (u === PER_LOG) db.retention.put(['user', user], { floor: 0, marks: [[old, PER_LOG]] });
  db.userLog.put([user, u], Buffer.from(encodeFrame({ t: 'msg', thread: 'g:x', seq: u, id: `m${i}`, from: 'u2', device: 'd', ts: wireTime(old), body: 'hello there', u })));
});
const posts = Math.floor(entries / 10);
await fill(posts, (i) => {
  const channel = `c:${Math.floor(i / PER_LOG)}`;
  const seq = (i % PER_LOG) + 1;
  if (seq === 1) db.channels.put(channel, { channel, name: channel, title: 'c', mode: 'broadcast', owner: 'u1', admins: [], created: old });
  db.channelLog.put([channel, seq], Buffer.from(encodeFrame({ t: 'cmsg', channel, seq, id: `p${i}`, from: 'u1', body: 'a post', ts: wireTime(old) })));
  db.channelDedupe.put([channel, 'u1', `p${i}`], { seq, id: `p${i}`, ts: old });
});
const filled = performance.now() - t0;

// Turn-time probe: how late a 1 ms timer fires while the pass runs (what a shard's messages would wait).
let worstLag = 0;
let probe = performance.now();
const timer = setInterval(() => {
  const now = performance.now();
  worstLag = Math.max(worstLag, now - probe - 1);
  probe = now;
}, 1);

const sweeper = new RetentionSweeper(storage, createLogger('warn'), {
  retentionMs: 60_000, sweepMs: 60_000, owns: () => true, trimmed: () => {}, onFatal: (err) => { throw err; },
});
const s0 = performance.now();
await sweeper.pass();
const ms = performance.now() - s0;
clearInterval(timer);
const swept = SWEPT_KINDS.reduce((n, k) => n + sweeper.stats.swept[k], 0);
const logEntries = sweeper.stats.swept.thread + sweeper.stats.swept.user + sweeper.stats.swept.channel;
console.log(JSON.stringify({
  durability, filled: { threadMessages: entries, userLogEntries: entries, channelPosts: posts, ms: Math.round(filled) },
  swept: sweeper.stats.swept,
  passMs: Math.round(ms),
  keysPerSecond: Math.round(swept / (ms / 1000)),
  logEntriesPerSecond: Math.round(logEntries / (ms / 1000)),
  slices: sweeper.stats.slices,
  worstSliceMs: Math.round(sweeper.stats.worstSliceMs * 100) / 100,
  worstTimerLagMs: Math.round(worstLag * 100) / 100,
  left: { threadLog: db.threadLog.getCount(), userLog: db.userLog.getCount(), channelLog: db.channelLog.getCount(), dedupe: db.dedupe.getCount(), channelDedupe: db.channelDedupe.getCount() },
}, null, 1));
await storage.close();
rmSync(dir, { recursive: true, force: true });
