// Event webhooks (docs/protocol.md "Event webhooks"): every kind arrives signed and in order per
// thread; a receiver that answers 500 for a while loses nothing; kill -9 with events in the outbox
// loses nothing; the events API pages through the same log; with WEBHOOK_URL unset nothing is written.
import t from 'tap';
import { directThreadId } from '../protocol/ids.js';
import { openStorage } from '../storage/env.js';
import { startChildServer } from './helpers/child-server.js';
import { messageSeqs, range, startEventReceiver, type ReceivedEvent } from './helpers/event-receiver.js';
import { connect, newDevice, newUser, startTestServer, tempDataDir } from './helpers/server.js';

const SECRET = 'webhook-test-secret-0123456789abcdefghij';
const ADMIN = 'admin-token-for-the-webhook-tests-0123456789';
const fast = { webhookSecret: SECRET, webhookBackoffMs: 20, webhookBackoffMaxMs: 200, adminToken: ADMIN };

/** /metrics once it matches `re` (scraped again until then; the timeout is a safety net). */
async function untilMetrics(base: string, re: RegExp, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })).text();
    if (re.test(text) || Date.now() > deadline) return text;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const ofType = (events: ReceivedEvent[], type: string) => events.filter((e) => e.type === type);

t.test('every kind of event arrives signed, with its fields, in order per thread', async (t) => {
  const rx = await startEventReceiver(t, SECRET);
  const s = await startTestServer(t, { ...fast, webhookUrl: rx.url, webhookBatch: 7 });
  const [ann, bob, cat, dan] = await Promise.all(['ann', 'bob', 'cat', 'dan'].map((p) => newUser(s, p)));
  const annPhone = await connect(t, s, await newDevice(s, ann));
  const bobPhone = await connect(t, s, await newDevice(s, bob));
  const direct = directThreadId(ann.user, bob.user);
  for (let i = 1; i <= 20; i++) await annPhone.send({ to: bob.user, body: `hi ${i}` });
  const { thread: group } = await annPhone.request<{ thread: string }>('group.create', { title: 'Trip', members: [bob.user, cat.user] });
  await annPhone.request('group.add', { thread: group, users: [dan.user] });
  await annPhone.request('group.remove', { thread: group, users: [dan.user] });
  await bobPhone.request('group.leave', { thread: group });
  await annPhone.request('group.title', { thread: group, title: 'Trip 2027' });
  for (let i = 1; i <= 10; i++) await annPhone.send({ thread: group, body: `group ${i}` });
  const { channel } = await annPhone.channelCreate({ name: `news.${ann.username}`.slice(0, 32), title: 'News' });
  for (let i = 1; i <= 5; i++) await annPhone.channelPost({ channel, body: `post ${i}` });
  await bobPhone.close(); // bob goes offline after the presence debounce

  const events = await rx.until((es) => ofType(es, 'channel.posted').length === 5 && es.some((e) => e.type === 'user.offline' && e.user === bob.user));
  t.ok(rx.allSigned(), 'every POST is signed with WEBHOOK_SECRET (X-Parley-Signature)');
  t.ok(rx.posts.every((p) => p.events.length <= 7), 'no POST carries more than WEBHOOK_BATCH events');
  t.same(messageSeqs(events, direct), range(1, 20), 'the 1:1 thread\'s messages, each once, in seq order');
  t.same(messageSeqs(events, group), range(1, 10), 'the group\'s messages, each once, in seq order');
  const first = ofType(events, 'message.created').find((e) => e.thread === direct)!;
  t.match(first, { type: 'message.created', thread: direct, message: { seq: 1, from: ann.user, body: 'hi 1' } });
  t.type(first.message.id, 'string', 'the message id is in message.id');
  t.notOk('cid' in first.message, 'the sender\'s cid is not in the event');
  const groupKinds = events.filter((e) => e.type.startsWith('group.') && e.thread === group).map((e) => [e.type, e.eseq]);
  t.same(groupKinds, [['group.created', 1], ['group.member_added', 2], ['group.member_removed', 3], ['group.member_left', 4], ['group.renamed', 5]], 'group events in eseq order');
  t.match(ofType(events, 'group.member_added')[0], { by: ann.user, users: [dan.user] });
  t.match(ofType(events, 'group.renamed')[0], { title: 'Trip 2027' });
  t.match(ofType(events, 'channel.created')[0], { channel, title: 'News', owner: ann.user, mode: 'broadcast' });
  t.same(ofType(events, 'channel.posted').map((e) => [e.post.seq, e.post.body]), range(1, 5).map((i) => [i, `post ${i}`]), 'posts in seq order');
  t.ok(events.some((e) => e.type === 'user.online' && e.user === ann.user), 'user.online');
  const ids = events.map((e) => e.id);
  t.same(ids, [...ids].sort((a, b) => a - b), 'ids increase in delivery order');
  t.ok(events.every((e) => typeof e.ts === 'number' && e.ts > 1e12), 'ts is ms since the epoch');

  // The events API pages through the same log, after any cursor.
  const paged: ReceivedEvent[] = [];
  let after = 0;
  for (let pages = 0; pages < 100; pages++) {
    const res = await fetch(`${s.base}/v1/server/events?after=${after}&limit=9`, { headers: { authorization: `Bearer ${ADMIN}` } });
    t.equal(res.status, 200);
    const page = await res.json() as { events: ReceivedEvent[]; next: number };
    if (page.events.length === 0) {
      t.equal(page.next, after, 'an empty page keeps the cursor');
      break;
    }
    t.ok(page.events.length <= 9);
    paged.push(...page.events);
    after = page.next;
  }
  t.same(paged.slice(0, events.length).map((e) => e.id), ids, 'the events API has every delivered event, in the same order');
  t.same(paged.slice(0, events.length), events, 'with the same content');
  t.same(paged.map((e) => e.id), range(1, paged.length), 'ids have no gap');
  t.equal((await fetch(`${s.base}/v1/server/events`)).status, 401, 'no token: 401');
  t.equal((await fetch(`${s.base}/v1/server/events`, { headers: { authorization: 'Bearer wrong-token-wrong-token-wrong-token' } })).status, 401, 'wrong token: 401');
  t.equal((await fetch(`${s.base}/v1/server/events?limit=0`, { headers: { authorization: `Bearer ${ADMIN}` } })).status, 400, 'limit 0: 400');
  t.equal((await fetch(`${s.base}/v1/server/events?after=x`, { headers: { authorization: `Bearer ${ADMIN}` } })).status, 400, 'after not a number: 400');
});

