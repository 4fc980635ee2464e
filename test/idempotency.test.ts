// Retries are safe: `group.create` with a cid and `send` with a cid answer their first result
// instead of acting twice, within the scope each is deduplicated in (creator; sender and thread).
import t from 'tap';
import { client, collect, connect, newDevice, newUser, until } from './helpers/server.js';
import { sharedServer } from './helpers/shared-server.js';

/** One server for every subtest: cids are scoped per creator and sender, and each subtest has its own users. */
const shared = sharedServer(t);

const createdOf = (events: any[], thread: string) => events.filter((e) => e.t === 'thread' && e.event === 'created' && e.thread === thread);

t.test('group.create with a cid is idempotent for its creator: the same thread, one created event per member', async (t) => {
  const s = await shared();
  const [ann, bob, cat] = [await newUser(s, 'ann'), await newUser(s, 'bob'), await newUser(s, 'cat')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  const bobPhone = await connect(t, s, await newDevice(s, bob));
  const catDevice = await newDevice(s, cat); // offline: gets it by replay
  const bobEvents = collect(bobPhone, 'event');

  const params = { title: 'trip', members: [bob.user, cat.user], cid: 'create-trip-1' };
  const first = await annPhone.request('group.create', params);
  // A retry after a lost answer, then two at once (a client that retried while the first was in flight).
  const retry = await annPhone.request('group.create', params);
  const both = await Promise.all([annPhone.request('group.create', params), annPhone.request('group.create', params)]);
  t.type(first.thread, 'string');
  t.same([retry.thread, ...both.map((b) => b.thread)], [first.thread, first.thread, first.thread], 'every retry answers the same thread');

  // Ordering barrier: a message sent after the retries reaches bob after any event they made.
  await annPhone.send({ thread: first.thread, body: 'after the retries' });
  await until(bobPhone, () => bobEvents.some((e) => e.t === 'msg' && e.body === 'after the retries'));
  t.equal(createdOf(bobEvents, first.thread).length, 1, 'bob got exactly one created event');
  // Cat was offline: it replays its log, with the same barrier (its delivery may still be on the way).
  const catPhone = client(t, s, catDevice);
  const catEvents = collect(catPhone, 'event');
  await catPhone.connect();
  await until(catPhone, () => catEvents.some((e) => e.t === 'msg' && e.body === 'after the retries'));
  t.equal(createdOf(catEvents, first.thread).length, 1, 'cat replays exactly one created event');

  const groups = (await annPhone.request('inbox', {})).threads.filter((r: any) => r.kind === 'group');
  t.same(groups.map((r: any) => r.thread), [first.thread], "one group in the creator's inbox");
  t.match(await annPhone.request('thread.get', { thread: first.thread }), { title: 'trip', admins: [ann.user] });
});

t.test('group.create with a cid: a retry with other fields still answers the first group, unchanged', async (t) => {
  const s = await shared();
  const [ann, bob, cat] = [await newUser(s, 'ann'), await newUser(s, 'bob'), await newUser(s, 'cat')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  const first = await annPhone.request('group.create', { title: 'one', members: [bob.user], cid: 'same-cid' });
  const other = await annPhone.request('group.create', { title: 'two', members: [cat.user], cid: 'same-cid' });
  t.equal(other.thread, first.thread, 'the cid names the group');
  const row = await annPhone.request('thread.get', { thread: first.thread });
  t.equal(row.title, 'one', 'the first title stays');
  t.same([...row.members].sort(), [ann.user, bob.user].sort(), 'the first members stay');
});

t.test('group.create without a cid makes a new group each time', async (t) => {
  const s = await shared();
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  const bobPhone = await connect(t, s, await newDevice(s, bob));
  const bobEvents = collect(bobPhone, 'thread');
  const a = await annPhone.request('group.create', { title: 'same', members: [bob.user] });
  const b = await annPhone.request('group.create', { title: 'same', members: [bob.user] });
  t.not(a.thread, b.thread, 'two groups');
  await until(bobPhone, () => createdOf(bobEvents, a.thread).length + createdOf(bobEvents, b.thread).length === 2);
  t.pass('bob was told of both');
});

t.test('group.create: the same cid from another user is another group', async (t) => {
  const s = await shared();
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  const bobPhone = await connect(t, s, await newDevice(s, bob));
  const byAnn = await annPhone.request('group.create', { title: "ann's", members: [bob.user], cid: 'shared-cid' });
  const byBob = await bobPhone.request('group.create', { title: "bob's", members: [ann.user], cid: 'shared-cid' });
  t.not(byBob.thread, byAnn.thread, 'a cid is scoped to its creator');
  t.match(await bobPhone.request('thread.get', { thread: byBob.thread }), { title: "bob's", admins: [bob.user] });
  t.match(await annPhone.request('thread.get', { thread: byAnn.thread }), { title: "ann's", admins: [ann.user] });
});

t.test('send: one cid is one message per sender per thread; another thread or another sender is another message', async (t) => {
  const s = await shared();
  const [ann, bob, cat] = [await newUser(s, 'ann'), await newUser(s, 'bob'), await newUser(s, 'cat')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  const bobPhone = await connect(t, s, await newDevice(s, bob));
  const bobMsgs = collect(bobPhone, 'msg');

  const first = await annPhone.send({ to: bob.user, body: 'hello bob', cid: 'c1' });
  const again = await annPhone.send({ thread: first.thread, body: 'hello bob', cid: 'c1' });
  const changed = await annPhone.send({ thread: first.thread, body: 'a different body', cid: 'c1' });
  t.match(again, { thread: first.thread, seq: first.seq, id: first.id, ts: first.ts }, 'a resend answers the first result');
  t.match(changed, { seq: first.seq, id: first.id }, 'even with another body: the first message stands');

  // Document-as-tested: dedupe is per sender *per thread*, so the same cid in another thread is a new message.
  const elsewhere = await annPhone.send({ to: cat.user, body: 'hello cat', cid: 'c1' });
  t.not(elsewhere.thread, first.thread);
  t.not(elsewhere.id, first.id, 'another thread: another message');
  t.equal(elsewhere.seq, 1);
  // Using it there does not disturb the first thread's record.
  t.match(await annPhone.send({ thread: first.thread, body: 'hello bob', cid: 'c1' }), { seq: first.seq, id: first.id });

  // Another sender's cid is their own.
  const bobs = await bobPhone.send({ thread: first.thread, body: 'hi ann', cid: 'c1' });
  t.not(bobs.id, first.id, 'another sender: another message');
  t.equal(bobs.seq, first.seq + 1);

  const history = await annPhone.history({ thread: first.thread, after: 0 });
  t.same(history.messages.map((m: any) => [m.from, m.body]), [[ann.user, 'hello bob'], [bob.user, 'hi ann']], 'one message per sender in the thread');
  t.same((await annPhone.history({ thread: elsewhere.thread, after: 0 })).messages.map((m: any) => m.body), ['hello cat']);

  // Barrier: bob's own message reaches bob after any copy the resends could have made.
  await until(bobPhone, () => bobMsgs.some((m) => m.body === 'hi ann'));
  t.equal(bobMsgs.filter((m) => m.from === ann.user).length, 1, 'bob received one message from ann');
});
