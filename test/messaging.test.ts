// End to end: 1:1 messaging over real sockets with the SDK — live delivery to every device,
// offline replay exactly once in order, device cursors, cid dedupe, history paging, strangers.
import t from 'tap';
import { ParleyError } from '../client/index.js';
import { directThreadId } from '../protocol/ids.js';
import { client, collect, connect, newDevice, newUser, startTestServer, until } from './helpers/server.js';
import { sharedServer } from './helpers/shared-server.js';

/** The server of every subtest but the last (which counts sockets server-wide): each has its own users. */
const shared = sharedServer(t);

t.test('live 1:1 delivery reaches both devices of both users, cid only to the sender', async (t) => {
  const s = await shared();
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const annPhone = await connect(t, s, await newDevice(s, ann, 'phone'));
  const annLaptop = await connect(t, s, await newDevice(s, ann, 'laptop'));
  const bobPhone = await connect(t, s, await newDevice(s, bob, 'phone'));
  const bobLaptop = await connect(t, s, await newDevice(s, bob, 'laptop'));

  const seen = [annPhone, annLaptop, bobPhone, bobLaptop].map((c) => c.next('msg', (m) => m.body === 'hi bob'));
  const ok = await annPhone.send({ to: bob.user, body: 'hi bob', cid: 'first-message' });
  t.equal(ok.thread, directThreadId(ann.user, bob.user), 'the 1:1 thread is named by its members');
  t.equal(ok.seq, 1);
  t.match(ok.id, /^[A-Za-z0-9_:-]{1,40}$/);
  t.type(ok.ts, 'number');

  const [a1, a2, b1, b2] = await Promise.all(seen);
  for (const m of [a1, a2, b1, b2]) {
    t.equal(m.thread, ok.thread);
    t.equal(m.seq, 1);
    t.equal(m.id, ok.id);
    t.equal(m.from, ann.user);
    t.equal(m.u, 1, 'first event in each user log');
  }
  t.equal(a1.cid, 'first-message', "sender's own devices see the cid");
  t.equal(a2.cid, 'first-message');
  t.equal(b1.cid, undefined, 'recipients do not');
  t.equal(b2.cid, undefined);

  // The reply goes the other way by thread id.
  const back = annLaptop.next('msg', (m) => m.body === 'hi ann');
  const ok2 = await bobLaptop.send({ thread: ok.thread, body: 'hi ann' });
  t.equal(ok2.seq, 2, 'seq is per thread and gap-free');
  t.equal((await back).u, 2);
});

t.test('50 messages to an offline user are replayed exactly once, in order', async (t) => {
  const s = await shared();
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  const bobDevice = await newDevice(s, bob);
  for (let i = 1; i <= 50; i++) await annPhone.send({ to: bob.user, body: `m${i}` });

  // The fan-out to bob's log may still be under way when he connects: what the replay does not
  // have yet comes live. Either way each message once, in order; a marker sent last is the barrier.
  const bobPhone = client(t, s, bobDevice, { autoAck: false });
  const got = collect(bobPhone, 'msg');
  await bobPhone.connect();
  const marker = bobPhone.next('msg', (m) => m.body === 'marker');
  await annPhone.send({ to: bob.user, body: 'marker' });
  await marker;
  t.same(got.map((m) => m.body), [...Array.from({ length: 50 }, (_, i) => `m${i + 1}`), 'marker'], 'each once, in order');
  t.same(got.map((m) => m.u), Array.from({ length: 51 }, (_, i) => i + 1), 'u 1..51 with no gap');
  const history = await bobPhone.history({ thread: directThreadId(ann.user, bob.user), after: 0, limit: 100 });
  t.equal(history.messages.length, 51);
});

t.test('replay order and uniqueness as the client sees them', async (t) => {
  const s = await shared();
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  for (let i = 1; i <= 50; i++) await annPhone.send({ to: bob.user, body: `m${i}` });
  const bobDevice = await newDevice(s, bob);

  // Count every msg frame from the first byte, including the replay before `synced` (and what
  // comes live after it if the fan-out to bob's log was still under way).
  const bobPhone = client(t, s, bobDevice);
  const got = collect(bobPhone, 'msg');
  await bobPhone.connect();
  await until(bobPhone, () => got.length >= 50);
  t.same(got.map((m) => m.body), Array.from({ length: 50 }, (_, i) => `m${i + 1}`), 'all 50, once each, in send order');
  t.same(got.map((m) => m.u), Array.from({ length: 50 }, (_, i) => i + 1), 'u runs 1..50 with no gap');

  // Live messages after the replay continue the same sequence.
  const live = bobPhone.next('msg');
  await annPhone.send({ to: bob.user, body: 'live' });
  t.equal((await live).u, 51);
});

t.test('a second device gets live messages and the server remembers its cursor', async (t) => {
  const s = await shared();
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  const tablet = await newDevice(s, bob, 'tablet');
  const bobTablet = await connect(t, s, tablet);
  const got = collect(bobTablet, 'msg');
  for (let i = 1; i <= 5; i++) await annPhone.send({ to: bob.user, body: `early${i}` });
  await until(bobTablet, () => got.length === 5);
  // Closing flushes the SDK's pending ack: the server's cursor for this device is now 5.
  await bobTablet.close();

  for (let i = 1; i <= 3; i++) await annPhone.send({ to: bob.user, body: `later${i}` });
  // No `since`: the server resumes from its own cursor for this device.
  const again = client(t, s, tablet);
  const replayed = collect(again, 'msg');
  await again.connect();
  await until(again, () => replayed.length >= 3); // the fan-out of the last ones may still be under way
  t.same(replayed.map((m) => m.body), ['later1', 'later2', 'later3'], 'only what the device had not acked');
  const us = replayed.map((m) => m.u);
  t.ok(us[0] > 5 && us.every((u, i) => i === 0 || u > us[i - 1]), `after the cursor, in log order (${us})`);
});

