// Channels (docs/protocol.md §8.3): create/get/admin, who may post in each mode, join with
// `since` while posts keep coming (no gap, no duplicate), leave, history paging, durability
// across kill -9 with the same epoch, and a channel followed by 1,000 sockets.
import t from 'tap';
import type { ParleyClient } from '../client/index.js';
import { startChildServer } from './helpers/child-server.js';
import { rawSocket, type RawSocket } from './helpers/raw-socket.js';
import { connect, newDevice, newUser, startTestServer, tempDataDir, until, type TestServer } from './helpers/server.js';
import { sharedServer } from './helpers/shared-server.js';

/** Every cmsg a client gets, in arrival order. */
function posts(c: ParleyClient): any[] {
  const got: any[] = [];
  c.on('cmsg' as never, (e: any) => got.push(e));
  return got;
}

async function person(t: any, s: { base: string; wsUrl: string }, name: string) {
  const u = await newUser(s, name);
  return { ...u, c: await connect(t, s, await newDevice(s, u)) };
}

/** The default-config server of the subtests that need nothing else: each uses its own users and channel names. */
const shared = sharedServer(t);

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

t.test('create, get by id and by name, conflict, admins', async (t) => {
  const s = await shared();
  const [ann, bob] = [await person(t, s, 'ann'), await person(t, s, 'bob')];
  const { channel } = await ann.c.request('channel.create', { name: 'news.daily', title: 'Daily news' });
  t.match(channel, /^c:/);
  t.same((await ann.c.request('channel.create', { name: 'news.daily', title: 'Daily news' })).channel, channel, 'the owner creating again gets the same channel');
  await t.rejects(bob.c.request('channel.create', { name: 'news.daily', title: 'Mine' }), { code: 'conflict' }, 'a taken name');
  await t.rejects(ann.c.request('channel.create', { name: 'No Caps', title: 'x' }), { code: 'bad_frame' }, 'names are 3-32 of [a-z0-9_.]');

  const byName = await bob.c.request('channel.get', { name: 'news.daily' });
  t.match(byName, { channel, name: 'news.daily', title: 'Daily news', mode: 'broadcast', owner: ann.user, admins: [], subscribers: 0, seq: 0 });
  t.same(await bob.c.request('channel.get', { channel }), byName, 'by id the same');
  await t.rejects(bob.c.request('channel.get', { name: 'nothing.here' }), { code: 'not_found' });
  await t.rejects(bob.c.request('channel.get', {}), { code: 'bad_frame' });

  await t.rejects(bob.c.request('channel.admin', { channel, user: bob.user, admin: true }), { code: 'forbidden' }, 'only the owner names admins');
  await t.rejects(ann.c.request('channel.admin', { channel, user: 'u-nobody', admin: true }), { code: 'not_found' });
  await ann.c.request('channel.admin', { channel, user: bob.user, admin: true });
  t.same((await bob.c.request('channel.get', { channel })).admins, [bob.user]);
  t.match(await bob.c.request('channel.post', { channel, cid: 'b1', body: 'from an admin' }), { seq: 1 }, 'an admin posts');
  await ann.c.request('channel.admin', { channel, user: bob.user, admin: false });
  await t.rejects(bob.c.request('channel.post', { channel, cid: 'b2', body: 'no longer' }), { code: 'forbidden' }, 'a former admin does not');
});

t.test('who may post: broadcast (owner and admins) and open (joined users); limits', async (t) => {
  const s = await shared();
  const [ann, bob] = [await person(t, s, 'ann'), await person(t, s, 'bob')];
  const news = (await ann.c.request('channel.create', { name: 'bcast', title: 'Broadcast' })).channel;
  const chat = (await ann.c.request('channel.create', { name: 'live.chat', title: 'Comments', mode: 'open' })).channel;
  await bob.c.request('channel.join', { channel: news });
  await t.rejects(bob.c.request('channel.post', { channel: news, cid: 'x', body: 'hi' }), { code: 'forbidden' }, 'joined, but broadcast');
  await t.rejects(bob.c.request('channel.post', { channel: chat, cid: 'x', body: 'hi' }), { code: 'forbidden' }, 'open, but not joined');
  await bob.c.request('channel.join', { channel: chat });
  const first = await bob.c.request('channel.post', { channel: chat, cid: 'x', body: 'hi' });
  t.match(first, { seq: 1 });
  t.same(await bob.c.request('channel.post', { channel: chat, cid: 'x', body: 'hi' }), first, 'a resend with the same cid returns the first result');
  t.match(await ann.c.request('channel.post', { channel: chat, cid: 'y', body: 'owner' }), { seq: 2 }, 'the owner posts without joining');
  await t.rejects(bob.c.request('channel.post', { channel: chat, cid: 'z', body: 'x'.repeat(16 * 1024 + 1) }), { code: 'too_large' });
  await t.rejects(bob.c.request('channel.post', { channel: 'c:nope', cid: 'z', body: 'x' }), { code: 'not_found' });
  await t.rejects(bob.c.request('channel.join', { channel: 'c:nope' }), { code: 'not_found' });
});

