// The SDK's group methods (docs/sdk.md "Groups"): create (idempotent by cid), add, remove, rename,
// leave, members, and the durable `thread` events each sends; one real server for every subtest.
import t from 'tap';
import type { ThreadEvent } from '../client/index.js';
import { connect, newDevice, newUser, startTestServer } from './helpers/server.js';

const s = await startTestServer(t);

t.test('a group of three: create, add, rename, remove, leave, members', async (t) => {
  const [ann, bob, cat, dan] = [await newUser(s, 'ann'), await newUser(s, 'bob'), await newUser(s, 'cat'), await newUser(s, 'dan')];
  const a = await connect(t, s, await newDevice(s, ann));
  const b = await connect(t, s, await newDevice(s, bob));
  const events: ThreadEvent[] = [];
  b.on('thread', (e) => events.push(e));

  const created = b.next('thread', (e) => e.event === 'created');
  const { thread } = await a.groupCreate({ title: 'Trip', members: [bob.user, cat.user], cid: 'trip-1' });
  t.match(thread, /^g:/);
  t.same(await a.groupCreate({ title: 'Trip again', members: [], cid: 'trip-1' }), { thread }, 'a retry with the cid is the same group');
  t.match(await created, { t: 'thread', thread, event: 'created', by: ann.user, title: 'Trip' });
  t.same((await a.groupMembers(thread)).admins, [ann.user], 'the creator is the admin');

  const added = b.next('thread', (e) => e.event === 'added');
  await a.groupAdd({ thread, users: [dan.user] });
  t.match(await added, { users: [dan.user], by: ann.user });
  const renamed = b.next('thread', (e) => e.event === 'title');
  await b.groupTitle({ thread, title: 'Trip to Rome' });
  t.match(await renamed, { title: 'Trip to Rome', by: bob.user });
  t.equal((await a.threadGet(thread)).title, 'Trip to Rome');

  await t.rejects(b.groupRemove({ thread, users: [cat.user] }), { code: 'forbidden' }, 'only admins remove');
  const removed = b.next('thread', (e) => e.event === 'removed');
  await a.groupRemove({ thread, users: [cat.user] });
  t.match(await removed, { users: [cat.user] });
  t.same((await a.groupMembers(thread)).members.sort(), [ann.user, bob.user, dan.user].sort());

  const left = a.next('thread', (e) => e.event === 'left');
  await b.groupLeave(thread);
  t.match(await left, { by: bob.user });
  await t.rejects(b.send({ thread, body: 'still here?' }), { code: 'forbidden' });
  t.equal((await b.threadGet(thread)).member, false, 'the row stays, marked member: false');
  t.ok(events.every((e) => typeof e.u === 'number'), 'thread events are durable');
});

t.test('group commands on a 1:1 thread are bad_frame; unknown members not_found', async (t) => {
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const a = await connect(t, s, await newDevice(s, ann));
  const { thread } = await a.send({ to: bob.user, body: 'hi' });
  await t.rejects(a.groupTitle({ thread, title: 'x' }), { code: 'bad_frame' });
  await t.rejects(a.groupCreate({ title: 'x', members: ['u-nobody'] }), { code: 'not_found' });
});
