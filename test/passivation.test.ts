// Passivation on a real Shard over a temp LMDB: never before an activation's writes are durable;
// after it, reactivation reloads the state and seq/u continue; an activation that holds nothing
// is dropped right after its batch; activations are bounded, least recently used first. And on a
// real server: a flood of history on random thread ids keeps no actors.
import t from 'tap';
import { directThreadId } from '../protocol/ids.js';
import { ErrorCode, ServerFrame } from '../protocol/codes.js';
import { decodeFrame } from '../protocol/wire.js';
import { answerOf, shardHarness } from './helpers/shard-harness.js';
import { connect, newDevice, newUser, startTestServer } from './helpers/server.js';

const FAR_FUTURE = Date.now() + 365 * 24 * 3600_000;
/** The shard's own sweeper never acts within a test: passivation is driven by passivateIdle(FAR_FUTURE). */
const NO_SWEEP = 3600_000;
const actorsOf = (s: { actors: { user: number; thread: number } }) => s.actors.user + s.actors.thread;

t.test('an actor whose writes are not durable is never passivated; reactivated, seq and u continue', async (t) => {
  const h = await shardHarness(t, ['ann', 'bob'], { passivateAfterMs: NO_SWEEP });
  const requested = h.gate.nextRequest();
  h.batch([h.send(1, 'ann', 'bob', 'one')]);
  await requested;
  h.shard.passivateIdle(FAR_FUTURE);
  t.equal(h.shard.stats().actors.thread, 1, 'kept while its write waits for the disk');

  h.gate.open();
  t.match(answerOf(await h.reply(1)), { t: ServerFrame.ok, seq: 1 });
  await h.settle();
  t.equal(actorsOf(h.shard.stats()), 3, 'the thread and both users are active');
  h.shard.passivateIdle(FAR_FUTURE);
  t.equal(actorsOf(h.shard.stats()), 0, 'all passivated once durable and idle');

  h.batch([h.send(2, 'ann', 'bob', 'two')]);
  t.match(answerOf(await h.reply(2)), { t: ServerFrame.ok, seq: 2 }, 'seq continues after reactivation');
  await h.settle();
  h.storage.refresh();
  const bobLog = [...h.storage.db.userLog.getRange({ start: ['bob', 0], end: ['bob', Number.MAX_SAFE_INTEGER] })];
  t.same(bobLog.map(({ key }) => key), [['bob', 1], ['bob', 2]], "bob's log continues at u = 2, nothing overwritten");
  t.same(bobLog.map(({ value }) => (decodeFrame(value) as { body: string }).body), ['one', 'two']);
  t.same(h.storage.db.fanout.get(directThreadId('ann', 'bob')), undefined, 'the fan-out was confirmed across the passivation');
});

t.test('an actor that would be idle is still kept until its write is durable', async (t) => {
  // contacts.add leaves the user actor with nothing of its own pending: only the disk can hold it.
  const h = await shardHarness(t, ['ann', 'bob'], { passivateAfterMs: NO_SWEEP });
  const requested = h.gate.nextRequest();
  h.batch([h.command(1, 'ann', { t: 'contacts.add', user: 'bob' })]);
  await requested;
  h.shard.passivateIdle(FAR_FUTURE);
  t.equal(h.shard.stats().actors.user, 1, 'kept while its write waits for the disk');
  h.gate.open();
  await h.reply(1);
  h.shard.passivateIdle(FAR_FUTURE);
  t.equal(h.shard.stats().actors.user, 0, 'passivated once the write is durable');
});

t.test('an activation that holds nothing is dropped right after its batch', async (t) => {
  const h = await shardHarness(t, ['ann']);
  h.gate.open();
  const n = 500;
  h.batch(Array.from({ length: n }, (_, i) => h.command(i + 1, 'ann', { t: 'history', thread: `g:nothing${i}` })));
  const replies = await Promise.all(Array.from({ length: n }, (_, i) => h.reply(i + 1)));
  t.equal(replies.length, n);
  const stats = h.shard.stats();
  t.equal(stats.actors.thread + stats.actors.user, 0, 'no activation kept after answering');
  t.equal(stats.activations, stats.passivations, 'every activation made was dropped');
});

t.test('activations are bounded: beyond the bound the least recently used idle ones go', async (t) => {
  const users = Array.from({ length: 12 }, (_, i) => `u${i}`);
  const h = await shardHarness(t, users, { maxActivations: 5 });
  h.gate.open();
  // Each writes (a contact), so none is dropped as empty; they stay until the bound applies.
  for (const [i, u] of users.entries()) {
    h.batch([h.command(i + 1, u, { t: 'contacts.add', user: users[(i + 1) % users.length] })]);
    await h.reply(i + 1);
  }
  await h.settle();
  h.batch([h.command(100, 'u11', { t: 'contacts.list' })]);
  await h.reply(100);
  t.equal(h.shard.stats().actors.user, 5, 'at most the bound stays active');
  t.ok(h.shard.stats().passivations >= 7);
});

t.test('a flood of history on random thread ids keeps no actors on a real server', async (t) => {
  const s = await startTestServer(t, { shards: 2 });
  const ann = await newUser(s, 'ann');
  const phone = await connect(t, s, await newDevice(s, ann));
  const n = 2000;
  const rssBefore = process.memoryUsage().rss;
  const codes = new Map<string, number>();
  // In waves below the per-socket limit of commands in flight.
  for (let wave = 0; wave < n / 50; wave++) {
    const answers = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => phone.history({ thread: `g:random${wave}x${i}` })));
    for (const a of answers) {
      const code = a.status === 'rejected' ? String((a.reason as { code: string }).code) : 'ok';
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
  }
  t.same(Object.fromEntries(codes), { [ErrorCode.not_found]: n }, 'each answered not_found');
  const stats = await s.server.cluster.stats();
  t.equal(stats.reduce((sum, x) => sum + x.actors.thread, 0), 0, 'no thread actor kept for them');
  t.comment(`${n} history commands on random ids: rss ${((process.memoryUsage().rss - rssBefore) / 2 ** 20).toFixed(1)} MiB more (whole test process)`);
});
