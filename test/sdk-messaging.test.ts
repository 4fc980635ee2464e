// The SDK's typed methods for messages, receipts, typing, the inbox and threads (docs/sdk.md
// "Messages", "Inbox and threads"), against one real server shared by every subtest (each with
// its own users).
import t, { type Test } from 'tap';
import type { ReceiptEvent } from '../client/index.js';
import { connect, newDevice, newUser, startTestServer } from './helpers/server.js';

const s = await startTestServer(t);

async function pair(t: Test) {
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const a = await connect(t, s, await newDevice(s, ann));
  const b = await connect(t, s, await newDevice(s, bob));
  return { ann, bob, a, b };
}

t.test('send, history both ways, and the msg event', async (t) => {
  const { bob, a, b } = await pair(t);
  const arrived = b.next('msg', (m) => m.body === 'one');
  const first = await a.send({ to: bob.user, body: 'one' });
  t.match(first, { thread: String, seq: 1, id: String, ts: Number, cid: String });
  t.match(await arrived, { t: 'msg', thread: first.thread, seq: 1, from: a.user, body: 'one' });
  await a.send({ thread: first.thread, body: 'two' });
  await a.send({ thread: first.thread, body: 'three', reply: 1 });
  const newest = await b.history({ thread: first.thread, limit: 2 });
  t.same(newest.messages.map((m) => m.seq), [3, 2], 'newest first');
  t.equal(newest.more, true);
  t.match(newest.messages[0], { replySeq: 1, quote: { seq: 1, body: 'one' } });
  const after = await b.history({ thread: first.thread, after: 1 });
  t.same(after.messages.map((m) => m.seq), [2, 3], 'oldest first after a seq');
  const before = await b.history({ thread: first.thread, before: 2 });
  t.same(before.messages.map((m) => m.body), ['one']);
  t.equal(before.more, false);
  // the typed table, for any command
  t.same((await a.command('history', { thread: first.thread, limit: 1 })).messages.map((m) => m.seq), [3]);
});

t.test('receipts: delivered when the other device acks, read after read()', async (t) => {
  const { bob, a, b } = await pair(t);
  const receipts: ReceiptEvent[] = [];
  a.on('receipt', (r) => receipts.push(r));
  const delivered = a.next('receipt', (r) => r.user === bob.user && (r.delivered ?? 0) >= 1, 10_000);
  const arrived = b.next('msg', (m) => m.body === 'did you get it?'); // before the send: it may come before the ok
  const { thread, seq } = await a.send({ to: bob.user, body: 'did you get it?' });
  await arrived; // b's client acks it by itself
  t.match(await delivered, { t: 'receipt', thread, user: bob.user, delivered: 1 });
  const read = a.next('receipt', (r) => r.user === bob.user && (r.read ?? 0) >= seq, 10_000);
  await b.read({ thread, seq });
  t.match(await read, { thread, read: seq });
  t.ok(receipts.every((r) => typeof r.u === 'number'), 'receipts are durable events with u');
});

t.test('typing reaches the other member; a burst past its limit is rate_limited', async (t) => {
  const { bob, a, b } = await pair(t);
  const { thread } = await a.send({ to: bob.user, body: 'hi' });
  const seen = b.next('typing', (e) => e.thread === thread);
  await a.typing(thread);
  t.match(await seen, { t: 'typing', thread, user: a.user });
  let limited: unknown;
  for (let i = 0; i < 10 && !limited; i++) await a.typing(thread).catch((err) => (limited = err));
  t.match(limited, { code: 'rate_limited', retry: Number }, 'the burst is 5, then 1 per second');
});

t.test('inbox pages newest first; threadGet and threadSet', async (t) => {
  const { a, b } = await pair(t);
  const [cat, dan] = [await newUser(s, 'cat'), await newUser(s, 'dan')];
  const t1 = (await a.send({ to: b.user!, body: 'to bob' })).thread;
  const t2 = (await a.send({ to: cat.user, body: 'to cat' })).thread;
  const t3 = (await a.send({ to: dan.user, body: 'to dan' })).thread;
  const page1 = await a.inbox({ limit: 2 });
  t.same(page1.threads.map((r) => r.thread), [t3, t2], 'the most recently updated first');
  t.type(page1.cursor, 'string');
  const page2 = await a.inbox({ before: page1.cursor, limit: 2 });
  t.same(page2.threads.map((r) => r.thread), [t1]);
  t.equal(page2.cursor, undefined, 'no cursor on the last page');
  t.match(page2.threads[0], { kind: 'direct', members: Array, unread: 0, last: { body: 'to bob' } });
  t.match((await b.inbox()).threads[0], { thread: t1, unread: 1 }, "bob's unread badge");

  await a.threadSet({ thread: t1, muted: true, nickname: 'Bobby' });
  t.match(await a.threadGet(t1), { thread: t1, muted: true, nickname: 'Bobby' });
  await a.threadSet({ thread: t1, nickname: '' });
  t.equal((await a.threadGet(t1)).nickname, undefined, '"" clears the nickname');
  t.match(await b.threadGet(t1), { muted: false }, "the other side's view is untouched");
  await t.rejects(a.threadGet('d:nobody:nothing'), { code: 'not_found' });
});

t.test('edit, deleteMessage, react, unreact, forward: methods and their events', async (t) => {
  const { bob, a, b } = await pair(t);
  const { thread, seq } = await a.send({ to: bob.user, body: 'typo' });
  const edited = b.next('edit', (e) => e.thread === thread);
  t.match(await a.edit({ thread, seq, body: 'fixed' }), { edited: Number });
  t.match(await edited, { t: 'edit', seq, body: 'fixed' });
  const reacted = a.next('reaction', (e) => e.emoji === '👍');
  await b.react({ thread, seq, emoji: '👍' });
  t.match(await reacted, { t: 'reaction', seq, user: bob.user });
  const unreacted = a.next('reaction', (e) => e.emoji === null);
  await b.unreact({ thread, seq });
  await unreacted;
  const cat = await newUser(s, 'cat');
  const fwd = await b.forward({ from: { thread, seq }, to: { to: cat.user } });
  t.match((await b.history({ thread: fwd.thread })).messages[0], { body: 'fixed', forwarded: true, from: bob.user });
  const gone = b.next('deleted', (e) => e.thread === thread);
  t.match(await a.deleteMessage({ thread, seq, forEveryone: true }), { deleted: Number });
  t.match(await gone, { t: 'deleted', seq, forEveryone: true });
  t.match((await b.history({ thread })).messages[0], { seq, deleted: Number, body: undefined });
});

t.test('schedule, scheduled, cancelScheduled', async (t) => {
  const { bob, a } = await pair(t);
  const job = await a.schedule({ to: bob.user, body: 'later', at: Date.now() + 3_600_000 });
  t.match(job, { job: String, body: 'later' });
  t.same((await a.scheduled()).map((j) => j.job), [job.job]);
  await a.cancelScheduled(job.job);
  t.same(await a.scheduled(), []);
  await t.rejects(a.cancelScheduled(job.job), { code: 'not_found' });
});

t.test('errors reach the caller as ParleyError with the code', async (t) => {
  const { a } = await pair(t);
  await t.rejects(a.send({ to: 'u-nobody', body: 'x' }), { name: 'ParleyError', code: 'not_found' });
  await t.rejects(a.send({ to: a.user!, body: 'x'.repeat(17 * 1024) }), { code: 'too_large' });
  await t.rejects(a.history({ thread: 'g:nothing' }), { code: /not_found|forbidden/ });
});
