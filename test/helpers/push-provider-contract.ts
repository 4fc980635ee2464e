// The PushProvider contract (src/push/push-provider.ts) as one suite every provider runs against its
// real local endpoint: a good send arrives with the right payload and headers; bad tokens are
// refused without calling out; 5xx, a dropped connection and a timeout are `retry`; 429 with
// Retry-After gives `afterMs`; the provider's dead-registration answers are `gone`; its
// permanent refusals are `failed`; close() frees its connections.
import type { Test } from 'tap';
import { MAX_PUSH_TOKEN_BYTES, type PushNotification, type PushOutcome, type PushProvider } from '../../src/push/push-provider.js';
import type { Answer, PushEndpoint, Received } from './push-endpoints.js';

export interface PushFixture {
  provider: PushProvider;
  endpoint: PushEndpoint;
  /** a registration token of the right shape (the endpoint's own, for Web Push) */
  token: string;
  /** tokens of the wrong shape */
  badTokens: string[];
  /** checks that `r` delivers `n` to `token`: payload (decrypted where it is encrypted), auth, headers, idempotency key */
  checkDelivery(t: Test, r: Received, n: PushNotification, token: string): void | Promise<void>;
  /** the notification JSON the device gets out of request `r` (decrypted for Web Push) */
  payloadOf(r: Received): Record<string, unknown> | Promise<Record<string, unknown>>;
  /** the provider's payload limit in bytes of request body, if it has one (the preview is shortened to fit) */
  payloadLimit?: number;
  /** the provider's answers meaning: a server error; rate limited (Retry-After value); the registration is dead; this notification is refused */
  serverError: Answer[];
  rateLimited(retryAfter: string): Answer;
  gone: Answer[];
  failed: Answer[];
}

export function notification(over: Partial<PushNotification> = {}): PushNotification {
  return { id: 'dev1:42', user: 'u_alice', device: 'dev1', u: 42, thread: 't_bob', from: 'u_bob', name: 'Bob', unread: 3, ...over };
}

const send = (p: PushProvider, token: string, n = notification()) => p.send(token, n, new AbortController().signal);