t.test('a resend with the same cid returns the first result and creates nothing', async (t) => {
  const s = await shared();
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  const bobPhone = await connect(t, s, await newDevice(s, bob));
  const got = collect(bobPhone, 'msg');

  const first = await annPhone.request('send', { cid: 'same', to: bob.user, body: 'once' });
  const again = await annPhone.request('send', { cid: 'same', to: bob.user, body: 'once' });
  // Two in flight at once: the second must not fork the first before it commits.
  const [x, y] = await Promise.all([
    annPhone.request('send', { cid: 'racing', to: bob.user, body: 'race' }),
    annPhone.request('send', { cid: 'racing', to: bob.user, body: 'race' }),
  ]);
  t.same(again, first, 'same thread, seq, id and ts');
  t.same(x, y);
  const marker = await annPhone.send({ to: bob.user, body: 'marker' });
  await until(bobPhone, () => got.some((m) => m.body === 'marker'));
  t.same(got.map((m) => m.body), ['once', 'race', 'marker'], 'one message per cid');
  t.equal(marker.seq, 3);
});

t.test('history pages both ways with cursors', async (t) => {
  const s = await shared();
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  let thread = '';
  for (let i = 1; i <= 25; i++) thread = (await annPhone.send({ to: bob.user, body: `h${i}` })).thread;

  const newest = await annPhone.history({ thread, limit: 10 });
  t.same(newest.messages.map((m: any) => m.seq), [25, 24, 23, 22, 21, 20, 19, 18, 17, 16], 'newest first without cursors');
  t.equal(newest.more, true);
  const older = await annPhone.history({ thread, before: 16, limit: 10 });
  t.same(older.messages.map((m: any) => m.seq), [15, 14, 13, 12, 11, 10, 9, 8, 7, 6]);
  const oldest = await annPhone.history({ thread, before: 6, limit: 10 });
  t.same(oldest.messages.map((m: any) => m.seq), [5, 4, 3, 2, 1]);
  t.equal(oldest.more, false, 'the last page says so');

  const forward = await annPhone.history({ thread, after: 20, limit: 3 });
  t.same(forward.messages.map((m: any) => m.seq), [21, 22, 23], 'oldest first with after');
  t.equal(forward.more, true);
  const end = await annPhone.history({ thread, after: 23, limit: 3 });
  t.same(end.messages.map((m: any) => m.seq), [24, 25]);
  t.equal(end.more, false);
  t.equal(end.messages[0].body, 'h24');
  t.equal(end.messages[0].from, ann.user);
  t.equal(end.messages[0].thread, thread);

  await t.rejects(annPhone.history({ thread, limit: 101 }), { code: 'bad_frame' }, 'limit is at most 100');
});

t.test('a stranger gets forbidden; unknown users and threads get not_found', async (t) => {
  const s = await shared();
  const [ann, bob, eve] = [await newUser(s, 'ann'), await newUser(s, 'bob'), await newUser(s, 'eve')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  const evePhone = await connect(t, s, await newDevice(s, eve));
  const { thread } = await annPhone.send({ to: bob.user, body: 'private' });

  await t.rejects(evePhone.send({ thread, body: 'let me in' }), { code: 'forbidden' });
  await t.rejects(evePhone.history({ thread }), { code: 'forbidden' });
  await t.rejects(evePhone.send({ to: 'unobody000000', body: 'hello?' }), { code: 'not_found' });
  await t.rejects(evePhone.history({ thread: 'g:nothing-here' }), { code: 'not_found' });
  const err = await evePhone.send({ thread, body: 'again' }).catch((e: unknown) => e);
  t.ok(err instanceof ParleyError, 'the SDK surfaces a typed error');
  t.equal(await evePhone.ping().then((ts) => typeof ts), 'number', 'the socket keeps working');
});

t.test('disconnects leave no socket registration behind', async (t) => {
  const s = await startTestServer(t);
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const clients = [
    await connect(t, s, await newDevice(s, ann, 'phone')),
    await connect(t, s, await newDevice(s, ann, 'laptop')),
    await connect(t, s, await newDevice(s, bob, 'phone')),
  ];
  const gauge = async (name: string) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(await (await fetch(`${s.base}/metrics`)).text())?.[1]);
  t.equal(await gauge('parley_attached_sockets'), 3, 'three sockets attached to user actors');
  t.equal(await gauge('parley_connections'), 3);
  for (const c of clients) await c.close();
  t.equal(await gauge('parley_connections'), 0);
  // A barrier instead of a wait: each close sent its user actor a detach, and a new socket's
  // attach to the same actor travels the same path after it. Once both are synced, the old
  // registrations are gone or never will be.
  const probes = [await connect(t, s, await newDevice(s, ann, 'probe')), await connect(t, s, await newDevice(s, bob, 'probe'))];
  t.equal(await gauge('parley_attached_sockets'), probes.length, 'only the two new sockets are attached: every old registration is gone');
});