t.test('posts per user per second are limited with rate_limited and retry', async (t) => {
  const s = await startTestServer(t, { channelPostsPerSecond: 3 });
  const ann = await person(t, s, 'ann');
  const channel = (await ann.c.request('channel.create', { name: 'limited', title: 'L' })).channel;
  const answers = await Promise.allSettled(range(1, 4).map((i) => ann.c.request('channel.post', { channel, cid: `p${i}`, body: 'x' })));
  t.same(answers.map((a) => a.status), ['fulfilled', 'fulfilled', 'fulfilled', 'rejected']);
  t.match((answers[3] as PromiseRejectedResult).reason, { code: 'rate_limited' });
  t.ok(((answers[3] as PromiseRejectedResult).reason as { retry?: number }).retry! > 0, 'with retry');
});

t.test('join with since while another socket posts in a tight loop: exactly the posts after since, no gap, no duplicate', async (t) => {
  const s = await startTestServer(t, { channelPostsPerSecond: 100_000 });
  const [ann, bob] = [await person(t, s, 'ann'), await person(t, s, 'bob')];
  const channel = (await ann.c.request('channel.create', { name: 'tight', title: 'Tight loop' })).channel;
  for (let i = 1; i <= 20; i++) await ann.c.request('channel.post', { channel, cid: `pre${i}`, body: `pre ${i}` });
  const TOTAL = 400;
  let n = 20;
  // Posts keep arriving, 8 in flight at a time, before, during and after bob's join.
  const poster = (async () => {
    while (n < TOTAL) {
      const batch = range(n + 1, Math.min(TOTAL, n + 8));
      n += batch.length;
      await Promise.all(batch.map((i) => ann.c.request('channel.post', { channel, cid: `p${i}`, body: `post ${i}` })));
    }
  })();
  const got = posts(bob.c);
  while (n < 60) await new Promise((r) => setImmediate(r));
  const joined = await bob.c.request('channel.join', { channel, since: 10 });
  t.ok(joined.seq >= 60, `joined at seq ${joined.seq} while posting`);
  t.equal(typeof joined.epoch, 'string');
  t.same(got.map((p) => p.seq), range(11, joined.seq), 'the replay before the answer: 11..seq');
  await poster;
  await until(bob.c, () => got.length >= TOTAL - 10, 30_000);
  t.same(got.map((p) => p.seq), range(11, TOTAL), 'then live: every post once, in order');
  t.match(got[0], { channel, seq: 11, from: ann.user, body: 'pre 11' });
  t.equal((await bob.c.request('channel.get', { channel })).subscribers, 1);
});