export function pushProviderContract(t: Test, open: (t: Test) => Promise<PushFixture>): void {
  t.test('a good send arrives with its payload, auth and idempotency key: ok', async (t) => {
    const f = await open(t);
    const withPreview = notification({ preview: 'lunch at 1? “ünïcödé” 🍕' });
    t.same(await send(f.provider, f.token, withPreview), { kind: 'ok' });
    const plain = notification({ id: 'dev1:43', u: 43, unread: 4 });
    t.same(await send(f.provider, f.token, plain), { kind: 'ok' });
    t.equal(f.endpoint.received.length, 2, 'one request per notification');
    await f.checkDelivery(t, f.endpoint.received[0], withPreview, f.token);
    await f.checkDelivery(t, f.endpoint.received[1], plain, f.token);
  });

  t.test('a long preview is shortened to fit the provider; the rest still arrives', async (t) => {
    const f = await open(t);
    const n = notification({ preview: 'é'.repeat(5000) });
    t.same(await send(f.provider, f.token, n), { kind: 'ok' });
    const r = f.endpoint.received[0];
    const got = await f.payloadOf(r);
    t.match(got, { id: n.id, u: n.u, thread: n.thread, name: n.name });
    if (f.payloadLimit === undefined) return t.equal(got.preview, n.preview, 'no limit: the whole preview');
    t.ok(r.body.length <= f.payloadLimit, `a body of ${r.body.length} bytes, at most ${f.payloadLimit}`);
    t.match(got.preview, /^é+…$/, 'cut on a character, marked');
    t.ok((got.preview as string).length > 500, 'still a good part of it');
  });

  t.test('checkToken: the good shape passes, bad shapes are refused, nothing is sent', async (t) => {
    const f = await open(t);
    t.equal(f.provider.checkToken(f.token), null);
    for (const bad of ['', 'x'.repeat(MAX_PUSH_TOKEN_BYTES + 1), ...f.badTokens]) {
      t.type(f.provider.checkToken(bad), 'string', `refused: ${JSON.stringify(bad).slice(0, 80)}`);
    }
    t.equal(f.endpoint.received.length, 0, 'no request');
  });

  t.test('a server error is retry, without afterMs when no Retry-After', async (t) => {
    const f = await open(t);
    for (const a of f.serverError) {
      f.endpoint.answer(a);
      const o = await send(f.provider, f.token);
      t.equal(o.kind, 'retry', JSON.stringify(a));
      t.notOk((o as { afterMs?: number }).afterMs, 'no afterMs');
    }
    t.same(await send(f.provider, f.token), { kind: 'ok' }, 'then a retry succeeds');
  });

  t.test('a dropped connection is retry, and the next send reconnects', async (t) => {
    const f = await open(t);
    f.endpoint.answer('reset');
    t.match(await send(f.provider, f.token), { kind: 'retry', reason: String });
    t.same(await send(f.provider, f.token), { kind: 'ok' });
  });

  t.test('an endpoint that never answers: abort gives retry (timeout)', async (t) => {
    const f = await open(t);
    f.endpoint.answer('hang');
    const ac = new AbortController();
    const pending = f.provider.send(f.token, notification(), ac.signal);
    await f.endpoint.arrivals(1);
    ac.abort(new Error('push timeout'));
    t.same(await pending, { kind: 'retry', reason: 'timeout' });
    await f.endpoint.hungClosed(); // the abandoned request is cancelled, not left open on the server
    t.pass('the abandoned request was cancelled');
    t.same(await send(f.provider, f.token), { kind: 'ok' }, 'the provider still works afterwards');
  });

  t.test('an already aborted signal is retry', async (t) => {
    const f = await open(t);
    const ac = new AbortController();
    ac.abort();
    t.equal((await f.provider.send(f.token, notification(), ac.signal)).kind, 'retry');
  });

  t.test('429 with Retry-After in seconds or as an HTTP date gives afterMs', async (t) => {
    const f = await open(t);
    f.endpoint.answer(f.rateLimited('7'));
    t.match(await send(f.provider, f.token), { kind: 'retry', afterMs: 7000 });
    const at = new Date(Date.now() + 30_000);
    f.endpoint.answer(f.rateLimited(at.toUTCString()));
    const o = (await send(f.provider, f.token)) as Extract<PushOutcome, { kind: 'retry' }>;
    t.equal(o.kind, 'retry');
    t.ok(o.afterMs !== undefined && o.afterMs > 27_000 && o.afterMs <= 30_000, `afterMs ${o.afterMs} from an HTTP date`);
  });

  t.test("the provider's dead-registration answers are gone", async (t) => {
    const f = await open(t);
    for (const a of f.gone) {
      f.endpoint.answer(a);
      t.match(await send(f.provider, f.token), { kind: 'gone', reason: String }, JSON.stringify(a));
    }
  });

  t.test('a permanent refusal of the notification is failed', async (t) => {
    const f = await open(t);
    for (const a of f.failed) {
      f.endpoint.answer(a);
      t.match(await send(f.provider, f.token), { kind: 'failed', reason: String }, JSON.stringify(a));
    }
  });

  t.test('concurrent sends all arrive', async (t) => {
    const f = await open(t);
    const outcomes = await Promise.all(Array.from({ length: 20 }, (_, i) => send(f.provider, f.token, notification({ id: `dev1:${i}`, u: i }))));
    t.ok(outcomes.every((o) => o.kind === 'ok'));
    t.same(f.endpoint.received.length, 20);
  });

  t.test('close() frees its connections (the process can exit)', async (t) => {
    const f = await open(t);
    t.same(await send(f.provider, f.token), { kind: 'ok' });
    t.ok(f.endpoint.connections() > 0, 'a kept-alive connection after a send');
    await f.provider.close();
    await f.endpoint.allClosed();
    t.equal(f.endpoint.connections(), 0);
  });
}
