// Invite links end to end (docs/protocol.md "Invite links"): create and join for groups and
// channels, the page and its JSON, expiry, revocation, used-up codes, a 1-use race, who may
// create, and a bounded brute force that finds nothing and gets rate limited.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import type { ParleyClient } from '../client/index.js';
import { collect, connect, newDevice, newUser, startTestServer, until, type TestServer } from './helpers/server.js';
import { sharedServer } from './helpers/shared-server.js';

/** The server of every subtest but the rate-limited one: each has its own people, groups and channel. */
const shared = sharedServer(t);

const CODE_RE = /^[A-Za-z0-9]{12}$/;

async function person(t: Parameters<typeof connect>[0], s: TestServer, name: string): Promise<{ user: string; username: string; password: string; c: ParleyClient; events: any[] }> {
  const u = await newUser(s, name);
  const c = await connect(t, s, await newDevice(s, u));
  return { ...u, c, events: collect(c, 'event') };
}

const getJson = (s: TestServer, code: string) => fetch(`${s.base}/i/${code}`, { headers: { Accept: 'application/json' } });

/** Polls GET /i/:code until it answers `status` (the server's clock decides expiry), with a safety timeout. */
async function untilStatus(s: TestServer, code: string, status: number, timeoutMs = 15_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await getJson(s, code);
    await res.arrayBuffer();
    if (res.status === status) return res.status;
    if (Date.now() > deadline) throw new Error(`GET /i/${code} still ${res.status}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('group invite: an admin creates it, a stranger joins and gets the group from then on', async (t) => {
  const s = await shared();
  const [ann, bob, cat] = await Promise.all(['ann', 'bob', 'cat'].map((n) => person(t, s, n)));
  const { thread } = await ann.c.request('group.create', { title: 'Hikers', members: [bob.user] });
  await ann.c.send({ thread, body: 'before cat' });

  await t.rejects(bob.c.createInvite({ thread }), { code: 'forbidden' }, 'a member who is not an admin may not create one');
  await t.rejects(cat.c.createInvite({ thread }), { code: 'forbidden' }, 'nor may a stranger');
  const direct = await ann.c.send({ to: bob.user, body: 'hi' });
  await t.rejects(ann.c.createInvite({ thread: direct.thread }), { code: 'bad_frame' }, 'no invites to 1:1 threads');
  // Three bad frames close a socket (docs/protocol.md §1): each check on a fresh one.
  const bad = async (fields: object, what: string) => {
    const c = await connect(t, s, await newDevice(s, { user: ann.user, username: ann.username, password: ann.password }));
    await t.rejects(c.request('invite.create', fields), { code: 'bad_frame' }, what);
    c.close();
  };
  await bad({ thread, channel: 'c:x' }, 'exactly one target');
  await bad({ thread, expires: 366 * 86400 }, 'expiry at most a year');
  await bad({ thread, expires: 0 }, 'expiry at least a second');
  await bad({ thread, uses: 0 }, 'uses at least 1');

  const before = Date.now();
  const invite = await ann.c.createInvite({ thread });
  t.match(invite.code, CODE_RE, 'a 12-character base62 code');
  t.equal(invite.url, `http://127.0.0.1:${s.server.port}/i/${invite.code}`, 'the link is on the origin the client came to');
  t.ok(invite.expires >= before + 7 * 86400_000 - 5000 && invite.expires <= Date.now() + 7 * 86400_000 + 5000, 'expires in 7 days by default');
  t.equal(invite.uses, undefined, 'unlimited uses by default');

  const joined = await cat.c.joinInvite(invite.url);
  t.same(joined, { kind: 'group', thread, title: 'Hikers', already: false });
  await Promise.all([ann, bob, cat].map((p) => until(p.c, () => p.events.some((e) => e.t === 'thread' && e.event === 'added' && e.thread === thread))));
  t.match(ann.events.find((e) => e.event === 'added'), { by: cat.user, users: [cat.user] }, 'members see cat added, by herself');
  const row = await cat.c.request('thread.get', { thread });
  t.same([...row.members].sort(), [ann.user, bob.user, cat.user].sort(), 'cat is a member');

  await bob.c.send({ thread, body: 'welcome cat' });
  await until(cat.c, () => cat.events.some((e) => e.t === 'msg' && e.body === 'welcome cat'));
  const history = await cat.c.history({ thread, after: 0 });
  t.same(history.messages.map((m: any) => m.body), ['welcome cat'], 'her history starts at her join');
  await cat.c.send({ thread, body: 'thanks' });
  await until(ann.c, () => ann.events.some((e) => e.t === 'msg' && e.body === 'thanks'));

  t.same(await cat.c.joinInvite(invite.code), { kind: 'group', thread, title: 'Hikers', already: true }, 'a member joining again: ok');
  const list = await ann.c.listInvites({ thread });
  t.equal(list.length, 1);
  t.match(list[0], { code: invite.code, by: ann.user, used: 1, url: invite.url }, 'the second join used nothing');
  await t.rejects(bob.c.listInvites({ thread }), { code: 'forbidden' }, 'only admins list');
});

