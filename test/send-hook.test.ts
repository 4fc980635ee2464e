// The pre-send hook (docs/protocol.md "Pre-send hook"): the operator's endpoint accepts, rejects or
// rewrites each send, channel.post, edit and scheduled message before it is stored; a hook that does not answer in time, or
// answers nonsense, follows SEND_HOOK_FAIL (closed: refused with unavailable; open: stored as sent).
import type { ServerResponse } from 'node:http';
import t from 'tap';
import { directThreadId } from '../protocol/ids.js';
import { rawSocket } from './helpers/raw-socket.js';
import { startWebhook, type WebhookEndpoint } from './helpers/webhook-endpoint.js';
import { collect, connect, newDevice, newUser, startTestServer, until, type TestServer } from './helpers/server.js';

const SECRET = 'send-hook-test-secret-0123456789abcdefghij';

const answerJson = (value: unknown) => (_req: unknown, res: ServerResponse) => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(value));
/** Holds the request open for good: only the server's timeout ends it. */
const neverAnswer = () => new Promise<void>(() => undefined);

async function setup(t: { teardown(fn: () => unknown): void }, hook: WebhookEndpoint, extra: Record<string, unknown> = {}) {
  const s = await startTestServer(t, { sendHookUrl: hook.url, sendHookSecret: SECRET, ...extra });
  const [ann, bob] = await Promise.all([newUser(s, 'ann'), newUser(s, 'bob')]);
  const annDevice = await newDevice(s, ann);
  const annPhone = await connect(t, s, annDevice);
  const bobPhone = await connect(t, s, await newDevice(s, bob));
  // The SDK's send retries `unavailable` by itself (as a client should): the raw socket shows the answer.
  const raw = await rawSocket(t, s.wsUrl);
  raw.send({ t: 'hello', token: annDevice.token });
  await raw.next((f) => f.t === 'synced');
  let r = 0;
  const rawSend = async (fields: Record<string, unknown>) => {
    const mine = ++r;
    raw.send({ t: 'send', r: mine, cid: `raw${mine}`, ...fields });
    return raw.next((f) => f.r === mine, 30_000);
  };
  return { s, ann, bob, annPhone, bobPhone, rawSend, thread: directThreadId(ann.user, bob.user) };
}

const bodies = async (c: { history(p: { thread: string; limit: number }): Promise<{ messages: any[] }> }, thread: string) =>
  (await c.history({ thread, limit: 50 })).messages.map((m) => m.body).reverse();

t.test('accept, reject and rewrite, for send and channel.post', async (t) => {
  const hook = await startWebhook(t, SECRET);
  const { s, ann, bob, annPhone, bobPhone, thread } = await setup(t, hook);
  const got = collect(bobPhone, 'msg');

  hook.answers.push(answerJson({ action: 'accept' }));
  await annPhone.send({ to: bob.user, body: 'hello' });
  t.match(hook.calls[0], { signatureOk: true, body: { user: ann.user, thread, body: 'hello' } }, 'the hook got the message, signed');

  hook.answers.push(answerJson({ action: 'reject', reason: 'no spam please' }));
  await t.rejects(annPhone.send({ to: bob.user, body: 'BUY NOW' }), { code: 'forbidden', message: 'no spam please' }, 'the sender gets forbidden with the reason');

  hook.answers.push(answerJson({ action: 'rewrite', body: 'h*ck' }));
  const rewritten = await annPhone.send({ to: bob.user, body: 'heck' });
  await until(bobPhone, () => got.some((m) => m.seq === rewritten.seq));
  t.same(got.map((m) => m.body), ['hello', 'h*ck'], 'bob got the accepted and the rewritten message, not the rejected one');
  t.same(await bodies(annPhone, thread), ['hello', 'h*ck'], 'history: nothing of the rejected message, the new body of the rewritten one');
  t.equal(hook.calls.length, 3, 'one hook call per send');

  const { channel } = await annPhone.channelCreate({ name: `hooked.${ann.username}`.slice(0, 32), title: 'Hooked' });
  hook.answers.push(answerJson({ action: 'rewrite', body: 'clean post' }), answerJson({ action: 'reject' }));
  await annPhone.channelPost({ channel, body: 'dirty post' });
  await t.rejects(annPhone.channelPost({ channel, body: 'worse post' }), { code: 'forbidden' }, 'a rejected post; a default reason');
  t.match(hook.calls[3].body, { user: ann.user, channel, body: 'dirty post' }, 'the hook sees channel posts with their channel');
  const posts = await annPhone.channelHistory({ channel });
  t.same(posts.messages.map((p: any) => p.body), ['clean post'], 'the channel holds the rewritten post only');
  void s;
});

