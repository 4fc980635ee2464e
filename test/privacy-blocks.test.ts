// Presence privacy and blocks (docs/protocol.md §8.2): by default only the owner's contacts see
// their online state and last seen; privacy.set widens or closes it; whoever may not see it is told
// online false, last 0, and gets no events; a blocked user's 1:1 sends are forbidden and they see
// no presence of the blocker; groups are unaffected.
import t from 'tap';
import { connect, newDevice, newUser, startTestServer } from './helpers/server.js';

t.test('by default only contacts see presence; gaining and losing visibility are told once', async (t) => {
  const s = await startTestServer(t);
  const [ann, bob, carol] = [await newUser(s, 'ann'), await newUser(s, 'bob'), await newUser(s, 'carol')];
  const a = await connect(t, s, await newDevice(s, ann)); // ann is online
  const b = await connect(t, s, await newDevice(s, bob));
  const c = await connect(t, s, await newDevice(s, carol));
  await a.request('contacts.add', { user: carol.user }); // carol is ann's contact; bob is not
  t.same((await b.request('presence.sub', { users: [ann.user] })).presence, [{ user: ann.user, online: false, last: 0 }], 'bob, not a contact: hidden');
  t.match((await c.request('presence.sub', { users: [ann.user] })).presence, [{ user: ann.user, online: true }], 'carol, a contact: online');
  await b.request('contacts.add', { user: ann.user });
  t.match((await b.request('contacts.list', {})).contacts, [{ user: ann.user, online: false, last: 0 }], 'contacts.list hides it the same way');

  const gained = b.next('presence', (p) => p.user === ann.user);
  await a.request('contacts.add', { user: bob.user });
  t.match(await gained, { user: ann.user, online: true }, 'bob gets the current state once ann adds him');
  t.match((await b.request('contacts.list', {})).contacts, [{ user: ann.user, online: true }]);
  const lost = b.next('presence', (p) => p.user === ann.user);
  await a.request('contacts.remove', { user: bob.user });
  t.match(await lost, { user: ann.user, online: false, last: 0 }, 'and "offline, never seen" once he is removed');
});

t.test('privacy.set nobody hides presence from everyone, with no events; everyone shows it to all', async (t) => {
  const s = await startTestServer(t);
  const [ann, bob, carol] = [await newUser(s, 'ann'), await newUser(s, 'bob'), await newUser(s, 'carol')];
  const annDevice = await newDevice(s, ann);
  let a = await connect(t, s, annDevice);
  const b = await connect(t, s, await newDevice(s, bob));
  const c = await connect(t, s, await newDevice(s, carol));
  await a.request('contacts.add', { user: carol.user });
  await c.request('presence.sub', { users: [ann.user] });
  await b.request('presence.sub', { users: [ann.user] });
  const events: any[] = [];
  c.on('presence', (p) => p.user === ann.user && events.push(p));

  const hidden = c.next('presence', (p) => p.user === ann.user);
  await a.request('privacy.set', { lastSeen: 'nobody' });
  t.match(await hidden, { online: false, last: 0 }, 'even a contact loses it');
  // Ann goes offline and comes back: nothing may reach carol. The barrier is ann's own actor: the
  // event of the next visibility change comes after anything it would have sent before.
  const offline = events.length;
  await a.close();
  a = await connect(t, s, annDevice);
  const shown = b.next('presence', (p) => p.user === ann.user);
  const shownToCarol = c.next('presence', (p) => p.user === ann.user && p.online);
  await a.request('privacy.set', { lastSeen: 'everyone' });
  t.match(await shown, { online: true }, 'everyone: bob, not a contact, sees her now');
  await shownToCarol;
  t.equal(events.length, offline + 1, 'carol got no event while it was hidden, then the one that shows it');
  await t.rejects(a.request('privacy.set', { lastSeen: 'friends' }), { code: 'bad_frame' });
});

t.test('block: 1:1 sends forbidden, presence hidden, groups unaffected; unblock restores', async (t) => {
  const s = await startTestServer(t, { defaultLastSeen: 'everyone' });
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const a = await connect(t, s, await newDevice(s, ann));
  const b = await connect(t, s, await newDevice(s, bob));
  const { thread } = await b.send({ to: ann.user, body: 'hi' });
  await b.request('presence.sub', { users: [ann.user] });
  const hidden = b.next('presence', (p) => p.user === ann.user);
  await a.request('block', { user: bob.user });
  t.match(await hidden, { online: false, last: 0 }, 'the blocked user stops seeing the blocker');
  t.same(await a.request('blocks.list', {}), { users: [bob.user] });
  await t.rejects(b.send({ to: ann.user, body: 'by id' }), { code: 'forbidden' }, 'send {to} is forbidden');
  await t.rejects(b.send({ thread, body: 'by thread' }), { code: 'forbidden' }, '1:1 send by thread too');
  t.same((await b.request('presence.sub', { users: [ann.user] })).presence, [{ user: ann.user, online: false, last: 0 }]);
  const group = await a.request('group.create', { title: 'Both', members: [bob.user], cid: 'g1' });
  t.ok((await b.send({ thread: group.thread, body: 'in the group' })).seq, 'groups are unaffected');
  t.ok((await a.send({ to: bob.user, body: 'the blocker may still write' })).seq);
  await t.rejects(a.request('block', { user: ann.user }), { code: 'bad_frame' }, 'not yourself');
  await t.rejects(a.request('block', { user: 'unobody000000' }), { code: 'not_found' });

  const shown = b.next('presence', (p) => p.user === ann.user && p.online);
  await a.request('unblock', { user: bob.user });
  await shown;
  t.same(await a.request('blocks.list', {}), { users: [] });
  t.ok((await b.send({ to: ann.user, body: 'again' })).seq, 'unblocked: sends go through');
});
