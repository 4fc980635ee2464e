// The PushProvider contract run against the four providers, each against a real local endpoint the
// test starts: an HTTP server for the webhook (checks the signature); an HTTP server as the Web
// Push service (decrypts the aes128gcm body with the subscription's keys, checks the VAPID JWT); an
// HTTP/2 TLS server with a certificate made now as APNs (checks the ES256 JWT); an HTTP server as
// both Google's token endpoint and FCM (checks the RS256 assertion). Then what each provider does
// beyond the contract, and openPushProviders.
import t, { type Test } from 'tap';
import { createHash, createHmac, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, type Config } from '../src/config.js';
import { ApnsProvider } from '../src/push/apns-provider.js';
import { FcmProvider } from '../src/push/fcm-provider.js';
import { openPushProviders, vapidPublicKey } from '../src/push/open-push-providers.js';
import type { PushNotification } from '../src/push/push-provider.js';
import { WebhookProvider } from '../src/push/webhook-provider.js';
import { WebPushProvider } from '../src/push/webpush-provider.js';
import { createECDH, decryptWebPush, p256PublicKey, startHttp2Endpoint, startHttpEndpoint, tempDir, verifyJwt, type Answer, type Received } from './helpers/push-endpoints.js';
import { notification, pushProviderContract, type PushFixture } from './helpers/push-provider-contract.js';

/** The JSON a device gets, as the server means it (numbers as numbers, preview only when there). */
function expectedPayload(n: PushNotification): Record<string, unknown> {
  const out: Record<string, unknown> = { id: n.id, u: n.u, thread: n.thread, from: n.from, name: n.name, unread: n.unread };
  if (n.preview !== undefined) out.preview = n.preview;
  return out;
}

