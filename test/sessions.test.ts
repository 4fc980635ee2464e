// Sessions and the account's own life (docs/protocol.md "Sessions", issue 12): SESSION_TTL idle
// expiry at hello and on 🔒 routes, password change logging the other devices out, account
// deletion (and what the others see of it), and the export.
import t from 'tap';
import WebSocket from 'ws';
import { changePassword, deleteAccount, exportAccount, listSessions, login, register, registerPush } from '../client/index.js';
import { openStorage } from '../storage/env.js';
import { decodeFrame, encodeFrame } from '../protocol/wire.js';
import { connect, client, newDevice, newUser, startTestServer } from './helpers/server.js';
import { sharedServer } from './helpers/shared-server.js';
import { startWebhook } from './helpers/webhook-endpoint.js';
import { SessionClock } from '../src/auth/session-clock.js';

/** The default-config server of the password-change and export subtests: each has its own users. */
const shared = sharedServer(t);

const me = (base: string, token: string) => fetch(base + '/v1/users/me', { headers: { authorization: `Bearer ${token}` } });
const untilClock = (at: number) => new Promise((r) => setTimeout(r, Math.max(0, at - Date.now())));

/** The close code a hello with this token gets (raw socket: the code itself, not the SDK's reading of it). */
function helloClose(wsUrl: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl);
    ws.on('open', () => ws.send(encodeFrame({ t: 'hello', token, r: 1 })));
    ws.on('message', (data) => {
      if ((decodeFrame(data as Buffer) as { t: string }).t === 'welcome') {
        ws.close();
        resolve(0);
      }
    });
    ws.on('close', (code) => resolve(code));
    ws.on('error', reject);
  });
}

t.test('SESSION_TTL: a token unused past it gets 401 and hello 4001; one in use stays valid', async (t) => {
  const TTL = 2000;
  const s = await startTestServer(t, { sessionTtlMs: TTL });
  const u = await newUser(s);
  const idle = await newDevice(s, u, 'idle');
  const busy = await newDevice(s, u, 'busy');
  t.equal(await helloClose(s.wsUrl, idle.token), 0, 'fresh: hello is welcomed');
  const usedAt = Date.now();
  // The busy device authenticates every 400 ms (HTTP and hello) while the idle one waits out the TTL.
  const end = usedAt + TTL + 1000;
  let round = 0;
  while (Date.now() < end) {
    if (round++ % 2 === 0) t.equal((await me(s.base, busy.token)).status, 200);
    else t.equal(await helloClose(s.wsUrl, busy.token), 0);
    await untilClock(Date.now() + 400);
  }
  const res = await me(s.base, idle.token);
  t.equal(res.status, 401, 'idle past the TTL: 401');
  t.match(await res.json(), { error: 'unauthorized' });
  t.equal(await helloClose(s.wsUrl, idle.token), 4001, 'hello with it closes 4001');
  t.equal((await me(s.base, busy.token)).status, 200, 'the device in use is still valid');
  t.equal(await helloClose(s.wsUrl, busy.token), 0);
  // Lazy clean-up: the expired device disappears from the list.
  let devices = (await listSessions(s.base, busy.token)).devices;
  for (let i = 0; i < 50 && devices.some((d) => d.device === idle.device); i++) {
    await untilClock(Date.now() + 50);
    devices = (await listSessions(s.base, busy.token)).devices;
  }
  t.same(devices.map((d) => d.device), [busy.device], 'the expired session was removed');
});

t.test('password change: wrong old refused; other devices closed 4003 and 401; caller kept; new password logs in', async (t) => {
  const s = await shared();
  const u = await newUser(s);
  const phone = await newDevice(s, u, 'phone');
  const laptop = await newDevice(s, u, 'laptop');
  const tablet = await newDevice(s, u, 'tablet');
  const laptopClient = await connect(t, s, laptop);
  const tabletClient = await connect(t, s, tablet);
  const phoneClient = await connect(t, s, phone);

  await t.rejects(changePassword(s.base, phone.token, { old: 'not my password', new: 'a brand new secret' }), { code: 'forbidden', status: 403 }, 'wrong old password: 403');
  await t.rejects(changePassword(s.base, phone.token, { old: u.password, new: 'short' }), { code: 'bad_frame', status: 400 }, 'the new one follows the sign-up rule');
  t.equal((await me(s.base, laptop.token)).status, 200, 'refused changes log nobody out');

  const laptopClosed = laptopClient.next('close');
  const tabletClosed = tabletClient.next('close');
  await changePassword(s.base, phone.token, { old: u.password, new: 'a brand new secret' });
  t.match(await laptopClosed, { code: 4003 }, "the laptop's socket closes 4003");
  t.match(await tabletClosed, { code: 4003 }, "the tablet's socket closes 4003");
  t.equal((await me(s.base, laptop.token)).status, 401, "the laptop's token is 401");
  t.equal((await me(s.base, tablet.token)).status, 401, "the tablet's token is 401");
  t.equal((await me(s.base, phone.token)).status, 200, "the caller's token still works");
  t.ok(await phoneClient.ping() >= 0, "the caller's socket stays open");
  t.same((await listSessions(s.base, phone.token)).devices.map((d) => d.device), [phone.device]);

  await t.rejects(login(s.base, { username: u.username, password: u.password, device: 'x' }), { code: 'unauthorized', status: 401 }, 'the old password fails');
  const again = await login(s.base, { username: u.username, password: 'a brand new secret', device: 'x' });
  t.equal(again.user, u.user, 'the new password logs in');
});

