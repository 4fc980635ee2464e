// Retention (docs/protocol.md §3 "Log epochs" and "Retention"): with RETENTION=2s the sweeper
// deletes expired messages, log entries, posts and their cid dedupe; history, replay
// (welcome.first), channel joins and inbox rows agree with what is left; seq, u and channel seq
// keep counting after everything was deleted, also across a restart. Waits on the sweeper's
// metrics, never on fixed sleeps.
import t from 'tap';
import type { ParleyClient } from '../client/index.js';
import { rawSocket } from './helpers/raw-socket.js';
import { connect, newDevice, newUser, startTestServer, tempDataDir, type TestDevice, type TestServer } from './helpers/server.js';
import { metricSeries } from './helpers/metrics.js';

const RETENTION = 2000;
const SWEEP = 200;
const retention = { retentionMs: RETENTION, retentionSweepMs: SWEEP };

/** Values of one metric from /metrics, by its label string ('' without labels). */
/** Resolves once every shard completed a sweep pass that started after `time` (ms). */
async function passStartedAfter(s: TestServer, time: number, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const started = [...(await metricSeries(s.base, 'parley_retention_last_sweep_timestamp_seconds')).values()];
    if (started.length > 0 && Math.min(...started) * 1000 > time) return;
    if (Date.now() > end) throw new Error(`no sweep pass started after ${time}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Everything written up to `ts` has been swept: thread and channel logs go by their entries' ts
 * (a pass started after ts + RETENTION); user logs by the sweeper's marks (a pass after ts marks
 * them, one started RETENTION after that mark deletes them).
 */
async function sweptUpTo(s: TestServer, ts: number): Promise<void> {
  await passStartedAfter(s, ts);
  await passStartedAfter(s, Date.now()); // the marking pass has certainly ended
  await passStartedAfter(s, Date.now() + RETENTION);
}

async function swept(s: TestServer, log: string): Promise<number> {
  return (await metricSeries(s.base, 'parley_retention_swept_total')).get(`{log="${log}"}`) ?? 0;
}

/** A raw session: its welcome and the durable events replayed before `synced`. */
async function session(t: any, s: TestServer, d: TestDevice, hello: object = {}) {
  const sock = await rawSocket(t, s.wsUrl);
  const synced = sock.next((f) => f.t === 'synced');
  sock.send({ t: 'hello', token: d.token, ...hello });
  const end = await synced;
  const welcome = sock.frames.find((f) => f.t === 'welcome');
  const replayed = sock.frames.slice(sock.frames.indexOf(welcome) + 1, sock.frames.indexOf(end));
  sock.ws.close();
  return { welcome, replayed, synced: end };
}

async function person(t: any, s: TestServer, name: string) {
  const u = await newUser(s, name);
  const device = await newDevice(s, u);
  return { ...u, device, c: await connect(t, s, device) };
}

t.test('messages: history, replay from welcome.first, inbox, dedupe and seq after a sweep', async (t) => {
  const s = await startTestServer(t, retention);
  const ann = await person(t, s, 'ann');
  const bob = await person(t, s, 'bob');
  const bobGot = bob.c.next('msg', (m: any) => m.body === 'm3');
  const sent = [];
  for (let i = 1; i <= 3; i++) sent.push(await ann.c.send({ to: bob.user, body: `m${i}`, cid: `c${i}` }));
  await bobGot;
  const { thread } = sent[0];
  const before = await session(t, s, bob.device, { since: 0 });
  t.equal(before.welcome.first, 1, 'nothing trimmed yet');
  const bobHead = before.welcome.u;
  t.ok(bobHead >= 3);

  await sweptUpTo(s, Number(sent[2].ts));

  t.same((await ann.c.history({ thread })).messages, [], 'history: every message was swept');
  const row = await bob.c.request('thread.get', { thread });
  t.equal(row.last, undefined, 'an inbox row whose last message was swept shows no last');
  t.equal(row.thread, thread, 'but the row stays');
  const empty = await session(t, s, bob.device, { since: 0 });
  t.equal(empty.welcome.u, bobHead, 'the head stays where it was');
  t.equal(empty.welcome.first, bobHead + 1, 'first: the next u, nothing is left');
  t.same(empty.replayed, [], 'nothing to replay');
  t.equal(empty.synced.u, bobHead, 'synced at the head');

  const m4 = await ann.c.send({ to: bob.user, body: 'm4', cid: 'c4' });
  t.equal(m4.seq, 4, 'seq continues after a full sweep');
  const page = await ann.c.history({ thread });
  t.same(page.messages.map((m: any) => m.body), ['m4'], 'history returns what is newer');
  t.same((await ann.c.history({ thread, after: 0 })).messages.map((m: any) => m.seq), [4], 'a page from below the retained range is shorter');

  const after = await session(t, s, bob.device, { since: 1 });
  t.ok(after.welcome.first > 2, `welcome.first (${after.welcome.first}) above since + 1`);
  t.equal(after.replayed[0]?.u, after.welcome.first, 'the replay starts at first');
  t.same(after.replayed.filter((f: any) => f.t === 'msg').map((f: any) => f.body), ['m4']);
  t.equal((await bob.c.request('thread.get', { thread })).last?.body, 'm4', 'the row shows the newest message');

  // The SDK with an old cursor accepts the replay starting above it (no resync loop, no error).
  const errors: unknown[] = [];
  const sdk = await connect(t, s, bob.device, { since: 1, autoAck: false });
  sdk.on('error', (e) => errors.push(e));
  t.equal(sdk.lastU, after.synced.u, 'the SDK cursor moved up to the end of the replay');
  t.same(errors, []);

  const retried = await ann.c.send({ to: bob.user, body: 'm1 again', cid: 'c1' });
  t.equal(retried.seq, 5, 'a cid whose message was swept names a new message');
  t.equal((await ann.c.send({ to: bob.user, body: 'm4 again', cid: 'c4' })).seq, 4, 'a retained one still dedupes');
  t.ok((await swept(s, 'thread')) >= 3, 'parley_retention_swept_total{log="thread"}');
  t.ok((await swept(s, 'dedupe')) >= 3, 'dedupe records went with their messages');
  t.ok((await swept(s, 'user')) >= 6, 'both user logs were trimmed');
});

t.test('channels: history, join and dedupe after a sweep', async (t) => {
  const s = await startTestServer(t, retention);
  const ann = await person(t, s, 'ann');
  const bob = await person(t, s, 'bob');
  const { channel } = await ann.c.request('channel.create', { name: `ret${process.pid % 1000}`, title: 'Retention' });
  const p: any[] = [];
  for (let i = 1; i <= 3; i++) p.push(await ann.c.request('channel.post', { channel, cid: `p${i}`, body: `p${i}` }));
  // Keep the channel actor active (its window of recent posts holds p1..p3): a follower.
  await ann.c.channelJoin({ channel });
  await sweptUpTo(s, Number(p[2].ts));
  t.same((await bob.c.request('channel.history', { channel })).messages, [], 'every post was swept');

  const p4 = await ann.c.request('channel.post', { channel, cid: 'p4', body: 'p4' });
  t.equal(p4.seq, 4, 'channel seq continues');
  t.same((await bob.c.request('channel.history', { channel })).messages.map((m: any) => m.seq), [4]);
  t.same((await bob.c.request('channel.history', { channel, after: 0 })).messages.map((m: any) => m.seq), [4]);

  const got: any[] = [];
  bob.c.on('cmsg' as never, (e: any) => got.push(e));
  const joined = await bob.c.channelJoin({ channel, since: 1 });
  t.equal(joined.seq, 4);
  t.same(got.map((e) => e.seq), [4], 'a join from below the floor replays from the oldest post kept');

  const sock = await rawSocket(t, s.wsUrl);
  const welcomed = sock.next((f) => f.t === 'synced');
  sock.send({ t: 'hello', token: bob.device.token });
  await welcomed;
  const ok = sock.next((f) => f.t === 'ok' && f.r === 7);
  sock.send({ t: 'channel.join', r: 7, channel, since: 0 });
  t.match(await ok, { seq: 4 });
  t.same(sock.frames.filter((f) => f.t === 'cmsg').map((f) => f.seq), [4], 'raw join since 0: only the retained post');

  const again = await ann.c.request('channel.post', { channel, cid: 'p1', body: 'p1 again' });
  t.equal(again.seq, 5, 'a cid whose post was swept names a new post');
  t.equal((await ann.c.request('channel.post', { channel, cid: 'p4', body: 'x' })).seq, 4, 'a retained one still dedupes');
  t.ok((await swept(s, 'channel')) >= 3);
});

t.test('after a full sweep and a restart, seq, u and channel seq go on', async (t) => {
  const dataDir = tempDataDir(t);
  let s = await startTestServer(t, { ...retention, dataDir });
  let ann = await person(t, s, 'ann');
  const bob = await person(t, s, 'bob');
  const { channel } = await ann.c.request('channel.create', { name: `rst${process.pid % 1000}`, title: 'Restart' });
  let last: any;
  const bobGot = bob.c.next('msg', (m: any) => m.body === 'm3');
  for (let i = 1; i <= 3; i++) last = await ann.c.send({ to: bob.user, body: `m${i}`, cid: `c${i}` });
  const post = await ann.c.request('channel.post', { channel, cid: 'p1', body: 'p1' });
  await bobGot;
  const { thread } = last;
  await sweptUpTo(s, Math.max(Number(last.ts), Number(post.ts)));
  const head = (await session(t, s, bob.device, { since: 0 })).welcome.u;
  t.same((await ann.c.history({ thread })).messages, [], 'all swept before the restart');

  await s.server.stop();
  s = await startTestServer(t, { ...retention, dataDir });
  ann = { ...ann, c: await connect(t, s, ann.device) };
  const bob2 = await connect(t, s, bob.device, { since: head });
  const next = bob2.next('msg', (m: any) => m.body === 'm4');
  t.equal((await ann.c.send({ thread, body: 'm4', cid: 'c4' })).seq, 4, 'seq = previous + 1 after a restart');
  t.equal((await next).u, head + 1, 'u = previous head + 1');
  t.equal((await ann.c.request('channel.post', { channel, cid: 'p2', body: 'p2' })).seq, 2, 'channel seq too');
  const welcome = (await session(t, s, bob.device, { since: 0 })).welcome;
  t.equal(welcome.first, head + 1, 'first after the restart');
});

t.test('RETENTION=0 (the default) never sweeps', async (t) => {
  const s = await startTestServer(t, { retentionSweepMs: 100 });
  const ann = await person(t, s, 'ann');
  const m = await ann.c.send({ to: ann.user, body: 'keep', cid: 'k' });
  await new Promise((r) => setTimeout(r, 300)); // nothing to wait for: the sweeper is off
  t.same([...(await metricSeries(s.base, 'parley_retention_passes_total')).values()], [0]);
  t.equal((await ann.c.history({ thread: m.thread })).messages.length, 1);
});

void (null as unknown as ParleyClient);
