// Actor turns on a real Shard over a temp LMDB: turns run one at a time in arrival order,
// nothing that depends on a write leaves before its commit (the barrier is held back by the
// test), the commit backlog sheds commands, and a failed commit releases nothing, fatally.
import t from 'tap';
import { Kind } from '../actors/envelope.js';
import { SHED_RETRY_MS } from '../actors/shard.js';
import { ErrorCode, ServerFrame } from '../protocol/codes.js';
import { directThreadId } from '../protocol/ids.js';
import { decodeFrame } from '../protocol/wire.js';
import { answerOf, shardHarness } from './helpers/shard-harness.js';

/** Lets already-queued I/O and immediates run (no timer): what was going to be sent is sent. */
const turnOfTheLoop = () => new Promise((resolve) => setImmediate(() => setImmediate(resolve)));

t.test('no reply or push leaves the shard before the commit barrier resolves', async (t) => {
  const h = await shardHarness(t, ['ann', 'bob']);
  const requested = h.gate.nextRequest();
  h.batch([h.send(1, 'ann', 'bob', 'hello')]);
  await requested; // the turn ran and sealed its write group
  await turnOfTheLoop();
  await turnOfTheLoop();
  t.equal(h.shard.transport.envelopesTo(0), 0, 'nothing was handed to the gateway while the commit is held');
  t.same(h.received, [], 'and nothing arrived there');
  t.ok(h.shard.stats().heldOutputs >= 1, 'the reply is held by output commit');

  h.gate.open();
  const answer = answerOf(await h.reply(1));
  t.match(answer, { t: ServerFrame.ok, r: 1, seq: 1 });
  h.storage.refresh();
  t.equal(h.storage.db.threadLog.get([directThreadId('ann', 'bob'), 1])?.body, 'hello', 'the message was committed before its ok left');
});

t.test('a command whose only write is deferred to the end of the batch is answered after the commit too', async (t) => {
  const h = await shardHarness(t, ['ann', 'bob']);
  // thread.set writes the inbox row in the user actor's end-of-batch flush, not in its turn.
  const thread = 'g:book-club';
  await h.storage.db.threads.put(thread, { thread, kind: 'group', members: ['ann', 'bob'], admins: ['ann'], title: 'Book club', created: Date.now(), joined: {} });
  const requested = h.gate.nextRequest();
  h.batch([h.command(1, 'ann', { t: 'thread.set', thread, muted: true })]);
  await requested; // the deferred write sealed its group
  await turnOfTheLoop();
  await turnOfTheLoop();
  t.equal(h.shard.transport.envelopesTo(0), 0, 'no ok while the row is not durable');

  h.gate.open();
  t.match(answerOf(await h.reply(1)), { t: ServerFrame.ok, r: 1 });
  h.storage.refresh();
  t.equal(h.storage.db.inbox.get(['ann', thread])?.muted, true, 'the mute was committed before its ok left');
});

t.test('turns run one at a time, in arrival order, across the batch', async (t) => {
  const h = await shardHarness(t, ['ann', 'bob']);
  h.gate.open();
  const n = 50;
  h.batch(Array.from({ length: n }, (_, i) => h.send(i + 1, 'ann', 'bob', `m${i + 1}`)));
  const answers = await Promise.all(Array.from({ length: n }, (_, i) => h.reply(i + 1)));
  t.same(answers.map((a) => answerOf(a).seq), Array.from({ length: n }, (_, i) => i + 1), 'seq follows arrival order');
  const replyOrder = h.received.filter((e) => e[0] === Kind.reply).map((e) => e[1]);
  t.same(replyOrder, Array.from({ length: n }, (_, i) => i + 1), 'replies leave in turn order');
  // A resend with a cid already used gets the first answer, not a second message.
  h.batch([h.command(99, 'ann', { t: 'send', to: 'bob', cid: 'cid-7', body: 'again' })]);
  t.match(answerOf(await h.reply(99)), { seq: 7 });
});

