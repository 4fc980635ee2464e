// Frame and body validation (protocol/validate.ts): a table of named cases per command — valid,
// missing field, wrong type, over a limit — and what knownFields forwards (known fields only).
import t from 'tap';
import { Command } from '../protocol/codes.js';
import { bodyCheckers, bodyTooLarge, checkChannelPost, checkHello, checkSearch, checkSend, frameCheckers, knownFields, MAX_BODY_BYTES, MAX_GROUP_MEMBERS, MAX_PRESENCE_SUBS } from '../protocol/validate.js';

const ids = (n: number) => Array.from({ length: n }, (_, i) => `u${i}`);
const long = (n: number, c = 'a') => c.repeat(n);
const sha = 'a'.repeat(64);

/** [case name, frame, valid?] per command: every command of frameCheckers has its rows. */
const cases: Record<string, [string, Record<string, unknown>, boolean][]> = {
  [Command.refresh]: [
    ['a jwt', { jwt: 'a.b.c' }, true],
    ['missing jwt', {}, false],
    ['empty jwt', { jwt: '' }, false],
    ['jwt over 8192', { jwt: long(8193) }, false],
  ],
  [Command.hello]: [
    ['token only', { token: 'tok' }, true],
    ['with since and epoch', { token: 'tok', since: 5, epoch: 'e1:abc-DEF_9' }, true],
    ['a jwt instead', { jwt: 'a.b.c', since: 5 }, true],
    ['empty jwt', { jwt: '' }, false],
    ['jwt over 8192', { jwt: long(8193) }, false],
    ['empty token', { token: '' }, false],
    ['token over 512', { token: long(513) }, false],
    ['negative since', { token: 'tok', since: -1 }, false],
    ['since a float', { token: 'tok', since: 1.5 }, false],
    ['since beyond 2^53', { token: 'tok', since: 2 ** 53 }, false],
    ['epoch over 40', { token: 'tok', epoch: long(41) }, false],
    ['epoch with a space', { token: 'tok', epoch: 'a b' }, false],
    ['epoch a number', { token: 'tok', epoch: 5 }, false],
  ],
  [Command.ping]: [['bare', {}, true], ['r a string', { r: 'x' }, false], ['negative r', { r: -1 }, false]],
  [Command.ack]: [['u', { u: 3 }, true], ['u zero', { u: 0 }, true], ['missing u', {}, false], ['u a string', { u: '3' }, false]],
  [Command.send]: [
    ['to a thread', { cid: 'c1', thread: 'g:1', body: 'hi' }, true],
    ['to a user', { cid: 'c1', to: 'u1', body: 'hi' }, true],
    ['a reply to a seq', { cid: 'c1', to: 'u1', body: 'hi', reply: 3 }, true],
    ['a reply to seq 0', { cid: 'c1', to: 'u1', body: 'hi', reply: 0 }, false],
    ['with media (its id, §8.4)', { cid: 'c1', thread: 'g:1', media: 'm:abc' }, true],
    ['a body over 16 KiB passes the schema (too_large comes after)', { cid: 'c1', thread: 'g:1', body: long(MAX_BODY_BYTES + 1) }, true],
    ['missing cid', { thread: 'g:1', body: 'hi' }, false],
    ['cid over 64', { cid: long(65), thread: 'g:1', body: 'hi' }, false],
    ['body a number', { cid: 'c1', thread: 'g:1', body: 5 }, false],
    ['thread not an id', { cid: 'c1', thread: 'a b', body: 'hi' }, false],
    ['thread over 40', { cid: 'c1', thread: long(41), body: 'hi' }, false],
    ['media an object, not an id', { cid: 'c1', thread: 'g:1', media: { id: 'm1', mime: 'x', size: 1, sha256: sha } }, false],
    ['media not an id', { cid: 'c1', thread: 'g:1', media: 'a b' }, false],
    ['reply not an id', { cid: 'c1', thread: 'g:1', body: 'hi', reply: '' }, false],
  ],
  [Command.history]: [
    ['thread', { thread: 'g:1' }, true],
    ['all cursors', { thread: 'g:1', before: 5, after: 0, limit: 100 }, true],
    ['missing thread', {}, false],
    ['limit over 100', { thread: 'g:1', limit: 101 }, false],
    ['limit zero', { thread: 'g:1', limit: 0 }, false],
    ['before zero', { thread: 'g:1', before: 0 }, false],
  ],
  [Command.read]: [['thread and seq', { thread: 'g:1', seq: 1 }, true], ['missing seq', { thread: 'g:1' }, false], ['seq zero', { thread: 'g:1', seq: 0 }, false]],
  [Command.typing]: [['thread', { thread: 'g:1' }, true], ['missing thread', {}, false], ['thread a number', { thread: 1 }, false]],
  [Command.inbox]: [
    ['bare', {}, true],
    ['a page', { before: 'abc', limit: 10 }, true],
    ['cursor too short', { before: 'ab' }, false],
    ['cursor over 64', { before: long(65) }, false],
    ['limit a string', { limit: '10' }, false],
  ],
  [Command.threadGet]: [['thread', { thread: 'g:1' }, true], ['missing thread', {}, false]],
  [Command.threadSet]: [
    ['muted', { thread: 'g:1', muted: true }, true],
    ['nickname', { thread: 'g:1', nickname: 'Mum' }, true],
    ['muted a number', { thread: 'g:1', muted: 1 }, false],
    ['nickname over 64', { thread: 'g:1', nickname: long(65) }, false],
  ],
  [Command.groupCreate]: [
    ['title and members', { title: 'Team', members: ['u1', 'u2'] }, true],
    ['no other members', { title: 'Just me', members: [] }, true],
    ['with a cid', { title: 'Team', members: ['u1'], cid: 'g-1' }, true],
    ['empty cid', { title: 'Team', members: ['u1'], cid: '' }, false],
    ['cid over 64', { title: 'Team', members: ['u1'], cid: long(65) }, false],
    ['missing title', { members: ['u1'] }, false],
    ['title over 100', { title: long(101), members: ['u1'] }, false],
    ['members not an array', { title: 'Team', members: 'u1' }, false],
    ['a member not an id', { title: 'Team', members: ['u 1'] }, false],
    ['members over the limit', { title: 'Team', members: ids(MAX_GROUP_MEMBERS + 1) }, false],
  ],
  [Command.groupAdd]: [['users', { thread: 'g:1', users: ['u1'] }, true], ['no users', { thread: 'g:1', users: [] }, false], ['missing thread', { users: ['u1'] }, false]],
  [Command.groupRemove]: [['users', { thread: 'g:1', users: ['u1'] }, true], ['users over the limit', { thread: 'g:1', users: ids(MAX_GROUP_MEMBERS + 1) }, false]],
  [Command.groupLeave]: [['thread', { thread: 'g:1' }, true], ['missing thread', {}, false]],
  [Command.groupTitle]: [['title', { thread: 'g:1', title: 'New' }, true], ['empty title', { thread: 'g:1', title: '' }, false]],
  [Command.contactsAdd]: [['user', { user: 'u1' }, true], ['missing user', {}, false], ['user over 40', { user: long(41) }, false]],
  [Command.contactsRemove]: [['user', { user: 'u1' }, true], ['user an array', { user: ['u1'] }, false]],
  [Command.contactsList]: [['bare', {}, true], ['r', { r: 7 }, true]],
  [Command.privacySet]: [['everyone', { lastSeen: 'everyone' }, true], ['nobody', { lastSeen: 'nobody' }, true], ['unknown value', { lastSeen: 'friends' }, false], ['missing', {}, false]],
  [Command.block]: [['user', { user: 'u1' }, true], ['missing user', {}, false], ['user not an id', { user: 'a b' }, false]],
  [Command.unblock]: [['user', { user: 'u1' }, true], ['user a number', { user: 1 }, false]],
  [Command.blocksList]: [['bare', {}, true]],
  [Command.presenceSub]: [['users', { users: ['u1'] }, true], ['users over the limit', { users: ids(MAX_PRESENCE_SUBS + 1) }, false], ['missing users', {}, false]],
  [Command.presenceUnsub]: [['users', { users: ['u1'] }, true], ['empty', { users: [] }, false]],
  [Command.usersGet]: [
    ['one id', { users: ['u1'] }, true],
    ['100 ids', { users: Array.from({ length: 100 }, (_, i) => `u${i}`) }, true],
    ['101 ids', { users: Array.from({ length: 101 }, (_, i) => `u${i}`) }, false],
    ['none', { users: [] }, false],
    ['missing users', {}, false],
    ['not an id', { users: ['no spaces allowed'] }, false],
  ],
  [Command.userFind]: [
    ['a username', { username: 'ann.b_9' }, true],
    ['missing username', {}, false],
    ['too short', { username: 'ab' }, false],
    ['over 32', { username: long(33) }, false],
    ['capitals', { username: 'Ann' }, false],
    ['a number', { username: 5 }, false],
  ],
  [Command.channelCreate]: [
    ['name and title', { name: 'news.daily', title: 'News' }, true],
    ['open mode', { name: 'live_chat', title: 'Chat', mode: 'open' }, true],
    ['unknown mode', { name: 'live_chat', title: 'Chat', mode: 'loud' }, false],
    ['capitals in the name', { name: 'News', title: 'News' }, false],
    ['missing title', { name: 'news' }, false],
  ],
  [Command.channelGet]: [
    ['by id', { channel: 'c:abc' }, true],
    ['by name', { name: 'news.daily' }, true],
    ['a bad id', { channel: 'no spaces' }, false],
  ],
  [Command.channelAdmin]: [
    ['grant', { channel: 'c:abc', user: 'u1', admin: true }, true],
    ['admin not a bool', { channel: 'c:abc', user: 'u1', admin: 1 }, false],
    ['missing user', { channel: 'c:abc', admin: false }, false],
  ],
  [Command.channelJoin]: [
    ['channel only', { channel: 'c:abc' }, true],
    ['with since and epoch', { channel: 'c:abc', since: 5, epoch: 'e1' }, true],
    ['negative since', { channel: 'c:abc', since: -1 }, false],
  ],
  [Command.channelLeave]: [
    ['channel', { channel: 'c:abc' }, true],
    ['missing channel', {}, false],
  ],
  [Command.channelPost]: [
    ['a post', { channel: 'c:abc', cid: 'c1', body: 'hi' }, true],
    ['missing cid', { channel: 'c:abc', body: 'hi' }, false],
    ['media only passes the schema', { channel: 'c:abc', cid: 'c1', media: 'm:1' }, true],
    ['neither body nor media passes the schema (checkChannelPost refuses it)', { channel: 'c:abc', cid: 'c1' }, true],
    ['body a number', { channel: 'c:abc', cid: 'c1', body: 1 }, false],
  ],
  [Command.channelHistory]: [
    ['channel only', { channel: 'c:abc' }, true],
    ['paged', { channel: 'c:abc', before: 10, limit: 100 }, true],
    ['limit over 100', { channel: 'c:abc', limit: 101 }, false],
  ],
  [Command.schedule]: [
    ['to a user', { cid: 'c1', to: 'u1', body: 'hi', at: 1_800_000_000_000 }, true],
    ['into a thread, replying', { cid: 'c1', thread: 'g:1', body: 'hi', reply: 'm1', at: 1 }, true],
    ['missing at', { cid: 'c1', to: 'u1', body: 'hi' }, false],
    ['at a float', { cid: 'c1', to: 'u1', body: 'hi', at: 1.5 }, false],
    ['at negative', { cid: 'c1', to: 'u1', body: 'hi', at: -1 }, false],
    ['empty body', { cid: 'c1', to: 'u1', body: '', at: 1 }, false],
    ['missing body', { cid: 'c1', to: 'u1', at: 1 }, false],
    ['missing cid', { to: 'u1', body: 'hi', at: 1 }, false],
  ],
  [Command.scheduleList]: [['bare', {}, true]],
  [Command.scheduleCancel]: [['job', { job: 'jabc' }, true], ['missing job', {}, false], ['job not an id', { job: 'a b' }, false]],
  [Command.channelTrending]: [
    ['an hour', { window: '1h' }, true],
    ['a day, limit 50', { window: '24h', limit: 50 }, true],
    ['another window', { window: '2h' }, false],
    ['limit over 50', { window: '1h', limit: 51 }, false],
    ['missing window', {}, false],
  ],
  [Command.inviteCreate]: [
    ['a group', { thread: 'g:abc' }, true],
    ['a channel, a day, 10 uses', { channel: 'c:abc', expires: 86400, uses: 10 }, true],
    ['neither passes the schema (checkInviteTarget refuses it)', {}, true],
    ['expires over a year', { thread: 'g:abc', expires: 366 * 86400 }, false],
    ['expires 0', { thread: 'g:abc', expires: 0 }, false],
    ['uses 0', { thread: 'g:abc', uses: 0 }, false],
  ],
  [Command.inviteRevoke]: [
    ['a code', { code: 'AbCdEf123456' }, true],
    ['too short', { code: 'AbC' }, false],
    ['not base62', { code: 'AbCdEf12345-' }, false],
  ],
  [Command.inviteList]: [
    ['a group', { thread: 'g:abc' }, true],
    ['a bad id', { channel: 'no spaces' }, false],
  ],
  [Command.inviteJoin]: [
    ['a code', { code: 'AbCdEf123456' }, true],
    ['any short string (an unknown code, counted as a guess)', { code: 'x' }, true],
    ['empty', { code: '' }, false],
    ['too long', { code: 'x'.repeat(65) }, false],
  ],
  [Command.edit]: [
    ['an edit', { thread: 'd:a:b', seq: 1, body: 'fixed' }, true],
    ['empty body', { thread: 'd:a:b', seq: 1, body: '' }, false],
    ['seq 0', { thread: 'd:a:b', seq: 0, body: 'x' }, false],
    ['missing body', { thread: 'd:a:b', seq: 1 }, false],
  ],
  [Command.delete]: [
    ['for everyone', { thread: 'd:a:b', seq: 1, forEveryone: true }, true],
    ['for me', { thread: 'd:a:b', seq: 1, forEveryone: false }, true],
    ['missing forEveryone', { thread: 'd:a:b', seq: 1 }, false],
    ['forEveryone a string', { thread: 'd:a:b', seq: 1, forEveryone: 'yes' }, false],
  ],
  [Command.react]: [
    ['an emoji', { thread: 'd:a:b', seq: 1, emoji: '👍' }, true],
    ['empty', { thread: 'd:a:b', seq: 1, emoji: '' }, false],
    ['over 16 chars', { thread: 'd:a:b', seq: 1, emoji: long(17) }, false],
    ['missing emoji', { thread: 'd:a:b', seq: 1 }, false],
  ],
  [Command.unreact]: [['a message', { thread: 'd:a:b', seq: 1 }, true], ['missing seq', { thread: 'd:a:b' }, false]],
  [Command.forward]: [
    ['to a thread', { from: { thread: 'd:a:b', seq: 1 }, to: { thread: 'g:1' }, cid: 'c1' }, true],
    ['to a user', { from: { thread: 'd:a:b', seq: 1 }, to: { to: 'u1' }, cid: 'c1' }, true],
    ['missing cid', { from: { thread: 'd:a:b', seq: 1 }, to: { to: 'u1' } }, false],
    ['from without seq', { from: { thread: 'd:a:b' }, to: { to: 'u1' }, cid: 'c1' }, false],
    ['to a string', { from: { thread: 'd:a:b', seq: 1 }, to: 'u1', cid: 'c1' }, false],
  ],
  [Command.search]: [
    ['words', { q: 'lunch tomorrow' }, true],
    ['in a thread, a page on', { q: 'x', thread: 'd:a:b', before: '0abcdefgh00001', limit: 50 }, true],
    ['missing q', {}, false],
    ['empty q', { q: '' }, false],
    ['q over 256', { q: long(257) }, false],
    ['limit 0', { q: 'x', limit: 0 }, false],
    ['limit 51', { q: 'x', limit: 51 }, false],
    ['before not an id', { q: 'x', before: 'a b' }, false],
    ['before a number', { q: 'x', before: 5 }, false],
  ],
};

