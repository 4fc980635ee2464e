// The everyday parts of a chat app: inbox order and unread counts, mute and nickname across
// devices, delivered and read receipts, typing, contacts and presence.
import t from 'tap';
import { collect, connect, newDevice, newUser, startTestServer, until } from './helpers/server.js';
import { sharedServer } from './helpers/shared-server.js';

/** The default-config server of every subtest but presence's (other config, a server-wide gauge): each has its own users. */
const shared = sharedServer(t);

t.test('inbox: newest first with a cursor, unread counts, mute and nickname across devices', async (t) => {
  const s = await shared();
  const [me, a, b, c] = [await newUser(s, 'me'), await newUser(s, 'a'), await newUser(s, 'b'), await newUser(s, 'c')];
  const phone = await connect(t, s, await newDevice(s, me, 'phone'));
  const laptop = await connect(t, s, await newDevice(s, me, 'laptop'));
  const phoneMsgs = collect(phone, 'msg');
  const [ca, cb, cc] = [await connect(t, s, await newDevice(s, a)), await connect(t, s, await newDevice(s, b)), await connect(t, s, await newDevice(s, c))];

  const ta = (await ca.send({ to: me.user, body: 'a1' })).thread;
  await ca.send({ thread: ta, body: 'a2' });
  const tb = (await cb.send({ to: me.user, body: 'b1' })).thread;
  const tc = (await cc.send({ to: me.user, body: 'c1' })).thread;
  await until(phone, () => phoneMsgs.length === 4);

  const page1 = await laptop.request('inbox', { limit: 2 });
  t.same(page1.threads.map((r: any) => r.thread), [tc, tb], 'newest first');
  t.type(page1.cursor, 'string');
  const page2 = await laptop.request('inbox', { before: page1.cursor, limit: 2 });
  t.same(page2.threads.map((r: any) => r.thread), [ta]);
  t.equal(page2.cursor, undefined, 'no cursor on the last page');
  const rowA = page2.threads[0];
  t.match(rowA, { kind: 'direct', title: a.username, unread: 2, muted: false, readSeq: 0, last: { body: 'a2', seq: 2, from: a.user } });
  t.same([...rowA.members].sort(), [me.user, a.user].sort());

  // A new message moves its thread to the top.
  await ca.send({ thread: ta, body: 'a3' });
  await until(phone, () => phoneMsgs.length === 5);
  t.same((await phone.request('inbox', {})).threads.map((r: any) => r.thread), [ta, tc, tb]);

  // Reading on the phone clears unread on the laptop too (a receipt event reaches both).
  const laptopSawRead = laptop.next('receipt', (r) => r.thread === ta && r.user === me.user && r.read === 3);
  await phone.request('read', { thread: ta, seq: 3 });
  await laptopSawRead;
  t.match(await laptop.request('thread.get', { thread: ta }), { unread: 0, readSeq: 3 });

  // Reading part of a thread leaves the rest unread; a read never moves back.
  await cb.send({ thread: tb, body: 'b2' });
  await cb.send({ thread: tb, body: 'b3' });
  await until(phone, () => phoneMsgs.length === 7);
  const partial = laptop.next('receipt', (r) => r.thread === tb && r.user === me.user && r.read === 2);
  await phone.request('read', { thread: tb, seq: 2 });
  await partial;
  t.match(await laptop.request('thread.get', { thread: tb }), { unread: 1, readSeq: 2 });
  await phone.request('read', { thread: tb, seq: 1 });
  t.match(await laptop.request('thread.get', { thread: tb }), { readSeq: 2 }, 'never backwards');

  // Mute and nickname are the caller's own view, shared by the caller's devices only.
  await phone.request('thread.set', { thread: ta, muted: true, nickname: 'Annie' });
  t.match(await laptop.request('thread.get', { thread: ta }), { muted: true, nickname: 'Annie' });
  const theirs = (await ca.request('inbox', {})).threads.find((r: any) => r.thread === ta);
  t.match(theirs, { muted: false });
  t.equal(theirs.nickname, undefined, "the other side's view is untouched");
  await t.rejects(phone.request('thread.get', { thread: 'd:nobody:nothing' }), { code: 'not_found' });
});

