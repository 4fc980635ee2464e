// The SDK's methods about people (docs/sdk.md "People"): user.find, users.get, contacts, privacy, blocks,
// presence (kept across reconnects), and the account over HTTP (me, name, devices, logout).
import t from 'tap';
import { findUser, login } from '../client/index.js';
import { disconnectUser, startSdkTestServer } from './helpers/sdk-server.js';
import { client, connect, newDevice, newUser } from './helpers/server.js';

const s = await startSdkTestServer(t);
const FAST_RECONNECT = { reconnect: { minMs: 10, maxMs: 50 } };

t.test('usersGet names any number of ids (100 per frame), in order, once each', async (t) => {
  const [annU, bobU] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const a = await connect(t, s, await newDevice(s, annU));
  const ids = [bobU.user, ...Array.from({ length: 150 }, (_, i) => `u_nobody${i}`), annU.user, bobU.user];
  t.same(await a.usersGet(ids), [
    { user: bobU.user, username: bobU.username, name: bobU.username },
    { user: annU.user, username: annU.username, name: annU.username },
  ], 'two pages of ids, unknown ones left out, bob once');
  t.same(await a.usersGet([]), [], 'no ids: no frame');
});

t.test('userFind and findUser (HTTP) find an account by username', async (t) => {
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const d = await newDevice(s, ann);
  const a = await connect(t, s, d);
  t.same(await a.userFind(bob.username), { user: bob.user, username: bob.username, name: bob.username });
  t.same(await findUser(s.base, d.token, bob.username), { user: bob.user, username: bob.username, name: bob.username });
  await t.rejects(a.userFind('nobody_here'), { code: 'not_found' });
  await t.rejects(findUser(s.base, d.token, 'nobody_here'), { code: 'not_found', status: 404 });
});

t.test('contacts: add, list with presence, remove', async (t) => {
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const a = await connect(t, s, await newDevice(s, ann));
  const b = await connect(t, s, await newDevice(s, bob));
  await b.contactsAdd(ann.user); // bob lets ann see his presence (the default: contacts)
  await a.contactsAdd(bob.user);
  t.match(await a.contactsList(), [{ user: bob.user, name: bob.username, online: true }]);
  await a.contactsRemove(bob.user);
  t.same(await a.contactsList(), []);
  await t.rejects(a.contactsAdd(ann.user), { code: 'bad_frame' }, 'not yourself');
});

t.test('presence: sub answers the state, events follow, unsub stops them, privacy hides it', async (t) => {
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const a = await connect(t, s, await newDevice(s, ann));
  const bobDevice = await newDevice(s, bob);
  const b0 = await connect(t, s, bobDevice);
  await b0.contactsAdd(ann.user);
  t.match(await a.presenceSub([bob.user]), [{ user: bob.user, online: true, last: Number }], 'the state now');
  const offline = a.next('presence', (p) => p.user === bob.user && !p.online, 10_000);
  await b0.close();
  t.match(await offline, { t: 'presence', user: bob.user, online: false, last: Number }, 'offline (after the debounce)');
  const online = a.next('presence', (p) => p.user === bob.user && p.online, 10_000);
  const b = await connect(t, s, bobDevice);
  t.match(await online, { t: 'presence', user: bob.user, online: true });
  t.same([...a.watching], [bob.user]);
  // privacy: nobody — ann is told once that she may no longer see it
  const hidden = a.next('presence', (p) => p.user === bob.user && !p.online && p.last === 0, 10_000);
  await b.privacySet('nobody');
  await hidden;
  t.match(await a.presenceSub([bob.user]), [{ online: false, last: 0 }]);
  await b.privacySet('everyone');
  await a.presenceUnsub([bob.user]);
  t.same([...a.watching], []);
});

t.test('presence subscriptions are made again after a reconnect, with the state then as events', async (t) => {
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const b = await connect(t, s, await newDevice(s, bob));
  await b.privacySet('everyone');
  const a = await connect(t, s, await newDevice(s, ann), FAST_RECONNECT);
  await a.presenceSub([bob.user]);
  // The server drops ann's socket (the operator's disconnect, 4002): the SDK reconnects by itself.
  const resubscribed = a.next('presence', (p) => p.user === bob.user && p.online, 10_000);
  const reconnected = a.next('synced', undefined, 10_000);
  t.equal(await disconnectUser(s, ann.user), 1);
  await reconnected;
  t.match(await resubscribed, { t: 'presence', user: bob.user, online: true }, 'the state after the reconnect');
  // and the subscription is live on the new socket
  const offline = a.next('presence', (p) => p.user === bob.user && !p.online, 15_000);
  await b.close();
  t.match(await offline, { online: false, last: Number });
});

t.test('blocks: block, blocksList, a blocked send is forbidden, unblock', async (t) => {
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const a = await connect(t, s, await newDevice(s, ann));
  const b = await connect(t, s, await newDevice(s, bob));
  await a.block(bob.user);
  t.same(await a.blocksList(), [bob.user]);
  await t.rejects(b.send({ to: ann.user, body: 'hey' }), { code: 'forbidden' });
  await a.unblock(bob.user);
  t.same(await a.blocksList(), []);
  t.match(await b.send({ to: ann.user, body: 'hey' }), { seq: 1 });
});

t.test('the account over HTTP: me, setName, devices, revokeDevice, logout', async (t) => {
  const ann = await newUser(s, 'ann');
  const laptop = await newDevice(s, ann, 'laptop');
  const a = await connect(t, s, laptop);
  t.same(await a.me(), { user: ann.user, username: ann.username, name: ann.username });
  t.match(await a.setName('Ann Smith'), { name: 'Ann Smith' });
  t.equal((await a.me()).name, 'Ann Smith');

  const phone = await login(s.base, { username: ann.username, password: ann.password, device: 'phone' });
  const p = client(t, s, phone);
  await p.connect();
  const names = (await a.devices()).map((d) => d.name).sort();
  t.same(names, ['laptop', 'phone']);
  const closed = p.next('close', undefined, 10_000);
  await a.revokeDevice(phone.device);
  t.match(await closed, { code: 4003, willReconnect: false }, 'the revoked device is closed for good');
  t.same((await a.devices()).map((d) => d.device), [laptop.device]);

  await a.logout();
  t.equal(a.state, 'closed');
  await t.rejects(findUser(s.base, laptop.token, ann.username), { code: 'unauthorized', status: 401 }, 'the token is gone');
});
