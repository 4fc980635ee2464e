// A socket that stops reading must not block anyone or lose anything: live pushes to it pause
// when its send buffer is full and it is caught up from the user log once it drains.
import t from 'tap';
import { collect, connect, newDevice, newUser, startTestServer, until } from './helpers/server.js';
import { rawSocket } from './helpers/raw-socket.js';

const MESSAGES = 700;
const BODY = 'x'.repeat(16 * 1024 - 64);

t.test('a reader that stalls is paused, others keep getting messages, and it catches up exactly once', async (t) => {
  const s = await startTestServer(t, { slowConsumerBytes: 64 * 1024 });
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  const bobDevice = await newDevice(s, bob);
  const bobFast = await connect(t, s, await newDevice(s, bob, 'fast'), { autoAck: false });
  const fastGot = collect(bobFast, 'msg');

  const slow = await rawSocket(t, s.wsUrl);
  slow.send({ t: 'hello', token: bobDevice.token });
  await slow.next((f) => f.t === 'synced');
  // Stop reading: the kernel buffers fill (a few MB on loopback), then the server's.
  (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();

  for (let i = 0; i < MESSAGES; i += 50) {
    await Promise.all(Array.from({ length: 50 }, (_, j) => annPhone.send({ to: bob.user, body: `${i + j + 1} ${BODY}` })));
  }
  await until(bobFast, () => fastGot.length === MESSAGES, 30_000);
  t.pass("bob's other device got every message while one of his sockets stalled");

  const metrics = await (await fetch(`${s.base}/metrics`)).text();
  const pauses = Number(/parley_slow_consumer_pauses_total (\d+)/.exec(metrics)?.[1] ?? 0);
  t.ok(pauses >= 1, `the stalled socket was paused (${pauses} pauses)`);

  (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
  const deadline = Date.now() + 30_000;
  while (slow.frames.filter((f) => f.t === 'msg').length < MESSAGES && Date.now() < deadline) {
    await slow.next((f) => f.t === 'msg', 30_000);
  }
  const msgs = slow.frames.filter((f) => f.t === 'msg');
  t.equal(msgs.length, MESSAGES, 'every message arrives once');
  t.same(msgs.map((m) => m.u), Array.from({ length: MESSAGES }, (_, i) => i + 1), 'in log order, no gap, no duplicate');
});