t.test('leave stops live posts; history pages like history', async (t) => {
  const s = await shared();
  const [ann, bob, cat] = [await person(t, s, 'ann'), await person(t, s, 'bob'), await person(t, s, 'cat')];
  const channel = (await ann.c.request('channel.create', { name: 'pages', title: 'Pages' })).channel;
  const [bobGot, catGot] = [posts(bob.c), posts(cat.c)];
  await bob.c.request('channel.join', { channel });
  await cat.c.request('channel.join', { channel });
  t.equal((await ann.c.request('channel.get', { channel })).subscribers, 2);
  await ann.c.request('channel.post', { channel, cid: 'one', body: 'one' });
  await until(bob.c, () => bobGot.length === 1);
  await bob.c.request('channel.leave', { channel });
  await ann.c.request('channel.post', { channel, cid: 'two', body: 'two' });
  await until(cat.c, () => catGot.length === 2);
  // bob's pong is written after the publish cat got: had bob still been subscribed, the post would come first.
  await bob.c.ping();
  t.same(bobGot.map((p) => p.seq), [1], 'nothing after leaving');
  t.equal((await ann.c.request('channel.get', { channel })).subscribers, 1);

  for (let i = 3; i <= 12; i++) await ann.c.request('channel.post', { channel, cid: `m${i}`, body: `m${i}` });
  const newest = await bob.c.request('channel.history', { channel, limit: 5 });
  t.same(newest.messages.map((m: any) => m.seq), [12, 11, 10, 9, 8]);
  t.equal(newest.more, true);
  t.match(newest.messages[0], { channel, seq: 12, from: ann.user, body: 'm12' });
  t.notOk('t' in newest.messages[0], 'entries are cmsg fields without t');
  const older = await bob.c.request('channel.history', { channel, before: 8, limit: 10 });
  t.same(older.messages.map((m: any) => m.seq), [7, 6, 5, 4, 3, 2, 1]);
  t.equal(older.more, false);
  const after = await bob.c.request('channel.history', { channel, after: 9 });
  t.same(after.messages.map((m: any) => m.seq), [10, 11, 12]);
  t.equal(after.more, false);
});

t.test('epochs: another epoch or a since above the head resets; joining twice is harmless', async (t) => {
  const s = await shared();
  const [ann, bob] = [await person(t, s, 'ann'), await person(t, s, 'bob')];
  const channel = (await ann.c.request('channel.create', { name: 'epochs', title: 'E' })).channel;
  for (let i = 1; i <= 3; i++) await ann.c.request('channel.post', { channel, cid: `p${i}`, body: 'x' });
  const got = posts(bob.c);
  const other = await bob.c.request('channel.join', { channel, since: 1, epoch: 'another-lineage' });
  t.match(other, { seq: 3, reset: true });
  t.equal(got.length, 0, 'nothing replayed for a cursor of another lineage');
  t.match(await bob.c.request('channel.join', { channel, since: 0 }), { seq: 3 }, 'already joined: the current seq');
  t.equal(got.length, 0, 'and no replay');
  await bob.c.request('channel.leave', { channel });
  t.match(await bob.c.request('channel.join', { channel, since: 99 }), { seq: 3, reset: true }, 'a since above the head');
});

t.test('60 acknowledged posts (all in flight at once) survive kill -9; join answers the same epoch after the restart', async (t) => {
  const dataDir = tempDataDir(t);
  const first = await startChildServer(dataDir, { CHANNEL_POSTS_PER_SECOND: '1000' });
  t.teardown(() => first.proc.kill('SIGKILL'));
  const ann = await person(t, first, 'ann');
  const channel = (await ann.c.request('channel.create', { name: 'durable', title: 'D' })).channel;
  const { epoch } = await ann.c.request('channel.join', { channel });
  const acks = await Promise.all(range(1, 60).map((i) => ann.c.request('channel.post', { channel, cid: `d${i}`, body: `d${i}` })));
  first.proc.kill('SIGKILL');
  await first.exited;
  await ann.c.close();

  const second = await startChildServer(dataDir);
  t.teardown(() => second.proc.kill('SIGKILL'));
  const again = await connect(t, second, await newDevice(second, ann));
  const got = posts(again);
  const joined = await again.request('channel.join', { channel, since: 0, epoch });
  t.equal(joined.epoch, epoch, 'the same epoch');
  t.notOk(joined.reset);
  t.equal(joined.seq, 60);
  t.same(got.map((p) => p.seq), range(1, 60), 'every acknowledged post replayed');
  t.same(new Set(acks.map((a) => a.seq)).size, 60);
  const retry = await again.request('channel.post', { channel, cid: 'd7', body: 'd7' });
  t.equal(retry.seq, acks[6].seq, 'cid dedupe survives the restart');
});

