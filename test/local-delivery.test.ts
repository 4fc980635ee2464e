// One shard holding a 1:1 thread and both its members (a real Shard over a temp LMDB, the commit
// barrier held by the test): the members' log entries join the thread's transaction instead of
// waiting for its commit; an answer that depends on no write does not wait behind other actors'
// commits; the fan-out mark is written once and removed when the idle thread is quiesced.
import t from 'tap';
import { ErrorCode, ServerFrame } from '../protocol/codes.js';
import { directThreadId } from '../protocol/ids.js';
import { decodeFrame } from '../protocol/wire.js';
import { answerOf, shardHarness } from './helpers/shard-harness.js';

const logOf = (h: { storage: { refresh(): void; db: { userLog: { getRange(r: object): Iterable<{ value: Uint8Array }> } } } }, user: string) => {
  h.storage.refresh();
  return [...h.storage.db.userLog.getRange({ start: [user, 0], end: [user, Number.MAX_SAFE_INTEGER] })].map(
    ({ value }) => decodeFrame(value) as { t: string; body: string; u: number },
  );
};

t.test("members on the thread's shard log a message in the thread's own transaction", async (t) => {
  const h = await shardHarness(t, ['ann', 'bob']);
  const requested = h.gate.nextRequest();
  h.batch([h.send(1, 'ann', 'bob', 'one commit')]);
  await requested;
  // The gate holds the outputs, not LMDB: what this batch wrote commits on its own.
  await h.storage.root.committed;
  t.same(logOf(h, 'bob').map((f) => f.body), ['one commit'], "bob's log has it before the thread's commit released anything");
  t.same(logOf(h, 'ann').map((f) => f.body), ['one commit'], "so does the sender's own log");
  t.equal(h.gate.requested, 1, 'one commit group for the message and both copies');
  t.notOk(h.received.some((e) => e[1] === 1), 'the ok still waits for the disk');
  h.gate.open();
  t.match(answerOf(await h.reply(1)), { t: ServerFrame.ok, seq: 1 });
});

t.test('an answer that depends on no write does not wait behind another actor’s commit', async (t) => {
  const h = await shardHarness(t, ['ann', 'bob', 'cat']);
  const requested = h.gate.nextRequest();
  h.batch([h.send(1, 'ann', 'bob', 'held')]);
  await requested;
  h.batch([h.command(2, 'cat', { t: 'history', thread: 'g:nothing-here' })]);
  t.match(answerOf(await h.reply(2)), { t: ServerFrame.err, code: ErrorCode.not_found }, 'answered while the gate is closed');
  t.notOk(h.received.some((e) => e[1] === 1), 'the write still waits');
  h.gate.open();
  await h.reply(1);
});

t.test('the fan-out mark is written once for a busy thread and removed when it is quiesced', async (t) => {
  const h = await shardHarness(t, ['ann', 'bob']);
  h.gate.open();
  const thread = directThreadId('ann', 'bob');
  for (let i = 1; i <= 3; i++) {
    h.batch([h.send(i, i % 2 ? 'ann' : 'bob', i % 2 ? 'bob' : 'ann', `m${i}`)]);
    await h.reply(i);
  }
  await h.storage.root.committed;
  h.storage.refresh();
  t.same(h.storage.db.fanout.get(thread), { seq: 1, eseq: 0 }, 'one mark, from the first message, though every member confirmed all three');
  t.same(logOf(h, 'bob').map((f) => f.body), ['m1', 'm2', 'm3']);
  await h.settle(); // drains the shard, which quiesces every activation first
  h.storage.refresh();
  t.equal(h.storage.db.fanout.get(thread), undefined, 'quiesced: the mark is gone');
  t.equal(h.shard.recover(), 0, 'nothing left for crash recovery to re-send');
});