t.test('WEBHOOK_EVENTS: only the kinds subscribed to are recorded', async (t) => {
  const rx = await startEventReceiver(t, SECRET);
  const s = await startTestServer(t, { ...fast, webhookUrl: rx.url, webhookEvents: ['group.created'] });
  const [ann, bob] = await Promise.all([newUser(s, 'ann'), newUser(s, 'bob')]);
  const annPhone = await connect(t, s, await newDevice(s, ann));
  await annPhone.send({ to: bob.user, body: 'not an event' });
  const { thread } = await annPhone.request<{ thread: string }>('group.create', { title: 'Only this', members: [bob.user] });
  const events = await rx.until((es) => es.length >= 1);
  t.same(events.map((e) => [e.type, e.thread]), [['group.created', thread]], 'no user.online, no message.created: just the group');
});

t.test('a receiver answering 500 for a while loses nothing and keeps order per thread', async (t) => {
  const FAILURES = 6;
  const rx = await startEventReceiver(t, SECRET);
  rx.status = (n) => (n < FAILURES ? 500 : 200);
  const s = await startTestServer(t, { ...fast, webhookUrl: rx.url, webhookBatch: 10, webhookEvents: ['message.created'] });
  const [ann, bob, cat] = await Promise.all(['ann', 'bob', 'cat'].map((p) => newUser(s, p)));
  const annPhone = await connect(t, s, await newDevice(s, ann));
  // Two threads, 40 messages each, all in flight at once while the receiver fails.
  await Promise.all(range(1, 40).flatMap((i) => [annPhone.send({ to: bob.user, body: `b${i}` }), annPhone.send({ to: cat.user, body: `c${i}` })]));
  const events = await rx.until((es) => es.length >= 80);
  t.ok(rx.posts.length > FAILURES, 'the receiver was retried past its failures');
  t.same(messageSeqs(events, directThreadId(ann.user, bob.user)), range(1, 40), 'thread 1: all 40, in order');
  t.same(messageSeqs(events, directThreadId(ann.user, cat.user)), range(1, 40), 'thread 2: all 40, in order');
  const firstTry = rx.posts[0].events;
  t.same(rx.posts[FAILURES].events.slice(0, firstTry.length), firstTry, 'the first accepted POST starts with the events the first failed one carried');
  // The delivered mark is written after the receiver's 200: wait for the gauge to see it.
  const metrics = await untilMetrics(s.base, /parley_webhook_backlog 0\b/);
  t.match(metrics, /parley_webhook_backlog 0\b/, 'nothing is left to deliver');
  t.match(metrics, new RegExp(`parley_webhook_deliveries_total\\{outcome="http_error"\\} ${FAILURES}\\b`), 'the failures are counted');
});

