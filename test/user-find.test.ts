// Finding people over the WebSocket (docs/protocol.md §4): `user.find {username}` answers the
// account behind a username, so a person can start a conversation knowing only a name.
import t from 'tap';
import { deleteAccount, register } from '../client/index.js';
import { rawSocket } from './helpers/raw-socket.js';
import { connect, newDevice, newUser, startTestServer } from './helpers/server.js';

t.test('user.find answers user, username and name; an unknown username is not_found', async (t) => {
  const s = await startTestServer(t);
  const ann = await newUser(s, 'ann');
  const username = `bob_${process.pid % 1000}_found`;
  const { user: bob } = await register(s.base, { username, password: 'correct horse battery', name: 'Bob Builder' });
  const d = await newDevice(s, ann);

  const sock = await rawSocket(t, s.wsUrl);
  const synced = sock.next((f) => f.t === 'synced');
  sock.send({ t: 'hello', token: d.token });
  await synced;
  const found = sock.next((f) => f.r === 11);
  sock.send({ t: 'user.find', r: 11, username });
  t.same(await found, { t: 'ok', r: 11, user: bob, username, name: 'Bob Builder' }, 'exactly these fields');

  const missing = sock.next((f) => f.r === 12);
  sock.send({ t: 'user.find', r: 12, username: 'nobody_by_that_name' });
  t.match(await missing, { t: 'err', r: 12, code: 'not_found' });

  // Through the SDK: found, then the person can be messaged by the id it gave.
  const annPhone = await connect(t, s, d);
  const viaSdk = await annPhone.request('user.find', { username: ann.username });
  t.match(viaSdk, { user: ann.user, username: ann.username, name: ann.username }, 'name defaults to the username');
  await t.rejects(annPhone.request('user.find', { username: 'nobody_by_that_name' }), { code: 'not_found' });
  const sent = await annPhone.send({ to: bob, body: 'found you' });
  t.type(sent.thread, 'string');
});

t.test('users.get answers usernames and names for ids, in order, once each; deleted accounts marked, unknown ids left out', async (t) => {
  const s = await startTestServer(t);
  const [ann, bob, cat] = [await newUser(s, 'ann'), await newUser(s, 'bob'), await newUser(s, 'cat')];
  const catDevice = await newDevice(s, cat);
  await deleteAccount(s.base, catDevice.token);
  const annPhone = await connect(t, s, await newDevice(s, ann));
  const { users } = await annPhone.request<{ users: unknown[] }>('users.get', { users: [bob.user, cat.user, 'u_nobody_at_all', ann.user, bob.user] });
  t.same(users, [
    { user: bob.user, username: bob.username, name: bob.username },
    { user: cat.user, deleted: true },
    { user: ann.user, username: ann.username, name: ann.username },
  ]);
  await t.rejects(annPhone.request('users.get', { users: Array.from({ length: 101 }, (_, i) => `u${i}`) }), { code: 'bad_frame' }, 'at most 100 ids');
  await t.rejects(annPhone.request('users.get', { users: [] }), { code: 'bad_frame' }, 'at least one');
});

t.test('user.find with an invalid username is bad_frame', async (t) => {
  const s = await startTestServer(t);
  const annPhone = await connect(t, s, await newDevice(s, await newUser(s, 'ann')));
  await t.rejects(annPhone.request('user.find', {}), { code: 'bad_frame' }, 'username is required');
  await t.rejects(annPhone.request('user.find', { username: 5 }), { code: 'bad_frame' }, 'a string');
});