t.test('the page and its JSON say what the invite is for; everything is escaped', async (t) => {
  const s = await shared();
  const [ann, bob] = await Promise.all(['ann', 'bob'].map((n) => person(t, s, n)));
  const title = '<script>alert("x")</script> & co';
  const { thread } = await ann.c.request('group.create', { title, members: [bob.user] });
  const { code, expires } = await ann.c.createInvite({ thread, expires: 3600, uses: 5 });
  t.ok(expires <= Date.now() + 3600_000 + 1000, 'expires in an hour');

  const res = await getJson(s, code);
  t.equal(res.status, 200);
  t.same(await res.json(), { code, kind: 'group', thread, title, members: 2, expires });

  const page = await fetch(`${s.base}/i/${code}`);
  t.equal(page.status, 200);
  t.match(page.headers.get('content-type'), /^text\/html/);
  const html = await page.text();
  t.ok(html.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co'), 'the title is escaped');
  t.notOk(html.includes('<script'), 'no script at all');
  t.notOk(/\b(src|href)=/i.test(html), 'no external resources');
  t.ok(html.includes('2 members') && html.includes(code), 'member count and code shown');

  const missing = await fetch(`${s.base}/i/AAAAAAAAAAAA`);
  t.equal(missing.status, 404);
  t.match(missing.headers.get('content-type'), /^text\/html/, 'a browser gets a page for a bad link');
  await missing.text();
  const missingJson = await getJson(s, 'AAAAAAAAAAAA');
  t.equal(missingJson.status, 404);
  t.match(await missingJson.json(), { error: 'not_found' });
  const odd = await getJson(s, encodeURIComponent('"><b>'));
  t.equal(odd.status, 404, 'a malformed code is just not found');
  await odd.arrayBuffer();
});

t.test('channel invite: owner only; joining follows the channel and counts a use once per user', async (t) => {
  const s = await shared();
  const [owner, fan, other] = await Promise.all(['own', 'fan', 'oth'].map((n) => person(t, s, n)));
  const { channel } = await owner.c.channelCreate({ name: `news${process.pid % 1000}`, title: 'News' });
  await t.rejects(fan.c.createInvite({ channel }), { code: 'forbidden' }, 'only the owner and admins');
  const invite = await owner.c.createInvite({ channel, uses: 2 });
  t.equal(invite.uses, 2);
  const info = await (await getJson(s, invite.code)).json();
  t.match(info, { code: invite.code, kind: 'channel', channel, title: 'News', members: 0 });

  const cmsgs: any[] = [];
  fan.c.on('cmsg', (m) => cmsgs.push(m));
  const joined = await fan.c.joinInvite(invite.code);
  t.match(joined, { kind: 'channel', channel, title: 'News', already: false, seq: 0 });
  await owner.c.channelPost({ channel, body: 'first post' });
  await until(fan.c, () => cmsgs.some((m) => m.body === 'first post'));
  t.ok(cmsgs.some((m) => m.body === 'first post'), 'the joiner gets the posts after the join');
  t.match((await fan.c.joinInvite(invite.code)), { already: true }, 'the same user again takes no use');
  t.match(await other.c.joinInvite(invite.code), { already: false }, 'a second user takes the second use');
  const third = await person(t, s, 'thr');
  await t.rejects(third.c.joinInvite(invite.code), { code: 'not_found' }, 'used up');
});

t.test('revoked, used-up and expired codes are not_found', async (t) => {
  const s = await shared();
  const [ann, bob, cat, dan] = await Promise.all(['ann', 'bob', 'cat', 'dan'].map((n) => person(t, s, n)));
  const { thread } = await ann.c.request('group.create', { title: 'G', members: [bob.user] });

  // revoked: by a non-admin who did not create it → forbidden; by the creator → gone.
  const r = await ann.c.createInvite({ thread });
  await t.rejects(bob.c.revokeInvite(r.code), { code: 'forbidden' });
  await ann.c.revokeInvite(r.code);
  t.equal((await getJson(s, r.code)).status, 404, 'revoked: the page is gone');
  await t.rejects(cat.c.joinInvite(r.code), { code: 'not_found' }, 'revoked: joins refused');
  await t.rejects(ann.c.revokeInvite(r.code), { code: 'not_found' }, 'revoked twice: not_found');

  // used up: one use.
  const one = await ann.c.createInvite({ thread, uses: 1 });
  await cat.c.joinInvite(one.code);
  await t.rejects(dan.c.joinInvite(one.code), { code: 'not_found' }, 'the second joiner finds it used up');
  t.equal((await getJson(s, one.code)).status, 404, 'used up: the page is gone');

  // expired: one second, then the server says so.
  const short = await ann.c.createInvite({ thread, expires: 1 });
  t.equal((await getJson(s, short.code)).status, 200, 'valid at first');
  t.equal(await untilStatus(s, short.code, 404), 404, 'expired: 404');
  await t.rejects(dan.c.joinInvite(short.code), { code: 'not_found' }, 'expired: joins refused');
  const list = await ann.c.listInvites({ thread });
  t.same(list.map((i) => i.code), [], 'list shows no dead invite');
  const row = await ann.c.request('thread.get', { thread });
  t.same([...row.members].sort(), [ann.user, bob.user, cat.user].sort(), 'only cat joined');
});

t.test('two joins of a 1-use code at once: exactly one member is added', async (t) => {
  const s = await shared();
  const ann = await person(t, s, 'ann');
  const racers = await Promise.all(['r1', 'r2', 'r3', 'r4'].map((n) => person(t, s, n)));
  const { thread } = await ann.c.request('group.create', { title: 'Race', members: [] });
  const { code } = await ann.c.createInvite({ thread, uses: 1 });
  const results = await Promise.allSettled(racers.map((p) => p.c.joinInvite(code)));
  const won = results.filter((x) => x.status === 'fulfilled');
  const lost = results.filter((x) => x.status === 'rejected') as PromiseRejectedResult[];
  t.equal(won.length, 1, 'one join wins');
  t.same(lost.map((x) => x.reason.code), ['not_found', 'not_found', 'not_found'], 'the others find it used up');
  const row = await ann.c.request('thread.get', { thread });
  t.equal(row.members.length, 2, 'the group has its creator and one joiner');
});

t.test('a bounded brute force (200 random codes) finds nothing and is rate limited', async (t) => {
  const HIGH = [{ limit: 1_000_000, windowMs: 60_000 }];
  // Rate limits on, every limit high but RL_INVITE_GUESS: 20 failures per 10 minutes (one window,
  // so the counts do not depend on how fast the guesses go).
  const s = await startTestServer(t, {
    rateLimits: 'on', rlInviteGuess: [{ limit: 20, windowMs: 600_000 }], rlHttpPerIp: HIGH, rlRegisterPerIp: HIGH, rlLoginPerIp: HIGH, rlLoginFailuresPerUsername: HIGH,
    rlWsConnectsPerIp: HIGH, rlWsPerIp: 1_000_000, rlSocketCommands: 1_000_000, rlSocketSends: 1_000_000, rlSendsPerUser: HIGH, rlCostlyPerUser: HIGH,
  });
  const ann = await person(t, s, 'ann');
  const { thread } = await ann.c.request('group.create', { title: 'Secret', members: [] });
  const real = await ann.c.createInvite({ thread });
  t.equal((await getJson(s, real.code)).status, 200, 'a valid lookup is not a failure');

  const statuses = new Map<number, number>();
  let firstLimited: Response | null = null;
  const B62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  for (let i = 0; i < 200; i++) {
    const guess = [...randomBytes(12)].map((b) => B62[b % 62]).join('');
    const res = await getJson(s, guess);
    statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    if (res.status === 429 && !firstLimited) {
      firstLimited = res;
      t.match(await res.json(), { error: 'rate_limited', retry: Number });
    } else await res.arrayBuffer();
  }
  t.equal(statuses.get(200) ?? 0, 0, 'no guess found an invite');
  t.equal(statuses.get(404), 20, 'the limit\'s worth of guesses answered 404');
  t.equal(statuses.get(429), 180, 'the rest refused with 429');
  t.ok(Number(firstLimited?.headers.get('retry-after')) >= 1, 'with Retry-After');
  t.equal((await getJson(s, real.code)).status, 429, 'while limited even a valid code is refused (no guessing through)');

  // The WebSocket's invite.join counts against the same limit (the address, and the user).
  const mallory = await person(t, s, 'mal');
  const refused = await mallory.c.joinInvite('AAAAAAAAAAAA').catch((e) => e);
  t.match(refused, { code: 'rate_limited' }, 'invite.join from a limited address: rate_limited');
  t.ok(refused.retry > 0, 'with retry');
  const metrics = await (await fetch(`${s.base}/metrics`)).text();
  t.match(metrics, /parley_rate_limited_total\{limit="invite_guess"\} \d+/);
});