t.test('kill -9 with events undelivered: after the restart every event arrives, in order per thread', async (t) => {
  const dataDir = tempDataDir(t);
  const rx = await startEventReceiver(t, SECRET);
  let accept = false;
  // The receiver is down (503) until the second server runs: every event is still to deliver at the kill.
  rx.status = () => (accept ? 200 : 503);
  const env = { WEBHOOK_URL: rx.url, WEBHOOK_SECRET: SECRET, WEBHOOK_BACKOFF: '20ms', WEBHOOK_BACKOFF_MAX: '100ms', WEBHOOK_EVENTS: 'message.created' };
  const first = await startChildServer(dataDir, env);
  t.teardown(() => first.proc.kill('SIGKILL'));
  const [ann, bob, cat] = await Promise.all(['ann', 'bob', 'cat'].map((p) => newUser(first, p)));
  const annDevice = await newDevice(first, ann);
  const annPhone = await connect(t, first, annDevice);
  await Promise.all(range(1, 60).flatMap((i) => [annPhone.send({ to: bob.user, body: `b${i}` }), annPhone.send({ to: cat.user, body: `c${i}` })]));
  first.proc.kill('SIGKILL'); // right after the last ok: the newest events are likely still in an outbox
  t.equal((await first.exited).signal, 'SIGKILL');
  await annPhone.close();
  const storage = openStorage(dataDir, 'relaxed');
  const inOutbox = storage.db.webhookOutbox.getCount();
  const inLog = storage.db.webhookLog.getCount();
  const delivered = storage.db.webhookState.get('delivered') ?? 0;
  await storage.close();
  t.equal(inOutbox + inLog, 120, `all 120 events are on disk at the kill (${inOutbox} in outboxes, ${inLog} in the global log)`);
  t.equal(delivered, 0, 'none was delivered');

  accept = true;
  const second = await startChildServer(dataDir, env);
  t.teardown(() => second.proc.kill('SIGKILL'));
  const events = await rx.until((es) => es.length >= 120);
  t.ok(rx.allSigned());
  t.same(messageSeqs(events, directThreadId(ann.user, bob.user)), range(1, 60), 'thread 1: all 60, each once after dedupe, in order');
  t.same(messageSeqs(events, directThreadId(ann.user, cat.user)), range(1, 60), 'thread 2: all 60, each once after dedupe, in order');
});

t.test('WEBHOOK_URL unset: no outbox, no log, nothing written', async (t) => {
  const s = await startTestServer(t, {});
  const [ann, bob] = await Promise.all([newUser(s, 'ann'), newUser(s, 'bob')]);
  const annPhone = await connect(t, s, await newDevice(s, ann));
  for (let i = 0; i < 10; i++) await annPhone.send({ to: bob.user, body: `quiet ${i}` });
  await annPhone.close();
  await s.server.stop();
  const storage = openStorage(s.dataDir, 'relaxed');
  t.equal(storage.db.webhookOutbox.getCount(), 0, 'the outbox is empty');
  t.equal(storage.db.webhookLog.getCount(), 0, 'the log is empty');
  await storage.close();
});
