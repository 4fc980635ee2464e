// Rate limits at the edge (issue 12, docs/protocol.md §10): a real server with RATE_LIMITS=on and
// small limits for each test (counts, not time: nothing sleeps).
import t from 'tap';
import WebSocket from 'ws';
import { CloseCode } from '../protocol/codes.js';
import { connect, newDevice, newUser, startTestServer, until, type TestUser } from './helpers/server.js';
import { rawSocket } from './helpers/raw-socket.js';
import { closeFetchPoolAtEnd } from './helpers/shared-server.js';

// Each subtest sets its own limits (per IP, all from 127.0.0.1): no server is shared here.
closeFetchPoolAtEnd(t);

const HIGH = [{ limit: 1_000_000, windowMs: 60_000 }];
/** Rate limits on, all high except what a test sets. */
const on = (more: Record<string, unknown> = {}) => ({
  rateLimits: 'on' as const, rlHttpPerIp: HIGH, rlRegisterPerIp: HIGH, rlLoginPerIp: HIGH, rlLoginFailuresPerUsername: HIGH,
  rlWsConnectsPerIp: HIGH, rlWsPerIp: 1_000_000, rlSocketCommands: 1_000_000, rlSocketSends: 1_000_000, rlSendsPerUser: HIGH, rlCostlyPerUser: HIGH, ...more,
});

const post = (base: string, path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body) });

t.test('brute-force login: limited with Retry-After, and the right password is refused during the lockout', async (t) => {
  const s = await startTestServer(t, on({ rlLoginFailuresPerUsername: [{ limit: 3, windowMs: 600_000 }] }));
  const victim = await newUser(s);
  const other = await newUser(s);
  for (let i = 0; i < 3; i++) t.equal((await post(s.base, '/v1/sessions', { device: 'phone', username: victim.username, password: `guess ${i} wrong` })).status, 401, `guess ${i}: 401`);
  const limited = await post(s.base, '/v1/sessions', { device: 'phone', username: victim.username, password: 'guess 4 wrong' });
  t.equal(limited.status, 429);
  const retryAfter = Number(limited.headers.get('retry-after'));
  t.ok(retryAfter >= 1 && retryAfter <= 1200, `Retry-After ${retryAfter}`);
  const body = await limited.json();
  t.match(body, { error: 'rate_limited', message: String, retry: Number });
  const right = await post(s.base, '/v1/sessions', { device: 'phone', username: victim.username, password: victim.password });
  t.equal(right.status, 429, 'the right password is refused while locked out');
  t.equal((await post(s.base, '/v1/sessions', { device: 'phone', username: other.username, password: other.password })).status, 201, 'another username logs in');
  // Right logins do not count as failures.
  for (let i = 0; i < 5; i++) t.equal((await post(s.base, '/v1/sessions', { device: 'phone', username: other.username, password: other.password })).status, 201);
  const metrics = await (await fetch(`${s.base}/metrics`)).text();
  t.match(metrics, /parley_rate_limited_total\{limit="login_username"\} 2/);
});

t.test('registrations are limited per IP; TRUST_PROXY reads the IP from X-Forwarded-For', async (t) => {
  const s = await startTestServer(t, on({ rlRegisterPerIp: [{ limit: 3, windowMs: 600_000 }] }));
  const reg = (n: string, headers?: Record<string, string>) => post(s.base, '/v1/users', { username: `reg${process.pid % 1000}_${n}`, password: 'correct horse battery' }, headers);
  for (let i = 0; i < 3; i++) t.equal((await reg(`a${i}`)).status, 201);
  const r = await reg('a3');
  t.equal(r.status, 429);
  t.ok(Number(r.headers.get('retry-after')) >= 1);
  t.match(await r.json(), { error: 'rate_limited', retry: Number });
  t.equal((await reg('a4', { 'X-Forwarded-For': '203.0.113.9' })).status, 429, 'without TRUST_PROXY the header is ignored');

  const p = await startTestServer(t, on({ rlRegisterPerIp: [{ limit: 1, windowMs: 600_000 }], trustProxy: true }));
  const regP = (n: string, ip: string) => post(p.base, '/v1/users', { username: `regp${process.pid % 1000}_${n}`, password: 'correct horse battery' }, { 'X-Forwarded-For': `198.51.100.1, ${ip}` });
  t.equal((await regP('b0', '203.0.113.1')).status, 201);
  t.equal((await regP('b1', '203.0.113.1')).status, 429, 'same proxied client');
  t.equal((await regP('b2', '203.0.113.2')).status, 201, 'another proxied client');
});

