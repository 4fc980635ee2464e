// Push notifications for offline devices (docs/protocol.md "Push") through the webhook provider to
// a real local endpoint: offline devices are notified and online ones not, muted threads not,
// coalescing, retry then success, a dead registration removed, logout removes it, bad bodies 400,
// and a notification committed before a kill -9 is delivered after the restart.
import t, { type Test } from 'tap';
import { connect, newDevice, newUser, startTestServer, tempDataDir, type TestDevice, type TestServer } from './helpers/server.js';
import { startChildServer, freePort } from './helpers/child-server.js';
import { startWebhook, type WebhookCall, type WebhookEndpoint } from './helpers/webhook-endpoint.js';
import { closeFetchPoolAtEnd } from './helpers/shared-server.js';
import { login, logout, register, registerPush as sdkRegisterPush } from '../client/index.js';
import { metric } from './helpers/metrics.js';

const SECRET = 'webhook-secret-for-tests-0123456789';

/** Nothing waits in the push queue and nothing is being sent: every job made so far is done. */
async function pushIdle(base: string, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while ((await metric(base, 'parley_push_queued')) + (await metric(base, 'parley_push_inflight')) > 0) {
    if (Date.now() > end) throw new Error('push queue did not drain');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Registers through the SDK; answers a status like fetch would (204 on success). */
async function registerPush(base: string, d: TestDevice, token: string) {
  await sdkRegisterPush(base, d.token, { provider: 'webhook', token });
  return { status: 204 };
}

/** A subtest's look at a shared endpoint: only the calls for its own receivers. */
interface HookView {
  readonly calls: WebhookCall[];
  answers: WebhookEndpoint['answers'];
  until: WebhookEndpoint['until'];
}

function viewOf(hook: WebhookEndpoint, receivers: string[]): HookView {
  const mine = (c: WebhookCall) => receivers.includes(c.body?.user);
  return {
    get calls() {
      return hook.calls.filter(mine);
    },
    answers: hook.answers,
    until: (pred, timeoutMs) => hook.until((c) => mine(c) && pred(c), timeoutMs),
  };
}

/**
 * The default-config server and its endpoint, shared by the subtests that need nothing else: each
 * has its own users and sees only their calls. Answers queued on the endpoint are taken in order by
 * whatever call comes next, so a subtest starts only when every job before it is done.
 */
let sharedSetup: Promise<{ s: TestServer; hook: WebhookEndpoint }> | null = null;
closeFetchPoolAtEnd(t);
function shared() {
  return (sharedSetup ??= (async () => {
    const hook = await startWebhook(t, SECRET);
    const s = await startTestServer(t, { pushWebhookUrl: hook.url, pushWebhookSecret: SECRET, pushCoalesceMs: 200 });
    return { s, hook };
  })());
}

/** ann sends; bob receives, on a phone and a tablet. */
async function people(s: TestServer) {
  const annUser = await newUser(s, 'ann');
  const bobUser = await newUser(s, 'bob');
  const ann = await newDevice(s, annUser);
  const bobPhone = await newDevice(s, bobUser, 'phone');
  const bobTablet = await newDevice(s, bobUser, 'tablet');
  return { annUser, bobUser, ann, bobPhone, bobTablet };
}

/** A server of its own, for a subtest with other config. */
async function setup(t: Test, overrides = {}) {
  const hook = await startWebhook(t, SECRET);
  const s = await startTestServer(t, { pushWebhookUrl: hook.url, pushWebhookSecret: SECRET, pushCoalesceMs: 200, ...overrides });
  return { s, hook, ...(await people(s)) };
}

/** The shared server, once every earlier job is done; the endpoint as seen for bob (the receiver). */
async function setupShared() {
  const { s, hook } = await shared();
  await pushIdle(s.base);
  const u = await people(s);
  return { s, ...u, hook: viewOf(hook, [u.bobUser.user]) };
}

t.test('an offline device is notified with a signed payload; an online one is not', async (t) => {
  const { s, hook, ann, bobPhone, bobTablet } = await setupShared();
  t.equal((await registerPush(s.base, bobPhone, 'phone-token')).status, 204);
  t.equal((await registerPush(s.base, bobTablet, 'tablet-token')).status, 204);
  const phone = await connect(t, s, bobPhone); // online: the observer
  const a = await connect(t, s, ann);
  const got = phone.next('msg');
  const sent = await a.send({ to: bobPhone.user, body: 'hello bob' });
  const msg = await got;
  const call = await hook.until((c) => c.body.device === bobTablet.device);
  t.ok(call.signatureOk, 'X-Parley-Signature is the HMAC-SHA256 of the body');
  t.match(call.body, {
    id: `${bobTablet.device}:${msg.u}`, user: bobTablet.user, device: bobTablet.device, token: 'tablet-token',
    u: msg.u, thread: sent.thread, from: ann.user, name: /ann/, unread: 1,
  });
  t.notOk('preview' in call.body, 'no message text leaves the server by default');
  t.equal(call.idempotencyKey, call.body.id, 'the idempotency key is <device>:<u>');
  await pushIdle(s.base);
  t.equal(hook.calls.length, 1, 'the online phone got no notification');
});

t.test('PUSH_PREVIEW=on adds a preview', async (t) => {
  const { s, hook, ann, bobTablet } = await setup(t, { pushPreview: 'on' });
  await registerPush(s.base, bobTablet, 'tablet-token');
  const a = await connect(t, s, ann);
  await a.send({ to: bobTablet.user, body: 'see you at 8' });
  t.equal((await hook.until(() => true)).body.preview, 'see you at 8');
});

t.test('a muted thread is not notified; others are', async (t) => {
  const { s, hook, ann, bobPhone, bobTablet } = await setupShared();
  await registerPush(s.base, bobTablet, 'tablet-token');
  const carol = await newDevice(s, await newUser(s, 'carol'));
  const phone = await connect(t, s, bobPhone);
  const a = await connect(t, s, ann);
  const c = await connect(t, s, carol);
  const first = await a.send({ to: bobPhone.user, body: 'one' });
  await hook.until((x) => x.body.thread === first.thread);
  await phone.request('thread.set', { thread: first.thread, muted: true });
  const seen = phone.next('msg', (m) => m.body === 'muted one');
  await a.send({ to: bobPhone.user, body: 'muted one' });
  await seen; // logged (a job would be in the same commit)
  await pushIdle(s.base);
  t.equal(hook.calls.filter((x) => x.body.thread === first.thread).length, 1, 'nothing for the muted thread');
  const other = await c.send({ to: bobPhone.user, body: 'from carol' });
  await hook.until((x) => x.body.thread === other.thread);
  t.pass('the unmuted thread is notified');
});

t.test('coalescing: messages while a notification is pending replace it; the next carries the unread count', async (t) => {
  const { s, hook, ann, bobPhone, bobTablet } = await setupShared();
  await registerPush(s.base, bobTablet, 'tablet-token');
  const phone = await connect(t, s, bobPhone); // online, not registered: sees when bob's log has a message
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  // The first notification is held in flight while more messages arrive.
  hook.answers.push(async (_req, res) => {
    await held;
    res.writeHead(200).end();
  });
  const a = await connect(t, s, ann);
  await a.send({ to: bobTablet.user, body: '1' });
  const first = await hook.until(() => true);
  t.equal(first.body.unread, 1);
  const logged = phone.next('msg', (m) => m.body === '3');
  await a.send({ to: bobTablet.user, body: '2' });
  const third = await a.send({ to: bobTablet.user, body: '3' });
  await logged; // both are in bob's log, and the pending notification updated in that commit
  release();
  const next = await hook.until((c) => c.body.unread === 3);
  t.equal(next.body.thread, third.thread);
  t.ok(next.body.u > first.body.u, 'it names the newest message');
  await pushIdle(s.base);
  t.equal(hook.calls.length, 2, 'two notifications for three messages');
});

t.test('a 503 is retried with the same id until it succeeds', async (t) => {
  const { s, hook, ann, bobTablet } = await setupShared();
  const attempts = (outcome: string) => metric(s.base, 'parley_push_attempts_total', `outcome="${outcome}"`);
  const [retriesBefore, oksBefore] = [await attempts('retry'), await attempts('ok')];
  await registerPush(s.base, bobTablet, 'tablet-token');
  hook.answers.push((_req, res) => void res.writeHead(503).end());
  const a = await connect(t, s, ann);
  await a.send({ to: bobTablet.user, body: 'retry me' });
  await hook.until(() => hook.calls.length >= 2, 30_000);
  t.equal(hook.calls[0].body.id, hook.calls[1].body.id, 'the retry carries the same idempotency key');
  await pushIdle(s.base);
  t.equal(await attempts('retry'), retriesBefore + 1);
  t.equal(await attempts('ok'), oksBefore + 1);
});

t.test('a 410 removes the registration: no more notifications for that device', async (t) => {
  const { s, hook, ann, bobPhone, bobTablet } = await setupShared();
  const goneBefore = await metric(s.base, 'parley_push_attempts_total', 'outcome="gone"');
  await registerPush(s.base, bobPhone, 'phone-token');
  await registerPush(s.base, bobTablet, 'tablet-token');
  hook.answers.push((req, res) => void res.writeHead(410).end());
  const a = await connect(t, s, ann);
  await a.send({ to: bobTablet.user, body: 'first' });
  await hook.until(() => hook.calls.length >= 2); // both devices: one 410, one 200
  const gone = hook.calls[0].body.device;
  await pushIdle(s.base);
  t.equal(await metric(s.base, 'parley_push_attempts_total', 'outcome="gone"'), goneBefore + 1);
  const before = hook.calls.length;
  const second = await a.send({ to: bobTablet.user, body: 'second' });
  await hook.until((c) => c.body.u > hook.calls[0].body.u && c.body.thread === second.thread);
  await pushIdle(s.base);
  const later = hook.calls.slice(before);
  t.same(later.map((c) => c.body.device), [gone === bobPhone.device ? bobTablet.device : bobPhone.device], 'only the live device is notified');
});

t.test('logout and DELETE /v1/push remove the registration', async (t) => {
  const { s, hook, ann, bobUser, bobPhone, bobTablet } = await setupShared();
  await registerPush(s.base, bobPhone, 'phone-token');
  await registerPush(s.base, bobTablet, 'tablet-token');
  const laptop = await newDevice(s, bobUser, 'laptop');
  await registerPush(s.base, laptop, 'laptop-token');
  await logout(s.base, bobPhone.token);
  t.equal((await fetch(`${s.base}/v1/push`, { method: 'DELETE', headers: { authorization: `Bearer ${bobTablet.token}` } })).status, 204);
  const a = await connect(t, s, ann);
  await a.send({ to: bobUser.user, body: 'who gets it' });
  await hook.until((c) => c.body.device === laptop.device);
  await pushIdle(s.base);
  t.same(hook.calls.map((c) => c.body.device), [laptop.device], 'only the registered, logged-in device');
});

t.test('bad registration bodies are 400 with a clear message', async (t) => {
  const { s, bobPhone } = await setupShared();
  const cases: [string, unknown, RegExp][] = [
    ['unknown provider', { provider: 'pager', token: 'x' }, /provider/],
    ['provider not configured here', { provider: 'apns', token: 'a'.repeat(64) }, /not configured/],
    ['empty token', { provider: 'webhook', token: '' }, /token/],
    ['token over 4 KiB', { provider: 'webhook', token: 'x'.repeat(4097) }, /token/],
    ['not JSON', 'nope', /JSON/],
  ];
  for (const [name, body, message] of cases) {
    const res = await fetch(`${s.base}/v1/push`, { method: 'POST', headers: { authorization: `Bearer ${bobPhone.token}` }, body: typeof body === 'string' ? body : JSON.stringify(body) });
    t.equal(res.status, 400, name);
    t.match(await res.json(), { error: 'bad_frame', message }, name);
  }
  t.equal((await fetch(`${s.base}/v1/push`, { method: 'POST', body: '{}' })).status, 401, 'no token');
  t.equal((await fetch(`${s.base}/v1/push/vapid`)).status, 404, 'no Web Push configured');
});

t.test('kill -9 after ok and before delivery: every notification arrives after the restart', async (t) => {
  const dataDir = tempDataDir(t);
  // The endpoint is down at first: no delivery can happen before the kill.
  const port = await freePort();
  const env = { PUSH_WEBHOOK_URL: `http://127.0.0.1:${port}/push`, PUSH_WEBHOOK_SECRET: SECRET, PUSH_COALESCE: '100ms' };
  let child = await startChildServer(dataDir, env);
  t.teardown(() => child.proc.kill('SIGKILL'));
  const base = child.base;
  const users = [];
  for (const name of ['kann', 'kbob', 'kcat', 'kdan']) {
    await register(base, { username: `${name}${process.pid % 1000}`, password: 'correct horse battery' });
    users.push(await login(base, { username: `${name}${process.pid % 1000}`, password: 'correct horse battery', device: 'phone' }));
  }
  const [sender, ...receivers] = users;
  for (const r of receivers) {
    const res = await fetch(`${base}/v1/push`, { method: 'POST', headers: { authorization: `Bearer ${r.token}` }, body: JSON.stringify({ provider: 'webhook', token: `tok-${r.user}` }) });
    t.equal(res.status, 204);
  }
  const a = await connect(t, { wsUrl: child.wsUrl }, sender);
  // `ok` means the message is on disk; its fan-out to the receiver's log (and the push job in that
  // commit) may not be yet, and a restart resumes it: either way the job exists after the restart.
  for (const r of receivers) await a.send({ to: r.user, body: 'durable' });
  child.proc.kill('SIGKILL');
  await child.exited;
  const hook = await startWebhook(t, SECRET, port);
  child = await startChildServer(dataDir, env);
  for (const r of receivers) await hook.until((c) => c.body.user === r.user, 60_000);
  const ids = new Set(hook.calls.map((c) => c.body.id));
  t.equal(ids.size, receivers.length, 'one distinct notification per receiver');
});