t.test('search: a query needs a word (checkSearch)', async (t) => {
  t.equal(checkSearch({ t: 'search', q: 'Café!' }), null);
  t.type(checkSearch({ t: 'search', q: '?! … —' }), 'string', 'punctuation only');
});

t.test('hello: exactly one of token and jwt (checkHello)', async (t) => {
  t.equal(checkHello({ t: 'hello', token: 'tok' }), null);
  t.equal(checkHello({ t: 'hello', jwt: 'a.b.c' }), null);
  t.type(checkHello({ t: 'hello' }), 'string', 'neither');
  t.type(checkHello({ t: 'hello', token: 'tok', jwt: 'a.b.c' }), 'string', 'both');
});

t.test('every command has cases', async (t) => {
  t.same(Object.keys(cases).sort(), [...frameCheckers.keys()].sort());
});

for (const [command, rows] of Object.entries(cases)) {
  t.test(command, async (t) => {
    const check = frameCheckers.get(command)!;
    for (const [name, fields, valid] of rows) {
      const problem = check({ t: command, ...fields });
      if (valid) t.equal(problem, null, `${name}: valid`);
      else t.type(problem, 'string', `${name}: refused`);
    }
    t.type(check({ ...rows[0][1], t: 'other' }), 'string', 'the wrong t is refused');
  });
}