t.test('a send flood from one socket is limited then closed 4008, while another pair chats normally', async (t) => {
  const s = await startTestServer(t, on({ rlSocketSends: 5, rlStrikes: 5 }));
  const [flooder, target, alice, bob] = await Promise.all([newUser(s, 'fl'), newUser(s, 'tg'), newUser(s, 'al'), newUser(s, 'bo')]);
  const fd = await newDevice(s, flooder);
  const [ad, bd] = await Promise.all([newDevice(s, alice), newDevice(s, bob)]);
  const a = await connect(t, s, ad);
  const b = await connect(t, s, bd);
  const raw = await rawSocket(t, s.wsUrl);
  raw.send({ t: 'hello', token: fd.token, r: 0 });
  await raw.next((f) => f.t === 'synced');
  for (let i = 1; i <= 200; i++) raw.send({ t: 'send', cid: `c${i}`, to: target.user, body: `spam ${i}`, r: i });
  const chat = (async () => {
    const got: string[] = [];
    b.on('msg', (m: any) => got.push(m.body));
    for (let i = 0; i < 5; i++) await a.send({ to: bob.user, body: `hello ${i}` });
    await until(b, () => got.length >= 5);
    return got;
  })();
  const closed = await raw.closed;
  t.equal(closed.code, CloseCode.rateLimited, 'the flooder is closed with 4008');
  const limited = raw.frames.filter((f) => f.t === 'err' && f.code === 'rate_limited');
  t.ok(limited.length >= 5, `${limited.length} rate_limited answers first`);
  t.ok(limited.every((f) => typeof f.retry === 'number' && f.retry > 0), 'each with a retry');
  t.ok(raw.frames.some((f) => f.t === 'kick' && f.code === CloseCode.rateLimited), 'a kick frame says why');
  const oks = raw.frames.filter((f) => f.t === 'ok').length;
  t.ok(oks <= 10, `${oks} answered ok before the close: no more than the burst of 10`);
  t.same((await chat).sort(), [0, 1, 2, 3, 4].map((i) => `hello ${i}`), 'the other pair\'s messages all arrive');
});

t.test('RATE_LIMITS=off: the same tiny limits do nothing', async (t) => {
  const tiny = [{ limit: 1, windowMs: 600_000 }];
  const s = await startTestServer(t, on({ rateLimits: 'off', rlRegisterPerIp: tiny, rlLoginFailuresPerUsername: tiny, rlSocketSends: 1, rlSocketCommands: 1, rlStrikes: 1, rlWsPerIp: 1, rlWsConnectsPerIp: tiny }));
  const users: TestUser[] = [];
  for (let i = 0; i < 5; i++) users.push(await newUser(s, 'off'));
  for (let i = 0; i < 5; i++) t.equal((await post(s.base, '/v1/sessions', { device: 'phone', username: users[0].username, password: 'wrong password!' })).status, 401);
  const d = await newDevice(s, users[0]);
  const c1 = await connect(t, s, d);
  const c2 = await connect(t, s, d);
  const sent = await Promise.all(Array.from({ length: 50 }, (_, i) => c1.send({ to: users[1].user, body: `m${i}` })));
  t.equal(sent.length, 50, 'every send answered ok');
  t.ok(c2, 'a second socket from the address');
});

t.test('WebSocket connections per IP: concurrent and rate', async (t) => {
  const upgrade = (url: string) => new Promise<{ ws?: WebSocket; status?: number; retryAfter?: string }>((resolve) => {
    const ws = new WebSocket(url);
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (req, res) => {
      resolve({ status: res.statusCode, retryAfter: res.headers['retry-after'] as string });
      // With this listener ws leaves the refused request to us: its open socket would keep the
      // process alive until the server's idle timeout, long after the test.
      req.destroy();
    });
    ws.once('error', () => undefined);
  });
  const s = await startTestServer(t, on({ rlWsPerIp: 2 }));
  const one = await upgrade(s.wsUrl);
  const two = await upgrade(s.wsUrl);
  t.ok(one.ws && two.ws, 'two open');
  const three = await upgrade(s.wsUrl);
  t.equal(three.status, 429, 'a third concurrent socket is refused');
  t.ok(Number(three.retryAfter) >= 1);
  const gone = new Promise((r) => one.ws!.once('close', r));
  one.ws!.close();
  await gone;
  let again = await upgrade(s.wsUrl);
  // The server may not have seen the close yet: its close callback runs when the TCP close arrives.
  for (let i = 0; !again.ws && i < 50; i++) again = await upgrade(s.wsUrl);
  t.ok(again.ws, 'room again once one closed');
  two.ws!.close();
  again.ws?.close();

  const r = await startTestServer(t, on({ rlWsConnectsPerIp: [{ limit: 3, windowMs: 600_000 }] }));
  const opened = [];
  for (let i = 0; i < 3; i++) opened.push(await upgrade(r.wsUrl));
  t.ok(opened.every((o) => o.ws), 'three upgrades');
  t.equal((await upgrade(r.wsUrl)).status, 429, 'the fourth within the window is refused');
  for (const o of opened) o.ws!.close();
});
