// Bad input over the WebSocket: every malformed frame gets the right error code while the
// socket keeps working, until the limits of docs/protocol.md §1–2 close it with the right code; and
// what a command without r gets back.
import t from 'tap';
import { encodeFrame } from '../protocol/wire.js';
import { newDevice, newUser, startTestServer } from './helpers/server.js';
import { rawSocket } from './helpers/raw-socket.js';
import { sharedServer } from './helpers/shared-server.js';

/** The default-config server of the subtests that need nothing else: each uses its own users and sockets. */
const shared = sharedServer(t);

t.test('garbage, text frames and unknown commands get bad_frame; the socket keeps working', async (t) => {
  const s = await shared();
  const d = await newDevice(s, await newUser(s));
  const sock = await rawSocket(t, s.wsUrl);
  sock.send({ t: 'hello', token: d.token });
  await sock.next((f) => f.t === 'synced');

  const cases: [string, () => void, Record<string, unknown>][] = [
    ['not msgpack', () => sock.sendBytes(new Uint8Array([0xc1, 0xff, 0x00])), { t: 'err', code: 'bad_frame' }],
    ['unknown command', () => sock.send({ t: 'teleport', r: 7 }), { t: 'err', r: 7, code: 'bad_frame', msg: /unknown command/ }],
  ];
  for (const [name, act, expected] of cases) {
    const answer = sock.next((f) => f.t === 'err');
    act();
    t.match(await answer, expected, name);
  }
  sock.send({ t: 'ping', r: 1 });
  t.match(await sock.next((f) => f.t === 'pong'), { t: 'pong', r: 1 }, 'still answering after two bad frames');
});

t.test('each kind of malformed frame is refused with bad_frame', async (t) => {
  const s = await shared();
  const d = await newDevice(s, await newUser(s));
  const cases: [string, Uint8Array | string, RegExp][] = [
    ['text frame', 'hello', /binary/],
    ['msgpack array, not a map', encodeFrame([1, 2, 3]), /msgpack map/],
    ['map without t', encodeFrame({ r: 1 }), /msgpack map/],
    ['t not a string', encodeFrame({ t: 5 }), /msgpack map/],
    ['send without cid', encodeFrame({ t: 'send', r: 2, to: 'u1', body: 'x' }), /cid/],
    ['send with both thread and to', encodeFrame({ t: 'send', r: 3, cid: 'c', to: 'u1', thread: 't1', body: 'x' }), /exactly one of thread or to/],
    ['send with neither body nor media', encodeFrame({ t: 'send', r: 4, cid: 'c', to: 'u1' }), /body or media/],
    ['id with a bad character', encodeFrame({ t: 'history', r: 5, thread: 'no spaces' }), /thread/],
    ['negative ack', encodeFrame({ t: 'ack', u: -1 }), /u/],
    ['channel.get naming neither channel nor name', encodeFrame({ t: 'channel.get', r: 6 }), /exactly one of channel or name/],
  ];
  for (const [name, bytes, why] of cases) {
    // A fresh socket per case: three bad frames close a socket.
    const sock = await rawSocket(t, s.wsUrl);
    sock.send({ t: 'hello', token: d.token });
    await sock.next((f) => f.t === 'synced');
    const answer = sock.next((f) => f.t === 'err');
    sock.sendBytes(bytes);
    t.match(await answer, { code: 'bad_frame', msg: why }, name);
  }
});

t.test('three bad frames close the socket with 4000', async (t) => {
  const s = await shared();
  const sock = await rawSocket(t, s.wsUrl);
  for (let i = 0; i < 3; i++) sock.sendBytes('not binary');
  const { code } = await sock.closed;
  t.equal(code, 4000);
  t.equal(sock.frames.filter((f) => f.t === 'err' && f.code === 'bad_frame').length, 3, 'each got its err first');
  t.match(sock.frames.at(-1), { t: 'kick', code: 4000 }, 'and a kick before the close');
});

t.test('a frame over the size limit closes with 1009', async (t) => {
  const s = await startTestServer(t, { maxFrameBytes: 4096 });
  const d = await newDevice(s, await newUser(s));
  const sock = await rawSocket(t, s.wsUrl);
  sock.send({ t: 'hello', token: d.token });
  await sock.next((f) => f.t === 'synced');
  sock.send({ t: 'send', cid: 'big', to: d.user, body: 'x'.repeat(5000) });
  t.equal((await sock.closed).code, 1009);

  // Far beyond the limit uWS cuts the connection at once, without reading the rest.
  const huge = await rawSocket(t, s.wsUrl);
  huge.sendBytes(new Uint8Array(64 * 1024));
  t.equal((await huge.closed).code, 1006, 'more than twice the limit: dropped without a close frame');
});