t.test('a subscriber that stops reading is dropped from live posts and caught up from the log on drain', async (t) => {
  const s = await startTestServer(t, { slowConsumerBytes: 16 * 1024, durability: 'relaxed', channelPostsPerSecond: 100_000 });
  const ann = await person(t, s, 'ann');
  const bob = await newUser(s, 'bob');
  const channel = (await ann.c.request('channel.create', { name: 'slow', title: 'Slow' })).channel;
  const fast = await connect(t, s, await newDevice(s, bob, 'fast'));
  const fastGot = posts(fast);
  await fast.request('channel.join', { channel });
  const slow = await rawSocket(t, s.wsUrl);
  slow.send({ t: 'hello', token: (await newDevice(s, bob, 'slow')).token });
  await slow.next((f) => f.t === 'synced');
  slow.send({ t: 'channel.join', r: 1, channel });
  await slow.next((f) => f.t === 'ok' && f.r === 1);
  slow.ws.pause();
  const body = 'y'.repeat(8 * 1024);
  const pauses = async () => Number(/^parley_channel_lag_pauses_total (\d+)/m.exec(await (await fetch(`${s.base}/metrics`)).text())?.[1]);
  let sent = 0;
  // Post until the server reports the lag pause (no guess of how much the kernel buffers); bounded.
  for (let i = 0; (await pauses()) === 0; i++) {
    if (i >= 2000) return t.fail(`no lag pause after ${sent} posts`);
    await Promise.all(range(1, 10).map(() => ann.c.request('channel.post', { channel, cid: `s${++sent}`, body })));
    await until(fast, () => fastGot.length === sent, 30_000);
  }
  for (let i = 0; i < 10; i++) await ann.c.request('channel.post', { channel, cid: `s${++sent}`, body });
  await until(fast, () => fastGot.length === sent, 30_000);
  t.same(fastGot.map((p) => p.seq), range(1, sent), 'the reading socket got every post while the other stalled');
  slow.ws.resume();
  const seqs = () => slow.frames.filter((f) => f.t === 'cmsg').map((f) => f.seq);
  while (seqs().length < sent) await slow.next((f) => f.t === 'cmsg', 30_000);
  const last = slow.next((f) => f.t === 'cmsg' && f.body === 'after the catch-up', 30_000);
  await ann.c.request('channel.post', { channel, cid: 'last', body: 'after the catch-up' });
  await last;
  t.same(seqs(), range(1, sent + 1), 'the stalled socket caught up: every post once, in order, then live again');
});

t.test('a channel followed by 1,000 sockets: every socket gets every post once', async (t) => {
  const s: TestServer = await startTestServer(t, { durability: 'relaxed', channelPostsPerSecond: 100_000 });
  const ann = await person(t, s, 'ann');
  const bob = await newUser(s, 'bob');
  const token = (await newDevice(s, bob)).token;
  const channel = (await ann.c.request('channel.create', { name: 'crowd', title: 'Crowd' })).channel;
  const sockets: RawSocket[] = [];
  for (let i = 0; i < 1000; i += 100) {
    sockets.push(...(await Promise.all(range(1, 100).map(async () => {
      const ws = await rawSocket(t, s.wsUrl);
      ws.send({ t: 'hello', token });
      await ws.next((f) => f.t === 'synced');
      ws.send({ t: 'channel.join', r: 1, channel });
      await ws.next((f) => f.t === 'ok' && f.r === 1);
      return ws;
    }))));
  }
  t.equal((await ann.c.request('channel.get', { channel })).subscribers, 1000);
  const fifth = Promise.all(sockets.map((ws) => ws.next((f) => f.t === 'cmsg' && f.seq === 5, 30_000)));
  for (let i = 1; i <= 5; i++) await ann.c.request('channel.post', { channel, cid: `c${i}`, body: `crowd ${i}` });
  await fifth;
  const wrong = sockets.filter((ws) => ws.frames.filter((f) => f.t === 'cmsg').map((f) => f.seq).join() !== '1,2,3,4,5');
  t.equal(wrong.length, 0, 'all 1,000 got posts 1..5 exactly once, in order');
  const metrics = await (await fetch(`${s.base}/metrics`)).text();
  t.match(metrics, /^parley_channel_deliveries_total 5000$/m, '/metrics counts the 5,000 deliveries');
  for (const ws of sockets) ws.ws.close();
  await new Promise((r) => setTimeout(r, 0));
});