const header = (r: Received, name: string) => {
  const v = r.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

// ---------------------------------------------------------------- webhook

async function webhookFixture(t: Test) {
  const secret = randomBytes(24).toString('hex');
  const endpoint = await startHttpEndpoint(t);
  const provider = new WebhookProvider({ url: `${endpoint.url}/hooks/push?via=parley`, secret });
  t.teardown(() => provider.close());
  const fixture: PushFixture = {
    provider, endpoint,
    token: 'gateway-token-Ωmega',
    badTokens: [],
    payloadOf: (r) => JSON.parse(r.body.toString('utf8')) as Record<string, unknown>,
    checkDelivery(t, r, n, token) {
      t.equal(r.method, 'POST');
      t.equal(r.path, '/hooks/push?via=parley', 'the configured URL, query kept');
      t.match(header(r, 'content-type'), /^application\/json/);
      t.equal(header(r, 'x-parley-signature'), `sha256=${createHmac('sha256', secret).update(r.body).digest('hex')}`, 'HMAC-SHA256 of the exact body bytes');
      t.equal(header(r, 'idempotency-key'), n.id);
      t.strictSame(JSON.parse(r.body.toString('utf8')), { ...expectedPayload(n), user: n.user, device: n.device, token });
    },
    serverError: [{ status: 500 }, { status: 502 }, { status: 503 }],
    rateLimited: (ra) => ({ status: 429, headers: { 'retry-after': ra } }),
    gone: [{ status: 410 }],
    failed: [{ status: 400 }, { status: 401 }, { status: 404 }, { status: 413 }],
  };
  return { fixture, secret };
}

// ---------------------------------------------------------------- webpush

function vapidKeys() {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return { publicKey: ecdh.getPublicKey().toString('base64url'), privateKey: ecdh.getPrivateKey().toString('base64url').padStart(43, 'A'), point: ecdh.getPublicKey() };
}

async function webpushFixture(t: Test) {
  const vapid = vapidKeys();
  const subject = 'mailto:ops@parley.example';
  const ua = createECDH('prime256v1');
  ua.generateKeys();
  const auth = randomBytes(16);
  const endpoint = await startHttpEndpoint(t, { fallback: { status: 201 } });
  const subscription = { endpoint: `${endpoint.url}/wpush/v2/gAAAAABk-sub`, expirationTime: null, keys: { p256dh: ua.getPublicKey().toString('base64url'), auth: auth.toString('base64url') } };
  const provider = new WebPushProvider({ publicKey: vapid.publicKey, privateKey: vapid.privateKey, subject, allowHttp: true });
  t.teardown(() => provider.close());
  const keys = subscription.keys;
  const fixture: PushFixture = {
    provider, endpoint,
    token: JSON.stringify(subscription),
    badTokens: [
      'not json',
      '"a string"',
      JSON.stringify({ keys }),
      JSON.stringify({ ...subscription, endpoint: 'ftp://push.example/x' }),
      JSON.stringify({ ...subscription, endpoint: 'not a url' }),
      JSON.stringify({ ...subscription, endpoint: 'https://user:pw@push.example/x' }),
      JSON.stringify({ endpoint: subscription.endpoint }),
      JSON.stringify({ ...subscription, keys: { ...keys, p256dh: ua.getPublicKey().subarray(0, 64).toString('base64url') } }),
      JSON.stringify({ ...subscription, keys: { ...keys, p256dh: Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 1)]).toString('base64url') } }),
      JSON.stringify({ ...subscription, keys: { ...keys, auth: randomBytes(15).toString('base64url') } }),
      JSON.stringify({ ...subscription, keys: { ...keys, auth: '+/+/+/+/+/+/+/+/+/+/+w==' } }),
      JSON.stringify({ ...subscription, keys: { p256dh: keys.p256dh } }),
    ],
    payloadLimit: 4096,
    payloadOf: (r) => JSON.parse(decryptWebPush(r.body, ua, auth)) as Record<string, unknown>,
    checkDelivery(t, r, n) {
      t.equal(r.method, 'POST');
      t.equal(r.path, '/wpush/v2/gAAAAABk-sub', 'to the subscription endpoint');
      t.equal(header(r, 'content-encoding'), 'aes128gcm');
      t.equal(header(r, 'ttl'), '86400');
      t.equal(header(r, 'urgency'), 'normal');
      t.equal(header(r, 'topic'), createHash('sha256').update(n.thread).digest('base64url').slice(0, 32), 'Topic from the thread');
      const m = /^vapid t=([^,\s]+), k=([A-Za-z0-9_-]+)$/.exec(header(r, 'authorization') ?? '');
      t.ok(m, `a VAPID Authorization header: ${header(r, 'authorization')}`);
      if (!m) return;
      t.equal(m[2], vapid.publicKey, 'k is the VAPID public key');
      const { claims } = verifyJwt(m[1], p256PublicKey(vapid.point), 'ES256');
      t.equal(claims.aud, endpoint.url, 'aud is the push service origin');
      t.equal(claims.sub, subject);
      const now = Date.now() / 1000;
      t.ok(typeof claims.exp === 'number' && claims.exp > now && claims.exp <= now + 86_400, 'exp within a day');
      t.strictSame(JSON.parse(decryptWebPush(r.body, ua, auth)), expectedPayload(n), 'the decrypted payload');
    },
    serverError: [{ status: 500 }, { status: 503 }],
    rateLimited: (ra) => ({ status: 429, headers: { 'retry-after': ra } }),
    gone: [{ status: 404 }, { status: 410, body: 'push subscription has unsubscribed or expired.' }],
    failed: [{ status: 400 }, { status: 413 }, { status: 403, body: 'VAPID key mismatch' }],
  };
  return { fixture, vapid, subscription };
}

// ---------------------------------------------------------------- apns

function writeKey(t: Test, key: KeyObject, name: string): string {
  const file = join(tempDir(t), name);
  writeFileSync(file, key.export({ type: 'pkcs8', format: 'pem' }));
  return file;
}

