// Log epochs (docs/protocol.md §3): welcome names the lineage of the data directory's logs; a cursor
// from another lineage is dropped and the whole log is replayed, over the wire and in the SDK.
import t from 'tap';
import { rawSocket } from './helpers/raw-socket.js';
import type { ParleyClient } from '../client/index.js';
import { client, collect, connect, newDevice, newUser, startTestServer, tempDataDir, until, type TestDevice } from './helpers/server.js';

interface Session { welcome: any; replayed: number[]; synced: any }

/** A raw socket's hello: the welcome, the u of every durable frame replayed before synced, synced. */
async function helloRaw(t: { teardown(fn: () => unknown): void }, wsUrl: string, d: TestDevice, extra: Record<string, unknown> = {}): Promise<Session> {
  const sock = await rawSocket(t, wsUrl);
  const synced = sock.next((f) => f.t === 'synced', 10_000);
  sock.send({ t: 'hello', token: d.token, ...extra });
  const end = await synced;
  const welcome = sock.frames.find((f) => f.t === 'welcome');
  const between = sock.frames.slice(sock.frames.indexOf(welcome) + 1, sock.frames.indexOf(end));
  const replayed = between.filter((f) => typeof f.u === 'number').map((f) => f.u);
  sock.ws.close();
  return { welcome, replayed, synced: end };
}