t.test('edits and scheduled messages are new words too: the hook checks them like sends', async (t) => {
  const hook = await startWebhook(t, SECRET);
  const { bob, annPhone, bobPhone, thread } = await setup(t, hook);
  const got = collect(bobPhone, 'msg');

  hook.answers.push(answerJson({ action: 'accept' }));
  const sent = await annPhone.send({ to: bob.user, body: 'see you at 8' });
  hook.answers.push(answerJson({ action: 'reject', reason: 'no links' }));
  await t.rejects(annPhone.edit({ thread, seq: sent.seq, body: 'see you at evil.example' }), { code: 'forbidden', message: 'no links' }, 'a rejected edit');
  hook.answers.push(answerJson({ action: 'rewrite', body: 'see you at 9' }));
  await annPhone.edit({ thread, seq: sent.seq, body: 'see you at nine!!!' });
  t.same(await bodies(annPhone, thread), ['see you at 9'], 'history holds the rewritten edit');
  t.match(hook.calls[2].body, { thread, body: 'see you at nine!!!' }, 'the hook saw the edit\'s body');

  hook.answers.push(answerJson({ action: 'reject', reason: 'not at night' }));
  await t.rejects(annPhone.schedule({ to: bob.user, body: 'wake up', at: Date.now() + 3_600_000 }), { code: 'forbidden', message: 'not at night' }, 'a rejected schedule stores no job');
  t.same(await annPhone.scheduled(), []);
  hook.answers.push(answerJson({ action: 'rewrite', body: 'good morning' }));
  const job = await annPhone.schedule({ to: bob.user, body: 'gm!!!', at: Date.now() });
  t.equal(job.body, 'good morning', 'the job keeps the rewritten body');
  await until(bobPhone, () => got.some((m) => m.body === 'good morning'));
  t.equal(hook.calls.length, 5, 'checked once, when scheduled — not again when sent');
});

t.test('a bad answer is an error: closed refuses the message', async (t) => {
  const hook = await startWebhook(t, SECRET);
  const { bob, annPhone, rawSend, thread } = await setup(t, hook);
  hook.answers.push(answerJson({ action: 'maybe' }), (_req, res) => void res.writeHead(200).end('not json'), (_req, res) => void res.writeHead(500).end(),
    answerJson({ action: 'rewrite', body: 42 }), answerJson({ action: 'accept' }));
  for (const what of ['an unknown action', 'a body that is not JSON', 'a 500', 'a rewrite without a string body']) {
    t.match(await rawSend({ to: bob.user, body: 'checked' }), { t: 'err', code: 'unavailable', retry: 1000 }, `${what}: unavailable, with retry`);
  }
  await annPhone.send({ to: bob.user, body: 'finally' });
  t.same(await bodies(annPhone, thread), ['finally'], 'only the accepted message is stored');
});

t.test('timeout with SEND_HOOK_FAIL=closed: refused, nothing stored', async (t) => {
  const hook = await startWebhook(t, SECRET);
  const { bob, annPhone, rawSend, thread } = await setup(t, hook, { sendHookTimeoutMs: 200, sendHookFail: 'closed' });
  hook.answers.push(neverAnswer, neverAnswer, answerJson({ action: 'rewrite', body: 'checked at last' }));
  t.match(await rawSend({ to: bob.user, body: 'lost in moderation' }), { t: 'err', code: 'unavailable' }, 'the sender is told to retry');
  // The SDK's send retries unavailable with the same cid: the hook times out once more, then answers.
  const sent = await annPhone.send({ to: bob.user, body: 'second try' });
  t.equal(hook.calls.length, 3, 'a call per attempt');
  t.equal(sent.seq, 1, 'stored once');
  t.same(await bodies(annPhone, thread), ['checked at last'], 'neither timed-out attempt was stored as sent');
});

t.test('timeout with SEND_HOOK_FAIL=open: stored as sent', async (t) => {
  const hook = await startWebhook(t, SECRET);
  const { bob, annPhone, bobPhone, thread } = await setup(t, hook, { sendHookTimeoutMs: 200, sendHookFail: 'open' });
  const got = collect(bobPhone, 'msg');
  hook.answers.push(neverAnswer);
  const sent = await annPhone.send({ to: bob.user, body: 'unchecked' });
  await until(bobPhone, () => got.some((m) => m.seq === sent.seq));
  t.same(got.map((m) => m.body), ['unchecked'], 'bob got it unchanged');
  t.same(await bodies(annPhone, thread), ['unchecked']);
  t.equal(hook.calls.length, 1, 'the hook was asked');
});

t.test('one socket\'s messages are stored in the order sent, even when the hook answers out of order', async (t) => {
  const hook = await startWebhook(t, SECRET);
  const { bob, annPhone, thread } = await setup(t, hook);
  let releaseFirst!: () => void;
  const firstHeld = new Promise<void>((resolve) => (releaseFirst = resolve));
  hook.answers.push(async (_req, res) => {
    await firstHeld;
    answerJson({ action: 'accept' })(_req, res);
  }, answerJson({ action: 'accept' }), answerJson({ action: 'accept' }));
  const sends = [1, 2, 3].map((i) => annPhone.send({ to: bob.user, body: `m${i}` }));
  await hook.until(() => hook.calls.length >= 1);
  t.equal(hook.calls.length, 1, 'the second message waits for the first one\'s check');
  releaseFirst();
  const acks = await Promise.all(sends);
  t.same(acks.map((a) => a.seq), [1, 2, 3], 'seqs in the order sent');
  t.same(await bodies(annPhone, thread), ['m1', 'm2', 'm3']);
});
