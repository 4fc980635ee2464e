// Output commit in isolation: outputs after a write wait for its barrier, order is kept, and
// outputs with nothing pending go out at once.
import t from 'tap';
import { OutputCommit } from '../actors/output-commit.js';

/** A barrier the test resolves by hand: the commit "lands" when the test says so. */
function manualBarrier() {
  const pending: (() => void)[] = [];
  return {
    barrier: () => new Promise<void>((resolve) => pending.push(resolve)),
    land: () => pending.shift()?.(),
    get waiting() {
      return pending.length;
    },
  };
}
const tick = () => new Promise((resolve) => setImmediate(resolve));

t.test('an output with no write pending is released at once', async (t) => {
  const disk = manualBarrier();
  const oc = new OutputCommit(disk.barrier, (e) => t.fail(String(e)));
  const out: string[] = [];
  oc.emit(() => out.push('read reply'));
  t.same(out, ['read reply']);
  t.equal(disk.waiting, 0);
});

t.test('outputs after a write wait for the commit, then keep their order', async (t) => {
  const disk = manualBarrier();
  const oc = new OutputCommit(disk.barrier, (e) => t.fail(String(e)));
  const out: string[] = [];
  oc.emit(() => out.push('before write'));
  oc.wrote();
  oc.emit(() => out.push('ok 1'));
  oc.emit(() => out.push('push 1'));
  await tick();
  t.same(out, ['before write'], 'held while the commit is in flight');
  t.equal(disk.waiting, 1, 'one barrier per tick, not per write');

  // Next tick: no write, but it must not overtake the held group.
  oc.emit(() => out.push('read after'));
  await tick();
  t.same(out, ['before write']);
  disk.land();
  await oc.idle();
  t.same(out, ['before write', 'ok 1', 'push 1', 'read after']);
});

t.test('two commits release in commit order', async (t) => {
  const disk = manualBarrier();
  const oc = new OutputCommit(disk.barrier, (e) => t.fail(String(e)));
  const out: string[] = [];
  oc.wrote();
  oc.emit(() => out.push('a'));
  await tick();
  oc.wrote();
  oc.emit(() => out.push('b'));
  await tick();
  t.equal(disk.waiting, 2);
  disk.land();
  disk.land();
  await oc.idle();
  t.same(out, ['a', 'b']);
});

t.test('a failed commit never releases its outputs', async (t) => {
  let failure: unknown;
  const oc = new OutputCommit(() => Promise.reject(new Error('disk full')), (e) => (failure = e));
  const out: string[] = [];
  oc.wrote();
  oc.emit(() => out.push('must not be seen'));
  await tick();
  await new Promise((resolve) => setTimeout(resolve, 10));
  t.same(out, []);
  t.match(failure, { message: 'disk full' });
});