t.test('a full commit backlog answers new commands unavailable with retry, at once', async (t) => {
  // contacts.add writes one row and tells nobody: the only commit groups are the test's.
  const h = await shardHarness(t, ['ann', 'bob', 'cat', 'dan'], { maxCommitBacklog: 1 });
  const requested = h.gate.nextRequest();
  h.batch([h.command(1, 'ann', { t: 'contacts.add', user: 'bob' })]);
  await requested;
  t.equal(h.shard.stats().pendingOutputGroups, 1, 'one group waits for the disk');
  h.batch([h.command(2, 'ann', { t: 'contacts.add', user: 'cat' })]);
  const shed = answerOf(await h.reply(2));
  t.match(shed, { t: ServerFrame.err, r: 2, code: ErrorCode.unavailable, retry: SHED_RETRY_MS }, 'shed while the first is still held');
  t.equal(h.shard.stats().shed, 1);
  t.equal(h.received.some((e) => e[0] === Kind.reply && e[1] === 1), false, 'the first is still held');
  h.gate.open();
  t.match(answerOf(await h.reply(1)), { t: ServerFrame.ok, r: 1 });
  h.batch([h.command(3, 'ann', { t: 'contacts.add', user: 'dan' })]);
  t.match(answerOf(await h.reply(3)), { t: ServerFrame.ok, r: 3 }, 'accepted again once the backlog drained');
  h.storage.refresh();
  t.same([...h.storage.db.contacts.getKeys({ start: ['ann', ''], end: ['ann', '\uffff'] })], [['ann', 'bob'], ['ann', 'dan']], 'the shed command changed nothing');
});

t.test('a failed commit is fatal: its outputs are never released', async (t) => {
  const h = await shardHarness(t, ['ann', 'bob']);
  const requested = h.gate.nextRequest();
  h.batch([h.send(1, 'ann', 'bob', 'doomed')]);
  await requested;
  const failure = new Error('MDB_MAP_FULL (simulated at the barrier)');
  h.gate.fail(failure);
  await t.rejects(h.shard.drain(), failure, 'the drain reports the failure rather than a clean stop');
  t.same(h.fatal, [failure], 'the shard called its fatal handler once, with the cause');
  await turnOfTheLoop();
  t.equal(h.shard.transport.envelopesTo(0), 0, 'the ok of the failed commit never left');
  h.batch([h.send(2, 'ann', 'bob', 'after')]);
  await turnOfTheLoop();
  await turnOfTheLoop();
  t.equal(h.shard.transport.envelopesTo(0), 0, 'nor does anything after it');
});

t.test('crash recovery re-sends a long unconfirmed tail page by page, and every member logs it once', async (t) => {
  const h = await shardHarness(t, ['ann', 'bob']);
  h.gate.open();
  // What a crash leaves behind: 600 stored messages whose fan-out was never confirmed.
  const thread = directThreadId('ann', 'bob');
  const n = 600;
  const { db } = h.storage;
  await db.threads.put(thread, { thread, kind: 'direct', members: ['ann', 'bob'], admins: [], title: '', created: 1, joined: {} });
  for (let seq = 1; seq <= n; seq++) void db.threadLog.put([thread, seq], { seq, id: `m${seq}`, from: 'ann', device: 'phone', ts: seq, body: `tail ${seq}`, cid: `c${seq}` });
  await db.fanout.put(thread, { seq: 1, eseq: 0 });
  t.equal(h.shard.recover(), 1, 'one thread to recover');
  await h.settle();
  h.storage.refresh();
  t.equal(db.fanout.get(thread), undefined, 'the fan-out is confirmed and its mark cleared');
  for (const user of ['ann', 'bob']) {
    const log = [...db.userLog.getRange({ start: [user, 0], end: [user, Number.MAX_SAFE_INTEGER] })];
    const seqs = log.map(({ value }) => (decodeFrame(value) as { seq: number }).seq);
    t.same(seqs, Array.from({ length: n }, (_, i) => i + 1), `${user}'s log has the tail once, in order`);
  }
});
