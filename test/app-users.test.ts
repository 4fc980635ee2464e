// Application users (src/auth/app-users.ts) on a real LMDB directory: bound to a Parley user on
// first sight, the same user ever after, updated by the server API's upsert, named by either id,
// and refused at sign-in once the account was deleted until the API recreates it.
import t from 'tap';
import { AppUsers, validAppId } from '../src/auth/app-users.js';
import { openStorage } from '../storage/env.js';
import { tombstone } from '../actors/account-deletion.js';
import { tempDataDir } from './helpers/server.js';

t.test('first sight creates the account; later sign-ins and upserts find the same user', async (t) => {
  const storage = openStorage(tempDataDir(t), 'relaxed');
  t.teardown(() => storage.close());
  const apps = new AppUsers(storage);

  const first = await apps.signIn('app-42', 'Ann');
  t.match(first, { username: '', name: 'Ann', appId: 'app-42' }, 'no username: not findable by one');
  t.equal((await apps.signIn('app-42', 'Someone else')).user, first.user, 'the same user; the name is not taken from later tokens');
  t.equal(apps.resolve('app-42'), first.user, 'named by the app id');
  t.equal(apps.resolve(first.user), first.user, 'named by the Parley id');
  t.equal(apps.resolve('app-unknown'), undefined);

  const bot = await apps.upsert('helper-bot', { name: 'Helper', bot: true });
  t.ok(bot.created);
  t.match(bot.record, { name: 'Helper', bot: true });
  const renamed = await apps.upsert('app-42', { name: 'Ann B' });
  t.same([renamed.created, renamed.record.user, renamed.record.name], [false, first.user, 'Ann B']);
  t.equal(storage.db.users.get(first.user)?.name, 'Ann B', 'stored');
});

t.test('a deleted account is refused at sign-in; the API recreates it as a new account', async (t) => {
  const storage = openStorage(tempDataDir(t), 'relaxed');
  t.teardown(() => storage.close());
  const apps = new AppUsers(storage);
  const old = await apps.signIn('app-7');
  // What the user actor's deletion commits (actors/user-actor.ts deleteAccount).
  await storage.db.users.put(old.user, tombstone(old, old.user, Date.now()));
  await storage.db.appUsers.put('app-7', { user: old.user, deleted: Date.now() });

  await t.rejects(apps.signIn('app-7'), { code: 'unauthorized' });
  t.equal(apps.resolve('app-7'), undefined, 'a deleted account names nobody');
  t.equal(apps.resolve(old.user), undefined);
  const again = await apps.upsert('app-7', { name: 'Back' });
  t.ok(again.created);
  t.not(again.record.user, old.user, 'a new, empty account');
  t.equal((await apps.signIn('app-7')).user, again.record.user, 'sign-in works again');
});

t.test('an id drawn twice never overwrites another user', async (t) => {
  const storage = openStorage(tempDataDir(t), 'relaxed');
  t.teardown(() => storage.close());
  const ids = ['u-same', 'u-same', 'u-other'];
  const apps = new AppUsers(storage, () => ids.shift()!);
  const a = await apps.signIn('a');
  const b = await apps.signIn('b');
  t.same([a.user, b.user], ['u-same', 'u-other']);
  t.equal(storage.db.appUsers.get('a')?.user, 'u-same');
});

t.test('app ids: printable ASCII without spaces, 1 to 128 characters', async (t) => {
  for (const ok of ['1', 'user@example.com', 'f47ac10b-58cc-4372-a567-0e02b2c3d479', 'x'.repeat(128)]) t.ok(validAppId(ok), ok);
  for (const bad of ['', 'has space', 'x'.repeat(129), 'ünïcode', 42, null]) t.notOk(validAppId(bad), String(bad));
});