async function apnsFixture(t: Test) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const keyFile = writeKey(t, privateKey, 'AuthKey_KEYID12345.p8');
  const endpoint = await startHttp2Endpoint(t);
  const options = { keyFile, keyId: 'KEYID12345', teamId: 'TEAM123456', topic: 'com.example.parley', host: endpoint.url, caFile: endpoint.caFile };
  const provider = new ApnsProvider(options);
  t.teardown(() => provider.close());
  const token = 'a1b2c3d4'.repeat(8);
  const apnsErr = (status: number, reason: string, headers?: Record<string, string>): Answer => ({ status, headers: { 'content-type': 'application/json', ...headers }, body: { reason } });
  const fixture: PushFixture = {
    provider, endpoint, token,
    badTokens: ['xyz', 'ab'.repeat(31), `${'ab'.repeat(32)}a`, 'g'.repeat(64), `../${'ab'.repeat(32)}`, `${'ab'.repeat(32)}/x`],
    payloadLimit: 4096,
    payloadOf: (r) => (JSON.parse(r.body.toString('utf8')) as { parley: Record<string, unknown> }).parley,
    checkDelivery(t, r, n, token) {
      t.equal(r.method, 'POST');
      t.equal(r.path, `/3/device/${token}`);
      const m = /^bearer (.+)$/.exec(header(r, 'authorization') ?? '');
      t.ok(m, 'a bearer token');
      const { header: h, claims } = verifyJwt(m![1], publicKey, 'ES256');
      t.same(h, { alg: 'ES256', kid: 'KEYID12345' });
      t.equal(claims.iss, 'TEAM123456');
      t.ok(Math.abs((claims.iat as number) - Date.now() / 1000) < 120, 'iat is now');
      t.equal(header(r, 'apns-topic'), 'com.example.parley');
      t.equal(header(r, 'apns-push-type'), 'alert');
      t.equal(header(r, 'apns-priority'), '10');
      t.match(header(r, 'apns-id'), /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'apns-id a UUID');
      t.equal(header(r, 'apns-collapse-id'), n.thread);
      const exp = Number(header(r, 'apns-expiration'));
      t.ok(exp > Date.now() / 1000 && exp <= Date.now() / 1000 + 86_401, 'expires within a day');
      const body = JSON.parse(r.body.toString('utf8')) as { aps: Record<string, unknown>; parley: unknown };
      t.same(body.aps.alert, { title: n.name, body: n.preview ?? 'New message' });
      t.equal(body.aps['thread-id'], n.thread);
      t.notOk('badge' in body.aps, 'no badge: the unread count is one thread\'s');
      t.strictSame(body.parley, expectedPayload(n));
    },
    serverError: [apnsErr(500, 'InternalServerError'), apnsErr(503, 'ServiceUnavailable')],
    rateLimited: (ra) => apnsErr(429, 'TooManyRequests', { 'retry-after': ra }),
    gone: [apnsErr(410, 'Unregistered'), apnsErr(400, 'BadDeviceToken'), apnsErr(400, 'DeviceTokenNotForTopic')],
    failed: [apnsErr(413, 'PayloadTooLarge'), apnsErr(400, 'BadCollapseId'), apnsErr(403, 'InvalidProviderToken'), apnsErr(404, 'BadPath')],
  };
  return { fixture, options, publicKey, endpoint };
}

// ---------------------------------------------------------------- fcm

