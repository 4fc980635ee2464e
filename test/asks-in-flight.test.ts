// Commands waiting on actors are bounded per socket (maxAsksPerSocket): beyond the bound a
// command is answered rate_limited with a retry at once, instead of queueing without limit.
import t from 'tap';
import { rawSocket } from './helpers/raw-socket.js';
import { connect, newDevice, newUser, startTestServer } from './helpers/server.js';

const BURST = 50;
const FIRST_R = 100;

t.test('a burst beyond maxAsksPerSocket: one answer per frame, the excess rate_limited, the socket keeps working', async (t) => {
  const s = await startTestServer(t, { maxAsksPerSocket: 2 });
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const d = await newDevice(s, ann);
  const annPhone = await connect(t, s, d);
  const { thread } = await annPhone.send({ to: bob.user, body: 'something to read' });
  await annPhone.close();

  const sock = await rawSocket(t, s.wsUrl);
  const synced = sock.next((f) => f.t === 'synced');
  sock.send({ t: 'hello', token: d.token });
  await synced;
  // Frames are written synchronously only without permessage-deflate; then cork makes them one TCP write,
  // so the gateway reads the whole burst before any actor can answer.
  t.equal(sock.ws.extensions, '', 'no compression negotiated');

  const answers = new Map<number, any[]>();
  const isAnswer = (f: any) => (f.t === 'ok' || f.t === 'err') && typeof f.r === 'number' && f.r >= FIRST_R && f.r < FIRST_R + BURST;
  const allAnswered = sock.next(() => {
    answers.clear();
    for (const f of sock.frames) if (isAnswer(f)) answers.set(f.r, [...(answers.get(f.r) ?? []), f]);
    return answers.size === BURST;
  }, 20_000);
  const socket = (sock.ws as any)._socket;
  socket.cork();
  for (let i = 0; i < BURST; i++) {
    const r = FIRST_R + i;
    sock.send(i % 2 === 0 ? { t: 'history', r, thread } : { t: 'inbox', r });
  }
  socket.uncork();
  await allAnswered;

  // A late duplicate would show after a later round trip: every answer is in before the next pong.
  const pong = sock.next((f) => f.t === 'pong' && f.r === 1);
  sock.send({ t: 'inbox', r: 2 });
  sock.send({ t: 'ping', r: 1 });
  const later = await sock.next((f) => f.r === 2 && (f.t === 'ok' || f.t === 'err'), 10_000);
  await pong;
  const all = sock.frames.filter(isAnswer);
  t.equal(all.length, BURST, 'exactly one answer per frame');

  const limited = all.filter((f) => f.t === 'err');
  const ok = all.filter((f) => f.t === 'ok');
  t.ok(limited.length >= 1, `${limited.length} of ${BURST} were limited`);
  for (const f of limited) {
    t.match(f, { code: 'rate_limited' }, `r=${f.r} limited`);
    t.ok(typeof f.retry === 'number' && f.retry > 0, `r=${f.r} with a retry time`);
  }
  t.ok(ok.length >= 2, `${ok.length} answered ok`);
  t.same([FIRST_R, FIRST_R + 1].map((r) => answers.get(r)![0].t), ['ok', 'ok'], 'the first two took the two slots');
  t.ok(ok.some((f) => Array.isArray(f.messages)) && ok.some((f) => Array.isArray(f.threads)), 'real answers among them');

  t.equal(later.t, 'ok', 'a command after the burst succeeds');
  t.equal(sock.frames.filter((f) => f.t === 'kick').length, 0, 'the socket was not closed');
});