t.test('a body over 16 KiB gets too_large', async (t) => {
  const s = await shared();
  const d = await newDevice(s, await newUser(s));
  const sock = await rawSocket(t, s.wsUrl);
  sock.send({ t: 'hello', token: d.token });
  await sock.next((f) => f.t === 'synced');
  sock.send({ t: 'send', r: 1, cid: 'big', to: d.user, body: 'é'.repeat(9000) }); // 18,000 UTF-8 bytes
  t.match(await sock.next((f) => f.r === 1), { t: 'err', code: 'too_large' });
  sock.send({ t: 'send', r: 2, cid: 'ok', to: d.user, body: 'é'.repeat(8000) }); // 16,000 bytes: fits
  t.match(await sock.next((f) => f.r === 2), { t: 'ok', seq: 1 });
});

t.test('commands before hello get unauthorized; a bad token closes with 4001', async (t) => {
  const s = await shared();
  const sock = await rawSocket(t, s.wsUrl);
  sock.send({ t: 'send', r: 1, cid: 'c', to: 'u1', body: 'x' });
  t.match(await sock.next((f) => f.r === 1), { t: 'err', code: 'unauthorized' });
  sock.send({ t: 'hello', token: 'not-a-real-token' });
  t.equal((await sock.closed).code, 4001);
  t.match(sock.frames.at(-1), { t: 'kick', code: 4001 });
});

t.test('no hello in time closes with 4001', async (t) => {
  const s = await startTestServer(t, { helloTimeoutMs: 300 });
  const sock = await rawSocket(t, s.wsUrl);
  t.equal((await sock.closed).code, 4001);
});

t.test('a second hello is a bad frame', async (t) => {
  const s = await shared();
  const d = await newDevice(s, await newUser(s));
  const sock = await rawSocket(t, s.wsUrl);
  sock.send({ t: 'hello', token: d.token });
  await sock.next((f) => f.t === 'synced');
  sock.send({ t: 'hello', r: 2, token: d.token });
  t.match(await sock.next((f) => f.r === 2), { t: 'err', code: 'bad_frame', msg: /already/ });
});

t.test('timestamps are msgpack integers on the wire, not floats', async (t) => {
  const s = await shared();
  const d = await newDevice(s, await newUser(s));
  const sock = await rawSocket(t, s.wsUrl);
  const raw: Uint8Array[] = [];
  sock.ws.on('message', (data: ArrayBuffer) => raw.push(new Uint8Array(data)));
  sock.send({ t: 'hello', token: d.token });
  await sock.next((f) => f.t === 'synced');
  // Both waits are registered before the send: the msg can arrive in the same read as the ok.
  const answered = sock.next((f) => f.r === 1);
  const echoed = sock.next((f) => f.t === 'msg');
  sock.send({ t: 'send', r: 1, cid: 'c', to: d.user, body: 'x' });
  const ok = await answered;
  await echoed;
  sock.send({ t: 'history', r: 2, thread: ok.thread });
  await sock.next((f) => f.r === 2);
  // "ts" as a msgpack fixstr (a2 74 73) followed by int64 (d3), never float64 (cb).
  const tsThen = (bytes: Uint8Array, marker: number) => Buffer.from(bytes).includes(Buffer.from([0xa2, 0x74, 0x73, marker]));
  const withTs = raw.filter((b) => tsThen(b, 0xd3) || tsThen(b, 0xcb));
  t.equal(withTs.length, 3, 'ok, msg and history carry ts');
  t.equal(withTs.filter((b) => tsThen(b, 0xcb)).length, 0, 'none as float64');
});

t.test('a command without r that succeeds gets no answer; a failing one gets err without r', async (t) => {
  const s = await shared();
  const [ann, bob] = [await newUser(s), await newUser(s)];
  const d = await newDevice(s, ann);
  const sock = await rawSocket(t, s.wsUrl);
  sock.send({ t: 'hello', token: d.token });
  await sock.next((f) => f.t === 'synced');
  const answers = () => sock.frames.filter((f) => f.t === 'ok' || f.t === 'err');

  // Each barrier is a request with r to the same actor: its answer comes after any answer to
  // the commands before it, so an answer that should not exist would already be here.
  sock.send({ t: 'send', cid: 'quiet', to: bob.user, body: 'no answer wanted' });
  sock.send({ t: 'send', r: 1, cid: 'barrier', to: bob.user, body: 'answer wanted' });
  t.match(await sock.next((f) => f.r === 1), { t: 'ok', seq: 2 }, 'the quiet send was stored first');
  sock.send({ t: 'inbox' });
  sock.send({ t: 'contacts.list' });
  sock.send({ t: 'contacts.add', user: bob.user });
  sock.send({ t: 'inbox', r: 2 });
  await sock.next((f) => f.r === 2);
  sock.send({ t: 'ping' });
  sock.send({ t: 'ping', r: 3 });
  await sock.next((f) => f.r === 3);
  t.same(answers().map((f) => f.r), [1, 2], 'send, inbox, contacts.list and contacts.add without r were not answered');
  t.equal(sock.frames.filter((f) => f.t === 'pong').length, 2, 'ping is answered with pong either way');

  sock.send({ t: 'history', thread: 'g:nothing-here' });
  t.match(await sock.next((f) => f.t === 'err'), { code: 'not_found', r: undefined }, 'a failure is still reported, without r');
});