async function fcmFixture(t: Test) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const dir = tempDir(t);
  let issued = 0;
  const tokenAnswers: Answer[] = [];
  const exchanges: Record<string, unknown>[] = [];
  const endpoint = await startHttpEndpoint(t, {
    aux(req, body, res) {
      if (req.url !== '/token') return false;
      const form = new URLSearchParams(body.toString('utf8'));
      let claims: Record<string, unknown> = {};
      try {
        if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') throw new Error('grant_type');
        claims = verifyJwt(form.get('assertion') ?? '', publicKey, 'RS256').claims;
      } catch (err) {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_grant', error_description: (err as Error).message }));
        return true;
      }
      exchanges.push(claims);
      const a = tokenAnswers.shift();
      if (a && a !== 'hang' && a !== 'reset') {
        res.writeHead(a.status, a.headers ?? {}).end(typeof a.body === 'string' ? a.body : JSON.stringify(a.body ?? {}));
        return true;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: `ya29.test-${++issued}`, expires_in: 3599, token_type: 'Bearer' }));
      return true;
    },
  });
  const serviceAccountFile = join(dir, 'service-account.json');
  writeFileSync(serviceAccountFile, JSON.stringify({
    type: 'service_account', project_id: 'parley-test', private_key_id: 'k1', private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    client_email: 'push@parley-test.iam.gserviceaccount.com', client_id: '1', token_uri: `${endpoint.url}/token`,
  }));
  const provider = new FcmProvider({ serviceAccountFile, endpoint: endpoint.url });
  t.teardown(() => provider.close());
  const fcmErr = (code: number, status: string, errorCode?: string, headers?: Record<string, string>): Answer => ({
    status: code, headers: { 'content-type': 'application/json', ...headers },
    body: { error: { code, message: `${status} from the test`, status, details: errorCode ? [{ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode }] : [] } },
  });
  const fixture: PushFixture = {
    provider, endpoint,
    token: `dGVzdC1kZXZpY2U:APA91b${'Hk_x-Q9'.repeat(20)}`,
    badTokens: ['short', `has space ${'a'.repeat(40)}`, 'a/b'.repeat(20), `${'a'.repeat(40)}"`],
    payloadLimit: 4096,
    payloadOf(r) {
      const data = (JSON.parse(r.body.toString('utf8')) as { message: { data: Record<string, string> } }).message.data;
      return { ...data, u: Number(data.u), unread: Number(data.unread) };
    },
    checkDelivery(t, r, n, token) {
      t.equal(r.method, 'POST');
      t.equal(r.path, '/v1/projects/parley-test/messages:send');
      t.match(header(r, 'authorization'), /^Bearer ya29\.test-\d+$/, 'an access token from the token endpoint');
      const { message } = JSON.parse(r.body.toString('utf8')) as { message: Record<string, any> };
      t.equal(message.token, token);
      t.strictSame(message.data, Object.fromEntries(Object.entries(expectedPayload(n)).map(([k, v]) => [k, String(v)])), 'data: every value a string');
      t.same(message.notification, { title: n.name, body: n.preview ?? 'New message' });
      t.equal(message.android.collapse_key, n.thread);
      t.equal(message.android.notification.tag, n.thread);
      t.equal(message.apns.headers['apns-collapse-id'], n.thread);
      t.equal(message.apns.payload.aps['thread-id'], n.thread);
      const claims = exchanges.at(-1)!;
      t.equal(claims.iss, 'push@parley-test.iam.gserviceaccount.com');
      t.equal(claims.scope, 'https://www.googleapis.com/auth/firebase.messaging');
      t.equal(claims.aud, `${endpoint.url}/token`);
      t.equal((claims.exp as number) - (claims.iat as number), 3600);
    },
    serverError: [fcmErr(500, 'INTERNAL', 'INTERNAL'), fcmErr(503, 'UNAVAILABLE', 'UNAVAILABLE')],
    rateLimited: (ra) => fcmErr(429, 'RESOURCE_EXHAUSTED', 'QUOTA_EXCEEDED', { 'retry-after': ra }),
    gone: [fcmErr(404, 'NOT_FOUND', 'UNREGISTERED'), { status: 404 }, fcmErr(403, 'PERMISSION_DENIED', 'SENDER_ID_MISMATCH')],
    failed: [fcmErr(400, 'INVALID_ARGUMENT', 'INVALID_ARGUMENT'), { status: 400 }, fcmErr(403, 'PERMISSION_DENIED')],
  };
  return { fixture, exchanges, tokenAnswers, serviceAccountFile, endpoint };
}

// ---------------------------------------------------------------- the contract, four times

t.test('webhook', async (t) => pushProviderContract(t, async (t) => (await webhookFixture(t)).fixture));
t.test('webpush', async (t) => pushProviderContract(t, async (t) => (await webpushFixture(t)).fixture));
t.test('apns', async (t) => pushProviderContract(t, async (t) => (await apnsFixture(t)).fixture));
t.test('fcm', async (t) => pushProviderContract(t, async (t) => (await fcmFixture(t)).fixture));

// ---------------------------------------------------------------- beyond the contract

const go = (f: PushFixture, n = notification()) => f.provider.send(f.token, n, new AbortController().signal);

