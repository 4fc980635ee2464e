// `parley reindex` (src/cli/reindex.ts): messages sent while SEARCH was off are found after a
// reindex, with the messages sent since; a data directory a running server has open is refused.
import t from 'tap';
import { runMain } from './helpers/binary.js';
import { connect, newDevice, newUser, startTestServer, tempDataDir } from './helpers/server.js';

t.test('reindex makes what was sent while SEARCH was off findable; refused while a server has the directory open', async (t) => {
  const dataDir = tempDataDir(t);
  const off = await startTestServer(t, { dataDir, search: 'off' });
  const [annU, bobU] = [await newUser(off, 'ann'), await newUser(off, 'bob')];
  const [annD, bobD] = [await newDevice(off, annU), await newDevice(off, bobU)];
  const ann = await connect(t, off, annD);
  await ann.send({ to: bobU.user, body: 'quiet words one' });
  await ann.send({ to: bobU.user, body: 'quiet words two' });
  await ann.close();
  await off.server.stop();

  const done = await runMain(['reindex', dataDir]);
  t.equal(done.code, 0, done.stderr);
  t.match(done.stdout, /1 threads, 1 search blocks/, 'one thread, its messages in one block');

  const on = await startTestServer(t, { dataDir });
  const [ann2, bob] = [await connect(t, on, annD), await connect(t, on, bobD)];
  await ann2.send({ to: bobU.user, body: 'quiet words three' });
  const found = await bob.search({ q: 'quiet words' });
  t.same(found.messages.map((m) => m.body), ['quiet words three', 'quiet words two', 'quiet words one'], 'the reindexed messages and the one sent since');

  const refused = await runMain(['reindex', dataDir]);
  t.equal(refused.code, 1, 'refused while the server runs');
  t.match(refused.stderr, new RegExp(`is open in process ${process.pid}.*stop it first`));
  t.same((await bob.search({ q: 'quiet' })).messages.length, 3, 'and the index is as it was');

  const nowhere = await runMain(['reindex', tempDataDir(t)]);
  t.equal(nowhere.code, 2, 'no data directory: a usage error');
});
