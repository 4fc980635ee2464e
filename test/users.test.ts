// Users at the HTTP edge (docs/protocol.md §11, §8.8): finding a person by username, one's own record
// and display name; registration that never overwrites a user when an id is drawn twice; and a
// password pool whose full queue refuses at once with unavailable instead of queueing.
import t from 'tap';
import { register } from '../client/index.js';
import { Accounts } from '../src/auth/accounts.js';
import { PASSWORD_RETRY_MS, PasswordHasher } from '../src/auth/passwords.js';
import { directThreadId, newUserId } from '../protocol/ids.js';
import { openStorage } from '../storage/env.js';
import { newDevice, newUser, startTestServer, tempDataDir } from './helpers/server.js';

const PASSWORD = 'correct horse battery';
const get = (base: string, path: string, token?: string) => fetch(base + path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
const patch = (base: string, path: string, body: string, token: string) =>
  fetch(base + path, { method: 'PATCH', body, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });

t.test('GET /v1/users/:username answers {user, username, name}; 404 for nobody; 401 without a token', async (t) => {
  const s = await startTestServer(t);
  const ann = await newDevice(s, await newUser(s, 'ann'));
  const { user: bob } = await register(s.base, { username: 'bob_finds', password: PASSWORD, name: 'Bob B' });

  const found = await get(s.base, '/v1/users/bob_finds', ann.token);
  t.equal(found.status, 200);
  t.same(await found.json(), { user: bob, username: 'bob_finds', name: 'Bob B' }, 'exactly these fields');

  for (const [name, path] of [['unknown', '/v1/users/nobody_here'], ['not a username', '/v1/users/NO%20ONE'], ['too long', `/v1/users/${'a'.repeat(33)}`]]) {
    const res = await get(s.base, path, ann.token);
    t.equal(res.status, 404, name);
    t.match(await res.json(), { error: 'not_found' }, name);
  }
  const anonymous = await get(s.base, '/v1/users/bob_finds');
  t.equal(anonymous.status, 401);
  t.match(await anonymous.json(), { error: 'unauthorized' });
});

t.test('GET /v1/users/me is the caller; PATCH /v1/users/me changes the display name', async (t) => {
  const s = await startTestServer(t);
  const u = await newUser(s, 'meg');
  const d = await newDevice(s, u);

  const me = await get(s.base, '/v1/users/me', d.token);
  t.equal(me.status, 200);
  t.same(await me.json(), { user: u.user, username: u.username, name: u.username }, 'the name defaults to the username');

  const renamed = await patch(s.base, '/v1/users/me', JSON.stringify({ name: 'Meg Ryan' }), d.token);
  t.equal(renamed.status, 200);
  t.same(await renamed.json(), { user: u.user, username: u.username, name: 'Meg Ryan' }, 'the updated record');
  t.same(await (await get(s.base, '/v1/users/me', d.token)).json(), { user: u.user, username: u.username, name: 'Meg Ryan' }, 'kept');
  t.match(await (await get(s.base, `/v1/users/${u.username}`, d.token)).json(), { name: 'Meg Ryan' }, 'what others find');

  const bad: [string, string][] = [
    ['empty name', JSON.stringify({ name: '' })],
    ['name over 64', JSON.stringify({ name: 'x'.repeat(65) })],
    ['name a number', JSON.stringify({ name: 5 })],
    ['missing name', JSON.stringify({})],
    ['not JSON', '{name'],
  ];
  for (const [name, body] of bad) {
    const res = await patch(s.base, '/v1/users/me', body, d.token);
    t.equal(res.status, 400, name);
    t.match(await res.json(), { error: 'bad_frame' }, name);
  }
  t.equal((await get(s.base, '/v1/users/me')).status, 401, 'GET needs a token');
  t.equal((await fetch(s.base + '/v1/users/me', { method: 'PATCH', body: '{"name":"x"}' })).status, 401, 'PATCH needs a token');
  t.match(await (await get(s.base, '/v1/users/me', d.token)).json(), { name: 'Meg Ryan' }, 'refused patches changed nothing');
});

t.test('user ids leave room for two in a direct thread id', async (t) => {
  const a = newUserId();
  t.equal(a.length, 18);
  t.ok(directThreadId(a, newUserId()).length <= 40, 'd:<a>:<b> within the 40-character id limit');
});

t.test('registration that draws an id already in use draws again and overwrites nobody', async (t) => {
  const storage = openStorage(tempDataDir(t), 'relaxed');
  const passwords = new PasswordHasher(10, 1);
  t.teardown(async () => {
    await passwords.close();
    await storage.close();
  });
  // The ids drawn, in order: the second registration is handed the first one's id first.
  const draws = ['ucollide000000000a', 'ucollide000000000a', 'ucollide000000000b'];
  const accounts = new Accounts(storage, passwords, () => draws.shift()!);

  const first = await accounts.register({ username: 'first', password: PASSWORD, name: 'First' });
  t.equal(first.user, 'ucollide000000000a');
  const second = await accounts.register({ username: 'second', password: PASSWORD, name: 'Second' });
  t.equal(second.user, 'ucollide000000000b', 'drew again after the collision');
  t.equal(draws.length, 0, 'both spare ids were drawn');

  t.same(accounts.find('first'), { user: 'ucollide000000000a', username: 'first', name: 'First' }, 'the first user is intact');
  t.same(accounts.find('second'), { user: 'ucollide000000000b', username: 'second', name: 'Second' });
  t.equal(await accounts.verify({ username: 'first', password: PASSWORD, device: 'd' }), first.user, 'the first can still log in with their own password');
  await t.rejects(accounts.verify({ username: 'first', password: 'the second one', device: 'd' }), { code: 'unauthorized' });

  // An id factory that only ever collides gives up with an error rather than overwrite.
  const stuck = new Accounts(storage, passwords, () => 'ucollide000000000a');
  await t.rejects(stuck.register({ username: 'third', password: PASSWORD }), { code: 'internal' });
  t.equal(accounts.find('third'), undefined, 'nothing half-written');
  t.equal(accounts.find('first')!.name, 'First');
});

t.test('a full password queue refuses at once with unavailable and a retry time', async (t) => {
  const maxQueue = 2;
  const threads = 1;
  const passwords = new PasswordHasher(14, threads, maxQueue);
  t.teardown(() => passwords.close());
  // Submitted in one turn, nothing can finish in between: at most maxQueue wait and each thread
  // holds one (piscina counts a starting thread as capacity too), the rest must be refused.
  const n = maxQueue + 2 * threads + 3;
  const results = await Promise.allSettled(Array.from({ length: n }, () => passwords.hash(PASSWORD)));
  const refused = results.filter((r) => r.status === 'rejected');
  const done = results.filter((r) => r.status === 'fulfilled');
  t.ok(refused.length >= n - (maxQueue + 2 * threads), `${refused.length} of ${n} refused`);
  t.ok(done.length >= maxQueue, `${done.length} hashed`);
  for (const r of refused) t.match((r as PromiseRejectedResult).reason, { code: 'unavailable', retry: PASSWORD_RETRY_MS });
  // Once the queue has drained, hashing works again.
  t.ok(await passwords.hash(PASSWORD));
});

t.test('registrations and logins beyond the password queue are refused with unavailable', async (t) => {
  const storage = openStorage(tempDataDir(t), 'relaxed');
  const passwords = new PasswordHasher(14, 1, 1);
  t.teardown(async () => {
    await passwords.close();
    await storage.close();
  });
  const accounts = new Accounts(storage, passwords);
  const results = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => accounts.register({ username: `burst${i}`, password: PASSWORD })));
  const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  t.ok(refused.length >= 3, `${refused.length} of 6 refused`);
  for (const r of refused) t.match(r.reason, { code: 'unavailable', retry: PASSWORD_RETRY_MS });
  for (const [i, r] of results.entries()) {
    if (r.status === 'rejected') t.equal(accounts.find(`burst${i}`), undefined, `refused burst${i} was not created`);
  }
  // Logins too. The queue is filled in the same turn, so the login's first task (the decoy hash an
  // unknown username is checked against) is refused; a refused decoy is not kept as a failure.
  const filler = Array.from({ length: 4 }, () => passwords.hash(PASSWORD));
  const login = accounts.verify({ username: 'nobody', password: PASSWORD, device: 'd' });
  await t.rejects(login, { code: 'unavailable', retry: PASSWORD_RETRY_MS }, 'a login beyond the queue');
  await Promise.allSettled(filler);
  await t.rejects(accounts.verify({ username: 'nobody', password: PASSWORD, device: 'd' }), { code: 'unauthorized' }, 'later, a plain wrong login');
});