/** Sends the bodies to bob and returns once bob's log holds them all (sends are ok'ed before delivery). */
async function sendToBob(t: { teardown(fn: () => unknown): void }, s: { wsUrl: string }, bobDevice: TestDevice, from: ParleyClient, bob: string, bodies: string[]): Promise<void> {
  const bobPhone = await connect(t, s, bobDevice);
  const msgs = collect(bobPhone, 'msg');
  for (const body of bodies) await from.send({ to: bob, body });
  await until(bobPhone, () => msgs.length === bodies.length);
  await bobPhone.close();
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

t.test('welcome carries epoch and first; the epoch survives a restart on the same data directory, a fresh one differs', async (t) => {
  const dataDir = tempDataDir(t);
  const s1 = await startTestServer(t, { dataDir });
  const [ann, bob] = [await newUser(s1, 'ann'), await newUser(s1, 'bob')];
  const bobDevice = await newDevice(s1, bob);
  const annPhone = await connect(t, s1, await newDevice(s1, ann));
  await sendToBob(t, s1, bobDevice, annPhone, bob.user, ['before the restart']);
  await annPhone.close();

  const before = await helloRaw(t, s1.wsUrl, bobDevice, { since: 0 });
  t.type(before.welcome.epoch, 'string');
  t.ok(before.welcome.epoch.length > 0 && before.welcome.epoch.length <= 40, 'an epoch of 1..40 characters');
  t.equal(before.welcome.first, 1, 'nothing trimmed: first is 1');
  t.notOk('reset' in before.welcome, 'no reset without an epoch in hello');
  t.ok(before.welcome.u >= 1 && before.replayed.length === before.welcome.u, 'the log has the message');
  await s1.server.stop();

  const s2 = await startTestServer(t, { dataDir });
  const after = await helloRaw(t, s2.wsUrl, bobDevice, { since: 0, epoch: before.welcome.epoch });
  t.equal(after.welcome.epoch, before.welcome.epoch, 'same data directory, same epoch');
  t.notOk('reset' in after.welcome, 'the stored epoch is still current: no reset');
  t.same(after.replayed, before.replayed, 'the same log after the restart');

  const fresh = await startTestServer(t);
  const stranger = await newDevice(fresh, await newUser(fresh, 'cat'));
  const other = await helloRaw(t, fresh.wsUrl, stranger);
  t.type(other.welcome.epoch, 'string');
  t.not(other.welcome.epoch, before.welcome.epoch, 'a fresh data directory has its own epoch');
});

t.test('hello with the same epoch resumes after since; another epoch, or a cursor above the head, answers reset and replays from u=1', async (t) => {
  const s = await startTestServer(t);
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const bobDevice = await newDevice(s, bob);
  const annPhone = await connect(t, s, await newDevice(s, ann));
  await sendToBob(t, s, bobDevice, annPhone, bob.user, ['m1', 'm2', 'm3', 'm4']);

  const all = await helloRaw(t, s.wsUrl, bobDevice, { since: 0 });
  const head = all.welcome.u as number;
  const epoch = all.welcome.epoch as string;
  t.ok(head >= 4, `bob's log holds the messages (head ${head})`);
  t.same(all.replayed, range(1, head));

  const resumed = await helloRaw(t, s.wsUrl, bobDevice, { since: 2, epoch });
  t.notOk('reset' in resumed.welcome, 'same epoch: no reset');
  t.same(resumed.replayed, range(3, head), 'replay after since, as without an epoch');
  t.equal(resumed.synced.u, head);

  // At the head, a cursor of the same lineage has nothing to replay...
  const atHead = await helloRaw(t, s.wsUrl, bobDevice, { since: head, epoch });
  t.same(atHead.replayed, [], 'nothing after the head');

  // ...but one of another lineage means nothing: since is ignored, everything comes again.
  const reset = await helloRaw(t, s.wsUrl, bobDevice, { since: head, epoch: 'another-lineage' });
  t.match(reset.welcome, { t: 'welcome', reset: true, epoch, first: 1, u: head });
  t.same(reset.replayed, range(1, head), 'every event from u=1, in order, once');
  t.match(reset.synced, { t: 'synced', u: head });

  // A cursor beyond the head from another lineage (a server that lost data) is reset the same way.
  const beyond = await helloRaw(t, s.wsUrl, bobDevice, { since: head + 1000, epoch: 'another-lineage' });
  t.equal(beyond.welcome.reset, true);
  t.same(beyond.replayed, range(1, head));

  // So is a cursor above the head with this epoch or none: the device saw events these logs do not
  // have (a backup restored into the same data directory keeps its epoch).
  for (const extra of [{ epoch }, {}]) {
    const above = await helloRaw(t, s.wsUrl, bobDevice, { since: head + 5, ...extra });
    t.match(above.welcome, { reset: true, epoch, first: 1 }, `above the head: reset (${'epoch' in extra ? 'same epoch' : 'no epoch'})`);
    t.same(above.replayed, range(1, head), 'the whole log again');
  }
});

t.test('the SDK emits reset before re-dispatching the replay, then stands at the head in the server epoch', async (t) => {
  const s = await startTestServer(t);
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const bobDevice = await newDevice(s, bob);
  const annPhone = await connect(t, s, await newDevice(s, ann));
  await sendToBob(t, s, bobDevice, annPhone, bob.user, ['m1', 'm2', 'm3']);
  const { welcome } = await helloRaw(t, s.wsUrl, bobDevice, { since: 0 });
  const head = welcome.u as number;

  // A stored cursor at the head from another lineage: without the reset nothing would be dispatched.
  const bobPhone = client(t, s, bobDevice, { since: head, epoch: 'another-lineage' });
  const seen: (['reset', { epoch: string; first: number }] | ['event', number])[] = [];
  bobPhone.on('reset', (e) => seen.push(['reset', e]));
  bobPhone.on('event', (e: any) => {
    if (typeof e.u === 'number') seen.push(['event', e.u]);
  });
  await bobPhone.connect();
  t.same(seen, [['reset', { epoch: welcome.epoch, first: 1 }], ...range(1, head).map((u) => ['event', u])], 'reset first, then every event once');
  t.equal(bobPhone.epoch, welcome.epoch, "client.epoch is the server's");
  t.equal(bobPhone.lastU, head, 'client.lastU is the head of the log');
  const live = bobPhone.next('msg', (m) => m.body === 'live');
  await annPhone.send({ to: bob.user, body: 'live' });
  t.ok((await live).u > head, 'live events go on after the replayed ones');

  // The epoch the client now holds is current: reconnecting with it and its cursor is a plain resume.
  const again = client(t, s, bobDevice, { since: bobPhone.lastU, epoch: bobPhone.epoch });
  let resets = 0;
  again.on('reset', () => resets++);
  const replayed: number[] = [];
  again.on('event', (e: any) => typeof e.u === 'number' && replayed.push(e.u));
  await again.connect();
  t.equal(resets, 0, 'no reset with the current epoch');
  t.same(replayed, [], 'nothing replayed at the head');
});
