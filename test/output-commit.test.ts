// Output commit in isolation: outputs after a write wait for its barrier, order is kept, and
// outputs with nothing pending go out at once; and the storage barrier it waits on is real.
import t from 'tap';
import { OutputCommit } from '../actors/output-commit.js';
import { openStorage } from '../storage/env.js';
import { tempDataDir } from './helpers/server.js';

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

t.test('a failed commit never releases its outputs, nor anything after it', async (t) => {
  let failed!: (err: unknown) => void;
  const failure = new Promise<unknown>((resolve) => (failed = resolve));
  const oc = new OutputCommit(() => Promise.reject(new Error('disk full')), failed);
  const out: string[] = [];
  oc.wrote();
  oc.emit(() => out.push('must not be seen'));
  t.match(await failure, { message: 'disk full' }, 'the failure is reported');
  t.same(out, []);
  oc.emit(() => out.push('nor this'));
  await t.rejects(oc.idle(), { message: 'disk full' }, 'idle() never claims a clean drain after it');
  t.same(out, []);
});

t.test('isReleased tells when the group of a write has been released', async (t) => {
  const disk = manualBarrier();
  const oc = new OutputCommit(disk.barrier, (e) => t.fail(String(e)));
  const group = oc.wrote();
  t.equal(oc.isReleased(group), false);
  await tick();
  disk.land();
  await oc.idle();
  t.equal(oc.isReleased(group), true);
});

for (const durability of ['relaxed', 'fsync'] as const) {
  t.test(`the ${durability} storage barrier resolves only once the write is committed (read back without closing)`, async (t) => {
    const storage = openStorage(tempDataDir(t), durability);
    t.teardown(() => storage.close());
    void storage.db.usernames.put('ann', 'u1');
    t.equal(storage.db.usernames.get('ann'), undefined, 'not readable before its commit');
    await storage.barrier();
    storage.refresh();
    t.equal(storage.db.usernames.get('ann'), 'u1', 'readable as soon as the barrier resolves');
  });
}
