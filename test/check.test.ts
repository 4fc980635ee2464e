// `parley check [dir]` (src/cli/check.ts): passes on a live data directory (opened read-only
// while the server runs) and on its backup; a copy damaged with lmdb — a hole in a thread log
// and in a user log, fan-out marks of a missing thread and past a log's end — fails with exit 1
// and says what is wrong where.
import t from 'tap';
import { join } from 'node:path';
import { openStorage } from '../storage/env.js';
import { runMain } from './helpers/binary.js';
import { connect, newDevice, newUser, startTestServer, tempDataDir } from './helpers/server.js';

t.test('a good data directory passes, live and copied; a damaged copy fails with clear messages', async (t) => {
  const s = await startTestServer(t);
  const [ann, bob, cat] = [await newUser(s, 'ann'), await newUser(s, 'bob'), await newUser(s, 'cat')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  let direct = '';
  for (let i = 1; i <= 5; i++) direct = (await annPhone.send({ to: bob.user, body: `direct ${i}` })).thread;
  const { thread: group } = await annPhone.groupCreate({ title: 'three', members: [bob.user, cat.user] });
  for (let i = 1; i <= 3; i++) await annPhone.send({ thread: group, body: `group ${i}` });

  const live = await runMain(['check', s.dataDir]);
  t.equal(live.code, 0, live.stderr);
  t.match(live.stdout, /is consistent \(2 threads, 8 messages, 1 thread events, 3 users/, 'the running server\'s directory passes');
  const byEnv = await runMain(['check'], { ...process.env, DATA_DIR: s.dataDir });
  t.equal(byEnv.code, 0, 'without a dir, check reads DATA_DIR');

  const copy = join(tempDataDir(t), 'copy');
  t.equal((await runMain(['backup', copy, '--data-dir', s.dataDir])).code, 0);
  t.equal((await runMain(['check', copy])).code, 0, 'the backup passes');

  const storage = openStorage(copy, 'fsync');
  await storage.writeBatch(() => {
    storage.db.threadLog.remove([direct, 3]);
    storage.db.userLog.remove([bob.user, 2]);
    storage.db.fanout.put('no-such-thread', { seq: 1, eseq: 0 });
    storage.db.fanout.put(group, { seq: 9, eseq: 0 });
  });
  await storage.close();
  const bad = await runMain(['check', copy]);
  t.equal(bad.code, 1, 'a damaged directory fails');
  t.match(bad.stderr, `thread log of thread ${direct}: seq jumps from 2 to 4 (1 missing)`);
  t.match(bad.stderr, `user log of user ${bob.user}: u jumps from 1 to 3 (1 missing)`);
  t.match(bad.stderr, 'pending fan-out of thread no-such-thread: the thread does not exist');
  t.match(bad.stderr, `pending fan-out of thread ${group} starts at seq 9, but its log ends at 3`);
  t.match(bad.stderr, /: 4 problems \(/);
});

t.test('check of a directory without data says so (exit 2)', async (t) => {
  const r = await runMain(['check', join(tempDataDir(t), 'nothing')]);
  t.equal(r.code, 2);
  t.match(r.stderr, /no data directory at .*nothing/);
});
