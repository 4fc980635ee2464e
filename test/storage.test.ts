// The logs on a real LMDB directory: heads, ranges and history pages in both directions.
import t from 'tap';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { openStorage } from '../storage/env.js';
import { readThreadLog, threadLogHead } from '../storage/thread-log.js';
import { readUserLog, userLogHead } from '../storage/user-log.js';
import { tempDataDir } from './helpers/server.js';

t.test('user log: head and reads after a position, per user', async (t) => {
  const storage = openStorage(tempDataDir(t), 'fsync');
  t.teardown(() => storage.close());
  t.equal(userLogHead(storage, 'u1'), 0, 'empty log');
  for (let u = 1; u <= 300; u++) void storage.db.userLog.put(['u1', u], Buffer.from(`e${u}`));
  void storage.db.userLog.put(['u10', 1], Buffer.from('other user'));
  await storage.barrier();
  t.equal(userLogHead(storage, 'u1'), 300);
  t.equal(userLogHead(storage, 'u10'), 1, 'a user whose id extends another is separate');
  const page = readUserLog(storage, 'u1', 250, 100);
  t.same(page.map((e) => e.u), Array.from({ length: 50 }, (_, i) => 251 + i));
  t.equal(page[0].frame.toString(), 'e251');
  t.same(readUserLog(storage, 'u1', 300, 10), [], 'nothing after the head');
});

t.test('thread log: pages newest-first with before, oldest-first with after, and a floor', async (t) => {
  const storage = openStorage(tempDataDir(t), 'relaxed');
  t.teardown(() => storage.close());
  for (let seq = 1; seq <= 30; seq++) void storage.db.threadLog.put(['t1', seq], { seq, id: `m${seq}`, from: 'a', device: 'd', ts: seq });
  await storage.barrier();
  t.equal(threadLogHead(storage, 't1'), 30);
  t.equal(threadLogHead(storage, 't'), 0, 'a prefix is not the same thread');
  const cases: [string, Parameters<typeof readThreadLog>[2], number[], boolean][] = [
    ['newest page', { limit: 5 }, [30, 29, 28, 27, 26], true],
    ['before', { before: 6, limit: 5 }, [5, 4, 3, 2, 1], false],
    ['after', { after: 27, limit: 5 }, [28, 29, 30], false],
    ['after with more', { after: 0, limit: 5 }, [1, 2, 3, 4, 5], true],
    ['floor hides older', { before: 6, limit: 5, floor: 3 }, [5, 4], false],
    ['floor raises after', { after: 0, limit: 3, floor: 10 }, [11, 12, 13], true],
  ];
  for (const [name, q, seqs, more] of cases) {
    const page = readThreadLog(storage, 't1', q);
    t.same(page.messages.map((m) => m.seq), seqs, name);
    t.equal(page.more, more, `${name}: more`);
  }
});

t.test('the barrier resolves only after the write is readable from a fresh environment', async (t) => {
  const dir = tempDataDir(t);
  const writer = openStorage(dir, 'fsync');
  void writer.db.users.put('u1', { user: 'u1', username: 'ann', name: 'Ann', created: 1 });
  await writer.barrier();
  await writer.close();
  const reader = openStorage(dir, 'fsync');
  t.teardown(() => reader.close());
  t.match(reader.db.users.get('u1'), { username: 'ann' });
});

t.test('a data directory whose name has a dot is still a directory', async (t) => {
  const dir = join(tempDataDir(t), 'parley.data');
  const storage = openStorage(dir, 'relaxed');
  void storage.db.usernames.put('ann', 'u1');
  await storage.barrier();
  await storage.close();
  t.ok(statSync(dir).isDirectory());
  t.ok(statSync(join(dir, 'data.mdb')).isFile(), 'the environment lives inside it');
});