t.test('webpush: http endpoints only when allowed; keys checked at start-up; one Topic per thread', async (t) => {
  const { fixture, vapid, subscription } = await webpushFixture(t);
  const strict = new WebPushProvider({ publicKey: vapid.publicKey, privateKey: vapid.privateKey, subject: 'https://parley.example/contact' });
  t.teardown(() => strict.close());
  t.match(strict.checkToken(JSON.stringify(subscription)), /https/, 'http refused by default');
  t.equal(strict.checkToken(JSON.stringify({ ...subscription, endpoint: 'https://push.example/x' })), null);
  const other = vapidKeys();
  t.throws(() => new WebPushProvider({ publicKey: other.publicKey, privateKey: vapid.privateKey, subject: 'mailto:a@b.example' }), /not the public key/);
  t.throws(() => new WebPushProvider({ publicKey: vapid.publicKey, privateKey: vapid.privateKey, subject: 'http://parley.example' }), /VAPID_SUBJECT/);
  t.throws(() => new WebPushProvider({ publicKey: 'short', privateKey: vapid.privateKey, subject: 'mailto:a@b.example' }), /VAPID_PUBLIC_KEY/);
  await go(fixture, notification({ id: 'dev1:1', thread: 't_a' }));
  await go(fixture, notification({ id: 'dev1:2', thread: 't_a' }));
  await go(fixture, notification({ id: 'dev1:3', thread: 't_b' }));
  const topics = fixture.endpoint.received.map((r) => header(r, 'topic'));
  t.equal(topics[0], topics[1], 'same thread, same Topic: the later replaces the pending one');
  t.not(topics[0], topics[2]);
});

t.test('apns: one session and one JWT for many sends; GOAWAY reconnects; ExpiredProviderToken gets a new JWT; the same id the same apns-id', async (t) => {
  const { fixture, endpoint, options } = await apnsFixture(t);
  for (let i = 0; i < 3; i++) t.same(await go(fixture, notification({ id: `dev1:${i}` })), { kind: 'ok' });
  t.equal(endpoint.sessionsOpened(), 1, 'one HTTP/2 session');
  const auths = new Set(endpoint.received.map((r) => header(r, 'authorization')));
  t.equal(auths.size, 1, 'the JWT is reused');
  t.equal(header(endpoint.received[0], 'apns-id') === header(endpoint.received[1], 'apns-id'), false, 'distinct ids, distinct apns-ids');
  endpoint.goaway();
  await new Promise<void>((resolve) => { const check = () => (endpoint.connections() === 0 ? resolve() : setImmediate(check)); check(); });
  t.same(await go(fixture, notification({ id: 'dev1:0' })), { kind: 'ok' }, 'after GOAWAY');
  t.equal(endpoint.sessionsOpened(), 2, 'a new session');
  t.equal(header(endpoint.received[3], 'apns-id'), header(endpoint.received[0], 'apns-id'), 'a repeat of an id carries the same apns-id');
  endpoint.answer({ status: 403, body: { reason: 'ExpiredProviderToken' } });
  t.match(await go(fixture), { kind: 'retry', reason: /ExpiredProviderToken/ });
  t.same(await go(fixture), { kind: 'ok' });
  t.not(header(endpoint.received[5], 'authorization'), header(endpoint.received[4], 'authorization'), 'a new JWT after ExpiredProviderToken');
  t.equal(fixture.provider.checkToken('AB'.repeat(32)), null, 'upper-case hex too');
  t.throws(() => new ApnsProvider({ ...options, keyFile: join(tempDir(t), 'missing.p8') }), /APNS_KEY_FILE: cannot read/);
  const rsa = writeKey(t, generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey, 'rsa.p8');
  t.throws(() => new ApnsProvider({ ...options, keyFile: rsa }), /APNS_KEY_FILE: .*EC P-256/);
  t.throws(() => new ApnsProvider({ ...options, caFile: join(tempDir(t), 'none.pem') }), /APNS_CA_FILE: cannot read/);
});

t.test('apns: a server whose certificate is not trusted is a retry, never ok', async (t) => {
  const { options } = await apnsFixture(t);
  const untrusting = new ApnsProvider({ ...options, caFile: '' });
  t.teardown(() => untrusting.close());
  t.match(await untrusting.send('ab'.repeat(32), notification(), new AbortController().signal), { kind: 'retry', reason: /network/ });
});