t.test('account deletion: nothing of theirs stays, the username is free, groups see them leave, 1:1 history kept as "Deleted account"', async (t) => {
  const SECRET = 'webhook-secret-for-tests-0123456789';
  const hook = await startWebhook(t, SECRET);
  const s = await startTestServer(t, { pushWebhookUrl: hook.url, pushWebhookSecret: SECRET });
  const annU = await newUser(s, 'ann');
  const bobU = await newUser(s, 'bob');
  const catU = await newUser(s, 'cat');
  const ann = await newDevice(s, annU, 'phone');
  const annLaptop = await newDevice(s, annU, 'laptop');
  await registerPush(s.base, ann.token, { provider: 'webhook', token: 'ann-phone' });
  const a = await connect(t, s, ann);
  const a2 = await connect(t, s, annLaptop);
  const b = await connect(t, s, await newDevice(s, bobU));
  const c = await connect(t, s, await newDevice(s, catU));

  const direct = await a.send({ to: bobU.user, body: 'hi bob, it is ann' });
  await b.send({ thread: direct.thread, body: 'hi ann' });
  const { thread: group } = await c.request('group.create', { title: 'Trip', members: [annU.user, bobU.user] });
  await a.send({ thread: group, body: 'ann in the group' });
  await a.request('contacts.add', { user: bobU.user });
  await a.request('block', { user: catU.user });
  await a.request('privacy.set', { lastSeen: 'nobody' });
  await b.request('contacts.add', { user: annU.user });

  const leftSeen = (cl: typeof b) => cl.next('event', (e: any) => e.t === 'thread' && e.thread === group && e.event === 'left' && e.by === annU.user);
  const bobSeesLeave = leftSeen(b);
  const catSeesLeave = leftSeen(c);
  const aClosed = a.next('close');
  const a2Closed = a2.next('close');
  await deleteAccount(s.base, ann.token);
  t.match(await aClosed, { code: 4003 }, 'their sockets close');
  t.match(await a2Closed, { code: 4003 });
  await bobSeesLeave;
  await catSeesLeave;
  t.pass('the other members of the group see them leave');
  const meta = await c.request('thread.get', { thread: group });
  t.same([...meta.members].sort(), [bobU.user, catU.user].sort(), 'they are no member any more');

  t.equal((await me(s.base, ann.token)).status, 401, 'their tokens are gone');
  t.equal((await me(s.base, annLaptop.token)).status, 401);
  t.equal(await helloClose(s.wsUrl, ann.token), 4001);
  await t.rejects(login(s.base, { username: annU.username, password: annU.password, device: 'x' }), { code: 'unauthorized', status: 401 }, 'login fails');
  const found = await fetch(`${s.base}/v1/users/${annU.username}`, { headers: { authorization: `Bearer ${bobU && (await newDevice(s, bobU)).token}` } });
  t.equal(found.status, 404, 'the username no longer finds them');

  // The 1:1 partner keeps the conversation; its messages from them stay, under "Deleted account".
  const history = await b.history({ thread: direct.thread });
  t.same([...history.messages].sort((x: any, y: any) => x.seq - y.seq).map((m: any) => [m.from, m.body]), [[annU.user, 'hi bob, it is ann'], [bobU.user, 'hi ann']], 'the 1:1 history is kept');
  const row = await b.request('thread.get', { thread: direct.thread });
  t.equal(row.title, 'Deleted account', 'the 1:1 thread is titled "Deleted account"');
  await t.rejects(b.send({ thread: direct.thread, body: 'are you there?' }), { code: 'forbidden' }, 'no new messages to a deleted account');
  const contacts = await b.request('contacts.list');
  t.match(contacts.contacts, [{ user: annU.user, name: 'Deleted account', online: false, last: 0 }]);
  const groupHistory = await c.history({ thread: group });
  t.ok(groupHistory.messages.some((m: any) => m.from === annU.user && m.body === 'ann in the group'), 'their group messages stay for the others');

  const again = await register(s.base, { username: annU.username, password: 'another password' });
  t.not(again.user, annU.user, 'the username can be registered again, as a new account');
  const fresh = await login(s.base, { username: annU.username, password: 'another password', device: 'new' });
  t.same((await exportAccount(s.base, fresh.token)).threads, [], 'the new account inherits nothing');

  // On disk: nothing keyed by them is left but the tombstone (the deletion finished before the
  // `left` event went out: it follows that commit).
  await s.server.stop();
  const storage = openStorage(s.dataDir, 'relaxed');
  t.teardown(() => storage.close());
  const { db } = storage;
  const prefix = { start: [annU.user], end: [annU.user, '\uffff'] };
  const left: Record<string, number> = {};
  for (const [name, table] of Object.entries({ devices: db.devices, cursors: db.cursors, userLog: db.userLog, inbox: db.inbox, contacts: db.contacts, blocks: db.blocks, pushRegistrations: db.pushRegistrations, pushJobs: db.pushJobs })) {
    left[name] = [...(table as any).getKeys(prefix)].length;
  }
  t.same(left, { devices: 0, cursors: 0, userLog: 0, inbox: 0, contacts: 0, blocks: 0, pushRegistrations: 0, pushJobs: 0 }, 'per-user tables are empty');
  t.equal([...db.sessions.getRange()].filter(({ value }) => value.user === annU.user).length, 0, 'no session');
  t.equal(db.credentials.get(annU.user), undefined, 'no credential');
  t.equal(db.privacy.get(annU.user), undefined, 'no privacy setting');
  t.equal(db.presence.get(annU.user), undefined, 'no presence');
  t.equal(db.deletions.get(annU.user), undefined, 'the deletion finished');
  t.match(db.users.get(annU.user), { user: annU.user, username: '', name: 'Deleted account', deleted: Number }, 'a tombstone keeps the id taken');
  t.equal(db.usernames.get(annU.username), again.user, 'the username belongs to the new account');
});

