// A send the server refuses for now is not a silent wait (docs/sdk.md "Errors and reconnection"):
// with a small per-user send limit on a real server, the SDK's `sendRetry` event names the message
// (its cid), the rate_limited error with the server's `retry`, and the delay it waits; then the
// same cid goes out by itself, once; several refused at once keep their order (each refusal has
// its own `retry`, so a later one must not overtake an earlier one).
import t from 'tap';
import { ParleyError, type SendRetryEvent } from '../client/index.js';
import { parseWindows } from '../src/limits/rate-limiter.js';
import { connect, newDevice, newUser, startTestServer } from './helpers/server.js';

t.test('rate limited: sendRetry says how long, then the message goes out once', async (t) => {
  const s = await startTestServer(t, { rateLimits: 'on', rlSendsPerUser: parseWindows('2/s') });
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const a = await connect(t, s, await newDevice(s, ann));
  const retries: SendRetryEvent[] = [];
  a.on('sendRetry', (e) => retries.push(e));

  const first = await a.send({ to: bob.user, body: 'one' });
  await a.send({ thread: first.thread, body: 'two' });
  const waiting = a.next('sendRetry');
  const third = a.send({ thread: first.thread, body: 'three', cid: 'cid-three' });
  const retry = await waiting;
  t.match(retry, { cid: 'cid-three', t: 'send', attempt: 1 }, 'which message waits');
  t.ok(retry.error instanceof ParleyError, 'a ParleyError');
  t.equal(retry.error.code, 'rate_limited');
  t.ok(typeof retry.error.retry === 'number' && retry.error.retry > 0 && retry.error.retry <= 5000, `the server's wait: ${retry.error.retry} ms`);
  t.equal(retry.delay, retry.error.retry, 'the SDK waits exactly that long');

  const sent = await third;
  t.match(sent, { cid: 'cid-three', thread: first.thread }, 'then it went out by itself');
  const page = await a.history({ thread: first.thread, limit: 10 });
  t.same(page.messages.map((m) => m.body).reverse(), ['one', 'two', 'three'], 'once each, in order');
  t.ok(retries.every((e) => e.cid === 'cid-three' && e.error.code === 'rate_limited'), 'only the refused send was retried');
});

t.test('several refused sends go out in the order they were sent', async (t) => {
  const s = await startTestServer(t, { rateLimits: 'on', rlSendsPerUser: parseWindows('2/s') });
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const a = await connect(t, s, await newDevice(s, ann));
  const retried = new Set<string>();
  a.on('sendRetry', (e) => retried.add(e.cid));
  const first = await a.send({ to: bob.user, body: 'm0' });
  const bodies = Array.from({ length: 6 }, (_, i) => `m${i + 1}`);
  await Promise.all(bodies.map((body) => a.send({ thread: first.thread, body, cid: `cid-${body}` })));
  t.ok(retried.size >= 3, `refused and retried: ${[...retried].join(', ')}`);
  const page = await a.history({ thread: first.thread, limit: 10 });
  t.same(page.messages.map((m) => m.body).reverse(), ['m0', ...bodies], 'stored in the order sent, once each');
});
