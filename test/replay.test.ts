// Where a replay starts (docs/protocol.md §3, §8.1): `since` as given, the server's device cursor
// when omitted, and `first` (with welcome.reset) when the epoch differs or since is beyond the head.
import t from 'tap';
import { connect, newDevice, newUser, startTestServer, type TestDevice } from './helpers/server.js';
import { rawSocket, type RawSocket } from './helpers/raw-socket.js';

type Server = Awaited<ReturnType<typeof startTestServer>>;

/** A raw socket after hello: its welcome and the durable events replayed before `synced`. */
async function session(t: Parameters<typeof rawSocket>[0], s: Server, d: TestDevice, hello: object = {}) {
  const sock = await rawSocket(t, s.wsUrl);
  const synced = sock.next((f) => f.t === 'synced');
  sock.send({ t: 'hello', token: d.token, ...hello });
  const end = await synced;
  const welcome = sock.frames.find((f) => f.t === 'welcome');
  const replayed = sock.frames.slice(sock.frames.indexOf(welcome) + 1, sock.frames.indexOf(end));
  return { sock, welcome, replayed, synced: end };
}

/** ann sends `n` messages to bob; resolves once they are in bob's log (seen by a live device). */
async function fill(t: Parameters<typeof rawSocket>[0], s: Server, n: number) {
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  const bobWatch = await connect(t, s, await newDevice(s, bob, 'watch'), { autoAck: false });
  const last = bobWatch.next('msg', (m) => m.body === `m${n}`);
  for (let i = 1; i <= n; i++) await annPhone.send({ to: bob.user, body: `m${i}` });
  await last;
  return { ann, bob, annPhone };
}

const bodies = (frames: any[]) => frames.filter((f) => f.t === 'msg').map((f) => f.body);

t.test('welcome carries the epoch and first; the same epoch keeps since, another resets to first', async (t) => {
  const s = await startTestServer(t);
  const { bob } = await fill(t, s, 5);
  const phone = await newDevice(s, bob, 'phone');

  const plain = await session(t, s, phone, { since: 3 });
  t.type(plain.welcome.epoch, 'string', 'welcome.epoch');
  t.ok(plain.welcome.epoch.length >= 1 && plain.welcome.epoch.length <= 40, 'at most 40 characters');
  t.equal(plain.welcome.first, 1, 'first is 1 while nothing was trimmed');
  t.equal(plain.welcome.reset, undefined, 'no reset without an epoch in hello');
  t.same(bodies(plain.replayed), ['m4', 'm5']);
  const { epoch } = plain.welcome;

  const same = await session(t, s, phone, { since: 3, epoch });
  t.equal(same.welcome.reset, undefined, 'the same epoch: no reset');
  t.equal(same.welcome.epoch, epoch, 'the epoch does not change between sessions');
  t.same(bodies(same.replayed), ['m4', 'm5'], 'and since is honoured');

  const other = await session(t, s, phone, { since: 5, epoch: 'another-lineage' });
  t.equal(other.welcome.reset, true, 'another epoch: reset');
  t.equal(other.welcome.epoch, epoch, "the server's epoch, to store with the new cursor");
  t.same(other.replayed.map((f) => f.u), [1, 2, 3, 4, 5], 'since is ignored: the replay starts at first');
  t.same(bodies(other.replayed), ['m1', 'm2', 'm3', 'm4', 'm5']);
  t.equal(other.synced.u, 5);
});

t.test('a restart on the same data directory keeps the epoch', async (t) => {
  const s = await startTestServer(t);
  const { bob } = await fill(t, s, 1);
  const phone = await newDevice(s, bob, 'phone');
  const { epoch } = (await session(t, s, phone)).welcome;
  await s.server.stop();
  const again = await startTestServer(t, { dataDir: s.dataDir });
  const after = await session(t, again, phone, { since: 1, epoch });
  t.equal(after.welcome.epoch, epoch);
  t.equal(after.welcome.reset, undefined);
  t.same(after.replayed, [], 'nothing to replay past the cursor');
});

t.test('since beyond the head is a cursor of another lineage: reset, replay from first, the next event follows', async (t) => {
  const s = await startTestServer(t);
  const { bob, annPhone } = await fill(t, s, 3);
  const { sock, welcome, replayed, synced } = await session(t, s, await newDevice(s, bob, 'phone'), { since: 1000 });
  t.equal(welcome.u, 3, 'welcome says the real head');
  t.equal(welcome.reset, true, 'a cursor the log never reached cannot be resumed: reset');
  t.same(replayed.map((f) => f.u), [1, 2, 3], 'the replay starts at first');
  t.equal(synced.u, 3, 'synced at the head, not at the claimed cursor');
  const live = sock.next((f) => f.t === 'msg');
  await annPhone.send({ to: bob.user, body: 'after the reset' });
  t.match(await live, { u: 4, body: 'after the reset' }, 'the next event arrives, at head + 1');
});

t.test("since omitted: a new device replays everything, a known one resumes at the server's cursor", async (t) => {
  const s = await startTestServer(t);
  const { bob } = await fill(t, s, 5);
  const phone = await newDevice(s, bob, 'phone');

  const fresh = await session(t, s, phone);
  t.same(fresh.replayed.map((f) => f.u), [1, 2, 3, 4, 5], 'a device that never acked starts at the beginning');
  fresh.sock.send({ t: 'ack', u: 3 });
  fresh.sock.ws.close();
  await fresh.sock.closed;

  // The ack and the next session's attach go to the same user actor in this order.
  const resumed = await session(t, s, phone);
  t.same(resumed.replayed.map((f) => f.u), [4, 5], 'only what the device had not acked');
  t.equal(resumed.synced.u, 5);

  const explicit = await session(t, s, phone, { since: 1 });
  t.same(explicit.replayed.map((f) => f.u), [2, 3, 4, 5], 'an explicit since wins over the cursor');
});