t.test('knownFields forwards the validated fields only, as a new object', async (t) => {
  const frame = {
    t: 'send', r: 3, cid: 'c1', thread: 'g:1', body: 'hi', extra: { deep: [[[1]]] }, bin: new Uint8Array(4),
    media: 'm:1',
  };
  t.equal(frameCheckers.get('send')!(frame), null);
  const out = knownFields('send', frame);
  t.same(out, { t: 'send', r: 3, cid: 'c1', thread: 'g:1', body: 'hi', media: 'm:1' });
  t.not(out, frame, 'a new object');
  t.notOk('extra' in out || 'bin' in out, 'unknown fields stay behind');

  const group = knownFields('group.create', { t: 'group.create', title: 'T', members: ['u1'], cid: 'k', x: 1 });
  t.same(group, { t: 'group.create', title: 'T', members: ['u1'], cid: 'k' });
  t.same(knownFields('hello', { t: 'hello', token: 'x', epoch: 'e', since: 2, nope: 1 }), { t: 'hello', token: 'x', since: 2, epoch: 'e' });
  t.same(knownFields('inbox', { t: 'inbox', x: [[[]]] }), { t: 'inbox' });
  t.throws(() => knownFields('no.such', { t: 'no.such' }));
});

t.test('channel.post needs a body or a media', async (t) => {
  t.match(checkChannelPost({ t: 'channel.post', channel: 'c:1', cid: 'c' }), /body or media/);
  t.equal(checkChannelPost({ t: 'channel.post', channel: 'c:1', cid: 'c', media: 'm:1' }), null);
});

