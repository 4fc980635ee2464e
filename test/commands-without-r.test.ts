// docs/protocol.md §2: a command without `r` that succeeds gets no answer; one that fails gets an
// `err` without `r`. Checked on a raw socket, where nothing filters what the server sends.
import t from 'tap';
import { rawSocket, type RawSocket } from './helpers/raw-socket.js';
import { connect, newDevice, newUser, startTestServer, type TestDevice } from './helpers/server.js';

async function live(t: { teardown(fn: () => unknown): void }, wsUrl: string, d: TestDevice): Promise<RawSocket> {
  const sock = await rawSocket(t, wsUrl);
  const synced = sock.next((f) => f.t === 'synced');
  sock.send({ t: 'hello', token: d.token });
  await synced;
  return sock;
}

/** Resolves with the answer to r (ok or err), whether it came already or comes later. */
function answerTo(sock: RawSocket, r: number, timeoutMs = 10_000): Promise<any> {
  const got = sock.frames.find((f) => (f.t === 'ok' || f.t === 'err') && f.r === r);
  return got ? Promise.resolve(got) : sock.next((f) => (f.t === 'ok' || f.t === 'err') && f.r === r, timeoutMs);
}

t.test('commands without r that succeed get no answer at all', async (t) => {
  const s = await startTestServer(t);
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const annDevice = await newDevice(s, ann);
  // A thread and a group to address, made through the SDK.
  const annPhone = await connect(t, s, annDevice);
  const direct = (await annPhone.send({ to: bob.user, body: 'setup' })).thread;
  const group = (await annPhone.request('group.create', { title: 'g', members: [bob.user] })).thread;
  await annPhone.close();
  const sock = await live(t, s.wsUrl, annDevice);
  const sentBefore = sock.frames.length;

  const ownMsg = sock.next((f) => f.t === 'msg' && f.cid === 'no-r-send');
  const renamed = sock.next((f) => f.t === 'thread' && f.thread === group && f.event === 'title');
  const made = sock.next((f) => f.t === 'thread' && f.event === 'created' && f.title === 'made without r');
  // Each of these, without r, to every kind of handler: user actor, thread actors, gateway.
  const frames = [
    { t: 'inbox' },
    { t: 'contacts.add', user: bob.user },
    { t: 'contacts.list' },
    { t: 'thread.get', thread: direct },
    { t: 'thread.set', thread: direct, muted: true },
    { t: 'send', cid: 'no-r-send', to: bob.user, body: 'no r' },
    { t: 'history', thread: direct },
    { t: 'read', thread: direct, seq: 1 },
    { t: 'typing', thread: direct },
    { t: 'group.title', thread: group, title: 'renamed' },
    { t: 'group.create', title: 'made without r', members: [bob.user] },
    { t: 'presence.sub', users: [bob.user] },
    { t: 'presence.unsub', users: [bob.user] },
    { t: 'user.find', username: bob.username },
    { t: 'ack', u: 1 },
  ];
  for (const f of frames) sock.send(f);
  // Ordering barriers: for each actor addressed above, a later command with r to the same actor.
  // An actor's outputs leave in order, so its answer comes after any the commands before it made.
  sock.send({ t: 'inbox', r: 1 }); // ann's user actor (inbox, contacts, thread.get/set)
  sock.send({ t: 'history', r: 2, thread: direct }); // the direct thread's actor (send, history, read, typing)
  sock.send({ t: 'history', r: 3, thread: group }); // the group's actor (group.title)
  sock.send({ t: 'presence.sub', r: 4, users: [bob.user] }); // bob's user actor, via the gateway
  sock.send({ t: 'user.find', r: 5, username: bob.username }); // answered by the gateway at once
  sock.send({ t: 'ping', r: 7 }); // likewise (ack too has nothing to wait for)
  // The new group's id is known from its created event; its actor answers in order after that.
  const created = await made;
  sock.send({ t: 'history', r: 6, thread: created.thread });
  const asked = [1, 2, 3, 4, 5, 6];
  const barriers = await Promise.all(asked.map((r) => answerTo(sock, r)));
  if (!sock.frames.some((f) => f.t === 'pong' && f.r === 7)) await sock.next((f) => f.t === 'pong' && f.r === 7);
  for (const b of barriers) t.equal(b.t, 'ok', `barrier r=${b.r} answered ok`);
  const received = sock.frames.slice(sentBefore);
  const unasked = received.filter((f) => (f.t === 'ok' || f.t === 'err') && !asked.includes(f.r));
  t.same(unasked, [], 'no ok or err for the commands without r');

  // They did act. The send without r still delivers its msg event to the sender's socket: not an answer.
  t.match(await ownMsg, { t: 'msg', cid: 'no-r-send', body: 'no r', from: ann.user });
  t.match(await renamed, { title: 'renamed', by: ann.user }, 'group.title without r took effect');
  t.match(barriers[0].threads.find((r: any) => r.thread === direct), { muted: true }, 'thread.set without r took effect');
  t.match(barriers[4], { user: bob.user, username: bob.username });
  t.match(created, { by: ann.user, title: 'made without r' }, 'group.create without r took effect');
});

t.test('a failing command without r gets an err without r', async (t) => {
  const s = await startTestServer(t);
  const ann = await newUser(s, 'ann');
  const sock = await live(t, s.wsUrl, await newDevice(s, ann));
  const cases: [string, object, string][] = [
    ['thread actor: not a member', { t: 'history', thread: 'g:nosuchgroup000000' }, 'forbidden|not_found'],
    ['user actor: unknown thread', { t: 'thread.get', thread: 'd:nobody:nothing' }, 'not_found'],
    ['gateway: unknown user', { t: 'user.find', username: 'nobody_at_all' }, 'not_found'],
    ['gateway: unknown presence target', { t: 'presence.sub', users: ['unobody000000'] }, 'not_found'],
  ];
  for (const [name, frame, code] of cases) {
    const err = sock.next((f) => f.t === 'err' || f.t === 'ok');
    sock.send(frame);
    const got = await err;
    t.match(got, { t: 'err', code: new RegExp(`^(${code})$`) }, name);
    t.notOk('r' in got, `${name}: no r`);
  }
  sock.send({ t: 'ping', r: 9 });
  t.match(await sock.next((f) => f.t === 'pong'), { r: 9 }, 'the socket still works');
});