t.test('receipts: delivered after the recipient acks, read after it reads, offline recipient included', async (t) => {
  const s = await shared();
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  const bobDevice = await newDevice(s, bob);

  // Bob is offline when ann sends.
  const { thread, seq } = await annPhone.send({ to: bob.user, body: 'are you there?' });
  const delivered = annPhone.next('receipt', (r) => r.thread === thread && r.user === bob.user && (r.delivered ?? 0) >= seq, 10_000);
  const bobPhone = await connect(t, s, bobDevice); // replays, then the SDK acks
  const d = await delivered;
  t.equal(d.read, 0, 'delivered, not read yet');

  const read = annPhone.next('receipt', (r) => r.thread === thread && r.user === bob.user && (r.read ?? 0) >= seq);
  await bobPhone.request('read', { thread, seq });
  t.match(await read, { delivered: seq, read: seq });

  // Coalesced: several reads in one burst give the sender at most one receipt per batch each,
  // and the watermarks only grow.
  for (let i = 0; i < 5; i++) await bobPhone.send({ thread, body: `reply ${i}` });
  const receipts = collect(bobPhone, 'receipt');
  const last = bobPhone.next('receipt', (r) => r.user === ann.user && r.read === 6, 10_000);
  await Promise.all([2, 3, 4, 5, 6].map((n) => annPhone.request('read', { thread, seq: n })));
  await last;
  const reads = receipts.filter((r) => r.user === ann.user).map((r) => r.read);
  t.same(reads, [...reads].sort((x, y) => x - y), 'watermarks never go back');
  t.ok(reads.length <= 5, `at most one receipt per read (${reads.length})`);
});

t.test('typing reaches online members only, and is rate limited per socket', async (t) => {
  const s = await shared();
  const [ann, bob, cat] = [await newUser(s, 'ann'), await newUser(s, 'bob'), await newUser(s, 'cat')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  const bobPhone = await connect(t, s, await newDevice(s, bob));
  const catDevice = await newDevice(s, cat);
  // Waiting starts before the request: bob's event may arrive before ann's answer.
  const created = bobPhone.next('thread', (e) => e.event === 'created');
  const { thread } = await annPhone.request('group.create', { title: 't', members: [bob.user, cat.user] });
  await created;

  const typing = bobPhone.next('typing', (e) => e.thread === thread);
  const annTyping = collect(annPhone, 'event');
  annPhone.request('typing', { thread }).catch(() => {});
  t.match(await typing, { thread, user: ann.user });
  t.equal(annTyping.filter((e) => e.t === 'typing').length, 0, 'not echoed to the typist');

  // Cat was offline: typing is ephemeral, nothing is replayed.
  const catPhone = await connect(t, s, catDevice);
  const catEvents = collect(catPhone, 'event');
  await annPhone.send({ thread, body: 'marker' });
  await until(catPhone, () => catEvents.some((e) => e.body === 'marker'));
  t.equal(catEvents.filter((e) => e.t === 'typing').length, 0, 'no typing replayed');

  // A burst beyond the limit gets rate_limited with a retry.
  const results = await Promise.allSettled(Array.from({ length: 10 }, () => annPhone.request('typing', { thread })));
  const limited = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason);
  t.ok(limited.length >= 4, `${limited.length} of 10 were limited`);
  t.match(limited[0], { code: 'rate_limited' });
  t.ok(limited[0].retry > 0, 'with a retry time');
});

t.test('contacts: add, list with presence, remove', async (t) => {
  const s = await shared();
  const [me, a, b] = [await newUser(s, 'me'), await newUser(s, 'a'), await newUser(s, 'b')];
  const phone = await connect(t, s, await newDevice(s, me));
  const aPhone = await connect(t, s, await newDevice(s, a)); // a is online
  await aPhone.request('contacts.add', { user: me.user }); // and shows it to their contacts (the default)
  await phone.request('contacts.add', { user: a.user });
  await phone.request('contacts.add', { user: b.user });
  await t.rejects(phone.request('contacts.add', { user: 'unobody000000' }), { code: 'not_found' });
  await t.rejects(phone.request('contacts.add', { user: me.user }), { code: 'bad_frame' });
  // A user is online as soon as a socket of theirs is open (docs/protocol.md §4): no wait.
  const list = await phone.request('contacts.list', {});
  const byUser = Object.fromEntries(list.contacts.map((c: any) => [c.user, c]));
  t.match(byUser[a.user], { name: a.username, online: true });
  t.match(byUser[b.user], { name: b.username, online: false, last: 0 });
  await phone.request('contacts.remove', { user: b.user });
  t.same((await phone.request('contacts.list', {})).contacts.map((c: any) => c.user), [a.user]);
});

