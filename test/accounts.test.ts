// Accounts and sessions over HTTP (docs/protocol.md §11): sign-up, login, device list, logout and
// revocation closing the device's sockets with 4003, and every body validated.
import t from 'tap';
import { listSessions, login, logout, register, revokeSession } from '../client/index.js';
import { client, connect, newDevice, newUser } from './helpers/server.js';
import { sharedServer } from './helpers/shared-server.js';

/** One default-config server for every subtest: each signs up its own usernames. */
const shared = sharedServer(t);

const post = (base: string, path: string, body: string, headers: Record<string, string> = {}) =>
  fetch(base + path, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });

t.test('register: 201 with a user id, 409 when the username is taken', async (t) => {
  const s = await shared();
  const first = await register(s.base, { username: 'carol', password: 'long enough', name: 'Carol' });
  t.match(first.user, /^[A-Za-z0-9_:-]{1,40}$/);
  await t.rejects(register(s.base, { username: 'carol', password: 'another one' }), { code: 'conflict', status: 409 });
  // Racing sign-ups for one name: exactly one wins.
  const results = await Promise.allSettled(Array.from({ length: 4 }, () => register(s.base, { username: 'dave', password: 'long enough' })));
  t.equal(results.filter((r) => r.status === 'fulfilled').length, 1, 'one winner');
});

t.test('register validates every field with a clear 400', async (t) => {
  const s = await shared();
  const cases: [string, unknown, RegExp][] = [
    ['username too short', { username: 'ab', password: 'long enough' }, /username/],
    ['username with capitals', { username: 'Carol', password: 'long enough' }, /username/],
    ['password too short', { username: 'fiona', password: 'short' }, /password/],
    ['password too long', { username: 'fiona', password: 'x'.repeat(129) }, /password/],
    ['missing password', { username: 'fiona' }, /password/],
    ['not an object', [1, 2], /./],
  ];
  for (const [name, body, why] of cases) {
    const res = await post(s.base, '/v1/users', JSON.stringify(body));
    t.equal(res.status, 400, name);
    t.match(await res.json(), { error: 'bad_frame', message: why }, name);
  }
  const bad = await post(s.base, '/v1/users', '{not json');
  t.equal(bad.status, 400, 'invalid JSON');
  t.match(await bad.json(), { error: 'bad_frame', message: /JSON/ });
});

t.test('bodies over 64 KiB get 413', async (t) => {
  const s = await shared();
  const big = JSON.stringify({ username: 'erin', password: 'long enough', name: 'x'.repeat(70 * 1024) });
  const res = await post(s.base, '/v1/users', big);
  t.equal(res.status, 413);
  t.match(await res.json(), { error: 'too_large' });
  const ok = await post(s.base, '/v1/users', JSON.stringify({ username: 'erin', password: 'long enough' }));
  t.equal(ok.status, 201, 'the server is fine afterwards');
});

t.test('login: 201 with a token; 401 without detail for a wrong password or unknown user', async (t) => {
  const s = await shared();
  const u = await newUser(s);
  const session = await login(s.base, { username: u.username, password: u.password, device: 'phone' });
  t.equal(session.user, u.user);
  t.ok(session.token.length >= 32, 'a long random token');
  const wrong = await post(s.base, '/v1/sessions', JSON.stringify({ username: u.username, password: 'wrong password', device: 'x' }));
  const unknown = await post(s.base, '/v1/sessions', JSON.stringify({ username: 'nobody_here', password: 'wrong password', device: 'x' }));
  t.equal(wrong.status, 401);
  t.equal(unknown.status, 401);
  t.same(await wrong.json(), await unknown.json(), 'the same answer: no hint whether the user exists');
});

t.test('sessions: list devices, log one out from another, log out self', async (t) => {
  const s = await shared();
  const u = await newUser(s);
  const phone = await newDevice(s, u, 'phone');
  const laptop = await newDevice(s, u, 'laptop');
  const list = await listSessions(s.base, phone.token);
  t.same(list.devices.map((d) => d.name).sort(), ['laptop', 'phone']);
  for (const d of list.devices) {
    t.type(d.created, 'number');
    t.type(d.lastSeen, 'number');
  }

  const laptopClient = await connect(t, s, laptop);
  const kicked = laptopClient.next('close');
  await revokeSession(s.base, phone.token, laptop.device);
  t.match(await kicked, { code: 4003 }, "the revoked device's socket closes with 4003 at once");
  t.same((await listSessions(s.base, phone.token)).devices.map((d) => d.name), ['phone']);

  const phoneClient = await connect(t, s, phone);
  const closed = phoneClient.next('close');
  await logout(s.base, phone.token);
  t.match(await closed, { code: 4003 }, 'logout closes the own socket with 4003');
  await t.rejects(listSessions(s.base, phone.token), { code: 'unauthorized', status: 401 }, 'the token is dead');
});

t.test('a revoked token is refused on the WebSocket', async (t) => {
  const s = await shared();
  const u = await newUser(s);
  const phone = await newDevice(s, u);
  await logout(s.base, phone.token);
  await t.rejects(client(t, s, phone).connect(), { code: 'unauthorized' });
});

t.test('protected routes need a valid bearer token', async (t) => {
  const s = await shared();
  for (const auth of [undefined, 'Bearer nope', 'Basic abc']) {
    const res = await fetch(`${s.base}/v1/sessions`, { headers: auth ? { authorization: auth } : {} });
    t.equal(res.status, 401, `authorization: ${auth ?? 'none'}`);
    t.match(await res.json(), { error: 'unauthorized' });
  }
  const res = await fetch(`${s.base}/v1/nothing`);
  t.equal(res.status, 404);
  t.match(await res.json(), { error: 'not_found' });
});

t.test('health, readiness and metrics', async (t) => {
  const s = await shared();
  t.equal((await fetch(`${s.base}/healthz`)).status, 200);
  t.equal((await fetch(`${s.base}/readyz`)).status, 200);
  const metrics = await (await fetch(`${s.base}/metrics`)).text();
  t.match(metrics, /parley_connections \d+/);
  t.match(metrics, /parley_actors\{shard="1",kind="user"\}/);
  t.match(metrics, /parley_process_resident_memory_bytes \d+/);
});
