// The server API end to end (docs/protocol.md "Server API"): API keys, scopes and revocation;
// every route's happy path and main errors; Idempotency-Key (one message, one group); bots;
// disconnect, ban and unban; deletion of a user and all their data; export; presence; the per-key
// rate limit. A real server, real SDK sockets, a real LMDB directory.
import t from 'tap';
import WebSocket from 'ws';
import { login, ParleyClient } from '../client/index.js';
import { loadConfig, type Config } from '../src/config.js';
import { AppUsers } from '../src/auth/app-users.js';
import { openStorage } from '../storage/env.js';
import { decodeFrame, encodeFrame } from '../protocol/wire.js';
import { collect, connect, newDevice, newUser, startTestServer, until } from './helpers/server.js';
import { sharedServer } from './helpers/shared-server.js';

const ADMIN_KEY = 'admin_key_for_the_server_api_tests_0123';
const USERS_KEY = 'users_key_for_the_server_api_tests_0123';

interface Answer { status: number; body: any; headers: Headers }

/** A caller of the server API with one bearer secret. */
function caller(s: { base: string }, key: string) {
  return async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> => {
    const init: RequestInit = { method, headers: { authorization: `Bearer ${key}`, ...headers } };
    if (body !== undefined) {
      (init.headers as Record<string, string>)['content-type'] = 'application/json';
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
    }
    const res = await fetch(`${s.base}${path}`, init);
    const text = await res.text();
    return { status: res.status, body: text === '' ? undefined : JSON.parse(text), headers: res.headers };
  };
}

const API_KEYS: Config['apiKeys'] = [{ key: ADMIN_KEY, scopes: ['admin'] }, { key: USERS_KEY, scopes: ['users'] }];

async function start(t: Parameters<typeof startTestServer>[0], overrides: Parameters<typeof startTestServer>[1] = {}) {
  const s = await startTestServer(t, { apiKeys: API_KEYS, ...overrides });
  return { s, admin: caller(s, ADMIN_KEY) };
}

/**
 * The server of the subtests that need no other config, no restart and no global state: each uses
 * app ids, users, threads and Idempotency-Keys of its own.
 */
const sharedStart = sharedServer(t, { apiKeys: API_KEYS });
async function shared() {
  const s = await sharedStart();
  return { s, admin: caller(s, ADMIN_KEY) };
}

/** hello with a token on a raw socket: the err codes it got and how it closed (0: welcomed). */
function hello(wsUrl: string, token: string): Promise<{ close: number; errors: string[] }> {
  return new Promise((resolve, reject) => {
    const errors: string[] = [];
    const ws = new WebSocket(wsUrl);
    ws.on('open', () => ws.send(encodeFrame({ t: 'hello', token, r: 1 })));
    ws.on('message', (data) => {
      const f = decodeFrame(data as Buffer) as { t: string; code?: string };
      if (f.t === 'err') errors.push(f.code!);
      if (f.t === 'welcome') {
        ws.close();
        resolve({ close: 0, errors });
      }
    });
    ws.on('close', (close) => resolve({ close, errors }));
    ws.on('error', reject);
  });
}

/** Waits for a `msg` with this body on the client, then returns every msg it got. */
async function msgsUntil(c: ParleyClient, got: any[], body: string): Promise<any[]> {
  await until(c, () => got.some((m) => m.body === body));
  return got;
}