t.test('send rules beyond the schema, and the body limit in UTF-8 bytes', async (t) => {
  t.match(checkSend({ t: 'send', cid: 'c', thread: 'g:1', to: 'u1', body: 'x' }), /exactly one/);
  t.match(checkSend({ t: 'send', cid: 'c', body: 'x' }), /exactly one/);
  t.match(checkSend({ t: 'send', cid: 'c', thread: 'g:1' }), /body or media/);
  t.equal(checkSend({ t: 'send', cid: 'c', thread: 'g:1', body: 'x' }), null);
  t.notOk(bodyTooLarge(long(MAX_BODY_BYTES)), '16 KiB of ASCII fits');
  t.ok(bodyTooLarge(long(MAX_BODY_BYTES + 1)), 'one byte over does not');
  t.notOk(bodyTooLarge('é'.repeat(MAX_BODY_BYTES / 2)), '8 Ki two-byte characters are 16 KiB');
  t.ok(bodyTooLarge('é'.repeat(MAX_BODY_BYTES / 2 + 1)), 'counted in bytes, not characters');
  t.ok(bodyTooLarge('😀'.repeat(MAX_BODY_BYTES / 4 + 1)), 'four-byte characters');
  t.notOk(bodyTooLarge(undefined));
});

t.test('HTTP bodies', async (t) => {
  const rows: [keyof typeof bodyCheckers, string, unknown, boolean][] = [
    ['createUser', 'valid', { username: 'ann', password: 'long enough' }, true],
    ['createUser', 'with a name', { username: 'ann', password: 'long enough', name: 'Ann' }, true],
    ['createUser', 'empty name', { username: 'ann', password: 'long enough', name: '' }, false],
    ['createUser', 'username with capitals', { username: 'Ann', password: 'long enough' }, false],
    ['createSession', 'valid', { username: 'ann', password: 'x', device: 'phone' }, true],
    ['createSession', 'missing device', { username: 'ann', password: 'x' }, false],
    ['updateUser', 'a name', { name: 'Ann B' }, true],
    ['updateUser', 'missing name', {}, false],
    ['updateUser', 'empty name', { name: '' }, false],
    ['updateUser', 'name over 64', { name: long(65) }, false],
    ['updateUser', 'name a number', { name: 5 }, false],
    ['registerPush', 'webhook', { provider: 'webhook', token: 'x' }, true],
    ['registerPush', 'unknown provider', { provider: 'pager', token: 'x' }, false],
    ['registerPush', 'empty token', { provider: 'apns', token: '' }, false],
    ['registerPush', 'token over 4096', { provider: 'fcm', token: long(4097) }, false],
    ['registerPush', 'token not a string', { provider: 'fcm', token: {} }, false],
    ['createMedia', 'valid', { mime: 'image/png', size: 10, sha256: sha, name: 'cat.png' }, true],
    ['createMedia', 'mime with parameters', { mime: 'text/plain; charset=utf-8', size: 0, sha256: sha }, true],
    ['createMedia', 'mime without a subtype', { mime: 'image', size: 10, sha256: sha }, false],
    ['createMedia', 'mime with a newline', { mime: 'text/plain\r\nX-Evil: 1', size: 10, sha256: sha }, false],
    ['createMedia', 'negative size', { mime: 'image/png', size: -1, sha256: sha }, false],
    ['createMedia', 'sha256 not lowercase hex', { mime: 'image/png', size: 1, sha256: sha.toUpperCase() }, false],
    ['createMedia', 'name with a slash', { mime: 'image/png', size: 1, sha256: sha, name: '../etc/passwd' }, false],
    ['createMedia', 'name with a control character', { mime: 'image/png', size: 1, sha256: sha, name: 'a\u0000b' }, false],
  ];
  for (const [kind, name, body, valid] of rows) {
    const problem = bodyCheckers[kind](body);
    if (valid) t.equal(problem, null, `${kind} ${name}`);
    else t.type(problem, 'string', `${kind} ${name}`);
  }
});