t.test('export: profile, devices, contacts, blocks, privacy, threads and the messages they sent', async (t) => {
  const s = await shared();
  const annU = await newUser(s, 'ann');
  const bobU = await newUser(s, 'bob');
  const ann = await newDevice(s, annU, 'phone');
  const a = await connect(t, s, ann);
  const b = await connect(t, s, await newDevice(s, bobU));
  const direct = await a.send({ to: bobU.user, body: 'one' });
  await b.send({ thread: direct.thread, body: 'from bob' });
  await a.send({ thread: direct.thread, body: 'two' });
  const { thread: group } = await a.request('group.create', { title: 'Book club', members: [bobU.user] });
  await a.send({ thread: group, body: 'three' });
  await a.request('contacts.add', { user: bobU.user });
  await a.request('block', { user: bobU.user });
  await a.request('privacy.set', { lastSeen: 'everyone' });
  await a.request('thread.set', { thread: group, muted: true });

  const out = await exportAccount(s.base, ann.token);
  t.match(out.profile, { user: annU.user, username: annU.username, name: annU.username });
  t.match(out.devices, [{ device: ann.device, name: 'phone' }]);
  t.match(out.contacts, [{ user: bobU.user, name: bobU.username }]);
  t.match(out.blocks, [{ user: bobU.user }]);
  t.same(out.privacy, { lastSeen: 'everyone' });
  t.same(out.threads.map((r: any) => r.thread).sort(), [direct.thread, group].sort());
  t.match(out.threads.find((r: any) => r.thread === group), { kind: 'group', title: 'Book club', muted: true });
  t.same(out.messages.map((m: any) => m.body).sort(), ['one', 'three', 'two'], 'their own messages, not bob\'s');
  t.equal(out.messagesTruncated, false);
  t.equal((await fetch(s.base + '/v1/users/me/export')).status, 401, 'needs a token');
});

t.test('a client can be told its session expired mid-use (SDK surfaces unauthorized)', async (t) => {
  const s = await startTestServer(t, { sessionTtlMs: 1000 });
  const u = await newUser(s);
  const d = await newDevice(s, u);
  await untilClock(Date.now() + 1300);
  await t.rejects(client(t, s, d).connect(), { code: 'unauthorized' });
});

t.test('SessionClock records a device\'s use at most once per interval, not per request', async (t) => {
  let now = 1_000_000;
  const touches: [string, number][] = [];
  const clock = new SessionClock(90 * 86_400_000, { touch: (_u, d, at) => touches.push([d, at]), expire: () => undefined }, () => now);
  t.equal(clock.everyMs, 60_000, 'a minute for the default TTL');
  for (let i = 0; i < 100; i++, now += 500) clock.used('u1', 'phone', 0); // 100 requests in 50 s
  clock.used('u1', 'laptop', 0);
  t.same(touches, [['phone', 1_000_000], ['laptop', 1_050_000]], 'one write for phone, one for laptop');
  now += 11_000;
  clock.used('u1', 'phone', 0);
  t.same(touches.at(-1), ['phone', 1_061_000], 'the next write a minute later');
  t.equal(new SessionClock(2000, { touch: () => undefined, expire: () => undefined }).everyMs, 500, 'a quarter of a short TTL');
});