/** Polls `get` until `ok` holds (a condition the server reaches on its own), at most 10 s. */
async function eventually<T>(get: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  const end = Date.now() + 10_000;
  for (;;) {
    const v = await get();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
}

t.test('API_KEYS: entries are key:scope,scope with long keys and known scopes; never printed', async (t) => {
  const ok = loadConfig([], { API_KEYS: `${ADMIN_KEY}:admin  ${USERS_KEY}:users,messages` });
  t.same(ok.apiKeys, [{ key: ADMIN_KEY, scopes: ['admin'] }, { key: USERS_KEY, scopes: ['users', 'messages'] }]);
  t.throws(() => loadConfig([], { API_KEYS: 'short:admin' }), /API_KEYS.*24 to 512/);
  t.throws(() => loadConfig([], { API_KEYS: `${ADMIN_KEY}:root` }), /unknown scope "root"/);
  t.throws(() => loadConfig([], { API_KEYS: ADMIN_KEY }), /key:scope/);
  t.throws(() => loadConfig([], { API_KEYS: `${ADMIN_KEY}:admin ${ADMIN_KEY}:users` }), /repeats a key/);
  const { printableConfig } = await import('../src/config.js');
  t.equal(printableConfig(ok).apiKeys, '***');
  t.same(printableConfig(loadConfig([], {})).apiKeys, [], 'none set: shown as none');
});

t.test('keys: scopes, revocation at once, ADMIN_TOKEN, and API keys and session tokens kept apart', async (t) => {
  const ADMIN_TOKEN = 'admin_token_for_the_server_api_tests_0123456789';
  const { s, admin } = await start(t, { adminToken: ADMIN_TOKEN });

  const made = await admin('POST', '/v1/server/keys', { name: 'sender', scopes: ['messages'] });
  t.equal(made.status, 201);
  t.match(made.body, { id: /^key_/, key: /^pk_[A-Za-z0-9_-]{40,}$/, name: 'sender', scopes: ['messages'] });
  const messagesKey = caller(s, made.body.key);

  const refused = await messagesKey('POST', '/v1/server/users', { id: 'app-ann' });
  t.equal(refused.status, 403, 'a messages key cannot create users');
  t.match(refused.body, { error: 'forbidden', message: /users scope/ });
  t.equal((await caller(s, USERS_KEY)('POST', '/v1/server/users', { id: 'app-ann' })).status, 201, 'a users key can');
  t.equal((await caller(s, USERS_KEY)('GET', '/v1/server/keys')).status, 403, 'only admin manages keys');
  t.equal((await admin('POST', '/v1/server/users', { id: 'app-bob' })).status, 201, 'admin may do everything');
  t.equal((await messagesKey('POST', '/v1/server/messages', { as: 'app-ann', to: 'app-bob', body: 'hi' })).status, 201, 'the messages key sends');

  const listed = await caller(s, ADMIN_TOKEN)('GET', '/v1/server/keys');
  t.equal(listed.status, 200, 'ADMIN_TOKEN manages keys');
  t.match(listed.body.keys, [{ source: 'config', scopes: ['admin'] }, { source: 'config', scopes: ['users'] }, { id: made.body.id, name: 'sender', source: 'api' }]);
  t.notOk(JSON.stringify(listed.body).includes(made.body.key), 'the secret is never listed');

  t.equal((await admin('DELETE', `/v1/server/keys/${made.body.id}`)).status, 204);
  const revoked = await messagesKey('POST', '/v1/server/messages', { as: 'app-ann', to: 'app-bob', body: 'again' });
  t.equal(revoked.status, 401, 'a revoked key is refused at once');
  t.equal(revoked.body.error, 'unauthorized');
  t.equal((await admin('DELETE', `/v1/server/keys/${made.body.id}`)).status, 404, 'already gone');
  const configured = listed.body.keys[0].id;
  t.equal((await admin('DELETE', `/v1/server/keys/${configured}`)).status, 409, 'an API_KEYS key is removed in API_KEYS');
  t.equal((await caller(s, 'pk_not_a_key_at_all_0123456789abcdef')('GET', '/v1/server/keys')).status, 401);
  t.equal((await fetch(`${s.base}/v1/server/keys`)).status, 401, 'no key at all');

  // A user's session token is no API key, and an API key is no session.
  const annU = await newUser(s, 'ann');
  const ann = await newDevice(s, annU);
  t.equal((await caller(s, ann.token)('GET', `/v1/server/users/${annU.user}`)).status, 401, 'a session token is refused on /v1/server');
  t.equal((await fetch(`${s.base}/v1/users/me`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).status, 401, 'an API key is refused on user routes');
  t.equal((await hello(s.wsUrl, ADMIN_KEY)).close, 4001, 'and cannot open a socket');

  // Keys made over HTTP survive a restart (stored hashed).
  const kept = await admin('POST', '/v1/server/keys', { name: 'kept', scopes: ['users'] });
  await s.server.stop();
  const storage = openStorage(s.dataDir, 'relaxed');
  const stored = storage.db.apiKeys.get(kept.body.id);
  t.match(stored, { id: kept.body.id, name: 'kept', scopes: ['users'], hash: /^[0-9a-f]{64}$/ });
  t.notOk(JSON.stringify(stored).includes(kept.body.key), 'only the hash is stored');
  await storage.close();
  const again = await startTestServer(t, { dataDir: s.dataDir });
  t.equal((await caller(again, kept.body.key)('POST', '/v1/server/users', { id: 'app-cat' })).status, 201, 'the key works after a restart');

  t.equal((await caller(again, ADMIN_KEY)('POST', '/v1/server/keys', { name: 'x', scopes: ['root'] })).status, 401, 'API_KEYS is per start: this server has none');
});

t.test('users: create-or-update by app id, read, rename, bad bodies and unknown users', async (t) => {
  const { s, admin } = await shared();
  const created = await admin('POST', '/v1/server/users', { id: 'ext-42', name: 'Ann' });
  t.equal(created.status, 201);
  t.match(created.body, { user: /^u/, id: 'ext-42', name: 'Ann', bot: false, created: true });
  const again = await admin('POST', '/v1/server/users', { id: 'ext-42', name: 'Ann B', bot: true });
  t.equal(again.status, 200, 'an existing app id is updated');
  t.match(again.body, { user: created.body.user, name: 'Ann B', bot: true, created: false });

  t.match((await admin('GET', '/v1/server/users/ext-42')).body, { user: created.body.user, id: 'ext-42', name: 'Ann B', bot: true }, 'named by the app id');
  t.match((await admin('GET', `/v1/server/users/${created.body.user}`)).body, { id: 'ext-42' }, 'or by the Parley id');
  t.match((await admin('GET', `/v1/server/users/${encodeURIComponent('a@b.example')}`)).status, 404);
  t.equal((await admin('POST', '/v1/server/users', { id: 'a@b.example' })).status, 201, 'app ids may be e-mail addresses');
  t.match((await admin('GET', `/v1/server/users/${encodeURIComponent('a@b.example')}`)).body, { id: 'a@b.example' });

  const patched = await admin('PATCH', '/v1/server/users/ext-42', { name: 'Ann C', bot: false });
  t.match(patched, { status: 200, body: { name: 'Ann C', bot: false } });
  const pw = await newUser(s, 'pw');
  t.match(await admin('PATCH', `/v1/server/users/${pw.user}`, { name: 'Renamed' }), { status: 200, body: { user: pw.user, id: null, name: 'Renamed', username: pw.username } }, 'a password account is renamed');
  t.equal((await admin('PATCH', `/v1/server/users/${pw.user}`, { bot: true })).status, 400, 'but not made a bot');

  t.match(await admin('GET', '/v1/server/users/nobody-here'), { status: 404, body: { error: 'not_found' } });
  t.equal((await admin('PATCH', '/v1/server/users/nobody-here', { name: 'X' })).status, 404);
  t.equal((await admin('DELETE', '/v1/server/users/nobody-here')).status, 404);
  t.equal((await admin('POST', '/v1/server/users/nobody-here/ban')).status, 404);
  t.equal((await admin('GET', '/v1/server/users/nobody-here/presence')).status, 404);
  t.match(await admin('POST', '/v1/server/users', { name: 'no id' }), { status: 400, body: { error: 'bad_frame', message: /id/ } });
  t.equal((await admin('POST', '/v1/server/users', { id: 'has space' })).status, 400);
  t.equal((await admin('POST', '/v1/server/users', { id: 'x', name: '' })).status, 400);
  t.equal((await admin('POST', '/v1/server/users', 'not json')).status, 400);
  t.equal((await admin('POST', '/v1/server/users', { id: 'x', pad: 'x'.repeat(70 * 1024) })).status, 413, 'MAX_BODY_BYTES holds');
});

t.test('messages: as a user or a bot, to a user or into a thread; bot: true on the socket and in history', async (t) => {
  const { s, admin } = await shared();
  const bobU = await newUser(s, 'bob');
  const bob = await connect(t, s, await newDevice(s, bobU));
  const got = collect(bob, 'msg');
  await admin('POST', '/v1/server/users', { id: 'shop-ann', name: 'Ann' });
  await admin('POST', '/v1/server/users', { id: 'helper-bot', name: 'Helper', bot: true });

  const sent = await admin('POST', '/v1/server/messages', { as: 'shop-ann', to: bobU.user, body: 'hello from the app' });
  t.equal(sent.status, 201);
  t.match(sent.body, { thread: /^d:/, seq: 1, id: String, ts: Number });
  const fromBot = await admin('POST', '/v1/server/messages', { as: 'helper-bot', to: bobU.user, body: 'beep' });
  await msgsUntil(bob, got, 'beep');
  const human = got.find((m) => m.body === 'hello from the app');
  const bot = got.find((m) => m.body === 'beep');
  t.match(human, { thread: sent.body.thread, seq: 1, from: (await admin('GET', '/v1/server/users/shop-ann')).body.user, device: 'server-api' });
  t.notOk('bot' in human, 'a person\'s message has no bot field');
  t.equal(bot.bot, true, 'a bot\'s message carries bot: true in msg');

  // bob answers into the thread; the app answers there as ann.
  await bob.send({ thread: sent.body.thread, body: 'hi ann' });
  const into = await admin('POST', '/v1/server/messages', { as: 'shop-ann', thread: sent.body.thread, body: 'into the thread' });
  t.match(into.body, { thread: sent.body.thread, seq: 3 });
  await msgsUntil(bob, got, 'into the thread');

  const history = await bob.history({ thread: fromBot.body.thread });
  t.equal((history.messages as any[]).find((m) => m.body === 'beep')?.bot, true, 'bot: true in the SDK\'s history');
  const server = await admin('GET', `/v1/server/threads/${fromBot.body.thread}/history`);
  t.match(server, { status: 200, body: { messages: [{ body: 'beep', bot: true, thread: fromBot.body.thread }], more: false } }, 'and in the server API\'s');

  // Errors.
  t.match(await admin('POST', '/v1/server/messages', { as: 'nobody', to: bobU.user, body: 'x' }), { status: 404, body: { error: 'not_found', message: /nobody/ } }, 'unknown sender');
  t.equal((await admin('POST', '/v1/server/messages', { as: 'shop-ann', to: 'nobody', body: 'x' })).status, 404, 'unknown receiver');
  t.match(await admin('POST', '/v1/server/messages', { as: 'shop-ann', to: bobU.user, thread: sent.body.thread, body: 'x' }), { status: 400, body: { message: /exactly one of thread or to/ } });
  t.equal((await admin('POST', '/v1/server/messages', { as: 'shop-ann', to: bobU.user })).status, 400, 'no body nor media');
  t.equal((await admin('POST', '/v1/server/messages', { as: 'shop-ann', to: bobU.user, body: 'é'.repeat(9000) })).status, 413, 'a body over 16 KiB');
  t.match(await admin('POST', '/v1/server/messages', { as: 'helper-bot', thread: sent.body.thread, body: 'x' }), { status: 403, body: { error: 'forbidden', message: /not a member/ } }, 'not a member of the thread');
  t.equal((await admin('POST', '/v1/server/messages', { as: 'shop-ann', thread: 'g:nosuchgroup', body: 'x' })).status, 404, 'no such thread');
  t.equal((await admin('POST', '/v1/server/messages', { as: 'shop-ann', to: bobU.user, media: 'm-not-uploaded' })).status, 404, 'a media not uploaded by the sender');
});

t.test('Idempotency-Key: the same send twice is one message with the same seq; another body is a conflict', async (t) => {
  const { s, admin } = await shared();
  const bobU = await newUser(s, 'bob');
  const bob = await connect(t, s, await newDevice(s, bobU));
  const got = collect(bob, 'msg');
  await admin('POST', '/v1/server/users', { id: 'idem-ann' });
  const body = { as: 'idem-ann', to: bobU.user, body: 'exactly once' };

  const first = await admin('POST', '/v1/server/messages', body, { 'idempotency-key': 'order-1001' });
  const second = await admin('POST', '/v1/server/messages', body, { 'idempotency-key': 'order-1001' });
  t.equal(first.status, 201);
  t.same(second.body, first.body, 'the same answer: thread, seq, id, ts');
  t.equal(second.headers.get('idempotent-replayed'), 'true');
  t.equal(first.headers.get('idempotent-replayed'), null);
  // Two at once: still one.
  const [c1, c2] = await Promise.all([0, 1].map(() => admin('POST', '/v1/server/messages', { ...body, body: 'racing' }, { 'idempotency-key': 'order-1002' })));
  t.same(c1.body, c2.body, 'concurrent repeats share one send');

  t.match(await admin('POST', '/v1/server/messages', { ...body, body: 'changed' }, { 'idempotency-key': 'order-1001' }), { status: 409, body: { error: 'conflict' } }, 'the key with another body');
  t.equal((await admin('POST', '/v1/server/messages', body, { 'idempotency-key': 'bad key with spaces' })).status, 400);
  // Keys are per API key: another key's same Idempotency-Key is another request.
  const other = await admin('POST', '/v1/server/keys', { name: 'other', scopes: ['messages'] });
  const third = await caller(s, other.body.key)('POST', '/v1/server/messages', body, { 'idempotency-key': 'order-1001' });
  t.not(third.body.seq, first.body.seq, 'another API key: another message');

  await admin('POST', '/v1/server/messages', { ...body, body: 'marker' });
  await msgsUntil(bob, got, 'marker');
  t.equal(got.filter((m) => m.body === 'exactly once').length, 2, 'one per API key, not per call');
  t.equal(got.filter((m) => m.body === 'racing').length, 1, 'the receiver saw the raced message once');
  t.same(got.filter((m) => m.body === 'exactly once').map((m) => m.seq), [first.body.seq, third.body.seq]);
});

t.test('Idempotency-Key across a crash: with the stored answer lost, a repeat still finds the one message and group', async (t) => {
  const { s, admin } = await start(t);
  await admin('POST', '/v1/server/users', { id: 'ann' });
  await admin('POST', '/v1/server/users', { id: 'bob' });
  const send = { as: 'ann', to: 'bob', body: 'once, even after a crash' };
  const group = { as: 'ann', title: 'Crash club', members: ['bob'] };
  const first = await admin('POST', '/v1/server/messages', send, { 'idempotency-key': 'crash-1' });
  const made = await admin('POST', '/v1/server/groups', group, { 'idempotency-key': 'crash-2' });
  await s.server.stop();
  // The window a crash can leave: the message and group committed, the stored answers not.
  const storage = openStorage(s.dataDir, 'relaxed');
  await storage.db.idempotency.clearAsync();
  await storage.close();
  const again = await startTestServer(t, { dataDir: s.dataDir, apiKeys: [{ key: ADMIN_KEY, scopes: ['admin'] }] });
  const admin2 = caller(again, ADMIN_KEY);
  const repeat = await admin2('POST', '/v1/server/messages', send, { 'idempotency-key': 'crash-1' });
  t.same(repeat.body, first.body, 'the thread\'s cid dedupe answers the first send');
  t.same((await admin2('POST', '/v1/server/groups', group, { 'idempotency-key': 'crash-2' })).body, made.body, 'the derived group id answers the first group');
  const history = await admin2('GET', `/v1/server/threads/${first.body.thread}/history`);
  t.equal(history.body.messages.length, 1, 'one message in the thread');
});

t.test('groups: created once per Idempotency-Key; members added and removed; history; errors', async (t) => {
  const { s, admin } = await shared();
  const bobU = await newUser(s, 'bob');
  const bob = await connect(t, s, await newDevice(s, bobU));
  const events = collect(bob, 'event');
  for (const id of ['ann', 'cat', 'dan']) await admin('POST', '/v1/server/users', { id });
  const ids = Object.fromEntries(await Promise.all(['ann', 'cat', 'dan'].map(async (id) => [id, (await admin('GET', `/v1/server/users/${id}`)).body.user])));

  const make = { as: 'ann', title: 'Team', members: [bobU.user, 'cat'] };
  const g1 = await admin('POST', '/v1/server/groups', make, { 'idempotency-key': 'team-1' });
  const g2 = await admin('POST', '/v1/server/groups', make, { 'idempotency-key': 'team-1' });
  t.equal(g1.status, 201);
  t.match(g1.body, { thread: /^g:/ });
  t.same(g2.body, g1.body, 'the repeat answers the same group');
  const { thread } = g1.body;

  const added = await admin('POST', `/v1/server/groups/${thread}/members`, { add: ['dan'] });
  t.match(added, { status: 200, body: { thread, admins: [ids.ann] } }, 'as the first admin when no as');
  t.same([...added.body.members].sort(), [ids.ann, bobU.user, ids.cat, ids.dan].sort());
  const removed = await admin('POST', `/v1/server/groups/${thread}/members`, { as: 'ann', remove: ['cat'] });
  t.same([...removed.body.members].sort(), [ids.ann, bobU.user, ids.dan].sort());
  await admin('POST', '/v1/server/messages', { as: 'dan', thread, body: 'dan writes' });
  await until(bob, () => events.some((e) => e.t === 'msg' && e.body === 'dan writes'));
  t.equal(events.filter((e) => e.t === 'thread' && e.thread === thread && e.event === 'created').length, 1, 'one group was created');
  t.ok(events.some((e) => e.t === 'thread' && e.event === 'added' && e.users.includes(ids.dan)), 'bob saw dan added');
  t.ok(events.some((e) => e.t === 'thread' && e.event === 'removed' && e.users.includes(ids.cat)), 'and cat removed');

  t.match(await admin('POST', `/v1/server/groups/${thread}/members`, { as: 'dan', add: ['cat'] }), { status: 403, body: { message: /admins/ } }, 'a member who is no admin');
  t.equal((await admin('POST', '/v1/server/groups/g:nosuchgroup/members', { add: ['cat'] })).status, 404);
  t.equal((await admin('POST', `/v1/server/groups/${thread}/members`, { as: 'ann' })).status, 400, 'neither add nor remove');
  t.equal((await admin('POST', `/v1/server/groups/${thread}/members`, { add: ['nobody'] })).status, 404);
  t.equal((await admin('POST', '/v1/server/groups', { as: 'ann', title: 'X', members: ['nobody'] })).status, 404);
  t.equal((await admin('POST', '/v1/server/groups', { as: 'ann', members: [] })).status, 400, 'no title');

  // History: paged, as a member sees it, errors.
  for (let i = 1; i <= 3; i++) await admin('POST', '/v1/server/messages', { as: 'ann', thread, body: `m${i}` });
  const page = await admin('GET', `/v1/server/threads/${thread}/history?limit=2`);
  t.same(page.body.messages.map((m: any) => m.body), ['m3', 'm2'], 'newest first');
  t.equal(page.body.more, true);
  t.notOk('cid' in page.body.messages[0], 'cids stay the sender\'s');
  const older = await admin('GET', `/v1/server/threads/${thread}/history?before=${page.body.messages[1].seq}`);
  t.same(older.body.messages.map((m: any) => m.body), ['m1', 'dan writes']);
  t.equal((await admin('GET', `/v1/server/threads/${thread}/history?as=dan`)).status, 200);
  t.match(await admin('GET', `/v1/server/threads/${thread}/history?as=cat`), { status: 403, body: { message: /not a member/ } });
  t.equal((await admin('GET', '/v1/server/threads/g:nosuchgroup/history')).status, 404);
  t.equal((await admin('GET', `/v1/server/threads/${thread}/history?limit=500`)).status, 400);
  t.equal((await caller(s, USERS_KEY)('GET', `/v1/server/threads/${thread}/history`)).status, 403, 'history needs the messages scope');
});

t.test('channels: create and post (once per Idempotency-Key); errors', async (t) => {
  const { s, admin } = await shared();
  await admin('POST', '/v1/server/users', { id: 'news-desk' });
  await admin('POST', '/v1/server/users', { id: 'reader' });
  const made = await admin('POST', '/v1/server/channels', { as: 'news-desk', name: 'daily_news', title: 'Daily news' });
  t.match(made, { status: 201, body: { channel: /^c:/ } });
  const { channel } = made.body;
  const p1 = await admin('POST', `/v1/server/channels/${channel}/posts`, { as: 'news-desk', body: 'first post' }, { 'idempotency-key': 'p1' });
  const p2 = await admin('POST', `/v1/server/channels/${channel}/posts`, { as: 'news-desk', body: 'first post' }, { 'idempotency-key': 'p1' });
  t.match(p1, { status: 201, body: { channel, seq: 1 } });
  t.same(p2.body, p1.body);
  const posts = await (await fetch(`${s.base}/v1/channels/${channel}/messages`)).json();
  t.same(posts.messages.map((m: any) => m.body), ['first post'], 'posted once');

  t.match(await admin('POST', `/v1/server/channels/${channel}/posts`, { as: 'reader', body: 'me too' }), { status: 403 }, 'only staff post in a broadcast channel');
  t.match(await admin('POST', '/v1/server/channels', { as: 'reader', name: 'daily_news', title: 'Mine' }), { status: 409 }, 'the name is taken');
  t.equal((await admin('POST', '/v1/server/channels/c:nosuchchannel/posts', { as: 'news-desk', body: 'x' })).status, 404);
  t.equal((await admin('POST', '/v1/server/channels', { as: 'news-desk', name: 'Bad Name', title: 'x' })).status, 400);
  t.equal((await caller(s, USERS_KEY)('POST', '/v1/server/channels', { as: 'news-desk', name: 'other', title: 'x' })).status, 403, 'needs the channels scope');
});

t.test('disconnect closes the user\'s sockets (4002); presence; export', async (t) => {
  const { s, admin } = await shared();
  const annU = await newUser(s, 'ann');
  const bobU = await newUser(s, 'bob');
  const phone = await connect(t, s, await newDevice(s, annU, 'phone'));
  const laptop = await connect(t, s, await newDevice(s, annU, 'laptop'));
  t.match(await admin('GET', `/v1/server/users/${annU.user}/presence`), { status: 200, body: { user: annU.user, online: true, sockets: 2 } });
  t.match((await admin('GET', `/v1/server/users/${bobU.user}/presence`)).body, { online: false, last: 0, sockets: 0 }, 'never seen');

  const closes = [phone.next('close'), laptop.next('close')];
  t.match(await admin('POST', `/v1/server/users/${annU.user}/disconnect`), { status: 200, body: { sockets: 2 } });
  for (const closed of await Promise.all(closes)) t.match(closed, { code: 4002 }, 'closed with 4002');
  t.equal((await hello(s.wsUrl, (await newDevice(s, annU)).token)).close, 0, 'reconnecting is allowed');

  await admin('POST', '/v1/server/users', { id: 'ext-ann' });
  await admin('POST', '/v1/server/messages', { as: 'ext-ann', to: bobU.user, body: 'exported words' });
  // The sender's inbox row is written by their user actor after the send's answer (fan-out): wait for it.
  const out = await eventually(() => admin('GET', '/v1/server/users/ext-ann/export'), (a) => a.body.threads.length > 0);
  t.equal(out.status, 200);
  t.match(out.body.profile, { name: 'ext-ann', id: 'ext-ann' }, 'the profile shows the app id');
  t.same(out.body.messages.map((m: any) => m.body), ['exported words'], 'the user\'s messages');
  t.equal(out.body.threads.length, 1);
  t.equal((await admin('GET', '/v1/server/users/nobody/export')).status, 404);
});

t.test('ban: sockets close with 4004, hello and login are refused with forbidden (also after a restart); unban allows again', async (t) => {
  const { s, admin } = await start(t);
  const annU = await newUser(s, 'ann');
  const annDevice = await newDevice(s, annU);
  // A client that would reconnect after any other close: a ban is final for it.
  const ann = await connect(t, s, annDevice, { reconnect: { minMs: 10, maxMs: 10 } });
  const closed = ann.next('close');
  t.equal((await admin('POST', `/v1/server/users/${annU.user}/ban`, { reason: 'spam' })).status, 204);
  t.match(await closed, { code: 4004, reason: 'banned: spam', willReconnect: false });
  t.equal(ann.state, 'closed', 'the SDK does not reconnect into a ban');
  t.same(await hello(s.wsUrl, annDevice.token), { close: 4004, errors: ['forbidden'] }, 'hello is refused');
  await t.rejects(login(s.base, { username: annU.username, password: annU.password, device: 'x' }), { code: 'forbidden', status: 403 }, 'login is refused');
  t.equal((await admin('POST', `/v1/server/users/${annU.user}/ban`, { reason: 'x'.repeat(101) })).status, 400, 'a reason fits in a close frame');

  // Durable: a restart keeps it.
  await s.server.stop();
  const again = await startTestServer(t, { dataDir: s.dataDir, apiKeys: [{ key: ADMIN_KEY, scopes: ['admin'] }] });
  const admin2 = caller(again, ADMIN_KEY);
  t.same(await hello(again.wsUrl, annDevice.token), { close: 4004, errors: ['forbidden'] }, 'still banned after a restart');

  t.equal((await admin2('DELETE', `/v1/server/users/${annU.user}/ban`)).status, 204);
  t.equal((await hello(again.wsUrl, annDevice.token)).close, 0, 'unbanned: hello is welcomed');
  const fresh = await login(again.base, { username: annU.username, password: annU.password, device: 'y' });
  t.ok(fresh.token, 'login works again');
  t.equal((await admin2('POST', `/v1/server/users/${annU.user}/ban`)).status, 204, 'a ban without a body');
  t.same(await hello(again.wsUrl, fresh.token), { close: 4004, errors: ['forbidden'] });
});

t.test('delete: the user and all their data go from every table and log; their login and app id are refused', async (t) => {
  const { s, admin } = await start(t);
  const bobU = await newUser(s, 'bob');
  const bob = await connect(t, s, await newDevice(s, bobU));
  const annU = await newUser(s, 'ann');
  const annDevice = await newDevice(s, annU);
  const ann = await connect(t, s, annDevice);
  await ann.send({ to: bobU.user, body: 'from ann' });
  await ann.request('contacts.add', { user: bobU.user });
  const app = (await admin('POST', '/v1/server/users', { id: 'ext-zed' })).body.user;
  const { thread: group } = (await admin('POST', '/v1/server/groups', { as: 'ext-zed', title: 'G', members: [bobU.user, annU.user] })).body;
  await admin('POST', '/v1/server/messages', { as: 'ext-zed', to: bobU.user, body: 'from zed' });
  await admin('POST', `/v1/server/users/${annU.user}/ban`);

  const annClosed = ann.next('close');
  // Each deletion's last turn (small accounts: one turn) tells the group, so bob seeing both leave means both finished.
  const events = collect(bob, 'event');
  const leftSeen = until(bob, () => [annU.user, app].every((u) => events.some((e) => e.t === 'thread' && e.thread === group && e.event === 'left' && e.by === u)));
  t.equal((await admin('DELETE', `/v1/server/users/${annU.user}`, undefined, { 'idempotency-key': 'del-ann' })).status, 204);
  t.equal((await admin('DELETE', `/v1/server/users/${annU.user}`, undefined, { 'idempotency-key': 'del-ann' })).status, 204, 'a repeat answers the same');
  t.equal((await admin('DELETE', '/v1/server/users/ext-zed')).status, 204);
  t.equal((await admin('DELETE', '/v1/server/users/ext-zed')).status, 404, 'already deleted');
  await annClosed;
  await leftSeen;
  await t.rejects(login(s.base, { username: annU.username, password: annU.password, device: 'x' }), { code: 'unauthorized', status: 401 }, 'the password login is refused');
  t.equal((await hello(s.wsUrl, annDevice.token)).close, 4001, 'their token is gone');
  t.equal((await admin('POST', '/v1/server/messages', { as: 'ext-zed', to: bobU.user, body: 'x' })).status, 404, 'the app id names nobody');
  t.equal((await admin('GET', `/v1/server/users/${annU.user}/export`)).status, 404);

  await s.server.stop();
  const storage = openStorage(s.dataDir, 'relaxed');
  t.teardown(() => storage.close());
  const { db } = storage;
  for (const user of [annU.user, app]) {
    const prefix = { start: [user], end: [user, '\uffff'] };
    const left: Record<string, number> = {};
    for (const [name, table] of Object.entries({ devices: db.devices, cursors: db.cursors, userLog: db.userLog, inbox: db.inbox, contacts: db.contacts, blocks: db.blocks, pushRegistrations: db.pushRegistrations, pushJobs: db.pushJobs })) {
      left[name] = [...(table as any).getKeys(prefix)].length;
    }
    t.same(left, { devices: 0, cursors: 0, userLog: 0, inbox: 0, contacts: 0, blocks: 0, pushRegistrations: 0, pushJobs: 0 }, `${user}: per-user tables are empty`);
    t.equal([...db.sessions.getRange()].filter(({ value }) => value.user === user).length, 0, 'no session');
    for (const single of [db.credentials, db.privacy, db.presence, db.deletions, db.bans]) t.equal((single as any).get(user), undefined);
    t.match(db.users.get(user), { user, username: '', name: 'Deleted account', deleted: Number }, 'a tombstone keeps the id taken');
  }
  t.match(db.appUsers.get('ext-zed'), { user: app, deleted: Number }, 'the app id is tombstoned');
  await t.rejects(new AppUsers(storage).signIn('ext-zed'), { code: 'unauthorized' }, 'a still-valid app token cannot bring it back');
});

t.test('the per-key rate limit answers 429 with retry; other keys keep their own budget', async (t) => {
  const { s, admin } = await start(t, { rateLimits: 'on', rlServerApi: [{ limit: 3, windowMs: 60_000 }] });
  const users = caller(s, USERS_KEY);
  for (let i = 0; i < 3; i++) t.equal((await admin('GET', '/v1/server/keys')).status, 200);
  const over = await admin('GET', '/v1/server/keys');
  t.equal(over.status, 429);
  t.match(over.body, { error: 'rate_limited', retry: Number });
  t.ok(Number(over.headers.get('retry-after')) >= 1, 'Retry-After');
  t.equal((await users('POST', '/v1/server/users', { id: 'still-fine' })).status, 201, 'another key is not limited');
});
