// Groups end to end: five members with two devices each through create, message, add, remove,
// leave and retitle. Every device sees the right thread events and messages, in its user log.
import t from 'tap';
import type { ParleyClient } from '../client/index.js';
import { openStorage } from '../storage/env.js';
import { collect, connect, newDevice, newUser, startTestServer, until, type TestUser } from './helpers/server.js';

type Member = { user: TestUser; devices: ParleyClient[]; events: any[][] };

async function member(t: Parameters<typeof connect>[0], s: Awaited<ReturnType<typeof startTestServer>>, name: string): Promise<Member> {
  const user = await newUser(s, name);
  const devices = [await connect(t, s, await newDevice(s, user, 'phone')), await connect(t, s, await newDevice(s, user, 'laptop'))];
  return { user, devices, events: devices.map((d) => collect(d, 'event')) };
}

/** Waits until every device of `who` has an event matching `pred`. */
const allSee = (who: Member[], pred: (e: any) => boolean) =>
  Promise.all(who.flatMap((m) => m.devices.map((d, i) => until(d, () => m.events[i].some(pred)))));

t.test('a group of five with two devices each: every change reaches the right devices', async (t) => {
  const s = await startTestServer(t);
  const [ann, bob, cat, dan, eve] = await Promise.all(['ann', 'bob', 'cat', 'dan', 'eve'].map((n) => member(t, s, n)));
  const first4 = [ann, bob, cat, dan];

  // create: ann is admin; eve is not invited yet.
  const { thread } = await ann.devices[0].request('group.create', { title: 'Trip', members: [bob, cat, dan].map((m) => m.user.user) });
  t.match(thread, /^g:/);
  await allSee(first4, (e) => e.t === 'thread' && e.event === 'created' && e.thread === thread);
  const created = ann.events[1].find((e) => e.event === 'created');
  t.same([...created.users].sort(), first4.map((m) => m.user.user).sort(), 'created lists every member');
  t.match(created, { by: ann.user.user, title: 'Trip' });
  t.equal(eve.events[0].filter((e) => e.thread === thread).length, 0, 'eve sees nothing');

  // message: every device of every member, the sender's other device too.
  const sent = await bob.devices[0].send({ thread, body: 'hello group' });
  t.equal(sent.seq, 1);
  await allSee(first4, (e) => e.t === 'msg' && e.thread === thread && e.body === 'hello group');

  // add: eve joins; she sees the event and new messages, not the history before her join.
  await ann.devices[0].request('group.add', { thread, users: [eve.user.user] });
  await allSee([...first4, eve], (e) => e.t === 'thread' && e.event === 'added');
  t.match(eve.events[0].find((e) => e.event === 'added'), { by: ann.user.user, users: [eve.user.user] });
  await cat.devices[1].send({ thread, body: 'welcome eve' });
  await allSee([...first4, eve], (e) => e.t === 'msg' && e.body === 'welcome eve');
  t.equal(eve.events[0].some((e) => e.body === 'hello group'), false, 'eve did not get the message from before her join');
  const eveHistory = await eve.devices[0].history({ thread, after: 0 });
  t.same(eveHistory.messages.map((m: any) => m.body), ['welcome eve'], "eve's history starts at her join");

  // only admins add or remove.
  await t.rejects(bob.devices[0].request('group.remove', { thread, users: [cat.user.user] }), { code: 'forbidden' });

  // remove: dan is out; he learns it, keeps what he had, and can no longer post or read.
  await ann.devices[0].request('group.remove', { thread, users: [dan.user.user] });
  await allSee([ann, bob, cat, dan, eve], (e) => e.t === 'thread' && e.event === 'removed');
  await t.rejects(dan.devices[0].send({ thread, body: 'still here?' }), { code: 'forbidden' }, 'a removed member cannot post');
  await t.rejects(dan.devices[1].history({ thread }), { code: 'forbidden' }, 'nor read new history');
  t.ok(dan.events[0].some((e) => e.body === 'welcome eve'), 'but keeps what he received');
  await eve.devices[0].send({ thread, body: 'after dan left' });
  await allSee([ann, bob, cat, eve], (e) => e.body === 'after dan left');

  // leave: bob goes; everyone including bob sees it.
  await bob.devices[1].request('group.leave', { thread });
  await allSee([ann, bob, cat, eve], (e) => e.t === 'thread' && e.event === 'left' && e.by === bob.user.user);

  // retitle: any member.
  await cat.devices[0].request('group.title', { thread, title: 'Trip 2027' });
  await allSee([ann, cat, eve], (e) => e.t === 'thread' && e.event === 'title' && e.title === 'Trip 2027');

  // Dan and bob got no message after they left: their logs end with their own exit.
  await ann.devices[0].send({ thread, body: 'final' });
  await allSee([ann, cat, eve], (e) => e.body === 'final');
  for (const gone of [dan, bob]) t.equal(gone.events[0].some((e) => e.body === 'final'), false, `${gone.user.username} gets nothing after leaving`);

  // Every device of a user saw the same log, in the same order: u runs 1, 2, 3, ... on each, and
  // (a receipt may still be on its way to one of them) the shorter run is a prefix of the longer.
  for (const m of [ann, bob, cat, dan, eve]) {
    const us = (i: number) => m.events[i].filter((e) => e.u !== undefined).map((e) => e.u);
    const [a, b] = [us(0), us(1)];
    t.same(a, a.map((_, i) => i + 1), `${m.user.username}: the first device saw u 1..${a.length} without gap or repeat`);
    t.same(b, b.map((_, i) => i + 1), `${m.user.username}: the second device saw u 1..${b.length} without gap or repeat`);
    const [short, long] = a.length <= b.length ? [m.events[0], m.events[1]] : [m.events[1], m.events[0]];
    const durable = (es: any[]) => es.filter((e) => e.u !== undefined).map((e) => [e.u, e.t, e.thread, e.seq ?? e.event]);
    t.same(durable(short), durable(long).slice(0, durable(short).length), `${m.user.username}: both devices saw the same events at the same u`);
  }

  // Every fan-out was confirmed by every member's log: no pending mark is left in storage.
  // A graceful stop is the barrier: it returns once every shard drained its inputs (the members'
  // confirmations included) and released its outputs, so what is on disk then is final.
  await s.server.stop();
  const storage = openStorage(s.dataDir, 'fsync');
  t.teardown(() => storage.close());
  t.same([...storage.db.fanout.getKeys()], [], 'no unconfirmed fan-out remains');
});

t.test('group limits and bad requests', async (t) => {
  const s = await startTestServer(t);
  const ann = await newUser(s, 'ann');
  const annPhone = await connect(t, s, await newDevice(s, ann));
  await t.rejects(annPhone.request('group.create', { title: 'x', members: ['unobody000000'] }), { code: 'not_found' });
  await t.rejects(annPhone.request('group.create', { title: '', members: [] }), { code: 'bad_frame' }, 'a title is required');
  const tooMany = Array.from({ length: 1025 }, (_, i) => `u${i}`);
  await t.rejects(annPhone.request('group.create', { title: 'big', members: tooMany }), { code: 'bad_frame' }, 'at most 1024 members');
  const { thread } = await annPhone.request('group.create', { title: 'solo', members: [] });
  await t.rejects(annPhone.request('group.add', { thread, users: ['unobody000000'] }), { code: 'not_found' });
  const bob = await newUser(s, 'bob');
  const { thread: direct } = await annPhone.send({ to: bob.user, body: 'hi' });
  await t.rejects(annPhone.request('group.title', { thread: direct, title: 'no' }), { code: 'bad_frame' }, 'a 1:1 thread is not a group');
});
