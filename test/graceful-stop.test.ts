// Graceful stop by protocol: the fan-out and confirmations still moving between shards when
// stop() is called all land before storage closes, so no fan-out mark is left behind.
import t from 'tap';
import { directThreadId } from '../protocol/ids.js';
import { openStorage } from '../storage/env.js';
import { threadLogHead } from '../storage/thread-log.js';
import { connect, newDevice, newUser, startTestServer } from './helpers/server.js';

t.test('a stop while messages are in flight leaves every stored message fanned out and confirmed', async (t) => {
  const s = await startTestServer(t, { shards: 3 });
  const ann = await newUser(s, 'ann');
  const friends = await Promise.all(Array.from({ length: 6 }, () => newUser(s, 'friend')));
  const annPhone = await connect(t, s, await newDevice(s, ann));
  // The stop begins at the first ok: other sends are being stored, fanned out to the friends'
  // logs and confirmed back to their threads, across shards, while the shards are drained.
  const sends = friends.flatMap((f) => Array.from({ length: 20 }, (_, i) => annPhone.send({ to: f.user, body: `last words ${i}` })));
  for (const p of sends) p.catch(() => undefined); // the ones cut off by the stop are not the point
  await Promise.race(sends);
  await s.server.stop();
  const acked = (await Promise.allSettled(sends)).filter((r) => r.status === 'fulfilled').length;
  t.ok(acked >= 1, `${acked} of ${sends.length} acknowledged before the stop closed the socket`);

  const storage = openStorage(s.dataDir, 'relaxed');
  t.teardown(() => storage.close());
  t.same([...storage.db.fanout.getKeys()], [], 'every fan-out was confirmed before storage closed');
  let stored = 0;
  for (const f of friends) {
    const thread = directThreadId(ann.user, f.user);
    const head = threadLogHead(storage, thread);
    stored += head;
    t.equal(storage.db.inbox.get([f.user, thread])?.lastSeq ?? 0, head, `${f.username}'s log has every stored message (${head})`);
  }
  t.ok(stored >= acked, `${stored} stored`);
});
