// A socket that stops reading must not block anyone or lose anything: live pushes to it pause
// when its send buffer is full and it is caught up from the user log once it drains.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { collect, connect, newDevice, newUser, startTestServer, until } from './helpers/server.js';
import { rawSocket } from './helpers/raw-socket.js';

const BODY = 'x'.repeat(16 * 1024 - 64);
const BATCH = 25;

/**
 * How many bodies the kernel can hold for a reader that stopped: its receive buffer plus the
 * server's send buffer, at their largest (autotuning may grow both that far). Past that the
 * server's own buffer must grow, so a pause is certain; the bound keeps the loop finite.
 */
function kernelBufferedBodies(): number {
  const largest = (path: string, fallback: number) => {
    try {
      return Number(readFileSync(path, 'utf8').trim().split(/\s+/).at(-1));
    } catch {
      return fallback;
    }
  };
  const bytes = largest('/proc/sys/net/ipv4/tcp_rmem', 64 << 20) + largest('/proc/sys/net/ipv4/tcp_wmem', 64 << 20);
  // The kernel counts more than the payload per byte (skb overhead): allow twice the limits.
  return Math.ceil((2 * bytes) / BODY.length);
}

async function gauges(base: string): Promise<{ pauses: number; connections: number }> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const read = (name: string) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  return { pauses: read('parley_slow_consumer_pauses_total'), connections: read('parley_connections') };
}

t.test('a reader that stalls is paused, others keep getting messages, and it catches up exactly once', async (t) => {
  // The smallest pause point the config allows; relaxed commits: this test is about buffers, not disks.
  const s = await startTestServer(t, { slowConsumerBytes: 16 * 1024, durability: 'relaxed' });
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const annPhone = await connect(t, s, await newDevice(s, ann));
  const bobDevice = await newDevice(s, bob);
  const bobFast = await connect(t, s, await newDevice(s, bob, 'fast'), { autoAck: false });
  const fastGot = collect(bobFast, 'msg');

  const slow = await rawSocket(t, s.wsUrl);
  slow.send({ t: 'hello', token: bobDevice.token });
  await slow.next((f) => f.t === 'synced');
  // Stop reading: the kernel buffers fill, then the server's, and the server must pause pushes.
  // ws.pause(), not its net socket's: ws resumes the socket itself whenever its parser drains.
  slow.ws.pause();
  const before = await gauges(s.base);
  t.equal(before.connections, 3);

  // Keep sending until the server reports the pause: no guess of how much the kernel buffers.
  const bound = kernelBufferedBodies() + 10 * BATCH;
  let sent = 0;
  for (let now = before; now.pauses === before.pauses; now = await gauges(s.base)) {
    // Closing it (4009) is what the server does to a socket whose answers pile up, not to one that only gets pushes.
    if (now.connections !== before.connections) return t.fail(`the stalled socket was closed instead of paused, after ${sent} messages`);
    if (sent >= bound) return t.fail(`no pause after ${sent} messages, more than the kernel can buffer`);
    await Promise.all(Array.from({ length: BATCH }, (_, j) => annPhone.send({ to: bob.user, body: `${sent + j + 1} ${BODY}` })));
    sent += BATCH;
    // The push to the stalled socket follows the fast device's: once the fast device has the
    // batch, the gateway has handled the slow socket's copy too (same user, same order).
    await until(bobFast, () => fastGot.length === sent, 30_000);
  }
  t.pass(`the stalled socket was paused after ${sent} messages of ${BODY.length} bytes`);

  // More after the pause: these go to the log only, never to the stalled socket live.
  await Promise.all(Array.from({ length: BATCH }, (_, j) => annPhone.send({ to: bob.user, body: `${sent + j + 1} ${BODY}` })));
  sent += BATCH;
  await until(bobFast, () => fastGot.length === sent, 30_000);
  t.same(fastGot.map((m) => m.u), Array.from({ length: sent }, (_, i) => i + 1), "bob's other device got every message, in order, while one of his sockets stalled");

  slow.ws.resume();
  const count = () => slow.frames.filter((f) => f.t === 'msg').length;
  while (count() < sent) await slow.next((f) => f.t === 'msg', 30_000);
  // A barrier: a message sent now is delivered after any duplicate the catch-up could produce.
  const last = slow.next((f) => f.t === 'msg' && f.body === 'after the catch-up', 30_000);
  await annPhone.send({ to: bob.user, body: 'after the catch-up' });
  await last;
  const msgs = slow.frames.filter((f) => f.t === 'msg');
  t.equal(msgs.length, sent + 1, 'every message arrives once');
  t.same(msgs.map((m) => m.u), Array.from({ length: sent + 1 }, (_, i) => i + 1), 'in log order, no gap, no duplicate');
});