t.test('fcm: one token exchange for many sends; 401 gets a new token; a failing token exchange', async (t) => {
  const { fixture, exchanges, tokenAnswers, serviceAccountFile, endpoint } = await fcmFixture(t);
  const outcomes = await Promise.all(Array.from({ length: 10 }, (_, i) => go(fixture, notification({ id: `dev1:${i}` }))));
  t.ok(outcomes.every((o) => o.kind === 'ok'));
  t.equal(exchanges.length, 1, 'concurrent sends share one token exchange');
  t.same(await go(fixture), { kind: 'ok' });
  t.equal(exchanges.length, 1, 'the token is cached');
  endpoint.answer({ status: 401, body: { error: { code: 401, status: 'UNAUTHENTICATED', message: 'expired' } } });
  t.match(await go(fixture), { kind: 'retry', reason: /401/ });
  t.same(await go(fixture), { kind: 'ok' });
  t.equal(exchanges.length, 2, 'a new token after a 401');
  t.equal(header(endpoint.received.at(-1)!, 'authorization'), 'Bearer ya29.test-2');

  const fresh = new FcmProvider({ serviceAccountFile, endpoint: endpoint.url });
  t.teardown(() => fresh.close());
  tokenAnswers.push({ status: 503, headers: { 'retry-after': '5' } }, { status: 400, body: { error: 'invalid_grant' } });
  t.match(await fresh.send(fixture.token, notification(), new AbortController().signal), { kind: 'retry', afterMs: 5000, reason: /token exchange/ });
  t.match(await fresh.send(fixture.token, notification(), new AbortController().signal), { kind: 'failed', reason: /token exchange answered 400/ });
  t.same(await fresh.send(fixture.token, notification(), new AbortController().signal), { kind: 'ok' }, 'then it works');

  t.throws(() => new FcmProvider({ serviceAccountFile: join(tempDir(t), 'missing.json'), endpoint: endpoint.url }), /FCM_SERVICE_ACCOUNT_FILE: cannot read/);
  const partial = join(tempDir(t), 'partial.json');
  writeFileSync(partial, JSON.stringify({ client_email: 'a@b', private_key: 'x' }));
  t.throws(() => new FcmProvider({ serviceAccountFile: partial, endpoint: endpoint.url }), /has no project_id/);
});

t.test('openPushProviders opens only the configured providers; vapidPublicKey', async (t) => {
  const base = (over: Partial<Config>) => loadConfig([], {}, over);
  t.same([...openPushProviders(base({})).keys()], [], 'none configured: none');
  t.equal(vapidPublicKey(base({})), null);
  const vapid = vapidKeys();
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const keyFile = writeKey(t, privateKey, 'k.p8');
  const all = base({
    pushWebhookUrl: 'http://127.0.0.1:9/hook', pushWebhookSecret: 'x'.repeat(32),
    vapidPublicKey: vapid.publicKey, vapidPrivateKey: vapid.privateKey, vapidSubject: 'mailto:ops@parley.example',
    apnsKeyFile: keyFile, apnsKeyId: 'KEYID12345', apnsTeamId: 'TEAM123456', apnsTopic: 'com.example.parley',
  });
  const providers = openPushProviders(all);
  t.teardown(() => Promise.all([...providers.values()].map((p) => p.close())));
  t.same([...providers.keys()], ['webhook', 'webpush', 'apns']);
  for (const [name, p] of providers) t.equal(p.name, name);
  t.equal(vapidPublicKey(all), vapid.publicKey);
  t.throws(() => openPushProviders(base({ fcmServiceAccountFile: '/nonexistent/sa.json' })), { name: 'ConfigError', message: /FCM_SERVICE_ACCOUNT_FILE: cannot read "\/nonexistent\/sa.json"/ });
  t.throws(() => openPushProviders(base({ apnsKeyFile: keyFile })), { name: 'ConfigError', message: /APNS_KEY_FILE is set but APNS_KEY_ID, APNS_TEAM_ID, APNS_TOPIC are missing/ });
});
