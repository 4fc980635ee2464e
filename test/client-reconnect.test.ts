// The SDK across a server crash: it reconnects with backoff, resends its outbox by cid until
// `ok`, and replays exactly what it missed — nothing lost, nothing twice.
import t from 'tap';
import { directThreadId } from '../protocol/ids.js';
import { freePort, startChildServer } from './helpers/child-server.js';
import { collect, connect, newDevice, newUser, tempDataDir, until } from './helpers/server.js';

t.test('sends made while the server is down go out once after it is back; the recipient replays them', async (t) => {
  const dataDir = tempDataDir(t);
  const port = String(await freePort());
  const first = await startChildServer(dataDir, { PORT: port });
  t.teardown(() => first.proc.kill('SIGKILL'));
  const [ann, bob] = [await newUser(first, 'ann'), await newUser(first, 'bob')];
  const reconnect = { minMs: 50, maxMs: 300 };
  const annPhone = await connect(t, first, await newDevice(first, ann), { reconnect });
  const bobPhone = await connect(t, first, await newDevice(first, bob), { reconnect });
  const got = collect(bobPhone, 'msg');
  await annPhone.send({ to: bob.user, body: 'before' });
  await until(bobPhone, () => got.length === 1);

  // Waiting starts before the kill: the socket may close before the child's exit is reported.
  const dropped = annPhone.next('close', (c) => c.willReconnect);
  first.proc.kill('SIGKILL');
  await first.exited;
  await dropped;
  // Sent while the server is down: they wait in the outbox.
  const sends = Array.from({ length: 5 }, (_, i) => annPhone.send({ to: bob.user, body: `while down ${i + 1}`, cid: `down-${i + 1}` }));

  const second = await startChildServer(dataDir, { PORT: port });
  t.teardown(() => second.proc.kill('SIGKILL'));
  const acks = await Promise.all(sends);
  t.same(acks.map((a) => a.seq), [2, 3, 4, 5, 6], 'each outbox entry committed once, in order');
  await until(bobPhone, () => got.length === 6, 15_000);
  t.same(got.map((m) => m.body), ['before', ...Array.from({ length: 5 }, (_, i) => `while down ${i + 1}`)], 'bob got each exactly once');
  const history = await bobPhone.history({ thread: directThreadId(ann.user, bob.user), after: 0 });
  t.equal(history.messages.length, 6, 'and the server stored six, not more');
});