t.test('presence: online at once, offline debounced with last, a flap unannounced, no watcher left behind', async (t) => {
  // Visibility rules have tests of their own (privacy-blocks.test.ts): here everyone may watch.
  const s = await startTestServer(t, { defaultLastSeen: 'everyone' });
  const [watcher, target, clock] = [await newUser(s, 'w'), await newUser(s, 'x'), await newUser(s, 'y')];
  const targetDevice = await newDevice(s, target);
  const w = await connect(t, s, await newDevice(s, watcher));

  const first = await w.request('presence.sub', { users: [target.user] });
  t.same(first.presence, [{ user: target.user, online: false, last: 0 }]);
  const events = collect(w, 'event');
  const presenceOf = (user: string) => events.filter((e) => e.t === 'presence' && e.user === user);

  const online = w.next('presence', (p) => p.user === target.user && p.online, 5000);
  const tp = await connect(t, s, targetDevice);
  await online;
  // Online is immediate: a subscription made now already says so (docs/protocol.md §4).
  const other = await connect(t, s, await newDevice(s, watcher, 'other'));
  t.match((await other.request('presence.sub', { users: [target.user] })).presence, [{ user: target.user, online: true }], 'presence.sub answers online right after connect');
  await other.close();

  const offline = w.next('presence', (p) => p.user === target.user && !p.online, 5000);
  const closedAt = Date.now();
  await tp.close();
  const off = await offline;
  t.ok(off.last >= closedAt && off.last - closedAt < 2000, 'last is when the socket closed');
  const again = w.next('presence', (p) => p.user === target.user && p.online, 5000);
  const tp2 = await connect(t, s, targetDevice);
  await again;

  // A flap: off and on again within the debounce window is no event at all. The clock user's
  // own offline, debounced from a later close, is announced only once the flap's window is over.
  const cp = await connect(t, s, await newDevice(s, clock));
  await w.request('presence.sub', { users: [clock.user] });
  const flapFrom = presenceOf(target.user).length;
  await tp2.close();
  const tp3 = await connect(t, s, targetDevice);
  const clockOff = w.next('presence', (p) => p.user === clock.user && !p.online, 5000);
  await cp.close();
  await clockOff;
  // The target's actor may still be working through the expired window: its next event must be
  // the real offline below, with the time of the last close, not the flap's.
  const finalOff = w.next('presence', (p) => p.user === target.user, 5000);
  const finalAt = Date.now();
  await tp3.close();
  const fin = await finalOff;
  t.same(presenceOf(target.user).slice(flapFrom).map((p) => p.online), [false], 'the flap was not announced; only the final offline');
  t.ok(fin.last >= finalAt, 'and its last is the final close');

  // Limits.
  await t.rejects(w.request('presence.sub', { users: ['unobody000000'] }), { code: 'not_found' });
  const many = Array.from({ length: 1001 }, (_, i) => `u${i}`);
  await t.rejects(w.request('presence.sub', { users: many }), { code: 'bad_frame' });

  // A disconnect leaves no watcher: the watcher's close sent each watched actor an unwatch, and
  // an attach to those actors (a fresh socket of each) travels after it: a barrier, not a wait.
  await w.close();
  await connect(t, s, await newDevice(s, target, 'probe'));
  await connect(t, s, await newDevice(s, clock, 'probe'));
  const metrics = await (await fetch(`${s.base}/metrics`)).text();
  t.equal(/parley_presence_watchers (\d+)/.exec(metrics)?.[1], '0', 'no watcher registrations remain');
});

t.test('group receipts go to the authors of the covered messages, not to every member', async (t) => {
  const s = await shared();
  const [ann, bob, cat] = [await newUser(s, 'ann'), await newUser(s, 'bob'), await newUser(s, 'cat')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  await connect(t, s, await newDevice(s, bob)); // online, so its SDK acks
  const catPhone = await connect(t, s, await newDevice(s, cat));
  const catReceipts = collect(catPhone, 'receipt');
  const annReceipts = collect(annPhone, 'receipt');
  const { thread } = await annPhone.request('group.create', { title: 'g', members: [bob.user, cat.user] });
  const { seq } = await annPhone.send({ thread, body: 'from ann' });
  // Both others ack (the SDK does it): ann, the author, hears from each (collected from the start: however early they come).
  const deliveredBy = (u: string) => annReceipts.some((r) => r.user === u && (r.delivered ?? 0) >= seq);
  await until(annPhone, () => deliveredBy(bob.user) && deliveredBy(cat.user));
  // A later message by cat: its receipts do go to cat, and mark the end of what cat could get.
  const { seq: catSeq } = await catPhone.send({ thread, body: 'from cat' });
  await until(catPhone, () => catReceipts.some((r) => r.user === bob.user && (r.delivered ?? 0) >= catSeq));
  t.equal(catReceipts.filter((r) => r.user === bob.user && r.delivered === seq).length, 0, "cat is not told about bob's receipt for ann's message");
  t.ok(catReceipts.some((r) => r.user === bob.user && r.delivered >= catSeq), "cat is told when bob got cat's message");
});
