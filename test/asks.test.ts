// PendingAsks: an ask is answered exactly once — by its reply, by `unavailable` when its timeout
// passes (swept, no timer per ask), or at once when the thread it went to dies.
import t from 'tap';
import { PendingAsks } from '../actors/asks.js';
import { ErrorCode } from '../protocol/codes.js';
import type { ProtocolError } from '../protocol/errors.js';

type Outcome = { err: ProtocolError | null; value?: unknown; at: number };

function ask(asks: PendingAsks, what: string, to = 1): { id: number; done: Promise<Outcome>; calls: () => number } {
  let calls = 0;
  let settle!: (o: Outcome) => void;
  const done = new Promise<Outcome>((resolve) => (settle = resolve));
  const id = asks.open(what, (err, value) => {
    calls++;
    settle({ err, value, at: Date.now() });
  }, to);
  return { id, done, calls: () => calls };
}

t.test('an unanswered ask fails with unavailable once its timeout has passed', async (t) => {
  const asks = new PendingAsks(100);
  t.teardown(() => asks.close('test over'));
  const opened = Date.now();
  const a = ask(asks, 'history to thread:t1');
  // The sweeper does not keep a process alive (unref): this safety net does, and fails if needed.
  const guard = setTimeout(() => t.fail('the ask was not timed out within 10 s'), 10_000);
  const { err, at } = await a.done;
  clearTimeout(guard);
  t.match(err, { code: ErrorCode.unavailable, message: /no answer to history to thread:t1 within 100 ms/ });
  t.ok(at - opened >= 100, 'not before the timeout');
  t.equal(asks.size, 0, 'forgotten');
  asks.settle(a.id, 'late');
  t.equal(a.calls(), 1, 'a late reply is dropped: answered exactly once');
});

t.test('a reply settles the ask once, with its value or its error', async (t) => {
  const asks = new PendingAsks(60_000);
  t.teardown(() => asks.close('test over'));
  const ok = ask(asks, 'attach');
  const bad = ask(asks, 'send');
  asks.settle(ok.id, { head: 3 });
  asks.settle(bad.id, null, ErrorCode.forbidden, 'not a member');
  t.same((await ok.done).value, { head: 3 });
  t.match((await bad.done).err, { code: ErrorCode.forbidden, message: 'not a member' });
  asks.settle(ok.id, 'again');
  t.equal(ok.calls(), 1);
});

t.test('asks to a thread that died fail at once; asks to others wait on', async (t) => {
  const asks = new PendingAsks(60_000);
  const toDead = [ask(asks, 'a', 2), ask(asks, 'b', 2)];
  const toLive = ask(asks, 'c', 1);
  t.equal(asks.failTo(2, 'shard 2 stopped'), 2);
  for (const a of toDead) t.match((await a.done).err, { code: ErrorCode.unavailable, message: /shard 2 stopped/ });
  t.equal(toLive.calls(), 0, 'the ask to a live thread is still pending');
  asks.close('server stopping');
  t.match((await toLive.done).err, { code: ErrorCode.unavailable, message: 'server stopping' }, 'close answers the rest');
});
